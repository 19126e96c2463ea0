//! zocket's native wire: many logical streams over one connection.
//!
//! After the greeting (see [`greeting`](super::greeting)) both sides speak frames: a HELLO
//! each, then streams that are opened with a path and a socket type, carry DATA under
//! per-stream credit, and end with CLOSE (half-close) or RESET. PING/PONG keep an idle
//! connection alive and detect a dead peer; GOAWAY ends the session. `docs/PROTOCOL.md`
//! gives the byte layout.
//!
//! [`Session`] is the sans-IO core; the driver in `crate::driver` runs it over a socket.

mod flow_control;
pub(crate) mod frame;
mod session;
mod stream;
mod timer;
mod transmit;

#[cfg(test)]
mod tests;

use std::fmt;

#[cfg(test)]
pub(crate) use frame::Hello;
pub(crate) use frame::{DataFlags, RAW_STREAM};
pub(crate) use session::{Config, Event, OpenError, Session, SessionError, Side};
pub(crate) use stream::{count_chunk, ReadBytes, StreamError};
pub(crate) use transmit::Transmit;

/// A stream id. The dialer's streams are odd, the listener's even; 0 is the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct StreamId(pub(crate) u32);

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A reason code carried by REJECT, RESET and GOAWAY. Unknown codes stay representable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Reason(pub(crate) u32);
