//! Transports: how connections are made, never what is said on them.
//!
//! `tcp`, `ipc` and `inproc` bind and connect; [`listener::Listener`] accepts on any of them and
//! hands each connection to a handler, [`dialer::Dialer`] keeps one connection to an endpoint
//! alive with exponential backoff. Nothing here parses bytes: the greeting, the protocol and the
//! multiplexer run in the handler and the handshake closure given to these types.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

pub(crate) mod dialer;
pub(crate) mod inproc;
pub(crate) mod ipc;
pub(crate) mod listener;
pub(crate) mod shared;
pub(crate) mod tcp;

#[cfg(test)]
pub(crate) mod test_util;

/// A connected byte stream: TCP or a Unix domain socket.
///
/// Implements [`AsyncRead`] and [`AsyncWrite`] by delegating to the inner stream, including
/// vectored writes, so a driver can write many frames with one syscall.
#[derive(Debug)]
pub(crate) enum ByteStream {
    /// A TCP stream (`TCP_NODELAY` set).
    Tcp(TcpStream),
    /// A Unix domain socket stream.
    Ipc(UnixStream),
}

impl AsyncRead for ByteStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ByteStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            ByteStream::Ipc(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ByteStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ByteStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            ByteStream::Ipc(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ByteStream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ByteStream::Ipc(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ByteStream::Tcp(s) => s.is_write_vectored(),
            ByteStream::Ipc(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ByteStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            ByteStream::Ipc(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ByteStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            ByteStream::Ipc(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// A new connection, accepted or dialed, before any handshake.
#[derive(Debug)]
pub(crate) enum Connection {
    /// A byte stream (tcp:// or ipc://) that still needs a greeting and a protocol.
    Stream {
        /// The stream.
        io: ByteStream,
        /// The remote address as text (`127.0.0.1:40312`, or the socket file for ipc).
        peer: String,
    },
    /// An inproc:// connection: `Message`s move through channels, nothing is encoded.
    Inproc(inproc::InprocConn),
}
