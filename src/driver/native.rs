//! The driver of a native session.

use std::collections::VecDeque;

use crate::id_hash::IdMap;
use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};
use tracing::{debug, Instrument};

use super::handshake;
use crate::proto::native::frame::MAX_FRAME_LEN;
use crate::proto::native::{Config, Event, Session, SessionError, StreamId, Transmit};
use crate::transport::shared::{DirectWrite, SharedStream};
use crate::Error;

/// Someone who follows streams without polling them: told (with the token it registered)
/// whenever a stream may have become readable or writable, until it stops observing.
/// Called by the driver task with no lock held; must not block.
pub(crate) trait StreamObserver: Send + Sync + std::fmt::Debug {
    /// Data, the end of the stream, or an error may be ready to read.
    fn readable(&self, token: u64);
    /// Credit arrived, the stream was accepted or flushed.
    fn writable(&self, token: u64);
    /// The stream failed (reset, refused, connection lost).
    fn failed(&self, token: u64);
}

/// A connection the driver can run: a byte stream that also reads straight into a
/// `BytesMut`'s spare capacity (without zeroing it first, which `AsyncRead` over a fresh
/// buffer must do).
pub(crate) trait Transport: AsyncRead + AsyncWrite + Send + Unpin + 'static {
    /// Reads what is available into `buf`'s spare capacity; `Ok(0)` at end of stream.
    fn poll_read_into(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<std::io::Result<usize>>;
}

impl Transport for SharedStream {
    fn poll_read_into(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<std::io::Result<usize>> {
        self.get_mut().poll_read_buf(cx, buf)
    }
}

/// Any `AsyncRead + AsyncWrite` (what the public multiplexer runs over).
#[derive(Debug)]
pub(crate) struct AnyIo<T>(pub(crate) T);

impl<T: AsyncRead + Unpin> AsyncRead for AnyIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for AnyIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Transport for AnyIo<T> {
    fn poll_read_into(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<std::io::Result<usize>> {
        tokio_util::io::poll_read_buf(self, cx, buf)
    }
}

/// What the driver tells an observer.
#[derive(Debug, Clone, Copy)]
enum Notice {
    Readable,
    Writable,
    Failed,
}

/// A stream the peer opened, waiting for its owner to accept or reject it.
#[derive(Debug, Clone)]
pub(crate) struct IncomingStream {
    /// Its id.
    pub(crate) id: StreamId,
    /// The opener's socket type code.
    pub(crate) socket_type: u8,
    /// The path it is addressed to.
    pub(crate) path: String,
    /// The opener's routing id (empty: none).
    pub(crate) identity: bytes::Bytes,
}

/// A session core and the wakers of everyone waiting on it, shared by the driver task and
/// the handles.
#[derive(Debug)]
pub(crate) struct Shared {
    inner: Mutex<SharedInner>,
}

/// What [`Shared`] guards.
#[derive(Debug)]
pub(crate) struct SharedInner {
    /// The protocol core.
    pub(crate) core: Session,
    driver: Option<Waker>,
    readers: IdMap<StreamId, Waker>,
    writers: IdMap<StreamId, Waker>,
    /// Streams the peer opened, not yet taken by an owner.
    pub(crate) incoming: VecDeque<IncomingStream>,
    incoming_waker: Option<Waker>,
    established: bool,
    established_wakers: Vec<Waker>,
    close_wakers: Vec<Waker>,
    /// Encoded frames not yet written, shared by the driver and direct writers.
    transmit: Transmit,
    /// Lets a handle write to the connection itself (byte-stream transports only).
    direct: Option<Arc<dyn DirectWrite>>,
    /// Persistent watchers of streams (the socket engine), with their tokens.
    observers: IdMap<StreamId, (Arc<dyn StreamObserver>, u64)>,
    /// The driver has exited: the transport is gone.
    finished: bool,
    /// Handles that keep the session alive; at zero the session closes itself.
    handles: usize,
}

impl Shared {
    /// Locks the core. Never hold the guard across an `.await`.
    pub(crate) fn lock(&self) -> MutexGuard<'_, SharedInner> {
        // A panic while holding the lock leaves the core in an unknown state; we never
        // panic inside, so recovering the guard is sound.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl SharedInner {
    /// Writes what commands queued straight to the connection from the calling task, when
    /// the transport allows it; what the kernel does not take now is left to the driver.
    /// For a handle about to wait for an answer: it saves waking the driver and waiting
    /// for it to run. A burst of sends should not use it: the driver batches them into
    /// fewer syscalls.
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
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let n = self.transmit.io_slices(&mut slices);
            match direct.try_write_vectored(&slices[..n]) {
                Ok(n) if n > 0 => self.transmit.advance(n),
                // Full, or failed: the driver takes over (and sees any error itself).
                _ => break,
            }
        }
        if !self.transmit.is_empty() || self.core.has_events() {
            self.wake_driver();
        }
    }

