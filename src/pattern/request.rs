//! Req/Rep envelopes and request ids.
//!
//! A request travels as `[request id, empty delimiter, body...]`: libzmq's `ZMQ_REQ_CORRELATE`
//! layout, so a libzmq Rep (which echoes everything up to the delimiter) sends the id back
//! and Req can tell the reply to its current request from a stale one. Routers on the way
//! push their peer identities in front; Rep keeps the whole envelope and puts it back on the
//! reply.

use std::hash::{BuildHasher, Hasher};

use bytes::Bytes;

use crate::Message;

/// The id of one request, sent as 4 bytes big-endian in the first frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct RequestId(pub(crate) u32);

impl RequestId {
    /// The id as the frame that carries it.
    fn to_frame(self) -> Bytes {
        Bytes::copy_from_slice(&self.0.to_be_bytes())
    }
}

/// The source of a Req's request ids: each id is a keyed hash (the `hasher`, SipHash with a
/// per-socket random key for std's `RandomState`) of a counter, cut to 32 bits.
///
/// A peer that sees one id learns nothing about the next, so a rogue peer the Req is also
/// connected to cannot forge the reply to a request another peer holds, and a restarted Req
/// does not accept replies meant for its previous life. Two consecutive ids always differ,
/// so the reply to the previous request is never taken for the current one.
///
/// Sans-IO: the caller passes the keyed `hasher` (this module draws no randomness).
#[derive(Debug)]
pub(crate) struct RequestIds<S> {
    /// Builds the keyed hasher each id is computed with.
    hasher: S,
    /// How many ids were handed out (the hashed input).
    counter: u64,
    /// The id handed out last.
    last: Option<RequestId>,
}

impl<S: BuildHasher> RequestIds<S> {
    /// Ids keyed by `hasher` (std's `RandomState::new()` in a socket; a fixed key in tests).
    pub(crate) fn new(hasher: S) -> Self {
        RequestIds {
            hasher,
            counter: 0,
            last: None,
        }
    }

    /// A fresh id, never equal to the one before.
    pub(crate) fn next(&mut self) -> RequestId {
        loop {
            self.counter = self.counter.wrapping_add(1);
            let mut h = self.hasher.build_hasher();
            h.write_u64(self.counter);
            // The low half of the 64-bit SipHash output; truncation keeps it unguessable.
            let id = RequestId(h.finish() as u32);
            if self.last != Some(id) {
                self.last = Some(id);
                return id;
            }
        }
    }
}

/// Puts `body` in a request envelope: `[id (4 bytes big-endian), empty delimiter, body...]`.
pub(crate) fn wrap_request(id: RequestId, body: Message) -> Message {
    let body = body.into_frames();
    let mut frames = Vec::with_capacity(body.len() + 2);
    frames.push(id.to_frame());
    frames.push(Bytes::new());
    frames.extend(body);
    Message::from(frames)
}

/// What a Req makes of a message received while waiting for a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub(crate) enum ReplyCheck {
    /// The reply to the current request; holds the body only (the envelope is stripped).
    Matched(Message),
    /// A well-formed reply to an earlier request (abandoned or resent): drop it.
    Stale,
    /// Not a reply envelope (no 4-byte id, or no empty delimiter after it): drop it.
    Malformed,
}

/// Checks a reply against the id of the request in flight.
///
/// `Matched` when the first frame is exactly `expected` and the second is empty; `Stale`
/// when the first frame is a 4-byte id that differs; `Malformed` otherwise.
pub(crate) fn check_reply(expected: RequestId, reply: Message) -> ReplyCheck {
    let frames = reply.frames();
    let Some(id) = frames.first() else {
        return ReplyCheck::Malformed;
    };
    let Ok(id) = <[u8; 4]>::try_from(&id[..]) else {
        return ReplyCheck::Malformed;
    };
    if u32::from_be_bytes(id) != expected.0 {
        return ReplyCheck::Stale;
    }
    if !frames.get(1).is_some_and(Bytes::is_empty) {
        return ReplyCheck::Malformed;
    }
    let mut frames = reply.into_frames();
    let body = frames.split_off(2);
    ReplyCheck::Matched(Message::from(body))
}

