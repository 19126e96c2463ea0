//! inproc:// — connections inside one process, through a process-wide registry of names.
//!
//! Nothing is encoded: [`Message`] values move through a pair of bounded [`Pipe`]s, one per
//! direction, whose capacity is the high-water mark. A pipe is polled without futures: a
//! reader or writer registers a [`Waker`] and is woken when the pipe becomes readable, when
//! a full pipe gets room, or when it is closed, so one task can drive many pipes at once.
//! A binder registers its name with what it says about itself (an [`InprocHello`]); a
//! connector passes its own hello, and each side's [`InprocConn::peer`] is the other side's.
//! A dialer may wait for a name to be bound with [`wait_bound`], which wakes it as soon as the
//! name is bound, without polling.

use std::collections::{HashMap, VecDeque};
use std::fmt;
#[cfg(test)]
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
#[cfg(test)]
use std::task::Poll;
use std::task::Waker;

use bytes::Bytes;
use tokio::sync::{mpsc, Notify};

use crate::{Error, Message, Result, SocketType};

/// What one side of an inproc connection says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct InprocHello {
    /// The side's socket type, if it has one (the engine checks compatibility with it).
    pub(crate) socket_type: Option<SocketType>,
    /// The side's routing identity, if it set one.
    pub(crate) identity: Option<Bytes>,
}

/// One direction of an inproc connection: a bounded queue of messages.
///
/// Each pipe has one reader waker slot and one writer waker slot: it is meant for one reader
/// and one writer, each of which registers its waker before waiting (a second registration
/// replaces the first, whose owner is then never woken). Wakers are always woken after the
/// pipe's lock is released, so a waker may touch the pipe.
pub(crate) struct Pipe {
    state: Mutex<PipeState>,
}

