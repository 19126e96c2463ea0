//! One peer of a socket: its link (a native stream or an inproc pipe pair) and its queue of
//! outgoing messages, bounded by the send high-water mark.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::signal::Signal;
use crate::driver::zmtp::ZmtpShared;
use crate::driver::Shared;
use crate::pattern::PeerId;
use crate::proto::limits::{MessageBudget, MessageLimits, OverLimit};
use crate::proto::native::{count_chunk, DataFlags, Reason, StreamError, StreamId};
use crate::stats::{Counters, Direction, PeerInfo};
use crate::transport::inproc::{InprocConn, PushError};
use crate::warn_limit::warn_limited;
use crate::{Error, Message, SocketType};

/// Where a peer is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// We opened the stream; the peer has not accepted it yet.
    Opening,
    /// A subscriber's stream we hold unaccepted until its subscriptions arrived, so that
    /// once it is accepted the subscriber knows we filter for it.
    AwaitingSubscriptions,
    /// Messages flow.
    Active,
}

/// How messages reach the peer.
#[derive(Debug)]
pub(crate) enum Link {
    /// A stream of a native session (shared with other sockets' streams).
    Native {
        session: Arc<Shared>,
        stream: StreamId,
        reading: Reassembly,
    },
    /// Values through in-process pipes.
    Inproc(InprocConn),
    /// A ZMTP connection to a libzmq (or other ZeroMQ) peer: one link per connection.
    Zmtp(Arc<ZmtpShared>),
}

/// A peer of the socket.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) id: PeerId,
    pub(crate) link: Link,
    pub(crate) phase: Phase,
    /// Our socket type.
    pub(crate) local_type: SocketType,
    /// The peer's socket type, when it said.
    pub(crate) remote_type: Option<SocketType>,
    /// The routing id the peer announced (empty: none).
    pub(crate) identity: Bytes,
    /// Where the peer came from, for events and logs.
    pub(crate) endpoint: String,
    /// Messages accepted for this peer and not yet handed to its link; the front one may be
    /// partly written (`progress`).
    out: VecDeque<Message>,
    /// (frame, byte offset) reached in the front message.
    progress: (usize, usize),
    /// Conflate: how many messages at the back of `out` a newer message may replace (those
    /// queued by [`enqueue_replacing`](Self::enqueue_replacing); commands never are).
    replaceable: usize,
    /// Conflate: the newest whole message read from the link and not yet received.
    latest: Option<Message>,
    /// Told once the peer becomes active or fails to (outgoing links).
    pub(crate) on_active: Option<tokio::sync::oneshot::Sender<Result<(), Error>>>,
    /// Told when the peer goes away, with why.
    pub(crate) on_gone: Option<tokio::sync::oneshot::Sender<Option<Error>>>,
    /// A dialer reports this peer's end (its `Disconnected`/`Retrying`); for every other peer
    /// the engine reports it.
    pub(crate) dialed: bool,
    /// The link was closed (by `close` or on drop).
    closed: bool,
    /// Sub: this publisher was sent our subscription snapshot.
    pub(crate) snapshot_sent: bool,
    /// Whether we made the link (else the peer connected to us).
    pub(crate) direction: Direction,
    /// Who the peer is, fixed once it became usable (`None` before).
    pub(crate) info: Option<PeerInfo>,
    /// Its message counters.
    pub(crate) counters: Counters,
    /// The largest message the peer accepts, as its native HELLO said (learned when the
    /// peer became active; `None` on other links, whose peers announce no limit).
    peer_max_message_size: Option<u64>,
}

/// What a read found.
#[derive(Debug)]
pub(crate) enum Read {
    /// A whole message.
    Message(Message),
    /// Nothing yet.
    Empty,
    /// The link is finished (closed or failed), with why.
    Gone(Option<Error>),
}

impl Peer {
    pub(crate) fn new(
        id: PeerId,
        local_type: SocketType,
        link: Link,
        phase: Phase,
        endpoint: String,
    ) -> Self {
        Peer {
            id,
            link,
            phase,
            local_type,
            remote_type: None,
            identity: Bytes::new(),
            endpoint,
            out: VecDeque::new(),
            progress: (0, 0),
            replaceable: 0,
            latest: None,
            on_active: None,
            on_gone: None,
            dialed: false,
            closed: false,
            snapshot_sent: false,
            direction: Direction::Accepted,
            info: None,
            counters: Counters::default(),
            peer_max_message_size: None,
        }
    }

