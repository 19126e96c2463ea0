//! The native session core: one connection's streams, flow control and heartbeats.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tracing::{debug, trace};

use super::flow_control::{cost, SendCredit};
use super::frame::{
    encode_data_header, DataFlags, Frame, FrameError, Hello, MAX_DATA_PAYLOAD, MAX_IDENTITY_LEN,
    MAX_PATH_LEN, RAW_STREAM,
};
use super::stream::{Chunk, Phase, ReadBytes, Stream, StreamError};
use super::timer::{Timer, TimerTable};
use super::transmit::Transmit;
use super::{Reason, StreamId};
use crate::id_hash::IdMap;
use crate::proto::limits::MessageLimits;

/// Which end of the connection we are: the dialer opens odd stream ids, the listener even.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The side that dialed.
    Client,
    /// The side that accepted.
    Server,
}

/// Settings of one session.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Our end.
    pub(crate) side: Side,
    /// Our process's instance id, sent in HELLO.
    pub(crate) instance: [u8; 16],
    /// Per-stream receive window we grant the peer.
    pub(crate) stream_window: u32,
    /// Most streams the peer may open at once.
    pub(crate) max_streams: u32,
    /// Largest message (on message streams) we accept, in payload bytes.
    pub(crate) max_message_size: u64,
    /// Most frames in a message (on message streams) we accept.
    pub(crate) max_message_frames: u32,
    /// Most bytes the peer's received but unread data may hold, counted with
    /// [`held_cost`](crate::proto::limits::held_cost); input pauses there.
    pub(crate) connection_window: u64,
    /// Ping after this much silence; `None` disables heartbeats.
    pub(crate) heartbeat_interval: Option<Duration>,
    /// Declare the peer dead after this much silence.
    pub(crate) heartbeat_timeout: Duration,
    /// The peer's HELLO must arrive within this.
    pub(crate) handshake_timeout: Duration,
}

/// Why a session ended badly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SessionError {
    /// The peer broke the protocol.
    #[error("{0}")]
    Protocol(String),
    /// The peer said nothing for too long.
    #[error("{0}")]
    Timeout(&'static str),
    /// The peer closed the connection (GOAWAY) or the transport ended.
    #[error("connection closed by peer{0}")]
    Closed(String),
    /// We closed the session.
    #[error("session closed")]
    ClosedLocally,
}

impl From<FrameError> for SessionError {
    fn from(e: FrameError) -> Self {
        SessionError::Protocol(e.to_string())
    }
}

/// Why `open` failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// The path or the identity is too long for an OPEN frame.
    PathTooLong,
    /// The peer's stream limit is reached.
    TooManyStreams,
    /// The session is closing or closed.
    Closed,
}

/// Something the owner of the session should react to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// The peer's HELLO arrived.
    Established(Hello),
    /// The peer opened a stream; accept or reject it.
    Incoming {
        id: StreamId,
        socket_type: u8,
        path: String,
        identity: Bytes,
    },
    /// The peer accepted a stream we opened.
    Accepted {
        id: StreamId,
        socket_type: u8,
        identity: Bytes,
    },
    /// Data, the end of the stream, or an error is ready to be read.
    Readable(StreamId),
    /// A blocked writer may write again (credit arrived or the stream failed).
    Writable(StreamId),
}

/// The native session core.
///
/// Shaped like quinn-proto's `Connection`: getters; `handle_*` for input from the network
/// and the clock; commands (`open`, `accept`, `write_*`, `read_*`, `finish`, `reset`,
/// `release`, `close`); `poll_*` for outputs, which the driver drains after every input
/// or command: [`poll_transmit`](Self::poll_transmit) for bytes to write,
/// [`poll_event`](Self::poll_event) for events, [`poll_timeout`](Self::poll_timeout) for when
/// to call [`handle_timeout`](Self::handle_timeout). It never does I/O and never reads the
/// clock.
#[derive(Debug)]
pub(crate) struct Session {
    config: Config,
    peer: Option<Hello>,
    streams: IdMap<StreamId, Stream>,
    next_local_id: u32,
    /// Highest id the peer has opened.
    peer_max_id: u32,
    /// Streams the peer opened that are still alive (for its stream limit).
    peer_opened: usize,
    /// Streams we opened that are still alive (for the peer's limit).
    local_opened: usize,
    control: VecDeque<Frame>,
    /// Streams with chunks or a CLOSE to send, in round-robin order.
    ready: VecDeque<StreamId>,
    events: VecDeque<Event>,
    timers: TimerTable,
    last_recv: Instant,
    ping_outstanding: bool,
    ping_nonce: u64,
    pending_pong: Option<u64>,
    hello_sent: bool,
    /// Set once the session ends; the reason streams report.
    error: Option<SessionError>,
    /// GOAWAY to send once all data is flushed (graceful close) or at once (error).
    goaway: Option<(Reason, String)>,
    goaway_sent: bool,
    /// What the chunks queued on all streams hold, each counted with
    /// [`held_cost`](crate::proto::limits::held_cost).
    held: u64,
    /// Input stopped at `connection_window` (see [`is_input_paused`](Self::is_input_paused)).
    input_paused: bool,
}

