//! The multiplexer session handle.

use std::fmt;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;

use tokio::io::{AsyncRead, AsyncWrite};

use super::Stream;
use crate::driver::{self, AnyIo, Greeting, Shared};
use crate::proto::native::{OpenError, Reason, Side, RAW_STREAM};
use crate::{Error, Options, Result};

/// One multiplexed connection. Cheap to clone; every clone is the same session.
///
/// # Examples
/// Over TCP, the server side:
/// ```no_run
/// # async fn f() -> zocket::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:7000").await?;
/// let (tcp, _) = listener.accept().await?;
/// let session = zocket::mux::Session::server(tcp);
/// while let Ok(stream) = session.accept().await {
///     tokio::spawn(async move { /* read and write `stream` */ drop(stream) });
/// }
/// # Ok(()) }
/// ```
pub struct Session {
    shared: Arc<Shared>,
}

impl Session {
    /// Starts the client (dialing) side of a session over `io`, with default [`Options`].
    ///
    /// The greeting is exchanged by the session's task in the background; the first `open`
    /// waits for it. Must be called within a tokio runtime.
    pub fn client<T>(io: T) -> Session
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        Self::with_options(io, false, &Options::default())
    }

    /// Starts the server (accepting) side of a session over `io`, with default [`Options`].
    pub fn server<T>(io: T) -> Session
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        Self::with_options(io, true, &Options::default())
    }

    /// Starts a session with explicit options; `server` picks the side (the two ends of a
    /// connection must pick different sides).
    ///
    /// Options used: `stream_window`, `max_streams`, `heartbeat_interval`,
    /// `heartbeat_timeout`, `handshake_timeout`.
    pub fn with_options<T>(io: T, server: bool, options: &Options) -> Session
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let side = if server { Side::Server } else { Side::Client };
        let config = driver::session_config(options, side);
        let shared = driver::spawn(
            AnyIo(io),
            config,
            None,
            Greeting::Exchange,
            "mux".into(),
            None,
        );
        Session { shared }
    }

    /// Wraps a session whose driver already runs (from a listener or dialer); takes over
    /// the handle `shared` came with.
    #[cfg_attr(not(test), allow(dead_code))] // the socket engine uses sessions directly
    pub(crate) fn from_shared(shared: Arc<Shared>) -> Session {
        Session { shared }
    }

    /// Opens a new stream. Data may be written at once, before the peer accepts it.
    ///
    /// # Errors
    /// The error that ended the session, when it is over (`Error::Closed`,
    /// `Error::Protocol`, `Error::Timeout`); `Error::Refused` when the peer's stream limit
    /// is reached.
    ///
    /// # Cancel safety
    /// Cancel safe: a cancelled `open` opens nothing.
    pub async fn open(&self) -> Result<Stream> {
        poll_fn(|cx| {
            let mut inner = self.shared.lock();
            if let Some(e) = inner.closed_error() {
                return Poll::Ready(Err(e));
            }
            if !inner.poll_established(cx.waker()) {
                return Poll::Pending;
            }
            match inner.core.open(RAW_STREAM, "", &bytes::Bytes::new()) {
                Ok(id) => {
                    inner.add_handle();
                    inner.wake_driver();
                    Poll::Ready(Ok(Stream::new(self.shared.clone(), id)))
                }
                Err(OpenError::TooManyStreams) => Poll::Ready(Err(Error::Refused {
                    reason: "the peer's stream limit is reached".into(),
                })),
                Err(OpenError::PathTooLong) => {
                    Poll::Ready(Err(Error::Protocol("path too long".into())))
                }
                Err(OpenError::Closed) => Poll::Ready(Err(Error::Closed)),
            }
        })
        .await
    }

    /// Waits for the peer to open a stream and accepts it.
    ///
    /// # Errors
    /// The error that ended the session, once it is over.
    ///
    /// # Cancel safety
    /// Cancel safe: a stream that arrives after cancellation waits for the next `accept`.
    pub async fn accept(&self) -> Result<Stream> {
        poll_fn(|cx| {
            let mut inner = self.shared.lock();
            if let Some(incoming) = inner.incoming.pop_front() {
                let id = incoming.id;
                inner.core.accept(id, RAW_STREAM, bytes::Bytes::new());
                inner.add_handle();
                inner.wake_driver();
                return Poll::Ready(Ok(Stream::new(self.shared.clone(), id)));
            }
            if let Some(e) = inner.closed_error() {
                return Poll::Ready(Err(e));
            }
            inner.wait_incoming(cx.waker());
            Poll::Pending
        })
        .await
    }

    /// Closes the session: data already written is sent, then a GOAWAY; every stream's
    /// reads and writes then fail with an error. Returns once the connection is closed.
    ///
    /// # Cancel safety
    /// Cancel safe: the close goes on in the background.
    pub async fn close(&self) {
        {
            let mut inner = self.shared.lock();
            inner.core.close(Reason::NO_ERROR, "closed by application");
            inner.wake_driver();
        }
        poll_fn(|cx| {
            let mut inner = self.shared.lock();
            if inner.is_finished() {
                return Poll::Ready(());
            }
            inner.wait_closed(cx.waker());
            Poll::Pending
        })
        .await
    }

    /// Whether the session has ended (closed by either side, or failed).
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed_error().is_some()
    }
}

impl Clone for Session {
    fn clone(&self) -> Self {
        self.shared.lock().add_handle();
        Session {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shared.lock().remove_handle();
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}
