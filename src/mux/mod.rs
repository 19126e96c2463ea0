//! A stream multiplexer: many independent byte streams over one connection.
//!
//! [`Session`] runs zocket's native wire over any `AsyncRead + AsyncWrite` (a TCP stream, a
//! Unix socket, an in-memory duplex, a TLS stream); [`Session::open`] and
//! [`Session::accept`] give [`Stream`]s that are `AsyncRead + AsyncWrite` themselves, like
//! yamux's. Each stream has its own flow-control window, so a stream whose reader is slow
//! stops only itself; large writes are cut into chunks and streams take turns, so a big
//! transfer on one stream does not delay a small one on another.
//!
//! ```
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> zocket::Result<()> {
//! let (a, b) = tokio::io::duplex(64 * 1024);
//! let client = zocket::mux::Session::client(a);
//! let server = zocket::mux::Session::server(b);
//!
//! let mut out = client.open().await?;
//! out.write_all(b"hello").await?;
//! out.shutdown().await?; // half-close: the server reads to the end
//!
//! let mut inc = server.accept().await?;
//! let mut text = String::new();
//! inc.read_to_string(&mut text).await?;
//! assert_eq!(text, "hello");
//! # Ok(())
//! # }
//! ```
//!
//! A session lives while its [`Session`] handle or any of its streams is alive; dropping
//! the last of them closes the connection gracefully. [`Session::close`] ends it at once
//! for every stream: their reads and writes fail with an error instead of hanging.

mod session;
mod stream;

pub use session::Session;
pub use stream::Stream;
