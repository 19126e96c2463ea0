//! The ZMTP 3.x frame codec: a flags byte, a 1- or 8-byte size, the body.
//!
//! ```text
//! flags: bit 0 MORE, bit 1 LONG (8-byte big-endian size), bit 2 COMMAND; bits 3-7 zero
//! short frame: flags, size (1 byte), body
//! long frame:  flags | LONG, size (8 bytes, big-endian), body
//! ```
//!
//! Decoding checks the size against the caller's limit (and against `usize`) before it
//! waits for the body, so a peer's claim never makes the reader buffer more than the limit.
//! The decoder never reserves or moves memory: the reader owns its buffer and keeps room
//! for the frame in progress ([`frame_len`] tells how much). Bodies are taken with
//! [`take_payload`]: short ones copied out (so they keep no read buffer alive), long ones
//! split off the input without copying.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::proto::limits::{reclaim_or_replace, take_payload};

/// Flag: another frame of the same message follows.
pub(crate) const MORE: u8 = 0x01;
/// Flag: the size field is 8 bytes (big-endian) instead of 1.
pub(crate) const LONG: u8 = 0x02;
/// Flag: the frame is a command, not part of a message.
pub(crate) const COMMAND: u8 = 0x04;
/// Every flag bit ZMTP 3.1 defines; the others must be zero.
pub(crate) const KNOWN: u8 = MORE | LONG | COMMAND;

/// Header length of a short frame (flags and a 1-byte size).
pub(crate) const SHORT_HEADER_LEN: usize = 2;
/// Header length of a long frame (flags and an 8-byte size).
pub(crate) const LONG_HEADER_LEN: usize = 9;
/// Longest body a short frame can carry.
pub(crate) const MAX_SHORT_LEN: usize = u8::MAX as usize;
/// Most bytes [`make_room`] reserves ahead of data that has not arrived: a 9-byte header
/// cannot make it allocate more than this, even when the limit is huge. Longer frames
/// grow the buffer as their bytes arrive (geometrically, so without quadratic copying).
pub(crate) const MAX_RESERVE: usize = 1 << 20;
/// Spare room [`make_room`] keeps for every read (less would make short reads).
pub(crate) const MIN_READ: usize = 64 * 1024;

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    /// Another frame of the same message follows.
    pub(crate) more: bool,
    /// The body is a command (see [`command`](super::command)), not message data.
    pub(crate) command: bool,
    /// The body: copied out of the input when short, split off without copying when long
    /// (see [`take_payload`]).
    pub(crate) body: Bytes,
}

/// A frame the decoder refuses; the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    /// Flag bits ZMTP does not define (libzmq ignores them; RFC 37 says they are zero).
    #[error("frame flags {0:#04x} have reserved bits set")]
    ReservedFlags(u8),
    /// A body longer than the receiver allows (or than this machine can address).
    #[error("frame claims a {size}-byte body, the limit is {max}")]
    TooLarge {
        /// The size the header claims.
        size: u64,
        /// The limit it broke.
        max: u64,
    },
}

impl Frame {
    #[cfg(test)]
    /// A message frame.
    pub(crate) fn message(body: Bytes, more: bool) -> Frame {
        Frame {
            more,
            command: false,
            body,
        }
    }

    #[cfg(test)]
    /// A command frame (never MORE).
    pub(crate) fn command(body: Bytes) -> Frame {
        Frame {
            more: false,
            command: true,
            body,
        }
    }

    /// Decodes one frame from the front of `buf`, or `Ok(None)` when more bytes are needed.
    ///
    /// A body longer than `max` is refused as soon as its header is complete, before
    /// anything waits for it. A long frame whose size would fit a short one is accepted
    /// (libzmq accepts it too). `buf`'s capacity is never touched: while a frame is
    /// incomplete, [`frame_len`] tells the reader how much room it needs.
    /// On success the frame's bytes are removed from `buf`; the body is copied out when
    /// shorter than [`COPY_BELOW`](crate::proto::limits::COPY_BELOW) and split off without
    /// copying otherwise.
    ///
    /// # Errors
    /// [`FrameError`] when the flags have reserved bits set or the size is above `max`;
    /// `buf` is then left as it was.
    pub(crate) fn decode(buf: &mut BytesMut, max: u64) -> Result<Option<Frame>, FrameError> {
        let Some((flags, header_len, size)) = header(buf) else {
            return Ok(None);
        };
        if flags & !KNOWN != 0 {
            return Err(FrameError::ReservedFlags(flags));
        }
        // Checked before anything waits for the body.
        if size > max {
            return Err(FrameError::TooLarge { size, max });
        }
        let addressable = usize::MAX as u64;
        let Some(total) = usize::try_from(size)
            .ok()
            .and_then(|len| len.checked_add(header_len))
        else {
            return Err(FrameError::TooLarge {
                size,
                max: addressable,
            });
        };
        if buf.len() < total {
            return Ok(None);
        }
        buf.advance(header_len);
        let body = take_payload(buf, total - header_len);
        Ok(Some(Frame {
            more: flags & MORE != 0,
            command: flags & COMMAND != 0,
            body,
        }))
    }

