//! This process's random instance id, sent in every native HELLO.
//!
//! Peers use it to recognise one process across its connections, and a socket uses it to
//! avoid connecting to itself (discovery finds our own announcements too).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::time::SystemTime;

/// 16 random bytes, the same for the whole life of the process.
pub(crate) fn id() -> [u8; 16] {
    static ID: OnceLock<[u8; 16]> = OnceLock::new();
    *ID.get_or_init(|| {
        // std's RandomState is seeded from the OS's random source; two of them give
        // 128 bits without another dependency. The pid and clock only add uniqueness.
        let mut out = [0u8; 16];
        for (i, half) in out.chunks_mut(8).enumerate() {
            let mut h = RandomState::new().build_hasher();
            h.write_u32(std::process::id());
            h.write_usize(i);
            if let Ok(t) = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
                h.write_u128(t.as_nanos());
            }
            half.copy_from_slice(&h.finish().to_le_bytes());
        }
        out
    })
}

/// `bytes` (of the id, say) as lower-case hex, for names that carry it.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random number, different at every call (for names that must not collide).
pub(crate) fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write(&id());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

#[cfg(test)]
mod tests {
    #[test]
    fn id_is_stable_and_not_zero() {
        assert_eq!(super::id(), super::id());
        assert_ne!(super::id(), [0; 16]);
    }

    #[test]
    fn unique_differs_between_calls() {
        assert_ne!(super::unique(), super::unique());
    }
}
