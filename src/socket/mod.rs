//! The typed sockets: thin front ends over the [engine](crate::engine), each exposing only
//! what its pattern allows (a `Pub` has no `recv`, a `Sub` no `send`).
//!
//! Every send, receive, request and reply (their `Sink` and `Stream` forms included) spends
//! one unit of tokio's cooperative budget when it completes, as tokio's own channels do, and
//! yields instead once the task has spent it: a loop over a socket whose operations are
//! always ready lets the runtime's other tasks (the connection drivers included) run, on a
//! current_thread runtime as on several workers.

mod pair;
mod pipeline;
mod pubsub;
mod reqrep;
mod routing;
#[cfg(test)]
mod tests;
mod xpubsub;

pub use pair::Pair;
pub use pipeline::{Pull, Push};
pub use pubsub::{Pub, Sub};
pub use reqrep::{Rep, Req, Request};
pub use routing::{proxy, Dealer, Router};
pub use xpubsub::{forward, XPub, XSub};

use std::fmt;
use std::future::poll_fn;
use std::sync::Arc;

use crate::engine::Engine;
use crate::monitor::Monitor;
use crate::pattern::PeerId;
use crate::{
    Endpoint, Message, Options, PeerInfo, Result, SocketType, Stats, TryRecvError, TrySendError,
};

/// What every socket can do: bind, connect, watch its connections, count its peers.
///
/// Each socket type dereferences to `Socket`, so these are called on any of them:
/// `pub_.bind("tcp://127.0.0.1:0")`, `sub.connect(...)`, `req.monitor()`.
pub struct Socket {
    engine: Arc<Engine>,
}

impl Socket {
    fn new(socket_type: SocketType, options: Options) -> Socket {
        Socket {
            engine: Engine::new(socket_type, options),
        }
    }

    /// The socket's type.
    pub fn socket_type(&self) -> SocketType {
        self.engine.socket_type
    }

    /// Binds an endpoint and returns the endpoint actually bound (with the real port when
    /// `:0` was asked). A socket may bind any number of endpoints, of any transport.
    /// Sockets of one process may bind the same `tcp://host:port` with different paths.
    ///
    /// # Errors
    /// `Error::InvalidEndpoint` for a malformed endpoint; `Error::AddrInUse` when the
    /// address (or the path on it) is taken; `Error::Io` for other failures.
    ///
    /// # Cancel safety
    /// Cancel safe: a cancelled bind leaves nothing bound.
    pub async fn bind(&self, endpoint: &str) -> Result<Endpoint> {
        self.engine.bind(endpoint).await
    }

