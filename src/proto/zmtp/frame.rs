//! The ZMTP 3.x frame codec: a flags byte, a 1- or 8-byte size, the body.
//!
//! ```text
//! flags: bit 0 MORE, bit 1 LONG (8-byte big-endian size), bit 2 COMMAND; bits 3-7 zero
//! short frame: flags, size (1 byte), body
//! long frame:  flags | LONG, size (8 bytes, big-endian), body
//! ```
//!
//! Decoding checks the size against the caller's limit (and against `usize`) before it
//! reserves room for the body or waits for it, so a peer's claim never makes the reader
//! buffer more than the limit. Bodies are split off the input without copying.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Flag: another frame of the same message follows.
pub(crate) const MORE: u8 = 0x01;
/// Flag: the size field is 8 bytes (big-endian) instead of 1.
pub(crate) const LONG: u8 = 0x02;
/// Flag: the frame is a command, not part of a message.
pub(crate) const COMMAND: u8 = 0x04;
/// Every flag bit ZMTP 3.1 defines; the others must be zero.
const KNOWN: u8 = MORE | LONG | COMMAND;

/// Header length of a short frame (flags and a 1-byte size).
pub(crate) const SHORT_HEADER_LEN: usize = 2;
/// Header length of a long frame (flags and an 8-byte size).
pub(crate) const LONG_HEADER_LEN: usize = 9;
/// Longest body a short frame can carry.
pub(crate) const MAX_SHORT_LEN: usize = u8::MAX as usize;
/// Most bytes the decoder reserves ahead of data it has not received: a 9-byte header
/// cannot make it allocate more than this, even when the limit is huge. Longer frames
/// grow the buffer as their bytes arrive (geometrically, so without quadratic copying).
pub(crate) const MAX_RESERVE: usize = 1 << 20;

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    /// Another frame of the same message follows.
    pub(crate) more: bool,
    /// The body is a command (see [`command`](super::command)), not message data.
    pub(crate) command: bool,
    /// The body, split off the input without copying.
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
    /// A body longer than `max` is refused as soon as its header is complete, before any
    /// room is reserved for it. A long frame whose size would fit a short one is accepted
    /// (libzmq accepts it too). Once the header is valid, room for the rest of the frame
    /// (at most [`MAX_RESERVE`] bytes) is reserved in `buf`, for a reader that fills
    /// `buf`'s spare capacity.
    /// On success the frame's bytes are removed from `buf` and the body split off without
    /// copying.
    ///
    /// # Errors
    /// [`FrameError`] when the flags have reserved bits set or the size is above `max`;
    /// `buf` is then left as it was.
    pub(crate) fn decode(buf: &mut BytesMut, max: u64) -> Result<Option<Frame>, FrameError> {
        let Some(&flags) = buf.first() else {
            return Ok(None);
        };
        if flags & !KNOWN != 0 {
            return Err(FrameError::ReservedFlags(flags));
        }
        let (header_len, size) = if flags & LONG != 0 {
            if buf.len() < LONG_HEADER_LEN {
                return Ok(None);
            }
            let mut size = [0u8; 8];
            size.copy_from_slice(&buf[1..LONG_HEADER_LEN]);
            (LONG_HEADER_LEN, u64::from_be_bytes(size))
        } else {
            if buf.len() < SHORT_HEADER_LEN {
                return Ok(None);
            }
            (SHORT_HEADER_LEN, u64::from(buf[1]))
        };
        // Checked before anything waits for or reserves the body.
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
            buf.reserve((total - buf.len()).min(MAX_RESERVE));
            return Ok(None);
        }
        buf.advance(header_len);
        let body = buf.split_to(total - header_len).freeze();
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
