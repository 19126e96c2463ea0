//! Native frames: a 10-byte header (type, flags, stream id, payload length) and a payload.
//!
//! The byte layout is documented in `docs/PROTOCOL.md`. Decoding checks the header's length
//! against the per-type limit before the payload is waited for, so a peer's claim never makes
//! the reader buffer more than [`MAX_DATA_PAYLOAD`] bytes.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{Reason, StreamId};

/// Header length in bytes.
pub(crate) const HEADER_LEN: usize = 10;
/// Largest payload of a DATA frame (a chunk of a message or of a byte stream).
pub(crate) const MAX_DATA_PAYLOAD: usize = 64 * 1024;
/// Largest payload of any other frame.
pub(crate) const MAX_CONTROL_PAYLOAD: usize = 4096;
/// Longest stream path in an OPEN frame.
pub(crate) const MAX_PATH_LEN: usize = 255;
/// Longest frame on the wire: a reader that keeps this much room past what it holds never
/// has to move a partly received frame.
pub(crate) const MAX_FRAME_LEN: usize = HEADER_LEN + MAX_DATA_PAYLOAD;
/// Longest routing id in an OPEN or ACCEPT frame (ZeroMQ's limit).
pub(crate) const MAX_IDENTITY_LEN: usize = 255;
/// Length of a HELLO payload.
const HELLO_LEN: usize = 32;

/// Frame type codes.
mod ty {
    pub(super) const DATA: u8 = 0x00;
    pub(super) const WINDOW: u8 = 0x01;
    pub(super) const OPEN: u8 = 0x02;
    pub(super) const ACCEPT: u8 = 0x03;
    pub(super) const REJECT: u8 = 0x04;
    pub(super) const CLOSE: u8 = 0x05;
    pub(super) const RESET: u8 = 0x06;
    pub(super) const PING: u8 = 0x07;
    pub(super) const PONG: u8 = 0x08;
    pub(super) const HELLO: u8 = 0x09;
    pub(super) const GOAWAY: u8 = 0x0A;
}

/// Flags of a DATA frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct DataFlags(pub(crate) u8);

impl DataFlags {
    /// Another frame of the same message follows this frame's last chunk.
    pub(crate) const MORE: DataFlags = DataFlags(0x01);
    /// This chunk does not end its frame: the next DATA chunk continues it.
    pub(crate) const CONTINUED: DataFlags = DataFlags(0x02);
    const KNOWN: u8 = 0x03;

    /// Whether every flag of `other` is set.
    pub(crate) fn contains(self, other: DataFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether this chunk ends a message (neither MORE nor CONTINUED).
    pub(crate) fn ends_message(self) -> bool {
        self.0 & Self::KNOWN == 0
    }
}

/// What a peer says about itself right after the greeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hello {
    /// Random id of the peer's process, the same on all its connections.
    pub(crate) instance: [u8; 16],
    /// Credit, in bytes, each new stream starts with towards the peer.
    pub(crate) stream_window: u32,
    /// Most streams the peer accepts at once.
    pub(crate) max_streams: u32,
    /// Largest message the peer accepts.
    pub(crate) max_message_size: u64,
}

/// Socket-type code that marks a raw byte stream (the public multiplexer), not a socket.
pub(crate) const RAW_STREAM: u8 = 0xFF;

/// One native frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    /// Stream payload.
    Data {
        stream: StreamId,
        flags: DataFlags,
        payload: Bytes,
    },
    /// More credit for the peer on `stream`.
    Window { stream: StreamId, increment: u32 },
    /// Opens a stream towards the socket at `path`, saying who opens it.
    Open {
        stream: StreamId,
        socket_type: u8,
        path: String,
        /// The opener's routing id (empty: none).
        identity: Bytes,
    },
    /// Accepts a stream the peer opened, saying who accepts it.
    Accept {
        stream: StreamId,
        socket_type: u8,
        /// The acceptor's routing id (empty: none).
        identity: Bytes,
    },
    /// Refuses a stream the peer opened.
    Reject {
        stream: StreamId,
        reason: Reason,
        text: String,
    },
    /// The sender will send no more data on the stream (half-close).
    Close { stream: StreamId },
    /// The stream is aborted in both directions.
    Reset { stream: StreamId, reason: Reason },
    /// Heartbeat request.
    Ping { nonce: u64 },
    /// Heartbeat answer, echoing the nonce.
    Pong { nonce: u64 },
    /// First frame on each side.
    Hello(Hello),
    /// The sender is closing the connection.
    GoAway { reason: Reason, text: String },
}

/// A frame the decoder refuses; the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    /// A payload longer than the frame type allows.
    #[error("frame type {ty:#04x} claims a {len}-byte payload, the limit is {max}")]
    TooLong { ty: u8, len: u64, max: usize },
    /// A payload that does not have the layout its type requires.
    #[error("malformed {0} frame")]
    Malformed(&'static str),
    /// A DATA frame with flag bits zocket does not know.
    #[error("unknown DATA flags {0:#04x}")]
    UnknownFlags(u8),
}

