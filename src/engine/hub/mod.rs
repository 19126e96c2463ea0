//! Where sockets meet connections: shared listeners, the pool of outgoing connections, and
//! attaching streams and inproc pipes to engines as peers.
//!
//! Sockets of one process that bind the same `tcp://host:port` (or `ipc://` file) share one
//! listener; each claims a path (`/events`, `/rpc`; none is the default socket). Sockets of
//! one process that connect to the same address share one native session: each socket's
//! link is one stream on it.
//!
//! - [`listen`]: shared listeners and routing incoming streams by path;
//! - [`attach`]: links (native streams, inproc pipes, ZMTP connections) made peers of an
//!   engine, or refused;
//! - [`pool`]: dialing, and the pool of outgoing connections keyed by address and security.

mod attach;
mod listen;
mod pool;
#[cfg(test)]
mod tests;

pub(crate) use attach::{accept_stream, DialedPeer};
pub(crate) use listen::{bind, Binding};
pub(crate) use pool::dial;
