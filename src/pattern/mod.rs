//! Sans-IO routing over peer ids: who gets the next message, and whose message is read next.
//!
//! The socket engine owns the pipes (one per peer) and asks this module where a message goes
//! or which pipe to read; nothing here touches tokio, sockets, the clock or a random number
//! generator (seeds are passed in), so every pattern can be tested as a plain value.
//!
//! - [`fan_out`]: Pub's subscription trie and the set of subscribers matching a topic.
//! - [`round_robin`]: Req/Dealer/Push sending to the next peer with room.
//! - [`fair_queue`]: Sub/Rep/Dealer/Router/Pull reading peers in turn.
//! - [`router`]: Router's routing identities.
//! - [`request`]: Req's request ids and the ZeroMQ envelopes Req and Rep exchange.

use std::fmt;

pub(crate) mod fair_queue;
pub(crate) mod fan_out;
pub(crate) mod request;
pub(crate) mod round_robin;
pub(crate) mod router;

/// The engine's name for one peer of a socket (one pipe), unique for the socket's lifetime.
///
/// Patterns store and return these ids; the engine maps them to pipes. Ordering is only
/// used to give deterministic output (for example [`fan_out::FanOut::matching`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct PeerId(pub(crate) u64);

/// Shown as `peer#N`.
impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer#{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_id_displays_its_number() {
        assert_eq!(PeerId(7).to_string(), "peer#7");
        assert!(PeerId(1) < PeerId(2));
    }
}
