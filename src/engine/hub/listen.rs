//! Shared listeners: sockets of one process that bind one `tcp://host:port` (or `ipc://`
//! file) share one listener, each claiming a path, and every stream a peer opens is routed to
//! the socket bound at its path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use futures::FutureExt;
use tracing::{debug, info};

use super::attach::*;
use crate::discovery::mdns::daemon::{Announcement, Daemon};
use crate::discovery::mdns::txt::Record;
use crate::driver::connect::{self, Connected};
use crate::driver::{IncomingStream, Shared};
use crate::engine::Engine;
use crate::monitor::{Event, MonitorSender};
use crate::options::Security;
use crate::proto::native::Reason;
use crate::transport::inproc::InprocHello;
use crate::transport::listener::{AcceptHandler, Listener};
use crate::transport::Connection;
use crate::warn_limit::warn_limited;
use crate::{Endpoint, Error, Host, Result};

/// A socket's claim on a bound endpoint; dropping it gives the path (and, for the last
/// path, the listener) back.
#[derive(Debug)]
pub(crate) struct Binding {
    endpoint: Endpoint,
    /// The endpoint as `bind` was given it (`tcp://127.0.0.1:0`, say).
    requested: Endpoint,
    claim: Claim,
    /// For `mdns://`: the announcement, withdrawn before the listener closes.
    announcement: Option<Announcement>,
}

#[derive(Debug)]
pub(super) enum Claim {
    /// A path on a shared byte-stream listener.
    Path {
        entry: Arc<SharedListener>,
        path: String,
    },
    /// An inproc name, ours alone.
    Inproc(Listener),
    /// Given back already.
    Released,
}

impl Binding {
    /// The endpoint actually bound (real port for `:0`, with the socket's path).
    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The endpoint as `bind` was given it.
    pub(crate) fn requested(&self) -> &Endpoint {
        &self.requested
    }

    /// Gives the claim back and, when it was the listener's last, waits until the
    /// listening socket is closed, so the address can be bound again at once.
    pub(crate) async fn close(mut self) {
        if let Some(announcement) = self.announcement.take() {
            announcement.withdraw().await;
        }
        let claim = std::mem::replace(&mut self.claim, Claim::Released);
        match claim {
            Claim::Path { entry, path } => {
                entry.paths().remove(&path);
                if let Ok(entry) = Arc::try_unwrap(entry) {
                    entry.close().await;
                }
            }
            Claim::Inproc(listener) => listener.close().await,
            Claim::Released => {}
        }
    }
}

impl Drop for Binding {
    fn drop(&mut self) {
        if let Claim::Path { entry, path } = &self.claim {
            entry.paths().remove(path);
        }
    }
}

/// A listener shared by every socket bound to its address, routing streams by path.
#[derive(Debug)]
pub(super) struct SharedListener {
    key: String,
    /// The security its greeting announces (the binding socket's, see
    /// [`Security::describe`]): every socket bound here must have the same.
    security: String,
    /// Dropping it stops accepting and ends its connections.
    listener: Option<Listener>,
    paths: Arc<Mutex<HashMap<String, Weak<Engine>>>>,
}

impl SharedListener {
    fn local_endpoint(&self) -> Endpoint {
        self.listener
            .as_ref()
            .map(|l| l.local_endpoint().clone())
            .unwrap_or(Endpoint::Inproc {
                name: String::new(),
            })
    }

    async fn close(mut self) {
        if let Some(listener) = self.listener.take() {
            listener.close().await;
        }
    }