    /// Wakes the driver so it transmits what commands queued.
    pub(crate) fn wake_driver(&mut self) {
        if let Some(w) = &self.driver {
            w.wake_by_ref();
        }
    }

    /// Registers `waker` to be woken when stream `id` may be readable.
    pub(crate) fn wait_readable(&mut self, id: StreamId, waker: &Waker) {
        register(
            self.readers.entry(id).or_insert_with(|| waker.clone()),
            waker,
        );
    }

    /// Registers `waker` to be woken when stream `id` may be writable (or flushed).
    pub(crate) fn wait_writable(&mut self, id: StreamId, waker: &Waker) {
        register(
            self.writers.entry(id).or_insert_with(|| waker.clone()),
            waker,
        );
    }

    /// Registers `waker` for the next incoming stream.
    pub(crate) fn wait_incoming(&mut self, waker: &Waker) {
        self.incoming_waker = Some(waker.clone());
    }

    /// Whether the peer's HELLO has arrived; if not, `waker` is woken when it does.
    pub(crate) fn poll_established(&mut self, waker: &Waker) -> bool {
        if self.established {
            return true;
        }
        if !self.established_wakers.iter().any(|w| w.will_wake(waker)) {
            self.established_wakers.push(waker.clone());
        }
        false
    }

    /// Whether the driver has exited and the transport is closed.
    pub(crate) fn is_finished(&self) -> bool {
        self.finished
    }

    /// The error that ended the session, once it ended.
    pub(crate) fn closed_error(&self) -> Option<Error> {
        if let Some(e) = self.core.error() {
            return Some(session_error(e));
        }
        self.finished.then_some(Error::Closed)
    }

    fn take_all_wakers(&mut self) -> Vec<Waker> {
        let mut wake: Vec<Waker> = self.readers.drain().map(|(_, w)| w).collect();
        wake.extend(self.writers.drain().map(|(_, w)| w));
        wake.extend(self.incoming_waker.take());
        wake.append(&mut self.established_wakers);
        wake.append(&mut self.close_wakers);
        wake
    }

    /// Registers `waker` for the end of the session.
    pub(crate) fn wait_closed(&mut self, waker: &Waker) {
        if !self.close_wakers.iter().any(|w| w.will_wake(waker)) {
            self.close_wakers.push(waker.clone());
        }
    }

    /// Starts telling `observer` about stream `id`, with `token`; it is told once at once,
    /// so nothing that happened before is missed.
    pub(crate) fn observe(&mut self, id: StreamId, observer: Arc<dyn StreamObserver>, token: u64) {
        observer.readable(token);
        observer.writable(token);
        if self.core.stream_errored(id) {
            observer.failed(token);
        }
        self.observers.insert(id, (observer, token));
    }

    /// Stops telling anyone about stream `id`.
    pub(crate) fn unobserve(&mut self, id: StreamId) {
        self.observers.remove(&id);
    }

    /// One more handle keeps the session alive.
    pub(crate) fn add_handle(&mut self) {
        self.handles += 1;
    }

    /// A handle went away; the last one closes the session.
    pub(crate) fn remove_handle(&mut self) {
        self.handles -= 1;
        if self.handles == 0 {
            self.core.close(crate::proto::native::Reason::NO_ERROR, "");
            self.wake_driver();
        }
    }
}

fn register(slot: &mut Waker, waker: &Waker) {
    if !slot.will_wake(waker) {
        *slot = waker.clone();
    }
}

/// The public error for a session that ended.
pub(crate) fn session_error(e: &SessionError) -> Error {
    match e {
        SessionError::Protocol(m) => Error::Protocol(m.clone()),
        SessionError::MessageTooLarge { size, max } => Error::MessageTooLarge {
            size: *size,
            max: *max,
        },
        SessionError::Timeout(_) => Error::Timeout,
        SessionError::Closed(_) | SessionError::ClosedLocally => Error::Closed,
    }
}

/// How the connection's greeting is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Greeting {
    /// Already exchanged by the caller (the listener and dialer, which must see it to pick
    /// the protocol).
    Done,
    /// Exchange it first, symmetrically (the public multiplexer over any byte stream).
    Exchange,
}

