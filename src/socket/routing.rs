//! Asynchronous request/reply: dealer and router, and the proxy that joins them.

use std::future::poll_fn;
use std::task::{Context, Poll};

use bytes::Bytes;

use super::{impl_sink, impl_stream, socket_type, Socket};
use crate::{Error, Message, Result, SocketType};

/// Dealer: sends round-robin over its peers with room, receives fair-queued; no envelope
/// rules of its own. Talks to [`Rep`](crate::Rep), [`Router`] and other dealers.
pub struct Dealer {
    socket: Socket,
    sink_slot: Option<Message>,
}

impl Dealer {
    fn from_socket(socket: Socket) -> Self {
        Dealer {
            socket,
            sink_slot: None,
        }
    }

    /// Sends `msg` to the next peer with room, waiting for one if need be.
    ///
    /// # Errors
    /// `Error::Closed` once the socket is closed.
    ///
    /// # Cancel safety
    /// If cancelled before it completes, the message was not queued.
    pub async fn send(&mut self, msg: impl Into<Message>) -> Result<()> {
        self.socket.send_rr(msg.into(), false).await.map(|_| ())
    }

    /// Receives the next message from any peer.
    ///
    /// # Errors
    /// `Error::Closed` once the socket is closed.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn recv(&mut self) -> Result<Message> {
        self.socket.recv().await.map(|(_, msg)| msg)
    }

    fn poll_push_slot(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.socket.poll_flush_slot(cx, &mut self.sink_slot)
    }
}

socket_type!(Dealer, SocketType::Dealer, "dealer");
impl_sink!(Dealer, poll_push_slot);
impl_stream!(Dealer, |_: &Dealer, _, msg| msg);

/// Router: receives fair-queued with the sender's routing id, and sends each message to the
/// peer a routing id names.
///
/// A peer's routing id is the `identity` it set in its [`Options`](crate::Options::identity),
/// or one the router makes up (5 bytes, libzmq-style). A second peer claiming an identity
/// that a connected peer holds is refused. A message to an unknown peer is dropped, or fails
/// with `Error::HostUnreachable` when [`Options::router_mandatory`](crate::Options::router_mandatory) is set.
///
/// As a `futures::Stream` and `Sink`, a router's messages carry the routing id as their first
/// frame, as in ZeroMQ.
pub struct Router {
    socket: Socket,
    sink_slot: Option<Message>,
}

impl Router {
    fn from_socket(socket: Socket) -> Self {
        Router {
            socket,
            sink_slot: None,
        }
    }

    /// Receives the next message and the routing id of the peer that sent it.
    ///
    /// # Errors
    /// `Error::Closed` once the socket is closed.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn recv(&mut self) -> Result<(Bytes, Message)> {
        loop {
            let (peer, msg) = self.socket.recv().await?;
            if let Some(id) = self.socket.engine.identity_of(peer) {
                return Ok((id, msg));
            }
        }
    }

    /// Sends `msg` to the peer whose routing id is `peer`.
    ///
    /// # Errors
    /// `Error::HostUnreachable` for an unknown peer when `router_mandatory` is set (else
    /// the message is dropped); `Error::Closed` once the socket is closed.
    ///
    /// # Cancel safety
    /// If cancelled before it completes, the message was not queued.
    pub async fn send(&mut self, peer: impl AsRef<[u8]>, msg: impl Into<Message>) -> Result<()> {
        let mut slot = Some(msg.into());
        let peer = peer.as_ref();
        poll_fn(|cx| self.poll_route(cx, peer, &mut slot)).await
    }

    fn poll_route(
        &self,
        cx: &mut Context<'_>,
        peer: &[u8],
        slot: &mut Option<Message>,
    ) -> Poll<Result<()>> {
        let engine = &self.socket.engine;
        let mandatory = engine.options.router_mandatory;
        let Some(id) = engine.peer_by_identity(peer) else {
            slot.take();
            return Poll::Ready(if mandatory {
                Err(Error::HostUnreachable)
            } else {
                Ok(())
            });
        };
        match engine.poll_send_to(cx, id, slot, mandatory, false) {
            Poll::Ready(Ok(true)) => Poll::Ready(Ok(())),
            Poll::Ready(Ok(false)) => Poll::Ready(if mandatory {
                Err(Error::HostUnreachable)
            } else {
                Ok(())
            }),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Sends a message whose first frame is the routing id (ZeroMQ's ROUTER framing).
    fn poll_push_slot(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let Some(mut msg) = self.sink_slot.take() else {
            return Poll::Ready(Ok(()));
        };
        let Some(peer) = msg.pop_front() else {
            return Poll::Ready(Ok(()));
        };
        let mut slot = Some(msg);
        let res = self.poll_route(cx, &peer, &mut slot);
        if res.is_pending() {
            if let Some(mut msg) = slot {
                msg.push_front(peer);
                self.sink_slot = Some(msg);
            }
        }
        res
    }
}

socket_type!(Router, SocketType::Router, "router");
impl_sink!(Router, poll_push_slot);
impl_stream!(Router, |r: &Router, peer, msg: Message| {
    let mut msg = msg;
    if let Some(id) = r.socket.engine.identity_of(peer) {
        msg.push_front(id);
    }
    msg
});

/// Joins a [`Router`] facing clients and a [`Dealer`] facing workers: every request a
/// client sends goes to the next worker with room, every reply back to the client that
/// asked. Runs until either socket closes.
///
/// ```no_run
/// # async fn f() -> zocket::Result<()> {
/// let mut frontend = zocket::Router::bind("tcp://127.0.0.1:5559").await?; // Req clients connect here
/// let mut backend = zocket::Dealer::bind("tcp://127.0.0.1:5560").await?;  // Rep workers connect here
/// zocket::proxy(&mut frontend, &mut backend).await?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// The error that ended either socket (`Error::Closed` when one was closed).
pub async fn proxy(frontend: &mut Router, backend: &mut Dealer) -> Result<()> {
    use futures::{SinkExt, StreamExt};
    loop {
        tokio::select! {
            request = frontend.next() => {
                let request = request.ok_or(Error::Closed)??;
                backend.send(request).await?;
            }
            reply = backend.next() => {
                let reply = reply.ok_or(Error::Closed)??;
                SinkExt::send(frontend, reply).await?;
            }
        }
    }
}
