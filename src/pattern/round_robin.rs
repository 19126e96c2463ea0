//! Sending in turn: Req, Dealer and Push give each message to the next peer with room.

use super::PeerId;

/// A rotation over peers that skips the ones whose pipe is full.
///
/// Peers keep the order in which they were added. The rotation remembers where it stopped,
/// by position, and corrects that position when a peer before it is removed, so adding or
/// removing peers never makes it skip a peer or serve the same one twice in a row. `add`,
/// `remove` and `contains` take time linear in the number of peers, which is small.
#[derive(Debug, Default)]
pub(crate) struct RoundRobin {
    /// The peers, in rotation order.
    peers: Vec<PeerId>,
    /// The index of the first peer to try next (`peers.len()` means "wrap to 0").
    cursor: usize,
}

impl RoundRobin {
    /// No peers.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds a peer at the end of the rotation; a peer already present is left where it is.
    pub(crate) fn add(&mut self, peer: PeerId) {
        if !self.contains(peer) {
            self.peers.push(peer);
        }
    }

    /// Removes a peer; an unknown peer is ignored. The peer after it takes its turn.
    pub(crate) fn remove(&mut self, peer: PeerId) {
        if let Some(at) = self.peers.iter().position(|&p| p == peer) {
            self.peers.remove(at);
            if at < self.cursor {
                self.cursor -= 1;
            }
        }
    }

    /// Picks the first peer after the previously picked one (cyclically) for which
    /// `has_room` returns `true`, and remembers it as picked.
    ///
    /// Returns `None`, and changes nothing, when no peer has room. `has_room` is called at
    /// most once per peer, in rotation order.
    pub(crate) fn next(&mut self, mut has_room: impl FnMut(PeerId) -> bool) -> Option<PeerId> {
        let n = self.peers.len();
        let start = if self.cursor >= n { 0 } else { self.cursor };
        for k in 0..n {
            let at = (start + k) % n;
            let peer = self.peers[at];
            if has_room(peer) {
                self.cursor = at + 1;
                return Some(peer);
            }
        }
        None
    }

    #[cfg(test)]
    /// The number of peers.
    pub(crate) fn len(&self) -> usize {
        self.peers.len()
    }

