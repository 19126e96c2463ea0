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

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

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
        self.poll_io(cx, Direction::Read, |stream| read_draining(stream, buf))
    }
}

/// Reads what is available into `buf`. A read that returns less than the room it was given
/// has emptied the kernel's receive queue (a stream socket returns everything it holds, up to
/// the room), so the readiness is cleared right away: the next poll waits for new data
/// instead of making a read syscall that can only say `WouldBlock` (one syscall in two on
/// a request/reply connection). Clearing is safe against data arriving meanwhile: tokio
/// clears only if no readiness event came in since this operation began (its tick), so new
/// data is never missed.
fn read_draining(stream: &ByteStream, buf: &mut bytes::BytesMut) -> io::Result<usize> {
    let room = buf.capacity() - buf.len();
    let mut drained = None;
    let mut read = |res: io::Result<usize>| match res {
        Ok(n) if n > 0 && n < room => {
            drained = Some(n);
            Err(io::ErrorKind::WouldBlock.into()) // what `try_io` takes as "clear readiness"
        }
        other => other,
    };
    let res = match stream {
        ByteStream::Tcp(s) => s.try_io(Interest::READABLE, || read(s.try_read_buf(buf))),
        ByteStream::Ipc(s) => s.try_io(Interest::READABLE, || read(s.try_read_buf(buf))),
    };
    match (res, drained) {
        (_, Some(n)) => Ok(n),
        (res, None) => res,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;

    async fn tcp_pair() -> (tokio::net::TcpStream, SharedStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(tokio::net::TcpStream::connect(addr), async {
            listener.accept().await.unwrap().0
        });
        (
            client.unwrap(),
            SharedStream::new(ByteStream::Tcp(accepted)),
        )
    }

    async fn read_some(stream: &SharedStream, buf: &mut bytes::BytesMut) -> usize {
        let read = std::future::poll_fn(|cx| stream.poll_read_buf(cx, buf));
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("data written was never reported readable")
            .unwrap()
    }

    #[tokio::test]
    async fn a_short_read_clears_readiness_yet_later_data_still_wakes_the_reader() {
        let (mut writer, reader) = tcp_pair().await;
        let mut buf = bytes::BytesMut::with_capacity(64 * 1024);
        for round in 0..200u32 {
            let chunk = vec![round as u8; 1 + (round as usize % 100)];
            writer.write_all(&chunk).await.unwrap();
            let mut got = 0;
            while got < chunk.len() {
                got += read_some(&reader, &mut buf).await;
            }
            assert_eq!(got, chunk.len(), "round {round}");
            // The short read cleared the readiness: no read syscall is needed to learn that
            // nothing is left.
            let ByteStream::Tcp(tcp) = &*reader.0 else {
                unreachable!()
            };
            let ready = std::future::poll_fn(|cx| Poll::Ready(tcp.poll_read_ready(cx))).await;
            assert!(ready.is_pending(), "round {round}: still marked readable");
            assert!(buf.iter().all(|&b| b == round as u8), "round {round}");
            buf.clear();
        }
        // Nothing was left behind: the next read waits (the readiness was cleared), and the
        // end of the stream is still reported.
        let pending = std::future::poll_fn(|cx| Poll::Ready(reader.poll_read_buf(cx, &mut buf)));
        assert!(pending.await.is_pending());
        drop(writer);
        assert_eq!(read_some(&reader, &mut buf).await, 0);
    }
}
