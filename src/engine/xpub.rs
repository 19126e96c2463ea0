//! XPub's side of pub/sub: what its subscribers send becomes messages for the handle.
//!
//! An XPub filters like a Pub (its [`FanOut`]) and also hands its owner the subscriptions
//! that arrive, as one-frame messages `01` + prefix (subscribe) and `00` + prefix
//! (unsubscribe), libzmq's XPUB format. By default they are deduplicated across subscribers:
//! only the first subscribe of a prefix (no subscriber held it) and the last unsubscribe
//! (none holds it any more) are passed, and a subscriber that leaves unsubscribes the
//! prefixes only it held. With `Options::xpub_verbose` every subscribe and unsubscribe a
//! subscriber sends is passed, and a leaving subscriber unsubscribes every prefix it held.
//! An XSub's other messages (sent "upstream") are passed as they are; a Sub sends none.
//!
//! What waits for the handle is bounded: once `recv_hwm` messages wait, the engine stops
//! reading its subscribers (their links hold the rest and push back on them) until the
//! handle takes some. Only the unsubscribes of a subscriber that left are queued past that
//! bound: at most one per prefix it held, which its subscription budget bounds.

use std::collections::{BTreeSet, VecDeque};

use super::subscription;
use crate::pattern::fan_out::{FanOut, OverBudget, Subscriptions};
use crate::pattern::PeerId;
use crate::{Message, SocketType};

/// The first frame of a snapshot (see [`subscription`]).
const SNAPSHOT: u8 = 0x02;

/// What an XPub holds besides its fan-out.
#[derive(Debug)]
pub(crate) struct XPubState {
    /// Each prefix some subscriber holds, counted once per subscriber holding it.
    union: Subscriptions,
    /// Pass every subscription message (`Options::xpub_verbose`).
    verbose: bool,
    /// Messages for the handle, with the peer each came from.
    queue: VecDeque<(PeerId, Message)>,
    /// How many messages `queue` holds before subscribers' input is left unread.
    cap: usize,
    /// Subscribers left with unread input because `queue` was full.
    held_back: Vec<PeerId>,
    /// Subscribers (on the native wire or inproc) whose snapshot arrived: a later message
    /// that looks like one is an XSub's upstream message.
    snapshots: BTreeSet<PeerId>,
}

/// Where a subscriber's message came from, as [`XPubState::apply`] needs to know it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin {
    /// The subscriber's socket type, when known.
    pub(crate) remote: Option<SocketType>,
    /// A native stream or an inproc pipe (whose first message is a snapshot); `false`
    /// for a ZMTP connection (subscriptions only, no snapshot).
    pub(crate) snapshots: bool,
}

impl XPubState {
    /// No subscribers; `cap` messages wait for the handle at most (see the module docs).
    pub(crate) fn new(verbose: bool, cap: usize) -> Self {
        XPubState {
            union: Subscriptions::new(),
            verbose,
            queue: VecDeque::new(),
            cap: cap.max(1),
            held_back: Vec::new(),
            snapshots: BTreeSet::new(),
        }
    }

    /// Whether the queue is full: subscribers are not read until the handle takes some.
    pub(crate) fn is_full(&self) -> bool {
        self.queue.len() >= self.cap
    }

    /// How many messages wait for the handle.
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Remembers that `peer` has unread input, to read once the queue has room.
    pub(crate) fn hold_back(&mut self, peer: PeerId) {
        if !self.held_back.contains(&peer) {
            self.held_back.push(peer);
        }
    }

    /// The subscribers held back so far (the caller reads them again).
    pub(crate) fn take_held_back(&mut self) -> Vec<PeerId> {
        std::mem::take(&mut self.held_back)
    }

    /// The next message for the handle.
    pub(crate) fn pop(&mut self) -> Option<(PeerId, Message)> {
        self.queue.pop_front()
    }