/// Starts the driver task for a native session over `io`. The returned handle count
/// starts at one, owned by the caller.
pub(crate) fn spawn<T>(
    io: T,
    config: Config,
    greeting: Greeting,
    peer: String,
    direct: Option<Arc<dyn DirectWrite>>,
) -> Arc<Shared>
where
    T: Transport,
{
    let side = config.side;
    let timeout = config.handshake_timeout;
    let now = Instant::now().into_std();
    let shared = Arc::new(Shared {
        inner: Mutex::new(SharedInner {
            core: Session::new(config, now),
            driver: None,
            readers: IdMap::default(),
            writers: IdMap::default(),
            incoming: VecDeque::new(),
            incoming_waker: None,
            established: false,
            established_wakers: Vec::new(),
            close_wakers: Vec::new(),
            observers: IdMap::default(),
            transmit: Transmit::new(),
            direct,
            finished: false,
            handles: 1,
        }),
    });
    let task_shared = shared.clone();
    let span = tracing::debug_span!("zocket.conn", %peer, protocol = "native", ?side);
    tokio::spawn(
        async move {
            let mut io = io;
            if greeting == Greeting::Exchange {
                let failure = match handshake::exchange(&mut io, timeout).await {
                    Ok(handshake::Negotiated::Native) => None,
                    Ok(handshake::Negotiated::Zmtp(_)) => {
                        Some("peer is a plain ZMTP peer, not a zocket multiplexer".to_owned())
                    }
                    Err(e) => Some(format!("greeting failed: {e}")),
                };
                if let Some(why) = failure {
                    debug!(%why, "session did not start");
                    let wake = {
                        let mut inner = task_shared.lock();
                        inner.core.abort(SessionError::Protocol(why));
                        inner.finished = true;
                        inner.take_all_wakers()
                    };
                    wake.into_iter().for_each(Waker::wake);
                    return;
                }
            }
            let driver = Driver {
                io: Box::pin(io),
                shared: task_shared,
                read_buf: BytesMut::new(),
                read_closed: false,
                wrote_since_flush: false,
                timer: Box::pin(tokio::time::sleep_until(Instant::now())),
                timer_deadline: None,
                close_linger: None,
            };
            driver.await;
        }
        .instrument(span),
    );
    shared
}

/// Reads at most this many times per poll before letting other tasks run.
const READS_PER_POLL: usize = 16;
/// Read buffer growth step.
const READ_CHUNK: usize = 256 * 1024;
/// How long the last frames of an ended session may wait for the peer to read them.
const CLOSE_LINGER: std::time::Duration = std::time::Duration::from_secs(2);
/// Most segments per vectored write.
const MAX_IOV: usize = 64;

struct Driver<T> {
    io: Pin<Box<T>>,
    shared: Arc<Shared>,
    read_buf: BytesMut,
    read_closed: bool,
    wrote_since_flush: bool,
    timer: Pin<Box<Sleep>>,
    timer_deadline: Option<std::time::Instant>,
    close_linger: Option<Pin<Box<Sleep>>>,
}

