//! Turning a fresh byte-stream connection into a running native session.
//!
//! The listener side sniffs the first bytes and greets ([`handshake::accept`]); the dialer
//! side greets first ([`handshake::dial`]). When both greetings carry the zocket marker a
//! native session starts on the connection. A plain ZMTP peer (libzmq) or an SP peer is
//! refused for now, with a log line, a monitor event and a clean close.

#[cfg(test)]
use std::future::poll_fn;
use std::sync::Arc;
#[cfg(test)]
use std::task::Poll;

use tracing::warn;

use super::{handshake, session_config, spawn, Greeting, Shared};
use crate::monitor::{Event, MonitorSender};
use crate::proto::native::Side;
use crate::transport::shared::SharedStream;
use crate::transport::ByteStream;
use crate::{Error, Options};

/// Runs the listener's greeting on `io` and, for a zocket peer, starts a session.
///
/// Any other outcome is logged, reported as [`Event::HandshakeFailed`] on `monitor` and
/// the connection is closed (by dropping it); `None` is returned.
pub(crate) async fn accept(
    mut io: ByteStream,
    peer: String,
    endpoint: &str,
    options: &Options,
    monitor: &MonitorSender,
) -> Option<Arc<Shared>> {
    let refused = match handshake::accept(&mut io, options.handshake_timeout).await {
        Ok(handshake::Negotiated::Native) => {
            let config = session_config(options, Side::Server);
            let io = SharedStream::new(io);
            let direct = io.direct();
            return Some(spawn(io, config, Greeting::Done, peer, Some(direct)));
        }
        Ok(handshake::Negotiated::Zmtp(g)) => format!(
            "peer speaks plain ZMTP {}.{} (libzmq?), which this version of zocket does not serve yet",
            g.version.0, g.version.1
        ),
        Err(e) => e.to_string(),
    };
    warn!(%peer, reason = %refused, "refusing connection");
    monitor.emit(Event::HandshakeFailed {
        endpoint: endpoint.to_owned(),
        reason: format!("{peer}: {refused}"),
    });
    None
}

/// Runs the dialer's greeting on `io` and starts a session.
///
/// # Errors
/// `Error::Protocol` when the peer is not a zocket peer (a libzmq listener, for now);
/// `Error::Timeout` or `Error::Io` when the greeting does not complete.
pub(crate) async fn dial(
    mut io: ByteStream,
    peer: String,
    options: &Options,
) -> Result<Arc<Shared>, Error> {
    match handshake::dial(&mut io, options.handshake_timeout).await? {
        handshake::Negotiated::Native => {
            let config = session_config(options, Side::Client);
            let io = SharedStream::new(io);
            let direct = io.direct();
            Ok(spawn(io, config, Greeting::Done, peer, Some(direct)))
        }
        handshake::Negotiated::Zmtp(g) => Err(Error::Protocol(format!(
            "{peer} speaks plain ZMTP {}.{} (libzmq?), which this version of zocket cannot talk to yet",
            g.version.0, g.version.1
        ))),
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