    /// Applies a message from subscriber `peer` to `fanout` and queues what the handle is
    /// to see; returns whether it was the peer's snapshot.
    ///
    /// # Errors
    /// [`OverBudget`] when the peer's subscriptions would go over the budget; what came
    /// before in the message was applied (and passed on). The caller drops the peer.
    pub(crate) fn apply(
        &mut self,
        fanout: &mut FanOut,
        peer: PeerId,
        msg: Message,
        origin: Origin,
    ) -> Result<bool, OverBudget> {
        let Some(first) = msg.first() else {
            return Ok(false); // nothing (no ZeroMQ peer can send a message of no frames)
        };
        if origin.snapshots && first.as_ref() == [SNAPSHOT] && self.snapshots.insert(peer) {
            for prefix in &msg.frames()[1..] {
                self.subscribe(fanout, peer, prefix)?;
            }
            return Ok(true);
        }
        if msg.len() == 1 {
            match first.first() {
                Some(&1) => {
                    self.subscribe(fanout, peer, &first[1..])?;
                    return Ok(false);
                }
                Some(&0) => {
                    self.unsubscribe(fanout, peer, &first[1..]);
                    return Ok(false);
                }
                _ => {}
            }
        }
        if origin.remote == Some(SocketType::XSub) {
            self.queue.push_back((peer, msg));
        }
        Ok(false)
    }

    fn subscribe(
        &mut self,
        fanout: &mut FanOut,
        peer: PeerId,
        prefix: &[u8],
    ) -> Result<(), OverBudget> {
        let new_for_peer = fanout.subscribe(peer, prefix)?;
        let first = new_for_peer && self.union.subscribe(prefix);
        if first || self.verbose {
            self.queue
                .push_back((peer, subscription::command(true, prefix)));
        }
        Ok(())
    }

    fn unsubscribe(&mut self, fanout: &mut FanOut, peer: PeerId, prefix: &[u8]) {
        let held = fanout.unsubscribe(peer, prefix);
        let last = held && self.union.unsubscribe(prefix);
        if last || self.verbose {
            self.queue
                .push_back((peer, subscription::command(false, prefix)));
        }
    }

