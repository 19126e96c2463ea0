//! Multipart messages.

use std::slice;
use std::vec;

use bytes::{Bytes, BytesMut};

/// A message: an ordered list of frames, each a cheaply clonable [`Bytes`].
///
/// ZeroMQ messages are multipart: a Pub sends the topic and the body as two frames, a Router
/// puts the sender's identity in a frame of its own in front of the body. Frames are
/// reference-counted, so cloning a `Message` (to fan it out to many subscribers, say) copies
/// a few handles, never the payload.
///
/// # Building a message
///
/// | from | gives | copies the bytes? |
/// |---|---|---|
/// | [`Bytes`], [`BytesMut`], `Vec<u8>`, `String` | one frame | no |
/// | `&str`, `&[u8]`, `&[u8; N]` (such as `b"hi"`) | one frame | yes (borrowed input) |
/// | `[T; N]` where `T: Into<Bytes>` (such as `["topic", "body"]`) | N frames | no |
/// | `Vec<Bytes>`, `Vec<String>`, `Vec<Vec<u8>>`, `Vec<&'static str>` | one frame per element | no |
/// | any iterator of `T: Into<Bytes>`, with [`collect`](Iterator::collect) | one frame per item | no |
///
/// A `Vec<u8>` is always **one** frame (its bytes), never one frame per byte. For a
/// multipart message from another collection, use an array or `collect()`.
///
/// # Example
///
/// ```
/// use bytes::Bytes;
/// use zocket::Message;
///
/// let mut msg = Message::from(["orders.eu", "{\"id\":1}"]);
/// assert_eq!(msg.len(), 2);
/// assert_eq!(msg.first().map(|f| &f[..]), Some(&b"orders.eu"[..]));
///
/// // A router prepends the peer's identity on receipt and strips it to route a reply.
/// msg.push_front(Bytes::from_static(b"peer-7"));
/// assert_eq!(msg.pop_front(), Some(Bytes::from_static(b"peer-7")));
///
/// let frames: Vec<&[u8]> = msg.iter().map(|f| &f[..]).collect();
/// assert_eq!(frames, [&b"orders.eu"[..], &b"{\"id\":1}"[..]]);
/// assert_eq!(msg.byte_len(), 9 + 8);
/// ```
#[derive(Clone, Default)]
pub struct Message {
    frames: Frames,
}

/// The frames: most messages have one, kept inline so that making, cloning and dropping
/// such a message allocates nothing beyond its `Bytes`. A Vec, not a VecDeque, for the rest:
/// messages have a handful of frames, so `push_front` / `pop_front` move a few handles, and
/// `frames()` stays a plain slice for vectored writes.
#[derive(Clone)]
enum Frames {
    One(Bytes),
    Many(Vec<Bytes>),
}

impl Default for Frames {
    fn default() -> Self {
        Frames::Many(Vec::new())
    }
}

impl Frames {
    /// The frames as a Vec (allocating only if there is one inline frame).
    fn vec(&mut self) -> &mut Vec<Bytes> {
        if let Frames::One(frame) = self {
            let frame = std::mem::take(frame);
            *self = Frames::Many(vec![frame]);
        }
        match self {
            Frames::Many(frames) => frames,
            Frames::One(_) => unreachable!("turned into Many above"),
        }
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("frames", &self.frames())
            .finish()
    }
}

impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        self.frames() == other.frames()
    }
}

impl Eq for Message {}

impl std::hash::Hash for Message {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.frames().hash(state);
    }
}

impl Message {
    /// An empty message (no frames).
    pub fn new() -> Self {
        Self::default()
    }

    /// The frames, in order.
    pub fn frames(&self) -> &[Bytes] {
        match &self.frames {
            Frames::One(frame) => slice::from_ref(frame),
            Frames::Many(frames) => frames,
        }
    }

    /// The frames, to move out of: the native wire takes the frames it sends whole (the
    /// message is dropped once written; a partly written one is never handed back).
    pub(crate) fn frames_mut(&mut self) -> &mut [Bytes] {
        match &mut self.frames {
            Frames::One(frame) => slice::from_mut(frame),
            Frames::Many(frames) => frames,
        }
    }

    /// Appends a frame.
    pub fn push(&mut self, frame: impl Into<Bytes>) {
        match &mut self.frames {
            Frames::Many(frames) if frames.is_empty() && frames.capacity() == 0 => {
                self.frames = Frames::One(frame.into());
            }
            _ => self.frames.vec().push(frame.into()),
        }
    }

    /// Inserts a frame before the first one (a Router prepending a peer identity).
    ///
    /// Takes time proportional to the number of frames, which is small for real messages.
    pub fn push_front(&mut self, frame: impl Into<Bytes>) {
        if self.is_empty() {
            self.push(frame);
        } else {
            self.frames.vec().insert(0, frame.into());
        }
    }

