//! zocket: ZeroMQ-style messaging for tokio.
//!
//! zocket gives typed socket patterns (coming next: `Pub`/`Sub`, `Req`/`Rep`,
//! `Dealer`/`Router`, `Push`/`Pull`, `Pair`) over a transport that reconnects by itself and
//! carries many sockets over one multiplexed connection. This release has the foundation they
//! stand on: the [`mux`] stream multiplexer, the native wire protocol (`docs/PROTOCOL.md`),
//! the tcp/ipc/inproc transports with a reconnecting dialer, and the core types
//! [`Message`], [`Endpoint`], [`Options`] and [`Error`].
//!
//! # Quick start
//!
//! ```
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> zocket::Result<()> {
//! let (a, b) = tokio::io::duplex(64 * 1024); // or a TcpStream, a UnixStream, ...
//! let client = zocket::mux::Session::client(a);
//! let server = zocket::mux::Session::server(b);
//! tokio::spawn(async move {
//!     while let Ok(mut stream) = server.accept().await {
//!         tokio::spawn(async move {
//!             let mut req = String::new();
//!             stream.read_to_string(&mut req).await?;
//!             stream.write_all(req.to_uppercase().as_bytes()).await?;
//!             stream.shutdown().await
//!         });
//!     }
//! });
//! let mut stream = client.open().await?;
//! stream.write_all(b"hello").await?;
//! stream.shutdown().await?;
//! let mut reply = String::new();
//! stream.read_to_string(&mut reply).await?;
//! assert_eq!(reply, "HELLO");
//! # Ok(()) }
//! ```
//!
//! # Endpoints
//!
//! `tcp://host:port[/path]`, `ipc:///file[#path]`, `inproc://name`, `dns://host:port[/path]`
//! and `mdns://name[/path]` parse into an [`Endpoint`]; a malformed one is
//! [`Error::InvalidEndpoint`] quoting the input and the expected form.
//!
//! # Reconnect
//!
//! Connections are dialed in the background and redialed after a failure with exponential
//! backoff and jitter, from [`Options::reconnect_interval`] (100 ms) up to
//! [`Options::reconnect_interval_max`] (10 s); the delay resets after a successful handshake.
//! A [`monitor::Monitor`] reports every step.
//!
//! # Flow control
//!
//! Each multiplexed stream has its own credit window ([`Options::stream_window`], 1 MiB): a
//! peer can send that much before our reader consumes it, so a slow reader holds back only
//! its own stream. Data goes out in chunks of at most 64 KiB, streams taking turns.
//!
//! # Limits
//!
//! Every length a peer sends is checked before memory is reserved for it: frame payloads
//! (64 KiB for data, 4 KiB for control), messages ([`Options::max_message_size`], 64 MiB),
//! streams per connection ([`Options::max_streams`], 256). A peer over a limit loses its
//! connection with [`Error::Protocol`] or [`Error::MessageTooLarge`]; nothing panics on
//! network input.
//!
//! # Cancel safety
//!
//! Async methods document their cancel safety. The multiplexer's `open` and `accept` are
//! cancel safe; a cancelled read or write of a [`mux::Stream`] loses nothing that was not
//! reported as read or written.

// Parts of the driver and the protocol core (message streams, paths, socket types) are
// used by the socket engine that sits on top of them.
#[allow(dead_code, unused_imports)]
mod driver;
mod endpoint;
mod engine;
mod error;
mod instance;
mod message;
pub mod mux;
mod options;
#[allow(dead_code)] // used by the socket engine
mod pattern;
#[allow(dead_code, unused_imports)]
mod proto;
mod socket;
mod socket_type;
#[allow(dead_code)] // the dialer and listener are driven by the socket engine
mod transport;

pub mod monitor;

pub use endpoint::{Endpoint, Host};
pub use error::{Error, Result};
pub use message::Message;
pub use options::{Options, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_STREAM_WINDOW};
pub use socket::{proxy, Dealer, Pair, Pub, Pull, Push, Rep, Req, Request, Router, Socket, Sub};
pub use socket_type::SocketType;
