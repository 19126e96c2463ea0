//! All timers of a session in one table; the earliest is what the driver sleeps until.

use std::time::Instant;

/// The timers a session runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The peer's HELLO must arrive before this.
    Handshake = 0,
    /// Send a PING if nothing arrived by then.
    Keepalive = 1,
    /// Declare the peer dead if nothing arrived by then.
    Idle = 2,
}

const COUNT: usize = 3;
const ALL: [Timer; COUNT] = [Timer::Handshake, Timer::Keepalive, Timer::Idle];

/// Deadlines by timer.
#[derive(Debug, Clone, Default)]
pub(crate) struct TimerTable {
    deadlines: [Option<Instant>; COUNT],
}

impl TimerTable {
    /// Arms (or re-arms) `timer` for `at`.
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        self.deadlines[timer as usize] = Some(at);
    }

    /// Disarms `timer`.
    pub(crate) fn stop(&mut self, timer: Timer) {
        self.deadlines[timer as usize] = None;
    }

    /// The earliest armed deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// Disarms and returns one timer whose deadline is at or before `now`.
    pub(crate) fn expired(&mut self, now: Instant) -> Option<Timer> {
        let timer = ALL
            .into_iter()
            .find(|t| self.deadlines[*t as usize].is_some_and(|d| d <= now))?;
        self.stop(timer);
        Some(timer)
    }
}
