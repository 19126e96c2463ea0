//! Pipeline: push/pull.

use std::task::{Context, Poll};

use super::{impl_sink, impl_stream, socket_type, Socket};
use crate::{Message, Result, SocketType};

/// Pipeline source: sends each message to one connected [`Pull`], round-robin over those
/// with room in their queue; waits when every queue is full (or nobody is connected).
pub struct Push {
    socket: Socket,
    sink_slot: Option<Message>,
}

impl Push {
    fn from_socket(socket: Socket) -> Self {
        Push {
            socket,
            sink_slot: None,
        }
    }

    /// Sends `msg` to the next puller with room, waiting for one if need be.
    ///
    /// # Errors
    /// `Error::Closed` once the socket is closed.
    ///
    /// # Cancel safety
    /// If cancelled before it completes, the message was not queued.
    pub async fn send(&mut self, msg: impl Into<Message>) -> Result<()> {
        self.socket.send_rr(msg.into(), false).await.map(|_| ())
    }

    fn poll_push_slot(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.socket.poll_flush_slot(cx, &mut self.sink_slot)
    }
}

socket_type!(Push, SocketType::Push, "push");
impl_sink!(Push, poll_push_slot);

/// Pipeline sink: receives messages fair-queued from every connected [`Push`]. A
/// `futures::Stream` of messages.
pub struct Pull {
    socket: Socket,
}

impl Pull {
    fn from_socket(socket: Socket) -> Self {
        Pull { socket }
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
    /// let mut pull = zocket::Pull::bind("tcp://127.0.0.1:0").await?;
    /// let mut push = zocket::Push::connect(&pull.endpoints()[0].to_string()).await?;
    /// push.send("job").await?;
    /// let (from, _job) = pull.recv_with_peer().await?;
    /// assert_eq!(from.direction(), zocket::stats::Direction::Accepted);
    /// assert_eq!(from.wire(), zocket::stats::Wire::Native);
    /// assert!(from.addr().starts_with("127.0.0.1:")); // the pusher's address and port
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
}

socket_type!(Pull, SocketType::Pull, "pull");
impl_stream!(Pull, |_: &Pull, _, msg| msg);