struct PipeState {
    queue: VecDeque<Message>,
    capacity: usize,
    closed: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

/// Why [`Pipe::try_push`] did not queue a message; either way the message comes back.
#[derive(Debug)]
pub(crate) enum PushError {
    /// The pipe holds `capacity` messages; register a writer waker and try again when woken.
    Full(Message),
    /// The pipe is closed; no message will be queued on it again.
    Closed(Message),
}

/// Puts `waker` in `slot`, replacing what is there; skips the clone if it wakes the same task.
fn register(slot: &mut Option<Waker>, waker: &Waker) {
    match slot {
        Some(current) if current.will_wake(waker) => {}
        _ => *slot = Some(waker.clone()),
    }
}

impl Pipe {
    /// An empty, open pipe holding at most `capacity` messages (at least 1).
    pub(crate) fn new(capacity: usize) -> Arc<Pipe> {
        let capacity = capacity.max(1);
        Arc::new(Pipe {
            state: Mutex::new(PipeState {
                queue: VecDeque::with_capacity(capacity.min(64)),
                capacity,
                closed: false,
                reader: None,
                writer: None,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, PipeState> {
        // Nothing in the critical sections can panic halfway through a change.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `msg`; wakes the registered reader. Full/Closed give the message back.
    pub(crate) fn try_push(&self, msg: Message) -> Result<(), PushError> {
        let mut state = self.lock();
        if state.closed {
            return Err(PushError::Closed(msg));
        }
        if state.queue.len() >= state.capacity {
            return Err(PushError::Full(msg));
        }
        state.queue.push_back(msg);
        let reader = state.reader.take();
        drop(state);
        if let Some(reader) = reader {
            reader.wake();
        }
        Ok(())
    }

    /// Takes the next message; `Ok(None)` when empty (and not closed), `Err(Error::Closed)`
    /// once closed AND drained. Wakes the registered writer when it frees room in a full
    /// pipe.
    pub(crate) fn try_pop(&self) -> Result<Option<Message>> {
        let mut state = self.lock();
        let was_full = state.queue.len() >= state.capacity;
        match state.queue.pop_front() {
            Some(msg) => {
                let writer = if was_full { state.writer.take() } else { None };
                drop(state);
                if let Some(writer) = writer {
                    writer.wake();
                }
                Ok(Some(msg))
            }
            None if state.closed => Err(Error::Closed),
            None => Ok(None),
        }
    }

    /// Registers the waker to wake on the next push (or close). Replaces any previous one.
    pub(crate) fn register_reader(&self, waker: &Waker) {
        register(&mut self.lock().reader, waker);
    }

    /// Registers the waker to wake when room frees up (or close). Replaces any previous one.
    pub(crate) fn register_writer(&self, waker: &Waker) {
        register(&mut self.lock().writer, waker);
    }

    /// How many messages are queued.
    pub(crate) fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Whether [`close`](Self::close) was called (messages may still be queued).
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Closes the pipe: pushes fail from now on; pops drain what is queued, then fail. Wakes
    /// both.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        let reader = state.reader.take();
        let writer = state.writer.take();
        drop(state);
        for waker in [reader, writer].into_iter().flatten() {
            waker.wake();
        }
    }
}

impl fmt::Debug for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("Pipe")
            .field("len", &state.queue.len())
            .field("capacity", &state.capacity)
            .field("closed", &state.closed)
            .finish_non_exhaustive()
    }
}

/// One end of an inproc connection: messages out, messages in, and who is on the other end.
///
/// The connection is closed when either end is dropped: both pipes are closed, so the other
/// end's `rx` fails once drained and its `tx` fails at once.
#[derive(Debug)]
pub(crate) struct InprocConn {
    /// Messages to the other end (bounded by the capacity given to [`connect`]).
    pub(crate) tx: Arc<Pipe>,
    /// Messages from the other end.
    pub(crate) rx: Arc<Pipe>,
    /// What the other end said about itself.
    pub(crate) peer: InprocHello,
}

impl InprocConn {
    #[cfg(test)]
    /// Sends `msg`, waiting for room in `tx`.
    ///
    /// Uses `tx`'s writer waker slot: only one task may wait to send on a connection at a
    /// time.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] when the connection is closed.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping the future while it waits for room drops `msg`.
    pub(crate) async fn send(&self, msg: Message) -> Result<()> {
        let mut msg = Some(msg);
        poll_fn(|cx| {
            let msg_now = msg.take().expect("send polled after completion");
            let msg_now = match self.tx.try_push(msg_now) {
                Ok(()) => return Poll::Ready(Ok(())),
                Err(PushError::Closed(_)) => return Poll::Ready(Err(Error::Closed)),
                Err(PushError::Full(m)) => m,
            };
            // Register, then check again: room freed in between would wake nobody.
            self.tx.register_writer(cx.waker());
            match self.tx.try_push(msg_now) {
                Ok(()) => Poll::Ready(Ok(())),
                Err(PushError::Closed(_)) => Poll::Ready(Err(Error::Closed)),
                Err(PushError::Full(m)) => {
                    msg = Some(m);
                    Poll::Pending
                }
            }
        })
        .await
    }

    #[cfg(test)]
    /// The next message from the other end, or `None` once the connection is closed and
    /// everything sent before has been received.
    ///
    /// Uses `rx`'s reader waker slot: only one task may wait to receive on a connection at a
    /// time.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a message is never lost by dropping the future.
    pub(crate) async fn recv(&self) -> Option<Message> {
        poll_fn(|cx| {
            match self.rx.try_pop() {
                Ok(Some(msg)) => return Poll::Ready(Some(msg)),
                Err(_) => return Poll::Ready(None),
                Ok(None) => {}
            }
            // Register, then check again: a push in between would wake nobody.
            self.rx.register_reader(cx.waker());
            match self.rx.try_pop() {
                Ok(Some(msg)) => Poll::Ready(Some(msg)),
                Err(_) => Poll::Ready(None),
                Ok(None) => Poll::Pending,
            }
        })
        .await
    }
}

impl Drop for InprocConn {
    fn drop(&mut self) {
        self.tx.close();
        self.rx.close();
    }
}

/// A bound inproc name; accepts connections until dropped, which unregisters the name.
pub(crate) struct InprocListener {
    name: String,
    id: u64,
    incoming: mpsc::UnboundedReceiver<InprocConn>,
}

/// A registered name: a bound listener, or dialers waiting for one.
enum Entry {
    Bound {
        id: u64,
        hello: InprocHello,
        incoming: mpsc::UnboundedSender<InprocConn>,
    },
    Waiting(Arc<Notify>),
}

fn registry() -> MutexGuard<'static, HashMap<String, Entry>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Entry>>> = OnceLock::new();
    REGISTRY
        .get_or_init(Default::default)
        .lock()
        // Nothing in the critical sections can panic halfway through a change.
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Binds `name` in this process, registering `hello` as what connectors will see of us, and
/// wakes every dialer waiting in [`wait_bound`] for it.
///
/// # Errors
///
/// [`Error::AddrInUse`] when `name` is already bound.
pub(crate) fn bind(name: &str, hello: InprocHello) -> Result<InprocListener> {
    let (tx, rx) = mpsc::unbounded_channel();
    let id = next_id();
    let mut registry = registry();
    let bound = Entry::Bound {
        id,
        hello,
        incoming: tx,
    };
    match registry.insert(name.to_owned(), bound) {
        None => {}
        Some(Entry::Waiting(notify)) => notify.notify_waiters(),
        Some(previous @ Entry::Bound { .. }) => {
            registry.insert(name.to_owned(), previous);
            return Err(Error::AddrInUse {
                endpoint: format!("inproc://{name}"),
            });
        }
    }
    drop(registry);
    tracing::debug!(name, "inproc name bound");
    Ok(InprocListener {
        name: name.to_owned(),
        id,
        incoming: rx,
    })
}

impl InprocListener {
    /// The next connection, or `None` if the listener can no longer receive any (which does
    /// not happen while it is registered).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a connection is never lost by dropping the future.
    pub(crate) async fn accept(&mut self) -> Option<InprocConn> {
        self.incoming.recv().await
    }

    #[cfg(test)]
    /// The bound name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for InprocListener {
    fn drop(&mut self) {
        let mut registry = registry();
        if matches!(registry.get(&self.name), Some(Entry::Bound { id, .. }) if *id == self.id) {
            registry.remove(&self.name);
        }
    }
}

impl fmt::Debug for InprocListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InprocListener")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Connects to the listener bound at `name`, saying `hello` about ourselves. Each direction
/// holds at most `capacity` messages (the high-water mark; at least 1).
///
/// # Errors
///
/// [`Error::Io`] with `ConnectionRefused` when `name` is not bound.
pub(crate) fn connect(name: &str, hello: InprocHello, capacity: usize) -> Result<InprocConn> {
    let capacity = capacity.max(1);
    let registry = registry();
    if let Some(Entry::Bound {
        hello: binder_hello,
        incoming,
        ..
    }) = registry.get(name)
    {
        let to_binder = Pipe::new(capacity);
        let to_connector = Pipe::new(capacity);
        let accepted = InprocConn {
            tx: to_connector.clone(),
            rx: to_binder.clone(),
            peer: hello,
        };
        // Fails only if the listener is being dropped, which is the same as "not bound". The
        // returned connection is dropped then, closing the pipes nobody else holds.
        if incoming.send(accepted).is_ok() {
            return Ok(InprocConn {
                tx: to_binder,
                rx: to_connector,
                peer: binder_hello.clone(),
            });
        }
    }
    Err(Error::Io(io::Error::new(
        io::ErrorKind::ConnectionRefused,
        format!("nothing is bound at inproc://{name}"),
    )))
}

/// Resolves as soon as `name` is bound (at once if it is already).
///
/// # Cancel safety
///
/// Cancel safe; dropping it also forgets the wait, so abandoned waits do not pile up in the
/// registry.
pub(crate) async fn wait_bound(name: &str) {
    let mut waiter = {
        let mut registry = registry();
        let notify = match registry.get(name) {
            Some(Entry::Bound { .. }) => return,
            Some(Entry::Waiting(notify)) => notify.clone(),
            None => {
                let notify = Arc::new(Notify::new());
                registry.insert(name.to_owned(), Entry::Waiting(notify.clone()));
                notify
            }
        };
        // Created under the lock, so it cannot miss the `notify_waiters` of a bind that
        // happens between here and its first poll.
        Waiter {
            name,
            notified: Some(Box::pin(notify.notified_owned())),
        }
    };
    if let Some(notified) = waiter.notified.as_mut() {
        notified.await;
    }
}

/// A pending [`wait_bound`]; on drop, removes the `Waiting` entry if it was the last waiter.
struct Waiter<'a> {
    name: &'a str,
    notified: Option<Pin<Box<tokio::sync::futures::OwnedNotified>>>,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        // Release our reference to the Notify before counting the others.
        self.notified = None;
        let mut registry = registry();
        if matches!(registry.get(self.name), Some(Entry::Waiting(n)) if Arc::strong_count(n) == 1) {
            registry.remove(self.name);
        }
    }
}

#[cfg(test)]
pub(crate) fn is_registered(name: &str) -> bool {
    registry().contains_key(name)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;
    use std::time::Duration;

    use tokio::time::timeout;

    use super::*;
    use crate::transport::test_util::unique_name;

    const WAIT: Duration = Duration::from_secs(5);

    fn hello(ty: SocketType, id: &'static str) -> InprocHello {
        InprocHello {
            socket_type: Some(ty),
            identity: Some(Bytes::from_static(id.as_bytes())),
        }
    }

    fn msg(text: &'static str) -> Message {
        Message::from(vec![Bytes::from_static(text.as_bytes())])
    }

    #[tokio::test]
    async fn messages_flow_both_ways_and_each_side_sees_the_other_hello() {
        let name = unique_name("flow");
        let mut listener = bind(&name, hello(SocketType::Rep, "binder")).unwrap();
        assert_eq!(listener.name(), name);
        let dialed = connect(&name, hello(SocketType::Req, "dialer"), 4).unwrap();
        let accepted = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
        assert_eq!(dialed.peer, hello(SocketType::Rep, "binder"));
        assert_eq!(accepted.peer, hello(SocketType::Req, "dialer"));

        timeout(WAIT, dialed.send(msg("ping")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            timeout(WAIT, accepted.recv()).await.unwrap(),
            Some(msg("ping"))
        );
        timeout(WAIT, accepted.send(msg("pong")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            timeout(WAIT, dialed.recv()).await.unwrap(),
            Some(msg("pong"))
        );

        drop(accepted);
        assert_eq!(timeout(WAIT, dialed.recv()).await.unwrap(), None);
    }

    #[tokio::test]
    async fn capacity_bounds_each_direction() {
        let name = unique_name("capacity");
        let mut listener = bind(&name, InprocHello::default()).unwrap();
        let dialed = connect(&name, InprocHello::default(), 2).unwrap();
        let accepted = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
        dialed.tx.try_push(msg("1")).unwrap();
        dialed.tx.try_push(msg("2")).unwrap();
        assert!(matches!(
            dialed.tx.try_push(msg("3")),
            Err(PushError::Full(_))
        ));
        accepted.tx.try_push(msg("1")).unwrap();
        accepted.tx.try_push(msg("2")).unwrap();
        assert!(matches!(
            accepted.tx.try_push(msg("3")),
            Err(PushError::Full(_))
        ));
    }

    #[tokio::test]
    async fn second_bind_is_addr_in_use_and_drop_unregisters() {
        let name = unique_name("twice");
        let listener = bind(&name, InprocHello::default()).unwrap();
        match bind(&name, InprocHello::default()) {
            Err(Error::AddrInUse { endpoint }) => assert_eq!(endpoint, format!("inproc://{name}")),
            other => panic!("expected AddrInUse, got {other:?}"),
        }
        // The failed bind left the first one in place.
        assert!(connect(&name, InprocHello::default(), 1).is_ok());
        drop(listener);
        assert!(!is_registered(&name));
        bind(&name, InprocHello::default()).unwrap();
    }

    #[tokio::test]
    async fn connect_to_an_unbound_name_is_refused() {
        let err = connect(&unique_name("nobody"), InprocHello::default(), 1).unwrap_err();
        assert!(
            matches!(&err, Error::Io(e) if e.kind() == io::ErrorKind::ConnectionRefused),
            "{err:?}"
        );
        assert!(err.to_string().contains("nothing is bound at inproc://"));
    }

    #[tokio::test]
    async fn wait_bound_lets_a_dialer_connect_before_bind() {
        let name = unique_name("early");
        let dialer = {
            let name = name.clone();
            tokio::spawn(async move {
                wait_bound(&name).await;
                connect(&name, InprocHello::default(), 1)
            })
        };
        // The waiter registers itself; only then bind, so the wake-up is really exercised.
        timeout(WAIT, async {
            while !is_registered(&name) {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        let mut listener = bind(&name, InprocHello::default()).unwrap();
        let dialed = timeout(WAIT, dialer).await.unwrap().unwrap().unwrap();
        let accepted = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
        timeout(WAIT, dialed.send(msg("hi")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            timeout(WAIT, accepted.recv()).await.unwrap(),
            Some(msg("hi"))
        );
    }

    #[tokio::test]
    async fn wait_bound_resolves_at_once_when_bound() {
        let name = unique_name("bound");
        let _listener = bind(&name, InprocHello::default()).unwrap();
        timeout(WAIT, wait_bound(&name)).await.unwrap();
    }

    #[tokio::test]
    async fn abandoned_waits_are_forgotten() {
        let name = unique_name("abandoned");
        let first = tokio::spawn({
            let name = name.clone();
            async move { wait_bound(&name).await }
        });
        let second = tokio::spawn({
            let name = name.clone();
            async move { wait_bound(&name).await }
        });
        timeout(WAIT, async {
            while !is_registered(&name) {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        first.abort();
        let _ = first.await;
        second.abort();
        let _ = second.await;
        assert!(!is_registered(&name));
    }

    /// A waker that counts its wake-ups.
    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }

        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting_waker() -> (Arc<CountingWaker>, Waker) {
        let counter = Arc::new(CountingWaker::default());
        (counter.clone(), Waker::from(counter))
    }

    fn wakes(counter: &CountingWaker) -> usize {
        counter.0.load(Ordering::SeqCst)
    }

    fn pop(pipe: &Pipe) -> Option<Message> {
        pipe.try_pop().unwrap()
    }

    #[test]
    fn pipe_is_fifo() {
        let pipe = Pipe::new(8);
        for text in ["a", "b", "c"] {
            pipe.try_push(msg(text)).unwrap();
        }
        assert_eq!(pipe.len(), 3);
        assert_eq!(pop(&pipe), Some(msg("a")));
        pipe.try_push(msg("d")).unwrap();
        assert_eq!(pop(&pipe), Some(msg("b")));
        assert_eq!(pop(&pipe), Some(msg("c")));
        assert_eq!(pop(&pipe), Some(msg("d")));
        assert_eq!(pop(&pipe), None);
        assert_eq!(pipe.len(), 0);
        assert!(!pipe.is_closed());
    }

    #[test]
    fn full_pipe_gives_the_message_back() {
        let pipe = Pipe::new(2);
        pipe.try_push(msg("1")).unwrap();
        pipe.try_push(msg("2")).unwrap();
        match pipe.try_push(msg("3")) {
            Err(PushError::Full(back)) => assert_eq!(back, msg("3")),
            other => panic!("expected Full, got {other:?}"),
        }
        assert_eq!(pipe.len(), 2);
        assert_eq!(pop(&pipe), Some(msg("1")));
        pipe.try_push(msg("3")).unwrap();
        assert_eq!(pop(&pipe), Some(msg("2")));
        assert_eq!(pop(&pipe), Some(msg("3")));
    }

    #[test]
    fn zero_capacity_holds_one() {
        let pipe = Pipe::new(0);
        pipe.try_push(msg("1")).unwrap();
        assert!(matches!(pipe.try_push(msg("2")), Err(PushError::Full(_))));
    }

    #[test]
    fn writer_is_woken_when_a_pop_frees_room() {
        let pipe = Pipe::new(2);
        let (counter, waker) = counting_waker();
        pipe.try_push(msg("1")).unwrap();
        pipe.try_push(msg("2")).unwrap();
        assert!(matches!(pipe.try_push(msg("3")), Err(PushError::Full(_))));
        pipe.register_writer(&waker);
        // Pushes wake readers, not writers.
        assert!(matches!(pipe.try_push(msg("3")), Err(PushError::Full(_))));
        assert_eq!(wakes(&counter), 0);
        assert_eq!(pop(&pipe), Some(msg("1")));
        assert_eq!(wakes(&counter), 1);
        // The waker was used up: freeing more room wakes nobody until it registers again.
        assert_eq!(pop(&pipe), Some(msg("2")));
        assert_eq!(wakes(&counter), 1);
    }

    #[test]
    fn reader_is_woken_by_push_and_by_close() {
        let pipe = Pipe::new(4);
        let (counter, waker) = counting_waker();
        pipe.register_reader(&waker);
        assert_eq!(wakes(&counter), 0);
        pipe.try_push(msg("1")).unwrap();
        assert_eq!(wakes(&counter), 1);
        // Used up by the first push.
        pipe.try_push(msg("2")).unwrap();
        assert_eq!(wakes(&counter), 1);

        pipe.register_reader(&waker);
        pipe.close();
        assert_eq!(wakes(&counter), 2);
    }

    #[test]
    fn close_wakes_the_writer() {
        let pipe = Pipe::new(1);
        let (counter, waker) = counting_waker();
        pipe.try_push(msg("1")).unwrap();
        pipe.register_writer(&waker);
        pipe.close();
        assert_eq!(wakes(&counter), 1);
    }

    #[test]
    fn registering_replaces_the_previous_waker() {
        let pipe = Pipe::new(1);
        let (first, first_waker) = counting_waker();
        let (second, second_waker) = counting_waker();
        pipe.register_reader(&first_waker);
        pipe.register_reader(&second_waker);
        pipe.try_push(msg("1")).unwrap();
        assert_eq!((wakes(&first), wakes(&second)), (0, 1));

        pipe.register_writer(&first_waker);
        pipe.register_writer(&second_waker);
        assert_eq!(pop(&pipe), Some(msg("1")));
        assert_eq!((wakes(&first), wakes(&second)), (0, 2));
    }

    #[test]
    fn closed_pipe_drains_then_fails() {
        let pipe = Pipe::new(4);
        pipe.try_push(msg("1")).unwrap();
        pipe.try_push(msg("2")).unwrap();
        pipe.close();
        assert!(pipe.is_closed());
        match pipe.try_push(msg("3")) {
            Err(PushError::Closed(back)) => assert_eq!(back, msg("3")),
            other => panic!("expected Closed, got {other:?}"),
        }
        assert_eq!(pop(&pipe), Some(msg("1")));
        assert_eq!(pop(&pipe), Some(msg("2")));
        assert!(matches!(pipe.try_pop(), Err(Error::Closed)));
        assert!(matches!(pipe.try_pop(), Err(Error::Closed)));
        // Closing again changes nothing.
        pipe.close();
        assert!(matches!(pipe.try_pop(), Err(Error::Closed)));
    }

    /// A waker that touches the pipe when woken: deadlocks if the pipe wakes under its lock.
    struct ReentrantWaker {
        pipe: Arc<Pipe>,
        woken: std::sync::mpsc::Sender<usize>,
    }

    impl Wake for ReentrantWaker {
        fn wake(self: Arc<Self>) {
            let _ = self.woken.send(self.pipe.len());
        }
    }

    #[test]
    fn wakers_run_outside_the_lock() {
        let pipe = Pipe::new(1);
        let (woken_tx, woken) = std::sync::mpsc::channel();
        let worker = std::thread::spawn({
            let pipe = pipe.clone();
            move || {
                let waker = Waker::from(Arc::new(ReentrantWaker {
                    pipe: pipe.clone(),
                    woken: woken_tx,
                }));
                pipe.register_reader(&waker);
                pipe.try_push(msg("1")).unwrap(); // wakes the reader
                pipe.register_writer(&waker);
                assert_eq!(pop(&pipe), Some(msg("1"))); // frees room in a full pipe
                pipe.register_reader(&waker);
                pipe.register_writer(&waker);
                pipe.close(); // wakes both
            }
        });
        for expected_len in [1, 0, 0, 0] {
            assert_eq!(woken.recv_timeout(WAIT), Ok(expected_len));
        }
        worker.join().unwrap();
    }

    #[tokio::test]
    async fn send_waits_for_room_and_recv_for_a_message() {
        let name = unique_name("waits");
        let mut listener = bind(&name, InprocHello::default()).unwrap();
        let dialed = Arc::new(connect(&name, InprocHello::default(), 1).unwrap());
        let accepted = Arc::new(timeout(WAIT, listener.accept()).await.unwrap().unwrap());

        let receiver = tokio::spawn({
            let accepted = accepted.clone();
            async move { accepted.recv().await }
        });
        // Let the receiver register itself on the empty pipe before anything is sent.
        timeout(WAIT, async {
            while dialed.tx.lock().reader.is_none() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        dialed.send(msg("1")).await.unwrap();
        assert_eq!(
            timeout(WAIT, receiver).await.unwrap().unwrap(),
            Some(msg("1"))
        );

        dialed.send(msg("2")).await.unwrap();
        let sender = tokio::spawn({
            let dialed = dialed.clone();
            async move { dialed.send(msg("3")).await }
        });
        timeout(WAIT, async {
            while dialed.tx.lock().writer.is_none() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        assert!(!sender.is_finished());
        assert_eq!(dialed.tx.len(), 1);
        assert_eq!(
            timeout(WAIT, accepted.recv()).await.unwrap(),
            Some(msg("2"))
        );
        timeout(WAIT, sender).await.unwrap().unwrap().unwrap();
        assert_eq!(
            timeout(WAIT, accepted.recv()).await.unwrap(),
            Some(msg("3"))
        );
    }

    #[tokio::test]
    async fn dropping_one_end_closes_both_directions_for_the_other() {
        let name = unique_name("drop");
        let mut listener = bind(&name, InprocHello::default()).unwrap();
        let dialed = connect(&name, InprocHello::default(), 2).unwrap();
        let accepted = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
        dialed.send(msg("last")).await.unwrap();
        accepted.tx.try_push(msg("x")).unwrap();
        accepted.tx.try_push(msg("y")).unwrap();

        let (reader, reader_waker) = counting_waker();
        let (writer, writer_waker) = counting_waker();
        accepted.rx.register_reader(&reader_waker);
        accepted.tx.register_writer(&writer_waker);
        drop(dialed);
        assert_eq!((wakes(&reader), wakes(&writer)), (1, 1));
        assert!(accepted.tx.is_closed());
        assert!(accepted.rx.is_closed());

        assert!(matches!(
            accepted.tx.try_push(msg("z")),
            Err(PushError::Closed(_))
        ));
        assert!(matches!(
            timeout(WAIT, accepted.send(msg("z"))).await.unwrap(),
            Err(Error::Closed)
        ));
        // What was sent before the drop is still delivered.
        assert_eq!(
            timeout(WAIT, accepted.recv()).await.unwrap(),
            Some(msg("last"))
        );
        assert_eq!(timeout(WAIT, accepted.recv()).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_waiting_receiver_sees_the_close() {
        let name = unique_name("close-wakes");
        let mut listener = bind(&name, InprocHello::default()).unwrap();
        let dialed = connect(&name, InprocHello::default(), 1).unwrap();
        let accepted = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
        let rx = accepted.rx.clone();
        let receiver = tokio::spawn(async move { accepted.recv().await });
        timeout(WAIT, async {
            while rx.lock().reader.is_none() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        drop(dialed);
        assert_eq!(timeout(WAIT, receiver).await.unwrap().unwrap(), None);
    }
}
