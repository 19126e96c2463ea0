//! `dns://` connects: keep one connect per address a [`Discovery`] reports.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};

use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::Engine;
use crate::discovery::{set, Discovery, Dns};
use crate::monitor::Event;
use crate::{Endpoint, Host};

/// A running discovery; dropping it stops it (the connects it made stay until
/// [`Watch::addresses`] are disconnected).
#[derive(Debug)]
pub(crate) struct Watch {
    task: JoinHandle<()>,
    /// The addresses connected to now.
    current: Arc<Mutex<BTreeSet<SocketAddr>>>,
    port: u16,
    path: Option<String>,
}

impl Watch {
    /// The `tcp://` endpoints this watch connected to.
    pub(crate) fn endpoints(&self) -> Vec<String> {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        current
            .iter()
            .map(|a| endpoint_for(*a, self.port, &self.path))
            .collect()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn endpoint_for(addr: SocketAddr, port: u16, path: &Option<String>) -> String {
    let port = if addr.port() == 0 { port } else { addr.port() };
    Endpoint::Tcp {
        host: Host::Ip(addr.ip()),
        port,
        path: path.clone(),
    }
    .to_string()
}

/// Starts resolving `host:port` for `engine` (through its `discovery` option, or DNS).
pub(crate) fn watch(
    engine: &Arc<Engine>,
    host: String,
    port: u16,
    path: Option<String>,
    text: String,
) -> Watch {
    let source: Arc<dyn Discovery> = engine
        .options
        .discovery
        .clone()
        .unwrap_or_else(|| Arc::new(Dns::new(host, port)));
    let current = Arc::new(Mutex::new(BTreeSet::new()));
    let task = tokio::spawn(run(
        Arc::downgrade(engine),
        source,
        current.clone(),
        port,
        path.clone(),
        text,
    ));
    Watch {
        task,
        current,
        port,
        path,
    }
}

async fn run(
    engine: Weak<Engine>,
    source: Arc<dyn Discovery>,
    current: Arc<Mutex<BTreeSet<SocketAddr>>>,
    port: u16,
    path: Option<String>,
    text: String,
) {
    let mut retry = None;
    loop {
        let answer = source.addresses().await;
        let Some(engine) = engine.upgrade() else {
            return;
        };
        let refresh = engine.options.dns_refresh;
        let delay = match answer {
            Ok(list) => {
                retry = None;
                let new: BTreeSet<SocketAddr> = list
                    .into_iter()
                    .map(|a| {
                        if a.port() == 0 {
                            SocketAddr::new(a.ip(), port)
                        } else {
                            a
                        }
                    })
                    .collect();
                let old = current.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let (added, removed) = set::diff(&old, &new);
                for addr in removed {
                    debug!(%addr, "address gone");
                    let _ = engine.disconnect(&endpoint_for(addr, port, &path));
                    engine.emit(Event::Lost {
                        addr: addr.to_string(),
                    });
                }
                for addr in added {
                    debug!(%addr, "address found");
                    if let Err(e) = engine.connect(&endpoint_for(addr, port, &path)) {
                        warn!(%addr, error = %e, "cannot connect to a discovered address");
                    }
                    engine.emit(Event::Discovered {
                        addr: addr.to_string(),
                    });
                }
                *current.lock().unwrap_or_else(|e| e.into_inner()) = new;
                refresh
            }
            Err(e) => {
                // Not a hard error: the name may exist later. Retry sooner than a refresh,
                // backing off up to one.
                let delay = retry
                    .map_or(
                        engine.options.reconnect_interval,
                        |d: std::time::Duration| d * 2,
                    )
                    .min(refresh);
                retry = Some(delay);
                warn!(endpoint = %text, error = %e, "cannot resolve");
                engine.emit(Event::HandshakeFailed {
                    endpoint: text.clone(),
                    reason: format!("cannot resolve: {e}"),
                });
                delay
            }
        };
        drop(engine);
        tokio::time::sleep(delay).await;
    }
}