    fn paths(&self) -> std::sync::MutexGuard<'_, HashMap<String, Weak<Engine>>> {
        self.paths.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for SharedListener {
    fn drop(&mut self) {
        let mut reg = listeners();
        if reg.get(&self.key).is_some_and(|w| w.strong_count() == 0) {
            reg.remove(&self.key);
        }
    }
}

pub(super) fn listeners() -> std::sync::MutexGuard<'static, HashMap<String, Weak<SharedListener>>> {
    static REG: OnceLock<Mutex<HashMap<String, Weak<SharedListener>>>> = OnceLock::new();
    REG.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// The listener address of an endpoint, without its path.
pub(super) fn address_key(endpoint: &Endpoint) -> Option<String> {
    match endpoint {
        Endpoint::Tcp { host, port, .. } => Some(format!("tcp://{host}:{port}")),
        Endpoint::Ipc { file, .. } => Some(format!("ipc://{}", file.display())),
        _ => None,
    }
}

pub(super) fn with_path(endpoint: &Endpoint, path: Option<String>) -> Endpoint {
    match endpoint.clone() {
        Endpoint::Tcp { host, port, .. } => Endpoint::Tcp { host, port, path },
        Endpoint::Ipc { file, .. } => Endpoint::Ipc { file, path },
        other => other,
    }
}

/// Binds `engine` at `endpoint`.
pub(crate) async fn bind(engine: &Arc<Engine>, endpoint: &Endpoint) -> Result<Binding> {
    match endpoint {
        Endpoint::Mdns { name, path } => {
            // An ephemeral TCP port, announced.
            let options = &engine.options;
            let address = Endpoint::Tcp {
                host: Host::Ip(options.mdns_listen),
                port: 0,
                path: path.clone(),
            };
            let mut binding = bind_address(engine, &address).await?;
            let Endpoint::Tcp { port, .. } = binding.endpoint else {
                unreachable!("a tcp:// bind is bound to a tcp:// endpoint");
            };
            let record = Record {
                name: name.clone(),
                path: path.clone(),
                socket_type: engine.socket_type,
                node: options.node_name(),
                // A CURVE server's public key, so that clients skip impostors before dialing.
                curve: match &options.security {
                    Security::CurveServer { keys } => Some(*keys.public()),
                    _ => None,
                },
            };
            let daemon = Daemon::shared(&options.mdns_interfaces)?;
            binding.announcement = Some(daemon.announce(&record, options.mdns_listen, port).await?);
            binding.requested = endpoint.clone();
            debug!(%endpoint, local = %binding.endpoint, "bound and announced");
            Ok(binding)
        }
        Endpoint::Dns { .. } => Err(Error::Io(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "a dns:// endpoint can only be connected to: bind a tcp:// address and publish it in DNS",
        ))),
        _ => bind_address(engine, endpoint).await,
    }
}

