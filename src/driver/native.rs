//! The driver of a native session: one task runs a [`Session`] over the connection through
//! the [`io_loop`](super::io_loop); what is native here is the shared state, [`Shared`],
//! and how the session's events reach the streams' handles and observers.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use bytes::BytesMut;
use smallvec::SmallVec;
use tokio::time::Instant;
use tracing::{debug, Instrument};

use super::curve_native::{Secured, MAX_BOX_FRAME};
use super::handshake;
#[cfg(test)]
use super::io_loop::INPUT_BUDGET_PER_POLL as INPUT_BUDGET;
use super::io_loop::{Connection, Driver, SessionCore, Wire, CLOSE_LINGER};
use super::transport::Transport;
use crate::id_hash::IdMap;
use crate::proto::limits::reclaim_or_replace;
use crate::proto::native::frame::MAX_FRAME_LEN;
use crate::proto::native::{Config, Event, Session, SessionError, StreamId, Transmit};
use crate::proto::zmtp::CurveSetup;
use crate::transport::shared::DirectWrite;
use crate::Error;
use std::ops::{Deref, DerefMut};

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

/// An observer, its token and what to tell it.
type Notification = (Arc<dyn StreamObserver>, u64, Notice);

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
    /// The protocol core: the native session (inside a CURVE layer when secured; it
    /// dereferences to the session).
    pub(crate) core: Secured,
    /// The connection: bytes on their way out, the driver task.
    wire: Wire,
    readers: IdMap<StreamId, Waker>,
    writers: IdMap<StreamId, Waker>,
    /// Streams the peer opened, not yet taken by an owner.
    pub(crate) incoming: VecDeque<IncomingStream>,
    incoming_waker: Option<Waker>,
    established: bool,
    established_wakers: Vec<Waker>,
    close_wakers: Vec<Waker>,
    /// Persistent watchers of streams (the socket engine), with their tokens.
    observers: IdMap<StreamId, (Arc<dyn StreamObserver>, u64)>,
    /// Handles that keep the session alive; at zero the session closes itself.
    handles: usize,
}

impl Shared {
    /// The state of a new session; its handle count starts at one.
    fn new(
        config: Config,
        curve: Option<CurveSetup>,
        direct: Option<Arc<dyn DirectWrite>>,
    ) -> Arc<Shared> {
        let now = Instant::now().into_std();
        let session = Session::new(config, now);
        let core = match curve {
            Some(setup) => Secured::curve(session, setup),
            None => Secured::plain(session),
        };
        Arc::new(Shared {
            inner: Mutex::new(SharedInner {
                core,
                wire: Wire::new(direct),
                readers: IdMap::default(),
                writers: IdMap::default(),
                incoming: VecDeque::new(),
                incoming_waker: None,
                established: false,
                established_wakers: Vec::new(),
                close_wakers: Vec::new(),
                observers: IdMap::default(),
                handles: 1,
            }),
        })
    }

    /// Locks the core. Never hold the guard across an `.await`.
    pub(crate) fn lock(&self) -> MutexGuard<'_, SharedInner> {
        // A panic while holding the lock leaves the core in an unknown state; we never
        // panic inside, so recovering the guard is sound.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl SharedInner {
    /// Writes what commands queued straight to the connection from the calling task, when
    /// the transport allows it; what the kernel does not take now is left to the driver
    /// (see [`Wire::write_now`]).
    pub(crate) fn flush_now(&mut self) {
        if !self.wire.write_now(&mut self.core) || self.core.has_events() {
            self.wire.wake_driver();
        }
    }

    /// Wakes the driver so it transmits what commands queued.
    pub(crate) fn wake_driver(&mut self) {
        self.wire.wake_driver();
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
        self.wire.is_finished()
    }

    /// The error that ended the session, once it ended.
    pub(crate) fn closed_error(&self) -> Option<Error> {
        if let Some(e) = self.core.layer_error() {
            return Some(e);
        }
        if let Some(e) = self.core.error() {
            return Some(session_error(e));
        }
        self.wire.is_finished().then_some(Error::Closed)
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

/// Starts the driver task for a native session over `io`, inside CURVE with `curve`. The
/// returned handle count starts at one, owned by the caller.
pub(crate) fn spawn<T>(
    io: T,
    config: Config,
    curve: Option<CurveSetup>,
    greeting: Greeting,
    peer: String,
    direct: Option<Arc<dyn DirectWrite>>,
) -> Arc<Shared>
where
    T: Transport,
{
    let side = config.side;
    let timeout = config.handshake_timeout;
    let protocol = if curve.is_some() {
        "native+curve"
    } else {
        "native"
    };
    let shared = Shared::new(config, curve, direct);
    let task_shared = shared.clone();
    let span = tracing::debug_span!("zocket.conn", %peer, protocol, ?side);
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
                        inner.wire.finish();
                        inner.take_all_wakers()
                    };
                    wake.into_iter().for_each(Waker::wake);
                    return;
                }
            }
            Driver::new(io, task_shared, Some(CLOSE_LINGER)).await;
        }
        .instrument(span),
    );
    shared
}

impl Connection for Shared {
    type Core = Secured;

    fn with<R>(&self, f: impl FnOnce(&mut Secured, &mut Wire) -> R) -> R {
        let mut inner = self.lock();
        let inner = &mut *inner;
        f(&mut inner.core, &mut inner.wire)
    }

