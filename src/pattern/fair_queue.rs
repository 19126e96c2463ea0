//! Reading in turn: Sub, Rep, Dealer, Router and Pull take one message from each ready peer.

use std::collections::VecDeque;

use crate::id_hash::IdSet;

use super::PeerId;

/// The peers that have something to read, in the order they became ready, each at most once.
///
/// The reader [`pop`](FairQueue::pop)s the front peer, reads one message from it and, if
/// that peer still has data, [`push_ready`](FairQueue::push_ready)s it again, which puts it
/// at the back: a busy peer cannot starve the others. `push_ready` and `pop` are O(1)
/// amortised; `remove` is linear (it only happens when a peer goes away).
#[derive(Debug, Default)]
pub(crate) struct FairQueue {
    /// The ready peers, front first.
    order: VecDeque<PeerId>,
    /// The peers in `order`, for the duplicate check.
    queued: IdSet<PeerId>,
}

impl FairQueue {
    /// An empty queue.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Marks `peer` as having something to read; a peer already queued keeps its place.
    pub(crate) fn push_ready(&mut self, peer: PeerId) {
        if self.queued.insert(peer) {
            self.order.push_back(peer);
        }
    }

    /// Takes the peer that has waited longest, or `None` if no peer is ready.
    pub(crate) fn pop(&mut self) -> Option<PeerId> {
        let peer = self.order.pop_front()?;
        self.queued.remove(&peer);
        Some(peer)
    }

    /// The peer that has waited longest, left in place (`pop` or `rotate` it next).
    pub(crate) fn front(&self) -> Option<PeerId> {
        self.order.front().copied()
    }

    /// Moves the front peer to the back: it was read from and has more. The same as `pop`
    /// then `push_ready`, without touching the duplicate check.
    pub(crate) fn rotate(&mut self) {
        if let Some(peer) = self.order.pop_front() {
            self.order.push_back(peer);
        }
    }

    /// Forgets `peer` (it disconnected); an unqueued peer is ignored.
    pub(crate) fn remove(&mut self, peer: PeerId) {
        if self.queued.remove(&peer) {
            self.order.retain(|&p| p != peer);
        }
    }

    #[cfg(test)]
    /// The number of ready peers.
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    #[cfg(test)]
    /// Whether no peer is ready.
    pub(crate) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rotate_is_pop_then_push_ready() {
        let mut a = FairQueue::new();
        let mut b = FairQueue::new();
        for q in [&mut a, &mut b] {
            q.push_ready(PeerId(1));
            q.push_ready(PeerId(2));
        }
        assert_eq!(a.front(), Some(PeerId(1)));
        a.rotate();
        let popped = b.pop().unwrap();
        b.push_ready(popped);
        for _ in 0..2 {
            assert_eq!(a.pop(), b.pop());
        }
        assert!(a.is_empty() && a.front().is_none());
        a.rotate(); // nothing to rotate: no effect
        assert!(a.is_empty());
    }

    #[test]
    fn ready_peers_are_read_in_turn() {
        let mut q = FairQueue::new();
        assert!(q.is_empty());
        q.push_ready(PeerId(1));
        q.push_ready(PeerId(2));
        q.push_ready(PeerId(1));
        assert_eq!(q.len(), 2);
        // Peer 1 has more data: it goes to the back after each read.
        assert_eq!(q.pop(), Some(PeerId(1)));
        q.push_ready(PeerId(1));
        assert_eq!(q.pop(), Some(PeerId(2)));
        assert_eq!(q.pop(), Some(PeerId(1)));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn removed_peers_are_not_read() {
        let mut q = FairQueue::new();
        for id in 1..=3 {
            q.push_ready(PeerId(id));
        }
        q.remove(PeerId(2));
        q.remove(PeerId(9));
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop(), Some(PeerId(1)));
        assert_eq!(q.pop(), Some(PeerId(3)));
        assert!(q.is_empty());
        q.push_ready(PeerId(2));
        assert_eq!(q.pop(), Some(PeerId(2)));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(u8),
        Pop,
        Remove(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u8..6).prop_map(Op::Push),
            2 => Just(Op::Pop),
            1 => (0u8..6).prop_map(Op::Remove),
        ]
    }

    proptest! {
        #[test]
        fn queue_is_fifo_without_duplicates(ops in prop::collection::vec(op(), 0..300)) {
            let mut q = FairQueue::new();
            let mut model: VecDeque<PeerId> = VecDeque::new();
            for op in ops {
                match op {
                    Op::Push(p) => {
                        let peer = PeerId(p.into());
                        q.push_ready(peer);
                        if !model.contains(&peer) {
                            model.push_back(peer);
                        }
                    }
                    Op::Pop => prop_assert_eq!(q.pop(), model.pop_front()),
                    Op::Remove(p) => {
                        let peer = PeerId(p.into());
                        q.remove(peer);
                        model.retain(|&m| m != peer);
                    }
                }
                prop_assert_eq!(q.len(), model.len());
                prop_assert_eq!(q.is_empty(), model.is_empty());
            }
            let mut drained = Vec::new();
            while let Some(peer) = q.pop() {
                prop_assert!(!drained.contains(&peer), "duplicate {}", peer);
                drained.push(peer);
            }
            prop_assert_eq!(drained, Vec::from(model));
        }
    }
}
