//! A byte stream that several parties may write to without owning it.
//!
//! The session driver reads and writes a connection through [`SharedStream`]; a socket that
//! is about to wait for an answer (a `Req` after its request, a `Rep` after its reply) may
//! write what it just queued itself, through [`DirectWrite`], instead of waking the driver
//! and waiting for it to run: one task switch less on each leg of a round trip. Both go
//! through tokio's readiness-based `try_*` calls, which take `&self`.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::ByteStream;

/// Writes without waiting: what the kernel takes now, or `WouldBlock`.
pub(crate) trait DirectWrite: Send + Sync + std::fmt::Debug {
    /// Writes what it can of `bufs` without blocking.
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
}

impl DirectWrite for ByteStream {
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            ByteStream::Tcp(s) => s.try_write_vectored(bufs),
            ByteStream::Ipc(s) => s.try_write_vectored(bufs),
        }
    }
}

/// A [`ByteStream`] behind an `Arc`, with `AsyncRead + AsyncWrite` built on readiness.
#[derive(Debug, Clone)]
pub(crate) struct SharedStream(Arc<ByteStream>);

impl SharedStream {
    /// Shares `stream`.
    pub(crate) fn new(stream: ByteStream) -> Self {
        SharedStream(Arc::new(stream))
    }

    /// A handle for direct writes.
    pub(crate) fn direct(&self) -> Arc<dyn DirectWrite> {
        self.0.clone()
    }
}

/// Which readiness an operation waits for.
#[derive(Clone, Copy)]
enum Direction {
    Read,
    Write,
}

impl SharedStream {
    /// Runs `op` once the stream is ready in `direction`, again after each `WouldBlock`
    /// (a failed try clears the readiness, so the next poll registers the waker).
    fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
        mut op: impl FnMut(&ByteStream) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            let ready = match (&*self.0, direction) {
                (ByteStream::Tcp(s), Direction::Read) => s.poll_read_ready(cx),
                (ByteStream::Ipc(s), Direction::Read) => s.poll_read_ready(cx),
                (ByteStream::Tcp(s), Direction::Write) => s.poll_write_ready(cx),
                (ByteStream::Ipc(s), Direction::Write) => s.poll_write_ready(cx),
            };
            ready!(ready)?;
            match op(&self.0) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                res => return Poll::Ready(res),
            }
        }
    }

    /// Reads what is available into `buf`'s spare capacity (growing it if it has none),
    /// without zeroing the memory first; `Ok(0)` at end of stream.
    pub(crate) fn poll_read_buf(
        &self,
        cx: &mut Context<'_>,
        buf: &mut bytes::BytesMut,
    ) -> Poll<io::Result<usize>> {
        self.poll_io(cx, Direction::Read, |stream| match stream {
            ByteStream::Tcp(s) => s.try_read_buf(buf),
            ByteStream::Ipc(s) => s.try_read_buf(buf),
        })
    }
}

impl AsyncRead for SharedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = ready!(self.poll_io(cx, Direction::Read, |stream| {
            let unfilled = buf.initialize_unfilled();
            match stream {
                ByteStream::Tcp(s) => s.try_read(unfilled),
                ByteStream::Ipc(s) => s.try_read(unfilled),
            }
        }))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for SharedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_io(cx, Direction::Write, |stream| {
            stream.try_write_vectored(bufs)
        })
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(())) // sockets have no user-space buffer
    }

    /// The connection closes when the last handle is dropped; there is no half-close.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
