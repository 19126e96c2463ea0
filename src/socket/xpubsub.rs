//! Extended publish/subscribe: XPub and XSub, and the forwarder that joins them.

use std::task::{Context, Poll};

use super::{impl_sink, impl_stream, poll_send_slot, socket_type, spend_budget, Socket};
use crate::{Error, Message, Result, SocketType, TryRecvError, TrySendError};

/// Extended publisher: sends like a [`Pub`](crate::Pub) and receives its subscribers'
/// subscriptions as messages.
///
/// Each subscription arrives as a one-frame message: `0x01` + prefix for a subscribe,
/// `0x00` + prefix for an unsubscribe (libzmq's XPUB format). By default they are
/// deduplicated across subscribers: the first subscribe of a prefix (no subscriber held it)
/// and the last unsubscribe (none holds it any more) are received, and a subscriber that
/// leaves unsubscribes the prefixes only it held. With
/// [`Options::xpub_verbose`](crate::Options::xpub_verbose), every subscribe and unsubscribe
/// is received. A subscriber that is an [`XSub`] may also send other messages upstream:
/// they are received as they were sent, in order with its subscriptions.
///
/// Sending is a `Pub`'s: to every subscriber whose subscriptions match the first frame,
/// never waiting; a subscriber whose queue holds `send_hwm` messages misses the message.
/// Each subscriber's subscriptions are bounded by
/// [`Options::max_subscription_bytes`](crate::Options::max_subscription_bytes).
///
/// What waits to be received is bounded by [`Options::recv_hwm`](crate::Options::recv_hwm):
/// once that many messages wait, the socket stops reading its subscribers (they are pushed
/// back) until some are received, so new subscriptions are applied only as they are
/// received. Receive them (an XPub is meant to be read). Only the unsubscribes of a
/// subscriber that left are queued past the bound (one per prefix it held).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> zocket::Result<()> {
/// use futures::StreamExt;
/// let mut xpub = zocket::XPub::bind("inproc://doc-xpub").await?;
/// let mut sub = zocket::Sub::connect("inproc://doc-xpub").await?;
/// sub.subscribe("weather.");
/// sub.wait_for_peers(1).await?;
/// let subscription = xpub.recv().await?;
/// assert_eq!(subscription.frames()[0], &b"\x01weather."[..]);
/// xpub.send(["weather.paris", "sunny"]).await?;
/// assert_eq!(sub.next().await.unwrap()?.frames()[1], "sunny");
/// # Ok(()) }
/// ```
pub struct XPub {
    socket: Socket,
    sink_slot: Option<Message>,
}

impl XPub {
    fn from_socket(socket: Socket) -> Self {
        XPub {
            socket,
            sink_slot: None,
        }
    }

    /// Publishes `msg` to every subscriber whose subscriptions match its first frame,
    /// exactly as [`Pub::send`](crate::Pub::send) does: never waits on a subscriber; one
    /// whose queue is full misses the message.
    ///
    /// # Errors
    /// `Error::Closed` once the socket is closed.
    ///
    /// # Cancel safety
    /// Cancel safe: if cancelled before it completes, nothing was published.
    pub async fn send(&self, msg: impl Into<Message>) -> Result<()> {
        let msg = msg.into();
        spend_budget().await;
        self.socket.engine.send_fanout(msg)
    }

    /// Receives the next subscription (`0x01`/`0x00` + prefix) or upstream message.
    ///
    /// # Errors
    /// `Error::Closed` once the socket is closed.
    ///
    /// # Cancel safety
    /// Cancel safe: a message is taken only when `recv` completes.
    pub async fn recv(&mut self) -> Result<Message> {
        self.socket.recv().await.map(|(_, msg)| msg)
    }

    /// Receives the next subscription or upstream message if one is waiting; otherwise
    /// returns at once. Takes from the same queue as [`recv`](Self::recv).
    ///
    /// # Errors
    /// `TryRecvError::Empty` when nothing is waiting now; `TryRecvError::Closed` once the
    /// socket is closed.
    pub fn try_recv(&mut self) -> std::result::Result<Message, TryRecvError> {
        self.socket.try_recv().map(|(_, msg)| msg)
    }

    /// Publishes `msg` without waiting for the task's cooperative budget, as
    /// [`Pub::try_send`](crate::Pub::try_send) does: an XPub never waits on subscribers,
    /// so this is never `Full`.
    ///
    /// # Errors
    /// `TrySendError::Closed(msg)` once the socket is closed.
    pub fn try_send(&self, msg: impl Into<Message>) -> std::result::Result<(), TrySendError> {
        self.socket.try_publish(msg.into())
    }

