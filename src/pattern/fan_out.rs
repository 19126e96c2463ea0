//! Pub's side of pub/sub: subscription prefixes per peer and the peers a topic goes to.
//!
//! A subscription is a byte prefix; a message matches when its first frame (the topic) starts
//! with any prefix the peer subscribed to, and the empty prefix matches every message.
//! A [`Subscriptions`] set counts, as a libzmq SUB does: subscribing to the same prefix twice
//! takes two unsubscribes to remove it. A publisher's [`FanOut`] does not, as libzmq's PUB and
//! XPUB do not: a peer holds a prefix or not, and one unsubscribe removes it (an XSUB sends
//! every subscribe upstream but only its last unsubscribe, so counting would never let go).

use std::collections::BTreeMap;
use std::mem;

use bytes::Bytes;

use super::PeerId;

/// A set of subscription prefixes with a count per prefix, stored as a radix trie.
///
/// Each edge carries a non-empty byte string, so a long prefix costs one node, not one node
/// per byte; children are a small `Vec` sorted by their first byte. Unsubscribing prunes and
/// re-merges nodes, so memory follows the live subscriptions, not the history of churn.
/// [`matches`](Subscriptions::matches) walks the trie along the topic without allocating.
/// No operation recurses, so a peer cannot overflow the stack with deeply nested prefixes.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    /// The node for the empty prefix.
    root: Node,
}

/// A trie node: the prefix spelled by the edges from the root to here.
///
/// Invariant (for every node but the root): `count > 0` or at least two children, so the
/// trie has no dead ends and no chains that could be merged.
#[derive(Debug, Default)]
struct Node {
    /// How many times this exact prefix is subscribed (0: not present).
    count: u64,
    /// Outgoing edges, sorted by the first byte of their label (distinct first bytes).
    children: Vec<Edge>,
}

/// An edge of the trie: a non-empty label and the node it leads to.
#[derive(Debug)]
struct Edge {
    /// The bytes this edge adds to the prefix; never empty.
    label: Box<[u8]>,
    /// The node at the end of the edge.
    node: Node,
}

impl Node {
    /// A node with no children, for a prefix subscribed once.
    fn leaf() -> Self {
        Node {
            count: 1,
            children: Vec::new(),
        }
    }

    /// The index of the child edge whose label starts with `byte`.
    fn find(&self, byte: u8) -> Result<usize, usize> {
        self.children
            .binary_search_by_key(&byte, |edge| edge.label[0])
    }
}

/// Drops the subtree with an explicit stack: the default drop would recurse once per level.
impl Drop for Node {
    fn drop(&mut self) {
        let mut stack = mem::take(&mut self.children);
        while let Some(mut edge) = stack.pop() {
            stack.append(&mut edge.node.children);
        }
    }
}

impl Edge {
    /// Splits the label after `at` bytes (`0 < at < label.len()`), inserting an unsubscribed
    /// node there with the old node as its only child.
    fn split(&mut self, at: usize) {
        let old = mem::take(&mut self.node);
        let tail = Edge {
            label: self.label[at..].into(),
            node: old,
        };
        self.label = self.label[..at].into();
        self.node = Node {
            count: 0,
            children: vec![tail],
        };
    }

    /// Merges an unsubscribed node with exactly one child into this edge.
    fn merge_with_only_child(&mut self) {
        debug_assert!(self.node.count == 0 && self.node.children.len() == 1);
        if let Some(child) = self.node.children.pop() {
            let mut label = Vec::with_capacity(self.label.len() + child.label.len());
            label.extend_from_slice(&self.label);
            label.extend_from_slice(&child.label);
            self.label = label.into_boxed_slice();
            self.node = child.node;
        }
    }
}

