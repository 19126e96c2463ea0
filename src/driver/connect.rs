//! Turning a fresh byte-stream connection into a running session.
//!
//! The listener side sniffs the first bytes and greets ([`handshake::accept`]); the dialer
//! side greets first ([`handshake::dial`]). When both greetings carry the zocket marker a
//! native session starts on the connection; otherwise the connection is handed back for
//! ZMTP ([`Connected::Zmtp`]). Garbage, an SP peer, an unsupported ZMTP version or
//! mechanism are refused with a log line, a monitor event and a clean close.

#[cfg(test)]
use std::future::poll_fn;
use std::sync::Arc;
#[cfg(test)]
use std::task::Poll;

use tracing::warn;

use super::{handshake, session_config, spawn, Greeting, Shared};
use crate::monitor::{Event, MonitorSender};
use crate::options::Security;
use crate::proto::native::Side;
use crate::transport::shared::SharedStream;
use crate::transport::ByteStream;
use crate::{Error, Options};

/// A connection whose greeting is done.
#[derive(Debug)]
pub(crate) enum Connected {
    /// A zocket peer: its native session runs (the caller owns one handle).
    Native(Arc<Shared>),
    /// A plain ZMTP peer (libzmq and friends): ZMTP goes on over `io`.
    Zmtp {
        /// The connection, right after the greeting.
        io: ByteStream,
        /// The peer's greeting (its minor version decides how subscriptions are sent).
        greeting: crate::proto::greeting::Greeting,
    },
}

/// Runs the listener's greeting on `io`; a zocket peer's native session is started.
///
/// A failed greeting (garbage, an SP peer, a silent peer) is logged, reported as
/// [`Event::HandshakeFailed`] on `monitor`, and the connection closed (by dropping it);
/// `None` is returned.
pub(crate) async fn accept(
    mut io: ByteStream,
    peer: String,
    endpoint: &str,
    options: &Options,
    monitor: &MonitorSender,
) -> Option<Connected> {
    match handshake::accept(&mut io, options.handshake_timeout, &our_greeting(options)).await {
        Ok(negotiated) => Some(start(io, negotiated, peer, options, Side::Server)),
        Err(e) => {
            warn!(%peer, reason = %e, "refusing connection");
            monitor.emit(Event::HandshakeFailed {
                endpoint: endpoint.to_owned(),
                reason: format!("{peer}: {e}"),
            });
            None
        }
    }
}

/// Runs the dialer's greeting on `io`; a zocket peer's native session is started.
///
/// # Errors
/// `Error::Timeout` or `Error::Io` when the greeting does not complete, `Error::Protocol`
/// when the peer's greeting is not one we speak.
pub(crate) async fn dial(
    mut io: ByteStream,
    peer: String,
    options: &Options,
) -> Result<Connected, Error> {
    let negotiated =
        handshake::dial(&mut io, options.handshake_timeout, &our_greeting(options)).await?;
    Ok(start(io, negotiated, peer, options, Side::Client))
}

/// The greeting we send: with the zocket marker unless the socket speaks plain ZMTP only;
/// a CURVE socket greets with mechanism CURVE (and as-server 1 if it is the server) and
/// without the marker (CURVE runs over ZMTP only, for now).
fn our_greeting(options: &Options) -> crate::proto::greeting::Greeting {
    match &options.security {
        Security::Null => {}
        Security::CurveServer { .. } => return crate::proto::greeting::Greeting::curve(true),
        Security::CurveClient { .. } => return crate::proto::greeting::Greeting::curve(false),
    }
    let mut greeting = crate::proto::greeting::Greeting::zocket();
    if !options.native {
        greeting.native = None;
    }
    greeting
}

fn start(
    io: ByteStream,
    negotiated: handshake::Negotiated,
    peer: String,
    options: &Options,
    side: Side,
) -> Connected {
    match negotiated {
        handshake::Negotiated::Native => {
            let config = session_config(options, side);
            let io = SharedStream::new(io);
            let direct = io.direct();
            Connected::Native(spawn(io, config, Greeting::Done, peer, Some(direct)))
        }
        handshake::Negotiated::Zmtp(greeting) => Connected::Zmtp { io, greeting },
    }
}

#[cfg(test)]
/// Resolves when the session is over (its driver has exited), with the error that ended
/// it, or `None` for an orderly close.
pub(crate) async fn closed(shared: Arc<Shared>) -> Option<Error> {
    poll_fn(|cx| {
        let mut inner = shared.lock();
        if inner.is_finished() {
            return Poll::Ready(match inner.closed_error() {
                Some(Error::Closed) | None => None,
                Some(e) => Some(e),
            });
        }
        inner.wait_closed(cx.waker());
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests;
