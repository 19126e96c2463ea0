//! `dns://` and `mdns://` connects: keep one connect per address a discovery source
//! reports (see [`crate::discovery`]).

use std::collections::{BTreeSet, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::{Engine, Origin};
use crate::discovery::mdns::browse::{Browser, Filter};
use crate::discovery::mdns::daemon::Daemon;
use crate::discovery::{set, Change, Discovery, Dns};
use crate::monitor::{Event, Monitor};
use crate::{Endpoint, Host, Result};

/// A running discovery; dropping it stops it (the connects it made stay until
/// [`Watch::endpoints`] are disconnected).
#[derive(Debug)]
pub(crate) struct Watch {
    task: JoinHandle<()>,
    /// What its connects are tagged with.
    origin: Origin,
    /// The addresses connected to now.
    current: Arc<Mutex<BTreeSet<SocketAddr>>>,
    path: Option<String>,
}

impl Watch {
    /// The `tcp://` endpoints this watch connected to.
    pub(crate) fn endpoints(&self) -> Vec<Endpoint> {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        current
            .iter()
            .map(|a| endpoint_for(*a, &self.path))
            .collect()
    }

    /// The origin its connects carry.
    pub(crate) fn origin(&self) -> Origin {
        self.origin
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn endpoint_for(addr: SocketAddr, path: &Option<String>) -> Endpoint {
    Endpoint::Tcp {
        host: Host::Ip(addr.ip()),
        port: addr.port(),
        path: path.clone(),
    }
}

/// Starts following `host:port` for `engine` (through its `discovery` option, or DNS).
pub(crate) fn watch_dns(
    engine: &Arc<Engine>,
    host: String,
    port: u16,
    path: Option<String>,
    text: String,
) -> Watch {
    let discovery: Arc<dyn Discovery> = engine
        .options
        .discovery
        .clone()
        .unwrap_or_else(|| Arc::new(Dns::new(host, port)));
    let source = match discovery.changes() {
        Some(stream) => Source::Stream(stream),
        None => Source::Poll(Poll {
            discovery,
            refresh: engine.options.dns_refresh,
            first_retry: engine.options.reconnect_interval,
            known: BTreeSet::new(),
            pending: VecDeque::new(),
            due: None,
            retry: None,
        }),
    };
    spawn(engine, source, port, path, text)
}

/// Starts browsing for `mdns://name[/path]` for `engine`.
pub(crate) fn watch_mdns(
    engine: &Arc<Engine>,
    name: String,
    path: Option<String>,
    text: String,
) -> Result<Watch> {
    let daemon = Daemon::shared(&engine.options.mdns_interfaces)?;
    let filter = Filter {
        name,
        path: path.clone(),
        socket_type: engine.socket_type,
        node: engine.options.node_name(),
        curve: match &engine.options.security {
            crate::options::Security::CurveClient { server, .. } => Some(*server),
            _ => None,
        },
    };
    let source = Source::Mdns(Browser::new(daemon, filter));
    Ok(spawn(engine, source, 0, path, text))
}

fn spawn(
    engine: &Arc<Engine>,
    source: Source,
    port: u16,
    path: Option<String>,
    text: String,
) -> Watch {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let origin = Origin::Discovery(NEXT_ID.fetch_add(1, Ordering::Relaxed));
    let current = Arc::new(Mutex::new(BTreeSet::new()));
    // Subscribed before the task starts, so no failure of a link it makes is missed.
    let monitor = engine.monitor();
    let target = Target {
        origin,
        port,
        path: path.clone(),
        text,
    };
    let task = tokio::spawn(run(
        Arc::downgrade(engine),
        source,
        monitor,
        current.clone(),
        target,
    ));
    Watch {
        task,
        origin,
        current,
        path,
    }
}

/// Where a watch gets its changes.
enum Source {
    /// A [`Discovery`] asked again every refresh.
    Poll(Poll),
    /// A [`Discovery`] that pushes its changes.
    Stream(BoxStream<'static, io::Result<Change>>),
    /// The mDNS catalog.
    Mdns(Browser),
}

impl Source {
    /// The next change, or an error to report; `None` when the source ended.
    async fn next(&mut self) -> Option<io::Result<Change>> {
        match self {
            Source::Poll(poll) => Some(poll.next().await),
            Source::Stream(stream) => stream.next().await,
            Source::Mdns(browser) => browser.next().await.map(Ok),
        }
    }

    /// The link to `addr` failed (only mDNS does something with that).
    fn suspect(&mut self, addr: SocketAddr) {
        if let Source::Mdns(browser) = self {
            browser.suspect(addr);
        }
    }
}

/// Polls a [`Discovery`]: asks it, reports the difference from its last answer, waits a
/// refresh (or less after an error, growing up to a refresh).
struct Poll {
    discovery: Arc<dyn Discovery>,
    refresh: Duration,
    first_retry: Duration,
    known: BTreeSet<SocketAddr>,
    pending: VecDeque<Change>,
    /// When to ask next (`None`: now).
    due: Option<tokio::time::Instant>,
    retry: Option<Duration>,
}

impl Poll {
    async fn next(&mut self) -> io::Result<Change> {
        loop {
            if let Some(change) = self.pending.pop_front() {
                return Ok(change);
            }
            if let Some(due) = self.due {
                tokio::time::sleep_until(due).await;
            }
            let answer = self.discovery.addresses().await;
            let now = tokio::time::Instant::now();
            match answer {
                Ok(list) => {
                    self.retry = None;
                    self.due = Some(now + self.refresh);
                    let new: BTreeSet<SocketAddr> = list.into_iter().collect();
                    let (added, removed) = set::diff(&self.known, &new);
                    self.pending
                        .extend(removed.into_iter().map(Change::Removed));
                    self.pending.extend(added.into_iter().map(Change::Added));
                    self.known = new;
                }
                Err(e) => {
                    // Not a hard error: the name may exist later. Retry sooner than a
                    // refresh, backing off up to one.
                    let delay = self
                        .retry
                        .map_or(self.first_retry, |d| d * 2)
                        .min(self.refresh);
                    self.retry = Some(delay);
                    self.due = Some(now + delay);
                    return Err(e);
                }
            }
        }
    }
}

/// Where a watch's connects go and what they are tagged with.
struct Target {
    origin: Origin,
    /// For addresses given with port 0.
    port: u16,
    path: Option<String>,
    /// The `dns://` or `mdns://` endpoint, for logs and events.
    text: String,
}

async fn run(
    engine: Weak<Engine>,
    mut source: Source,
    mut monitor: Monitor,
    current: Arc<Mutex<BTreeSet<SocketAddr>>>,
    target: Target,
) {
    let Target {
        origin,
        port,
        path,
        text,
    } = target;
    let watches_links = matches!(source, Source::Mdns(_));
    loop {
        let change = tokio::select! {
            change = source.next() => change,
            Some(event) = monitor.next(), if watches_links => {
                if let Event::Disconnected { endpoint, .. } | Event::Retrying { endpoint, .. } = event {
                    let ours = current
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .iter()
                        .copied()
                        .find(|a| endpoint_for(*a, &path).to_string() == endpoint);
                    if let Some(addr) = ours {
                        source.suspect(addr);
                    }
                }
                continue;
            }
        };
        let Some(change) = change else {
            debug!(endpoint = %text, "discovery ended");
            return;
        };
        let Some(engine) = engine.upgrade() else {
            return;
        };
        let with_port = |a: SocketAddr| {
            if a.port() == 0 {
                SocketAddr::new(a.ip(), port)
            } else {
                a
            }
        };
        match change {
            Ok(Change::Added(addr)) => {
                let addr = with_port(addr);
                if !current
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(addr)
                {
                    continue;
                }
                debug!(%addr, endpoint = %text, "address found");
                if let Err(e) = engine.connect_as(endpoint_for(addr, &path), origin) {
                    warn!(%addr, error = %e, "cannot connect to a discovered address");
                }
                engine.emit(Event::Discovered {
                    addr: addr.to_string(),
                });
            }
            Ok(Change::Removed(addr)) => {
                let addr = with_port(addr);
                if !current
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&addr)
                {
                    continue;
                }
                debug!(%addr, endpoint = %text, "address gone");
                let _ = engine.disconnect_as(&endpoint_for(addr, &path), origin);
                engine.emit(Event::Lost {
                    addr: addr.to_string(),
                });
            }
            Err(e) => {
                warn!(endpoint = %text, error = %e, "cannot resolve");
                engine.emit(Event::HandshakeFailed {
                    endpoint: text.clone(),
                    reason: format!("cannot resolve: {e}"),
                });
            }
        }
    }
}