    /// Wakes handles and tells observers about the core's events.
    fn dispatch(&self) -> bool {
        // Usually one of each per call (a message arrived): kept inline, no allocation.
        let mut wake: SmallVec<[Waker; 2]> = SmallVec::new();
        let mut notify: SmallVec<[Notification; 2]> = SmallVec::new();
        let mut guard = self.lock();
        let inner = &mut *guard;
        while let Some(event) = inner.core.poll_event() {
            match event {
                Event::Established(_) => {
                    inner.established = true;
                    wake.extend(inner.established_wakers.drain(..));
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
        let over = inner.wire.finish_if_closed(&inner.core);
        if inner.core.error().is_some() {
            // Everyone waiting learns the session ended.
            wake.extend(inner.take_all_wakers());
        }
        drop(guard);
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
}

impl SessionCore for Secured {
    type Error = SessionError;

    /// Feeds input held back again once reads brought the connection's held bytes down to
    /// half of `connection_window`; no read while input is paused (TCP backpressure on this
    /// peer alone, until the streams' owners read). Otherwise keeps room for a whole frame
    /// of the largest size past what we hold (a whole box under CURVE), so a frame is never
    /// moved once part of it is in (only at this reserve, rarely).
    fn prepare_read(&mut self, now: std::time::Instant, buf: &mut BytesMut) -> bool {
        if self.input_held() {
            if let Err(e) = Secured::handle_input(self, now, buf) {
                debug!(error = %e, "closing connection");
            }
            if self.input_held() {
                return false;
            }
        }
        let room = if self.is_secured() {
            MAX_BOX_FRAME
        } else {
            MAX_FRAME_LEN
        };
        if buf.capacity() - buf.len() < room {
            reclaim_or_replace(buf, room);
        }
        true
    }
    fn handle_input(
        &mut self,
        now: std::time::Instant,
        buf: &mut BytesMut,
    ) -> Result<(), SessionError> {
        Secured::handle_input(self, now, buf)
    }
    fn handle_eof(&mut self, reason: &str) {
        self.deref_mut().handle_eof(reason);
    }
    fn handle_timeout(&mut self, now: std::time::Instant) {
        self.deref_mut().handle_timeout(now);
    }
    fn poll_transmit(&mut self, now: std::time::Instant, out: &mut Transmit) -> bool {
        Secured::poll_transmit(self, now, out)
    }
    fn poll_timeout(&self) -> Option<std::time::Instant> {
        self.deref().poll_timeout()
    }
    fn has_ended(&self) -> bool {
        self.deref().error().is_some()
    }
    fn is_closed(&self) -> bool {
        Secured::is_closed(self)
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::io;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Wake};

    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

    use super::*;
    use crate::driver::transport::AnyIo;
    use crate::proto::native::frame::Frame;
    use crate::proto::native::{Hello, Side};

    /// A peer that sends its HELLO, then unknown frames of 4 KiB without end, always ready;
    /// it takes whatever is written.
    struct Flood {
        hello: Vec<u8>,
        offset: usize,
        read: Arc<AtomicUsize>,
    }

    const FRAME: usize = 4096;

    impl Flood {
        fn byte(&self, i: usize) -> u8 {
            if i < self.hello.len() {
                return self.hello[i];
            }
            let len = (FRAME as u32 - 10).to_be_bytes();
            match (i - self.hello.len()) % FRAME {
                0 => 0x7F,
                j @ 6..=9 => len[j - 6],
                j if j < 6 => 0,
                _ => 0xAB,
            }
        }
    }

    impl AsyncRead for Flood {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let n = buf.remaining();
            let bytes: Vec<u8> = (self.offset..self.offset + n)
                .map(|i| self.byte(i))
                .collect();
            buf.put_slice(&bytes);
            self.offset += n;
            self.read.fetch_add(n, Ordering::Relaxed);
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Flood {
        fn poll_write(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[derive(Default)]
    struct CountWakes(AtomicUsize);

    impl Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[tokio::test]
    async fn a_flooding_peer_gets_a_bounded_share_of_each_poll_and_the_driver_yields() {
        let mut hello = BytesMut::new();
        Frame::Hello(Hello {
            instance: [9; 16],
            stream_window: 1 << 20,
            max_streams: 8,
            max_message_size: 1 << 20,
        })
        .encode(&mut hello);
        let read = Arc::new(AtomicUsize::new(0));
        let io = AnyIo(Flood {
            hello: hello.to_vec(),
            offset: 0,
            read: read.clone(),
        });
        let options = crate::Options::new();
        let shared = Shared::new(
            crate::driver::session_config(&options, Side::Server),
            None,
            None,
        );
        let mut driver = Driver::new(io, shared.clone(), None);
        let wakes = Arc::new(CountWakes::default());
        let waker = std::task::Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        for poll in 1..=3 {
            let before = read.load(Ordering::Relaxed);
            assert!(Pin::new(&mut driver).poll(&mut cx).is_pending());
            let got = read.load(Ordering::Relaxed) - before;
            assert!(got > 0, "poll {poll} made progress");
            assert!(
                got <= INPUT_BUDGET + 2 * crate::proto::limits::READ_CHUNK,
                "poll {poll} read {got} bytes"
            );
            assert_eq!(
                wakes.0.load(Ordering::Relaxed),
                poll,
                "the driver yielded (woke itself) after its share"
            );
        }
        assert!(
            shared.lock().core.error().is_none(),
            "unknown frames are legal"
        );
    }
}
