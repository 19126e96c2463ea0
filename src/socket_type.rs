//! The socket types and which of them can talk to each other.

use std::fmt;

/// The kind of a socket: which messaging pattern it plays and which peers it accepts.
///
/// The names are ZeroMQ's (`PUB`, `SUB`, ...), so a zocket socket and a libzmq socket of the
/// same name play the same role.
///
/// ```
/// use zocket::SocketType;
/// assert!(SocketType::Pub.is_compatible(SocketType::Sub));
/// assert!(!SocketType::Pub.is_compatible(SocketType::Req));
/// assert_eq!(SocketType::Dealer.to_string(), "DEALER");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SocketType {
    /// Publisher: fans messages out to matching subscribers.
    Pub,
    /// Subscriber: receives what publishers send on its subscribed prefixes.
    Sub,
    /// Requester: one request in flight, waits for the matching reply.
    Req,
    /// Replier: serves one request at a time.
    Rep,
    /// Asynchronous requester: round-robin send, fair-queued receive.
    Dealer,
    /// Asynchronous replier: routes by peer identity.
    Router,
    /// Pipeline source: round-robin over pullers.
    Push,
    /// Pipeline sink: fair-queued from pushers.
    Pull,
    /// Exclusive pair: exactly one peer.
    Pair,
    /// Extended publisher: a [`Pub`](SocketType::Pub) that also receives its subscribers'
    /// subscriptions (and an [`XSub`](SocketType::XSub)'s other messages).
    XPub,
    /// Extended subscriber: a [`Sub`](SocketType::Sub) whose subscriptions are messages it
    /// sends, and which may send other messages upstream.
    XSub,
}

impl SocketType {
    /// All socket types, in wire-code order.
    pub const ALL: [SocketType; 11] = [
        SocketType::Pair,
        SocketType::Pub,
        SocketType::Sub,
        SocketType::Req,
        SocketType::Rep,
        SocketType::Dealer,
        SocketType::Router,
        SocketType::Pull,
        SocketType::Push,
        SocketType::XPub,
        SocketType::XSub,
    ];

    /// The ZMTP name of the type (`"PUB"`, `"ROUTER"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            SocketType::Pub => "PUB",
            SocketType::Sub => "SUB",
            SocketType::Req => "REQ",
            SocketType::Rep => "REP",
            SocketType::Dealer => "DEALER",
            SocketType::Router => "ROUTER",
            SocketType::Push => "PUSH",
            SocketType::Pull => "PULL",
            SocketType::Pair => "PAIR",
            SocketType::XPub => "XPUB",
            SocketType::XSub => "XSUB",
        }
    }

    /// Parses a ZMTP socket-type name (exact, upper case as on the wire).
    pub fn from_name(name: &[u8]) -> Option<SocketType> {
        SocketType::ALL
            .into_iter()
            .find(|t| t.as_str().as_bytes() == name)
    }

    /// The one-byte code used on zocket's native wire (libzmq's `ZMQ_*` constants:
    /// PAIR 0, PUB 1, SUB 2, REQ 3, REP 4, DEALER 5, ROUTER 6, PULL 7, PUSH 8, XPUB 9,
    /// XSUB 10).
    pub fn code(self) -> u8 {
        match self {
            SocketType::Pair => 0,
            SocketType::Pub => 1,
            SocketType::Sub => 2,
            SocketType::Req => 3,
            SocketType::Rep => 4,
            SocketType::Dealer => 5,
            SocketType::Router => 6,
            SocketType::Pull => 7,
            SocketType::Push => 8,
            SocketType::XPub => 9,
            SocketType::XSub => 10,
        }
    }

    /// The type with the given native wire code, if any.
    pub fn from_code(code: u8) -> Option<SocketType> {
        SocketType::ALL.get(usize::from(code)).copied()
    }

    /// Whether a socket of this type may talk to a socket of type `peer` (the ZMTP 3.1 table).
    pub fn is_compatible(self, peer: SocketType) -> bool {
        use SocketType::*;
        matches!(
            (self, peer),
            (Pair, Pair)
                | (Pub | XPub, Sub | XSub)
                | (Sub | XSub, Pub | XPub)
                | (Req, Rep)
                | (Req, Router)
                | (Rep, Req)
                | (Rep, Dealer)
                | (Dealer, Rep)
                | (Dealer, Dealer)
                | (Dealer, Router)
                | (Router, Req)
                | (Router, Dealer)
                | (Router, Router)
                | (Pull, Push)
                | (Push, Pull)
        )
    }
}

impl SocketType {
    /// Whether the type publishes: filters by its peers' subscriptions (PUB, XPUB).
    pub(crate) fn is_publisher(self) -> bool {
        matches!(self, SocketType::Pub | SocketType::XPub)
    }

    /// Whether the type subscribes: tells its peers its subscriptions (SUB, XSUB).
    pub(crate) fn is_subscriber(self) -> bool {
        matches!(self, SocketType::Sub | SocketType::XSub)
    }
}

impl fmt::Display for SocketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_round_trip() {
        for t in SocketType::ALL {
            assert_eq!(SocketType::from_code(t.code()), Some(t));
            assert_eq!(SocketType::from_name(t.as_str().as_bytes()), Some(t));
        }
        assert_eq!(SocketType::from_code(9), Some(SocketType::XPub));
        assert_eq!(SocketType::from_code(10), Some(SocketType::XSub));
        assert_eq!(SocketType::from_code(11), None);
        assert_eq!(SocketType::from_name(b"pub"), None);
    }

    #[test]
    fn extended_pub_sub_types_talk_to_every_pub_sub_type_as_in_libzmq() {
        use SocketType::*;
        for publisher in [Pub, XPub] {
            for subscriber in [Sub, XSub] {
                assert!(
                    publisher.is_compatible(subscriber),
                    "{publisher} {subscriber}"
                );
            }
            assert!(!publisher.is_compatible(Pub) && !publisher.is_compatible(XPub));
        }
        assert!(!XSub.is_compatible(Sub) && !XPub.is_compatible(Push));
        assert_eq!(XPub.code(), 9);
        assert_eq!(XSub.code(), 10);
    }

    #[test]
    fn compatibility_is_symmetric() {
        for a in SocketType::ALL {
            for b in SocketType::ALL {
                assert_eq!(a.is_compatible(b), b.is_compatible(a), "{a} vs {b}");
            }
        }
    }
}