    /// Learns the limits the peer announced (native links: its HELLO, which has come by the
    /// time its stream is accepted).
    pub(crate) fn learn_peer_limits(&mut self) {
        if let Link::Native { session, .. } = &self.link {
            self.peer_max_message_size = session.lock().core.peer_max_message_size();
        }
    }

    /// The peer's `max_message_size` when a message of `bytes` exceeds it: sent, it would
    /// only be refused (its stream reset, with what was queued behind it).
    pub(crate) fn refuses_size(&self, bytes: usize) -> Option<u64> {
        self.peer_max_message_size.filter(|&max| over(bytes, max))
    }

    /// Counts a message of `size` bytes this peer misses because it is over the `max` the
    /// peer announced (see [`drop_oversized`]).
    pub(crate) fn drop_oversized(&mut self, size: usize, max: u64) {
        drop_oversized(&mut self.counters, &self.endpoint, size, max);
    }

    /// The peer's long-term CURVE public key, as its link's handshake learned it: `None`
    /// on a NULL (plaintext) or inproc link.
    pub(crate) fn curve_key(&self) -> Option<[u8; 32]> {
        match &self.link {
            Link::Native { session, .. } => session.lock().core.peer_key(),
            Link::Zmtp(shared) => shared.lock().core.peer_key(),
            Link::Inproc(_) => None,
        }
    }

    /// Messages waiting in this peer's queue.
    pub(crate) fn queued(&self) -> usize {
        self.out.len()
    }

    /// Queues `msg` without writing it yet (the link is not observed yet; the first
    /// writable signal flushes it).
    pub(crate) fn enqueue_now(&mut self, msg: Message) {
        self.out.push_back(msg);
        self.replaceable = 0;
    }

    /// Queues `msg` and writes what the link takes now. When the link has failed, the
    /// error comes back with `msg` if none of it was written, so it can go to another peer.
    pub(crate) fn enqueue(
        &mut self,
        msg: Message,
        signal: &Arc<Signal>,
        direct: bool,
    ) -> Result<(), (Error, Option<Message>)> {
        self.out.push_back(msg);
        self.replaceable = 0;
        self.flush(signal, direct).map_err(|e| {
            let untouched = self.out.len() > 1 || self.progress == (0, 0);
            (e, if untouched { self.out.pop_back() } else { None })
        })
    }

    /// Conflate: queues `msg` in place of the messages queued before it that no part of
    /// has been written yet (whole messages only: one the link has begun stays), then
    /// writes what the link takes now. Errors as [`enqueue`](Self::enqueue).
    pub(crate) fn enqueue_replacing(
        &mut self,
        msg: Message,
        signal: &Arc<Signal>,
        direct: bool,
    ) -> Result<(), (Error, Option<Message>)> {
        // Messages leave from the front, so those still queued of the last `replaceable`
        // are the back ones; the front one may be partly written.
        let begun = usize::from(self.progress != (0, 0));
        let untouched = self.out.len() - begun.min(self.out.len());
        let replace = self.replaceable.min(untouched);
        for replaced in self.out.drain(self.out.len() - replace..) {
            self.counters.replaced_unsent(replaced.byte_len());
        }
        self.out.push_back(msg);
        let res = self.flush(signal, direct);
        self.replaceable = usize::from(!self.out.is_empty());
        res.map_err(|e| {
            let untouched = self.out.len() > 1 || self.progress == (0, 0);
            (e, if untouched { self.out.pop_back() } else { None })
        })
    }

    /// Conflate: reads every whole message the link holds now, keeping only the newest
    /// one that `wanted` accepts (the next [`take_latest`](Self::take_latest) returns it).
    /// `Some(why)` when the link is gone; what was kept stays until taken. Reads at most
    /// `limit` messages, then reports the link readable again, so one call stays bounded
    /// against a peer that sends as fast as we read.
    pub(crate) fn read_latest(
        &mut self,
        signal: &Arc<Signal>,
        limit: usize,
        mut wanted: impl FnMut(&Message) -> bool,
    ) -> Option<Option<Error>> {
        for _ in 0..limit {
            match self.read(signal) {
                Read::Message(msg) => {
                    if wanted(&msg) && self.latest.replace(msg).is_some() {
                        // An older message nobody read: conflated away, counted as a drop.
                        self.counters.dropped();
                    }
                }
                Read::Empty => return None,
                Read::Gone(why) => return Some(why),
            }
        }
        signal.reader_waker(self.id.0).wake();
        None
    }

