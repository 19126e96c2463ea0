//! A multiplexed byte stream.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::driver::Shared;
use crate::proto::native::{ReadBytes, StreamError, StreamId};
use crate::Error;

/// One stream of a [`Session`](super::Session): `AsyncRead + AsyncWrite`.
///
/// `shutdown` half-closes it (the peer reads to the end; this side can still read).
/// Dropping it works like closing a TCP socket: if everything the peer sent was read to
/// the end, queued data is still delivered and the peer sees end-of-stream; otherwise the
/// stream is reset and the peer's reads and writes fail.
pub struct Stream {
    shared: Arc<Shared>,
    id: StreamId,
}

impl Stream {
    pub(super) fn new(shared: Arc<Shared>, id: StreamId) -> Self {
        Stream { shared, id }
    }

    /// The stream's id on its connection (odd if the client opened it, even if the server).
    pub fn id(&self) -> u32 {
        self.id.0
    }
}

/// The `io::Error` for a stream that ended.
fn stream_error(e: StreamError) -> io::Error {
    match e {
        StreamError::Reset(reason) => io::Error::new(
            io::ErrorKind::ConnectionReset,
            format!("stream reset by peer (reason {})", reason.0),
        ),
        StreamError::Rejected { text, .. } => Error::Refused { reason: text }.into(),
        StreamError::TooLarge(over) => io::Error::new(io::ErrorKind::InvalidData, over.to_string()),
        StreamError::ConnectionLost(why) => io::Error::new(io::ErrorKind::ConnectionAborted, why),
        StreamError::Finished => io::Error::new(
            io::ErrorKind::BrokenPipe,
            "stream already shut down for writing",
        ),
        StreamError::Unknown => Error::Closed.into(),
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut inner = self.shared.lock();
        let res = inner.core.read_bytes(self.id, buf.initialize_unfilled());
        match res {
            Ok(ReadBytes::Data(n)) => {
                buf.advance(n);
                inner.wake_driver(); // a window update may be queued
                Poll::Ready(Ok(()))
            }
            Ok(ReadBytes::Finished) => Poll::Ready(Ok(())),
            Ok(ReadBytes::Blocked) => {
                inner.wait_readable(self.id, cx.waker());
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(stream_error(e))),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut inner = self.shared.lock();
        match inner.core.write_bytes(self.id, buf) {
            Ok(0) if !buf.is_empty() => {
                inner.wait_writable(self.id, cx.waker());
                Poll::Pending
            }
            Ok(n) => {
                inner.wake_driver();
                Poll::Ready(Ok(n))
            }
            Err(e) => Poll::Ready(Err(stream_error(e))),
        }
    }

    /// Waits until everything written so far has been handed to the transport.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut inner = self.shared.lock();
        match inner.core.poll_flushed(self.id) {
            Ok(true) => Poll::Ready(Ok(())),
            Ok(false) => {
                inner.wait_writable(self.id, cx.waker());
                inner.wake_driver();
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(stream_error(e))),
        }
    }

    /// Half-closes the stream after the data already written, and waits until that is sent.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        {
            let mut inner = self.shared.lock();
            if let Err(e) = inner.core.finish(self.id) {
                return Poll::Ready(Err(stream_error(e)));
            }
        }
        self.poll_flush(cx)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let mut inner = self.shared.lock();
        inner.core.release(self.id);
        inner.remove_handle();
        inner.wake_driver();
    }
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream").field("id", &self.id.0).finish()
    }
}
