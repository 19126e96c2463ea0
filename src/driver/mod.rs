//! One task per live connection: runs a protocol core over a real byte stream.
//!
//! The task owns the transport. It reads into one buffer and hands it to the core, which
//! slices frames out as zero-copy `Bytes`; it writes what the core queued with vectored
//! writes (many frames per syscall); it sleeps until the core's next timer. That loop is
//! the same for every protocol: [`io_loop`]. Handles (the multiplexer's streams, the socket
//! engine) share the core through [`Shared`] (native) or [`zmtp::ZmtpShared`] and never
//! touch the transport. No lock is held across an `.await`.

pub(crate) mod connect;
mod curve_native;
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

/// What a ZMTP session needs to run CURVE with the socket's keys (fresh random bytes for
/// this connection), or `None` for NULL.
pub(crate) fn curve_setup(options: &crate::Options) -> Option<crate::proto::zmtp::CurveSetup> {
    match &options.security {
        crate::options::Security::Null => None,
        crate::options::Security::CurveServer { keys } => {
            Some(crate::proto::zmtp::CurveSetup::Server {
                config: crate::proto::curve::ServerConfig {
                    secret_key: keys.secret().as_crypto().clone(),
                    public_key: *keys.public().as_bytes(),
                    metadata: bytes::Bytes::new(),
                },
                random: crate::curve::server_random(),
                authorizer: options.curve_authorizer.clone(),
            })
        }
        crate::options::Security::CurveClient { server, keys } => {
            Some(crate::proto::zmtp::CurveSetup::Client {
                config: crate::proto::curve::ClientConfig {
                    server_key: *server.as_bytes(),
                    secret_key: keys.secret().as_crypto().clone(),
                    public_key: *keys.public().as_bytes(),
                    metadata: bytes::Bytes::new(),
                },
                random: crate::curve::client_random(),
            })
        }
    }
}
