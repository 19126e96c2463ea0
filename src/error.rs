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
    /// A message is larger than `max_message_size`.
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
            Error::InvalidEndpoint { .. } => io::ErrorKind::InvalidInput,
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
