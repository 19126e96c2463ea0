//! The driver of a ZMTP connection (a libzmq peer): one task runs a [`ZmtpSession`] over
//! the connection, as [`native`](super::native) does for zocket peers.
//!
//! A ZMTP connection carries exactly one link, so its shared state is the link's: the socket
//! engine reads messages and writes messages through [`ZmtpShared`], and learns about them
//! through the same [`StreamObserver`] as native streams.

use std::collections::VecDeque;
use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::io::AsyncWrite;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::time::{Instant, Sleep};
use tracing::{debug, Instrument};

use super::native::Transport;
use super::StreamObserver;
use crate::proto::native::Transmit;
use crate::proto::zmtp::frame::make_room;
use crate::proto::zmtp::{ZmtpConfig, ZmtpError, ZmtpEvent, ZmtpSession};
use crate::transport::shared::{DirectWrite, SharedStream};
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
    /// Subscription changes from a SUB peer, as the engine's subscription messages
    /// (`01`/`00` + prefix), waiting to be read before the data behind them.
    commands: VecDeque<Message>,
    observer: Option<(Arc<dyn StreamObserver>, u64)>,
    driver: Option<Waker>,
    transmit: Transmit,
    direct: Option<Arc<dyn DirectWrite>>,
    /// The engine stopped writing at its byte budget and waits for a writable signal.
    write_blocked: bool,
    /// The driver has exited; the connection is closed.
    finished: bool,
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
        if self.finished || self.core.error().is_some() {
            observer.failed(token);
        }
        self.observer = Some((observer, token));
    }

    /// Wakes the driver so it transmits what was queued.
    pub(crate) fn wake_driver(&self) {
        if let Some(w) = &self.driver {
            w.wake_by_ref();
        }
    }

    /// Queues a message (the engine's subscription messages become SUBSCRIBE/CANCEL for a
    /// PUB peer). Returns `false` when the byte budget is used up: the message was not
    /// queued, and a writable signal follows once the queue drained.
    pub(crate) fn send(&mut self, msg: &Message, local: SocketType) -> bool {
        if self.core.queued_bytes() >= WRITE_BUDGET {
            self.write_blocked = true;
            return false;
        }
        if local == SocketType::Sub {
            subscription_to_commands(&mut self.core, msg);
        } else {
            self.core.send(msg.clone());
        }
        true
    }

    /// The next message from the peer: subscription changes first.
    pub(crate) fn recv(&mut self) -> Option<Message> {
        if let Some(cmd) = self.commands.pop_front() {
            return Some(cmd);
        }
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
        self.finished.then_some(Error::Closed)
    }

    /// Whether the connection ended and everything it brought has been read.
    pub(crate) fn is_failed(&self) -> bool {
        self.failure().is_some() && self.commands.is_empty() && !self.core.has_messages()
    }

    /// Whether everything queued has been written.
    pub(crate) fn is_flushed(&self) -> bool {
        self.core.queued_bytes() == 0 && self.transmit.is_empty()
    }

    /// Writes what was queued from the calling task when the socket takes it now.
    pub(crate) fn flush_now(&mut self) {
        let Some(direct) = self.direct.clone() else {
            self.wake_driver();
            return;
        };
        let now = Instant::now().into_std();
        loop {
            if self.transmit.is_empty() && !self.core.poll_transmit(now, &mut self.transmit) {
                break;
            }
            let mut slices = [IoSlice::new(&[]); 64];
            let n = self.transmit.io_slices(&mut slices);
            match direct.try_write_vectored(&slices[..n]) {
                Ok(n) if n > 0 => self.transmit.advance(n),
                _ => break,
            }
        }
        self.wake_driver();
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
        ZmtpError::Timeout(_) => Error::Timeout,
        ZmtpError::Closed(_) | ZmtpError::ClosedLocally => Error::Closed,
        ZmtpError::Protocol(m) | ZmtpError::Peer(m) => Error::Protocol(m.clone()),
    }
}

/// Starts the driver task of a ZMTP connection whose greeting is done.
pub(crate) fn spawn(io: SharedStream, config: ZmtpConfig, peer: String) -> Arc<ZmtpShared> {
    let now = Instant::now().into_std();
    let shared = Arc::new(ZmtpShared {
        inner: Mutex::new(ZmtpInner {
            core: ZmtpSession::new(config, now),
            ready: None,
            commands: VecDeque::new(),
            observer: None,
            driver: None,
            transmit: Transmit::new(),
            direct: Some(io.direct()),
            write_blocked: false,
            finished: false,
        }),
    });
    let driver = Driver {
        io: Box::pin(io),
        shared: shared.clone(),
        read_buf: BytesMut::new(),
        read_closed: false,
        timer: Box::pin(tokio::time::sleep_until(Instant::now())),
        timer_deadline: None,
    };
    let span = tracing::debug_span!("zocket.conn", %peer, protocol = "zmtp");
    tokio::spawn(driver.instrument(span));
    shared
}