    /// Conflate: whether [`read_latest`](Self::read_latest) kept a message.
    pub(crate) fn has_latest(&self) -> bool {
        self.latest.is_some()
    }

    /// Conflate: the newest message [`read_latest`](Self::read_latest) kept.
    pub(crate) fn take_latest(&mut self) -> Option<Message> {
        self.latest.take()
    }

    /// Hands queued messages to the link as far as it takes them. When it stops taking
    /// them, the link's writable signal says when to try again.
    ///
    /// `direct`: write to the connection from this task now (see
    /// `SharedInner::flush_now`) instead of waking the connection's driver.
    pub(crate) fn flush(&mut self, signal: &Arc<Signal>, direct: bool) -> Result<(), Error> {
        if self.out.is_empty() {
            return Ok(());
        }
        match &mut self.link {
            Link::Native {
                session, stream, ..
            } => {
                let mut inner = session.lock();
                let mut wrote = false;
                let peer_max = inner.core.peer_max_message_size();
                while let Some(msg) = self.out.front_mut() {
                    let unbegun = self.progress == (0, 0);
                    let refused = peer_max.filter(|&max| unbegun && over(msg.byte_len(), max));
                    if let Some(max) = refused {
                        // Queued before the peer's limit was known here (the engine refuses
                        // such a message at send once it is): dropped, not sent for the
                        // peer to reset the stream with what is queued behind it.
                        let size = msg.byte_len();
                        self.out.pop_front();
                        drop_oversized(&mut self.counters, &self.endpoint, size, max);
                        continue;
                    }
                    match write_native(&mut inner.core, *stream, msg, &mut self.progress) {
                        Ok(true) => {
                            self.out.pop_front();
                            self.progress = (0, 0);
                            wrote = true;
                        }
                        Ok(false) => {
                            wrote |= self.progress != (0, 0);
                            break;
                        }
                        Err(e) => return Err(stream_error(e, self.local_type)),
                    }
                }
                if wrote && direct {
                    inner.flush_now();
                } else if wrote {
                    inner.wake_driver();
                }
                Ok(())
            }
            Link::Zmtp(shared) => {
                let mut inner = shared.lock();
                if let Some(e) = inner.failure() {
                    return Err(e);
                }
                let mut wrote = false;
                while let Some(msg) = self.out.front() {
                    if !inner.send(msg, self.local_type) {
                        break;
                    }
                    self.out.pop_front();
                    wrote = true;
                }
                if wrote && direct {
                    inner.flush_now();
                } else if wrote {
                    inner.wake_driver();
                }
                Ok(())
            }
            Link::Inproc(conn) => {
                while let Some(msg) = self.out.pop_front() {
                    match conn.tx.try_push(msg) {
                        Ok(()) => {}
                        Err(PushError::Full(msg)) => {
                            conn.tx.register_writer(&signal.writer_waker(self.id.0));
                            // Room may have freed before the registration: try once more.
                            match conn.tx.try_push(msg) {
                                Ok(()) => {}
                                Err(PushError::Full(msg)) => {
                                    self.out.push_front(msg);
                                    break;
                                }
                                Err(PushError::Closed(msg)) => {
                                    self.out.push_front(msg);
                                    return Err(Error::Closed);
                                }
                            }
                        }
                        Err(PushError::Closed(msg)) => {
                            self.out.push_front(msg);
                            return Err(Error::Closed);
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// Reads the next whole message, if one has arrived.
    pub(crate) fn read(&mut self, signal: &Arc<Signal>) -> Read {
        match &mut self.link {
            Link::Native {
                session,
                stream,
                reading,
            } => {
                let mut inner = session.lock();
                let mut consumed = false;
                let res = loop {
                    match inner.core.read_chunk(*stream) {
                        Ok(Some((chunk, flags))) => {
                            consumed = true;
                            match reading.push(chunk, flags) {
                                Ok(Some(msg)) => break Read::Message(msg),
                                Ok(None) => {}
                                Err(over) => {
                                    // Over this socket's own limits (smaller than those of
                                    // the connection it shares): only its stream is reset,
                                    // as the session resets one over the connection's.
                                    inner.core.reset(*stream, Reason::MESSAGE_TOO_LARGE);
                                    inner.wake_driver();
                                    break Read::Gone(Some(over_limit(over)));
                                }
                            }
                        }
                        Ok(None) => break Read::Empty,
                        Err(e) => break Read::Gone(gone_reason(e, self.local_type)),
                    }
                };
                if consumed && (inner.core.has_control_pending() || inner.core.wants_input()) {
                    // A window update is due, or the connection's paused input may resume.
                    inner.wake_driver();
                }
                res
            }
            Link::Zmtp(shared) => {
                let mut inner = shared.lock();
                match inner.recv() {
                    Some(msg) => Read::Message(msg),
                    None => match inner.failure() {
                        Some(Error::Closed) => Read::Gone(None),
                        Some(e) => Read::Gone(Some(e)),
                        None => Read::Empty,
                    },
                }
            }
            Link::Inproc(conn) => match conn.rx.try_pop() {
                Ok(Some(msg)) => Read::Message(msg),
                Ok(None) => {
                    conn.rx.register_reader(&signal.reader_waker(self.id.0));
                    // A message may have arrived before the registration.
                    match conn.rx.try_pop() {
                        Ok(Some(msg)) => Read::Message(msg),
                        Ok(None) => Read::Empty,
                        Err(_) => Read::Gone(None),
                    }
                }
                Err(_) => Read::Gone(None),
            },
        }
    }

    /// Whether the link has failed (and holds nothing more to read).
    pub(crate) fn failed(&self) -> bool {
        match &self.link {
            Link::Native {
                session, stream, ..
            } => session.lock().core.stream_failed(*stream),
            Link::Inproc(conn) => conn.rx.is_closed() && conn.rx.len() == 0,
            Link::Zmtp(shared) => shared.lock().is_failed(),
        }
    }

    /// Ends the link: a native stream is finished after its queued data (or reset, when
    /// `abort`), a ZMTP connection closed after its queued messages (or at once, discarding
    /// them, when `abort`), an inproc pipe pair is closed.
    pub(crate) fn close(&mut self, abort: bool) {
        if std::mem::replace(&mut self.closed, true) {
            return;
        }
        if let Link::Native {
            session, stream, ..
        } = &self.link
        {
            let mut inner = session.lock();
            inner.unobserve(*stream);
            if abort {
                inner.core.reset(*stream, Reason::CANCEL);
            } else {
                let _ = inner.core.finish(*stream);
            }
            inner.core.release(*stream);
            inner.remove_handle();
            inner.wake_driver();
        }
        if let Link::Zmtp(shared) = &self.link {
            let mut inner = shared.lock();
            if abort {
                inner.core.abort();
            } else {
                inner.core.close();
            }
            inner.wake_driver();
        }
        // Inproc pipes close when the connection is dropped with the peer.
    }

    /// Whether everything queued has been handed to the link (and, for native streams,
    /// to the connection).
    pub(crate) fn is_flushed(&self) -> bool {
        if !self.out.is_empty() {
            return false;
        }
        match &self.link {
            Link::Native {
                session, stream, ..
            } => session.lock().core.poll_flushed(*stream).unwrap_or(true),
            Link::Inproc(_) => true,
            Link::Zmtp(shared) => shared.lock().is_flushed(),
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Gives the session handle back however the peer goes away.
        self.close(false);
    }
}

/// Writes as much of `msg` as credit allows, from `progress` on. `Ok(true)` when the whole
/// message is written.
fn write_native(
    core: &mut crate::proto::native::Session,
    id: StreamId,
    msg: &mut Message,
    progress: &mut (usize, usize),
) -> Result<bool, StreamError> {
    let mut empty = [Bytes::new()];
    let frames = if msg.is_empty() {
        &mut empty[..]
    } else {
        msg.frames_mut()
    };
    let last = frames.len() - 1;
    while progress.0 < frames.len() {
        let frame = &mut frames[progress.0];
        let len = frame.len(); // before the call: a frame sent whole is moved out of `frame`
        let Some(n) = core.write_frame_part(id, frame, progress.1, progress.0 < last)? else {
            return Ok(false);
        };
        if progress.1 + n == len {
            *progress = (progress.0 + 1, 0);
        } else {
            progress.1 += n;
        }
    }
    Ok(true)
}

/// Whether a message of `size` bytes is over a `max_message_size` of `max`.
fn over(size: usize, max: u64) -> bool {
    u64::try_from(size).unwrap_or(u64::MAX) > max
}

/// A message of `size` bytes was not sent to the peer at `endpoint` because it is over the
/// `max_message_size` the peer announced: counted as dropped, logged now and then.
fn drop_oversized(counters: &mut Counters, endpoint: &str, size: usize, max: u64) {
    let dropped = counters.dropped();
    warn_limited!(
        peer = %endpoint,
        size,
        max,
        dropped_so_far = dropped,
        "message over the peer's max_message_size: dropped"
    );
}

/// The error a failed native stream means for the socket.
fn stream_error(e: StreamError, local: SocketType) -> Error {
    gone_reason(e, local).unwrap_or(Error::Closed)
}

/// Why a failed native stream went away, as the socket reports it (`None`: an ordinary end).
fn gone_reason(e: StreamError, local: SocketType) -> Option<Error> {
    match e {
        // Our message was over the peer's limit: it reset only this stream.
        StreamError::Reset(Reason::MESSAGE_TOO_LARGE) => Some(Error::Refused {
            reason: "a message of ours exceeded the peer's max_message_size or \
                     max_message_frames (stream reset, reason 6)"
                .to_owned(),
        }),
        StreamError::Reset(_) | StreamError::Finished | StreamError::Unknown => None,
        StreamError::Rejected { reason, text } => Some(rejected(reason, &text, local)),
        StreamError::TooLarge(over) => Some(over_limit(over)),
        StreamError::ConnectionLost(why) => Some(Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            why,
        ))),
    }
}

/// The error for a peer's message over our limit (its stream was reset).
fn over_limit(over: OverLimit) -> Error {
    match over {
        OverLimit::Size { size, max } => Error::MessageTooLarge { size, max },
        OverLimit::Frames { max } => Error::Protocol(format!(
            "peer sent a message of more than {max} frames (max_message_frames); \
             its stream was reset"
        )),
    }
}

/// The error for a REJECT: for incompatible socket types the REJECT's text is the
/// acceptor's type name (see docs/PROTOCOL.md), so the error names both types.
pub(crate) fn rejected(reason: Reason, text: &str, local: SocketType) -> Error {
    if reason == Reason::INCOMPATIBLE {
        if let Some(remote) = SocketType::from_name(text.trim().as_bytes()) {
            return Error::IncompatiblePeer { local, remote };
        }
    }
    Error::Refused {
        reason: text.to_owned(),
    }
}

/// Collects a message's frames from DATA chunks, within the socket's own limits.
///
/// What it holds stays close to the bytes received: the message is checked against
/// `max_message_size` and `max_message_frames` chunk by chunk, and short pieces of a frame
/// are copied together instead of each keeping a handle (a frame sent as many 1-byte chunks
/// would otherwise cost ~50 bytes per byte); empty pieces are dropped. The session checks
/// the connection's limits already; those are the limits of the socket that made the
/// connection or its listener, so a socket bound later on a shared listener with smaller
/// limits is held to its own here.
#[derive(Debug)]
pub(crate) struct Reassembly {
    /// The socket's own limits.
    limits: MessageLimits,
    /// What the message being received has used of them.
    budget: MessageBudget,
    frames: Vec<Bytes>,
    /// Pieces of the frame being received, in order: full chunks as they came, runs of
    /// short ones copied into one.
    pieces: Vec<Bytes>,
    /// Short pieces received since the last piece in `pieces`, copied together.
    small: BytesMut,
}

impl Reassembly {
    /// Collects messages of at most `max_size` payload bytes and `max_frames` frames.
    pub(crate) fn within(max_size: u64, max_frames: u32) -> Self {
        Reassembly {
            limits: MessageLimits {
                max_size,
                max_frames,
            },
            budget: MessageBudget::default(),
            frames: Vec::new(),
            pieces: Vec::new(),
            small: BytesMut::new(),
        }
    }

    /// Adds one chunk; returns the message when this chunk completes one.
    ///
    /// # Errors
    /// When the message goes over the limits; the caller resets the stream (and what was
    /// collected of the message is dropped).
    pub(crate) fn push(
        &mut self,
        chunk: Bytes,
        flags: DataFlags,
    ) -> Result<Option<Message>, OverLimit> {
        if let Err(over) = count_chunk(&mut self.budget, chunk.len(), flags, self.limits) {
            *self = Reassembly::within(self.limits.max_size, self.limits.max_frames);
            return Err(over);
        }
        Ok(self.collect(chunk, flags))
    }

    /// [`push`](Self::push) once the chunk is within the limits.
    fn collect(&mut self, chunk: Bytes, flags: DataFlags) -> Option<Message> {
        if flags.contains(DataFlags::CONTINUED) {
            self.add_piece(chunk);
            return None;
        }
        let frame = if self.pieces.is_empty() && self.small.is_empty() {
            chunk // the whole frame in one chunk: no copy
        } else {
            self.add_piece(chunk);
            self.flush_small();
            if self.pieces.len() == 1 {
                self.pieces.pop().unwrap_or_default()
            } else {
                let len = self.pieces.iter().map(Bytes::len).sum::<usize>();
                let mut joined = BytesMut::with_capacity(len);
                for piece in self.pieces.drain(..) {
                    joined.extend_from_slice(&piece);
                }
                joined.freeze()
            }
        };
        if flags.contains(DataFlags::MORE) {
            self.frames.push(frame);
            return None;
        }
        if self.frames.is_empty() {
            // A message of one frame (most are): no frame list to allocate.
            return Some(Message::from(frame));
        }
        self.frames.push(frame);
        Some(Message::from(std::mem::take(&mut self.frames)))
    }

    fn add_piece(&mut self, piece: Bytes) {
        if piece.len() < crate::proto::limits::COPY_BELOW {
            self.small.extend_from_slice(&piece);
        } else {
            self.flush_small();
            self.pieces.push(piece);
        }
    }

    fn flush_small(&mut self) {
        if !self.small.is_empty() {
            self.pieces.push(self.small.split().freeze());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_of_many_tiny_chunks_is_held_as_its_bytes_not_as_many_pieces() {
        let mut r = Reassembly::within(u64::MAX, u32::MAX);
        for i in 0..10_000u32 {
            let byte = Bytes::copy_from_slice(&[(i % 251) as u8]);
            assert!(r.push(byte, DataFlags::CONTINUED).unwrap().is_none());
            assert!(r
                .push(Bytes::new(), DataFlags::CONTINUED)
                .unwrap()
                .is_none());
        }
        assert!(r.pieces.len() <= 1, "{} pieces", r.pieces.len());
        let msg = r
            .push(Bytes::from_static(b"!"), DataFlags::default())
            .unwrap()
            .unwrap();
        let frame = &msg.frames()[0];
        assert_eq!(frame.len(), 10_001);
        assert!(frame[..10_000]
            .iter()
            .enumerate()
            .all(|(i, b)| *b == (i % 251) as u8));
        assert_eq!(frame[10_000], b'!');
    }

    #[test]
    fn a_message_over_the_sockets_own_limits_is_refused_chunk_by_chunk() {
        let mut r = Reassembly::within(1000, 3);
        assert_eq!(
            r.push(Bytes::from(vec![0u8; 600]), DataFlags::CONTINUED),
            Ok(None)
        );
        assert_eq!(
            r.push(Bytes::from(vec![0u8; 600]), DataFlags::default()),
            Err(OverLimit::Size {
                size: 1200,
                max: 1000
            }),
            "refused at the chunk that crosses the limit, before the message is whole"
        );
        // The next message starts from nothing; exactly at the limit is fine.
        let msg = r
            .push(Bytes::from(vec![1u8; 1000]), DataFlags::default())
            .unwrap()
            .unwrap();
        assert_eq!(msg.byte_len(), 1000);
        for _ in 0..3 {
            assert_eq!(r.push(Bytes::new(), DataFlags::MORE), Ok(None));
        }
        assert_eq!(
            r.push(Bytes::new(), DataFlags::default()),
            Err(OverLimit::Frames { max: 3 })
        );
        assert_eq!(r.frames.len(), 0, "what was collected is dropped");
    }

    #[test]
    fn large_and_small_pieces_keep_their_order() {
        let mut r = Reassembly::within(u64::MAX, u32::MAX);
        let big = Bytes::from(vec![1u8; crate::proto::limits::COPY_BELOW]);
        r.push(Bytes::from_static(b"ab"), DataFlags::CONTINUED)
            .unwrap();
        r.push(big.clone(), DataFlags::CONTINUED).unwrap();
        r.push(Bytes::from_static(b"cd"), DataFlags::CONTINUED)
            .unwrap();
        let msg = r.push(big.clone(), DataFlags::MORE).unwrap();
        assert!(msg.is_none());
        let msg = r.push(big.clone(), DataFlags::default()).unwrap().unwrap();
        let mut want = b"ab".to_vec();
        want.extend_from_slice(&big);
        want.extend_from_slice(b"cd");
        want.extend_from_slice(&big);
        assert_eq!(msg.frames()[0].as_ref(), &want[..]);
        assert_eq!(msg.frames()[1], big, "a frame of one chunk is not copied");
    }
}
