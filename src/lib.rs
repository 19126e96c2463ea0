//! zocket: ZeroMQ-style socket patterns for tokio.
//!
//! (Crate docs are written as the layers land; see `README.md` and `docs/PROTOCOL.md`.)

// Parts of the driver and the protocol core (message streams, paths, socket types) are
// used by the socket engine that sits on top of them.
#[allow(dead_code, unused_imports)]
mod driver;
mod endpoint;
mod error;
mod instance;
mod message;
pub mod mux;
mod options;
#[allow(dead_code, unused_imports)]
mod proto;
mod socket_type;
#[allow(dead_code)] // the dialer and listener are driven by the socket engine
mod transport;

pub mod monitor;

pub use endpoint::{Endpoint, Host};
pub use error::{Error, Result};
pub use message::Message;
pub use options::{Options, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_STREAM_WINDOW};
pub use socket_type::SocketType;