/// Most control frames allowed to wait for transmission; a peer that makes us queue more
/// (by flooding OPENs it never reads the answers to) is cut off.
const MAX_PENDING_CONTROL: usize = 4096;
/// Stop filling a transmit buffer past this many bytes or segments.
const TRANSMIT_MAX_BYTES: usize = 512 * 1024;
const TRANSMIT_MAX_SEGMENTS: usize = 256;

impl Session {
    /// A new session; HELLO is the first thing it transmits.
    pub(crate) fn new(config: Config, now: Instant) -> Self {
        let mut timers = TimerTable::default();
        timers.set(Timer::Handshake, now + config.handshake_timeout);
        let next_local_id = match config.side {
            Side::Client => 1,
            Side::Server => 2,
        };
        Session {
            config,
            peer: None,
            streams: IdMap::default(),
            next_local_id,
            peer_max_id: 0,
            peer_opened: 0,
            local_opened: 0,
            control: VecDeque::new(),
            ready: VecDeque::new(),
            events: VecDeque::new(),
            timers,
            last_recv: now,
            ping_outstanding: false,
            ping_nonce: 0,
            pending_pong: None,
            hello_sent: false,
            error: None,
            goaway: None,
            goaway_sent: false,
            held: 0,
            input_paused: false,
        }
    }

    // ----- getters -----

    #[cfg(test)]
    /// The peer's HELLO, once received.
    pub(crate) fn peer(&self) -> Option<&Hello> {
        self.peer.as_ref()
    }

    /// Why the session ended, if it did.
    pub(crate) fn error(&self) -> Option<&SessionError> {
        self.error.as_ref()
    }

    /// The largest message the peer accepts (its HELLO's `max_message_size`), once its
    /// HELLO has come.
    pub(crate) fn peer_max_message_size(&self) -> Option<u64> {
        self.peer.map(|hello| hello.max_message_size)
    }

    /// Whether the session has nothing more to send or receive: the driver may drop the
    /// transport once the last transmit is written.
    pub(crate) fn is_closed(&self) -> bool {
        self.error.is_some() && (self.goaway_sent || self.goaway.is_none())
    }

    #[cfg(test)]
    /// What the peer's received but unread data holds now, counted as really held
    /// ([`held_cost`](crate::proto::limits::held_cost) per queued chunk), all streams
    /// together.
    pub(crate) fn held_bytes(&self) -> u64 {
        self.held
    }

    /// Whether input is paused because what the peer's unread data holds reached
    /// `connection_window`: [`handle_input`](Self::handle_input) leaves the input in its
    /// buffer and the driver should not read (TCP pushes back on this peer alone).
    pub(crate) fn is_input_paused(&self) -> bool {
        self.input_paused
    }

    /// Whether input is paused and reads have brought what the peer's unread data holds
    /// down to half of `connection_window`: the time to call
    /// [`handle_input`](Self::handle_input) again (a reader that sees it wakes the driver).
    /// Waiting for half, not for the first free byte, lets the reader take many chunks per
    /// wakeup.
    pub(crate) fn wants_input(&self) -> bool {
        self.input_paused && self.error.is_none() && self.held <= self.config.connection_window / 2
    }

    #[cfg(test)]
    /// Number of live streams.
    pub(crate) fn stream_count(&self) -> usize {
        self.streams.len()
    }

    // ----- input -----