    /// A subscriber left: its prefixes leave `fanout`, and the handle is told of those no
    /// other subscriber holds (in verbose mode: of all of them).
    pub(crate) fn remove_peer(&mut self, fanout: &mut FanOut, peer: PeerId) {
        for prefix in fanout.remove_peer_prefixes(peer) {
            let last = self.union.unsubscribe(&prefix);
            if last || self.verbose {
                self.queue
                    .push_back((peer, subscription::command(false, &prefix)));
            }
        }
        self.snapshots.remove(&peer);
        self.held_back.retain(|&p| p != peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    const NATIVE_SUB: Origin = Origin {
        remote: Some(SocketType::Sub),
        snapshots: true,
    };
    const NATIVE_XSUB: Origin = Origin {
        remote: Some(SocketType::XSub),
        snapshots: true,
    };
    const ZMTP_XSUB: Origin = Origin {
        remote: Some(SocketType::XSub),
        snapshots: false,
    };

    fn sub(prefix: &str) -> Message {
        subscription::command(true, prefix.as_bytes())
    }

    fn unsub(prefix: &str) -> Message {
        subscription::command(false, prefix.as_bytes())
    }

    fn snapshot(prefixes: &[&str]) -> Message {
        let mut frames = vec![Bytes::from_static(&[SNAPSHOT])];
        frames.extend(
            prefixes
                .iter()
                .map(|p| Bytes::copy_from_slice(p.as_bytes())),
        );
        Message::from(frames)
    }

    /// What the handle would receive now, as text (`+a` subscribe, `-a` unsubscribe, else
    /// the frames joined by `|`), with the peer it came from.
    fn drain(x: &mut XPubState) -> Vec<(u64, String)> {
        std::iter::from_fn(|| x.pop())
            .map(|(peer, msg)| {
                let f = &msg.frames()[0];
                let text = match (msg.len(), f.first()) {
                    (1, Some(1)) => format!("+{}", String::from_utf8_lossy(&f[1..])),
                    (1, Some(0)) => format!("-{}", String::from_utf8_lossy(&f[1..])),
                    _ => msg
                        .iter()
                        .map(|f| String::from_utf8_lossy(f).into_owned())
                        .collect::<Vec<_>>()
                        .join("|"),
                };
                (peer.0, text)
            })
            .collect()
    }

    fn setup(verbose: bool) -> (XPubState, FanOut) {
        let mut fanout = FanOut::new(usize::MAX);
        for p in 1..=3 {
            fanout.add_peer(PeerId(p));
        }
        (XPubState::new(verbose, 1000), fanout)
    }

    fn s(peer: u64, text: &str) -> (u64, String) {
        (peer, text.to_owned())
    }

    #[test]
    fn only_the_first_subscribe_and_the_last_unsubscribe_of_a_prefix_are_passed() {
        let (mut x, mut fan) = setup(false);
        let (a, b) = (PeerId(1), PeerId(2));
        x.apply(&mut fan, a, sub("news"), NATIVE_SUB).unwrap();
        x.apply(&mut fan, b, sub("news"), NATIVE_SUB).unwrap();
        x.apply(&mut fan, a, sub("news"), NATIVE_SUB).unwrap(); // held already
        x.apply(&mut fan, b, sub("sport"), NATIVE_SUB).unwrap();
        assert_eq!(drain(&mut x), [s(1, "+news"), s(2, "+sport")]);
        x.apply(&mut fan, a, unsub("news"), NATIVE_SUB).unwrap(); // b still holds it
        x.apply(&mut fan, a, unsub("weather"), NATIVE_SUB).unwrap(); // never held
        assert_eq!(drain(&mut x), []);
        x.apply(&mut fan, b, unsub("news"), NATIVE_SUB).unwrap();
        assert_eq!(drain(&mut x), [s(2, "-news")]);
        let mut out = Vec::new();
        fan.matching(b"news.x", &mut out);
        assert!(out.is_empty());
        fan.matching(b"sport.x", &mut out);
        assert_eq!(out, [b]);
    }

    #[test]
    fn verbose_passes_every_subscribe_and_unsubscribe() {
        let (mut x, mut fan) = setup(true);
        let (a, b) = (PeerId(1), PeerId(2));
        x.apply(&mut fan, a, sub("news"), NATIVE_SUB).unwrap();
        x.apply(&mut fan, b, sub("news"), NATIVE_SUB).unwrap();
        x.apply(&mut fan, a, sub("news"), NATIVE_SUB).unwrap();
        x.apply(&mut fan, a, unsub("news"), NATIVE_SUB).unwrap();
        x.apply(&mut fan, b, unsub("news"), NATIVE_SUB).unwrap();
        assert_eq!(
            drain(&mut x),
            [
                s(1, "+news"),
                s(2, "+news"),
                s(1, "+news"),
                s(1, "-news"),
                s(2, "-news")
            ]
        );
    }

    #[test]
    fn a_leaving_subscriber_unsubscribes_what_only_it_held() {
        let (mut x, mut fan) = setup(false);
        let (a, b) = (PeerId(1), PeerId(2));
        x.apply(&mut fan, a, snapshot(&["news", "sport"]), NATIVE_SUB)
            .unwrap();
        x.apply(&mut fan, b, sub("news"), NATIVE_SUB).unwrap();
        drain(&mut x);
        x.remove_peer(&mut fan, a);
        assert_eq!(drain(&mut x), [s(1, "-sport")]);
        x.remove_peer(&mut fan, b);
        assert_eq!(drain(&mut x), [s(2, "-news")]);
        // Verbose: every prefix the leaving subscriber held.
        let (mut x, mut fan) = setup(true);
        x.apply(&mut fan, a, snapshot(&["news"]), NATIVE_SUB)
            .unwrap();
        x.apply(&mut fan, b, sub("news"), NATIVE_SUB).unwrap();
        drain(&mut x);
        x.remove_peer(&mut fan, a);
        assert_eq!(drain(&mut x), [s(1, "-news")]);
    }

    #[test]
    fn a_snapshot_is_one_subscribe_per_prefix_and_only_the_first_one_is_a_snapshot() {
        let (mut x, mut fan) = setup(false);
        let a = PeerId(1);
        assert_eq!(
            x.apply(&mut fan, a, snapshot(&["", "a.b"]), NATIVE_XSUB),
            Ok(true)
        );
        let mut got = drain(&mut x);
        got.sort();
        assert_eq!(got, [s(1, "+"), s(1, "+a.b")]);
        // From an XSub, a later message of that shape is a message sent upstream.
        assert_eq!(
            x.apply(&mut fan, a, snapshot(&["x"]), NATIVE_XSUB),
            Ok(false)
        );
        let upstream = Message::from(vec![Bytes::from_static(b"hello"), Bytes::new()]);
        x.apply(&mut fan, a, upstream, NATIVE_XSUB).unwrap();
        assert_eq!(
            drain(&mut x),
            [s(1, &format!("{}|x", '\u{2}')), s(1, "hello|")]
        );
    }

    #[test]
    fn upstream_messages_pass_only_from_an_xsub_and_a_zmtp_peer_sends_no_snapshot() {
        let (mut x, mut fan) = setup(false);
        x.apply(&mut fan, PeerId(1), Message::from("chat"), NATIVE_SUB)
            .unwrap();
        assert_eq!(drain(&mut x), []);
        assert_eq!(
            x.apply(&mut fan, PeerId(2), snapshot(&["a"]), ZMTP_XSUB),
            Ok(false)
        );
        x.apply(&mut fan, PeerId(2), Message::from("chat"), ZMTP_XSUB)
            .unwrap();
        assert_eq!(
            drain(&mut x),
            [s(2, &format!("{}|a", '\u{2}')), s(2, "chat")]
        );
        let mut out = Vec::new();
        fan.matching(b"a", &mut out);
        assert!(
            out.is_empty(),
            "a ZMTP peer's 02 message subscribes nothing"
        );
    }

    #[test]
    fn a_subscriber_over_its_budget_is_refused_after_what_fit() {
        let mut fan = FanOut::new(2 * (1 + crate::pattern::fan_out::SUBSCRIPTION_OVERHEAD));
        fan.add_peer(PeerId(1));
        let mut x = XPubState::new(false, 10);
        let err = x.apply(&mut fan, PeerId(1), snapshot(&["a", "b", "c"]), NATIVE_SUB);
        assert!(err.is_err());
        let mut got = drain(&mut x);
        got.sort();
        assert_eq!(got, [s(1, "+a"), s(1, "+b")]);
        x.remove_peer(&mut fan, PeerId(1));
        let mut got = drain(&mut x);
        got.sort();
        assert_eq!(got, [s(1, "-a"), s(1, "-b")]);
    }

    #[test]
    fn the_queue_reports_full_at_its_cap() {
        let mut fan = FanOut::new(usize::MAX);
        fan.add_peer(PeerId(1));
        let mut x = XPubState::new(false, 2);
        x.apply(&mut fan, PeerId(1), sub("a"), NATIVE_SUB).unwrap();
        assert!(!x.is_full());
        x.apply(&mut fan, PeerId(1), sub("b"), NATIVE_SUB).unwrap();
        assert!(x.is_full());
        x.hold_back(PeerId(1));
        x.hold_back(PeerId(1));
        assert_eq!(x.take_held_back(), [PeerId(1)]);
        x.pop();
        assert!(!x.is_full());
    }
}