impl Frame {
    /// Decodes one frame from the front of `buf`, or `Ok(None)` when more bytes are needed.
    ///
    /// Unknown frame types (from a newer peer) are skipped. On success the frame's bytes
    /// are removed from `buf`. A DATA payload is copied out of `buf` when shorter than
    /// 64 KiB, so a small chunk never keeps the read buffer alive, and split off without
    /// copying when a full 64 KiB chunk (see [`take_payload`](crate::proto::limits::take_payload)).
    ///
    /// # Errors
    /// [`FrameError`] when the header or payload breaks the format; `buf` is then left as
    /// it was.
    pub(crate) fn decode(buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        loop {
            if buf.len() < HEADER_LEN {
                return Ok(None);
            }
            let kind = buf[0];
            let flags = buf[1];
            let stream = StreamId(u32::from_be_bytes([buf[2], buf[3], buf[4], buf[5]]));
            let len32 = u32::from_be_bytes([buf[6], buf[7], buf[8], buf[9]]);
            let max = if kind == ty::DATA {
                MAX_DATA_PAYLOAD
            } else {
                MAX_CONTROL_PAYLOAD
            };
            // Checked before anything waits for or reserves the payload.
            let len = match usize::try_from(len32) {
                Ok(len) if len <= max => len,
                _ => {
                    return Err(FrameError::TooLong {
                        ty: kind,
                        len: u64::from(len32),
                        max,
                    })
                }
            };
            if buf.len() - HEADER_LEN < len {
                // The caller's buffer always has room for a whole frame of the largest
                // size (see `MAX_FRAME_LEN`); nothing is reserved on the peer's say-so.
                return Ok(None);
            }
            let frame = match kind {
                ty::DATA => {
                    if flags & !DataFlags::KNOWN != 0 {
                        return Err(FrameError::UnknownFlags(flags));
                    }
                    buf.advance(HEADER_LEN);
                    let payload = crate::proto::limits::take_payload(buf, len);
                    return Ok(Some(Frame::Data {
                        stream,
                        flags: DataFlags(flags),
                        payload,
                    }));
                }
                _ => decode_control(kind, stream, &buf[HEADER_LEN..HEADER_LEN + len])?,
            };
            buf.advance(HEADER_LEN + len);
            match frame {
                Some(frame) => return Ok(Some(frame)),
                None => continue, // unknown type skipped
            }
        }
    }

    /// Appends the encoded frame (header and payload) to `out`.
    ///
    /// For DATA the payload is copied; the driver avoids that with [`encode_data_header`].
    pub(crate) fn encode(&self, out: &mut BytesMut) {
        match self {
            Frame::Data {
                stream,
                flags,
                payload,
            } => {
                encode_data_header(*stream, *flags, payload.len(), out);
                out.extend_from_slice(payload);
            }
            Frame::Window { stream, increment } => {
                header(out, ty::WINDOW, 0, *stream, 4);
                out.put_u32(*increment);
            }
            Frame::Open {
                stream,
                socket_type,
                path,
                identity,
            } => {
                // Callers bound both by MAX_PATH_LEN / MAX_IDENTITY_LEN.
                let path = crate::proto::truncate_utf8(path, MAX_PATH_LEN);
                let identity = &identity[..identity.len().min(MAX_IDENTITY_LEN)];
                header(out, ty::OPEN, 0, *stream, 2 + path.len() + identity.len());
                out.put_u8(*socket_type);
                out.put_u8(path.len() as u8);
                out.extend_from_slice(path.as_bytes());
                out.extend_from_slice(identity);
            }
            Frame::Accept {
                stream,
                socket_type,
                identity,
            } => {
                let identity = &identity[..identity.len().min(MAX_IDENTITY_LEN)];
                header(out, ty::ACCEPT, 0, *stream, 1 + identity.len());
                out.put_u8(*socket_type);
                out.extend_from_slice(identity);
            }
            Frame::Reject {
                stream,
                reason,
                text,
            } => {
                let text = crate::proto::truncate_utf8(text, MAX_CONTROL_PAYLOAD - 4);
                header(out, ty::REJECT, 0, *stream, 4 + text.len());
                out.put_u32(reason.0);
                out.extend_from_slice(text.as_bytes());
            }
            Frame::Close { stream } => header(out, ty::CLOSE, 0, *stream, 0),
            Frame::Reset { stream, reason } => {
                header(out, ty::RESET, 0, *stream, 4);
                out.put_u32(reason.0);
            }
            Frame::Ping { nonce } => {
                header(out, ty::PING, 0, StreamId(0), 8);
                out.put_u64(*nonce);
            }
            Frame::Pong { nonce } => {
                header(out, ty::PONG, 0, StreamId(0), 8);
                out.put_u64(*nonce);
            }
            Frame::Hello(h) => {
                header(out, ty::HELLO, 0, StreamId(0), HELLO_LEN);
                out.extend_from_slice(&h.instance);
                out.put_u32(h.stream_window);
                out.put_u32(h.max_streams);
                out.put_u64(h.max_message_size);
            }
            Frame::GoAway { reason, text } => {
                let text = crate::proto::truncate_utf8(text, MAX_CONTROL_PAYLOAD - 4);
                header(out, ty::GOAWAY, 0, StreamId(0), 4 + text.len());
                out.put_u32(reason.0);
                out.extend_from_slice(text.as_bytes());
            }
        }
    }
}