    /// Removes and returns the first frame, or `None` if the message has no frames
    /// (a Router stripping the identity frame before routing).
    ///
    /// Takes time proportional to the number of frames, which is small for real messages.
    pub fn pop_front(&mut self) -> Option<Bytes> {
        match &mut self.frames {
            Frames::One(frame) => {
                let frame = std::mem::take(frame);
                self.frames = Frames::default();
                Some(frame)
            }
            Frames::Many(frames) if frames.is_empty() => None,
            Frames::Many(frames) => Some(frames.remove(0)),
        }
    }

    /// The number of frames (not bytes; see [`byte_len`](Message::byte_len)).
    pub fn len(&self) -> usize {
        self.frames().len()
    }

    /// Whether the message has no frames at all.
    ///
    /// A message with one empty frame is not empty.
    pub fn is_empty(&self) -> bool {
        self.frames().is_empty()
    }

    /// The frame at `index`, or `None` if there are not that many frames.
    pub fn get(&self, index: usize) -> Option<&Bytes> {
        self.frames().get(index)
    }

    /// The first frame (the topic of a pub/sub message), or `None` if there are no frames.
    pub fn first(&self) -> Option<&Bytes> {
        self.frames().first()
    }

    /// An iterator over the frames, in order.
    pub fn iter(&self) -> slice::Iter<'_, Bytes> {
        self.frames().iter()
    }

    /// Total payload size of all frames, in bytes.
    pub fn byte_len(&self) -> usize {
        match &self.frames {
            Frames::One(frame) => frame.len(), // most messages: no loop
            Frames::Many(frames) => frames.iter().map(Bytes::len).sum(),
        }
    }

    /// Consumes the message, giving its frames.
    pub fn into_frames(self) -> Vec<Bytes> {
        match self.frames {
            Frames::One(frame) => vec![frame],
            Frames::Many(frames) => frames,
        }
    }

    fn single(frame: Bytes) -> Self {
        Message {
            frames: Frames::One(frame),
        }
    }
}

/// One frame per element.
impl From<Vec<Bytes>> for Message {
    fn from(frames: Vec<Bytes>) -> Self {
        Message {
            frames: Frames::Many(frames),
        }
    }
}

/// One frame per string, without copying.
impl From<Vec<String>> for Message {
    fn from(frames: Vec<String>) -> Self {
        frames.into_iter().collect()
    }
}

/// One frame per element, without copying.
impl From<Vec<Vec<u8>>> for Message {
    fn from(frames: Vec<Vec<u8>>) -> Self {
        frames.into_iter().collect()
    }
}

/// One frame per string, without copying.
impl From<Vec<&'static str>> for Message {
    fn from(frames: Vec<&'static str>) -> Self {
        frames.into_iter().collect()
    }
}

/// A single frame holding these bytes, without copying.
impl From<Bytes> for Message {
    fn from(frame: Bytes) -> Self {
        Message::single(frame)
    }
}

/// A single frame holding these bytes, without copying.
impl From<BytesMut> for Message {
    fn from(frame: BytesMut) -> Self {
        Message::single(frame.freeze())
    }
}

/// A single frame holding these bytes (not one frame per byte), without copying.
impl From<Vec<u8>> for Message {
    fn from(frame: Vec<u8>) -> Self {
        Message::single(Bytes::from(frame))
    }
}

/// A single frame holding the UTF-8 bytes of the string, without copying.
impl From<String> for Message {
    fn from(frame: String) -> Self {
        Message::single(Bytes::from(frame))
    }
}

/// A single frame holding a copy of the UTF-8 bytes of the string.
impl From<&str> for Message {
    fn from(frame: &str) -> Self {
        Message::single(Bytes::copy_from_slice(frame.as_bytes()))
    }
}

/// A single frame holding a copy of the bytes.
impl From<&[u8]> for Message {
    fn from(frame: &[u8]) -> Self {
        Message::single(Bytes::copy_from_slice(frame))
    }
}

/// A single frame holding a copy of the bytes, so that `Message::from(b"hello")` works.
impl<const N: usize> From<&[u8; N]> for Message {
    fn from(frame: &[u8; N]) -> Self {
        Message::single(Bytes::copy_from_slice(frame))
    }
}

/// One frame per element: `Message::from(["topic", "body"])` has two frames.
impl<T: Into<Bytes>, const N: usize> From<[T; N]> for Message {
    fn from(frames: [T; N]) -> Self {
        frames.into_iter().collect()
    }
}

/// One frame per item.
impl<T: Into<Bytes>> FromIterator<T> for Message {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut msg = Message::new();
        msg.extend(iter);
        msg
    }
}