    /// Consumes complete frames at the front of `buf` until the peer's unread data holds
    /// `connection_window`; the rest stays in `buf` and input pauses (see
    /// [`is_input_paused`](Self::is_input_paused)) until reads bring the held bytes down to
    /// half. While paused, the idle timeout does not run (we, not the peer, are slow) and
    /// keepalive PINGs go on, so the peer does not time us out either.
    ///
    /// # Errors
    /// The session error, when the input breaks the protocol; the session is then closing
    /// and will transmit a GOAWAY saying why.
    pub(crate) fn handle_input(
        &mut self,
        now: Instant,
        buf: &mut BytesMut,
    ) -> Result<(), SessionError> {
        if self.error.is_some() {
            buf.clear();
            return Ok(());
        }
        if self.input_paused {
            if !self.wants_input() {
                return Ok(());
            }
            // We were not listening: the silence so far is not the peer's.
            self.input_paused = false;
            self.last_recv = now;
            self.arm_heartbeat();
        }
        let mut any = false;
        loop {
            if self.held >= self.config.connection_window {
                if !self.input_paused {
                    debug!(held = self.held, "connection_window reached: input paused");
                    self.input_paused = true;
                }
                break;
            }
            let frame = match Frame::decode(buf) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => return Err(self.fail(Reason::PROTOCOL_ERROR, e.into())),
            };
            any = true;
            trace!(?frame, "recv");
            if let Err(e) = self.handle_frame(frame) {
                return Err(self.fail(Reason::PROTOCOL_ERROR, e));
            }
            if self.error.is_some() {
                buf.clear();
                break;
            }
            if self.control.len() > MAX_PENDING_CONTROL {
                let e = SessionError::Protocol("peer floods control frames without reading".into());
                return Err(self.fail(Reason::PROTOCOL_ERROR, e));
            }
        }
        if any {
            self.last_recv = now;
            self.ping_outstanding = false;
            self.arm_heartbeat();
        }
        if self.input_paused {
            self.timers.stop(Timer::Idle);
        }
        Ok(())
    }

    /// The transport reached end-of-file or failed: every stream ends.
    pub(crate) fn handle_eof(&mut self, reason: &str) {
        if self.error.is_none() {
            self.terminate(SessionError::Closed(crate::proto::eof_detail(reason)));
        }
        self.goaway = None;
    }

    /// Ends the session without a GOAWAY (the transport failed before the session began).
    pub(crate) fn abort(&mut self, err: SessionError) {
        if self.error.is_none() {
            self.terminate(err);
        }
        self.goaway = None;
    }

    /// Runs the timers that are due.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.expired(now) {
            match timer {
                Timer::Handshake => {
                    if self.peer.is_none() {
                        self.fail(
                            Reason::TIMEOUT,
                            SessionError::Timeout("handshake timed out: no HELLO from peer"),
                        );
                    }
                }
                Timer::Idle => {
                    self.fail(
                        Reason::TIMEOUT,
                        SessionError::Timeout("peer silent for longer than the heartbeat timeout"),
                    );
                }
                Timer::Keepalive => {
                    // While input is paused we hear nothing, but the peer must hear from
                    // us: a PING every interval (one queued at most).
                    let paused = self.input_paused && self.error.is_none();
                    let queued =
                        paused && self.control.iter().any(|f| matches!(f, Frame::Ping { .. }));
                    if (!self.ping_outstanding || paused) && !queued && self.error.is_none() {
                        self.ping_nonce = self.ping_nonce.wrapping_add(1);
                        self.ping_outstanding = true;
                        self.control.push_back(Frame::Ping {
                            nonce: self.ping_nonce,
                        });
                    }
                    if let (true, Some(interval)) = (paused, self.config.heartbeat_interval) {
                        self.timers.set(Timer::Keepalive, now + interval);
                    }
                }
            }
        }
    }

    fn arm_heartbeat(&mut self) {
        if self.error.is_some() {
            return;
        }
        if let Some(interval) = self.config.heartbeat_interval {
            self.timers.set(Timer::Keepalive, self.last_recv + interval);
            self.timers
                .set(Timer::Idle, self.last_recv + self.config.heartbeat_timeout);
        }
    }

    fn handle_frame(&mut self, frame: Frame) -> Result<(), SessionError> {
        if self.peer.is_none() && !matches!(frame, Frame::Hello(_)) {
            return Err(SessionError::Protocol(
                "first frame from peer is not HELLO".into(),
            ));
        }
        match frame {
            Frame::Hello(hello) => {
                if self.peer.is_some() {
                    return Err(SessionError::Protocol("second HELLO".into()));
                }
                check_hello(&hello)?;
                self.timers.stop(Timer::Handshake);
                self.peer = Some(hello);
                // Streams opened before the HELLO started without credit.
                for (id, s) in self.streams.iter_mut() {
                    s.send.credit = SendCredit::new(hello.stream_window);
                    if std::mem::take(&mut s.send.blocked) {
                        self.events.push_back(Event::Writable(*id));
                    }
                }
                self.events.push_back(Event::Established(hello));
            }
            Frame::Ping { nonce } => self.pending_pong = Some(nonce),
            Frame::Pong { .. } => {}
            Frame::GoAway { reason, text } => {
                debug!(?reason, %text, "peer sent GOAWAY");
                let why = if text.is_empty() {
                    String::new()
                } else {
                    format!(": {text}")
                };
                self.terminate(SessionError::Closed(why));
                self.goaway = None;
            }
            Frame::Open {
                stream,
                socket_type,
                path,
                identity,
            } => self.on_open(stream, socket_type, path, identity)?,
            Frame::Data {
                stream,
                flags,
                payload,
            } => self.on_data(stream, flags, payload)?,
            Frame::Window { stream, increment } => {
                if let Some(s) = self.known_stream(stream, "WINDOW")? {
                    s.send.credit.on_window(increment).map_err(|()| {
                        SessionError::Protocol(format!("stream {stream} credit overflows"))
                    })?;
                    if s.send.blocked && s.error.is_none() {
                        s.send.blocked = false;
                        self.events.push_back(Event::Writable(stream));
                    }
                }
            }
            Frame::Accept {
                stream,
                socket_type,
                identity,
            } => {
                if let Some(s) = self.known_stream(stream, "ACCEPT")? {
                    if s.phase != Phase::Opening {
                        return Err(SessionError::Protocol(format!(
                            "ACCEPT for stream {stream} that is not opening"
                        )));
                    }
                    s.phase = Phase::Open;
                    s.peer = Some((socket_type, identity.clone()));
                    self.events.push_back(Event::Accepted {
                        id: stream,
                        socket_type,
                        identity,
                    });
                }
            }
            Frame::Reject {
                stream,
                reason,
                text,
            } => {
                if let Some(s) = self.known_stream(stream, "REJECT")? {
                    if s.phase != Phase::Opening {
                        return Err(SessionError::Protocol(format!(
                            "REJECT for stream {stream} that is not opening"
                        )));
                    }
                    s.send.discard();
                    self.fail_stream(stream, StreamError::Rejected { reason, text });
                }
            }
            Frame::Close { stream } => {
                if let Some(s) = self.known_stream(stream, "CLOSE")? {
                    if s.recv.fin {
                        return Err(SessionError::Protocol(format!(
                            "second CLOSE on stream {stream}"
                        )));
                    }
                    s.recv.fin = true;
                    self.signal_readable(stream);
                    self.maybe_remove(stream);
                }
            }
            Frame::Reset { stream, reason } => {
                if self.known_stream(stream, "RESET")?.is_some() {
                    self.fail_stream(stream, StreamError::Reset(reason));
                }
            }
        }
        Ok(())
    }

    /// Whether `id` was opened by the peer (by parity).
    fn is_peer_id(&self, id: StreamId) -> bool {
        let peer_parity = match self.config.side {
            Side::Client => 0,
            Side::Server => 1,
        };
        id.0 % 2 == peer_parity
    }

    /// The stream a frame refers to: `Ok(None)` for a stream that existed and is gone
    /// (frames in flight when it ended are ignored), an error for one that never existed.
    fn known_stream(
        &mut self,
        id: StreamId,
        what: &str,
    ) -> Result<Option<&mut Stream>, SessionError> {
        if self.streams.contains_key(&id) {
            return Ok(self.streams.get_mut(&id));
        }
        self.gone_stream(id, what).map(|()| None)
    }

    /// For a frame on a stream not in the table: `Ok` if the stream existed and is gone
    /// (the frame is ignored), the protocol error if it never existed.
    fn gone_stream(&self, id: StreamId, what: &str) -> Result<(), SessionError> {
        let existed = if id.0 == 0 {
            false
        } else if self.is_peer_id(id) {
            id.0 <= self.peer_max_id
        } else {
            id.0 < self.next_local_id
        };
        if existed {
            Ok(())
        } else {
            Err(SessionError::Protocol(format!(
                "{what} for stream {id} that was never opened"
            )))
        }
    }

    fn on_open(
        &mut self,
        id: StreamId,
        socket_type: u8,
        path: String,
        identity: Bytes,
    ) -> Result<(), SessionError> {
        if id.0 == 0 || !self.is_peer_id(id) || id.0 <= self.peer_max_id {
            return Err(SessionError::Protocol(format!(
                "OPEN with invalid stream id {id}"
            )));
        }
        self.peer_max_id = id.0;
        if self.goaway.is_some() {
            self.control.push_back(Frame::Reject {
                stream: id,
                reason: Reason::SHUTDOWN,
                text: "session closing".into(),
            });
            return Ok(());
        }
        if self.peer_opened >= self.config.max_streams as usize {
            self.control.push_back(Frame::Reject {
                stream: id,
                reason: Reason::TOO_MANY_STREAMS,
                text: format!("limit of {} streams reached", self.config.max_streams),
            });
            return Ok(());
        }
        let peer_window = self.peer.map_or(0, |p| p.stream_window);
        self.streams.insert(
            id,
            Stream::new(
                Phase::Incoming,
                socket_type,
                peer_window,
                self.config.stream_window,
            ),
        );
        if let Some(s) = self.streams.get_mut(&id) {
            s.peer = Some((socket_type, identity.clone()));
        }
        self.peer_opened += 1;
        self.events.push_back(Event::Incoming {
            id,
            socket_type,
            path,
            identity,
        });
        Ok(())
    }

    fn on_data(
        &mut self,
        id: StreamId,
        flags: DataFlags,
        payload: Bytes,
    ) -> Result<(), SessionError> {
        let limits = MessageLimits {
            max_size: self.config.max_message_size,
            max_frames: self.config.max_message_frames,
        };
        // One table lookup per DATA frame (the hot path): `s` borrows only `streams`.
        let Some(s) = self.streams.get_mut(&id) else {
            return self.gone_stream(id, "DATA");
        };
        if s.recv.fin {
            return Err(SessionError::Protocol(format!(
                "DATA on stream {id} after CLOSE"
            )));
        }
        let len = payload.len();
        s.recv.window.on_data(cost(len)).map_err(|()| {
            SessionError::Protocol(format!("stream {id} exceeded its flow-control window"))
        })?;
        if s.error.is_some() || s.released {
            // Nobody will read it: give the credit straight back.
            if let Some(inc) = s.recv.window.on_consumed(cost(len)) {
                self.control.push_back(Frame::Window {
                    stream: id,
                    increment: inc,
                });
            }
            return Ok(());
        }
        if s.socket_type != RAW_STREAM {
            if let Err(over) = s.recv.count_message(len, flags, limits) {
                // This stream alone pays: the connection and its other streams go on.
                debug!(stream = %id, %over, "resetting the stream of a message over the limit");
                self.control.push_back(Frame::Reset {
                    stream: id,
                    reason: Reason::MESSAGE_TOO_LARGE,
                });
                self.fail_stream(id, StreamError::TooLarge(over));
                return Ok(());
            }
        }
        self.held += s.recv.push(Chunk {
            data: payload,
            flags,
        });
        if !s.recv.signalled {
            s.recv.signalled = true;
            self.events.push_back(Event::Readable(id));
        }
        Ok(())
    }

    fn signal_readable(&mut self, id: StreamId) {
        if let Some(s) = self.streams.get_mut(&id) {
            if !s.recv.signalled {
                s.recv.signalled = true;
                self.events.push_back(Event::Readable(id));
            }
        }
    }

    /// Ends one stream with `err`, waking its reader and writer.
    fn fail_stream(&mut self, id: StreamId, err: StreamError) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        if s.error.is_none() {
            s.error = Some(err);
        }
        s.send.discard();
        s.recv.signalled = true;
        s.send.blocked = false;
        self.events.push_back(Event::Readable(id));
        self.events.push_back(Event::Writable(id));
        self.maybe_remove(id);
    }

    /// Ends the session with `err`, queuing a GOAWAY with `reason`; returns `err`.
    fn fail(&mut self, reason: Reason, err: SessionError) -> SessionError {
        if self.error.is_none() {
            debug!(error = %err, "session failed");
            self.goaway = Some((reason, err.to_string()));
            self.terminate(err.clone());
        }
        err
    }

    fn terminate(&mut self, err: SessionError) {
        self.error = Some(err.clone());
        self.timers = TimerTable::default();
        let ids: Vec<StreamId> = self.streams.keys().copied().collect();
        for id in ids {
            self.fail_stream(id, StreamError::ConnectionLost(err.to_string()));
        }
        self.ready.clear();
    }

    fn maybe_remove(&mut self, id: StreamId) {
        let Some(s) = self.streams.get(&id) else {
            return;
        };
        if s.released && (s.is_done() || self.error.is_some()) && !s.send.has_pending() {
            if let Some(mut s) = self.streams.remove(&id) {
                self.held = self.held.saturating_sub(s.recv.discard());
            }
            if self.is_peer_id(id) {
                self.peer_opened -= 1;
            } else {
                self.local_opened -= 1;
            }
        }
    }

    // ----- commands -----

    /// Opens a stream to the socket at `path` with our `socket_type` (or
    /// [`RAW_STREAM`]). Data may be written at once; the peer's answer comes as an
    /// [`Event::Accepted`] or as the stream failing with [`StreamError::Rejected`].
    pub(crate) fn open(
        &mut self,
        socket_type: u8,
        path: &str,
        identity: &Bytes,
    ) -> Result<StreamId, OpenError> {
        if self.error.is_some() || self.goaway.is_some() {
            return Err(OpenError::Closed);
        }
        if path.len() > MAX_PATH_LEN || identity.len() > MAX_IDENTITY_LEN {
            return Err(OpenError::PathTooLong);
        }
        let peer_max = self.peer.map_or(u32::MAX, |p| p.max_streams) as usize;
        if self.local_opened >= peer_max {
            return Err(OpenError::TooManyStreams);
        }
        let id = StreamId(self.next_local_id);
        self.next_local_id = self
            .next_local_id
            .checked_add(2)
            .ok_or(OpenError::TooManyStreams)?;
        let peer_window = self.peer.map_or(0, |p| p.stream_window);
        self.streams.insert(
            id,
            Stream::new(
                Phase::Opening,
                socket_type,
                peer_window,
                self.config.stream_window,
            ),
        );
        self.local_opened += 1;
        self.control.push_back(Frame::Open {
            stream: id,
            socket_type,
            path: path.to_owned(),
            identity: identity.clone(),
        });
        Ok(id)
    }

    /// Accepts a stream from an [`Event::Incoming`], answering with our socket type.
    pub(crate) fn accept(&mut self, id: StreamId, socket_type: u8, identity: Bytes) {
        if let Some(s) = self.streams.get_mut(&id) {
            if s.phase == Phase::Incoming && s.error.is_none() {
                s.phase = Phase::Open;
                self.control.push_back(Frame::Accept {
                    stream: id,
                    socket_type,
                    identity,
                });
            }
        }
    }

    /// Refuses a stream from an [`Event::Incoming`].
    pub(crate) fn reject(&mut self, id: StreamId, reason: Reason, text: &str) {
        if let Some(s) = self.streams.get_mut(&id) {
            if s.phase == Phase::Incoming {
                s.released = true;
                self.control.push_back(Frame::Reject {
                    stream: id,
                    reason,
                    text: text.to_owned(),
                });
                self.fail_stream(id, StreamError::Reset(reason));
            }
        }
    }

    fn writable_stream(&mut self, id: StreamId) -> Result<&mut Stream, StreamError> {
        let s = self.streams.get_mut(&id).ok_or(StreamError::Unknown)?;
        if let Some(e) = &s.error {
            return Err(e.clone());
        }
        if s.send.fin_queued {
            return Err(StreamError::Finished);
        }
        Ok(s)
    }

    fn schedule(&mut self, id: StreamId) {
        if let Some(s) = self.streams.get_mut(&id) {
            if !s.scheduled && s.send.has_pending() {
                s.scheduled = true;
                self.ready.push_back(id);
            }
        }
    }

    /// Copies as much of `data` as the peer's credit allows; `Ok(0)` means "blocked until
    /// an [`Event::Writable`]" (for non-empty `data`).
    pub(crate) fn write_bytes(&mut self, id: StreamId, data: &[u8]) -> Result<usize, StreamError> {
        let s = self.writable_stream(id)?;
        let n = s.send.write_bytes(data);
        if n == 0 && !data.is_empty() {
            s.send.blocked = true;
        }
        self.schedule(id);
        Ok(n)
    }

    /// Queues the next chunk of one message frame, `frame[start..]`, as much as credit
    /// allows, without copying; flags say whether the frame continues and whether another
    /// frame follows (`more`). Returns how many bytes were queued, or `None` when the stream
    /// is out of credit (an [`Event::Writable`] follows when credit comes). A frame queued
    /// whole (from `start` 0) is moved out of `frame`, which is left empty.
    pub(crate) fn write_frame_part(
        &mut self,
        id: StreamId,
        frame: &mut Bytes,
        start: usize,
        more: bool,
    ) -> Result<Option<usize>, StreamError> {
        // A piece that fits one chunk waits for credit rather than being cut at the edge of
        // the window, when the credit it needs is sure to come: the receiver gives credit
        // back once half its window is consumed, so a drained stream always has more than
        // half the window. Cut, it would arrive as two short chunks, each copied out of the
        // read buffer and then copied together again.
        let half_window = self.peer.map_or(0, |p| u64::from(p.stream_window) / 2);
        let s = self.writable_stream(id)?;
        let remaining = frame.len() - start;
        let cap = s.send.capacity().unwrap_or(0);
        let n = remaining.min(cap);
        let wait_whole =
            n < remaining && remaining <= MAX_DATA_PAYLOAD && cost(remaining) <= half_window;
        if s.send.capacity().is_none() || (n == 0 && remaining > 0) || wait_whole {
            s.send.blocked = true;
            return Ok(None);
        }
        let flags = if n < remaining {
            DataFlags::CONTINUED
        } else if more {
            DataFlags::MORE
        } else {
            DataFlags::default()
        };
        // A frame that goes whole is moved, not cloned: no reference count touched here and
        // again where the message is dropped (on another thread, the payload's counter
        // bounced between cores on every message), and a payload that is not shared yet
        // (a fresh `Vec`) is not made shared for it.
        let chunk = if start == 0 && n == remaining {
            std::mem::take(frame)
        } else {
            frame.slice(start..start + n)
        };
        s.send.write_chunk(chunk, flags);
        if !s.scheduled {
            s.scheduled = true;
            self.ready.push_back(id);
        }
        Ok(Some(n))
    }

    #[cfg(test)]
    /// Queues one chunk of a message without copying. `data.len()` must not exceed
    /// [`write_capacity`](Self::write_capacity); a chunk that does not fit is refused with
    /// `Ok(false)` and the stream waits for credit.
    pub(crate) fn write_chunk(
        &mut self,
        id: StreamId,
        data: Bytes,
        flags: DataFlags,
    ) -> Result<bool, StreamError> {
        let s = self.writable_stream(id)?;
        if s.send.capacity().is_none_or(|cap| data.len() > cap) {
            s.send.blocked = true;
            return Ok(false);
        }
        s.send.write_chunk(data, flags);
        self.schedule(id);
        Ok(true)
    }

    /// Whether the stream failed (reset, rejected, connection lost), read to the end or not.
    pub(crate) fn stream_errored(&self, id: StreamId) -> bool {
        self.streams.get(&id).is_none_or(|s| s.error.is_some())
    }

    /// Whether the stream failed (reset, rejected, connection lost) and everything it
    /// received before has been read.
    pub(crate) fn stream_failed(&self, id: StreamId) -> bool {
        self.streams
            .get(&id)
            .is_none_or(|s| s.error.is_some() && s.recv.is_empty())
    }

    /// Half-closes the stream: CLOSE goes out after the data already written.
    pub(crate) fn finish(&mut self, id: StreamId) -> Result<(), StreamError> {
        let s = self.streams.get_mut(&id).ok_or(StreamError::Unknown)?;
        if let Some(e) = &s.error {
            return Err(e.clone());
        }
        if !s.send.fin_queued {
            s.send.fin_queued = true;
            self.schedule(id);
        }
        Ok(())
    }

    /// Aborts the stream in both directions.
    pub(crate) fn reset(&mut self, id: StreamId, reason: Reason) {
        let Some(s) = self.streams.get(&id) else {
            return;
        };
        if s.error.is_none() && self.error.is_none() {
            self.control.push_back(Frame::Reset { stream: id, reason });
        }
        self.fail_stream(id, StreamError::Reset(reason));
    }

    /// Whether everything written to the stream (and its CLOSE, if finished) has been
    /// handed to [`poll_transmit`](Self::poll_transmit); if not, an [`Event::Writable`]
    /// follows once it has.
    pub(crate) fn poll_flushed(&mut self, id: StreamId) -> Result<bool, StreamError> {
        let s = self.streams.get_mut(&id).ok_or(StreamError::Unknown)?;
        if let Some(e) = &s.error {
            return Err(e.clone());
        }
        let done = !s.send.has_pending();
        s.send.flush_wanted = !done;
        Ok(done)
    }

    /// Reads buffered bytes of a stream into `buf`.
    pub(crate) fn read_bytes(
        &mut self,
        id: StreamId,
        buf: &mut [u8],
    ) -> Result<ReadBytes, StreamError> {
        let s = self.streams.get_mut(&id).ok_or(StreamError::Unknown)?;
        let (outcome, consumed) = s.recv.read_bytes(buf);
        self.held = self.held.saturating_sub(consumed.held);
        self.after_read(id, consumed.credit);
        let s = self.streams.get_mut(&id).ok_or(StreamError::Unknown)?;
        match outcome {
            ReadBytes::Blocked => {
                if let Some(e) = &s.error {
                    return Err(e.clone());
                }
                s.recv.signalled = false;
                Ok(ReadBytes::Blocked)
            }
            other => Ok(other),
        }
    }

    /// Takes the next received chunk of a message stream: `Ok(None)` when nothing is
    /// buffered (blocked, or finished: see [`is_finished`](Self::is_finished)).
    pub(crate) fn read_chunk(
        &mut self,
        id: StreamId,
    ) -> Result<Option<(Bytes, DataFlags)>, StreamError> {
        let s = self.streams.get_mut(&id).ok_or(StreamError::Unknown)?;
        match s.recv.read_chunk() {
            Some((chunk, consumed)) => {
                self.held = self.held.saturating_sub(consumed.held);
                // `after_read`, without a second lookup (the hot path).
                let credit_due = consumed.credit > 0 && self.error.is_none() && !s.recv.fin;
                if credit_due && s.error.is_none() {
                    if let Some(inc) = s.recv.window.on_consumed(consumed.credit) {
                        self.control.push_back(Frame::Window {
                            stream: id,
                            increment: inc,
                        });
                    }
                }
                Ok(Some((chunk.data, chunk.flags)))
            }
            None => {
                if let Some(e) = &s.error {
                    return Err(e.clone());
                }
                s.recv.signalled = false;
                Ok(None)
            }
        }
    }

    /// The peer's socket type and routing id on stream `id`: known from its OPEN for a
    /// stream it opened, from its ACCEPT for one we opened (`None` until then).
    pub(crate) fn stream_peer(&self, id: StreamId) -> Option<(u8, Bytes)> {
        self.streams.get(&id).and_then(|s| s.peer.clone())
    }

    fn after_read(&mut self, id: StreamId, consumed: u64) {
        if consumed == 0 || self.error.is_some() {
            return;
        }
        if let Some(s) = self.streams.get_mut(&id) {
            if s.recv.fin || s.error.is_some() {
                return; // the peer will send nothing more: no credit needed
            }
            if let Some(inc) = s.recv.window.on_consumed(consumed) {
                self.control.push_back(Frame::Window {
                    stream: id,
                    increment: inc,
                });
            }
        }
    }

    /// The owner dropped its handle. Like TCP: a stream whose incoming side is still open
    /// is reset (the peer learns nobody reads); otherwise it is finished gracefully after
    /// its queued data.
    pub(crate) fn release(&mut self, id: StreamId) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        s.released = true;
        if s.error.is_none() {
            if !s.recv.fin {
                self.reset(id, Reason::CANCEL);
                return;
            }
            if !s.send.fin_queued {
                s.send.fin_queued = true;
                self.schedule(id);
            }
        }
        if let Some(s) = self.streams.get_mut(&id) {
            self.held = self.held.saturating_sub(s.recv.discard());
        }
        self.maybe_remove(id);
    }

    /// Closes the session: a GOAWAY goes out once the data already queued is sent, and
    /// every stream then ends.
    pub(crate) fn close(&mut self, reason: Reason, text: &str) {
        if self.goaway.is_none() && self.error.is_none() {
            self.goaway = Some((reason, text.to_owned()));
        }
    }

    // ----- outputs -----

    /// Encodes frames to send into `out`, control frames first, then stream data in
    /// round-robin chunks. Returns whether anything was added.
    pub(crate) fn poll_transmit(&mut self, now: Instant, out: &mut Transmit) -> bool {
        self.poll_transmit_limited(now, out, TRANSMIT_MAX_BYTES)
    }

    /// As [`poll_transmit`](Self::poll_transmit), but stops adding frames once `out` holds
    /// `max_bytes` (it may overshoot by one frame: at most
    /// [`MAX_FRAME_LEN`](super::frame::MAX_FRAME_LEN) bytes). A layer that wraps each call's
    /// output in one envelope (a CURVE box) bounds the envelope with it.
    pub(crate) fn poll_transmit_limited(
        &mut self,
        _now: Instant,
        out: &mut Transmit,
        max_bytes: usize,
    ) -> bool {
        let before = out.len();
        if !self.hello_sent {
            self.hello_sent = true;
            Frame::Hello(Hello {
                instance: self.config.instance,
                stream_window: self.config.stream_window,
                max_streams: self.config.max_streams,
                max_message_size: self.config.max_message_size,
            })
            .encode(out.scratch());
        }
        if let Some(nonce) = self.pending_pong.take() {
            Frame::Pong { nonce }.encode(out.scratch());
        }
        let full =
            |out: &Transmit| out.len() >= max_bytes || out.segment_count() >= TRANSMIT_MAX_SEGMENTS;
        while !full(out) {
            let Some(frame) = self.control.pop_front() else {
                break;
            };
            trace!(?frame, "send");
            frame.encode(out.scratch());
        }
        while self.error.is_none() && !full(out) {
            let Some(id) = self.ready.pop_front() else {
                break;
            };
            // One table lookup per turn (the hot path): `s` borrows only `streams`.
            let Some(s) = self.streams.get_mut(&id) else {
                continue;
            };
            s.scheduled = false;
            // A turn is one chunk; while no other stream waits, the turn goes on. A CLOSE
            // takes a turn of its own once the data is out.
            let mut sent = false;
            while let Some(chunk) = s.send.pop_chunk() {
                sent = true;
                encode_data_header(id, chunk.flags, chunk.data.len(), out.scratch());
                out.push_payload(chunk.data);
                if full(out) || !self.ready.is_empty() {
                    break;
                }
            }
            if !sent && s.send.fin_queued && !s.send.fin_sent {
                s.send.fin_sent = true;
                Frame::Close { stream: id }.encode(out.scratch());
            }
            let pending = s.send.has_pending();
            if !pending && std::mem::take(&mut s.send.flush_wanted) {
                self.events.push_back(Event::Writable(id));
            } else if sent && s.send.blocked && s.error.is_none() && s.send.has_room() {
                // A writer stopped by the queue limit (not by credit): there is room again.
                s.send.blocked = false;
                self.events.push_back(Event::Writable(id));
            }
            if pending {
                // `schedule`, inline: back of the queue, behind the others.
                s.scheduled = true;
                self.ready.push_back(id);
            } else if s.released {
                self.maybe_remove(id);
            }
        }
        // The GOAWAY of a graceful close waits for the data; an error's goes at once.
        if !self.goaway_sent
            && (self.error.is_some() || (self.ready.is_empty() && self.control.is_empty()))
        {
            if let Some((reason, text)) = &self.goaway {
                Frame::GoAway {
                    reason: *reason,
                    text: text.clone(),
                }
                .encode(out.scratch());
                self.goaway_sent = true;
                if self.error.is_none() {
                    self.terminate(SessionError::ClosedLocally);
                }
            }
        }
        out.seal();
        out.len() > before
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Whether control frames (window updates, answers) wait to be transmitted.
    pub(crate) fn has_control_pending(&self) -> bool {
        !self.control.is_empty() || self.pending_pong.is_some()
    }

    /// Whether events wait to be polled.
    pub(crate) fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// The next event, if any.
    pub(crate) fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

/// Refuses a HELLO whose parameters no peer may announce: a stream window below one full
/// DATA chunk (the minimum `Options` allows), no streams, or no message at all.
fn check_hello(hello: &Hello) -> Result<(), SessionError> {
    let min_window = crate::options::MIN_STREAM_WINDOW;
    let low = if hello.stream_window < min_window {
        Some((
            "stream_window",
            u64::from(hello.stream_window),
            u64::from(min_window),
        ))
    } else if hello.max_streams < 1 {
        Some(("max_streams", 0, 1))
    } else if hello.max_message_size < 1 {
        Some(("max_message_size", 0, 1))
    } else {
        None
    };
    match low {
        Some((field, value, min)) => Err(SessionError::Protocol(format!(
            "peer's HELLO has {field} {value}, below the minimum of {min}"
        ))),
        None => Ok(()),
    }
}

impl Reason {
    /// No error: a normal close.
    pub(crate) const NO_ERROR: Reason = Reason(0);
    /// The peer broke the protocol.
    pub(crate) const PROTOCOL_ERROR: Reason = Reason(1);
    /// No socket is bound at the requested path.
    pub(crate) const NO_SUCH_PATH: Reason = Reason(3);
    /// The socket types cannot talk to each other.
    pub(crate) const INCOMPATIBLE: Reason = Reason(4);
    /// The stream limit is reached.
    pub(crate) const TOO_MANY_STREAMS: Reason = Reason(5);
    /// A message exceeded the receiver's `max_message_size` or `max_message_frames`
    /// (RESET of that stream).
    pub(crate) const MESSAGE_TOO_LARGE: Reason = Reason(6);
    /// A timeout (handshake or heartbeat).
    pub(crate) const TIMEOUT: Reason = Reason(7);
    /// The stream's owner went away without reading to the end.
    pub(crate) const CANCEL: Reason = Reason(8);
    /// The session is shutting down.
    pub(crate) const SHUTDOWN: Reason = Reason(9);
    /// A `PAIR` socket already has its one peer.
    pub(crate) const PAIR_TAKEN: Reason = Reason(10);
    /// A `ROUTER` already has a live peer with the routing identity the opener claims.
    pub(crate) const IDENTITY_TAKEN: Reason = Reason(11);
}
