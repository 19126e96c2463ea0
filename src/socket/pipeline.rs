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
}

socket_type!(Pull, SocketType::Pull, "pull");
impl_stream!(Pull, |_: &Pull, _, msg| msg);
