//! Attaching links to engines as peers: a stream a peer opened, an inproc pipe, a plain ZMTP
//! connection; refusing what a socket cannot take (incompatible types, a second `Pair` peer).

use std::sync::{Arc, Mutex};

use tracing::warn;

use crate::driver::{zmtp, IncomingStream, Shared};
use crate::engine::peer::{Link, Peer, Phase, Reassembly};
use crate::engine::Engine;
use crate::monitor::Event;
use crate::pattern::PeerId;
use crate::proto::native::Reason;
use crate::stats::Direction;
use crate::transport::inproc::InprocConn;
use crate::transport::shared::SharedStream;
use crate::transport::ByteStream;
use crate::warn_limit::warn_limited;
use crate::{Error, Result, SocketType};

/// Attaches a stream a peer opened to `engine`, or refuses it.
pub(super) fn attach_incoming(
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
    let refusal = refusal.or_else(|| {
        // A Router refuses a routing id a live peer holds (unless it hands identities
        // over: then `Engine::activate` decides), with a reason the opener can report.
        let claimed = &incoming.identity;
        let valid = claimed.first().is_some_and(|&b| b != 0);
        if local != SocketType::Router || !valid {
            return None;
        }
        let holder = st.peers.get(&st.identities.peer(claimed)?)?;
        if !engine.options.router_handover {
            return Some((
                Reason::IDENTITY_TAKEN,
                "this ROUTER already has a live peer with that routing identity".to_owned(),
                Error::Refused {
                    reason: "another peer already uses this identity".into(),
                },
            ));
        }
        // Handover, but only between links of the same CURVE client key (see
        // `Engine::may_take_over`, which decides again when the stream becomes a peer).
        (holder.curve_key() != shared.lock().core.peer_key()).then(|| {
            (
                Reason::IDENTITY_TAKEN,
                "this ROUTER hands a routing identity over only to a client with its holder's CURVE key".to_owned(),
                Error::Refused {
                    reason: "another peer uses this identity, with another CURVE key".into(),
                },
            )
        })
    });
    if let Some((reason, text, error)) = refusal {
        if !st.closing {
            engine.links.failed();
        }
        warn_limited!(%peer, %error, "refusing stream");
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
    let awaiting = local.is_publisher();
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
                reading: Reassembly::within(
                    engine.options.max_message_size,
                    engine.options.max_message_frames,
                ),
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
        peer.enqueue_now(crate::engine::subscription::acknowledgement());
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
pub(super) fn attach_inproc(
    engine: &Arc<Engine>,
    conn: InprocConn,
    endpoint: String,
    dialed: Option<&DialedPeer>,
) -> Result<PeerHandles> {
    let local = engine.socket_type;
    if let Some(remote) = conn.peer.socket_type {
        if !local.is_compatible(remote) {
            let error = Error::IncompatiblePeer { local, remote };
            engine.links.failed();
            warn!(%endpoint, %error, "refusing inproc peer");
            return Err(error);
        }
    }
    let mut st = engine.lock();
    if st.closing {
        return Err(Error::Closed);
    }
    if local == SocketType::Pair && !st.peers.is_empty() {
        engine.links.failed();
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
        (publisher, Some(remote)) if publisher.is_publisher() && remote.is_subscriber() => {
            Phase::AwaitingSubscriptions
        }
        (subscriber, _) if subscriber.is_subscriber() => Phase::Opening,
        _ => Phase::Active,
    };
    let peer_id = engine.add_peer(&mut st, |id| {
        let mut p = Peer::new(id, local, Link::Inproc(conn), phase, endpoint.clone());
        p.remote_type = remote;
        p.identity = identity.clone();
        p.on_gone = Some(gone_tx);
        p.dialed = true;
        if dialed.is_some() {
            p.direction = Direction::Connected;
        }
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
pub(super) struct PeerHandles {
    pub(super) active: tokio::sync::oneshot::Receiver<Result<()>>,
    pub(super) gone: tokio::sync::oneshot::Receiver<Option<Error>>,
}

/// The peer a dialer's current connection created, so that `disconnect` can drop it.
pub(crate) type DialedPeer = Arc<Mutex<Option<PeerId>>>;

/// Records a dialed peer. Called with the engine locked, right after `add_peer`: once the
/// lock is released the peer may become active and be counted, and a `disconnect` that
/// follows must find it.
pub(super) fn remember(dialed: Option<&DialedPeer>, peer: PeerId) {
    if let Some(dialed) = dialed {
        *dialed.lock().unwrap_or_else(|e| e.into_inner()) = Some(peer);
    }
}

/// Runs ZMTP on a connection whose greeting showed a plain ZeroMQ peer, as a peer of
/// `engine`; the peer is usable once its READY arrived.
pub(super) fn attach_zmtp(
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
        engine.links.failed();
        let error = Error::Refused {
            reason: "PAIR socket already has a peer".into(),
        };
        if dialed.is_none() {
            // (A dialer reports its own handshake failures.)
            warn_limited!(%peer, %error, "refusing ZMTP peer");
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
        if p.dialed {
            p.direction = Direction::Connected;
        }
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
pub(super) fn refuse_zmtp(mut io: ByteStream, reason: &str, limit: std::time::Duration) {
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
