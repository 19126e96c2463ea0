//! Outgoing bytes as a list of segments, written with one vectored write.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};

/// Payloads at most this long are copied next to their header instead of becoming a
/// segment of their own: fewer, larger segments for small messages.
pub(crate) const INLINE_PAYLOAD: usize = 512;

/// Encoded frames waiting to be written: headers and small frames are packed into shared
/// buffers, large DATA payloads are referenced without copying.
#[derive(Debug, Default)]
pub(crate) struct Transmit {
    segments: VecDeque<Bytes>,
    /// Headers and inline payloads not yet split off into a segment.
    scratch: BytesMut,
    len: usize,
}

impl Transmit {
    /// An empty transmit buffer.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Bytes waiting to be written.
    pub(crate) fn len(&self) -> usize {
        self.len + self.scratch.len()
    }

    /// Whether nothing waits to be written.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of segments (after [`seal`](Self::seal)).
    pub(crate) fn segment_count(&self) -> usize {
        self.segments.len() + usize::from(!self.scratch.is_empty())
    }

    /// The buffer headers and small frames are encoded into.
    pub(crate) fn scratch(&mut self) -> &mut BytesMut {
        if self.scratch.capacity() - self.scratch.len() < 1024 {
            self.scratch.reserve(16 * 1024);
        }
        &mut self.scratch
    }

    /// Appends a payload after what is in the scratch buffer.
    pub(crate) fn push_payload(&mut self, payload: Bytes) {
        if payload.len() <= INLINE_PAYLOAD {
            self.scratch().extend_from_slice(&payload);
            return;
        }
        self.seal();
        self.len += payload.len();
        self.segments.push_back(payload);
    }

    /// Turns what the scratch buffer holds into a segment.
    pub(crate) fn seal(&mut self) {
        if !self.scratch.is_empty() {
            let head = self.scratch.split().freeze();
            self.len += head.len();
            self.segments.push_back(head);
        }
    }

    /// Fills `slices` with the first segments; returns how many were filled.
    /// Call [`seal`](Self::seal) first.
    pub(crate) fn io_slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, seg) in slices.iter_mut().zip(self.segments.iter()) {
            *slot = IoSlice::new(seg);
            n += 1;
        }
        n
    }

    /// The first segment (for transports without vectored writes).
    pub(crate) fn first(&self) -> &[u8] {
        self.segments.front().map_or(&[], |s| s)
    }

    /// Drops `n` written bytes from the front.
    pub(crate) fn advance(&mut self, mut n: usize) {
        self.len -= n.min(self.len);
        while n > 0 {
            let Some(front) = self.segments.front_mut() else {
                return;
            };
            if n < front.len() {
                front.advance(n);
                return;
            }
            n -= front.len();
            self.segments.pop_front();
        }
    }

    /// Everything waiting, as its segments in order (sealed first).
    pub(crate) fn segments(&mut self) -> impl Iterator<Item = &[u8]> + '_ {
        self.seal();
        self.segments.iter().map(|s| &s[..])
    }

    /// Concatenates everything (tests).
    #[cfg(test)]
    pub(crate) fn concat(&mut self) -> Vec<u8> {
        self.seal();
        self.segments
            .iter()
            .flat_map(|s| s.iter().copied())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    #[test]
    fn segments_advance_across_boundaries() {
        let mut t = Transmit::new();
        t.scratch().put_slice(b"head");
        t.push_payload(Bytes::from(vec![7u8; 1000]));
        t.scratch().put_slice(b"tail");
        t.seal();
        assert_eq!(t.len(), 1008);
        assert_eq!(t.segment_count(), 3);
        t.advance(6);
        assert_eq!(t.len(), 1002);
        assert_eq!(t.first().len(), 998);
        t.advance(998);
        assert_eq!(t.first(), b"tail");
        t.advance(4);
        assert!(t.is_empty());
    }
}
