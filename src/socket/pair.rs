//! Exclusive pair.

use std::task::{Context, Poll};

use super::{impl_sink, impl_stream, socket_type, Socket};
use crate::{Message, Result, SocketType, TryRecvError, TrySendError};

/// One end of an exclusive pair: talks to exactly one other [`Pair`]; a second peer is
/// refused while the first is connected.
pub struct Pair {
    socket: Socket,
    sink_slot: Option<Message>,
}

impl Pair {
    fn from_socket(socket: Socket) -> Self {
        Pair {
            socket,
            sink_slot: None,
        }
    }

    /// Sends `msg` to the peer, waiting while its queue is full or there is no peer.
    ///
    /// # Errors
    /// `Error::Closed` once the socket is closed.
    ///
    /// # Cancel safety
    /// If cancelled before it completes, the message was not queued.
    pub async fn send(&mut self, msg: impl Into<Message>) -> Result<()> {
        self.socket.send_rr(msg.into(), false).await.map(|_| ())
    }

    /// Sends `msg` like [`send`](Self::send) if that would not wait; otherwise returns at
    /// once and hands the message back. For event loops that poll several things.
    /// Non-blocking and blocking sends share one queue, so mixing them loses or reorders
    /// nothing (a message given to the `Sink` and not yet flushed goes first).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> zocket::Result<()> {
    /// use zocket::TrySendError;
    /// let mut socket = zocket::Pair::new(); // not connected: a send would wait
    /// match socket.try_send("hello") {
    ///     Err(TrySendError::Full(msg)) => assert_eq!(msg.frames()[0], "hello"), // ours again
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `TrySendError::Full(msg)` when `send` would wait: the peer's queue holds `send_hwm` messages, or no peer is connected (with [`Options::conflate`](crate::Options::conflate): only the latter);
    /// `TrySendError::Closed(msg)` once the socket is closed. The message comes back
    /// untouched either way.
    pub fn try_send(&mut self, msg: impl Into<Message>) -> std::result::Result<(), TrySendError> {
        self.socket.try_send_rr(&mut self.sink_slot, msg.into())
    }

    /// Receives the next message from the peer.
    ///
    /// # Errors
    /// `Error::Closed` once the socket is closed.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn recv(&mut self) -> Result<Message> {
        self.socket.recv().await.map(|(_, msg)| msg)
    }

    /// Receives the next message if one is waiting; otherwise returns at once. For event
    /// loops that poll several things. It takes from the same queue as
    /// [`recv`](Self::recv), so mixing them loses or reorders nothing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> zocket::Result<()> {
    /// use zocket::TryRecvError;
    /// let mut socket = zocket::Pair::new();
    /// socket.bind("inproc://doc-try-recv-pair").await?;
    /// assert_eq!(socket.try_recv().unwrap_err(), TryRecvError::Empty); // nothing yet
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `TryRecvError::Empty` when nothing is waiting now; `TryRecvError::Closed` once the
    /// socket is closed.
    pub fn try_recv(&mut self) -> std::result::Result<Message, TryRecvError> {
        self.socket.try_recv().map(|(_, msg)| msg)
    }

    /// Receives the next message, with who sent it ([`PeerInfo`](crate::PeerInfo): its
    /// address, wire, routing id and CURVE key), as known when the message was read.
    ///
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

    fn poll_push_slot(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.socket.poll_flush_slot(cx, &mut self.sink_slot)
    }
}

socket_type!(Pair, SocketType::Pair, "pair");
impl_sink!(Pair, poll_push_slot);
impl_stream!(Pair, |_: &Pair, _, msg| msg);
