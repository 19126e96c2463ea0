//! One task per live connection: runs a protocol core over a real byte stream.
//!
//! The task owns the transport. It reads into one buffer and hands it to the core, which
//! slices frames out as zero-copy `Bytes`; it writes what the core queued with vectored
//! writes (many frames per syscall); it sleeps until the core's next timer. That loop is
//! the same for every protocol: [`io_loop`]. Handles (the multiplexer's streams, the socket
//! engine) share the core through [`Shared`] (native) or [`zmtp::ZmtpShared`] and never
//! touch the transport. No lock is held across an `.await`.

pub(crate) mod connect;
pub(crate) mod handshake;
mod io_loop;
mod native;
mod transport;
pub(crate) mod zmtp;

pub(crate) use native::{spawn, Greeting, IncomingStream, Shared, StreamObserver};
pub(crate) use transport::AnyIo;

use std::time::Duration;

use crate::proto::native::{Config, Side};
use crate::Options;

/// The session configuration `options` describe, for our `side`.
pub(crate) fn session_config(options: &Options, side: Side) -> Config {
    Config {
        side,
        instance: crate::instance::id(),
        stream_window: options.stream_window,
        max_streams: u32::try_from(options.max_streams).unwrap_or(u32::MAX),
        max_message_size: options.max_message_size,
        max_message_frames: options.max_message_frames,
        connection_window: u64::try_from(options.connection_window).unwrap_or(u64::MAX),
        heartbeat_interval: options.heartbeat_interval,
        heartbeat_timeout: options.heartbeat_timeout.max(Duration::from_millis(1)),
        handshake_timeout: options.handshake_timeout,
    }
}
