//! Per-stream credit flow control, as two value types.
//!
//! Every DATA frame costs its payload length plus [`DATA_FRAME_COST`] bytes of credit, so a
//! peer cannot queue unbounded numbers of empty frames. The receiver announces more credit
//! (a WINDOW frame) once half of its window has been consumed by the reader.

/// Credit a DATA frame costs on top of its payload length.
pub(crate) const DATA_FRAME_COST: u64 = 16;

/// The credit a DATA frame of `len` payload bytes costs.
pub(crate) fn cost(len: usize) -> u64 {
    len as u64 + DATA_FRAME_COST
}

/// Most credit a peer may hold on one stream; more is a protocol error.
const MAX_CREDIT: u64 = u32::MAX as u64;

/// The receiving side's view: how much the peer may still send, and what the reader has
/// consumed but not yet given back.
#[derive(Debug, Clone)]
pub(crate) struct RecvWindow {
    size: u64,
    remaining: u64,
    unacked: u64,
}

impl RecvWindow {
    /// A window of `size` bytes, all of it granted to the peer.
    pub(crate) fn new(size: u32) -> Self {
        RecvWindow {
            size: u64::from(size),
            remaining: u64::from(size),
            unacked: 0,
        }
    }

    /// Takes `cost` bytes of credit for an arriving frame.
    ///
    /// # Errors
    /// `Err(())` when the peer sent more than it was granted.
    pub(crate) fn on_data(&mut self, cost: u64) -> Result<(), ()> {
        self.remaining = self.remaining.checked_sub(cost).ok_or(())?;
        Ok(())
    }

    /// Records that the reader consumed `cost` bytes; returns the increment to announce
    /// once at least half the window is waiting to be given back.
    #[must_use]
    pub(crate) fn on_consumed(&mut self, cost: u64) -> Option<u32> {
        self.unacked += cost;
        if self.unacked * 2 >= self.size {
            let inc = std::mem::take(&mut self.unacked);
            self.remaining += inc;
            // `unacked` never exceeds what was sent, which never exceeds `size` (a u32).
            Some(u32::try_from(inc).unwrap_or(u32::MAX))
        } else {
            None
        }
    }
}

/// The sending side's view: credit left to send on a stream.
#[derive(Debug, Clone)]
pub(crate) struct SendCredit {
    credit: u64,
}

impl SendCredit {
    /// Starts with the peer's announced per-stream window.
    pub(crate) fn new(initial: u32) -> Self {
        SendCredit {
            credit: u64::from(initial),
        }
    }

    /// Credit available now.
    pub(crate) fn available(&self) -> u64 {
        self.credit
    }

    /// Spends credit; the caller has checked [`available`](Self::available).
    pub(crate) fn spend(&mut self, cost: u64) {
        debug_assert!(cost <= self.credit);
        self.credit = self.credit.saturating_sub(cost);
    }

    /// Adds a peer's WINDOW increment.
    ///
    /// # Errors
    /// `Err(())` when the total would exceed what any window allows.
    pub(crate) fn on_window(&mut self, inc: u32) -> Result<(), ()> {
        let credit = self.credit + u64::from(inc);
        if credit > MAX_CREDIT {
            return Err(());
        }
        self.credit = credit;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_update_after_half_consumed() {
        let mut w = RecvWindow::new(1000);
        assert!(w.on_data(600).is_ok());
        assert!(w.on_data(401).is_err(), "more than granted");
        assert_eq!(w.on_consumed(400), None);
        assert_eq!(w.on_consumed(100), Some(500));
        assert!(w.on_data(900).is_ok());
        assert!(w.on_data(1).is_err());
    }

    #[test]
    fn credit_overflow_is_refused() {
        let mut c = SendCredit::new(u32::MAX);
        assert!(c.on_window(1).is_err());
        c.spend(10);
        assert!(c.on_window(10).is_ok());
        assert_eq!(c.available(), u64::from(u32::MAX));
    }
}