/// Splits a request received by a Rep into its envelope (every frame up to and including
/// the first empty frame) and its body (the rest).
///
/// Returns `None` when there is no empty frame: the request is malformed and ZeroMQ drops it.
pub(crate) fn split_envelope(msg: Message) -> Option<(Vec<Bytes>, Message)> {
    let delimiter = msg.iter().position(Bytes::is_empty)?;
    let mut envelope = msg.into_frames();
    let body = envelope.split_off(delimiter + 1);
    Some((envelope, Message::from(body)))
}

/// Puts a reply `body` back in the `envelope` its request came in (the inverse of
/// [`split_envelope`]).
pub(crate) fn join_envelope(envelope: Vec<Bytes>, body: Message) -> Message {
    let mut frames = envelope;
    frames.extend(body);
    Message::from(frames)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::hash::{BuildHasherDefault, DefaultHasher};

    fn frames(msg: &Message) -> Vec<&[u8]> {
        msg.iter().map(|f| &f[..]).collect()
    }

    /// A fixed key, so the tests are deterministic (a socket passes a random one).
    fn fixed_ids() -> RequestIds<BuildHasherDefault<DefaultHasher>> {
        RequestIds::new(BuildHasherDefault::default())
    }

    #[test]
    fn consecutive_request_ids_are_neither_sequential_nor_repeated() {
        let mut ids = fixed_ids();
        let run: Vec<u32> = (0..100_000).map(|_| ids.next().0).collect();
        for pair in run.windows(2) {
            let step = pair[1].wrapping_sub(pair[0]);
            assert!(
                step != 0 && step != 1 && step != u32::MAX,
                "{:#x} then {:#x}",
                pair[0],
                pair[1]
            );
        }
        // Spread over the whole range: no run of ids close together.
        let distinct: std::collections::HashSet<u32> = run.iter().copied().collect();
        assert!(distinct.len() > 99_990, "{} distinct", distinct.len());
        let high = run.iter().filter(|&&id| id >= 1 << 31).count();
        assert!((45_000..55_000).contains(&high), "{high} in the upper half");
    }

    #[test]
    fn two_sockets_with_different_keys_make_different_ids() {
        use std::hash::RandomState;
        let mut a = RequestIds::new(RandomState::new());
        let mut b = RequestIds::new(RandomState::new());
        let a: Vec<RequestId> = (0..8).map(|_| a.next()).collect();
        let b: Vec<RequestId> = (0..8).map(|_| b.next()).collect();
        assert_ne!(a, b);
    }

    #[test]
    fn a_request_carries_its_id_and_a_delimiter_before_the_body() {
        let msg = wrap_request(RequestId(0x0102_0304), Message::from(["a", "b"]));
        assert_eq!(frames(&msg), [&[1u8, 2, 3, 4][..], b"", b"a", b"b"]);
    }

    #[test]
    fn the_reply_to_the_current_request_matches() {
        let reply = Message::from([&[0u8, 0, 0, 7][..], b"", b"ok"]);
        assert_eq!(
            check_reply(RequestId(7), reply),
            ReplyCheck::Matched(Message::from(["ok"]))
        );
        let empty_body = Message::from([&[0u8, 0, 0, 7][..], b""]);
        assert_eq!(
            check_reply(RequestId(7), empty_body),
            ReplyCheck::Matched(Message::new())
        );
    }

    #[test]
    fn a_reply_to_another_request_is_stale() {
        let reply = Message::from([&[0u8, 0, 0, 6][..], b"", b"ok"]);
        assert_eq!(check_reply(RequestId(7), reply), ReplyCheck::Stale);
    }

    #[test]
    fn replies_without_id_or_delimiter_are_malformed() {
        let cases = [
            Message::new(),
            Message::from(["ok"]),
            Message::from([&[0u8, 0, 7][..], b"", b"ok"]),
            Message::from([&[0u8, 0, 0, 0, 7][..], b"", b"ok"]),
            Message::from([&[0u8, 0, 0, 7][..]]),
            Message::from([&[0u8, 0, 0, 7][..], b"ok"]),
        ];
        for reply in cases {
            assert_eq!(
                check_reply(RequestId(7), reply.clone()),
                ReplyCheck::Malformed,
                "{reply:?}"
            );
        }
    }

    #[test]
    fn the_envelope_ends_at_the_first_empty_frame() {
        let msg = Message::from(["router-id", "req-id", "", "body", "", "more"]);
        let (envelope, body) = split_envelope(msg).unwrap();
        assert_eq!(envelope, ["router-id", "req-id", ""]);
        assert_eq!(frames(&body), [&b"body"[..], b"", b"more"]);
    }

    #[test]
    fn a_request_without_delimiter_has_no_envelope() {
        assert_eq!(split_envelope(Message::from(["a", "b"])), None);
        assert_eq!(split_envelope(Message::new()), None);
    }

    #[test]
    fn a_rep_echoing_the_envelope_answers_the_req() {
        let mut ids = fixed_ids();
        let id = ids.next();
        let request = wrap_request(id, Message::from("ping"));
        let (envelope, body) = split_envelope(request).unwrap();
        assert_eq!(body, Message::from("ping"));
        let reply = join_envelope(envelope, Message::from("pong"));
        assert_eq!(
            check_reply(id, reply.clone()),
            ReplyCheck::Matched(Message::from("pong"))
        );
        assert_eq!(check_reply(ids.next(), reply), ReplyCheck::Stale);
    }

    fn frame() -> impl Strategy<Value = Bytes> {
        prop::collection::vec(any::<u8>(), 0..6).prop_map(Bytes::from)
    }

    fn non_empty_frame() -> impl Strategy<Value = Bytes> {
        prop::collection::vec(any::<u8>(), 1..6).prop_map(Bytes::from)
    }

    fn body() -> impl Strategy<Value = Message> {
        prop::collection::vec(frame(), 0..5).prop_map(Message::from)
    }

    proptest! {
        #[test]
        fn envelopes_round_trip(
            hops in prop::collection::vec(non_empty_frame(), 0..4),
            body in body(),
        ) {
            let mut envelope = hops;
            envelope.push(Bytes::new());
            let joined = join_envelope(envelope.clone(), body.clone());
            prop_assert_eq!(joined.len(), envelope.len() + body.len());
            prop_assert_eq!(split_envelope(joined), Some((envelope, body)));
        }

        #[test]
        fn a_wrapped_request_matches_its_own_id_only(
            id in any::<u32>(),
            other in any::<u32>(),
            body in body(),
            hops in prop::collection::vec(non_empty_frame(), 0..3),
        ) {
            let request = wrap_request(RequestId(id), body.clone());
            prop_assert_eq!(
                check_reply(RequestId(id), request.clone()),
                ReplyCheck::Matched(body.clone())
            );
            if other != id {
                prop_assert_eq!(check_reply(RequestId(other), request.clone()), ReplyCheck::Stale);
            }
            // Through routers: each hop pushes an identity, Rep echoes the whole envelope,
            // and each hop pops its identity again on the way back.
            let mut routed = request;
            for hop in hops.iter().rev() {
                routed.push_front(hop.clone());
            }
            let (envelope, received) = split_envelope(routed).unwrap();
            prop_assert_eq!(&received, &body);
            let mut reply = join_envelope(envelope, received);
            for hop in &hops {
                prop_assert_eq!(reply.pop_front(), Some(hop.clone()));
            }
            prop_assert_eq!(check_reply(RequestId(id), reply), ReplyCheck::Matched(body));
        }

        #[test]
        fn checking_any_reply_never_panics_and_matches_only_the_exact_layout(
            id in any::<u32>(),
            reply in prop::collection::vec(frame(), 0..5).prop_map(Message::from),
        ) {
            let exact = reply.len() >= 2
                && reply.frames()[0][..] == id.to_be_bytes()
                && reply.frames()[1].is_empty();
            match check_reply(RequestId(id), reply.clone()) {
                ReplyCheck::Matched(body) => {
                    prop_assert!(exact);
                    prop_assert_eq!(body.frames(), &reply.frames()[2..]);
                }
                ReplyCheck::Stale => prop_assert!(!exact && reply.frames()[0].len() == 4),
                ReplyCheck::Malformed => prop_assert!(!exact),
            }
        }
    }
}
