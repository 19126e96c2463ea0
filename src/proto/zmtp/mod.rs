//! ZMTP 3.1 / 3.0 with the NULL mechanism: what a plain ZeroMQ peer (libzmq) speaks after
//! the greeting.
//!
//! When the peer's greeting (see [`greeting`](super::greeting)) carries no zocket marker,
//! the connection goes on as plain ZMTP (RFC 37): each side sends a READY command naming
//! its socket type, then messages travel as frames (flags, size, body; MORE links the
//! frames of one message), and commands (SUBSCRIBE, CANCEL, PING, PONG, ERROR) travel as
//! COMMAND frames. [`ZmtpSession`] is the sans-IO core; [`frame`] and [`command`] are
//! its codecs.

pub(crate) mod command;
pub(crate) mod frame;
mod session;

#[cfg(test)]
mod tests;

pub(crate) use session::{CurveSetup, Handshake, ZmtpConfig, ZmtpError, ZmtpEvent, ZmtpSession};
