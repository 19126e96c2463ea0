//! The one error type of the crate.

use std::io;

use crate::SocketType;

/// Everything that can go wrong in zocket.
///
/// Each variant is something a caller can act on. Faults of the peer (a
/// [`Protocol`](Error::Protocol) violation, an [`IncompatiblePeer`](Error::IncompatiblePeer))
/// are distinct from faults of the caller (an [`InvalidEndpoint`](Error::InvalidEndpoint),
/// an [`AddrInUse`](Error::AddrInUse)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An endpoint string could not be parsed.
    ///
    /// `input` is the string as given, `expected` says what form was expected.
    #[error("invalid endpoint {input:?}: expected {expected}")]
    InvalidEndpoint {
        /// The endpoint exactly as the caller wrote it.
        input: String,
        /// What a valid endpoint of that kind looks like.
        expected: String,
    },
    /// The address (or the path on a shared listener) is already bound by someone else.
    #[error("address in use: {endpoint}")]
    AddrInUse {
        /// The endpoint that could not be bound.
        endpoint: String,
    },
    /// An operating-system I/O error.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The peer broke the wire protocol: malformed bytes, a frame over a limit, a frame that
    /// makes no sense in the current state. The connection that carried it is closed.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The peer's socket type cannot talk to ours (a `Pub` connected to a `Req`, say).
    #[error("incompatible peer: a {local} socket cannot talk to a {remote} socket")]
    IncompatiblePeer {
        /// Our socket type.
        local: SocketType,
        /// The peer's socket type.
        remote: SocketType,
    },
    /// The peer refused to open a stream, for the reason given (no socket bound at that path,
    /// too many streams, ...).
    #[error("refused by peer: {reason}")]
    Refused {
        /// The peer's explanation, as text.
        reason: String,
    },
    /// A message is larger than a `max_message_size`: ours, for a message received (the
    /// peer's stream is then reset), or the one the peer announced, for a message we send (it
    /// is then not sent, and the link goes on).
    #[error("message of {size} bytes exceeds the limit of {max} bytes")]
    MessageTooLarge {
        /// The size of the message (or the size claimed by a frame header), in bytes.
        size: u64,
        /// The configured limit, in bytes.
        max: u64,
    },
    /// An operation did not complete in the time allowed (a handshake, a request, a silent
    /// peer's heartbeat).
    #[error("timed out")]
    Timeout,
    /// A message was routed to a peer that is not connected, or whose queue is full (Router
    /// with `router_mandatory`).
    #[error("host unreachable")]
    HostUnreachable,
    /// The stream was reset by the peer (it dropped its end without reading everything).
    #[error("stream reset by peer")]
    Reset,
    /// The socket, stream or connection is closed.
    #[error("closed")]
    Closed,
    /// An [`Options`](crate::Options) setting that this socket type cannot honour (returned
    /// by `bind` and `connect`, before anything is bound or dialed).
    #[error("option {option} is not supported on a {socket_type} socket: {reason}")]
    InvalidOption {
        /// The option's name, as its `Options` setter is called.
        option: &'static str,
        /// The socket's type.
        socket_type: SocketType,
        /// Why, and which types accept it.
        reason: String,
    },
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A copy of the error (`io::Error` is not `Clone`; its kind and text are kept).
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::InvalidEndpoint { input, expected } => Error::InvalidEndpoint {
                input: input.clone(),
                expected: expected.clone(),
            },
            Error::AddrInUse { endpoint } => Error::AddrInUse {
                endpoint: endpoint.clone(),
            },
            Error::Io(e) => Error::Io(io::Error::new(e.kind(), e.to_string())),
            Error::Protocol(m) => Error::Protocol(m.clone()),
            Error::IncompatiblePeer { local, remote } => Error::IncompatiblePeer {
                local: *local,
                remote: *remote,
            },
            Error::Refused { reason } => Error::Refused {
                reason: reason.clone(),
            },
            Error::MessageTooLarge { size, max } => Error::MessageTooLarge {
                size: *size,
                max: *max,
            },
            Error::Timeout => Error::Timeout,
            Error::HostUnreachable => Error::HostUnreachable,
            Error::Reset => Error::Reset,
            Error::Closed => Error::Closed,
            Error::InvalidOption {
                option,
                socket_type,
                reason,
            } => Error::InvalidOption {
                option,
                socket_type: *socket_type,
                reason: reason.clone(),
            },
        }
    }

    pub(crate) fn invalid_endpoint(input: &str, expected: impl Into<String>) -> Self {
        Error::InvalidEndpoint {
            input: input.to_owned(),
            expected: expected.into(),
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match &e {
            Error::Io(inner) => return io::Error::new(inner.kind(), e),
            Error::InvalidEndpoint { .. } | Error::InvalidOption { .. } => {
                io::ErrorKind::InvalidInput
            }
            Error::AddrInUse { .. } => io::ErrorKind::AddrInUse,
            Error::Protocol(_) | Error::MessageTooLarge { .. } => io::ErrorKind::InvalidData,
            Error::IncompatiblePeer { .. } | Error::Refused { .. } => {
                io::ErrorKind::ConnectionRefused
            }
            Error::Timeout => io::ErrorKind::TimedOut,
            Error::HostUnreachable => io::ErrorKind::HostUnreachable,
            Error::Reset => io::ErrorKind::ConnectionReset,
            Error::Closed => io::ErrorKind::NotConnected,
        };
        io::Error::new(kind, e)
    }
}

/// Why a `try_send` did not send: the message comes back with it, so nothing is lost.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> zocket::Result<()> {
/// use zocket::TrySendError;
/// let mut push = zocket::Push::new(); // no peer yet: a send would wait
/// match push.try_send("job") {
///     Err(TrySendError::Full(msg)) => assert_eq!(msg.frames()[0], "job"), // ours again
///     other => panic!("{other:?}"),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrySendError {
    /// The send would wait: every peer's queue is at `send_hwm`, or no peer is connected
    /// yet (or, for a `Router`, the named peer's queue is full). Try again later, or await
    /// `send`.
    #[error("would wait: no peer has room for the message")]
    Full(crate::Message),
    /// The socket is closed.
    #[error("closed")]
    Closed(crate::Message),
    /// A `Router` with [`router_mandatory`](crate::Options::router_mandatory): no connected
    /// peer has that routing id.
    #[error("host unreachable")]
    HostUnreachable(crate::Message),
    /// The message is larger than the `max_message_size` the peer it was for announced
    /// (native wire): sent, it would only be refused by the peer. It is not sent.
    #[error("message exceeds the peer's limit of {max} bytes")]
    TooLarge {
        /// The message, not sent.
        msg: crate::Message,
        /// The peer's limit, in bytes.
        max: u64,
    },
}

impl TrySendError {
    /// The message that was not sent.
    pub fn into_inner(self) -> crate::Message {
        match self {
            TrySendError::Full(m)
            | TrySendError::Closed(m)
            | TrySendError::HostUnreachable(m)
            | TrySendError::TooLarge { msg: m, .. } => m,
        }
    }
}

/// Why a `try_recv` returned no message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TryRecvError {
    /// No message is waiting now; try again later, or await `recv`.
    #[error("no message waiting")]
    Empty,
    /// The socket is closed.
    #[error("closed")]
    Closed,
}
