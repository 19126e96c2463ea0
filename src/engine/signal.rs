//! Readiness signals from a socket's links to the socket.
//!
//! Every link (a stream of a native session, an inproc pipe) reports "may be readable",
//! "may be writable" and "failed" with its peer's token. The signal collects the tokens and
//! wakes whoever waits on the socket: its handle (in `send`/`recv`) and, for what only the
//! engine handles, its background task. Whoever next takes the engine's lock absorbs the
//! tokens; nothing polls links one by one.
//!
//! Plain "readable" does not wake the background task of a socket whose handle reads (a
//! `Pull`, a `Rep`, ...): the handle reads when it wants to, and waking a second task per
//! message cost a context switch on every message. Failures, writability and the reads
//! only the engine does (subscriptions at a `Pub`) do wake it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};

use smallvec::SmallVec;

use crate::driver::StreamObserver;

/// Pending readiness tokens and the wakers to call when more arrive.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    inner: Mutex<Inner>,
    /// Tokens wait in `inner` (read without the lock on the busy path).
    pending: AtomicBool,
}

#[derive(Debug, Default)]
struct Inner {
    readable: Vec<u64>,
    writable: Vec<u64>,
    /// The handle's tasks waiting in `send`, `recv`, `wait_for_peers`, ...
    waiters: Vec<Waker>,
    /// The engine's background task.
    background: Option<Waker>,
    /// Whether plain readability concerns the background task (the engine reads itself).
    engine_reads: bool,
}

/// Tokens taken from a [`Signal`].
#[derive(Debug, Default)]
pub(crate) struct Ready {
    /// Peers that may have something to read.
    pub(crate) readable: Vec<u64>,
    /// Peers that may accept more to write.
    pub(crate) writable: Vec<u64>,
}

impl Signal {
    /// A new signal, shared with the links. `engine_reads`: the engine, not the handle,
    /// reads what peers send (a `Pub` reads subscriptions, a `Push` nothing at all).
    pub(crate) fn new(engine_reads: bool) -> Arc<Signal> {
        let signal = Signal::default();
        signal.lock().engine_reads = engine_reads;
        Arc::new(signal)
    }

    /// Wakes the background task at the next signal that concerns it.
    pub(crate) fn register_background(&self, waker: &Waker) {
        let mut inner = self.lock();
        if !inner
            .background
            .as_ref()
            .is_some_and(|w| w.will_wake(waker))
        {
            inner.background = Some(waker.clone());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether tokens wait to be absorbed. A `false` may be stale by the time it is read;
    /// callers that then wait have registered their waker first (see `Engine::poll_recv`).
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Wakes `waker` at the next signal. Register before absorbing, so nothing is missed.
    pub(crate) fn register(&self, waker: &Waker) {
        let mut inner = self.lock();
        if !inner.waiters.iter().any(|w| w.will_wake(waker)) {
            inner.waiters.push(waker.clone());
        }
    }

    /// Moves the pending tokens into `ready` (emptied first); the buffers are swapped, not
    /// reallocated, so absorbing allocates nothing in the steady state.
    pub(crate) fn take_into(&self, ready: &mut Ready) {
        ready.readable.clear();
        ready.writable.clear();
        let mut inner = self.lock();
        self.pending.store(false, Ordering::Release);
        std::mem::swap(&mut inner.readable, &mut ready.readable);
        std::mem::swap(&mut inner.writable, &mut ready.writable);
    }

    fn push(&self, token: Option<u64>, kind: Kind) {
        let (waiters, background) = {
            let mut inner = self.lock();
            match (token, kind) {
                (Some(t), Kind::Readable | Kind::Failed) => inner.readable.push(t),
                (Some(t), Kind::Writable) => inner.writable.push(t),
                (None, _) => {}
            }
            if token.is_some() {
                self.pending.store(true, Ordering::Release);
            }
            let background = match kind {
                Kind::Readable if !inner.engine_reads => None,
                _ => inner.background.take(),
            };
            // Usually one waiter (the handle's task): drained, so the list keeps its
            // capacity and the next `register` allocates nothing.
            let waiters: SmallVec<[Waker; 2]> = inner.waiters.drain(..).collect();
            (waiters, background)
        };
        waiters.into_iter().for_each(Waker::wake);
        if let Some(w) = background {
            w.wake();
        }
    }

    /// Wakes every waiter without a token (the peer set or the socket's state changed).
    pub(crate) fn notify(&self) {
        self.push(None, Kind::Failed);
    }

    /// A waker that reports `token` as readable (for links that take wakers, like inproc
    /// pipes).
    pub(crate) fn reader_waker(self: &Arc<Self>, token: u64) -> Waker {
        Waker::from(Arc::new(TokenWaker {
            signal: self.clone(),
            token,
            readable: true,
        }))
    }

    /// A waker that reports `token` as writable.
    pub(crate) fn writer_waker(self: &Arc<Self>, token: u64) -> Waker {
        Waker::from(Arc::new(TokenWaker {
            signal: self.clone(),
            token,
            readable: false,
        }))
    }
}

/// What a token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Readable,
    Writable,
    Failed,
}

impl StreamObserver for Signal {
    fn readable(&self, token: u64) {
        self.push(Some(token), Kind::Readable);
    }

    fn writable(&self, token: u64) {
        self.push(Some(token), Kind::Writable);
    }

    fn failed(&self, token: u64) {
        self.push(Some(token), Kind::Failed);
    }
}

struct TokenWaker {
    signal: Arc<Signal>,
    token: u64,
    readable: bool,
}

impl Wake for TokenWaker {
    fn wake(self: Arc<Self>) {
        // An inproc pipe wakes its reader for data and for its close alike, so the
        // background task looks too (it must notice a peer that went away).
        let kind = if self.readable {
            Kind::Failed
        } else {
            Kind::Writable
        };
        self.signal.push(Some(self.token), kind);
    }
}
