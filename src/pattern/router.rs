//! Router's routing identities: the frame a Router prepends on receipt and routes a reply by.

use std::collections::HashMap;

use bytes::Bytes;

use super::PeerId;

/// A peer asked for a routing identity that another live peer already holds.
///
/// As in libzmq, without handover the newcomer is refused: the engine closes its pipe and
/// the peer holding the identity keeps it. With handover (`Options::router_handover`) the
/// engine may remove the holder and insert the newcomer again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("routing identity {identity:?} is already held by another peer")]
pub(crate) struct DuplicateIdentity {
    /// The identity asked for.
    pub(crate) identity: Bytes,
    /// The peer holding it.
    pub(crate) holder: PeerId,
}

/// The two-way map between routing identities and peers.
///
/// A peer may ask for an identity (its `ZMQ_ROUTING_ID`); otherwise, or when it asks for an
/// empty one or one starting with a zero byte (reserved for generated identities, as in
/// libzmq), it gets a generated 5-byte identity `[0x00, counter as u32 big-endian]`, the
/// counter starting at a seed passed in and skipping identities in use.
#[derive(Debug)]
pub(crate) struct Identities {
    /// Identity to peer.
    by_identity: HashMap<Bytes, PeerId>,
    /// Peer to identity.
    by_peer: HashMap<PeerId, Bytes>,
    /// The counter of the next generated identity.
    next: u32,
}

impl Default for Identities {
    fn default() -> Self {
        Self::new()
    }
}

impl Identities {
    /// No peers; generated identities start at counter 1.
    pub(crate) fn new() -> Self {
        Self::with_seed(1)
    }

    /// No peers; generated identities start at counter `seed` (libzmq starts at a random
    /// value, which the engine passes in).
    pub(crate) fn with_seed(seed: u32) -> Self {
        Identities {
            by_identity: HashMap::new(),
            by_peer: HashMap::new(),
            next: seed,
        }
    }

    /// Gives `peer` a routing identity and returns it: the `requested` one if it is valid
    /// (non-empty, first byte not zero), a generated one otherwise.
    ///
    /// A peer that already has an identity gets the new one in its place.
    ///
    /// # Errors
    ///
    /// [`DuplicateIdentity`] when another peer holds the requested identity; nothing changes.
    pub(crate) fn insert(
        &mut self,
        peer: PeerId,
        requested: Option<Bytes>,
    ) -> Result<Bytes, DuplicateIdentity> {
        let requested = requested.filter(|id| id.first().is_some_and(|&b| b != 0));
        if let Some(id) = &requested {
            if let Some(&holder) = self.by_identity.get(id) {
                if holder != peer {
                    return Err(DuplicateIdentity {
                        identity: id.clone(),
                        holder,
                    });
                }
            }
        }
        self.remove(peer);
        let identity = match requested {
            Some(id) => id,
            None => self.generate(),
        };
        self.by_identity.insert(identity.clone(), peer);
        self.by_peer.insert(peer, identity.clone());
        Ok(identity)
    }

    /// The next generated identity not in use, advancing the counter past it.
    fn generate(&mut self) -> Bytes {
        loop {
            let mut id = [0u8; 5];
            id[1..].copy_from_slice(&self.next.to_be_bytes());
            self.next = self.next.wrapping_add(1);
            if !self.by_identity.contains_key(&id[..]) {
                return Bytes::copy_from_slice(&id);
            }
        }
    }

    /// The peer holding `identity`, if any (where a Router sends a message).
    pub(crate) fn peer(&self, identity: &[u8]) -> Option<PeerId> {
        self.by_identity.get(identity).copied()
    }

    #[cfg(test)]
    /// The identity of `peer`, if it has one (what a Router prepends to its messages).
    pub(crate) fn identity(&self, peer: PeerId) -> Option<&Bytes> {
        self.by_peer.get(&peer)
    }

    /// Forgets `peer` and frees its identity; an unknown peer is ignored.
    pub(crate) fn remove(&mut self, peer: PeerId) {
        if let Some(identity) = self.by_peer.remove(&peer) {
            self.by_identity.remove(&identity);
        }
    }