/// The length of the longest common prefix of `a` and `b`.
fn common_prefix_len(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl Subscriptions {
    /// An empty set: matches nothing.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds one subscription to `prefix`.
    ///
    /// Returns `true` when the prefix was not subscribed before (the caller forwards the
    /// subscription upstream only then).
    pub(crate) fn subscribe(&mut self, prefix: &[u8]) -> bool {
        let mut node = &mut self.root;
        let mut rest = prefix;
        loop {
            let Some(&first) = rest.first() else {
                node.count += 1;
                return node.count == 1;
            };
            match node.find(first) {
                Err(at) => {
                    let edge = Edge {
                        label: rest.into(),
                        node: Node::leaf(),
                    };
                    node.children.insert(at, edge);
                    return true;
                }
                Ok(i) => {
                    let edge = &mut node.children[i];
                    let common = common_prefix_len(&edge.label, rest);
                    if common < edge.label.len() {
                        edge.split(common);
                    }
                    rest = &rest[common..];
                    node = &mut edge.node;
                }
            }
        }
    }

    /// Removes one subscription to `prefix`.
    ///
    /// Returns `true` when that was the last one, so the prefix is no longer present.
    /// Unsubscribing a prefix that is not subscribed does nothing and returns `false`.
    pub(crate) fn unsubscribe(&mut self, prefix: &[u8]) -> bool {
        // Find the edge indices leading to the prefix's node, without changing anything.
        let mut path = Vec::new();
        let mut node = &self.root;
        let mut rest = prefix;
        while let Some(&first) = rest.first() {
            let Ok(i) = node.find(first) else {
                return false;
            };
            let edge = &node.children[i];
            let Some(tail) = rest.strip_prefix(&edge.label[..]) else {
                return false;
            };
            path.push(i);
            rest = tail;
            node = &edge.node;
        }
        if node.count == 0 {
            return false;
        }

        let Some((&last, upper)) = path.split_last() else {
            self.root.count -= 1;
            return self.root.count == 0;
        };
        let parent = self.node_mut(upper);
        let edge = &mut parent.children[last];
        edge.node.count -= 1;
        if edge.node.count > 0 {
            return false;
        }
        match edge.node.children.len() {
            0 => {
                parent.children.remove(last);
                // The parent kept at least one child (it had two, or a count); if it has no
                // count and one child left, fold it into its own edge.
                if let Some((&up, grand)) = upper.split_last() {
                    if parent.count == 0 && parent.children.len() == 1 {
                        self.node_mut(grand).children[up].merge_with_only_child();
                    }
                }
            }
            1 => edge.merge_with_only_child(),
            _ => {}
        }
        true
    }

    /// The node reached by following the edge indices in `path` from the root.
    fn node_mut(&mut self, path: &[usize]) -> &mut Node {
        let mut node = &mut self.root;
        for &i in path {
            node = &mut node.children[i].node;
        }
        node
    }

    /// Whether exactly `prefix` is subscribed (at least once).
    pub(crate) fn contains(&self, prefix: &[u8]) -> bool {
        let mut node = &self.root;
        let mut rest = prefix;
        while let Some(&first) = rest.first() {
            let Ok(i) = node.find(first) else {
                return false;
            };
            let edge = &node.children[i];
            let Some(tail) = rest.strip_prefix(&edge.label[..]) else {
                return false;
            };
            rest = tail;
            node = &edge.node;
        }
        node.count > 0
    }

    /// Whether any subscribed prefix is a prefix of `topic` (the empty prefix matches all).
    pub(crate) fn matches(&self, topic: &[u8]) -> bool {
        let mut node = &self.root;
        let mut rest = topic;
        loop {
            if node.count > 0 {
                return true;
            }
            let Some(&first) = rest.first() else {
                return false;
            };
            let Ok(i) = node.find(first) else {
                return false;
            };
            let edge = &node.children[i];
            let Some(tail) = rest.strip_prefix(&edge.label[..]) else {
                return false;
            };
            rest = tail;
            node = &edge.node;
        }
    }

    #[cfg(test)]
    /// Whether no prefix is subscribed.
    pub(crate) fn is_empty(&self) -> bool {
        self.root.count == 0 && self.root.children.is_empty()
    }

    /// Every subscribed prefix once, whatever its count, in no particular order (a Sub
    /// resends these to a Pub after reconnecting).
    pub(crate) fn prefixes(&self) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut stack: Vec<(&Node, Vec<u8>)> = vec![(&self.root, Vec::new())];
        while let Some((node, prefix)) = stack.pop() {
            for edge in &node.children {
                let mut longer = Vec::with_capacity(prefix.len() + edge.label.len());
                longer.extend_from_slice(&prefix);
                longer.extend_from_slice(&edge.label);
                stack.push((&edge.node, longer));
            }
            if node.count > 0 {
                out.push(Bytes::from(prefix));
            }
        }
        out
    }

    #[cfg(test)]
    /// Removes every subscription.
    pub(crate) fn clear(&mut self) {
        self.root = Node::default();
    }
}

