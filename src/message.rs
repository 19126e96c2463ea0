//! Multipart messages.

use bytes::Bytes;

/// A message: one or more frames, each a cheaply clonable [`Bytes`].
///
/// (Stub: the full API lands with the core-types work.)
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    frames: Vec<Bytes>,
}

impl Message {
    /// An empty message (no frames).
    pub fn new() -> Self {
        Self::default()
    }

    /// The frames, in order.
    pub fn frames(&self) -> &[Bytes] {
        &self.frames
    }

    /// Appends a frame.
    pub fn push(&mut self, frame: impl Into<Bytes>) {
        self.frames.push(frame.into());
    }

    /// Total payload size of all frames, in bytes.
    pub fn byte_len(&self) -> usize {
        self.frames.iter().map(Bytes::len).sum()
    }

    /// Consumes the message, giving its frames.
    pub fn into_frames(self) -> Vec<Bytes> {
        self.frames
    }
}

impl From<Vec<Bytes>> for Message {
    fn from(frames: Vec<Bytes>) -> Self {
        Message { frames }
    }
}
