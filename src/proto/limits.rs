//! What a peer can make us hold, counted as really held: the rules both wires share.
//!
//! A received frame is not free even when it is empty: it costs a handle in a queue, a slot
//! in a message's frame list, and, when its payload is a slice of the read buffer, the whole
//! buffer that slice keeps alive. So:
//! - payloads shorter than [`COPY_BELOW`] are copied out of the read buffer ([`take_payload`]),
//!   so a 1-byte frame never pins a 256 KiB buffer; only large payloads are sliced zero-copy,
//!   and a slice is charged [`SLICE_PIN`] on top of its length;
//! - every frame is charged [`FRAME_OVERHEAD`] on top of its payload ([`held_cost`]);
//! - a message being received counts its payload bytes against `max_message_size` and its
//!   frames against `max_message_frames` ([`MessageBudget`]), so a message that never ends
//!   (MORE, MORE, MORE …) is refused long before it matters.

use bytes::{Bytes, BytesMut};

/// Bytes charged per received frame on top of its payload: the `Bytes` handle (32 bytes),
/// its slot in a queue or frame list, and the allocator's own overhead.
pub(crate) const FRAME_OVERHEAD: u64 = 64;

/// Payloads shorter than this are copied out of the read buffer instead of sliced from it.
/// (A DATA chunk of the native wire is at most 64 KiB, so only full chunks are sliced there.)
pub(crate) const COPY_BELOW: usize = 64 * 1024;

/// Extra bytes charged for a payload sliced from the read buffer: the part of that buffer it
/// may keep alive besides itself (a read buffer is at most a [`READ_CHUNK`] plus one frame,
/// and a slice is at least [`COPY_BELOW`] long).
pub(crate) const SLICE_PIN: u64 = READ_CHUNK as u64;

/// The growth step of both wires' read buffers: a fresh buffer has room for this much input
/// past what it carries over.
pub(crate) const READ_CHUNK: usize = 256 * 1024;

/// Gives `buf` (a read buffer) `room` bytes of spare capacity, which it lacks: reuses its
/// allocation when nothing received still points into it, else starts a fresh buffer of
/// what it holds plus `room` (at least [`READ_CHUNK`]). Not `BytesMut::reserve`: on a buffer
/// holding part of a frame it may double the allocation (a 256 KiB read buffer became
/// 512 KiB), which would make the bound in [`SLICE_PIN`] untrue.
pub(crate) fn reclaim_or_replace(buf: &mut BytesMut, room: usize) {
    if !buf.try_reclaim(room) {
        let mut fresh = BytesMut::with_capacity(buf.len() + room.max(READ_CHUNK));
        fresh.extend_from_slice(buf);
        *buf = fresh;
    }
}

/// Default of `Options::max_message_frames`.
pub(crate) const DEFAULT_MAX_MESSAGE_FRAMES: u32 = 65_536;

/// Takes the first `len` bytes of `buf` as a payload: copied when short (so it keeps no read
/// buffer alive), split off without copying when long.
pub(crate) fn take_payload(buf: &mut BytesMut, len: usize) -> Bytes {
    if len < COPY_BELOW {
        let payload = Bytes::copy_from_slice(&buf[..len]);
        bytes::Buf::advance(buf, len);
        payload
    } else {
        buf.split_to(len).freeze()
    }
}

/// [`take_payload`] for a body that is modified in place next (a CURVE box, opened where it
/// lies): the same rule, kept mutable.
pub(crate) fn take_payload_mut(buf: &mut BytesMut, len: usize) -> BytesMut {
    if len < COPY_BELOW {
        let payload = BytesMut::from(&buf[..len]);
        bytes::Buf::advance(buf, len);
        payload
    } else {
        buf.split_to(len)
    }
}

/// What a received payload of `len` bytes costs while it is held: its bytes, the frame
/// overhead, and for a sliced payload the read buffer it may pin (see [`take_payload`]).
pub(crate) fn held_cost(len: usize) -> u64 {
    let pin = if len >= COPY_BELOW { SLICE_PIN } else { 0 };
    len as u64 + FRAME_OVERHEAD + pin
}

/// The limits a message being received is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MessageLimits {
    /// Most payload bytes, all frames together (`Options::max_message_size`).
    pub(crate) max_size: u64,
    /// Most frames (`Options::max_message_frames`).
    pub(crate) max_frames: u32,
}

/// Which limit a message broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OverLimit {
    /// Its payload grew to `size` bytes, past `max`.
    Size { size: u64, max: u64 },
    /// It grew to more than `max` frames.
    Frames { max: u32 },
}

impl std::fmt::Display for OverLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OverLimit::Size { size, max } => write!(
                f,
                "message of at least {size} bytes exceeds the limit of {max} bytes"
            ),
            OverLimit::Frames { max } => {
                write!(
                    f,
                    "message of more than {max} frames exceeds the frame limit"
                )
            }
        }
    }
}

/// The running size of a message being received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct MessageBudget {
    bytes: u64,
    frames: u32,
}

impl MessageBudget {
    /// Counts `len` more payload bytes of the message (a chunk, or a whole frame).
    ///
    /// # Errors
    /// When the message's payload now exceeds `limits.max_size`.
    pub(crate) fn add_bytes(&mut self, len: usize, limits: MessageLimits) -> Result<(), OverLimit> {
        self.bytes = self.bytes.saturating_add(len as u64);
        if self.bytes > limits.max_size {
            return Err(OverLimit::Size {
                size: self.bytes,
                max: limits.max_size,
            });
        }
        Ok(())
    }

    /// Counts one more frame of the message.
    ///
    /// # Errors
    /// When the message now has more than `limits.max_frames` frames.
    pub(crate) fn add_frame(&mut self, limits: MessageLimits) -> Result<(), OverLimit> {
        self.frames = self.frames.saturating_add(1);
        if self.frames > limits.max_frames {
            return Err(OverLimit::Frames {
                max: limits.max_frames,
            });
        }
        Ok(())
    }

    /// Payload bytes counted so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Starts the next message.
    pub(crate) fn reset(&mut self) {
        *self = MessageBudget::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: MessageLimits = MessageLimits {
        max_size: 100,
        max_frames: 3,
    };

    #[test]
    fn short_payloads_are_copied_and_long_ones_sliced() {
        let mut buf = BytesMut::from(&vec![7u8; COPY_BELOW + 10][..]);
        let short = take_payload(&mut buf, 10);
        assert_eq!(short.len(), 10);
        assert_eq!(buf.len(), COPY_BELOW);
        let long = take_payload(&mut buf, COPY_BELOW);
        assert_eq!(long.len(), COPY_BELOW);
        assert!(buf.is_empty());
        assert_eq!(held_cost(10), 10 + FRAME_OVERHEAD);
        assert_eq!(
            held_cost(COPY_BELOW),
            COPY_BELOW as u64 + FRAME_OVERHEAD + SLICE_PIN
        );
    }

    #[test]
    fn a_message_over_its_size_or_frame_limit_is_refused() {
        let mut m = MessageBudget::default();
        m.add_bytes(60, LIMITS).unwrap();
        assert_eq!(
            m.add_bytes(41, LIMITS),
            Err(OverLimit::Size {
                size: 101,
                max: 100
            })
        );
        let mut m = MessageBudget::default();
        for _ in 0..3 {
            m.add_frame(LIMITS).unwrap();
        }
        assert_eq!(m.add_frame(LIMITS), Err(OverLimit::Frames { max: 3 }));
        m.reset();
        assert_eq!(m.bytes(), 0);
        m.add_frame(LIMITS).unwrap();
    }
}