/// What one distinct subscription prefix is counted as holding, besides its bytes: a trie
/// node and edge, their allocations and the count.
pub(crate) const SUBSCRIPTION_OVERHEAD: usize = 64;

/// A subscriber went over its subscription budget; nothing was added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub(crate) struct OverBudget {
    /// What the peer held before this subscription, counted as the budget counts.
    pub(crate) held: usize,
    /// What this subscription would have added.
    pub(crate) adding: usize,
    /// The budget.
    pub(crate) max: usize,
}

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "subscriber over its subscription budget: it holds {} bytes and a subscription \
             of {} more exceeds max_subscription_bytes ({})",
            self.held, self.adding, self.max
        )
    }
}

/// One peer's subscriptions and what they are counted as holding.
#[derive(Debug, Default)]
struct PeerSubscriptions {
    subs: Subscriptions,
    /// Sum over distinct prefixes of `len + SUBSCRIPTION_OVERHEAD`.
    held: usize,
}

/// The peers of a Pub and their subscriptions: who gets a message with a given topic.
///
/// Each peer has its own [`Subscriptions`]; [`matching`](FanOut::matching) checks each in
/// turn, which costs a short trie walk per peer and no allocation once `out` has grown.
/// What one peer's subscriptions hold is bounded by a budget: each distinct prefix counts
/// its length plus [`SUBSCRIPTION_OVERHEAD`].
#[derive(Debug)]
pub(crate) struct FanOut {
    /// Subscriptions per connected peer, ordered by id for deterministic output.
    peers: BTreeMap<PeerId, PeerSubscriptions>,
    /// The most one peer's subscriptions may be counted as holding.
    budget: usize,
}

impl FanOut {
    /// No peers; each may hold at most `budget` bytes of subscriptions (see
    /// [`SUBSCRIPTION_OVERHEAD`]).
    pub(crate) fn new(budget: usize) -> Self {
        FanOut {
            peers: BTreeMap::new(),
            budget,
        }
    }

    /// Adds a peer with no subscriptions; a peer already present keeps its subscriptions.
    pub(crate) fn add_peer(&mut self, peer: PeerId) {
        self.peers.entry(peer).or_default();
    }

    /// Removes a peer and its subscriptions; an unknown peer is ignored.
    pub(crate) fn remove_peer(&mut self, peer: PeerId) {
        self.peers.remove(&peer);
    }

    /// Removes a peer and returns the prefixes it held (none for an unknown peer).
    pub(crate) fn remove_peer_prefixes(&mut self, peer: PeerId) -> Vec<Bytes> {
        self.peers
            .remove(&peer)
            .map_or_else(Vec::new, |p| p.subs.prefixes())
    }

    /// Subscribes `peer` to `prefix`; a prefix it holds already stays held once (not counted).
    ///
    /// Returns `Ok(true)` when the prefix is new for that peer. Subscriptions from a peer
    /// that was never added (or already removed) are ignored and return `Ok(false)`, so a
    /// late message from a closing pipe cannot bring a peer back.
    ///
    /// # Errors
    /// [`OverBudget`] when a new prefix would take the peer over the budget; nothing is
    /// added (the caller drops the peer).
    pub(crate) fn subscribe(&mut self, peer: PeerId, prefix: &[u8]) -> Result<bool, OverBudget> {
        let Some(entry) = self.peers.get_mut(&peer) else {
            return Ok(false);
        };
        if entry.subs.contains(prefix) {
            return Ok(false);
        }
        let adding = prefix.len().saturating_add(SUBSCRIPTION_OVERHEAD);
        if entry.held.saturating_add(adding) > self.budget {
            return Err(OverBudget {
                held: entry.held,
                adding,
                max: self.budget,
            });
        }
        let new = entry.subs.subscribe(prefix);
        if new {
            entry.held += adding;
        }
        Ok(new)
    }

