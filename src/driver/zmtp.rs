//! The driver of a ZMTP connection (a libzmq peer): one task runs a [`ZmtpSession`] over
//! the connection through the [`io_loop`](super::io_loop), as [`native`](super::native)
//! does for zocket peers.
//!
//! A ZMTP connection carries exactly one link, so its shared state is the link's: the socket
//! engine reads messages and writes messages through [`ZmtpShared`], and learns about them
//! through the same [`StreamObserver`] as native streams.

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use tokio::time::Instant;
use tracing::{debug, Instrument};

use super::io_loop::{Connection, Driver, SessionCore, Wire, CLOSE_LINGER};
use super::StreamObserver;
use crate::proto::curve::CurveError;
use crate::proto::native::Transmit;
use crate::proto::zmtp::frame::make_room;
use crate::proto::zmtp::{CurveSetup, ZmtpConfig, ZmtpError, ZmtpEvent, ZmtpSession};
use crate::transport::shared::SharedStream;
use crate::{Error, Message, SocketType};

/// A ZMTP connection's state, shared by its driver task and the engine's peer.
#[derive(Debug)]
pub(crate) struct ZmtpShared {
    inner: Mutex<ZmtpInner>,
}

/// What [`ZmtpShared`] guards.
#[derive(Debug)]
pub(crate) struct ZmtpInner {
    /// The protocol core.
    pub(crate) core: ZmtpSession,
    /// The peer's READY, once it arrived: its socket type and routing id.
    pub(crate) ready: Option<(SocketType, Bytes)>,
    observer: Option<(Arc<dyn StreamObserver>, u64)>,
    /// The connection: bytes on their way out, the driver task.
    wire: Wire,
    /// The engine stopped writing at its byte budget and waits for a writable signal.
    write_blocked: bool,
}

/// Bytes a link may have queued in the core before the engine's writes wait.
pub(crate) const WRITE_BUDGET: usize = 1024 * 1024;

impl ZmtpShared {
    /// Locks the state. Never hold the guard across an `.await`.
    pub(crate) fn lock(&self) -> MutexGuard<'_, ZmtpInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ZmtpInner {
    /// Starts telling `observer` about this link, with `token`.
    pub(crate) fn observe(&mut self, observer: Arc<dyn StreamObserver>, token: u64) {
        observer.readable(token);
        observer.writable(token);
        if self.wire.is_finished() || self.core.error().is_some() {
            observer.failed(token);
        }
        self.observer = Some((observer, token));
    }

    /// Wakes the driver so it transmits what was queued.
    pub(crate) fn wake_driver(&self) {
        self.wire.wake_driver();
    }

    /// Queues a message (the engine's subscription messages become SUBSCRIBE/CANCEL for a
    /// PUB or XPUB peer; an XSUB's other messages go as they are). Returns `false` when the
    /// byte budget is used up: the message was not queued, and a writable signal follows
    /// once the queue drained.
    pub(crate) fn send(&mut self, msg: &Message, local: SocketType) -> bool {
        if self.core.queued_bytes() >= WRITE_BUDGET {
            self.write_blocked = true;
            return false;
        }
        match local {
            SocketType::Sub => subscription_to_commands(&mut self.core, msg),
            SocketType::XSub => {
                if !xsub_subscription(&mut self.core, msg) {
                    self.core.send(msg.clone());
                }
            }
            _ => self.core.send(msg.clone()),
        }
        true
    }

    /// The next message from the peer, in arrival order: from a SUB peer, its
    /// subscription changes come as the engine's subscription messages (`01`/`00` +
    /// prefix), before the data behind them. They stay counted against `recv_hwm` and the
    /// byte budget until read here, so a flood nobody reads is held back in the kernel.
    pub(crate) fn recv(&mut self) -> Option<Message> {
        let msg = self.core.recv();
        if self.core.wants_input() {
            self.wake_driver(); // room again: the driver reads on
        }
        msg
    }

    /// The error that ended the connection, once it ended.
    pub(crate) fn failure(&self) -> Option<Error> {
        if let Some(e) = self.core.error() {
            return Some(zmtp_error(e));
        }
        self.wire.is_finished().then_some(Error::Closed)
    }

    /// Whether the connection ended and everything it brought has been read.
    pub(crate) fn is_failed(&self) -> bool {
        self.failure().is_some() && !self.core.has_messages()
    }

    /// Whether everything queued has been written.
    pub(crate) fn is_flushed(&self) -> bool {
        self.core.queued_bytes() == 0 && self.wire.is_flushed()
    }

    /// Writes what was queued from the calling task when the socket takes it now (see
    /// [`Wire::write_now`]). The driver is woken in any case: it writes the rest, and tells
    /// a writer blocked at the byte budget that the queue drained.
    pub(crate) fn flush_now(&mut self) {
        self.wire.write_now(&mut self.core);
        self.wire.wake_driver();
    }
}

/// Our Sub's subscription messages, as ZMTP subscriptions.
fn subscription_to_commands(core: &mut ZmtpSession, msg: &Message) {
    let Some(first) = msg.first() else { return };
    if first.as_ref() == [0x02] {
        for prefix in &msg.frames()[1..] {
            core.subscribe(prefix.clone());
        }
    } else if msg.len() == 1 {
        match first.first() {
            Some(1) => core.subscribe(first.slice(1..)),
            Some(0) => core.cancel(first.slice(1..)),
            _ => {}
        }
    }
}