/// Appends one frame per item.
impl<T: Into<Bytes>> Extend<T> for Message {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        for frame in iter {
            self.push(frame);
        }
    }
}

impl IntoIterator for Message {
    type Item = Bytes;
    type IntoIter = IntoFrames;

    fn into_iter(self) -> Self::IntoIter {
        IntoFrames(match self.frames {
            Frames::One(frame) => FramesIter::One(Some(frame)),
            Frames::Many(frames) => FramesIter::Many(frames.into_iter()),
        })
    }
}

/// The frames of a [`Message`], by value, in order (from `message.into_iter()`).
#[derive(Debug)]
pub struct IntoFrames(FramesIter);

#[derive(Debug)]
enum FramesIter {
    One(Option<Bytes>),
    Many(vec::IntoIter<Bytes>),
}

impl Iterator for IntoFrames {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        match &mut self.0 {
            FramesIter::One(frame) => frame.take(),
            FramesIter::Many(frames) => frames.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match &self.0 {
            FramesIter::One(frame) => usize::from(frame.is_some()),
            FramesIter::Many(frames) => frames.len(),
        };
        (n, Some(n))
    }
}

impl DoubleEndedIterator for IntoFrames {
    fn next_back(&mut self) -> Option<Bytes> {
        match &mut self.0 {
            FramesIter::One(frame) => frame.take(),
            FramesIter::Many(frames) => frames.next_back(),
        }
    }
}

impl ExactSizeIterator for IntoFrames {}

impl<'a> IntoIterator for &'a Message {
    type Item = &'a Bytes;
    type IntoIter = slice::Iter<'a, Bytes>;