    #[cfg(test)]
    /// Appends the whole frame, header and body, to `out` (the body is copied; see
    /// [`encode_header`] to send it by reference).
    pub(crate) fn encode(&self, out: &mut BytesMut) {
        out.reserve(header_len(self.body.len()) + self.body.len());
        encode_header(out, self.more, self.command, self.body.len());
        out.extend_from_slice(&self.body);
    }
}

/// The flags, header length and announced body size of the frame at the front of `buf`;
/// `None` until the header is complete (a first byte with reserved bits set counts as a
/// complete header, so that it is refused at once).
pub(crate) fn header(buf: &[u8]) -> Option<(u8, usize, u64)> {
    let &flags = buf.first()?;
    if flags & !KNOWN != 0 {
        return Some((flags, 1, 0));
    }
    if flags & LONG != 0 {
        let size: [u8; 8] = buf.get(1..LONG_HEADER_LEN)?.try_into().ok()?;
        Some((flags, LONG_HEADER_LEN, u64::from_be_bytes(size)))
    } else {
        Some((flags, SHORT_HEADER_LEN, u64::from(*buf.get(1)?)))
    }
}

/// The whole length (header and body) of the frame at the front of `buf` as its header
/// announces it, once the header is complete; `None` before, or when the length does not
/// fit a `usize`. It checks no limit: ask only about a frame [`Frame::decode`] accepted
/// the header of (it answered `Ok(None)`), so the answer is bounded by the decoder's `max`.
pub(crate) fn frame_len(buf: &[u8]) -> Option<usize> {
    let (flags, header_len, size) = header(buf)?;
    if flags & !KNOWN != 0 {
        return None;
    }
    usize::try_from(size).ok()?.checked_add(header_len)
}

/// Makes room in a reader's buffer `buf` before it reads into the spare capacity: for the
/// rest of the incomplete frame at its front (`frame_len` bytes in all, as
/// [`ZmtpSession::incomplete_frame_len`](super::ZmtpSession::incomplete_frame_len) says;
/// 0 when unknown), or for [`MIN_READ`] bytes when no frame is in progress.
///
/// When the buffer must grow, what it holds (the start of one frame) is copied into a
/// buffer with room for the whole frame, so a frame of up to [`MAX_RESERVE`] bytes is
/// moved at most once however it arrives; frames already split off keep the old buffer
/// alive until they are dropped. A buffer nobody else refers to any more is reused
/// instead. A longer frame gets room as its bytes arrive, doubling what is held, not what
/// its header claims: its bytes are copied about once in all.
pub(crate) fn make_room(buf: &mut BytesMut, frame_len: usize) {
    let len = buf.len();
    let rest = frame_len.saturating_sub(len);
    // A frame that fits needs nothing more; a longer one than we reserve at once gets its
    // next room when the current one is used up.
    let needed = if rest == 0 || rest > MAX_RESERVE {
        MIN_READ
    } else {
        rest
    };
    if buf.capacity() - len >= needed {
        return;
    }
    let room = rest.min(len.max(MAX_RESERVE)).max(MIN_READ);
    reclaim_or_replace(buf, room);
}

/// Header length of a frame with a `len`-byte body.
pub(crate) fn header_len(len: usize) -> usize {
    if len <= MAX_SHORT_LEN {
        SHORT_HEADER_LEN
    } else {
        LONG_HEADER_LEN
    }
}

/// Appends the header of a frame whose `len`-byte body is sent separately (so a large
/// body can be referenced instead of copied). Short form up to 255 bytes, long above.
pub(crate) fn encode_header(out: &mut BytesMut, more: bool, command: bool, len: usize) {
    let mut flags = 0;
    if more {
        flags |= MORE;
    }
    if command {
        flags |= COMMAND;
    }
    match u8::try_from(len) {
        Ok(short) => {
            out.put_u8(flags);
            out.put_u8(short);
        }
        Err(_) => {
            out.put_u8(flags | LONG);
            out.put_u64(len as u64);
        }
    }
}
