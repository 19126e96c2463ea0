//! Asynchronous request/reply: dealer and router, and the proxy that joins them.

use std::task::{Context, Poll};

use bytes::Bytes;

use super::{impl_sink, impl_stream, poll_send_slot, socket_type, spend_budget, Socket};
use crate::engine::Delivery;
use crate::{Error, Message, PeerInfo, Result, SocketType, TryRecvError, TrySendError};

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

    /// Sends `msg` like [`send`](Self::send) if that would not wait; otherwise returns at
    /// once and hands the message back. For event loops that poll several things.
    /// Non-blocking and blocking sends share one queue, so mixing them loses or reorders
    /// nothing (a message given to the `Sink` and not yet flushed goes first).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> zocket::Result<()> {
    /// use zocket::TrySendError;
    /// let mut socket = zocket::Dealer::new(); // not connected: a send would wait
    /// match socket.try_send("hello") {
    ///     Err(TrySendError::Full(msg)) => assert_eq!(msg.frames()[0], "hello"), // ours again
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `TrySendError::Full(msg)` when `send` would wait: every peer's queue holds `send_hwm` messages, or no peer is connected (with [`Options::conflate`](crate::Options::conflate): only the latter);
    /// `TrySendError::Closed(msg)` once the socket is closed. The message comes back
    /// untouched either way.
    pub fn try_send(&mut self, msg: impl Into<Message>) -> std::result::Result<(), TrySendError> {
        self.socket.try_send_rr(&mut self.sink_slot, msg.into())
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

    /// Receives the next message if one is waiting; otherwise returns at once. For event
    /// loops that poll several things. It takes from the same queue as
    /// [`recv`](Self::recv), so mixing them loses or reorders nothing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> zocket::Result<()> {
    /// use zocket::TryRecvError;
    /// let mut socket = zocket::Dealer::new();
    /// socket.bind("inproc://doc-try-recv-dealer").await?;
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

socket_type!(Dealer, SocketType::Dealer, "dealer");
impl_sink!(Dealer, poll_push_slot);
impl_stream!(Dealer, |_: &Dealer, _, msg| msg);

/// Router: receives fair-queued with the sender's routing id, and sends each message to the
/// peer a routing id names.
///
/// A peer's routing id is the `identity` it set in its [`Options`](crate::Options::identity),
/// or one the router makes up (5 bytes, libzmq-style). A second peer claiming an identity
/// that a connected peer holds is refused. A message to an unknown peer, or to a peer whose
/// queue is full, is dropped, or fails with `Error::HostUnreachable` when
/// [`Options::router_mandatory`](crate::Options::router_mandatory) is set.
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

    /// Receives the next message and its sender's routing id if one is waiting; otherwise
    /// returns at once. Takes from the same queue as [`recv`](Self::recv).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> zocket::Result<()> {
    /// let mut router = zocket::Router::bind("inproc://doc-router-try-recv").await?;
    /// assert_eq!(router.try_recv().unwrap_err(), zocket::TryRecvError::Empty);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `TryRecvError::Empty` when nothing is waiting now; `TryRecvError::Closed` once the
    /// socket is closed.
    pub fn try_recv(&mut self) -> std::result::Result<(Bytes, Message), TryRecvError> {
        loop {
            let (peer, msg) = self.socket.try_recv()?;
            if let Some(id) = self.socket.engine.identity_of(peer) {
                return Ok((id, msg));
            }
        }
    }

    /// Sends `msg` to the peer whose routing id is `peer` without ever dropping it for a
    /// full queue: where [`send`](Self::send) would drop the message (the peer's queue
    /// holds `send_hwm` messages), `try_send` hands it back, so the caller can retry
    /// later or give up knowingly. Like `send`, it never waits.
    ///
    /// A message to an unknown routing id is dropped as `send` drops it (no error), unless
    /// [`router_mandatory`](crate::Options::router_mandatory) is set: then it comes back
    /// with `HostUnreachable`. A message the `Sink` was given and has not flushed goes
    /// first.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> zocket::Result<()> {
    /// use zocket::TrySendError;
    /// let opts = zocket::Options::new().router_mandatory(true);
    /// let mut router = zocket::Router::with_options(opts);
    /// match router.try_send("nobody", "hi") {
    ///     Err(TrySendError::HostUnreachable(msg)) => assert_eq!(msg.frames()[0], "hi"),
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `TrySendError::Full(msg)` when the peer's queue is full; `HostUnreachable(msg)` for
    /// an unknown peer with `router_mandatory`; `Closed(msg)` once the socket is closed.
    pub fn try_send(
        &mut self,
        peer: impl AsRef<[u8]>,
        msg: impl Into<Message>,
    ) -> std::result::Result<(), TrySendError> {
        let msg = msg.into();
        if let Some(mut pending) = self.sink_slot.take() {
            let to = pending.pop_front().unwrap_or_default();
            if let Err(e) = self.try_route(&to, pending) {
                let closed = matches!(e, TrySendError::Closed(_));
                let mut back = e.into_inner();
                back.push_front(to);
                self.sink_slot = Some(back);
                return Err(if closed {
                    TrySendError::Closed(msg)
                } else {
                    TrySendError::Full(msg)
                });
            }
        }
        self.try_route(peer.as_ref(), msg)
    }

    /// Routes `msg` as [`try_send`](Self::try_send) describes.
    fn try_route(&self, peer: &[u8], msg: Message) -> std::result::Result<(), TrySendError> {
        let engine = &self.socket.engine;
        let routed = match engine.peer_by_identity(peer) {
            Some(id) => engine.try_send_to(id, msg),
            None if engine.is_closing() => Err(TrySendError::Closed(msg)),
            None => Err(TrySendError::HostUnreachable(msg)),
        };
        match routed {
            Err(TrySendError::HostUnreachable(_)) if !engine.options.router_mandatory => Ok(()),
            other => other,
        }
    }

    /// Receives the next message, with who sent it: its [`PeerInfo`], whose
    /// [`routing_id`](PeerInfo::routing_id) is the id to answer it with (always there on a
    /// router) and whose [`curve_key`](PeerInfo::curve_key) is the CURVE key the sender
    /// proved it holds. Both are as they were when the message was read: a service that
    /// authorizes per request by key should use this rather than [`peer`](Self::peer)
    /// later, since a routing id may pass to another peer once its holder has gone.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> zocket::Result<()> {
    /// let mut router = zocket::Router::bind("inproc://doc-router-peer").await?;
    /// let mut dealer = zocket::Dealer::with_options(zocket::Options::new().identity("worker-7"));
    /// dealer.connect("inproc://doc-router-peer")?;
    /// dealer.send("ready").await?;
    /// let (from, _msg) = router.recv_with_peer().await?;
    /// let id = from.routing_id().unwrap().clone();
    /// assert_eq!(id, "worker-7");
    /// assert!(from.curve_key().is_none()); // not a CURVE link
    /// router.send(id, "work").await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `Error::Closed` once the socket is closed.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn recv_with_peer(&mut self) -> Result<(PeerInfo, Message)> {
        self.socket
            .recv_with_peer()
            .await
            .map(|(_, info, msg)| (info, msg))
    }

    /// Who the peer with routing id `peer` is now, or `None` when no connected peer has it.
    ///
    /// To know who sent a given message, use [`recv_with_peer`](Self::recv_with_peer): a
    /// routing id may be taken by another peer once its holder has gone.
    pub fn peer(&self, peer: impl AsRef<[u8]>) -> Option<PeerInfo> {
        self.socket.engine.info_by_identity(peer.as_ref())
    }

    /// Sends `msg` to the peer whose routing id is `peer`. Never waits on that peer: when
    /// it is unknown, or its queue is full (`send_hwm`: it does not read), the message is
    /// dropped (a full queue's drops are counted), so one peer that stops reading cannot
    /// stop the router from serving the others.
    ///
    /// # Errors
    /// With [`router_mandatory`](crate::Options::router_mandatory), `Error::HostUnreachable`
    /// instead of dropping, for an unknown peer or a full queue; `Error::Closed` once the
    /// socket is closed.
    ///
    /// # Cancel safety
    /// Waits only for the task's cooperative budget (`tokio::task::coop`); if cancelled
    /// before it completes, the message was not queued.
    pub async fn send(&mut self, peer: impl AsRef<[u8]>, msg: impl Into<Message>) -> Result<()> {
        let msg = msg.into();
        spend_budget().await;
        self.route(peer.as_ref(), msg)
    }

    /// Routes `msg` to the peer named `peer`, as [`send`](Self::send) describes.
    fn route(&self, peer: &[u8], msg: Message) -> Result<()> {
        let engine = &self.socket.engine;
        let delivery = match engine.peer_by_identity(peer) {
            Some(id) => engine.send_to(id, msg, false)?,
            None => Delivery::NoSuchPeer,
        };
        match delivery {
            Delivery::Queued => Ok(()),
            Delivery::NoSuchPeer | Delivery::Dropped if engine.options.router_mandatory => {
                Err(Error::HostUnreachable)
            }
            Delivery::NoSuchPeer | Delivery::Dropped => Ok(()),
        }
    }

    /// Sends a message whose first frame is the routing id (ZeroMQ's ROUTER framing).
    fn poll_push_slot(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let mut slot = self.sink_slot.take();
        let sent = poll_send_slot(cx, &mut slot, |mut msg| match msg.pop_front() {
            Some(peer) => self.route(&peer, msg),
            None => Ok(()),
        });
        self.sink_slot = slot;
        sent
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