impl<T: Transport> Driver<T> {
    /// Reads what is available and feeds it to the core. Returns whether anything was read.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progressed = false;
        for _ in 0..READS_PER_POLL {
            if self.read_closed {
                break;
            }
            // Room for a whole frame of the largest size past what we hold, so a frame is
            // never moved once part of it is in (only at this reserve, rarely).
            if self.read_buf.capacity() - self.read_buf.len() < MAX_FRAME_LEN {
                self.read_buf.reserve(READ_CHUNK);
            }
            match self.io.as_mut().poll_read_into(cx, &mut self.read_buf) {
                Poll::Pending => break,
                Poll::Ready(Ok(0)) => {
                    self.read_closed = true;
                    self.shared.lock().core.handle_eof("");
                    progressed = true;
                }
                Poll::Ready(Ok(_)) => {
                    progressed = true;
                    let now = Instant::now().into_std();
                    let mut inner = self.shared.lock();
                    if let Err(e) = inner.core.handle_input(now, &mut self.read_buf) {
                        debug!(error = %e, "closing connection");
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

    /// Writes what the core has queued. Returns whether anything was written.
    ///
    /// The bytes wait in the shared [`Transmit`], so a handle that writes directly (see
    /// [`SharedInner::flush_now`]) and this task never interleave frames: both only touch it
    /// under the lock.
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
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let n = inner.transmit.io_slices(&mut slices);
            let res = if self.io.is_write_vectored() {
                self.io.as_mut().poll_write_vectored(cx, &slices[..n])
            } else {
                self.io.as_mut().poll_write(cx, inner.transmit.first())
            };
            match res {
                Poll::Pending => break,
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                    // The transport is gone; nothing more can be sent.
                    inner.transmit = Transmit::new();
                    self.read_closed = true;
                    inner.core.handle_eof("write failed");
                    return true;
                }
                Poll::Ready(Ok(n)) => {
                    inner.transmit.advance(n);
                    self.wrote_since_flush = true;
                    progressed = true;
                }
            }
        }
        if self.wrote_since_flush
            && inner.transmit.is_empty()
            && self.io.as_mut().poll_flush(cx).is_ready()
        {
            self.wrote_since_flush = false;
        }
        progressed
    }

    /// Wakes handles for the core's events. Returns whether the session is over.
    fn dispatch(&mut self, cx: &mut Context<'_>) -> bool {
        let mut wake = Vec::new();
        let mut notify = Vec::new();
        let mut inner = self.shared.lock();
        register(
            inner.driver.get_or_insert_with(|| cx.waker().clone()),
            cx.waker(),
        );
        while let Some(event) = inner.core.poll_event() {
            match event {
                Event::Established(_) => {
                    inner.established = true;
                    wake.append(&mut inner.established_wakers);
                }
                Event::Incoming {
                    id,
                    socket_type,
                    path,
                    identity,
                } => {
                    inner.incoming.push_back(IncomingStream {
                        id,
                        socket_type,
                        path,
                        identity,
                    });
                    wake.extend(inner.incoming_waker.take());
                }
                Event::Accepted { id, .. } | Event::Writable(id) => {
                    wake.extend(inner.writers.remove(&id));
                    if let Some((o, token)) = inner.observers.get(&id) {
                        notify.push((o.clone(), *token, Notice::Writable));
                    }
                }
                Event::Readable(id) => {
                    wake.extend(inner.readers.remove(&id));
                    if let Some((o, token)) = inner.observers.get(&id) {
                        let what = if inner.core.stream_errored(id) {
                            Notice::Failed
                        } else {
                            Notice::Readable
                        };
                        notify.push((o.clone(), *token, what));
                    }
                }
            }
        }
        let over = inner.core.is_closed() && inner.transmit.is_empty();
        if over {
            inner.finished = true;
            inner.direct = None; // the connection closes with the driver's handle
        }
        if inner.core.error().is_some() {
            // Everyone waiting learns the session ended.
            wake.append(&mut inner.take_all_wakers());
        }
        drop(inner);
        for w in wake {
            w.wake();
        }
        for (observer, token, what) in notify {
            match what {
                Notice::Readable => observer.readable(token),
                Notice::Writable => observer.writable(token),
                Notice::Failed => observer.failed(token),
            }
        }
        over
    }

    /// Runs due timers and arms the sleep for the next one. Returns whether a timer fired.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = self.shared.lock().core.poll_timeout();
        if deadline != self.timer_deadline {
            self.timer_deadline = deadline;
            if let Some(d) = deadline {
                self.timer.as_mut().reset(Instant::from_std(d));
            }
        }
        if self.timer_deadline.is_some() && self.timer.as_mut().poll(cx).is_ready() {
            let now = Instant::now().into_std();
            self.shared.lock().core.handle_timeout(now);
            self.timer_deadline = None;
            return true;
        }
        false
    }
}

impl<T> Driver<T> {
    /// Once the session has ended, bounds how long its last frames (the GOAWAY) may wait
    /// for a peer that does not read. Returns whether that time is up; the session is then
    /// marked finished and everyone waiting is woken.
    fn poll_close_linger(&mut self, cx: &mut Context<'_>) -> bool {
        if self.close_linger.is_none() {
            if self.shared.lock().core.error().is_none() {
                return false;
            }
            self.close_linger = Some(Box::pin(tokio::time::sleep(CLOSE_LINGER)));
        }
        let Some(linger) = self.close_linger.as_mut() else {
            return false;
        };
        if linger.as_mut().poll(cx).is_pending() {
            return false;
        }
        let wake = {
            let mut inner = self.shared.lock();
            inner.finished = true;
            inner.take_all_wakers()
        };
        wake.into_iter().for_each(Waker::wake);
        true
    }
}

impl<T: Transport> Future for Driver<T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // Registered first, so a command issued while we run wakes us again.
        {
            let mut inner = this.shared.lock();
            register(
                inner.driver.get_or_insert_with(|| cx.waker().clone()),
                cx.waker(),
            );
        }
        for _ in 0..8 {
            let read = this.poll_read(cx);
            let fired = this.poll_timer(cx);
            let wrote = this.poll_write(cx);
            if this.dispatch(cx) {
                let _ = this.io.as_mut().poll_shutdown(cx);
                debug!("connection closed");
                return Poll::Ready(());
            }
            if this.poll_close_linger(cx) {
                debug!("peer did not take our GOAWAY in time; dropping the connection");
                return Poll::Ready(());
            }
            if !(read || fired || wrote) {
                return Poll::Pending;
            }
        }
        // Plenty of work: yield to other tasks, then go on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
