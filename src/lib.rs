//! zocket: ZeroMQ-style socket patterns for tokio.
//!
//! (Crate docs are written as the layers land; see `README.md` and `docs/PROTOCOL.md`.)

mod driver;
mod endpoint;
mod error;
mod instance;
mod message;
pub mod mux;
mod options;
mod proto;
mod socket_type;
// Not wired to sockets yet.
#[allow(dead_code)] // used by the socket engine
mod transport;

pub mod monitor;

pub use endpoint::{Endpoint, Host};
pub use error::{Error, Result};
pub use message::Message;
pub use options::{Options, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_STREAM_WINDOW};
pub use socket_type::SocketType;