/// An XSub's one-frame subscription message (`01`/`00` + prefix) as a ZMTP subscription;
/// `false` for any other message (the engine sends a ZMTP link no snapshot, only subscribe
/// messages, so an XSub's other messages pass unchanged).
fn xsub_subscription(core: &mut ZmtpSession, msg: &Message) -> bool {
    let Some(frame) = msg.first().filter(|_| msg.len() == 1) else {
        return false;
    };
    match frame.first() {
        Some(1) => core.subscribe(frame.slice(1..)),
        Some(0) => core.cancel(frame.slice(1..)),
        _ => return false,
    }
    true
}

/// The public error for a ZMTP session that ended.
pub(crate) fn zmtp_error(e: &ZmtpError) -> Error {
    match e {
        ZmtpError::IncompatiblePeer { local, remote } => Error::IncompatiblePeer {
            local: *local,
            remote: *remote,
        },
        ZmtpError::MessageTooLarge { size, max } => Error::MessageTooLarge {
            size: *size,
            max: *max,
        },
        ZmtpError::TooManyFrames { .. } => Error::Protocol(e.to_string()),
        ZmtpError::Timeout(_) => Error::Timeout,
        ZmtpError::Closed(_) | ZmtpError::ClosedLocally => Error::Closed,
        ZmtpError::Curve(CurveError::Peer { reason }) => Error::Refused {
            reason: if reason == crate::proto::curve::REFUSED_STATUS {
                format!("CURVE server sent ERROR {reason} (authentication failed: it does not allow our key)")
            } else {
                format!("CURVE server sent ERROR: {reason}")
            },
        },
        ZmtpError::Curve(e @ CurveError::Refused { .. }) => Error::Refused {
            reason: e.to_string(),
        },
        ZmtpError::Curve(e) => Error::Protocol(e.to_string()),
        ZmtpError::Protocol(m) | ZmtpError::Peer(m) => Error::Protocol(m.clone()),
    }
}

/// Starts the driver task of a ZMTP connection whose greeting is done; with `curve`, the
/// CURVE handshake runs first and every frame travels in a MESSAGE box.
pub(crate) fn spawn(
    io: SharedStream,
    config: ZmtpConfig,
    curve: Option<CurveSetup>,
    peer: String,
) -> Arc<ZmtpShared> {
    let now = Instant::now().into_std();
    let core = match curve {
        Some(setup) => ZmtpSession::with_curve(config, setup, now),
        None => ZmtpSession::new(config, now),
    };
    let protocol = if core.is_curve() {
        "zmtp+curve"
    } else {
        "zmtp"
    };
    let shared = Arc::new(ZmtpShared {
        inner: Mutex::new(ZmtpInner {
            core,
            ready: None,
            observer: None,
            wire: Wire::new(Some(io.direct())),
            write_blocked: false,
        }),
    });
    // A failed session's ERROR (or a closing one's last messages) may wait for a peer that
    // stopped reading only so long: then the connection is dropped, not kept forever.
    let driver = Driver::new(io, shared.clone(), Some(CLOSE_LINGER));
    let span = tracing::debug_span!("zocket.conn", %peer, protocol);
    tokio::spawn(driver.instrument(span));
    shared
}

impl Connection for ZmtpShared {
    type Core = ZmtpSession;

    fn with<R>(&self, f: impl FnOnce(&mut ZmtpSession, &mut Wire) -> R) -> R {
        let mut inner = self.lock();
        let inner = &mut *inner;
        f(&mut inner.core, &mut inner.wire)
    }

    /// Turns the core's events into what the engine sees; returns whether the connection
    /// is over.
    fn dispatch(&self) -> bool {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let (mut readable, mut writable) = (false, false);
        while let Some(event) = inner.core.poll_event() {
            match event {
                ZmtpEvent::Ready {
                    socket_type,
                    identity,
                } => {
                    inner.ready = Some((socket_type, identity));
                    writable = true;
                }
                ZmtpEvent::Readable => readable = true,
                ZmtpEvent::Error(reason) => debug!(%reason, "peer sent ERROR"),
            }
        }
        if inner.write_blocked && inner.core.queued_bytes() < WRITE_BUDGET / 2 {
            inner.write_blocked = false;
            writable = true;
        }
        let over = inner.wire.finish_if_closed(&inner.core);
        let failed = inner.core.error().is_some() || over;
        let observer = inner.observer.clone();
        drop(guard); // observers are told without the lock
        if let Some((o, token)) = observer {
            if failed {
                o.failed(token);
            } else {
                if readable {
                    o.readable(token);
                }
                if writable {
                    o.writable(token);
                }
            }
        }
        over
    }
}

impl SessionCore for ZmtpSession {
    type Error = ZmtpError;

    /// Feeds input held back again once the engine made room, and keeps room for the frame
    /// being received (see [`make_room`]); no read while input is still held back (TCP
    /// backpressure until the engine reads).
    fn prepare_read(&mut self, now: std::time::Instant, buf: &mut BytesMut) -> bool {
        if self.is_input_held_back() {
            let _ = self.handle_input(now, buf);
            if self.is_input_held_back() {
                return false;
            }
        }
        make_room(buf, self.incomplete_frame_len());
        true
    }
    fn handle_input(
        &mut self,
        now: std::time::Instant,
        buf: &mut BytesMut,
    ) -> Result<(), ZmtpError> {
        self.handle_input(now, buf)
    }
    fn handle_eof(&mut self, reason: &str) {
        self.handle_eof(reason);
    }
    fn handle_timeout(&mut self, now: std::time::Instant) {
        self.handle_timeout(now);
    }
    fn poll_transmit(&mut self, now: std::time::Instant, out: &mut Transmit) -> bool {
        self.poll_transmit(now, out)
    }
    fn poll_timeout(&self) -> Option<std::time::Instant> {
        self.poll_timeout()
    }
    fn has_ended(&self) -> bool {
        self.error().is_some()
    }
    fn is_closed(&self) -> bool {
        self.is_closed()
    }
}