    #[cfg(test)]
    /// Whether there are no peers.
    pub(crate) fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Whether `peer` is in the rotation.
    pub(crate) fn contains(&self, peer: PeerId) -> bool {
        self.peers.contains(&peer)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use proptest::prelude::*;

    fn all(_: PeerId) -> bool {
        true
    }

    fn rr(ids: &[u64]) -> RoundRobin {
        let mut rr = RoundRobin::new();
        for &id in ids {
            rr.add(PeerId(id));
        }
        rr
    }

    fn take(rr: &mut RoundRobin, n: usize) -> Vec<u64> {
        (0..n).map(|_| rr.next(all).unwrap().0).collect()
    }

    #[test]
    fn empty_rotation_has_no_peer() {
        let mut rr = RoundRobin::new();
        assert!(rr.is_empty());
        assert_eq!(rr.next(all), None);
    }

    #[test]
    fn peers_with_room_are_served_in_strict_rotation() {
        let mut rr = rr(&[1, 2, 3]);
        assert_eq!(take(&mut rr, 7), [1, 2, 3, 1, 2, 3, 1]);
        assert_eq!(rr.len(), 3);
    }

    #[test]
    fn full_peers_are_skipped_and_keep_no_turn() {
        let mut rr = rr(&[1, 2, 3]);
        assert_eq!(rr.next(|p| p != PeerId(1)), Some(PeerId(2)));
        assert_eq!(rr.next(all), Some(PeerId(3)));
        assert_eq!(rr.next(all), Some(PeerId(1)));
        assert_eq!(rr.next(|_| false), None);
        assert_eq!(
            rr.next(all),
            Some(PeerId(2)),
            "a failed pick changes nothing"
        );
    }

    #[test]
    fn has_room_is_asked_once_per_peer_in_order() {
        let mut rr = rr(&[1, 2, 3]);
        rr.next(all);
        let mut asked = Vec::new();
        let picked = rr.next(|p| {
            asked.push(p.0);
            false
        });
        assert_eq!(picked, None);
        assert_eq!(asked, [2, 3, 1]);
    }

    #[test]
    fn removing_the_last_served_peer_serves_its_successor() {
        let mut rr = rr(&[1, 2, 3, 4]);
        assert_eq!(take(&mut rr, 2), [1, 2]);
        rr.remove(PeerId(2));
        assert_eq!(take(&mut rr, 4), [3, 4, 1, 3]);
    }

    #[test]
    fn removing_an_earlier_peer_does_not_skip_the_next_one() {
        let mut rr = rr(&[1, 2, 3, 4]);
        assert_eq!(take(&mut rr, 2), [1, 2]);
        rr.remove(PeerId(1));
        assert_eq!(take(&mut rr, 3), [3, 4, 2]);
    }

    #[test]
    fn removing_a_later_peer_does_not_repeat_the_current_one() {
        let mut rr = rr(&[1, 2, 3, 4]);
        assert_eq!(take(&mut rr, 4), [1, 2, 3, 4]);
        rr.remove(PeerId(4));
        assert_eq!(take(&mut rr, 2), [1, 2]);
        rr.remove(PeerId(3));
        assert_eq!(take(&mut rr, 2), [1, 2]);
        rr.remove(PeerId(7));
        assert_eq!(rr.len(), 2);
    }

    #[test]
    fn a_new_peer_joins_at_the_end_of_the_rotation() {
        let mut rr = rr(&[1, 2]);
        assert_eq!(take(&mut rr, 1), [1]);
        rr.add(PeerId(3));
        rr.add(PeerId(1));
        assert!(rr.contains(PeerId(3)));
        assert_eq!(rr.len(), 3);
        assert_eq!(take(&mut rr, 4), [2, 3, 1, 2]);
    }

    #[test]
    fn a_peer_added_after_the_last_one_was_served_is_next() {
        let mut rr = rr(&[1, 2]);
        assert_eq!(take(&mut rr, 2), [1, 2]);
        rr.add(PeerId(3));
        assert_eq!(take(&mut rr, 3), [3, 1, 2]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(u8),
        Remove(u8),
        /// Pick with every peer having room.
        NextAll,
        /// Pick with only the peers whose bit is set having room.
        NextSome(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            1 => (0u8..8).prop_map(Op::Add),
            1 => (0u8..8).prop_map(Op::Remove),
            6 => Just(Op::NextAll),
            2 => any::<u8>().prop_map(Op::NextSome),
        ]
    }

    proptest! {
        #[test]
        fn rotation_is_fair_and_only_picks_peers_with_room(
            ops in prop::collection::vec(op(), 0..300),
        ) {
            let mut rr = RoundRobin::new();
            let mut set: Vec<u8> = Vec::new();
            // Picks per peer since the peer set last changed or a pick skipped someone.
            let mut window: HashMap<u8, usize> = HashMap::new();
            // The last peer picked while everyone had room (no other peer was passed over).
            let mut previous: Option<u8> = None;
            for op in ops {
                match op {
                    Op::Add(p) => {
                        rr.add(PeerId(p.into()));
                        if !set.contains(&p) {
                            set.push(p);
                            window.clear();
                        }
                    }
                    Op::Remove(p) => {
                        rr.remove(PeerId(p.into()));
                        if set.contains(&p) {
                            set.retain(|&q| q != p);
                            window.clear();
                            if previous == Some(p) {
                                previous = None;
                            }
                        }
                    }
                    Op::NextAll => {
                        let picked = rr.next(all);
                        prop_assert_eq!(picked.is_none(), set.is_empty());
                        if let Some(peer) = picked {
                            let p = u8::try_from(peer.0).unwrap();
                            prop_assert!(set.contains(&p));
                            if set.len() >= 2 {
                                prop_assert_ne!(previous, Some(p), "served twice in a row");
                            }
                            previous = Some(p);
                            *window.entry(p).or_default() += 1;
                            let counts: Vec<usize> =
                                set.iter().map(|q| window.get(q).copied().unwrap_or(0)).collect();
                            let max = counts.iter().max().unwrap();
                            let min = counts.iter().min().unwrap();
                            prop_assert!(max - min <= 1, "unfair window: {:?}", window);
                        }
                    }
                    Op::NextSome(mask) => {
                        let has_room = |peer: PeerId| mask & (1 << peer.0) != 0;
                        let picked = rr.next(has_room);
                        match picked {
                            Some(peer) => {
                                prop_assert!(has_room(peer));
                                prop_assert!(set.contains(&u8::try_from(peer.0).unwrap()));
                            }
                            None => prop_assert!(!set.iter().any(|&p| has_room(PeerId(p.into())))),
                        }
                        window.clear();
                        previous = None;
                    }
                }
                prop_assert_eq!(rr.len(), set.len());
            }
        }
    }
}