struct Driver {
    io: Pin<Box<SharedStream>>,
    shared: Arc<ZmtpShared>,
    read_buf: BytesMut,
    read_closed: bool,
    timer: Pin<Box<Sleep>>,
    timer_deadline: Option<std::time::Instant>,
}

impl Driver {
    fn poll_read(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progressed = false;
        for _ in 0..16 {
            if self.read_closed {
                break;
            }
            let now = Instant::now().into_std();
            let frame_len = {
                // Bytes held back by the core are fed again once it has room.
                let mut inner = self.shared.lock();
                if inner.core.is_input_held_back() {
                    let _ = inner.core.handle_input(now, &mut self.read_buf);
                    if inner.core.is_input_held_back() {
                        break; // TCP backpressure until the engine reads
                    }
                }
                inner.core.incomplete_frame_len()
            };
            make_room(&mut self.read_buf, frame_len);
            match self.io.as_mut().poll_read_into(cx, &mut self.read_buf) {
                Poll::Pending => break,
                Poll::Ready(Ok(0)) => {
                    self.read_closed = true;
                    self.shared.lock().core.handle_eof("");
                    progressed = true;
                }
                Poll::Ready(Ok(_)) => {
                    progressed = true;
                    if let Err(e) = self
                        .shared
                        .lock()
                        .core
                        .handle_input(now, &mut self.read_buf)
                    {
                        debug!(error = %e, "closing ZMTP connection");
                    }
                }
                Poll::Ready(Err(e)) => {
                    self.read_closed = true;
                    self.shared.lock().core.handle_eof(&e.to_string());
                    progressed = true;
                }
            }
        }
        progressed
    }

    fn poll_write(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progressed = false;
        let mut inner = self.shared.lock();
        let inner = &mut *inner;
        loop {
            if inner.transmit.is_empty() {
                let now = Instant::now().into_std();
                if !inner.core.poll_transmit(now, &mut inner.transmit) {
                    break;
                }
            }
            let mut slices = [IoSlice::new(&[]); 64];
            let n = inner.transmit.io_slices(&mut slices);
            match self.io.as_mut().poll_write_vectored(cx, &slices[..n]) {
                Poll::Pending => break,
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                    inner.transmit = Transmit::new();
                    self.read_closed = true;
                    inner.core.handle_eof("write failed");
                    return true;
                }
                Poll::Ready(Ok(n)) => {
                    inner.transmit.advance(n);
                    progressed = true;
                }
            }
        }
        progressed
    }

    fn poll_timer(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = self.shared.lock().core.poll_timeout();
        if deadline != self.timer_deadline {
            self.timer_deadline = deadline;
            if let Some(d) = deadline {
                self.timer.as_mut().reset(Instant::from_std(d));
            }
        }
        if self.timer_deadline.is_some() && self.timer.as_mut().poll(cx).is_ready() {
            self.shared
                .lock()
                .core
                .handle_timeout(Instant::now().into_std());
            self.timer_deadline = None;
            return true;
        }
        false
    }

    /// Turns the core's events into what the engine sees; returns whether the connection
    /// is over.
    fn dispatch(&mut self, cx: &mut Context<'_>) -> bool {
        let mut guard = self.shared.lock();
        let inner = &mut *guard;
        if !inner
            .driver
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            inner.driver = Some(cx.waker().clone());
        }
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
                ZmtpEvent::Subscribe(prefix) => {
                    inner
                        .commands
                        .push_back(subscription_message(true, &prefix));
                    readable = true;
                }
                ZmtpEvent::Cancel(prefix) => {
                    inner
                        .commands
                        .push_back(subscription_message(false, &prefix));
                    readable = true;
                }
                ZmtpEvent::Readable => readable = true,
                ZmtpEvent::Error(reason) => debug!(%reason, "peer sent ERROR"),
            }
        }
        if inner.write_blocked && inner.core.queued_bytes() < WRITE_BUDGET / 2 {
            inner.write_blocked = false;
            writable = true;
        }
        let over = inner.core.is_closed() && inner.transmit.is_empty();
        if over {
            inner.finished = true;
            inner.direct = None;
        }
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

impl Future for Driver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        {
            let mut inner = this.shared.lock();
            if !inner
                .driver
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                inner.driver = Some(cx.waker().clone());
            }
        }
        for _ in 0..8 {
            let read = this.poll_read(cx);
            let fired = this.poll_timer(cx);
            let wrote = this.poll_write(cx);
            if this.dispatch(cx) {
                debug!("ZMTP connection closed");
                return Poll::Ready(());
            }
            if !(read || fired || wrote) {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A subscription change as the engine's subscription message.
pub(crate) fn subscription_message(subscribe: bool, prefix: &[u8]) -> Message {
    let mut frame = BytesMut::with_capacity(1 + prefix.len());
    frame.put_u8(u8::from(subscribe));
    frame.extend_from_slice(prefix);
    Message::from(frame.freeze())
}