    /// The endpoints this socket is bound to, as [`bind`](Self::bind) returned them (real
    /// ports, paths included), in the order they were bound.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> zocket::Result<()> {
    /// let pull = zocket::Pull::bind("tcp://127.0.0.1:0").await?;
    /// let ep = pull.endpoints()[0].to_string(); // e.g. "tcp://127.0.0.1:41873"
    /// let _push = zocket::Push::connect(&ep).await?;
    /// # Ok(()) }
    /// ```
    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.engine.endpoints()
    }

    /// Connects to an endpoint: returns at once and dials in the background, before the
    /// peer exists if need be, and again whenever the connection is lost (exponential
    /// backoff with jitter, see [`Options::reconnect_interval`]).
    ///
    /// # Errors
    /// `Error::InvalidEndpoint` for a malformed endpoint.
    pub fn connect(&self, endpoint: &str) -> Result<()> {
        self.engine.connect(endpoint)
    }

    /// Stops connecting to `endpoint` (as given to [`connect`](Self::connect)) and closes
    /// the link that connect made; no reconnect follows.
    ///
    /// # Errors
    /// `Error::InvalidEndpoint` for a malformed endpoint; `Error::Io` (`NotFound`) when the
    /// socket is not connecting to it.
    pub fn disconnect(&self, endpoint: &str) -> Result<()> {
        self.engine.disconnect(endpoint)
    }

    /// Stops listening on `endpoint` (as given to [`bind`](Self::bind), or as it returned
    /// it); peers already connected through it stay connected.
    ///
    /// # Errors
    /// `Error::InvalidEndpoint` for a malformed endpoint; `Error::Io` (`NotFound`) when the
    /// socket is not bound to it.
    ///
    /// # Cancel safety
    /// Cancel safe: the listener is released either way, only the wait for its socket to
    /// close is cut short.
    pub async fn unbind(&self, endpoint: &str) -> Result<()> {
        self.engine.unbind(endpoint).await
    }

    /// A stream of this socket's connection events (listening, connected, retrying,
    /// handshake failures, ...). Events before the call are not replayed.
    pub fn monitor(&self) -> Monitor {
        self.engine.monitor()
    }

    /// A snapshot of the socket's statistics: per socket and per peer (with its
    /// [`PeerInfo`]), the messages and payload bytes sent and received, the messages
    /// dropped at the high-water mark and those queued now, and the link counts (accepted,
    /// connected, disconnected, failed handshakes). The counters are always on; see
    /// [`Stats`] for what each one counts.
    ///
    /// A publisher that drops messages for a slow subscriber shows it here:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> zocket::Result<()> {
    /// let publisher = zocket::Pub::with_options(zocket::Options::new().send_hwm(10));
    /// publisher.bind("inproc://stats-pub").await?;
    /// let sub = zocket::Sub::connect("inproc://stats-pub").await?;
    /// sub.subscribe("");
    /// sub.wait_for_peers(1).await?;
    /// publisher.wait_for_peers(1).await?;
    /// for _ in 0..5000 {
    ///     publisher.send("tick").await?; // the Sub never reads
    /// }
    /// let stats = publisher.stats();
    /// assert!(stats.traffic.dropped > 0);
    /// assert_eq!(stats.traffic.messages_sent + stats.traffic.dropped, 5000);
    /// eprintln!("{stats}"); // a few lines of text, one per peer
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> Stats {
        self.engine.stats()
    }

    /// Number of peers connected and ready to exchange messages.
    pub fn peers(&self) -> usize {
        self.engine.peer_count()
    }

    /// Waits until at least `n` peers are connected and ready. For a `Sub` (or `XSub`),
    /// "ready" means the publisher has applied its subscriptions, so nothing published
    /// afterwards is missed (ZeroMQ's "slow joiner" problem). A `Sub` sends its
    /// subscriptions when it starts receiving (`recv`, polling it as a `Stream`, or this
    /// call; an `XSub` also at its first send or subscribe): a publisher counts it from then
    /// on, with every subscription made before.
    ///
    /// # Errors
    /// `Error::Closed` if the socket closes first.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn wait_for_peers(&self, n: usize) -> Result<()> {
        self.engine.wait_for_peers(n).await
    }

    async fn close(&self) {
        self.engine.close().await;
    }

    async fn recv(&self) -> Result<(PeerId, Message)> {
        poll_fn(|cx| self.engine.poll_recv(cx)).await
    }

    /// [`recv`](Self::recv), with who sent the message.
    async fn recv_with_peer(&self) -> Result<(PeerId, PeerInfo, Message)> {
        loop {
            let (id, msg, info) = poll_fn(|cx| self.engine.poll_recv_from(cx)).await?;
            // (Always there: the sender is looked up under the lock its message was read
            // with.)
            if let Some(info) = info {
                return Ok((id, info, msg));
            }
        }
    }

    /// Sends what a `Sink` left in `slot`, round-robin (spending budget as
    /// [`Engine::poll_send_rr`] does).
    fn poll_flush_slot(
        &self,
        cx: &mut std::task::Context<'_>,
        slot: &mut Option<Message>,
    ) -> std::task::Poll<Result<()>> {
        if slot.is_none() {
            return std::task::Poll::Ready(Ok(()));
        }
        self.engine
            .poll_send_rr(cx, slot, false)
            .map(|r| r.map(|_| ()))
    }

    /// A receive that never waits (each type's `try_recv`).
    fn try_recv(&self) -> Result<(PeerId, Message), TryRecvError> {
        self.engine.try_recv_now()
    }

    /// A fan-out send that never waits (Pub's and XPub's `try_send`): a publisher never
    /// waits on subscribers, so only a closed socket refuses it, handing `msg` back.
    fn try_publish(&self, msg: Message) -> Result<(), TrySendError> {
        if self.engine.is_closing() {
            return Err(TrySendError::Closed(msg));
        }
        // Closing needs the handle (`close(self)`, drop), so it cannot begin in between.
        self.engine
            .send_fanout(msg)
            .map_err(|_| TrySendError::Closed(Message::new()))
    }

    /// [`try_recv`](Self::try_recv), with who sent the message.
    fn try_recv_with_peer(&self) -> Result<(PeerId, PeerInfo, Message), TryRecvError> {
        loop {
            let (id, msg, info) = self.engine.try_recv_from()?;
            // (Always there, as in `recv_with_peer`.)
            if let Some(info) = info {
                return Ok((id, info, msg));
            }
        }
    }

    /// A round-robin send that never waits (each type's `try_send`). What a `Sink` left in
    /// `slot` goes first, so the two never overtake each other: while it cannot go, `msg`
    /// comes back.
    fn try_send_rr(&self, slot: &mut Option<Message>, msg: Message) -> Result<(), TrySendError> {
        if let Some(pending) = slot.take() {
            if let Err(e) = self.engine.try_send_rr_now(pending) {
                let closed = matches!(e, TrySendError::Closed(_));
                *slot = Some(e.into_inner());
                return Err(if closed {
                    TrySendError::Closed(msg)
                } else {
                    TrySendError::Full(msg)
                });
            }
        }
        self.engine.try_send_rr_now(msg).map(|_| ())
    }

    async fn send_rr(&self, msg: Message, direct: bool) -> Result<PeerId> {
        let mut slot = Some(msg);
        poll_fn(|cx| self.engine.poll_send_rr(cx, &mut slot, direct)).await
    }
}

/// Spends one unit of the task's cooperative budget, for a send that completes without
/// waiting (`Pub::send`, `Router::send`, `Request::reply`): `Pending` once the task has spent
/// its budget (it is woken again at once, behind the runtime's other tasks), so that a loop
/// of such sends lets the connection drivers and every other task run. See
/// [`cooperate`](crate::engine::cooperate).
async fn spend_budget() {
    poll_fn(poll_spend_budget).await;
}