/// Appends the header of a DATA frame whose payload of `len` bytes is sent separately.
pub(crate) fn encode_data_header(
    stream: StreamId,
    flags: DataFlags,
    len: usize,
    out: &mut BytesMut,
) {
    debug_assert!(len <= MAX_DATA_PAYLOAD);
    // Room for the header only: the payload usually travels as a segment of its own, and
    // reserving for it here made `out` reallocate for every chunk over 512 bytes (a malloc
    // of the payload's size per message, never written to).
    put_header(out, ty::DATA, flags.0, stream, len);
}

/// A header followed by `len` payload bytes that the caller appends to `out`.
fn header(out: &mut BytesMut, kind: u8, flags: u8, stream: StreamId, len: usize) {
    out.reserve(HEADER_LEN + len);
    put_header(out, kind, flags, stream, len);
}

fn put_header(out: &mut BytesMut, kind: u8, flags: u8, stream: StreamId, len: usize) {
    out.reserve(HEADER_LEN);
    out.put_u8(kind);
    out.put_u8(flags);
    out.put_u32(stream.0);
    // Callers bound `len` by MAX_CONTROL_PAYLOAD / MAX_DATA_PAYLOAD.
    out.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
}

fn decode_control(kind: u8, stream: StreamId, mut p: &[u8]) -> Result<Option<Frame>, FrameError> {
    let exact = |p: &[u8], n: usize, name: &'static str| {
        if p.len() == n {
            Ok(())
        } else {
            Err(FrameError::Malformed(name))
        }
    };
    let text = |p: &[u8], name: &'static str| {
        std::str::from_utf8(p)
            .map(str::to_owned)
            .map_err(|_| FrameError::Malformed(name))
    };
    Ok(Some(match kind {
        ty::WINDOW => {
            exact(p, 4, "WINDOW")?;
            Frame::Window {
                stream,
                increment: p.get_u32(),
            }
        }
        ty::OPEN => {
            if p.len() < 2 {
                return Err(FrameError::Malformed("OPEN"));
            }
            let socket_type = p.get_u8();
            let path_len = usize::from(p.get_u8());
            if p.len() < path_len || p.len() - path_len > MAX_IDENTITY_LEN {
                return Err(FrameError::Malformed("OPEN"));
            }
            let path = text(&p[..path_len], "OPEN")?;
            Frame::Open {
                stream,
                socket_type,
                path,
                identity: Bytes::copy_from_slice(&p[path_len..]),
            }
        }
        ty::ACCEPT => {
            if p.is_empty() || p.len() > 1 + MAX_IDENTITY_LEN {
                return Err(FrameError::Malformed("ACCEPT"));
            }
            let socket_type = p.get_u8();
            Frame::Accept {
                stream,
                socket_type,
                identity: Bytes::copy_from_slice(p),
            }
        }
        ty::REJECT => {
            if p.len() < 4 {
                return Err(FrameError::Malformed("REJECT"));
            }
            let reason = Reason(p.get_u32());
            Frame::Reject {
                stream,
                reason,
                text: text(p, "REJECT")?,
            }
        }
        ty::CLOSE => {
            exact(p, 0, "CLOSE")?;
            Frame::Close { stream }
        }
        ty::RESET => {
            exact(p, 4, "RESET")?;
            Frame::Reset {
                stream,
                reason: Reason(p.get_u32()),
            }
        }
        ty::PING => {
            exact(p, 8, "PING")?;
            Frame::Ping { nonce: p.get_u64() }
        }
        ty::PONG => {
            exact(p, 8, "PONG")?;
            Frame::Pong { nonce: p.get_u64() }
        }
        ty::HELLO => {
            // Longer HELLOs from newer peers are accepted; the extra bytes are ignored.
            if p.len() < HELLO_LEN {
                return Err(FrameError::Malformed("HELLO"));
            }
            let mut instance = [0u8; 16];
            p.copy_to_slice(&mut instance);
            Frame::Hello(Hello {
                instance,
                stream_window: p.get_u32(),
                max_streams: p.get_u32(),
                max_message_size: p.get_u64(),
            })
        }
        ty::GOAWAY => {
            if p.len() < 4 {
                return Err(FrameError::Malformed("GOAWAY"));
            }
            let reason = Reason(p.get_u32());
            Frame::GoAway {
                reason,
                text: String::from_utf8_lossy(p).into_owned(),
            }
        }
        _ => return Ok(None),
    }))
}
