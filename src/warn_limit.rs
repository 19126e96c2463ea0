//! Warnings a remote peer can set off at will, rate-limited.
//!
//! A refused connection, a refused stream, a peer that broke the protocol: each is worth a
//! `warn!` the first time, but a peer that reconnects in a loop (a libzmq PAIR refused by a
//! bound zocket PAIR retries every 100 ms; an attacker as fast as it likes) must not decide
//! how much we write to the log, and to the disk behind it. [`warn_limited!`] logs at `warn`
//! at most once per [`WARN_INTERVAL`] for each call site, sends the others to `debug`, and
//! says in the next warning how many it held back (`held_back`). The monitor still reports
//! every occurrence.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often one call site may warn.
pub(crate) const WARN_INTERVAL: Duration = Duration::from_secs(1);

/// The rate limit of one call site (or of one owner, such as a listener).
#[derive(Debug, Default)]
pub(crate) struct WarnLimit {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    last_warning: Option<Instant>,
    /// Occurrences since the last warning.
    held_back: u64,
}

impl WarnLimit {
    /// A limit that has not warned yet.
    pub(crate) const fn new() -> Self {
        WarnLimit {
            state: Mutex::new(State {
                last_warning: None,
                held_back: 0,
            }),
        }
    }

    /// Counts one occurrence at `now`. `Some(n)`: log it at `warn`, `n` occurrences having
    /// been held back since the last warning; `None`: log it at `debug` only.
    pub(crate) fn admit(&self, now: Instant) -> Option<u64> {
        // A poisoned lock only means a panic elsewhere mid-update of two counters.
        let mut st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let due = st
            .last_warning
            .is_none_or(|at| now.saturating_duration_since(at) >= WARN_INTERVAL);
        if due {
            st.last_warning = Some(now);
            Some(std::mem::take(&mut st.held_back))
        } else {
            st.held_back += 1;
            None
        }
    }
}

/// `tracing::warn!` at most once per [`WARN_INTERVAL`] for this call site, `debug!` otherwise;
/// takes `warn!`'s arguments (fields, then the message). The warning carries `held_back`, the
/// occurrences logged only at `debug` since the previous one.
macro_rules! warn_limited {
    ($($arg:tt)+) => {{
        static LIMIT: $crate::warn_limit::WarnLimit = $crate::warn_limit::WarnLimit::new();
        match LIMIT.admit(std::time::Instant::now()) {
            Some(held_back) => tracing::warn!(held_back, $($arg)+),
            None => tracing::debug!($($arg)+),
        }
    }};
}
pub(crate) use warn_limited;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_once_per_interval_and_counts_what_it_held_back() {
        let limit = WarnLimit::new();
        let t0 = Instant::now();
        assert_eq!(limit.admit(t0), Some(0), "the first occurrence warns");
        for i in 1..=5 {
            assert_eq!(limit.admit(t0 + Duration::from_millis(100 * i)), None);
        }
        assert_eq!(
            limit.admit(t0 + WARN_INTERVAL),
            Some(5),
            "the next warning says how many were held back"
        );
        assert_eq!(limit.admit(t0 + WARN_INTERVAL), None);
        assert_eq!(limit.admit(t0 + 3 * WARN_INTERVAL), Some(1));
    }

    #[test]
    fn a_clock_that_goes_back_does_not_unlock_it() {
        let limit = WarnLimit::new();
        let t0 = Instant::now() + WARN_INTERVAL;
        assert_eq!(limit.admit(t0), Some(0));
        assert_eq!(limit.admit(t0 - Duration::from_millis(500)), None);
    }
}