/// [`spend_budget`] for a `Sink`'s poll.
fn poll_spend_budget(cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
    crate::engine::cooperate(cx, |_| std::task::Poll::Ready(()))
}

/// The `Sink` flush of the sockets whose sends never wait on a peer (Pub, XPub, XSub,
/// Router): what `slot` holds goes to `send` once the task's cooperative budget allows.
fn poll_send_slot(
    cx: &mut std::task::Context<'_>,
    slot: &mut Option<Message>,
    send: impl FnOnce(Message) -> Result<()>,
) -> std::task::Poll<Result<()>> {
    if slot.is_none() {
        return std::task::Poll::Ready(Ok(()));
    }
    std::task::ready!(poll_spend_budget(cx));
    std::task::Poll::Ready(slot.take().map_or(Ok(()), send))
}

impl Drop for Socket {
    fn drop(&mut self) {
        // Queued messages are still delivered, for at most `linger`, by the engine's task.
        self.engine.close_in_background();
    }
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket")
            .field("type", &self.engine.socket_type)
            .finish_non_exhaustive()
    }
}

/// The constructors, shorthands, `close` and `Deref<Target = Socket>` every type has.
macro_rules! socket_type {
    ($name:ident, $ty:expr, $kind:literal) => {
        impl $name {
            #[doc = concat!("A new ", $kind, " socket with default options; bind or connect it next.")]
            ///
            /// # Panics
            /// Outside a tokio runtime.
            pub fn new() -> Self {
                Self::with_options($crate::Options::default())
            }

            #[doc = concat!("A new ", $kind, " socket with `options`.")]
            ///
            /// # Panics
            /// Outside a tokio runtime.
            pub fn with_options(options: $crate::Options) -> Self {
                Self::from_socket($crate::socket::Socket::new($ty, options))
            }

            #[doc = concat!("A new ", $kind, " socket bound to `endpoint` (shorthand for `new` then `bind`).")]
            ///
            /// # Errors
            /// As [`Socket::bind`](crate::Socket::bind).
            pub async fn bind(endpoint: &str) -> $crate::Result<Self> {
                let socket = Self::new();
                $crate::socket::Socket::bind(&socket, endpoint).await?;
                Ok(socket)
            }

            #[doc = concat!("A new ", $kind, " socket connecting to `endpoint` (shorthand for `new` then `connect`); returns at once.")]
            ///
            /// # Errors
            /// As [`Socket::connect`](crate::Socket::connect).
            pub async fn connect(endpoint: &str) -> $crate::Result<Self> {
                let socket = Self::new();
                $crate::socket::Socket::connect(&socket, endpoint)?;
                Ok(socket)
            }

            /// Closes the socket: stops binding and connecting, delivers queued outgoing
            /// messages for at most [`Options::linger`](crate::Options::linger), then
            /// closes every connection. Dropping the socket does the same in the
            /// background.
            pub async fn close(self) {
                self.as_socket().close().await;
            }

            fn as_socket(&self) -> &$crate::socket::Socket {
                &self.socket
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::ops::Deref for $name {
            type Target = $crate::socket::Socket;
            fn deref(&self) -> &$crate::socket::Socket {
                &self.socket
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }
    };
}
pub(crate) use socket_type;

/// `futures::Stream` for a receiving socket: whole messages until the socket closes.
macro_rules! impl_stream {
    ($name:ident, $map:expr) => {
        impl futures::Stream for $name {
            type Item = $crate::Result<$crate::Message>;
            fn poll_next(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Option<Self::Item>> {
                let this = self.get_mut();
                match this.socket.engine.poll_recv(cx) {
                    std::task::Poll::Ready(Ok((peer, msg))) => {
                        #[allow(clippy::redundant_closure_call)]
                        let msg = ($map)(&*this, peer, msg);
                        std::task::Poll::Ready(Some(Ok(msg)))
                    }
                    std::task::Poll::Ready(Err($crate::Error::Closed)) => {
                        std::task::Poll::Ready(None)
                    }
                    std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Some(Err(e))),
                    std::task::Poll::Pending => std::task::Poll::Pending,
                }
            }
        }
    };
}
pub(crate) use impl_stream;

/// `futures::Sink<Message>` for a sending socket, through a one-message slot.
macro_rules! impl_sink {
    ($name:ident, $push:ident) => {
        impl futures::Sink<$crate::Message> for $name {
            type Error = $crate::Error;
            fn poll_ready(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<$crate::Result<()>> {
                self.get_mut().$push(cx)
            }
            fn start_send(
                self: std::pin::Pin<&mut Self>,
                item: $crate::Message,
            ) -> $crate::Result<()> {
                self.get_mut().sink_slot = Some(item);
                Ok(())
            }
            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<$crate::Result<()>> {
                self.get_mut().$push(cx)
            }
            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<$crate::Result<()>> {
                self.get_mut().$push(cx)
            }
        }
    };
}
pub(crate) use impl_sink;
