//! Where sockets meet connections: shared listeners, the pool of outgoing connections, and
//! attaching streams and inproc pipes to engines as peers.
//!
//! Sockets of one process that bind the same `tcp://host:port` (or `ipc://` file) share one
//! listener; each claims a path (`/events`, `/rpc`; none is the default socket). Sockets of
//! one process that connect to the same address share one native session: each socket's
//! link is one stream on it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use futures::FutureExt;
use tracing::{debug, info, warn};

use super::peer::{Link, Peer, Phase, Reassembly};
use super::Engine;
use crate::discovery::mdns::daemon::{Announcement, Daemon};
use crate::discovery::mdns::txt::Record;
use crate::driver::connect::{self, Connected};
use crate::driver::{zmtp, IncomingStream, Shared};
use crate::monitor::{Event, MonitorSender};
use crate::options::Security;
use crate::pattern::PeerId;
use crate::proto::native::Reason;
use crate::transport::dialer::{Connect, Dialer, Established, HandshakeWith};
use crate::transport::inproc::{InprocConn, InprocHello};
use crate::transport::listener::{AcceptHandler, Listener};
use crate::transport::shared::SharedStream;
use crate::transport::{ipc, tcp, ByteStream, Connection};
use crate::{Endpoint, Error, Host, Result, SocketType};

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
enum Claim {
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
struct SharedListener {
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

fn listeners() -> std::sync::MutexGuard<'static, HashMap<String, Weak<SharedListener>>> {
    static REG: OnceLock<Mutex<HashMap<String, Weak<SharedListener>>>> = OnceLock::new();
    REG.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// The listener address of an endpoint, without its path.
fn address_key(endpoint: &Endpoint) -> Option<String> {
    match endpoint {
        Endpoint::Tcp { host, port, .. } => Some(format!("tcp://{host}:{port}")),
        Endpoint::Ipc { file, .. } => Some(format!("ipc://{}", file.display())),
        _ => None,
    }
}

fn with_path(endpoint: &Endpoint, path: Option<String>) -> Endpoint {
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
async fn bind_address(engine: &Arc<Engine>, endpoint: &Endpoint) -> Result<Binding> {
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

async fn new_listener(engine: &Arc<Engine>, endpoint: &Endpoint) -> Result<Arc<SharedListener>> {
    let paths: Arc<Mutex<HashMap<String, Weak<Engine>>>> = Arc::default();
    let options = engine.options.clone();
    // What happens on the listener (Accepted, HandshakeFailed) concerns every socket bound
    // at its address, whichever bound first and whether or not that one is still there.
    let routes = paths.clone();
    let monitor = MonitorSender::relay(move |event| {
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
                            warn!(%peer, "ZMTP peer, but no socket is bound at this address's default path");
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

/// Holds one handle of a session; gives it back when dropped (also when the task holding
/// it is aborted).
struct HandleGuard(Arc<Shared>);

impl Drop for HandleGuard {
    fn drop(&mut self) {
        self.0.lock().remove_handle();
    }
}

/// Routes every stream the peer opens on an accepted session to the socket bound at its
/// path, until the session ends.
async fn serve_session(
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

async fn next_incoming(shared: &Arc<Shared>) -> Option<IncomingStream> {
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

/// Attaches a stream a peer opened to `engine`, or refuses it.
fn attach_incoming(
    engine: &Arc<Engine>,
    shared: &Arc<Shared>,
    incoming: IncomingStream,
    peer: &str,
) {
    let local = engine.socket_type;
    let remote = SocketType::from_code(incoming.socket_type);
    let refusal = match remote {
        Some(remote) if local.is_compatible(remote) => None,
        Some(remote) => Some((
            Reason::INCOMPATIBLE,
            local.as_str().to_owned(),
            Error::IncompatiblePeer { local, remote },
        )),
        None => Some((
            Reason::INCOMPATIBLE,
            local.as_str().to_owned(),
            Error::Protocol(format!("unknown socket type code {}", incoming.socket_type)),
        )),
    };
    let mut st = engine.lock();
    let refusal = refusal.or_else(|| {
        (st.closing).then(|| (Reason::SHUTDOWN, "socket closing".to_owned(), Error::Closed))
    });
    let refusal = refusal.or_else(|| {
        (local == SocketType::Pair && !st.peers.is_empty()).then(|| {
            (
                Reason::PAIR_TAKEN,
                "this PAIR socket already has its peer".to_owned(),
                Error::Refused {
                    reason: "PAIR socket already has a peer".into(),
                },
            )
        })
    });
    if let Some((reason, text, error)) = refusal {
        warn!(%peer, %error, "refusing stream");
        engine.emit(Event::HandshakeFailed {
            endpoint: peer.to_owned(),
            reason: error.to_string(),
        });
        let mut inner = shared.lock();
        inner.core.reject(incoming.id, reason, &text);
        inner.wake_driver();
        return;
    }
    shared.lock().add_handle();
    let awaiting = local == SocketType::Pub;
    let phase = if awaiting {
        Phase::AwaitingSubscriptions
    } else {
        Phase::Active
    };
    let identity = incoming.identity.clone();
    let id = engine.add_peer(&mut st, |id| {
        let mut p = Peer::new(
            id,
            local,
            Link::Native {
                session: shared.clone(),
                stream: incoming.id,
                reading: Reassembly::default(),
            },
            phase,
            peer.to_owned(),
        );
        p.remote_type = remote;
        p.identity = identity.clone();
        p
    });
    if !awaiting {
        if let Some(p) = st.peers.get_mut(&id) {
            accept_stream(p, engine);
        }
    }
}

/// Accepts the native stream of `peer`, telling the opener our type and identity.
///
/// An inproc subscriber has no stream to accept: it is sent the acknowledgement it waits
/// for (a snapshot frame, see `subscription`) instead.
pub(crate) fn accept_stream(peer: &mut Peer, engine: &Engine) {
    if let Link::Inproc(_) = &peer.link {
        peer.enqueue_now(super::subscription::acknowledgement());
        let _ = peer.flush(&engine.signal, false);
        return;
    }
    if let Link::Native {
        session, stream, ..
    } = &peer.link
    {
        let identity = engine.options.identity.clone().unwrap_or_default();
        let mut inner = session.lock();
        inner
            .core
            .accept(*stream, engine.socket_type.code(), identity);
        inner.wake_driver();
    }
}

/// Attaches an inproc connection, checking the socket types.
fn attach_inproc(
    engine: &Arc<Engine>,
    conn: InprocConn,
    endpoint: String,
    dialed: Option<&DialedPeer>,
) -> Result<PeerHandles> {
    let local = engine.socket_type;
    if let Some(remote) = conn.peer.socket_type {
        if !local.is_compatible(remote) {
            let error = Error::IncompatiblePeer { local, remote };
            warn!(%endpoint, %error, "refusing inproc peer");
            return Err(error);
        }
    }
    let mut st = engine.lock();
    if st.closing {
        return Err(Error::Closed);
    }
    if local == SocketType::Pair && !st.peers.is_empty() {
        return Err(Error::Refused {
            reason: "PAIR socket already has a peer".into(),
        });
    }
    let (active_tx, active_rx) = tokio::sync::oneshot::channel();
    let (gone_tx, gone_rx) = tokio::sync::oneshot::channel();
    let remote = conn.peer.socket_type;
    let identity = conn.peer.identity.clone().unwrap_or_default();
    // As over native streams: a publisher counts a subscriber once it has its
    // subscriptions, and a subscriber counts a publisher once it acknowledged them.
    let phase = match (local, remote) {
        (SocketType::Pub, Some(SocketType::Sub)) => Phase::AwaitingSubscriptions,
        (SocketType::Sub, _) => Phase::Opening,
        _ => Phase::Active,
    };
    let peer_id = engine.add_peer(&mut st, |id| {
        let mut p = Peer::new(id, local, Link::Inproc(conn), phase, endpoint.clone());
        p.remote_type = remote;
        p.identity = identity.clone();
        p.on_gone = Some(gone_tx);
        p.dialed = true;
        p
    });
    drop(active_tx);
    remember(dialed, peer_id);
    Ok(PeerHandles {
        active: active_rx,
        gone: gone_rx,
    })
}

/// Receivers for a new peer's fate.
struct PeerHandles {
    active: tokio::sync::oneshot::Receiver<Result<()>>,
    gone: tokio::sync::oneshot::Receiver<Option<Error>>,
}

/// The peer a dialer's current connection created, so that `disconnect` can drop it.
pub(crate) type DialedPeer = Arc<Mutex<Option<PeerId>>>;

/// Records a dialed peer. Called with the engine locked, right after `add_peer`: once the
/// lock is released the peer may become active and be counted, and a `disconnect` that
/// follows must find it.
fn remember(dialed: Option<&DialedPeer>, peer: PeerId) {
    if let Some(dialed) = dialed {
        *dialed.lock().unwrap_or_else(|e| e.into_inner()) = Some(peer);
    }
}

/// Runs ZMTP on a connection whose greeting showed a plain ZeroMQ peer, as a peer of
/// `engine`; the peer is usable once its READY arrived.
fn attach_zmtp(
    engine: &Arc<Engine>,
    io: ByteStream,
    greeting: &crate::proto::greeting::Greeting,
    peer: String,
    dialed: Option<&DialedPeer>,
) -> Result<PeerHandles> {
    let options = &engine.options;
    let config = crate::proto::zmtp::ZmtpConfig {
        socket_type: engine.socket_type,
        identity: options.identity.clone().unwrap_or_default(),
        peer_minor: greeting.version.1,
        max_message_size: options.max_message_size,
        max_message_frames: options.max_message_frames,
        heartbeat_interval: options.heartbeat_interval,
        heartbeat_timeout: options.heartbeat_timeout,
        handshake_timeout: options.handshake_timeout,
        zocket_marker: options.native,
        recv_limit: options.recv_hwm,
        // One link per connection: bounded by the stream's window and the connection's.
        recv_bytes_limit: (options.stream_window as usize).min(options.connection_window),
    };
    let local = engine.socket_type;
    let mut st = engine.lock();
    if local == SocketType::Pair {
        engine.absorb(&mut st); // a peer that has just gone frees the place
    }
    if local == SocketType::Pair && !st.peers.is_empty() && !st.closing {
        // One peer on every transport: libzmq closes a second PAIR's connection too.
        drop(st);
        let error = Error::Refused {
            reason: "PAIR socket already has a peer".into(),
        };
        if dialed.is_none() {
            // (A dialer reports its own handshake failures.)
            warn!(%peer, %error, "refusing ZMTP peer");
            engine.emit(Event::HandshakeFailed {
                endpoint: peer.clone(),
                reason: error.to_string(),
            });
        }
        refuse_zmtp(
            io,
            "this PAIR socket already has its peer",
            engine.options.handshake_timeout,
        );
        return Err(error);
    }
    let shared = zmtp::spawn(
        SharedStream::new(io),
        config,
        crate::driver::curve_setup(options),
        peer.clone(),
    );
    let (active_tx, active_rx) = tokio::sync::oneshot::channel();
    let (gone_tx, gone_rx) = tokio::sync::oneshot::channel();
    if st.closing {
        shared.lock().core.close();
        shared.lock().wake_driver();
        return Err(Error::Closed);
    }
    let peer_id = engine.add_peer(&mut st, |id| {
        let mut p = Peer::new(id, local, Link::Zmtp(shared.clone()), Phase::Opening, peer);
        // A dialer waits on these and reports the link's end; an accepted peer's end is
        // reported by the engine (`remove_peer`), and its listener task waits on `on_gone`
        // so that the connection counts against `max_connections` while it lives.
        p.on_active = Some(active_tx);
        p.on_gone = Some(gone_tx);
        p.dialed = dialed.is_some();
        p
    });
    remember(dialed, peer_id);
    Ok(PeerHandles {
        active: active_rx,
        gone: gone_rx,
    })
}

/// Tells a ZMTP peer we refuse it with an ERROR command (its greeting is done; libzmq
/// records the reason), then closes the connection; gives up after `limit`.
fn refuse_zmtp(mut io: ByteStream, reason: &str, limit: std::time::Duration) {
    use tokio::io::AsyncWriteExt;
    let mut error = bytes::BytesMut::new();
    crate::proto::zmtp::command::Command::Error(reason.to_owned()).encode(&mut error);
    tokio::spawn(async move {
        let _ = tokio::time::timeout(limit, async {
            io.write_all(&error).await?;
            io.shutdown().await
        })
        .await;
    });
}

// ----- dialing -----

/// Starts dialing `endpoint` for `engine`.
pub(crate) fn dial(engine: &Arc<Engine>, endpoint: Endpoint, dialed: DialedPeer) -> Result<Dialer> {
    let weak = Arc::downgrade(engine);
    let options = engine.options.clone();
    let monitor = engine.monitor.clone();
    match &endpoint {
        Endpoint::Inproc { .. } => {
            let hello = InprocHello {
                socket_type: Some(engine.socket_type),
                identity: engine.options.identity.clone(),
            };
            let text = endpoint.to_string();
            let handshake: crate::transport::dialer::Handshake = Box::new(move |conn| {
                let (weak, text, dialed) = (weak.clone(), text.clone(), dialed.clone());
                async move {
                    let engine = weak.upgrade().ok_or(Error::Closed)?;
                    let Connection::Inproc(conn) = conn else {
                        return Err(Error::Closed);
                    };
                    let handles = attach_inproc(&engine, conn, text.clone(), Some(&dialed))?;
                    Ok(Established {
                        peer: text,
                        closed: handles.gone.map(|r| r.unwrap_or(None)).boxed(),
                    })
                }
                .boxed()
            });
            Dialer::spawn_with_hello(endpoint, options, monitor, hello, handshake)
        }
        Endpoint::Tcp { .. } | Endpoint::Ipc { .. } => {
            let mut key = address_key(&endpoint).unwrap_or_default();
            if !options.native {
                key.push_str("#zmtp"); // never shares a native session
            }
            // Keyed by security too: sockets with the same keys share one encrypted
            // connection, sockets with other keys (or none) never do.
            key.push_str(&options.security.pool_key());
            let path = endpoint.path().unwrap_or("").to_owned();
            let target = endpoint.clone();
            let opts = options.clone();
            let connect: Connect<Dialed> = Box::new(move || {
                let (key, target, opts) = (key.clone(), target.clone(), opts.clone());
                async move { pooled_session(&key, &target, &opts).await }.boxed()
            });
            let peer_name = endpoint.to_string();
            let socket_type = engine.socket_type;
            let handshake: HandshakeWith<Dialed> = Box::new(move |conn| {
                let (weak, path, peer_name, dialed) = (
                    weak.clone(),
                    path.clone(),
                    peer_name.clone(),
                    dialed.clone(),
                );
                async move {
                    let Some(engine) = weak.upgrade() else {
                        if let Dialed::Native(shared) = conn {
                            shared.lock().remove_handle();
                        }
                        return Err(Error::Closed);
                    };
                    let handles = match conn {
                        Dialed::Native(shared) => {
                            attach_outgoing(&engine, shared, &path, &peer_name, &dialed)?
                        }
                        Dialed::Zmtp { io, greeting } => {
                            attach_zmtp(&engine, io, &greeting, peer_name.clone(), Some(&dialed))?
                        }
                        Dialed::Failed(e) => return Err(e),
                    };
                    // Until the link is usable, a failed, timed-out or abandoned attempt
                    // takes its peer away with it (else each retry would leave one).
                    let attempt = Attempt {
                        engine: Arc::downgrade(&engine),
                        dialed: dialed.clone(),
                        pending: true,
                    };
                    drop(engine);
                    // A publisher accepts a subscriber's stream once it has the Sub's
                    // subscriptions, which are sent when the Sub starts receiving (see
                    // `Engine::start_receiving`): that can be any time later, so a Sub's
                    // link counts as connected once opened. A refusal still ends it.
                    if socket_type != SocketType::Sub {
                        handles.active.await.map_err(|_| Error::Closed)??;
                    }
                    attempt.succeeded();
                    Ok(Established {
                        peer: peer_name,
                        closed: handles.gone.map(|r| r.unwrap_or(None)).boxed(),
                    })
                }
                .boxed()
            });
            Ok(Dialer::spawn_custom(
                endpoint, options, monitor, connect, handshake,
            ))
        }
        Endpoint::Dns { .. } | Endpoint::Mdns { .. } => Err(Error::Io(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "a dns:// or mdns:// endpoint is followed by a discovery, not dialed",
        ))),
    }
}

/// A dial attempt whose peer is in the engine but not usable yet. Dropped before
/// [`succeeded`](Self::succeeded) (the link was refused, the handshake timed out, or the
/// dialer went away) while that peer is still opening, it removes it: a timed-out native
/// stream is reset, a ZMTP connection ended.
struct Attempt {
    engine: Weak<Engine>,
    dialed: DialedPeer,
    /// Cleared when the link is usable.
    pending: bool,
}

impl Attempt {
    /// The link is usable: the peer stays.
    fn succeeded(mut self) {
        self.pending = false;
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.pending {
            return;
        }
        let Some(engine) = self.engine.upgrade() else {
            return;
        };
        let mut st = engine.lock();
        let mut dialed = self.dialed.lock().unwrap_or_else(|e| e.into_inner());
        // A peer that became usable stays, even if this attempt never saw it (its task was
        // aborted by a close right after the socket sent to it): only one still opening is
        // half made.
        let opening =
            dialed.filter(|id| st.peers.get(id).is_some_and(|p| p.phase == Phase::Opening));
        if let Some(peer) = opening {
            *dialed = None;
            drop(dialed);
            debug!(?peer, "dial attempt abandoned; removing its half-open peer");
            engine.remove_peer(&mut st, peer, Some(Error::Timeout));
        }
    }
}

/// Opens a stream for `engine` on `shared` (whose handle the new peer takes over).
fn attach_outgoing(
    engine: &Arc<Engine>,
    shared: Arc<Shared>,
    path: &str,
    endpoint: &str,
    dialed: &DialedPeer,
) -> Result<PeerHandles> {
    let identity = engine.options.identity.clone().unwrap_or_default();
    let opened = shared
        .lock()
        .core
        .open(engine.socket_type.code(), path, &identity);
    let stream = match opened {
        Ok(stream) => stream,
        Err(e) => {
            shared.lock().remove_handle();
            return Err(Error::Refused {
                reason: format!("cannot open a stream: {e:?}"),
            });
        }
    };
    shared.lock().wake_driver();
    let (active_tx, active_rx) = tokio::sync::oneshot::channel();
    let (gone_tx, gone_rx) = tokio::sync::oneshot::channel();
    let mut st = engine.lock();
    if st.closing {
        let mut inner = shared.lock();
        inner.core.release(stream);
        inner.remove_handle();
        return Err(Error::Closed);
    }
    let local = engine.socket_type;
    let peer_id = engine.add_peer(&mut st, |id| {
        let mut p = Peer::new(
            id,
            local,
            Link::Native {
                session: shared.clone(),
                stream,
                reading: Reassembly::default(),
            },
            Phase::Opening,
            endpoint.to_owned(),
        );
        p.on_active = Some(active_tx);
        p.on_gone = Some(gone_tx);
        p.dialed = true;
        p
    });
    remember(Some(dialed), peer_id);
    Ok(PeerHandles {
        active: active_rx,
        gone: gone_rx,
    })
}

type PoolSlot = Arc<tokio::sync::Mutex<Weak<Shared>>>;

fn pool() -> std::sync::MutexGuard<'static, HashMap<String, PoolSlot>> {
    static POOL: OnceLock<Mutex<HashMap<String, PoolSlot>>> = OnceLock::new();
    POOL.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// A dial's use of a pool entry; when it ends, the entry goes if nobody else uses it and
/// it holds no live session.
struct PoolUser {
    key: String,
    slot: Option<PoolSlot>,
}

impl Drop for PoolUser {
    fn drop(&mut self) {
        drop(self.slot.take());
        forget_if_unused(&self.key);
    }
}

/// Removes the pool's entry for `key` when no dial is using it (waiting for it, or holding
/// it) and its session is gone or over.
fn forget_if_unused(key: &str) {
    let mut pool = pool();
    let Some(slot) = pool.get(key) else {
        return;
    };
    // The map's own reference only: nobody dials (clones are taken under the map's lock).
    if Arc::strong_count(slot) > 1 {
        return;
    }
    let Ok(current) = slot.try_lock() else {
        return;
    };
    let live = current
        .upgrade()
        .is_some_and(|shared| shared.lock().closed_error().is_none());
    drop(current);
    if !live {
        pool.remove(key);
    }
}

/// Waits until the pooled session `shared` is over (its driver has exited), then drops its
/// pool entry unless a newer session or a dial uses it.
async fn forget_when_over(key: String, shared: Weak<Shared>) {
    std::future::poll_fn(|cx| {
        let Some(shared) = shared.upgrade() else {
            return std::task::Poll::Ready(());
        };
        let mut inner = shared.lock();
        if inner.is_finished() {
            return std::task::Poll::Ready(());
        }
        inner.wait_closed(cx.waker());
        std::task::Poll::Pending
    })
    .await;
    forget_if_unused(&key);
}

/// The addresses the pool holds an entry for.
#[cfg(test)]
fn pool_keys() -> Vec<String> {
    pool().keys().cloned().collect()
}

/// A connection made for a socket's link.
enum Dialed {
    /// A stream will be opened on this (possibly shared) native session.
    Native(Arc<Shared>),
    /// The peer speaks plain ZMTP: the connection is this link's alone.
    Zmtp {
        io: ByteStream,
        greeting: crate::proto::greeting::Greeting,
    },
    /// The connection was made but its greeting failed with this error.
    Failed(Error),
}

/// The live native session to `target`'s address, shared by every socket of this process
/// that connects there; dials one when there is none (the caller owns one handle of it).
/// A ZeroMQ peer's connection is not shared: it comes back as [`Dialed::Zmtp`].
async fn pooled_session(key: &str, target: &Endpoint, options: &crate::Options) -> Result<Dialed> {
    let user = PoolUser {
        key: key.to_owned(),
        slot: Some(pool().entry(key.to_owned()).or_default().clone()),
    };
    // One dial at a time per address; the others then share its result. (Declared after
    // `user`, so released before `user` looks whether the entry can go.)
    let mut current = match &user.slot {
        Some(slot) => slot.clone().lock_owned().await,
        None => return Err(Error::Closed),
    };
    if let Some(shared) = current.upgrade() {
        let mut inner = shared.lock();
        if inner.closed_error().is_none() {
            inner.add_handle();
            drop(inner);
            return Ok(Dialed::Native(shared));
        }
    }
    let limit = options.connect_timeout;
    let (io, peer) = match target {
        Endpoint::Tcp { host, port, .. } => {
            let (stream, addr) = tcp::dial(host, *port, options).await?;
            (ByteStream::Tcp(stream), addr.to_string())
        }
        Endpoint::Ipc { file, .. } => {
            let stream = tokio::time::timeout(limit, ipc::connect(file))
                .await
                .map_err(|_| Error::Timeout)??;
            (ByteStream::Ipc(stream), format!("ipc://{}", file.display()))
        }
        _ => return Err(Error::Closed),
    };
    // A connection made whose greeting failed (a security mismatch, say) is a failed
    // handshake, reported as one, not a failed dial.
    let connected = match connect::dial(io, peer, options).await {
        Ok(connected) => connected,
        Err(e @ (Error::Protocol(_) | Error::Timeout | Error::Refused { .. })) => {
            return Ok(Dialed::Failed(e))
        }
        Err(e) => return Err(e),
    };
    match connected {
        Connected::Native(shared) => {
            *current = Arc::downgrade(&shared);
            tokio::spawn(forget_when_over(key.to_owned(), Arc::downgrade(&shared)));
            Ok(Dialed::Native(shared))
        }
        Connected::Zmtp { io, greeting } => Ok(Dialed::Zmtp { io, greeting }),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::{Bytes, BytesMut};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::time::timeout;

    use super::*;
    use crate::proto::greeting::{Greeting, GREETING_LEN};
    use crate::proto::zmtp::command::{Command, Ready};
    use crate::transport::test_util::{event_where, tasks_back_to, WAIT};
    use crate::{Message, Options};

    /// Quick redials and a short handshake, so that a test sees several attempts.
    fn hasty() -> Options {
        Options::new()
            .handshake_timeout(Duration::from_millis(100))
            .reconnect_interval(Duration::from_millis(5))
            .reconnect_interval_max(Duration::from_millis(20))
    }

    /// Reads and discards until the peer closes.
    async fn drain(mut s: TcpStream) {
        let mut buf = vec![0u8; 64 * 1024];
        while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
    }

    #[tokio::test]
    async fn a_dial_whose_stream_is_never_accepted_leaves_no_peer_behind() {
        // Greets as a zocket peer and says HELLO, then never answers: the stream OPEN
        // stays unanswered while the session itself is fine.
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = server.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = server.accept().await {
                tokio::spawn(async move {
                    let mut theirs = [0u8; GREETING_LEN];
                    let mut hello = BytesMut::new();
                    crate::proto::native::frame::Frame::Hello(crate::proto::native::Hello {
                        instance: [7; 16],
                        stream_window: 1 << 20,
                        max_streams: 256,
                        max_message_size: 1 << 20,
                    })
                    .encode(&mut hello);
                    if s.read_exact(&mut theirs).await.is_ok()
                        && s.write_all(&Greeting::zocket().encode()).await.is_ok()
                        && s.write_all(&hello).await.is_ok()
                    {
                        drain(s).await;
                    }
                });
            }
        });
        let engine = Engine::new(SocketType::Push, hasty());
        let mut events = engine.monitor();
        engine.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
        for _ in 0..6 {
            event_where(&mut events, |e| matches!(e, Event::HandshakeFailed { .. })).await;
        }
        // At most the attempt in progress is there.
        let peers = engine.lock().peers.len();
        assert!(peers <= 1, "{peers} peers after six timed-out handshakes");
        engine.close().await;
    }

    /// Sends 64 KiB messages until `push` stops taking them (the peer reads nothing, so
    /// the kernel's buffers and then ours fill up); returns how many bytes it took.
    async fn fill(push: &mut crate::Push) -> usize {
        let payload = Bytes::from(vec![7u8; 64 * 1024]);
        let mut sent = 0;
        for _ in 0..2_000 {
            let send = push.send(Message::from(vec![payload.clone()]));
            match timeout(Duration::from_millis(200), send).await {
                Ok(done) => done.unwrap(),
                Err(_) => return sent, // full
            }
            sent += payload.len();
        }
        panic!("{sent} bytes were taken by a peer that reads nothing");
    }

    /// Reads everything until the end of the stream; how many bytes came.
    async fn read_to_end(s: &mut TcpStream) -> usize {
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0;
        loop {
            match timeout(WAIT, s.read(&mut buf))
                .await
                .expect("no end of stream")
            {
                Ok(0) | Err(_) => return total,
                Ok(n) => total += n,
            }
        }
    }

    /// A socket closed with `linger` cuts a ZMTP peer that reads nothing off once the
    /// linger time is over: what it still held is discarded, the connection closed.
    #[tokio::test]
    async fn after_the_linger_time_a_zmtp_peer_that_reads_nothing_is_cut_off() {
        let baseline = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = server.local_addr().unwrap().port();
        let mut push = crate::Push::with_options(
            Options::new()
                .native(false)
                .linger(Some(Duration::from_millis(100))),
        );
        push.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
        let (mut raw, _) = timeout(WAIT, server.accept()).await.unwrap().unwrap();
        // A ZMTP PULL that greets, says READY, then reads nothing more.
        let mut theirs = [0u8; GREETING_LEN];
        raw.read_exact(&mut theirs).await.unwrap();
        let zmtp = Greeting {
            native: None,
            ..Greeting::zocket()
        };
        raw.write_all(&zmtp.encode()).await.unwrap();
        let mut ready = BytesMut::new();
        Command::Ready(Ready {
            socket_type: SocketType::Pull,
            identity: Bytes::new(),
        })
        .encode(&mut ready);
        raw.write_all(&ready).await.unwrap();
        timeout(WAIT, push.wait_for_peers(1))
            .await
            .unwrap()
            .unwrap();

        let sent = fill(&mut push).await;
        timeout(WAIT, push.close()).await.unwrap();
        // The connection's driver is gone (without the cut it would wait for the peer to
        // read forever)...
        tasks_back_to(baseline).await;
        // ...so the peer gets what the kernel had taken, then the end: not everything.
        let got = read_to_end(&mut raw).await;
        assert!(
            got < sent,
            "the peer got all {sent} bytes: nothing was discarded"
        );
    }

    /// The same over the native wire: once the linger time is over, the stream of a socket
    /// whose peer reads nothing is reset, even though another socket still uses the
    /// connection (a finished stream would hold its data as long as the connection lives).
    #[test]
    fn after_the_linger_time_a_native_peer_that_reads_nothing_is_cut_off() {
        // The reader lives in a runtime of its own, so this one's tasks are the writer's.
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let reader = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let pull = crate::Pull::new();
                let ep = pull.bind("tcp://127.0.0.1:0").await.unwrap();
                port_tx.send(ep.to_string()).unwrap();
                let _ = stop_rx.await; // never reads
                drop(pull);
            });
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let baseline = tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks();
            let ep = port_rx.recv_timeout(WAIT).unwrap();
            let mut push =
                crate::Push::with_options(Options::new().linger(Some(Duration::from_millis(100))));
            push.connect(&ep).unwrap();
            timeout(WAIT, push.wait_for_peers(1))
                .await
                .unwrap()
                .unwrap();
            // Another socket of this process shares the connection.
            let other = crate::Push::connect(&ep).await.unwrap();
            timeout(WAIT, other.wait_for_peers(1))
                .await
                .unwrap()
                .unwrap();
            let Endpoint::Tcp { port, .. } = ep.parse::<Endpoint>().unwrap() else {
                unreachable!()
            };
            let session = {
                let slot = pool()
                    .get(&format!("tcp://127.0.0.1:{port}"))
                    .cloned()
                    .unwrap();
                let shared = slot.try_lock().unwrap().upgrade().unwrap();
                shared
            };
            assert_eq!(session.lock().core.stream_count(), 2);
            fill(&mut push).await;
            timeout(WAIT, push.close()).await.unwrap();
            // The stream is gone with what it held; the other socket's stays.
            timeout(WAIT, async {
                while session.lock().core.stream_count() > 1 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await
            .expect("the closed socket's stream is still there");
            drop(session);
            other.close().await;
            // The session's driver, and with it the connection, is gone.
            tasks_back_to(baseline).await;
        });
        let _ = stop_tx.send(());
        reader.join().unwrap();
    }

    /// An accepted ZMTP peer counts against the listener's `max_connections` for as long as
    /// it is connected, like a native session does.
    #[tokio::test]
    async fn an_accepted_zmtp_peer_counts_against_max_connections() {
        let pull = Engine::new(SocketType::Pull, Options::new().max_connections(1));
        let mut events = pull.monitor();
        let Endpoint::Tcp { port, .. } = pull.bind("tcp://127.0.0.1:0").await.unwrap() else {
            unreachable!()
        };
        // A ZMTP PUSH: greets without the zocket marker, says READY.
        let mut zmtp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let greeting = Greeting {
            native: None,
            ..Greeting::zocket()
        };
        zmtp.write_all(&greeting.encode()).await.unwrap();
        let mut ready = BytesMut::new();
        Command::Ready(Ready {
            socket_type: SocketType::Push,
            identity: Bytes::new(),
        })
        .encode(&mut ready);
        zmtp.write_all(&ready).await.unwrap();
        timeout(WAIT, pull.wait_for_peers(1))
            .await
            .unwrap()
            .unwrap();
        // The listener is full: the next connection is closed at once.
        let mut next = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut buf = [0u8; 8];
        let read = timeout(WAIT, next.read(&mut buf)).await.unwrap();
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        let Event::HandshakeFailed { reason, .. } =
            event_where(&mut events, |e| matches!(e, Event::HandshakeFailed { .. })).await
        else {
            unreachable!()
        };
        assert!(reason.contains("max_connections"), "{reason}");
        drop(zmtp);
        pull.close().await;
    }

    /// A socket can send to its peer as soon as the peer is usable, before the dial task
    /// has seen it; a close then aborts that task: the peer (with what was sent to it)
    /// must stay until the close delivers it.
    #[tokio::test]
    async fn an_abandoned_attempt_leaves_a_peer_that_became_usable() {
        let pull = Engine::new(SocketType::Pull, Options::new());
        let bound = pull.bind("tcp://127.0.0.1:0").await.unwrap();
        let push = Engine::new(SocketType::Push, Options::new());
        push.connect(&bound.to_string()).unwrap();
        timeout(WAIT, push.wait_for_peers(1))
            .await
            .unwrap()
            .unwrap();
        let dialed = push.lock().dialers[0].2.clone();
        let peer = dialed.lock().unwrap().expect("the dialed peer is recorded");
        drop(Attempt {
            engine: Arc::downgrade(&push),
            dialed: dialed.clone(),
            pending: true,
        });
        assert!(
            push.lock().peers.contains_key(&peer),
            "the usable peer was removed"
        );
        assert_eq!(*dialed.lock().unwrap(), Some(peer));
        push.close().await;
        pull.close().await;
    }

    #[tokio::test]
    async fn the_pool_forgets_addresses_nobody_dials_any_more() {
        let engine = Engine::new(SocketType::Push, hasty());
        let mut events = engine.monitor();
        // Addresses where nobody listens: every dial fails.
        let ports: Vec<u16> = (0..20)
            .map(|_| {
                std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port()
            })
            .collect();
        for port in &ports {
            engine.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
        }
        // And one where a socket listens: a session is made, then closed.
        let pull = Engine::new(SocketType::Pull, Options::new());
        let bound = pull.bind("tcp://127.0.0.1:0").await.unwrap();
        engine.connect(&bound.to_string()).unwrap();
        event_where(&mut events, |e| matches!(e, Event::Connected { .. })).await;
        for _ in 0..ports.len() {
            event_where(&mut events, |e| matches!(e, Event::Retrying { .. })).await;
        }
        engine.close().await;
        pull.close().await;
        let crate::Endpoint::Tcp {
            port: listening, ..
        } = bound
        else {
            panic!("not tcp: {bound}");
        };
        let ours = |key: &String| {
            ports
                .iter()
                .chain(std::iter::once(&listening))
                .any(|p| key.ends_with(&format!(":{p}")))
        };
        timeout(WAIT, async {
            while pool_keys().iter().any(ours) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("stale pool keys: {:?}", pool_keys()));
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_dial_whose_syn_is_never_answered_ends_at_connect_timeout_not_handshake_timeout() {
        // Backlog 0 and nobody accepts: once one connection fills the accept queue, Linux
        // drops further SYNs and a connect waits for retransmits.
        let listener =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        listener
            .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        listener.listen(0).unwrap();
        let port = listener.local_addr().unwrap().as_socket().unwrap().port();
        let mut held = Vec::new();
        for _ in 0..8 {
            match timeout(
                Duration::from_millis(200),
                TcpStream::connect(("127.0.0.1", port)),
            )
            .await
            {
                Ok(stream) => held.push(stream.unwrap()),
                Err(_) => break,
            }
        }
        assert!(held.len() < 8, "the accept queue never filled");
        let options = Options::new()
            .handshake_timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_millis(300));
        let target: Endpoint = format!("tcp://127.0.0.1:{port}").parse().unwrap();
        let key = format!("connect-timeout-test:{port}");
        let started = std::time::Instant::now();
        let dialed = timeout(WAIT, pooled_session(&key, &target, &options))
            .await
            .expect("connect_timeout, not handshake_timeout, ends the dial");
        assert!(matches!(dialed, Err(Error::Timeout)));
        assert!(started.elapsed() >= Duration::from_millis(300));
    }
}
