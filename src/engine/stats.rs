//! The engine's side of [`crate::stats`]: who each peer is, and the snapshot of the counters.

use super::{Engine, Link, Peer, Phase, State};
use crate::curve::PublicKey;
use crate::pattern::PeerId;
use crate::stats::{PeerInfo, PeerStats, Stats, Wire};

/// Who `peer` is, as far as its link tells: called once it is usable (its routing id and
/// CURVE key are known by then).
pub(super) fn describe(peer: &Peer) -> PeerInfo {
    let wire = match &peer.link {
        Link::Native { .. } => Wire::Native,
        Link::Zmtp(_) => Wire::Zmtp,
        Link::Inproc(_) => Wire::Inproc,
    };
    let key = peer.curve_key();
    PeerInfo::new(
        peer.endpoint.clone(),
        wire,
        peer.direction,
        peer.remote_type,
        (!peer.identity.is_empty()).then(|| peer.identity.clone()),
        key.map(PublicKey::from_bytes),
    )
}

/// Who peer `id` is (`None` if it is not there).
pub(super) fn info_of(st: &State, id: PeerId) -> Option<PeerInfo> {
    let peer = st.peers.get(&id)?;
    Some(peer.info.clone().unwrap_or_else(|| describe(peer)))
}

impl Engine {
    /// A snapshot of the socket's counters and of each peer's.
    pub(crate) fn stats(&self) -> Stats {
        let mut st = self.lock();
        self.absorb(&mut st);
        let mut total = st.retired;
        let mut queued = 0;
        let peers = st
            .peers
            .values()
            .map(|peer| {
                total.add(&peer.counters);
                queued += peer.queued();
                PeerStats {
                    info: peer.info.clone().unwrap_or_else(|| describe(peer)),
                    ready: peer.phase == Phase::Active,
                    traffic: peer.counters.traffic(peer.queued()),
                }
            })
            .collect();
        Stats {
            socket_type: self.socket_type,
            traffic: total.traffic(queued),
            connections: self.links.snapshot(),
            peers,
        }
    }

    /// Who the peer with this Router routing id is.
    pub(crate) fn info_by_identity(&self, identity: &[u8]) -> Option<PeerInfo> {
        let st = self.lock();
        let id = st.identities.peer(identity)?;
        info_of(&st, id)
    }
}