    fn into_iter(self) -> Self::IntoIter {
        self.frames().iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frames_of(msg: &Message) -> Vec<&[u8]> {
        msg.iter().map(|f| &f[..]).collect()
    }

    #[test]
    fn new_message_has_no_frames() {
        let msg = Message::new();
        assert!(msg.is_empty());
        assert_eq!(msg.len(), 0);
        assert_eq!(msg.byte_len(), 0);
        assert_eq!(msg.first(), None);
        assert_eq!(msg.get(0), None);
        assert_eq!(msg, Message::default());
    }

    #[test]
    fn one_empty_frame_is_not_an_empty_message() {
        let msg = Message::from("");
        assert!(!msg.is_empty());
        assert_eq!(msg.len(), 1);
        assert_eq!(msg.byte_len(), 0);
    }

    #[test]
    fn single_frame_from_bytes_does_not_copy() {
        let payload = Bytes::from(vec![7u8; 4096]);
        let msg = Message::from(payload.clone());
        assert_eq!(msg.len(), 1);
        assert_eq!(msg.frames()[0].as_ptr(), payload.as_ptr());
        let back = msg.into_frames().pop().unwrap();
        assert_eq!(back.as_ptr(), payload.as_ptr());
    }

    #[test]
    fn single_frame_from_owned_buffers_does_not_copy() {
        let v = vec![1u8, 2, 3];
        let ptr = v.as_ptr();
        assert_eq!(Message::from(v).frames()[0].as_ptr(), ptr);

        let s = String::from("hello");
        let ptr = s.as_ptr();
        assert_eq!(Message::from(s).frames()[0].as_ptr(), ptr);

        let mut b = BytesMut::with_capacity(16);
        b.extend_from_slice(b"abc");
        let ptr = b.as_ptr();
        assert_eq!(Message::from(b).frames()[0].as_ptr(), ptr);
    }

    #[test]
    fn vec_u8_is_one_frame_not_one_frame_per_byte() {
        let msg = Message::from(vec![1u8, 2, 3]);
        assert_eq!(msg.len(), 1);
        assert_eq!(frames_of(&msg), [&[1u8, 2, 3][..]]);
    }

    #[test]
    fn borrowed_inputs_make_one_frame() {
        assert_eq!(frames_of(&Message::from("hi")), [&b"hi"[..]]);
        let owned = String::from("borrowed");
        assert_eq!(
            frames_of(&Message::from(owned.as_str())),
            [&b"borrowed"[..]]
        );
        assert_eq!(frames_of(&Message::from(&b"xy"[..])), [&b"xy"[..]]);
        assert_eq!(frames_of(&Message::from(b"xyz")), [&b"xyz"[..]]);
    }

    #[test]
    fn array_makes_one_frame_per_element() {
        let msg = Message::from(["topic", "body"]);
        assert_eq!(frames_of(&msg), [&b"topic"[..], &b"body"[..]]);

        let msg = Message::from([Bytes::from_static(b"a"), Bytes::new()]);
        assert_eq!(frames_of(&msg), [&b"a"[..], &b""[..]]);

        let msg = Message::from([String::from("x"), String::from("yz")]);
        assert_eq!(msg.byte_len(), 3);

        let empty: [Bytes; 0] = [];
        assert!(Message::from(empty).is_empty());
    }

    #[test]
    fn vecs_of_frames_make_one_frame_per_element() {
        let msg = Message::from(vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]);
        assert_eq!(frames_of(&msg), [&b"a"[..], &b"b"[..]]);
        let msg = Message::from(vec![String::from("a"), String::from("b")]);
        assert_eq!(frames_of(&msg), [&b"a"[..], &b"b"[..]]);
        let msg = Message::from(vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(frames_of(&msg), [&b"a"[..], &b"b"[..]]);
        let msg = Message::from(vec!["a", "b", "c"]);
        assert_eq!(msg.len(), 3);
    }

    #[test]
    fn collect_and_extend_add_one_frame_per_item() {
        let mut msg: Message = ["a", "b"].iter().map(|s| s.to_string()).collect();
        msg.extend([Bytes::from_static(b"c")]);
        assert_eq!(frames_of(&msg), [&b"a"[..], &b"b"[..], &b"c"[..]]);
    }

    #[test]
    fn get_first_and_iter_see_frames_in_order() {
        let msg = Message::from(["zero", "one", "two"]);
        assert_eq!(msg.first().unwrap(), "zero");
        assert_eq!(msg.get(1).unwrap(), "one");
        assert_eq!(msg.get(2).unwrap(), "two");
        assert_eq!(msg.get(3), None);
        assert_eq!(msg.iter().count(), 3);

        let mut by_ref = Vec::new();
        for frame in &msg {
            by_ref.push(frame.clone());
        }
        let owned: Vec<Bytes> = msg.clone().into_iter().collect();
        assert_eq!(by_ref, owned);
        assert_eq!(owned, msg.into_frames());
    }

    #[test]
    fn push_front_and_pop_front_wrap_a_message_in_an_identity() {
        let mut msg = Message::from(["body"]);
        msg.push_front("identity");
        msg.push("trailer");
        assert_eq!(
            frames_of(&msg),
            [&b"identity"[..], &b"body"[..], &b"trailer"[..]]
        );
        assert_eq!(msg.pop_front().unwrap(), "identity");
        assert_eq!(msg.pop_front().unwrap(), "body");
        assert_eq!(msg.pop_front().unwrap(), "trailer");
        assert_eq!(msg.pop_front(), None);
        assert!(msg.is_empty());
    }

    #[test]
    fn one_frame_inline_behaves_like_one_frame_in_a_vec() {
        use std::hash::{BuildHasher, RandomState};
        let inline = Message::from("x");
        let in_vec = Message::from(vec![Bytes::from_static(b"x")]);
        assert_eq!(inline, in_vec);
        let hasher = RandomState::new();
        assert_eq!(hasher.hash_one(&inline), hasher.hash_one(&in_vec));
        assert_eq!(format!("{inline:?}"), format!("{in_vec:?}"));

        let mut grown = inline.clone();
        grown.push("y");
        grown.push_front("w");
        assert_eq!(frames_of(&grown), [&b"w"[..], b"x", b"y"]);
        let mut popped = inline.clone();
        assert_eq!(popped.pop_front(), Some(Bytes::from_static(b"x")));
        assert!(popped.is_empty());
        assert_eq!(popped.pop_front(), None);
        popped.push_front("z");
        assert_eq!(frames_of(&popped), [&b"z"[..]]);

        let mut it = inline.clone().into_iter();
        assert_eq!(it.len(), 1);
        assert_eq!(it.next_back(), Some(Bytes::from_static(b"x")));
        assert_eq!(it.next(), None);
        assert_eq!(inline.into_frames(), vec![Bytes::from_static(b"x")]);
    }

    #[test]
    fn clone_shares_the_payload() {
        let msg = Message::from(Bytes::from(vec![0u8; 1024]));
        let copy = msg.clone();
        assert_eq!(copy, msg);
        assert_eq!(copy.frames()[0].as_ptr(), msg.frames()[0].as_ptr());
    }

    proptest! {
        #[test]
        fn frames_survive_collect_push_front_and_pop_front(
            frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..16), 0..8),
            front in prop::collection::vec(any::<u8>(), 0..16),
        ) {
            let mut msg: Message = frames.iter().cloned().collect();
            prop_assert_eq!(msg.len(), frames.len());
            prop_assert_eq!(msg.byte_len(), frames.iter().map(Vec::len).sum::<usize>());
            msg.push_front(front.clone());
            prop_assert_eq!(msg.pop_front(), Some(Bytes::from(front)));
            let back: Vec<Vec<u8>> = msg.into_iter().map(|f| f.to_vec()).collect();
            prop_assert_eq!(back, frames);
        }
    }
}
