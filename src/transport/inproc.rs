//! inproc:// — connections inside one process, through a process-wide registry of names.
//!
//! Nothing is encoded: [`Message`] values move through a pair of bounded
//! [`tokio::sync::mpsc`] channels, one per direction, whose capacity is the high-water mark.
//! A binder registers its name with what it says about itself (an [`InprocHello`]); a
//! connector passes its own hello, and each side's [`InprocConn::peer`] is the other side's.
//! A dialer may wait for a name to be bound with [`wait_bound`], which wakes it as soon as the
//! name is bound, without polling.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

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

/// One end of an inproc connection: messages out, messages in, and who is on the other end.
///
/// The connection is closed when either end is dropped: the other end's `rx` then returns
/// `None` once drained and its `tx` fails.
#[derive(Debug)]
pub(crate) struct InprocConn {
    /// Messages to the other end (bounded by the capacity given to [`connect`]).
    pub(crate) tx: mpsc::Sender<Message>,
    /// Messages from the other end.
    pub(crate) rx: mpsc::Receiver<Message>,
    /// What the other end said about itself.
    pub(crate) peer: InprocHello,
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
        let (to_binder, from_connector) = mpsc::channel(capacity);
        let (to_connector, from_binder) = mpsc::channel(capacity);
        let accepted = InprocConn {
            tx: to_connector,
            rx: from_connector,
            peer: hello,
        };
        // Fails only if the listener is being dropped, which is the same as "not bound".
        if incoming.send(accepted).is_ok() {
            return Ok(InprocConn {
                tx: to_binder,
                rx: from_binder,
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
        let mut dialed = connect(&name, hello(SocketType::Req, "dialer"), 4).unwrap();
        let mut accepted = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
        assert_eq!(dialed.peer, hello(SocketType::Rep, "binder"));
        assert_eq!(accepted.peer, hello(SocketType::Req, "dialer"));

        dialed.tx.send(msg("ping")).await.unwrap();
        assert_eq!(
            timeout(WAIT, accepted.rx.recv()).await.unwrap(),
            Some(msg("ping"))
        );
        accepted.tx.send(msg("pong")).await.unwrap();
        assert_eq!(
            timeout(WAIT, dialed.rx.recv()).await.unwrap(),
            Some(msg("pong"))
        );

        drop(accepted);
        assert_eq!(timeout(WAIT, dialed.rx.recv()).await.unwrap(), None);
    }

    #[tokio::test]
    async fn capacity_bounds_each_direction() {
        let name = unique_name("capacity");
        let mut listener = bind(&name, InprocHello::default()).unwrap();
        let dialed = connect(&name, InprocHello::default(), 2).unwrap();
        let _accepted = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
        dialed.tx.try_send(msg("1")).unwrap();
        dialed.tx.try_send(msg("2")).unwrap();
        assert!(dialed.tx.try_send(msg("3")).is_err());
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
        dialed.tx.send(msg("hi")).await.unwrap();
        let mut accepted = accepted;
        assert_eq!(
            timeout(WAIT, accepted.rx.recv()).await.unwrap(),
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
}
