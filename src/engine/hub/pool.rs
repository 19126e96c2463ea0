//! Dialing: the pool of outgoing connections (one native session per remote address and
//! security, shared by every socket of the process that connects there) and the attempts
//! that open a socket's stream on it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use futures::FutureExt;
use tracing::debug;

use super::attach::*;
use super::listen::*;
use crate::driver::connect::{self, Connected};
use crate::driver::Shared;
use crate::engine::peer::{Link, Peer, Phase, Reassembly};
use crate::engine::Engine;
use crate::stats::Direction;
use crate::transport::dialer::{Connect, Dialer, Established, HandshakeWith};
use crate::transport::inproc::InprocHello;
use crate::transport::{ipc, tcp, ByteStream, Connection};
use crate::{Endpoint, Error, Result};

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
                        Dialed::Failed(e) => {
                            engine.links.failed();
                            return Err(e);
                        }
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
                    if !socket_type.is_subscriber() {
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
pub(super) struct Attempt {
    pub(super) engine: Weak<Engine>,
    pub(super) dialed: DialedPeer,
    /// Cleared when the link is usable.
    pub(super) pending: bool,
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
pub(super) fn attach_outgoing(
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
            engine.links.failed();
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
                reading: Reassembly::within(
                    engine.options.max_message_size,
                    engine.options.max_message_frames,
                ),
            },
            Phase::Opening,
            endpoint.to_owned(),
        );
        p.on_active = Some(active_tx);
        p.on_gone = Some(gone_tx);
        p.dialed = true;
        p.direction = Direction::Connected;
        p
    });
    remember(Some(dialed), peer_id);
    Ok(PeerHandles {
        active: active_rx,
        gone: gone_rx,
    })
}

pub(super) type PoolSlot = Arc<tokio::sync::Mutex<Weak<Shared>>>;

pub(super) fn pool() -> std::sync::MutexGuard<'static, HashMap<String, PoolSlot>> {
    static POOL: OnceLock<Mutex<HashMap<String, PoolSlot>>> = OnceLock::new();
    POOL.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// A dial's use of a pool entry; when it ends, the entry goes if nobody else uses it and
/// it holds no live session.
pub(super) struct PoolUser {
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
pub(super) fn forget_if_unused(key: &str) {
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
pub(super) async fn forget_when_over(key: String, shared: Weak<Shared>) {
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
pub(super) fn pool_keys() -> Vec<String> {
    pool().keys().cloned().collect()
}

/// A connection made for a socket's link.
pub(super) enum Dialed {
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
pub(super) async fn pooled_session(
    key: &str,
    target: &Endpoint,
    options: &crate::Options,
) -> Result<Dialed> {
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