    fn poll_push_slot(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let engine = &self.socket.engine;
        poll_send_slot(cx, &mut self.sink_slot, |msg| engine.send_fanout(msg))
    }
}

socket_type!(XPub, SocketType::XPub, "extended publisher");
impl_sink!(XPub, poll_push_slot);
impl_stream!(XPub, |_: &XPub, _, msg| msg);

/// Extended subscriber: receives like a [`Sub`](crate::Sub), and subscribes by sending
/// messages.
///
/// A one-frame message `0x01` + prefix subscribes to the prefix, `0x00` + prefix cancels one
/// subscription to it ([`subscribe`](Self::subscribe) and [`unsubscribe`](Self::unsubscribe)
/// do the same). As libzmq's XSUB does, every subscribe is passed to the publishers and an
/// unsubscribe only when it cancels the prefix's last subscription (subscriptions are
/// counted). Any other message is sent upstream to every publisher (an
/// [`XPub`] receives it; a [`Pub`](crate::Pub) ignores it); one whose queue is full misses it.
///
/// Subscriptions are resent to every publisher after every reconnect, and messages are
/// filtered by them, as at a `Sub`. An XSub starts talking to its publishers (sends them its
/// subscriptions, which is how a publisher comes to count it) at its first send, subscribe,
/// receive or [`wait_for_peers`](crate::Socket::wait_for_peers).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> zocket::Result<()> {
/// use futures::StreamExt;
/// let publisher = zocket::Pub::bind("inproc://doc-xsub").await?;
/// let mut xsub = zocket::XSub::connect("inproc://doc-xsub").await?;
/// xsub.send(b"\x01weather.").await?; // the same as xsub.subscribe("weather.")
/// xsub.wait_for_peers(1).await?;
/// publisher.send(["sports.results", "1-0"]).await?;
/// publisher.send(["weather.paris", "sunny"]).await?;
/// assert_eq!(xsub.next().await.unwrap()?.frames()[1], "sunny");
/// # Ok(()) }
/// ```
pub struct XSub {
    socket: Socket,
    sink_slot: Option<Message>,
}

impl XSub {
    fn from_socket(socket: Socket) -> Self {
        XSub {
            socket,
            sink_slot: None,
        }
    }

    /// Sends `msg`: a subscription (a one-frame `0x01`/`0x00` + prefix) or a message for
    /// the publishers, as the type's docs say. Never waits.
    ///
    /// # Errors
    /// `Error::Closed` once the socket is closed.
    ///
    /// # Cancel safety
    /// Cancel safe: if cancelled before it completes, nothing was sent.
    pub async fn send(&self, msg: impl Into<Message>) -> Result<()> {
        let msg = msg.into();
        spend_budget().await;
        self.send_now(msg)
    }

    /// Sends `msg` as [`send`](Self::send) does, without waiting for the task's
    /// cooperative budget; an XSub never waits on its publishers, so this is never `Full`.
    ///
    /// # Errors
    /// `TrySendError::Closed(msg)` once the socket is closed.
    pub fn try_send(&self, msg: impl Into<Message>) -> std::result::Result<(), TrySendError> {
        let msg = msg.into();
        if self.socket.engine.is_closing() {
            return Err(TrySendError::Closed(msg));
        }
        self.send_now(msg)
            .map_err(|_| TrySendError::Closed(Message::new()))
    }

    fn send_now(&self, msg: Message) -> Result<()> {
        let engine = &self.socket.engine;
        if msg.len() == 1 {
            let frame = &msg.frames()[0];
            match frame.first() {
                Some(&1) => {
                    engine.subscribe(&frame[1..]);
                    return Ok(());
                }
                Some(&0) => {
                    engine.unsubscribe(&frame[1..]);
                    return Ok(());
                }
                _ => {}
            }
        }
        engine.send_upstream(msg)
    }

    /// Subscribes to messages whose first frame starts with `prefix` (`""` for all), as
    /// sending `0x01` + prefix does.
    pub fn subscribe(&self, prefix: impl AsRef<[u8]>) {
        self.socket.engine.subscribe(prefix.as_ref());
    }

    /// Cancels one subscription to `prefix`, as sending `0x00` + prefix does.
    pub fn unsubscribe(&self, prefix: impl AsRef<[u8]>) {
        self.socket.engine.unsubscribe(prefix.as_ref());
    }

