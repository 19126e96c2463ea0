//! Readiness signals from a socket's links to the socket.
//!
//! Every link (a stream of a native session, an inproc pipe) reports "may be readable" and
//! "may be writable" with its peer's token. The signal collects the tokens and wakes whoever
//! waits on the socket: its handle (in `send`/`recv`) and its background task. Whoever next
//! takes the engine's lock absorbs the tokens; nothing polls links one by one.

use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};

use crate::driver::StreamObserver;

/// Pending readiness tokens and the wakers to call when more arrive.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    readable: Vec<u64>,
    writable: Vec<u64>,
    /// Any change at all (peer set, closing) that waiters should look at.
    changed: bool,
    waiters: Vec<Waker>,
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
    /// A new signal, shared with the links.
    pub(crate) fn new() -> Arc<Signal> {
        Arc::new(Signal::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
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
        inner.changed = false;
        std::mem::swap(&mut inner.readable, &mut ready.readable);
        std::mem::swap(&mut inner.writable, &mut ready.writable);
    }

    fn push(&self, token: Option<u64>, readable: bool) {
        let waiters = {
            let mut inner = self.lock();
            match token {
                Some(t) if readable => inner.readable.push(t),
                Some(t) => inner.writable.push(t),
                None => inner.changed = true,
            }
            std::mem::take(&mut inner.waiters)
        };
        waiters.into_iter().for_each(Waker::wake);
    }

    /// Wakes every waiter without a token (the peer set or the socket's state changed).
    pub(crate) fn notify(&self) {
        self.push(None, false);
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

impl StreamObserver for Signal {
    fn readable(&self, token: u64) {
        self.push(Some(token), true);
    }

    fn writable(&self, token: u64) {
        self.push(Some(token), false);
    }
}

struct TokenWaker {
    signal: Arc<Signal>,
    token: u64,
    readable: bool,
}

impl Wake for TokenWaker {
    fn wake(self: Arc<Self>) {
        self.signal.push(Some(self.token), self.readable);
    }
}
