//! Exclusive pair.

use std::task::{Context, Poll};

use super::{impl_sink, impl_stream, socket_type, Socket};
use crate::{Message, Result, SocketType};

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