    #[cfg(test)]
    /// The number of peers with an identity.
    pub(crate) fn len(&self) -> usize {
        self.by_peer.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_identities_count_up_from_the_seed() {
        let mut ids = Identities::new();
        let a = ids.insert(PeerId(10), None).unwrap();
        let b = ids.insert(PeerId(11), None).unwrap();
        assert_eq!(&a[..], [0, 0, 0, 0, 1]);
        assert_eq!(&b[..], [0, 0, 0, 0, 2]);
        assert_eq!(ids.peer(&a), Some(PeerId(10)));
        assert_eq!(ids.identity(PeerId(11)), Some(&b));
        assert_eq!(ids.len(), 2);

        let mut ids = Identities::with_seed(0x0102_0304);
        assert_eq!(&ids.insert(PeerId(1), None).unwrap()[..], [0, 1, 2, 3, 4]);
    }

    #[test]
    fn the_counter_wraps_around() {
        let mut ids = Identities::with_seed(u32::MAX);
        let a = ids.insert(PeerId(1), None).unwrap();
        let b = ids.insert(PeerId(2), None).unwrap();
        assert_eq!(&a[..], [0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(&b[..], [0, 0, 0, 0, 0]);
    }

    #[test]
    fn generation_skips_identities_in_use() {
        let mut ids = Identities::with_seed(5);
        assert_eq!(&ids.insert(PeerId(1), None).unwrap()[..], [0, 0, 0, 0, 5]);
        ids.next = 5; // as after the counter wrapped all the way round
        assert_eq!(&ids.insert(PeerId(2), None).unwrap()[..], [0, 0, 0, 0, 6]);
    }

    #[test]
    fn a_valid_requested_identity_is_used() {
        let mut ids = Identities::new();
        let id = Bytes::from_static(b"worker-1");
        assert_eq!(ids.insert(PeerId(1), Some(id.clone())), Ok(id.clone()));
        assert_eq!(ids.peer(b"worker-1"), Some(PeerId(1)));
    }

    #[test]
    fn empty_or_zero_prefixed_requests_get_a_generated_identity() {
        let mut ids = Identities::new();
        let a = ids.insert(PeerId(1), Some(Bytes::new())).unwrap();
        let b = ids
            .insert(PeerId(2), Some(Bytes::from_static(&[0, 0, 0, 0, 1])))
            .unwrap();
        assert_eq!(&a[..], [0, 0, 0, 0, 1]);
        assert_eq!(&b[..], [0, 0, 0, 0, 2]);
    }

    #[test]
    fn a_duplicate_identity_is_refused_and_changes_nothing() {
        let mut ids = Identities::new();
        let id = Bytes::from_static(b"dup");
        ids.insert(PeerId(1), Some(id.clone())).unwrap();
        assert_eq!(
            ids.insert(PeerId(2), Some(id.clone())),
            Err(DuplicateIdentity {
                identity: id.clone(),
                holder: PeerId(1)
            })
        );
        assert_eq!(ids.peer(b"dup"), Some(PeerId(1)));
        assert_eq!(ids.identity(PeerId(2)), None);
        assert_eq!(ids.len(), 1);
        // Once the holder is gone the identity is free again.
        ids.remove(PeerId(1));
        assert_eq!(ids.insert(PeerId(2), Some(id.clone())), Ok(id));
    }

    #[test]
    fn reinserting_a_peer_replaces_its_identity() {
        let mut ids = Identities::new();
        ids.insert(PeerId(1), Some(Bytes::from_static(b"old")))
            .unwrap();
        ids.insert(PeerId(1), Some(Bytes::from_static(b"old")))
            .unwrap();
        ids.insert(PeerId(1), Some(Bytes::from_static(b"new")))
            .unwrap();
        assert_eq!(ids.peer(b"old"), None);
        assert_eq!(ids.peer(b"new"), Some(PeerId(1)));
        assert_eq!(ids.len(), 1);
        ids.remove(PeerId(1));
        ids.remove(PeerId(1));
        assert_eq!(ids.len(), 0);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, Option<Vec<u8>>),
        Remove(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        let requested = prop::option::of(prop::collection::vec(0u8..3, 0..3));
        prop_oneof![
            3 => (0u8..6, requested).prop_map(|(p, r)| Op::Insert(p, r)),
            1 => (0u8..6).prop_map(Op::Remove),
        ]
    }

    proptest! {
        #[test]
        fn identities_stay_a_bijection(
            seed in prop_oneof![Just(u32::MAX - 2), any::<u32>()],
            ops in prop::collection::vec(op(), 0..100),
        ) {
            let mut ids = Identities::with_seed(seed);
            let mut model: HashMap<PeerId, Bytes> = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(p, requested) => {
                        let peer = PeerId(p.into());
                        let requested = requested.map(Bytes::from);
                        let valid = requested.clone().filter(|r| r.first().is_some_and(|&b| b != 0));
                        let holder = valid.as_ref().and_then(|r| {
                            model.iter().find(|(_, id)| *id == r).map(|(&q, _)| q)
                        });
                        match ids.insert(peer, requested) {
                            Ok(id) => {
                                prop_assert!(holder.is_none() || holder == Some(peer));
                                match &valid {
                                    Some(r) => prop_assert_eq!(&id, r),
                                    None => {
                                        prop_assert_eq!(id.len(), 5);
                                        prop_assert_eq!(id[0], 0);
                                    }
                                }
                                model.insert(peer, id);
                            }
                            Err(DuplicateIdentity { identity, holder: held_by }) => {
                                prop_assert!(holder.is_some() && holder != Some(peer));
                                prop_assert_eq!(Some(held_by), holder);
                                prop_assert_eq!(Some(identity), valid);
                            }
                        }
                    }
                    Op::Remove(p) => {
                        ids.remove(PeerId(p.into()));
                        model.remove(&PeerId(p.into()));
                    }
                }
                prop_assert_eq!(ids.len(), model.len());
                prop_assert_eq!(ids.by_identity.len(), model.len());
                for (&peer, id) in &model {
                    prop_assert_eq!(ids.identity(peer), Some(id));
                    prop_assert_eq!(ids.peer(id), Some(peer));
                }
            }
        }
    }
}
