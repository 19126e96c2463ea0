//! Hash maps keyed by small integer ids (stream ids, peer ids).
//!
//! Those maps sit on the per-message path, where std's default SipHash (built to resist
//! hash flooding by untrusted keys) cost about a quarter of the CPU time in the 16-byte
//! benchmarks. The ids are chosen by us or checked against a limit before they become keys,
//! so a multiplicative hash is enough.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` for integer ids.
pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;
/// A `HashSet` for integer ids.
pub(crate) type IdSet<K> = HashSet<K, BuildHasherDefault<IdHasher>>;

/// Fibonacci hashing of the id's integer value.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not used by integer ids; a simple FNV-1a keeps it correct for anything else.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_ids_spread_over_the_high_bits() {
        let tops: HashSet<u64> = (0u32..64)
            .map(|i| {
                let mut h = IdHasher::default();
                h.write_u32(i);
                h.finish() >> 57
            })
            .collect();
        assert!(tops.len() > 32, "{}", tops.len());
    }
}