/// Binds `engine` at a `tcp://`, `ipc://` or `inproc://` endpoint.
pub(super) async fn bind_address(engine: &Arc<Engine>, endpoint: &Endpoint) -> Result<Binding> {
    let path = endpoint.path().unwrap_or("").to_owned();
    match endpoint {
        Endpoint::Inproc { name } => {
            let hello = InprocHello {
                socket_type: Some(engine.socket_type),
                identity: engine.options.identity.clone(),
            };
            let weak = Arc::downgrade(engine);
            let text = endpoint.to_string();
            let handler: AcceptHandler = Arc::new(move |conn, slot| {
                let (weak, text) = (weak.clone(), text.clone());
                async move {
                    drop(slot); // inproc has no greeting
                    if let (Some(engine), Connection::Inproc(conn)) = (weak.upgrade(), conn) {
                        let _ = attach_inproc(&engine, conn, text, None);
                    }
                }
                .boxed()
            });
            let listener = Listener::bind_with_hello(
                endpoint,
                engine.options.clone(),
                engine.monitor.clone(),
                hello,
                handler,
            )
            .await?;
            debug!(%name, "bound inproc");
            Ok(Binding {
                endpoint: endpoint.clone(),
                requested: endpoint.clone(),
                claim: Claim::Inproc(listener),
                announcement: None,
            })
        }
        Endpoint::Tcp { .. } | Endpoint::Ipc { .. } => {
            let wanted = address_key(endpoint).unwrap_or_default();
            let existing = match endpoint {
                Endpoint::Tcp { port: 0, .. } => None,
                _ => listeners().get(&wanted).and_then(Weak::upgrade),
            };
            let ours = engine.options.security.describe();
            if let Some(entry) = &existing {
                if entry.security != ours {
                    return Err(Error::AddrInUse {
                        endpoint: format!(
                            "{endpoint} is bound with {} security and this socket has {ours}: \
                             the listener greets before it knows which socket a peer wants, so \
                             every socket bound at one address must have the same security",
                            entry.security
                        ),
                    });
                }
            }
            if matches!(engine.options.security, Security::CurveServer { .. })
                && engine.options.curve_authorizer.is_none()
            {
                info!(
                    %endpoint,
                    "CURVE server without an authorizer: every client that completes the \
                     handshake is accepted (encryption without client authentication; see \
                     Options::curve_allow)"
                );
            }
            // A new listener reports `Listening` itself; joining one is reported here.
            let joined = existing.is_some();
            let entry = match existing {
                Some(entry) => entry,
                None => new_listener(engine, endpoint).await?,
            };
            {
                let mut paths = entry.paths();
                // (A new listener holds our own path already.)
                if joined && paths.get(&path).is_some_and(|w| w.strong_count() > 0) {
                    return Err(Error::AddrInUse {
                        endpoint: endpoint.to_string(),
                    });
                }
                paths.insert(path.clone(), Arc::downgrade(engine));
            }
            let local = entry.local_endpoint();
            if joined {
                engine.emit(Event::Listening {
                    endpoint: with_path(&local, endpoint.path().map(str::to_owned)).to_string(),
                });
            }
            Ok(Binding {
                requested: endpoint.clone(),
                endpoint: with_path(&local, endpoint.path().map(str::to_owned)),
                claim: Claim::Path { entry, path },
                announcement: None,
            })
        }
        Endpoint::Dns { .. } | Endpoint::Mdns { .. } => {
            unreachable!("bind() handles discovery endpoints")
        }
    }
}

pub(super) async fn new_listener(
    engine: &Arc<Engine>,
    endpoint: &Endpoint,
) -> Result<Arc<SharedListener>> {
    let paths: Arc<Mutex<HashMap<String, Weak<Engine>>>> = Arc::default();
    let options = engine.options.clone();
    // What happens on the listener (Accepted, HandshakeFailed) concerns every socket bound
    // at its address, whichever bound first and whether or not that one is still there.
    let routes = paths.clone();
    let monitor = MonitorSender::relay(move |event| {
        if let Event::HandshakeFailed { .. } = &event {
            // Failed before any socket was known: counted once, before anyone hears of it.
            count_failure(&routes);
        }
        let engines: Vec<Arc<Engine>> = routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        for engine in engines {
            engine.emit(event.clone());
        }
    });
    let routes = paths.clone();
    let text = endpoint.to_string();
    let listener_monitor = monitor.clone();
    let handler: AcceptHandler = Arc::new(move |conn, slot| {
        let (options, monitor, routes, text) = (
            options.clone(),
            monitor.clone(),
            routes.clone(),
            text.clone(),
        );
        async move {
            let Connection::Stream { io, peer } = conn else {
                return;
            };
            let accepted = connect::accept(io, peer.clone(), &text, &options, &monitor).await;
            // The greeting is over: the listener may accept the next one. A CURVE handshake
            // (an X25519 operation per step for us) keeps its slot until it is done, so
            // `max_handshakes` bounds the CURVE handshakes in progress too.
            let curve = options.security.is_curve() && matches!(accepted, Some(Connected::Zmtp { .. }));
            let mut slot = Some(slot);
            if !curve {
                drop(slot.take());
            }
            match accepted {
                Some(Connected::Native(shared)) => serve_session(shared, peer, routes).await,
                Some(Connected::Zmtp { io, greeting }) => {
                    // A ZeroMQ peer has no paths: it talks to the default socket.
                    let engine = routes
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get("")
                        .and_then(Weak::upgrade);
                    match engine {
                        Some(engine) => {
                            // Held until the peer is gone, so that it counts against the
                            // listener's `max_connections` like a native session does.
                            if let Ok(handles) = attach_zmtp(&engine, io, &greeting, peer, None) {
                                drop(engine);
                                let _ = handles.active.await; // the CURVE handshake ended
                                drop(slot.take());
                                let _ = handles.gone.await;
                            }
                        }
                        None => {
                            warn_limited!(%peer, "ZMTP peer, but no socket is bound at this address's default path");
                            monitor.emit(Event::HandshakeFailed {
                                endpoint: text.clone(),
                                reason: format!(
                                    "{peer}: a ZeroMQ peer needs a socket bound without a path here"
                                ),
                            });
                        }
                    }
                }
                None => {}
            }
        }
        .boxed()
    });
    // The binding socket is routed to already, so it hears `Listening` through the relay.
    paths.lock().unwrap_or_else(|e| e.into_inner()).insert(
        endpoint.path().unwrap_or("").to_owned(),
        Arc::downgrade(engine),
    );
    let listener = Listener::bind_with_hello(
        &with_path(endpoint, None),
        engine.options.clone(),
        listener_monitor,
        InprocHello::default(),
        handler,
    )
    .await?;
    let key = address_key(listener.local_endpoint()).unwrap_or_default();
    let entry = Arc::new(SharedListener {
        key: key.clone(),
        security: engine.options.security.describe(),
        listener: Some(listener),
        paths,
    });
    listeners().insert(key, Arc::downgrade(&entry));
    Ok(entry)
}

