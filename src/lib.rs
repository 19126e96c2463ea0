//! zocket: ZeroMQ-style messaging for tokio.
//!
//! Typed sockets — [`Pub`]/[`Sub`], [`Req`]/[`Rep`], [`Dealer`]/[`Router`], [`Push`]/[`Pull`],
//! [`Pair`], [`XPub`]/[`XSub`] — that connect before or after their peer exists, reconnect by themselves, and
//! share one multiplexed connection per remote process. Each type has only the operations its
//! pattern allows; all of them deref to [`Socket`] for `bind`, `connect`, `monitor`, `peers` and
//! `wait_for_peers`. Underneath is the [`mux`] stream multiplexer, also usable on its own.
//!
//! # Quick start
//!
//! ```
//! use futures::StreamExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> zocket::Result<()> {
//! // pub/sub in one process; `tcp://127.0.0.1:0` or `ipc:///tmp/x.sock` work the same way
//! let publisher = zocket::Pub::bind("inproc://quickstart").await?;
//! let mut sub = zocket::Sub::connect("inproc://quickstart").await?;
//! sub.subscribe("orders.");
//! sub.wait_for_peers(1).await?;                  // the publisher now filters for us
//! publisher.send(["orders.eu", "{\"id\":1}"]).await?; // a two-frame message
//! let msg = sub.next().await.unwrap()?;
//! assert_eq!(msg.frames()[0], "orders.eu");
//!
//! // req/rep: one request in flight, enforced by the borrow checker
//! let mut rep = zocket::Rep::bind("inproc://quickstart-rpc").await?;
//! let mut req = zocket::Req::connect("inproc://quickstart-rpc").await?;
//! let server = tokio::spawn(async move {
//!     let request = rep.recv().await?;
//!     let answer = format!("got {} frame(s)", request.message().len());
//!     request.reply(answer).await
//! });
//! let reply = req.request("hello").await?;
//! assert_eq!(reply.frames()[0], "got 1 frame(s)");
//! server.await.unwrap()?;
//! # Ok(()) }
//! ```
//!
//! # Patterns
//!
//! | type | send | receive | when a peer's queue is full (`send_hwm`) |
//! |---|---|---|---|
//! | [`Pub`] | to every subscriber whose prefix matches the first frame | — | that subscriber misses the message |
//! | [`Sub`] | — | fair-queued | backpressure to the publisher |
//! | [`Req`] | round-robin, one request in flight | its reply only, from the peer holding the request | wait |
//! | [`Rep`] | the reply to the request being served | fair-queued, one at a time | that reply is dropped (counted); never waits on one client |
//! | [`Dealer`] | round-robin over peers with room | fair-queued | wait |
//! | [`Router`] | to the peer a routing id names (a live peer's id is refused to a newcomer, or handed over with [`Options::router_handover`]) | fair-queued, with the routing id | dropped, counted (or `HostUnreachable` with `router_mandatory`); never waits |
//! | [`Push`] | round-robin over peers with room | — | wait |
//! | [`Pull`] | — | fair-queued | backpressure |
//! | [`Pair`] | to its one peer (a second is refused, on every transport) | from its one peer | wait |
//! | [`XPub`] | as a `Pub` | its subscribers' subscriptions (`0x01`/`0x00` + prefix, deduplicated unless [`Options::xpub_verbose`]) and an `XSub`'s upstream messages | as a `Pub` |
//! | [`XSub`] | subscriptions as messages (`0x01`/`0x00` + prefix); other messages upstream to every publisher | as a `Sub` | upstream messages: dropped for that publisher |
//!
//! [`proxy`] joins a [`Router`] and a [`Dealer`] into a broker; [`forward`] joins an [`XSub`]
//! and an [`XPub`] into a pub/sub forwarder. Messages follow ZeroMQ's
//! envelope rules, and a socket talks ZMTP 3.1 to libzmq (and every ZeroMQ program) on the
//! same `tcp://` endpoints: zocket peers find each other in the greeting and switch to the
//! multiplexed native wire, anyone else gets plain ZMTP.
//!
//! # Who sent it, and what went through
//!
//! A [`Rep`]'s [`Request::peer`], and `recv_with_peer` on [`Router`], [`Dealer`], [`Pull`],
//! [`Sub`] and [`Pair`], say who sent a message ([`PeerInfo`]: its address, wire, routing id
//! and, on a CURVE link, the public key its handshake proved), so a service can authorize
//! per request. [`Socket::stats`] counts, per socket and per peer, messages and bytes sent and
//! received, messages dropped at the high-water mark (a `Pub` dropping for a slow subscriber
//! shows here), messages queued, and links accepted, connected, lost and refused; the
//! counters are always on.
//!
//! # Endpoints
//!
//! `tcp://host:port[/path]`, `ipc:///file[#path]`, `inproc://name`, `dns://host:port[/path]`
//! and `mdns://name[/path]` parse into an [`Endpoint`]; a malformed one is
//! [`Error::InvalidEndpoint`] quoting the input and the expected form. A `dns://` connect
//! keeps one link per address of the name; an `mdns://` bind announces
//! the socket on the local network and an `mdns://` connect keeps one link per instance
//! announcing that name ([`discovery`]).
//!
//! # Reconnect
//!
//! [`Socket::connect`] returns at once. Connections are dialed in the background and redialed after a failure with exponential
//! backoff and jitter, from [`Options::reconnect_interval`] (100 ms) up to
//! [`Options::reconnect_interval_max`] (10 s); the delay resets after a successful handshake.
//! A [`monitor::Monitor`] reports every step.
//!
//! # Flow control
//!
//! Each multiplexed stream has its own credit window ([`Options::stream_window`], 1 MiB): a
//! peer can send that much before our reader consumes it, so a slow reader holds back only
//! its own stream. Data goes out in chunks of at most 64 KiB, streams taking turns. ZMTP
//! has no credit: a plain ZMTP peer's input is left to TCP backpressure once as many bytes
//! (or [`Options::recv_hwm`] messages) wait unread.
//!
//! [`Options::conflate`] replaces the queue with the newest whole message per peer (Pub, Sub,
//! Push, Pull, Dealer, Pair; multipart messages too). Every socket that sends or receives has
//! `try_send` / `try_recv` beside `send` / `recv`, for event loops: they return at once, on the
//! same queues, and a `try_send` that cannot send hands the message back
//! ([`TrySendError::Full`]).
//!
//! # Limits
//!
//! Every peer is untrusted. What one connection can make a process hold is bounded by
//! [`Options`], counted as really held (a 0-byte frame is not free, and payloads under
//! 64 KiB are copied out of the read buffer so a small slice never keeps a large buffer
//! alive):
//!
//! | limit | default | defends against |
//! |---|---|---|
//! | [`Options::max_message_size`] | 64 MiB | one huge message |
//! | [`Options::max_message_frames`] | 65,536 | a message that never ends (`MORE`, `MORE`, …) |
//! | [`Options::stream_window`] | 1 MiB | one unread stream |
//! | [`Options::connection_window`] | 32 MiB | many unread streams of one connection: reading it pauses |
//! | [`Options::max_streams`] | 256 | streams opened on one connection |
//! | [`Options::max_subscription_bytes`] | 8 MiB | a subscriber's endless subscriptions |
//! | [`Options::max_connections`] | 1024 | connections per listener |
//! | [`Options::max_handshakes`] | 64 | greetings in progress per listener |
//! | [`Options::handshake_timeout`] | 10 s | a peer that connects and says nothing |
//!
//! Every length is checked before memory is reserved for it, and parsing is linear in its
//! input; handshake commands have a small limit of their own (a ZMTP READY: 8 KiB). A peer over
//! a limit loses what it abused, with the reason in the log and on the monitor: a message over
//! its limit on the native wire resets only its stream (the connection carries every socket of
//! the remote process, and they go on); malformed or flooding frames close the connection
//! (GOAWAY, or a ZMTP ERROR). Other peers of the socket do not notice, and no socket waits on
//! one peer for the others (see the table above). Nothing panics on network input. The
//! reason is logged with `tracing` at `warn` at most once a second for each kind of fault (the
//! others at `debug`, counted in the next warning), so a peer that reconnects in a loop cannot
//! flood the log; the monitor reports every one.
//!
//! # Cancel safety
//!
//! Async methods document their cancel safety. The multiplexer's `open` and `accept` are
//! cancel safe; a cancelled read or write of a [`mux::Stream`] loses nothing that was not
//! reported as read or written.

pub mod curve;
pub mod discovery;
mod driver;
mod endpoint;
mod engine;
mod error;
mod id_hash;
mod instance;
mod message;
pub mod mux;
mod options;
mod pattern;
mod proto;
mod socket;
mod socket_type;
pub mod stats;
mod transport;
mod warn_limit;

pub mod monitor;

pub use endpoint::{Endpoint, Host};
pub use error::{Error, Result, TryRecvError, TrySendError};
pub use message::{IntoFrames, Message};
pub use options::{
    Options, DEFAULT_CONNECTION_WINDOW, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_HANDSHAKES,
    DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_MAX_SUBSCRIPTION_BYTES, DEFAULT_STREAM_WINDOW,
};
pub use socket::{
    forward, proxy, Dealer, Pair, Pub, Pull, Push, Rep, Req, Request, Router, Socket, Sub, XPub,
    XSub,
};
pub use socket_type::SocketType;
pub use stats::{PeerInfo, Stats};
