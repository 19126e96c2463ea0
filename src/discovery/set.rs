//! The difference between two sets of addresses (pure).

use std::collections::BTreeSet;
use std::net::SocketAddr;

/// What changed from `old` to `new`: (added, removed), each sorted.
pub(crate) fn diff(
    old: &BTreeSet<SocketAddr>,
    new: &BTreeSet<SocketAddr>,
) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
    (
        new.difference(old).copied().collect(),
        old.difference(new).copied().collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_and_removed_are_the_two_differences() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.2:1".parse().unwrap();
        let c: SocketAddr = "[::1]:1".parse().unwrap();
        let old = BTreeSet::from([a, b]);
        let new = BTreeSet::from([b, c]);
        assert_eq!(diff(&old, &new), (vec![c], vec![a]));
        assert_eq!(diff(&new, &new), (vec![], vec![]));
    }
}