    /// Unsubscribes `peer` from `prefix`.
    ///
    /// Returns `true` when the peer held it; unknown peers and prefixes are ignored and
    /// return `false`.
    pub(crate) fn unsubscribe(&mut self, peer: PeerId, prefix: &[u8]) -> bool {
        let Some(entry) = self.peers.get_mut(&peer) else {
            return false;
        };
        let gone = entry.subs.unsubscribe(prefix);
        if gone {
            entry.held -= prefix.len() + SUBSCRIPTION_OVERHEAD;
        }
        gone
    }

    /// What `peer`'s subscriptions are counted as holding (0 for an unknown peer).
    #[cfg(test)]
    pub(crate) fn held(&self, peer: PeerId) -> usize {
        self.peers.get(&peer).map_or(0, |p| p.held)
    }

    /// Clears `out`, then fills it with every peer subscribed to a prefix of `topic`, in
    /// ascending id order.
    pub(crate) fn matching(&self, topic: &[u8], out: &mut Vec<PeerId>) {
        out.clear();
        out.extend(
            self.peers
                .iter()
                .filter(|(_, entry)| entry.subs.matches(topic))
                .map(|(&peer, _)| peer),
        );
    }

    #[cfg(test)]
    /// The number of peers.
    pub(crate) fn peer_count(&self) -> usize {
        self.peers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Checks the trie's structural invariants, returning the number of nodes.
    fn check_invariants(subs: &Subscriptions) -> usize {
        let mut nodes = 0;
        let mut stack = vec![(&subs.root, true)];
        while let Some((node, is_root)) = stack.pop() {
            nodes += 1;
            if !is_root {
                assert!(
                    node.count > 0 || node.children.len() >= 2,
                    "dead or mergeable node"
                );
            }
            for pair in node.children.windows(2) {
                assert!(pair[0].label[0] < pair[1].label[0], "children not sorted");
            }
            for edge in &node.children {
                assert!(!edge.label.is_empty(), "empty label");
                stack.push((&edge.node, false));
            }
        }
        nodes
    }

    fn sorted(mut v: Vec<Bytes>) -> Vec<Bytes> {
        v.sort();
        v
    }

    #[test]
    fn empty_set_matches_nothing() {
        let subs = Subscriptions::new();
        assert!(subs.is_empty());
        assert!(!subs.matches(b""));
        assert!(!subs.matches(b"anything"));
        assert!(subs.prefixes().is_empty());
    }

    #[test]
    fn empty_prefix_matches_everything() {
        let mut subs = Subscriptions::new();
        assert!(subs.subscribe(b""));
        assert!(subs.matches(b""));
        assert!(subs.matches(b"x"));
        assert!(!subs.is_empty());
        assert_eq!(subs.prefixes(), vec![Bytes::new()]);
        assert!(subs.unsubscribe(b""));
        assert!(subs.is_empty());
        assert!(!subs.matches(b"x"));
    }

    #[test]
    fn prefix_matches_longer_topics_only() {
        let mut subs = Subscriptions::new();
        subs.subscribe(b"orders.");
        assert!(subs.matches(b"orders."));
        assert!(subs.matches(b"orders.eu"));
        assert!(!subs.matches(b"orders"));
        assert!(!subs.matches(b"order.eu"));
        assert!(!subs.matches(b""));
    }

    #[test]
    fn subscribing_twice_needs_two_unsubscribes() {
        let mut subs = Subscriptions::new();
        assert!(subs.subscribe(b"a"));
        assert!(!subs.subscribe(b"a"));
        assert!(!subs.unsubscribe(b"a"));
        assert!(subs.matches(b"abc"));
        assert!(subs.unsubscribe(b"a"));
        assert!(!subs.matches(b"abc"));
        assert!(!subs.unsubscribe(b"a"), "absent prefix is a no-op");
        assert!(subs.is_empty());
    }

    #[test]
    fn unsubscribing_an_absent_prefix_changes_nothing() {
        let mut subs = Subscriptions::new();
        subs.subscribe(b"abcd");
        assert!(!subs.unsubscribe(b"ab"), "a node inside an edge");
        assert!(!subs.unsubscribe(b"abcde"));
        assert!(!subs.unsubscribe(b"x"));
        assert!(!subs.unsubscribe(b""));
        assert_eq!(subs.prefixes(), vec![Bytes::from_static(b"abcd")]);
        check_invariants(&subs);
    }

    #[test]
    fn split_and_merge_keep_the_trie_compact() {
        let mut subs = Subscriptions::new();
        subs.subscribe(b"abcdef");
        subs.subscribe(b"abcxyz");
        subs.subscribe(b"abc");
        subs.subscribe(b"ab");
        assert_eq!(
            sorted(subs.prefixes()),
            sorted(vec![
                Bytes::from_static(b"ab"),
                Bytes::from_static(b"abc"),
                Bytes::from_static(b"abcdef"),
                Bytes::from_static(b"abcxyz"),
            ])
        );
        assert_eq!(check_invariants(&subs), 5);
        assert!(subs.unsubscribe(b"abc"));
        assert!(subs.unsubscribe(b"abcxyz"));
        // root -> "ab" -> "cdef": the branch at "abc" is merged away.
        assert_eq!(check_invariants(&subs), 3);
        assert!(subs.matches(b"abcdefg"));
        assert!(subs.matches(b"abx"));
        assert!(subs.unsubscribe(b"ab"));
        assert_eq!(check_invariants(&subs), 2);
        assert!(!subs.matches(b"abx"));
        assert!(subs.unsubscribe(b"abcdef"));
        assert_eq!(check_invariants(&subs), 1);
        assert!(subs.is_empty());
    }

    #[test]
    fn churn_leaves_no_nodes_behind() {
        let mut subs = Subscriptions::new();
        for round in 0..50u32 {
            let prefixes: Vec<Vec<u8>> = (0..40u32)
                .map(|i| format!("topic.{}.{}", i % 7, i * 31 + round).into_bytes())
                .collect();
            for p in &prefixes {
                subs.subscribe(p);
            }
            for p in &prefixes {
                subs.unsubscribe(p);
            }
            assert!(subs.is_empty());
            assert_eq!(check_invariants(&subs), 1);
        }
    }

    #[test]
    fn clear_removes_every_prefix() {
        let mut subs = Subscriptions::new();
        subs.subscribe(b"a");
        subs.subscribe(b"b");
        subs.subscribe(b"");
        subs.clear();
        assert!(subs.is_empty());
        assert!(!subs.matches(b"a"));
    }

    #[test]
    fn dropping_a_very_deep_trie_does_not_overflow_the_stack() {
        let mut node = Node::leaf();
        for _ in 0..1_000_000 {
            node = Node {
                count: 1,
                children: vec![Edge {
                    label: Box::new([b'a']),
                    node,
                }],
            };
        }
        let subs = Subscriptions { root: node };
        assert!(subs.matches(b"a"));
        drop(subs);
    }

    #[test]
    fn many_nested_prefixes_subscribe_and_unsubscribe() {
        let long = vec![b'z'; 2000];
        let mut subs = Subscriptions::new();
        for len in 1..=long.len() {
            assert!(subs.subscribe(&long[..len]));
        }
        assert!(subs.matches(&long));
        assert_eq!(subs.prefixes().len(), long.len());
        for len in (1..=long.len()).rev() {
            assert!(subs.unsubscribe(&long[..len]));
        }
        assert!(subs.is_empty());
    }

    #[test]
    fn fan_out_returns_matching_peers_in_ascending_order() {
        let mut fan = FanOut::new(usize::MAX);
        for id in [3, 1, 2, 4] {
            fan.add_peer(PeerId(id));
        }
        assert_eq!(fan.subscribe(PeerId(3), b"a"), Ok(true));
        assert_eq!(fan.subscribe(PeerId(1), b""), Ok(true));
        assert_eq!(fan.subscribe(PeerId(2), b"ab"), Ok(true));
        let mut out = vec![PeerId(99)];
        fan.matching(b"abc", &mut out);
        assert_eq!(out, [PeerId(1), PeerId(2), PeerId(3)]);
        fan.matching(b"b", &mut out);
        assert_eq!(out, [PeerId(1)]);
        fan.remove_peer(PeerId(1));
        fan.matching(b"b", &mut out);
        assert!(out.is_empty());
        assert_eq!(fan.peer_count(), 3);
    }

    #[test]
    fn fan_out_ignores_unknown_peers() {
        let mut fan = FanOut::new(usize::MAX);
        assert_eq!(fan.subscribe(PeerId(1), b""), Ok(false));
        assert!(!fan.unsubscribe(PeerId(1), b""));
        assert_eq!(fan.peer_count(), 0);
        let mut out = Vec::new();
        fan.matching(b"x", &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn a_peer_is_stopped_at_its_subscription_budget_and_unsubscribing_frees_it() {
        let cost = |prefix: &[u8]| prefix.len() + SUBSCRIPTION_OVERHEAD;
        let budget = cost(b"aaaa") + cost(b"bb");
        let mut fan = FanOut::new(budget);
        fan.add_peer(PeerId(1));
        fan.add_peer(PeerId(2));
        assert_eq!(fan.subscribe(PeerId(1), b"aaaa"), Ok(true));
        assert_eq!(fan.subscribe(PeerId(1), b"bb"), Ok(true));
        assert_eq!(fan.held(PeerId(1)), budget);
        // Subscribing to a held prefix again costs nothing; a new one is refused, and not
        // added.
        assert_eq!(fan.subscribe(PeerId(1), b"aaaa"), Ok(false));
        assert_eq!(
            fan.subscribe(PeerId(1), b"c"),
            Err(OverBudget {
                held: budget,
                adding: cost(b"c"),
                max: budget
            })
        );
        let mut out = Vec::new();
        fan.matching(b"c", &mut out);
        assert!(out.is_empty());
        // The budget is per peer.
        assert_eq!(fan.subscribe(PeerId(2), b"c"), Ok(true));
        // A publisher does not count: one unsubscribe removes the prefix and frees its cost.
        assert!(fan.unsubscribe(PeerId(1), b"aaaa"));
        assert_eq!(fan.held(PeerId(1)), cost(b"bb"));
        assert!(!fan.unsubscribe(PeerId(1), b"aaaa"));
        assert_eq!(fan.subscribe(PeerId(1), b"c"), Ok(true));
    }

    #[test]
    fn re_adding_a_peer_keeps_its_subscriptions() {
        let mut fan = FanOut::new(usize::MAX);
        fan.add_peer(PeerId(1));
        fan.subscribe(PeerId(1), b"a").unwrap();
        fan.add_peer(PeerId(1));
        let mut out = Vec::new();
        fan.matching(b"a", &mut out);
        assert_eq!(out, [PeerId(1)]);
    }

    /// Short strings over a three-letter alphabet, so prefixes collide and nest often.
    fn small_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(0u8..3, 0..5)
    }

    #[derive(Debug, Clone)]
    enum SubOp {
        Subscribe(Vec<u8>),
        Unsubscribe(Vec<u8>),
        Clear,
    }

    fn sub_op() -> impl Strategy<Value = SubOp> {
        prop_oneof![
            6 => small_bytes().prop_map(SubOp::Subscribe),
            6 => small_bytes().prop_map(SubOp::Unsubscribe),
            1 => Just(SubOp::Clear),
        ]
    }

    #[derive(Debug, Clone)]
    enum FanOp {
        Add(u8),
        Remove(u8),
        Subscribe(u8, Vec<u8>),
        Unsubscribe(u8, Vec<u8>),
        Match(Vec<u8>),
    }

    fn fan_op() -> impl Strategy<Value = FanOp> {
        let peer = 0u8..5;
        prop_oneof![
            1 => peer.clone().prop_map(FanOp::Add),
            1 => peer.clone().prop_map(FanOp::Remove),
            4 => (peer.clone(), small_bytes()).prop_map(|(p, b)| FanOp::Subscribe(p, b)),
            4 => (peer, small_bytes()).prop_map(|(p, b)| FanOp::Unsubscribe(p, b)),
            4 => prop::collection::vec(0u8..3, 0..7).prop_map(FanOp::Match),
        ]
    }

    proptest! {
        #[test]
        fn subscriptions_agree_with_a_counted_multiset(
            ops in prop::collection::vec(sub_op(), 0..200),
            topics in prop::collection::vec(prop::collection::vec(0u8..3, 0..7), 1..20),
        ) {
            let mut subs = Subscriptions::new();
            let mut model: Vec<Vec<u8>> = Vec::new(); // one entry per subscription
            for op in ops {
                match op {
                    SubOp::Subscribe(p) => {
                        let was_absent = !model.contains(&p);
                        model.push(p.clone());
                        prop_assert_eq!(subs.subscribe(&p), was_absent);
                    }
                    SubOp::Unsubscribe(p) => {
                        let removed_last = match model.iter().position(|m| *m == p) {
                            Some(i) => {
                                model.swap_remove(i);
                                !model.contains(&p)
                            }
                            None => false,
                        };
                        prop_assert_eq!(subs.unsubscribe(&p), removed_last);
                    }
                    SubOp::Clear => {
                        model.clear();
                        subs.clear();
                    }
                }
                check_invariants(&subs);
                prop_assert_eq!(subs.is_empty(), model.is_empty());
                for topic in &topics {
                    let expected = model.iter().any(|p| topic.starts_with(p));
                    prop_assert_eq!(subs.matches(topic), expected);
                }
            }
            let mut expected: Vec<Bytes> = model.into_iter().map(Bytes::from).collect();
            expected.sort();
            expected.dedup();
            prop_assert_eq!(sorted(subs.prefixes()), expected);
        }

        #[test]
        fn fan_out_agrees_with_a_naive_filter(ops in prop::collection::vec(fan_op(), 0..200)) {
            let mut fan = FanOut::new(usize::MAX);
            let mut peers: Vec<u8> = Vec::new();
            let mut model: Vec<(u8, Vec<u8>)> = Vec::new(); // (peer, prefix) pairs held
            let mut out = Vec::new();
            for op in ops {
                match op {
                    FanOp::Add(p) => {
                        fan.add_peer(PeerId(p.into()));
                        if !peers.contains(&p) {
                            peers.push(p);
                        }
                    }
                    FanOp::Remove(p) => {
                        fan.remove_peer(PeerId(p.into()));
                        peers.retain(|&q| q != p);
                        model.retain(|(q, _)| *q != p);
                    }
                    FanOp::Subscribe(p, prefix) => {
                        let expected = peers.contains(&p) && !model.contains(&(p, prefix.clone()));
                        if expected {
                            model.push((p, prefix.clone())); // a set: held once
                        }
                        prop_assert_eq!(fan.subscribe(PeerId(p.into()), &prefix), Ok(expected));
                    }
                    FanOp::Unsubscribe(p, prefix) => {
                        let entry = (p, prefix.clone());
                        let expected = match model.iter().position(|m| *m == entry) {
                            Some(i) => {
                                model.swap_remove(i);
                                true
                            }
                            None => false,
                        };
                        prop_assert_eq!(fan.unsubscribe(PeerId(p.into()), &prefix), expected);
                    }
                    FanOp::Match(topic) => {
                        let mut expected: Vec<PeerId> = peers
                            .iter()
                            .filter(|&&p| model.iter().any(|(q, pre)| *q == p && topic.starts_with(pre)))
                            .map(|&p| PeerId(p.into()))
                            .collect();
                        expected.sort();
                        fan.matching(&topic, &mut out);
                        prop_assert_eq!(&out, &expected);
                    }
                }
                prop_assert_eq!(fan.peer_count(), peers.len());
            }
        }
    }
}
