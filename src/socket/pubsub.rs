//! Publish/subscribe.

use std::task::{Context, Poll};

use super::{impl_sink, impl_stream, poll_send_slot, socket_type, spend_budget, Socket};
use crate::{Message, Result, SocketType, TryRecvError, TrySendError};

/// Publisher: sends every message to each connected [`Sub`] whose subscriptions match its
/// first frame.
///
/// Filtering happens here, at the publisher, so unwanted messages never cross the network.
/// A subscriber that cannot keep up loses messages once its queue holds `send_hwm` of them;
/// the publisher never waits and the other subscribers are not slowed down.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> zocket::Result<()> {
/// use futures::StreamExt;
/// let publisher = zocket::Pub::bind("inproc://doc-pub").await?;
/// let mut sub = zocket::Sub::connect("inproc://doc-pub").await?;
/// sub.subscribe("weather.");
/// sub.wait_for_peers(1).await?; // the publisher now filters for us
/// publisher.send(["sports.results", "1-0"]).await?; // filtered out
/// publisher.send(["weather.paris", "sunny"]).await?;
/// let msg = sub.next().await.unwrap()?;
/// assert_eq!(msg.frames()[1], "sunny");
/// # Ok(()) }
/// ```
pub struct Pub {
    socket: Socket,
    sink_slot: Option<Message>,
}

impl Pub {
    fn from_socket(socket: Socket) -> Self {
        Pub {
            socket,
            sink_slot: None,
        }
    }

    /// Publishes `msg` to every subscriber whose subscriptions match its first frame.
    /// Never waits on a subscriber: one whose queue is full misses the message. Like every
    /// socket operation it spends the task's cooperative budget (`tokio::task::coop`), so a
    /// publishing loop yields to the runtime's other tasks (the connection drivers that
    /// deliver what it publishes included) every budget's worth of messages.
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

    /// [`send`](Self::send) without the wait for the task's cooperative budget, which is
    /// all `send` ever waits for: a publisher never waits on its subscribers, so this
    /// succeeds whenever the socket is open. A subscriber whose queue is full misses the
    /// message exactly as with `send` (the others got it, so it is not handed back).
    /// A loop of `try_send` does not yield to the runtime by itself.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> zocket::Result<()> {
    /// let publisher = zocket::Pub::bind("inproc://doc-pub-try-send").await?;
    /// publisher.try_send(["weather.paris", "sunny"]).unwrap(); // no subscriber: dropped
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `TrySendError::Closed(msg)` once the socket is closed (with the message); never
    /// `Full`.
    pub fn try_send(&self, msg: impl Into<Message>) -> std::result::Result<(), TrySendError> {
        self.socket.try_publish(msg.into())
    }

    fn poll_push_slot(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let engine = &self.socket.engine;
        poll_send_slot(cx, &mut self.sink_slot, |msg| engine.send_fanout(msg))
    }
}

socket_type!(Pub, SocketType::Pub, "publisher");
impl_sink!(Pub, poll_push_slot);

/// Subscriber: receives, fair-queued from every connected [`Pub`], the messages whose first
/// frame starts with one of its subscribed prefixes.
///
/// Subscriptions are sent to every publisher, and again after every reconnect; a new
/// subscriber receives nothing until it subscribes (the empty prefix matches everything).
/// `Sub` is a `futures::Stream` of messages.
pub struct Sub {
    socket: Socket,
}

impl Sub {
    fn from_socket(socket: Socket) -> Self {
        Sub { socket }
    }

    /// Subscribes to messages whose first frame starts with `prefix` (`""` for all).
    /// Subscriptions are counted: subscribing twice needs two `unsubscribe`s.
    pub fn subscribe(&self, prefix: impl AsRef<[u8]>) {
        self.socket.engine.subscribe(prefix.as_ref());
    }

    /// Cancels one subscription to `prefix`.
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

    /// Receives the next message, with who sent it ([`PeerInfo`](crate::PeerInfo): its
    /// address, wire, routing id and CURVE key), as known when the message was read.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> zocket::Result<()> {
    /// let publisher = zocket::Pub::bind("inproc://doc-sub-peer").await?;
    /// let mut sub = zocket::Sub::connect("inproc://doc-sub-peer").await?;
    /// sub.subscribe("");
    /// sub.wait_for_peers(1).await?;
    /// publisher.send("news").await?;
    /// let (from, msg) = sub.recv_with_peer().await?;
    /// assert_eq!(from.addr(), "inproc://doc-sub-peer");
    /// assert_eq!(from.socket_type(), Some(zocket::SocketType::Pub));
    /// assert_eq!(msg.frames()[0], "news");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `Error::Closed` once the socket is closed.
    ///
    /// # Cancel safety
    /// Cancel safe: a message is taken only when it completes.
    pub async fn recv_with_peer(&mut self) -> Result<(crate::PeerInfo, Message)> {
        self.socket
            .recv_with_peer()
            .await
            .map(|(_, info, msg)| (info, msg))
    }

    /// Receives the next message if one is waiting; otherwise returns at once. Takes from
    /// the same queue as [`recv`](Self::recv). Like `recv`, the first call sends the
    /// subscriptions to the publishers (see [`wait_for_peers`](crate::Socket::wait_for_peers)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> zocket::Result<()> {
    /// let mut sub = zocket::Sub::connect("inproc://doc-sub-try-recv").await?;
    /// sub.subscribe("");
    /// assert_eq!(sub.try_recv().unwrap_err(), zocket::TryRecvError::Empty);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `TryRecvError::Empty` when nothing is waiting now; `TryRecvError::Closed` once the
    /// socket is closed.
    pub fn try_recv(&mut self) -> std::result::Result<Message, TryRecvError> {
        self.socket.try_recv().map(|(_, msg)| msg)
    }
}

socket_type!(Sub, SocketType::Sub, "subscriber");
impl_stream!(Sub, |_: &Sub, _, msg| msg);