    /// Receives the next message.
    ///
    /// # Errors
    /// `Error::Closed` once the socket is closed.
    ///
    /// # Cancel safety
    /// Cancel safe: a message is taken only when `recv` completes.
    pub async fn recv(&mut self) -> Result<Message> {
        self.socket.recv().await.map(|(_, msg)| msg)
    }

    /// Receives the next message if one is waiting; otherwise returns at once. Takes from
    /// the same queue as [`recv`](Self::recv).
    ///
    /// # Errors
    /// `TryRecvError::Empty` when nothing is waiting now; `TryRecvError::Closed` once the
    /// socket is closed.
    pub fn try_recv(&mut self) -> std::result::Result<Message, TryRecvError> {
        self.socket.try_recv().map(|(_, msg)| msg)
    }

    fn poll_push_slot(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let mut slot = self.sink_slot.take();
        let sent = poll_send_slot(cx, &mut slot, |msg| self.send_now(msg));
        self.sink_slot = slot;
        sent
    }
}

socket_type!(XSub, SocketType::XSub, "extended subscriber");
impl_sink!(XSub, poll_push_slot);
impl_stream!(XSub, |_: &XSub, _, msg| msg);

/// Joins an [`XSub`] facing publishers and an [`XPub`] facing subscribers into a pub/sub
/// forwarder: every message a publisher sends goes to the subscribers that want it, and
/// every subscription (and other message) the subscribers send goes up to the publishers,
/// so publishers and subscribers need to know only the forwarder. Runs until either socket
/// closes or fails. (The sibling of [`proxy`](crate::proxy), which joins a Router and a
/// Dealer.)
///
/// Subscriptions travel deduplicated by default (a publisher hears of a prefix once, however
/// many subscribers want it); with [`Options::xpub_verbose`](crate::Options::xpub_verbose)
/// on the XPub, each subscriber's subscriptions go up. Either way the publishers filter, so
/// a message nobody subscribed to never leaves its publisher.
///
/// ```no_run
/// # async fn f() -> zocket::Result<()> {
/// // Publishers connect to :5570, subscribers to :5571.
/// let mut xsub = zocket::XSub::bind("tcp://0.0.0.0:5570").await?;
/// let mut xpub = zocket::XPub::bind("tcp://0.0.0.0:5571").await?;
/// zocket::forward(&mut xsub, &mut xpub).await?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// The error that ended either socket (`Error::Closed` when one was closed).
///
/// # Cancel safety
/// Cancelling it may lose the one message it was handing from one socket to the other
/// (sends never wait on a peer, only on the task's cooperative budget).
pub async fn forward(xsub: &mut XSub, xpub: &mut XPub) -> Result<()> {
    use futures::StreamExt;
    loop {
        tokio::select! {
            msg = xsub.next() => {
                let msg = msg.ok_or(Error::Closed)??;
                xpub.send(msg).await?;
            }
            up = xpub.next() => {
                let up = up.ok_or(Error::Closed)??;
                xsub.send(up).await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::timeout;

    use super::*;
    use crate::Options;

    const T: Duration = Duration::from_secs(10);

    /// An XPub whose owner does not read holds at most `recv_hwm` messages for it; the
    /// rest stays with the subscriber's link (pushed back), and nothing is lost.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unread_xpub_holds_at_most_recv_hwm_subscriptions_and_loses_none() {
        for ep in ["tcp://127.0.0.1:0", "inproc://xpub-bound"] {
            let mut xpub = XPub::with_options(Options::new().recv_hwm(4));
            let ep = xpub.bind(ep).await.unwrap().to_string();
            let xsub = XSub::connect(&ep).await.unwrap();
            timeout(T, xsub.wait_for_peers(1)).await.unwrap().unwrap();
            for i in 0..100 {
                xsub.send(format!("\x01t.{i:02}")).await.unwrap();
            }
            let engine = xpub.socket.engine.clone();
            timeout(T, async {
                while engine.xpub_waiting() < 4 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
            .await
            .unwrap();
            // Give the engine time to go wrong: it must not read past the bound.
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_millis(5)).await;
                assert_eq!(engine.xpub_waiting(), 4, "{ep}");
            }
            for i in 0..100 {
                let msg = timeout(T, xpub.recv()).await.unwrap().unwrap();
                assert_eq!(msg.frames()[0], format!("\x01t.{i:02}"), "{ep}");
                assert!(engine.xpub_waiting() <= 4, "{ep}");
            }
        }
    }
}