/// Counts a handshake that failed on a shared listener before any socket was known (its
/// greeting, a native connection's CURVE handshake, a connection over `max_connections`)
/// once: at the socket bound at the address's default path, else at the one with the first
/// path.
fn count_failure(routes: &Mutex<HashMap<String, Weak<Engine>>>) {
    let served = {
        let routes = routes.lock().unwrap_or_else(|e| e.into_inner());
        routes
            .iter()
            .filter_map(|(path, engine)| Some((path.clone(), engine.upgrade()?)))
            .min_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, engine)| engine)
    };
    if let Some(engine) = served {
        engine.links.failed();
    }
}

/// Holds one handle of a session; gives it back when dropped (also when the task holding
/// it is aborted).
pub(super) struct HandleGuard(Arc<Shared>);

impl Drop for HandleGuard {
    fn drop(&mut self) {
        self.0.lock().remove_handle();
    }
}

/// Routes every stream the peer opens on an accepted session to the socket bound at its
/// path, until the session ends.
pub(super) async fn serve_session(
    shared: Arc<Shared>,
    peer: String,
    routes: Arc<Mutex<HashMap<String, Weak<Engine>>>>,
) {
    let guard = HandleGuard(shared);
    while let Some(incoming) = next_incoming(&guard.0).await {
        let engine = routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&incoming.path)
            .and_then(Weak::upgrade);
        match engine {
            Some(engine) => attach_incoming(&engine, &guard.0, incoming, &peer),
            None => {
                debug!(path = %incoming.path, "no socket at path");
                guard.0.lock().core.reject(
                    incoming.id,
                    Reason::NO_SUCH_PATH,
                    &format!("no socket is bound at path {:?} here", incoming.path),
                );
                guard.0.lock().wake_driver();
            }
        }
    }
}

pub(super) async fn next_incoming(shared: &Arc<Shared>) -> Option<IncomingStream> {
    std::future::poll_fn(|cx| {
        let mut inner = shared.lock();
        if let Some(incoming) = inner.incoming.pop_front() {
            return std::task::Poll::Ready(Some(incoming));
        }
        if inner.closed_error().is_some() {
            return std::task::Poll::Ready(None);
        }
        inner.wait_incoming(cx.waker());
        std::task::Poll::Pending
    })
    .await
}
