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

use super::{handshake, session_config, spawn, Greeting, Shared};
use crate::monitor::{Event, MonitorSender};
use crate::options::Security;
use crate::proto::native::Side;
use crate::transport::shared::SharedStream;
use crate::transport::ByteStream;
use crate::warn_limit::warn_limited;
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
    let started =
        match handshake::accept(&mut io, options.handshake_timeout, &our_greeting(options)).await {
            Ok(negotiated) => {
                secured(start(io, negotiated, peer.clone(), options, Side::Server)).await
            }
            Err(e) => Err(e),
        };
    match started {
        Ok(connected) => Some(connected),
        Err(e) => {
            warn_limited!(%peer, reason = %e, "refusing connection");
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
    secured(start(io, negotiated, peer, options, Side::Client)).await
}

/// A native session inside CURVE once its CURVE handshake is done (the peer's native HELLO
/// arrived inside a box), so that a failed one (a wrong key, a refused client) is a failed
/// handshake with its reason, and a listener's `max_handshakes` slot is held meanwhile
/// (the session's handshake timeout bounds the wait). Anything else as it is.
async fn secured(connected: Connected) -> Result<Connected, Error> {
    let Connected::Native(shared) = &connected else {
        return Ok(connected);
    };
    if !shared.lock().core.is_secured() {
        return Ok(connected);
    }
    let outcome = std::future::poll_fn(|cx| {
        let mut inner = shared.lock();
        if let Some(e) = inner.closed_error() {
            return std::task::Poll::Ready(Err(e));
        }
        if inner.poll_established(cx.waker()) {
            return std::task::Poll::Ready(Ok(()));
        }
        std::task::Poll::Pending
    })
    .await;
    match outcome {
        Ok(()) => Ok(connected),
        Err(e) => {
            shared.lock().remove_handle();
            Err(e)
        }
    }
}

/// The greeting we send: with the zocket marker unless the socket speaks plain ZMTP only;
/// a CURVE socket greets with mechanism CURVE (and as-server 1 if it is the server), the
/// marker included: two zocket peers then run the native wire inside CURVE boxes.
fn our_greeting(options: &Options) -> crate::proto::greeting::Greeting {
    let mut greeting = match &options.security {
        Security::Null => crate::proto::greeting::Greeting::zocket(),
        Security::CurveServer { .. } => crate::proto::greeting::Greeting::curve(true),
        Security::CurveClient { .. } => crate::proto::greeting::Greeting::curve(false),
    };
    greeting.native = options
        .native
        .then_some(crate::proto::greeting::NATIVE_VERSION);
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
            Connected::Native(spawn(
                io,
                config,
                super::curve_setup(options),
                Greeting::Done,
                peer,
                Some(direct),
            ))
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
