//! The ZMTP session core: READY, messages, subscriptions and heartbeats on one connection.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tracing::{debug, trace};

use super::command::{self, Command, Ready, CANCEL, SUBSCRIBE};
use super::frame::{self, encode_header, Frame, FrameError, COMMAND, KNOWN, MORE};
use crate::options::SharedAuthorizer;
use crate::proto::curve::{
    ClientConfig, ClientRandom, CurveClient, CurveCodec, CurveError, CurveEvent, CurveServer,
    KeyBytes, ServerConfig, ServerRandom, FLAG_COMMAND, FLAG_MORE, MESSAGE_OVERHEAD,
};
use crate::proto::greeting::NATIVE_VERSION;
use crate::proto::limits::{held_cost, take_payload_mut, MessageBudget, MessageLimits, OverLimit};
use crate::proto::native::Transmit;
use crate::{Message, SocketType};

/// Settings of one ZMTP session.
#[derive(Debug, Clone)]
pub(crate) struct ZmtpConfig {
    /// Our socket type, announced in READY.
    pub(crate) socket_type: SocketType,
    /// Our routing id, announced in READY when non-empty.
    pub(crate) identity: Bytes,
    /// The minor version of the peer's greeting: 0 = ZMTP 3.0, 1 or more = 3.1.
    /// It decides how our subscriptions are sent (messages or commands).
    pub(crate) peer_minor: u8,
    /// Largest message (all frames together) we accept; also the longest prefix of a
    /// SUBSCRIBE or CANCEL.
    pub(crate) max_message_size: u64,
    /// Most frames in one message we accept (a message that never ends, MORE after MORE,
    /// is refused at this count).
    pub(crate) max_message_frames: u32,
    /// PING after this much silence (either way); `None`: we send no PINGs and have no
    /// timeout of our own (the peer's PING TTL still applies).
    pub(crate) heartbeat_interval: Option<Duration>,
    /// With `heartbeat_interval` set: declare the peer dead after this much silence. Also
    /// sent as the PING's TTL.
    pub(crate) heartbeat_timeout: Duration,
    /// The peer's READY must arrive within this.
    pub(crate) handshake_timeout: Duration,
    /// Our greeting carried the zocket marker (we offered the native wire): under CURVE the
    /// handshake metadata repeats it (`X-Zocket`), and a peer whose metadata repeats it
    /// too is refused, since both offered native yet the greetings (unauthenticated) said
    /// otherwise.
    pub(crate) zocket_marker: bool,
    /// Messages (subscription messages included) buffered before input is left
    /// unconsumed.
    pub(crate) recv_limit: usize,
    /// Bytes buffered messages may hold before input is left unconsumed, counted as really
    /// held ([`held_cost`]: payload, 64 bytes per frame, the read buffer a slice pins),
    /// the message in progress included. At least one message is always taken, however
    /// large (it is bounded by `max_message_size` and `max_message_frames`). ZMTP has no
    /// flow control: this is what bounds the memory a fast peer can fill, as the stream
    /// window does on the native wire.
    pub(crate) recv_bytes_limit: usize,
}

/// Why a ZMTP session ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ZmtpError {
    /// The peer broke the protocol; the text says how.
    #[error("ZMTP protocol error: {0}")]
    Protocol(String),
    /// The peer's socket type cannot talk to ours.
    #[error("peer socket type {remote} is incompatible with our {local}")]
    IncompatiblePeer {
        /// Our socket type.
        local: SocketType,
        /// The type the peer announced.
        remote: SocketType,
    },
    /// A message grew past `max_message_size`.
    #[error("peer sent a message of at least {size} bytes, the limit is {max}")]
    MessageTooLarge {
        /// Bytes of the message so far, including the frame that broke the limit.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A message grew past `max_message_frames` frames.
    #[error("peer sent a message of more than {max} frames, the limit of max_message_frames")]
    TooManyFrames {
        /// The limit.
        max: u32,
    },
    /// The handshake or the peer's heartbeats took too long.
    #[error("{0}")]
    Timeout(&'static str),
    /// The peer sent an ERROR command and will close the connection.
    #[error("peer sent ERROR: {0}")]
    Peer(String),
    /// The transport ended.
    #[error("connection closed by peer{0}")]
    Closed(String),
    /// We closed the session.
    #[error("session closed")]
    ClosedLocally,
    /// The CURVE handshake failed, or a MESSAGE box was refused (forged, replayed).
    #[error("{0}")]
    Curve(CurveError),
}

/// What a session needs to run CURVE instead of NULL (see [`ZmtpSession::with_curve`]).
/// The metadata of the configs is replaced by the session's own properties.
#[derive(Debug)]
pub(crate) enum CurveSetup {
    /// We are the CURVE client.
    Client {
        /// Keys (the server's, ours).
        config: ClientConfig,
        /// This connection's random bytes.
        random: ClientRandom,
    },
    /// We are the CURVE server.
    Server {
        /// Our keys.
        config: ServerConfig,
        /// This connection's random bytes.
        random: ServerRandom,
        /// Decides on the client's key; `None` accepts every client that completes the
        /// handshake.
        authorizer: Option<SharedAuthorizer>,
    },
}

/// A CURVE handshake in progress: the client's or the server's core (with its authorizer).
#[derive(Debug)]
pub(crate) enum Handshake {
    /// We are the CURVE client.
    Client(Box<CurveClient>),
    /// We are the CURVE server; `None` accepts every client that completes the handshake.
    Server(Box<CurveServer>, Option<SharedAuthorizer>),
}

impl Handshake {
    /// The handshake of `setup`, announcing `metadata` (ZMTP properties) in INITIATE or
    /// READY.
    pub(crate) fn new(setup: CurveSetup, metadata: Bytes) -> Self {
        match setup {
            CurveSetup::Client { mut config, random } => {
                config.metadata = metadata;
                Handshake::Client(Box::new(CurveClient::new(config, random)))
            }
            CurveSetup::Server {
                mut config,
                random,
                authorizer,
            } => {
                config.metadata = metadata;
                Handshake::Server(Box::new(CurveServer::new(config, random)), authorizer)
            }
        }
    }

    /// Feeds the handshake commands at the front of `buf`.
    pub(crate) fn handle_input(&mut self, buf: &mut BytesMut) -> Result<(), CurveError> {
        match self {
            Handshake::Client(c) => c.handle_input(buf),
            Handshake::Server(s, _) => s.handle_input(buf),
        }
    }

    /// The next event of the handshake core.
    pub(crate) fn poll_event(&mut self) -> Option<CurveEvent> {
        match self {
            Handshake::Client(c) => c.poll_event(),
            Handshake::Server(s, _) => s.poll_event(),
        }
    }

    /// Moves every handshake command waiting to be sent into `out`.
    pub(crate) fn drain(&mut self, out: &mut BytesMut) {
        match self {
            Handshake::Client(c) => while c.poll_transmit(out) {},
            Handshake::Server(s, _) => while s.poll_transmit(out) {},
        }
    }

    /// The MESSAGE layer, once the handshake is complete.
    pub(crate) fn take_codec(&mut self) -> Option<CurveCodec> {
        match self {
            Handshake::Client(c) => c.take_codec(),
            Handshake::Server(s, _) => s.take_codec(),
        }
    }

    /// One round of the handshake, whichever wire carries it: feeds the commands at the front
    /// of `buf`, asks the authorizer when a client presents its key, and moves what is to be
    /// sent into `out`. `Ok(Some((metadata, peer_key)))` once the peer's READY (or INITIATE)
    /// is in (its metadata, and the long-term key it proved it holds), `Ok(None)` while more
    /// input is needed.
    ///
    /// # Errors
    /// The handshake's failure, and whether to tell the peer why with an ERROR (a server
    /// that failed a client for another reason than a refusal, whose ERROR is queued
    /// already).
    pub(crate) fn step(
        &mut self,
        buf: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<Option<(Bytes, KeyBytes)>, (CurveError, bool)> {
        let mut failed = self.handle_input(buf).err();
        let mut ready = None;
        while failed.is_none() {
            match self.poll_event() {
                Some(CurveEvent::Authorize { client_key }) => {
                    if let Handshake::Server(server, authorizer) = self {
                        let key = crate::curve::PublicKey::from_bytes(client_key);
                        if authorizer.as_ref().is_none_or(|a| a.0.authorize(&key)) {
                            server.accept();
                        } else {
                            server.refuse();
                            failed = server.error().cloned();
                        }
                    }
                }
                Some(CurveEvent::Ready { metadata, peer_key }) => {
                    debug!(peer_key = %crate::curve::PublicKey::from_bytes(peer_key), "CURVE handshake complete");
                    ready = Some((metadata, peer_key));
                }
                None => break,
            }
        }
        self.drain(out);
        match failed {
            Some(e) => {
                let server = matches!(self, Handshake::Server(..));
                let explain =
                    server && !matches!(e, CurveError::Refused { .. } | CurveError::Peer { .. });
                Err((e, explain))
            }
            None => Ok(ready),
        }
    }
}

impl From<FrameError> for ZmtpError {
    fn from(e: FrameError) -> Self {
        ZmtpError::Protocol(e.to_string())
    }
}

/// Something the owner of the session should react to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ZmtpEvent {
    /// The peer's READY arrived and its socket type is compatible with ours.
    Ready {
        /// The peer's socket type.
        socket_type: SocketType,
        /// The peer's routing id (empty: none).
        identity: Bytes,
    },
    /// Messages wait in [`ZmtpSession::recv`] (from a SUB peer: its subscriptions, as
    /// subscription messages); not repeated until `recv` returns `None`.
    Readable,
    /// The peer sent ERROR with this reason; the session has ended.
    Error(String),
}

/// One item waiting to be transmitted, in order.
#[derive(Debug)]
enum Outgoing {
    Message(Message),
    Command(Command),
}

impl Outgoing {
    /// Payload bytes it counts for in `queued_bytes`.
    fn len(&self) -> usize {
        match self {
            Outgoing::Message(msg) => msg.byte_len(),
            Outgoing::Command(Command::Subscribe(p) | Command::Cancel(p)) => p.len(),
            Outgoing::Command(_) => 0,
        }
    }
}

/// Longest command body accepted, except a SUBSCRIBE or CANCEL after READY (whose prefix
/// may be as long as `max_message_size`). libzmq's READY carries Socket-Type, an Identity
/// of at most 255 bytes and rarely a few user properties; PING, PONG and ERROR are at
/// most a few hundred bytes. A longer command is refused as soon as its header (before
/// READY) or its name (after READY) has arrived, before its body is buffered.
pub(crate) const MAX_COMMAND_LEN: u64 = 8 * 1024;
/// Stop filling a transmit buffer past this many bytes or segments.
const TRANSMIT_MAX_BYTES: usize = 256 * 1024;
const TRANSMIT_MAX_SEGMENTS: usize = 64;
/// libzmq 4.3 multiplies a PING's TTL by 100 in a `u16` of milliseconds: a TTL above
/// 655 deciseconds wraps around into a much shorter timeout. Longer ones are sent as 0
/// (no TTL).
const MAX_PING_TTL: u16 = 655;

/// The ZMTP 3.0 / 3.1 session core (NULL mechanism), for what follows the greeting.
///
/// Shaped like quinn-proto's `Connection` and the native [`Session`]: getters; `handle_*`
/// for input from the network and the clock; commands ([`send`](Self::send),
/// [`subscribe`](Self::subscribe), [`cancel`](Self::cancel), [`close`](Self::close));
/// `poll_*` for outputs, which the driver drains after every input or command:
/// [`poll_transmit`](Self::poll_transmit) for bytes to write (READY first),
/// [`poll_event`](Self::poll_event) for events, [`recv`](Self::recv) for messages,
/// [`poll_timeout`](Self::poll_timeout) for when to call
/// [`handle_timeout`](Self::handle_timeout). It never does I/O and never reads the clock.
///
/// [`Session`]: crate::proto::native::Session
#[derive(Debug)]
pub(crate) struct ZmtpSession {
    config: ZmtpConfig,
    /// The peer's READY, once received.
    peer: Option<Ready>,
    ready_sent: bool,
    /// Frames of the message being received, its size and frame count so far, and what
    /// its frames hold ([`held_cost`]).
    partial: Vec<Bytes>,
    budget: MessageBudget,
    partial_held: u64,
    /// Received messages (from a SUB peer, subscriptions too), in arrival order.
    inbox: VecDeque<Message>,
    /// What the messages in `inbox` hold ([`held_cost`]).
    inbox_held: u64,
    readable_signalled: bool,
    /// Input was left in the buffer because `recv_limit` was reached.
    held_back: bool,
    outbox: VecDeque<Outgoing>,
    queued_bytes: usize,
    events: VecDeque<ZmtpEvent>,
    handshake_deadline: Instant,
    last_recv: Instant,
    last_send: Instant,
    last_ping: Instant,
    ping_queued: bool,
    /// A PONG to send, with the context of the peer's last PING.
    pending_pong: Option<Bytes>,
    /// The TTL of the peer's last PING.
    peer_ttl: Option<Duration>,
    /// `buf.len()` when `handle_input` last returned, to tell new bytes.
    unconsumed: usize,
    /// Whole length of the incomplete frame at the front of the input (header checked
    /// against the limits), 0 when there is none.
    incomplete_frame_len: usize,
    /// The CURVE handshake, while it runs (READY of NULL is not sent then).
    curve: Option<Handshake>,
    /// After a CURVE handshake: every frame in and out is a MESSAGE box of this codec.
    codec: Option<CurveCodec>,
    /// After a CURVE handshake: the peer's long-term public key.
    peer_key: Option<KeyBytes>,
    /// CURVE handshake commands (or a refused client's ERROR) waiting to be transmitted,
    /// ahead of anything else.
    handshake_out: BytesMut,
    /// Set once the session ends.
    error: Option<ZmtpError>,
    /// The reason of an ERROR command still to send.
    error_to_send: Option<String>,
    closing: bool,
}

impl ZmtpSession {
    /// A new session, right after the greeting; READY is the first thing it transmits.
    pub(crate) fn new(config: ZmtpConfig, now: Instant) -> Self {
        ZmtpSession {
            handshake_deadline: now + config.handshake_timeout,
            config,
            peer: None,
            ready_sent: false,
            partial: Vec::new(),
            budget: MessageBudget::default(),
            partial_held: 0,
            inbox: VecDeque::new(),
            inbox_held: 0,
            readable_signalled: false,
            held_back: false,
            outbox: VecDeque::new(),
            queued_bytes: 0,
            events: VecDeque::new(),
            last_recv: now,
            last_send: now,
            last_ping: now,
            ping_queued: false,
            pending_pong: None,
            peer_ttl: None,
            unconsumed: 0,
            incomplete_frame_len: 0,
            curve: None,
            codec: None,
            peer_key: None,
            handshake_out: BytesMut::new(),
            error: None,
            error_to_send: None,
            closing: false,
        }
    }

    /// A new session that runs the CURVE handshake right after a CURVE greeting: HELLO is
    /// the first thing a client transmits; the peer's metadata (in INITIATE or READY) is
    /// checked as a NULL READY would be, and from then on every frame travels in a MESSAGE
    /// box ([`CurveCodec`]).
    pub(crate) fn with_curve(config: ZmtpConfig, setup: CurveSetup, now: Instant) -> Self {
        let mut metadata = BytesMut::from(
            &Ready {
                socket_type: config.socket_type,
                identity: config.identity.clone(),
            }
            .properties()[..],
        );
        if config.zocket_marker {
            let version = format!("{}.{}", NATIVE_VERSION.0, NATIVE_VERSION.1);
            command::put_property(&mut metadata, command::X_ZOCKET, version.as_bytes());
        }
        let metadata = metadata.freeze();
        let mut session = Self::new(config, now);
        session.ready_sent = true; // the metadata travels in the handshake instead
        let mut handshake = Handshake::new(setup, metadata);
        handshake.drain(&mut session.handshake_out);
        session.curve = Some(handshake);
        session
    }

    // ----- getters -----

    #[cfg(test)]
    /// The peer's READY (socket type and identity), once received.
    pub(crate) fn peer(&self) -> Option<&Ready> {
        self.peer.as_ref()
    }

    /// Whether the session runs CURVE (its handshake, or MESSAGE boxes after it).
    pub(crate) fn is_curve(&self) -> bool {
        self.curve.is_some() || self.codec.is_some()
    }

    /// The long-term CURVE public key the peer proved it holds, once the CURVE handshake is
    /// complete (`None` for NULL).
    pub(crate) fn peer_key(&self) -> Option<KeyBytes> {
        self.peer_key
    }

    /// Why the session ended, if it did.
    pub(crate) fn error(&self) -> Option<&ZmtpError> {
        self.error.as_ref()
    }

    /// Whether the session has ended and has nothing more to transmit: the driver may drop
    /// the transport once the last transmit is written.
    pub(crate) fn is_closed(&self) -> bool {
        self.error.is_some() && self.error_to_send.is_none() && self.handshake_out.is_empty()
    }

    /// Payload bytes queued by [`send`](Self::send) and [`subscribe`](Self::subscribe)
    /// and not yet handed to [`poll_transmit`](Self::poll_transmit): the caller bounds it.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Whether input was left in the buffer because `recv_limit` messages wait: call
    /// [`handle_input`](Self::handle_input) again once [`recv`](Self::recv) made room.
    pub(crate) fn is_input_held_back(&self) -> bool {
        self.held_back
    }

    /// Whether input is held back and [`recv`](Self::recv) has drained the buffered
    /// messages to half of `recv_limit` and of `recv_bytes_limit` (or emptied the inbox):
    /// the time to call [`handle_input`](Self::handle_input) again. Waiting for half, not
    /// for one free slot, lets the reader take many frames per wakeup instead of one.
    pub(crate) fn wants_input(&self) -> bool {
        self.held_back
            && self.inbox.len() <= self.config.recv_limit / 2
            && (self.held() <= self.config.recv_bytes_limit as u64 / 2 || self.inbox.is_empty())
    }

    /// Whether no more input is taken until [`recv`](Self::recv) makes room. The byte
    /// limit holds only while messages wait: the one in progress is always completed.
    fn inbox_full(&self) -> bool {
        self.inbox.len() >= self.config.recv_limit.max(1)
            || (self.held() >= self.config.recv_bytes_limit as u64 && !self.inbox.is_empty())
    }

    /// What received data holds: the buffered messages and the one in progress.
    fn held(&self) -> u64 {
        self.inbox_held + self.partial_held
    }

    #[cfg(test)]
    /// What received data holds ([`held_cost`] of every frame, whole or in progress).
    pub(crate) fn held_bytes(&self) -> u64 {
        self.held()
    }

    fn message_limits(&self) -> MessageLimits {
        MessageLimits {
            max_size: self.config.max_message_size,
            max_frames: self.config.max_message_frames,
        }
    }

    /// Whole length (header and body) of the frame that starts at the front of the input
    /// and has not fully arrived, as its header announced it once checked against its
    /// limit (`max_message_size` for messages and subscriptions, [`MAX_COMMAND_LEN`] for
    /// other commands); 0 when no such frame is known. A reader that keeps room for it
    /// in its buffer never has to move the frame's bytes again, and never reserves more
    /// than the limit allows.
    pub(crate) fn incomplete_frame_len(&self) -> usize {
        self.incomplete_frame_len
    }

    // ----- input -----

    /// Consumes complete frames at the front of `buf` until `recv_limit` messages
    /// (subscription messages included) are buffered or they hold `recv_bytes_limit`
    /// bytes; the rest stays in `buf` (TCP backpressure).
    ///
    /// # Errors
    /// The session error when the input breaks the protocol (a command over its limit, a
    /// SUBSCRIBE or CANCEL from a peer that does not subscribe), names an incompatible
    /// socket type, or carries a message above `max_message_size` or `max_message_frames`
    /// (refused as soon as the frame that breaks the limit starts); the session has then ended and
    /// will transmit an ERROR command saying why. A peer's ERROR command is not an error
    /// here: it comes as [`ZmtpEvent::Error`].
    pub(crate) fn handle_input(
        &mut self,
        now: Instant,
        buf: &mut BytesMut,
    ) -> Result<(), ZmtpError> {
        if self.error.is_some() {
            buf.clear();
            return Ok(());
        }
        let arrived = buf.len();
        let result = self.consume(buf);
        // New bytes or consumed bytes: the peer is alive, even in the middle of a frame.
        if arrived != self.unconsumed || buf.len() != arrived {
            self.last_recv = now;
        }
        self.unconsumed = buf.len();
        result
    }

    fn consume(&mut self, buf: &mut BytesMut) -> Result<(), ZmtpError> {
        self.held_back = false;
        self.incomplete_frame_len = 0;
        if self.curve.is_some() {
            self.curve_handshake(buf)?;
            if self.curve.is_some() {
                return Ok(()); // the handshake waits for more
            }
        }
        loop {
            if self.error.is_some() {
                // The peer sent ERROR: nothing after it counts.
                buf.clear();
                return Ok(());
            }
            if self.inbox_full() {
                self.held_back = !buf.is_empty();
                return Ok(());
            }
            if self.codec.is_some() {
                match self.take_box(buf) {
                    Ok(true) => continue,
                    Ok(false) => return Ok(()),
                    Err(e) => return Err(self.fail(e)),
                }
            }
            let max = match self.frame_limit(buf) {
                Ok(Some(max)) => max,
                Ok(None) => return Ok(()),
                Err(e) => return Err(self.fail(e)),
            };
            let command = buf.first().is_some_and(|flags| flags & COMMAND != 0);
            let frame = match Frame::decode(buf, max) {
                Ok(Some(frame)) => frame,
                Ok(None) => {
                    // The header (if complete) passed the limit check above.
                    self.incomplete_frame_len = frame::frame_len(buf).unwrap_or(0);
                    return Ok(());
                }
                Err(FrameError::TooLarge { size, .. }) if !command => {
                    let err = ZmtpError::MessageTooLarge {
                        size: self.budget.bytes().saturating_add(size),
                        max: self.config.max_message_size,
                    };
                    return Err(self.fail(err));
                }
                Err(e) => return Err(self.fail(e.into())),
            };
            if let Err(e) = self.handle_frame(frame) {
                return Err(self.fail(e));
            }
        }
    }

    /// Judges the frame at the front of `buf` by what has arrived of it, before anything
    /// waits for its body: the most body bytes it may have, or `None` until enough of it
    /// has arrived to tell.
    ///
    /// A message frame before READY, or one frame too many for the message, is refused at
    /// its first byte. A command is refused at its header when longer than
    /// [`MAX_COMMAND_LEN`] before READY; after READY, only SUBSCRIBE and CANCEL (from a
    /// subscriber) may be longer, which is known once the name has arrived.
    fn frame_limit(&self, buf: &[u8]) -> Result<Option<u64>, ZmtpError> {
        let Some(&flags) = buf.first() else {
            return Ok(None);
        };
        let header = frame::header(buf).map(|(_, header_len, size)| (size, &buf[header_len..]));
        self.judge_frame(flags, header)
    }

    /// [`frame_limit`](Self::frame_limit) of a frame with these flags, and, once its
    /// header has arrived, its size and what has arrived of its body. Also judges the
    /// plaintext of a CURVE MESSAGE (whose flags travel inside the box).
    fn judge_frame(
        &self,
        flags: u8,
        header: Option<(u64, &[u8])>,
    ) -> Result<Option<u64>, ZmtpError> {
        let protocol = |text: &str| Err(ZmtpError::Protocol(text.into()));
        if flags & !KNOWN != 0 {
            return Err(FrameError::ReservedFlags(flags).into());
        }
        if flags & COMMAND == 0 {
            if self.peer.is_none() {
                return protocol("message before READY");
            }
            let mut budget = self.budget;
            budget.add_frame(self.message_limits())?;
            let left = self
                .config
                .max_message_size
                .saturating_sub(self.budget.bytes());
            return Ok(Some(left));
        }
        if flags & MORE != 0 {
            return protocol("command frame with the MORE flag set");
        }
        if !self.partial.is_empty() {
            return protocol("command inside a multi-frame message");
        }
        let Some((size, body)) = header else {
            return Ok(None);
        };
        if size <= MAX_COMMAND_LEN {
            return Ok(Some(MAX_COMMAND_LEN));
        }
        if self.peer.is_none() {
            return Err(ZmtpError::Protocol(format!(
                "command of {size} bytes before READY; a handshake command may have at most \
                 {MAX_COMMAND_LEN} bytes"
            )));
        }
        // The body is longer than any name: its name arrives in its first 256 bytes.
        let Some(&name_len) = body.first() else {
            return Ok(None);
        };
        let Some(name) = body.get(1..1 + usize::from(name_len)) else {
            return Ok(None);
        };
        if name == SUBSCRIBE || name == CANCEL {
            self.check_subscriber(name)?;
            let prefix_len = size.saturating_sub(1 + u64::from(name_len));
            let max = self.config.max_message_size;
            if prefix_len > max {
                return Err(ZmtpError::MessageTooLarge {
                    size: prefix_len,
                    max,
                });
            }
            return Ok(Some(size));
        }
        Err(ZmtpError::Protocol(format!(
            "{} command of {size} bytes; commands other than SUBSCRIBE and CANCEL may have at \
             most {MAX_COMMAND_LEN} bytes",
            String::from_utf8_lossy(name)
        )))
    }

    /// Runs the CURVE handshake on the input; once it is complete, the peer's metadata is
    /// checked as its READY would be and the MESSAGE layer takes over.
    fn curve_handshake(&mut self, buf: &mut BytesMut) -> Result<(), ZmtpError> {
        let Some(mut handshake) = self.curve.take() else {
            return Ok(());
        };
        let ready = match handshake.step(buf, &mut self.handshake_out) {
            Ok(ready) => ready,
            Err((e, explain)) => {
                debug!(error = %e, "CURVE handshake failed");
                if explain {
                    // Tell the client why, in place of WELCOME or READY (libzmq's clients
                    // accept ERROR there; a refused client has its ERROR queued already).
                    self.error_to_send = Some(e.to_string());
                }
                let err = ZmtpError::Curve(e);
                self.terminate(err.clone());
                return Err(err);
            }
        };
        let Some((metadata, peer_key)) = ready else {
            self.curve = Some(handshake);
            return Ok(());
        };
        self.codec = handshake.take_codec();
        self.peer_key = Some(peer_key);
        if self.config.zocket_marker
            && command::find_property(&metadata, command::X_ZOCKET).is_some()
        {
            // Both offered the native wire, yet the greetings said ZMTP: someone rewrote
            // them (the marker is not authenticated; its repetition here is).
            return Err(self.fail(ZmtpError::Protocol(
                "the peer's CURVE metadata says it is zocket (X-Zocket) but its greeting \
                 carried no zocket marker: the greeting was altered on the way (downgrade \
                 refused)"
                    .into(),
            )));
        }
        let peer = Ready::decode_properties(&metadata)
            .map_err(|e| ZmtpError::Protocol(format!("CURVE metadata: {e}")))
            .and_then(|ready| {
                let local = self.config.socket_type;
                if local.is_compatible(ready.socket_type) {
                    Ok(ready)
                } else {
                    Err(ZmtpError::IncompatiblePeer {
                        local,
                        remote: ready.socket_type,
                    })
                }
            });
        match peer {
            Ok(ready) => {
                self.events.push_back(ZmtpEvent::Ready {
                    socket_type: ready.socket_type,
                    identity: ready.identity.clone(),
                });
                self.peer = Some(ready);
                Ok(())
            }
            // Said in an ERROR inside a box: the codec is there.
            Err(e) => Err(self.fail(e)),
        }
    }

    /// The most plaintext a MESSAGE box may carry now: what is left of the message in
    /// progress, a command, or (from a subscriber) a SUBSCRIBE or CANCEL of the longest
    /// prefix.
    fn box_limit(&self) -> u64 {
        let left = self
            .config
            .max_message_size
            .saturating_sub(self.budget.bytes());
        let mut limit = left.max(MAX_COMMAND_LEN);
        let subscriber = self
            .peer
            .as_ref()
            .is_some_and(|p| p.socket_type.is_subscriber());
        if subscriber && self.config.socket_type.is_publisher() {
            let name = 1 + SUBSCRIBE.len().max(CANCEL.len()) as u64;
            limit = limit.max(self.config.max_message_size.saturating_add(name));
        }
        limit
    }

    /// Takes one MESSAGE frame from the front of `buf` (its size checked against
    /// [`box_limit`](Self::box_limit) before it is buffered), opens its box and takes the
    /// plaintext as a ZMTP frame, judged as one. `false` when the frame is incomplete.
    fn take_box(&mut self, buf: &mut BytesMut) -> Result<bool, ZmtpError> {
        let Some(&flags) = buf.first() else {
            return Ok(false);
        };
        if flags & !KNOWN != 0 {
            return Err(FrameError::ReservedFlags(flags).into());
        }
        let Some((_, header_len, size)) = frame::header(buf) else {
            return Ok(false);
        };
        let max = self.box_limit();
        let too_large = || ZmtpError::MessageTooLarge {
            size: self
                .budget
                .bytes()
                .saturating_add(size.saturating_sub(MESSAGE_OVERHEAD as u64)),
            max: self.config.max_message_size,
        };
        if size > max.saturating_add(MESSAGE_OVERHEAD as u64) {
            return Err(too_large());
        }
        let Some((len, total)) = usize::try_from(size)
            .ok()
            .and_then(|len| Some((len, len.checked_add(header_len)?)))
        else {
            return Err(too_large());
        };
        if buf.len() < total {
            self.incomplete_frame_len = total;
            return Ok(false);
        }
        buf.advance(header_len);
        // A short box is copied out (it keeps no read buffer alive); a long one is split
        // off and opened in place.
        let body = take_payload_mut(buf, len);
        let Some(codec) = self.codec.as_mut() else {
            return Ok(false);
        };
        let plain = codec.decrypt_in_place(body).map_err(ZmtpError::Curve)?;
        let more = plain.flags & FLAG_MORE != 0;
        let command = plain.flags & FLAG_COMMAND != 0;
        let inner = if command { COMMAND } else { 0 } | if more { MORE } else { 0 };
        let inner_len = plain.data.len() as u64;
        if let Some(max) = self.judge_frame(inner, Some((inner_len, &plain.data)))? {
            if inner_len > max {
                return Err(ZmtpError::MessageTooLarge {
                    size: self.budget.bytes().saturating_add(inner_len),
                    max: self.config.max_message_size,
                });
            }
        }
        self.handle_frame(Frame {
            more,
            command,
            body: plain.data,
        })?;
        Ok(true)
    }

    /// Refuses SUBSCRIBE or CANCEL (`name`) unless the peer is a subscriber (SUB, XSUB) and
    /// we publish (PUB, XPUB).
    fn check_subscriber(&self, name: &[u8]) -> Result<(), ZmtpError> {
        let peer = self.peer.as_ref().map(|p| p.socket_type);
        if peer.is_some_and(SocketType::is_subscriber) && self.config.socket_type.is_publisher() {
            return Ok(());
        }
        Err(ZmtpError::Protocol(format!(
            "{} from a {} peer; only a SUB or XSUB peer of a PUB or XPUB socket subscribes",
            String::from_utf8_lossy(name),
            peer.map_or("unknown", SocketType::as_str)
        )))
    }

    /// Refuses a SUBSCRIBE or CANCEL (`name`) from a peer that does not subscribe, or
    /// whose prefix is longer than `max_message_size`.
    fn check_subscription(&self, name: &[u8], prefix: &[u8]) -> Result<(), ZmtpError> {
        self.check_subscriber(name)?;
        let max = self.config.max_message_size;
        if prefix.len() as u64 > max {
            return Err(ZmtpError::MessageTooLarge {
                size: prefix.len() as u64,
                max,
            });
        }
        Ok(())
    }

    /// Takes a frame [`frame_limit`](Self::frame_limit) accepted.
    fn handle_frame(&mut self, frame: Frame) -> Result<(), ZmtpError> {
        if frame.command {
            let command =
                Command::decode(frame.body).map_err(|e| ZmtpError::Protocol(e.to_string()))?;
            trace!(?command, "recv");
            return self.handle_command(command);
        }
        let limits = self.message_limits();
        self.budget.add_frame(limits)?;
        self.budget.add_bytes(frame.body.len(), limits)?;
        self.partial_held += held_cost(frame.body.len());
        self.partial.push(frame.body);
        if frame.more {
            return Ok(());
        }
        self.budget.reset();
        self.partial_held = 0;
        let frames = std::mem::take(&mut self.partial);
        self.push_message(Message::from(frames));
        Ok(())
    }

    fn handle_command(&mut self, command: Command) -> Result<(), ZmtpError> {
        if let Command::Error(reason) = command {
            debug!(%reason, "peer sent ERROR");
            self.events.push_back(ZmtpEvent::Error(reason.clone()));
            self.terminate(ZmtpError::Peer(reason));
            return Ok(());
        }
        if self.peer.is_none() {
            let Command::Ready(ready) = command else {
                return Err(ZmtpError::Protocol(format!(
                    "command {} before READY",
                    String::from_utf8_lossy(command.name())
                )));
            };
            let local = self.config.socket_type;
            if !local.is_compatible(ready.socket_type) {
                return Err(ZmtpError::IncompatiblePeer {
                    local,
                    remote: ready.socket_type,
                });
            }
            self.events.push_back(ZmtpEvent::Ready {
                socket_type: ready.socket_type,
                identity: ready.identity.clone(),
            });
            self.peer = Some(ready);
            return Ok(());
        }
        match command {
            Command::Ready(_) => return Err(ZmtpError::Protocol("second READY".into())),
            Command::Subscribe(prefix) => {
                self.check_subscription(SUBSCRIBE, &prefix)?;
                self.push_message(subscription_message(true, &prefix));
            }
            Command::Cancel(prefix) => {
                self.check_subscription(CANCEL, &prefix)?;
                self.push_message(subscription_message(false, &prefix));
            }
            Command::Ping { ttl, context } => {
                self.pending_pong = Some(context);
                self.peer_ttl = (ttl > 0).then(|| Duration::from_millis(u64::from(ttl) * 100));
            }
            Command::Pong(_) => {}
            Command::Unknown(name) => {
                debug!(name = %String::from_utf8_lossy(&name), "ignoring unknown command");
            }
            Command::Error(_) => unreachable!("handled above"),
        }
        Ok(())
    }

    /// Queues a received message (or subscription message) for [`recv`](Self::recv).
    ///
    /// A SUB peer's single-frame message starting with 1 or 0 is a subscription (all of
    /// ZMTP 3.0, and libzmq 4.3 still accepts it from 3.1 peers): it is already the
    /// subscription message SUBSCRIBE and CANCEL are turned into, so it goes in as it is,
    /// in order with the rest.
    fn push_message(&mut self, msg: Message) {
        self.inbox_held += message_held(&msg);
        self.inbox.push_back(msg);
        if !self.readable_signalled {
            self.readable_signalled = true;
            self.events.push_back(ZmtpEvent::Readable);
        }
    }

    /// The transport reached end-of-file or failed: the session ends.
    pub(crate) fn handle_eof(&mut self, reason: &str) {
        if self.error.is_none() && matches!(self.curve, Some(Handshake::Client(_))) {
            // libzmq's server closes without a word when our HELLO does not open.
            self.terminate(ZmtpError::Protocol(format!(
                "connection closed by the CURVE server during the handshake{} (does it hold \
                 the secret key of the server key we use?)",
                crate::proto::eof_detail(reason)
            )));
        }
        if self.error.is_none() {
            self.terminate(ZmtpError::Closed(crate::proto::eof_detail(reason)));
        }
        self.error_to_send = None;
    }

    /// Runs the timers that are due: the handshake deadline, the heartbeat timeout (or the
    /// peer's PING TTL), and our next PING.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.error.is_some() {
            return;
        }
        if self.handshake_deadline().is_some_and(|d| d <= now) {
            self.fail(ZmtpError::Timeout(if self.curve.is_some() {
                "handshake timed out: the CURVE handshake did not complete"
            } else {
                "handshake timed out: no READY from peer"
            }));
            return;
        }
        if let Some((deadline, why)) = self.idle_deadline() {
            if deadline <= now {
                self.fail(ZmtpError::Timeout(why));
                return;
            }
        }
        if self.keepalive_deadline().is_some_and(|d| d <= now) {
            self.ping_queued = true;
            self.last_ping = now;
            self.last_send = now;
        }
    }

    fn handshake_deadline(&self) -> Option<Instant> {
        (self.peer.is_none() && self.error.is_none()).then_some(self.handshake_deadline)
    }

    /// When the peer counts as dead: silence for our heartbeat timeout (with heartbeats
    /// on) or for the TTL of its last PING, whichever is shorter. Suspended while input is
    /// held back (we, not the peer, are slow).
    fn idle_deadline(&self) -> Option<(Instant, &'static str)> {
        if self.peer.is_none() || self.error.is_some() || self.held_back {
            return None;
        }
        let ours = self
            .config
            .heartbeat_interval
            .map(|_| self.config.heartbeat_timeout);
        match (ours, self.peer_ttl) {
            (Some(ours), Some(ttl)) if ttl < ours => Some((
                self.last_recv + ttl,
                "peer silent for longer than its PING's TTL",
            )),
            (Some(ours), _) => Some((
                self.last_recv + ours,
                "peer silent for longer than the heartbeat timeout",
            )),
            (None, Some(ttl)) => Some((
                self.last_recv + ttl,
                "peer silent for longer than its PING's TTL",
            )),
            (None, None) => None,
        }
    }

    /// When to PING: after `heartbeat_interval` without hearing from the peer (to make it
    /// answer) or without sending anything (so a peer that set a TTL from our last PING
    /// keeps hearing from us; libzmq re-arms that TTL only on a PING).
    fn keepalive_deadline(&self) -> Option<Instant> {
        let interval = self.config.heartbeat_interval?;
        if self.peer.is_none() || self.error.is_some() {
            return None;
        }
        Some(self.last_recv.max(self.last_ping).min(self.last_send) + interval)
    }

    // ----- commands -----

    /// Queues a message; it is transmitted after the peer's READY. A message with no frames
    /// (which ZMTP cannot carry) is dropped, and so is any message once the session has
    /// ended or is closing.
    pub(crate) fn send(&mut self, msg: Message) {
        if self.error.is_some() || self.closing || msg.is_empty() {
            return;
        }
        let item = Outgoing::Message(msg);
        self.queued_bytes += item.len();
        self.outbox.push_back(item);
    }

    /// Tells a PUB peer we want messages starting with `prefix`: a SUBSCRIBE command to a
    /// ZMTP 3.1 peer, a message `1 + prefix` to a 3.0 peer.
    pub(crate) fn subscribe(&mut self, prefix: Bytes) {
        self.queue_subscription(prefix, true);
    }

    /// Withdraws a subscription: a CANCEL command to a ZMTP 3.1 peer, a message
    /// `0 + prefix` to a 3.0 peer.
    pub(crate) fn cancel(&mut self, prefix: Bytes) {
        self.queue_subscription(prefix, false);
    }

    fn queue_subscription(&mut self, prefix: Bytes, subscribe: bool) {
        if self.error.is_some() || self.closing {
            return;
        }
        let item = if self.config.peer_minor >= 1 {
            Outgoing::Command(if subscribe {
                Command::Subscribe(prefix)
            } else {
                Command::Cancel(prefix)
            })
        } else {
            let mut body = BytesMut::with_capacity(1 + prefix.len());
            body.put_u8(u8::from(subscribe));
            body.extend_from_slice(&prefix);
            Outgoing::Message(Message::from(body))
        };
        self.queued_bytes += item.len();
        self.outbox.push_back(item);
    }

    /// Takes the next received message, or `None` when none waits (the next message then
    /// brings a new [`ZmtpEvent::Readable`]).
    pub(crate) fn recv(&mut self) -> Option<Message> {
        let msg = self.inbox.pop_front();
        match &msg {
            Some(m) => self.inbox_held -= message_held(m),
            None => self.readable_signalled = false,
        }
        msg
    }

    /// Whether received messages wait in [`recv`](Self::recv).
    pub(crate) fn has_messages(&self) -> bool {
        !self.inbox.is_empty()
    }

    /// Closes the session gracefully: what is queued is transmitted, then the session ends
    /// with [`ZmtpError::ClosedLocally`] (ZMTP has no goodbye; the driver closes the socket).
    pub(crate) fn close(&mut self) {
        self.closing = true;
    }

    /// Ends the session now: what is queued is discarded, and the session ends with
    /// [`ZmtpError::ClosedLocally`] (for a socket whose linger time is over while the peer
    /// does not read).
    pub(crate) fn abort(&mut self) {
        if self.error.is_none() {
            self.terminate(ZmtpError::ClosedLocally);
        }
    }

    // ----- outputs -----

    /// Encodes what is due into `out`: READY first, then PONG / PING, then queued messages
    /// and subscriptions in order (large frames by reference), or the ERROR of a failed
    /// session. Returns whether anything was added.
    pub(crate) fn poll_transmit(&mut self, now: Instant, out: &mut Transmit) -> bool {
        let before = out.len();
        if !self.handshake_out.is_empty() {
            let handshake = self.handshake_out.split();
            out.scratch().extend_from_slice(&handshake);
        }
        if self.error.is_none() {
            if !self.ready_sent {
                self.ready_sent = true;
                let ready = Command::Ready(Ready {
                    socket_type: self.config.socket_type,
                    identity: self.config.identity.clone(),
                });
                trace!(command = ?ready, "send");
                ready.encode(out.scratch());
            }
            if self.peer.is_some() {
                if let Err(e) = self.transmit_queued(out) {
                    self.fail(ZmtpError::Curve(e));
                }
            }
            if self.closing && self.outbox.is_empty() {
                self.terminate(ZmtpError::ClosedLocally);
            }
        }
        if let Some(reason) = self.error_to_send.take() {
            // After a CURVE handshake, in a box like every command.
            let _ = put_command(&mut self.codec, &Command::Error(reason), out);
        }
        out.seal();
        let added = out.len() > before;
        if added {
            self.last_send = now;
        }
        added
    }

    /// Encodes PONG, PING and queued items; after a CURVE handshake, each frame in a
    /// MESSAGE box.
    ///
    /// # Errors
    /// The codec's, when a box cannot be sealed (its nonces are used up).
    fn transmit_queued(&mut self, out: &mut Transmit) -> Result<(), CurveError> {
        if let Some(context) = self.pending_pong.take() {
            put_command(&mut self.codec, &Command::Pong(context), out)?;
        }
        if std::mem::take(&mut self.ping_queued) {
            let ping = Command::Ping {
                ttl: ping_ttl(self.config.heartbeat_timeout),
                context: Bytes::new(),
            };
            put_command(&mut self.codec, &ping, out)?;
        }
        let full = |out: &Transmit| {
            out.len() >= TRANSMIT_MAX_BYTES || out.segment_count() >= TRANSMIT_MAX_SEGMENTS
        };
        while !full(out) {
            let Some(item) = self.outbox.pop_front() else {
                break;
            };
            self.queued_bytes -= item.len();
            match item {
                Outgoing::Message(msg) => {
                    let last = msg.len() - 1;
                    for (i, frame) in msg.into_iter().enumerate() {
                        match &mut self.codec {
                            None => {
                                encode_header(out.scratch(), i < last, false, frame.len());
                                out.push_payload(frame);
                            }
                            Some(codec) => {
                                let flags = if i < last { FLAG_MORE } else { 0 };
                                codec.encrypt_frame(flags, &frame, out.scratch())?;
                            }
                        }
                    }
                }
                Outgoing::Command(command) => {
                    trace!(?command, "send");
                    put_command(&mut self.codec, &command, out)?;
                }
            }
        }
        Ok(())
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        [
            self.handshake_deadline(),
            self.idle_deadline().map(|(d, _)| d),
            self.keepalive_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next event, if any.
    pub(crate) fn poll_event(&mut self) -> Option<ZmtpEvent> {
        self.events.pop_front()
    }

    // ----- failure -----

    /// Ends the session with `err`, queuing an ERROR command saying why; returns `err`.
    fn fail(&mut self, err: ZmtpError) -> ZmtpError {
        if self.error.is_none() {
            debug!(error = %err, "ZMTP session failed");
            self.error_to_send = Some(err.to_string());
            self.terminate(err.clone());
        }
        err
    }

    /// Ends the session: nothing queued is sent any more; received messages stay readable.
    fn terminate(&mut self, err: ZmtpError) {
        self.error = Some(err);
        self.outbox.clear();
        self.queued_bytes = 0;
        self.partial.clear();
        self.budget.reset();
        self.partial_held = 0;
        self.incomplete_frame_len = 0;
        self.pending_pong = None;
        self.ping_queued = false;
        self.held_back = false;
    }
}

impl From<OverLimit> for ZmtpError {
    fn from(e: OverLimit) -> Self {
        match e {
            OverLimit::Size { size, max } => ZmtpError::MessageTooLarge { size, max },
            OverLimit::Frames { max } => ZmtpError::TooManyFrames { max },
        }
    }
}

/// Appends a command: a COMMAND frame, or after a CURVE handshake a MESSAGE box with the
/// COMMAND flag (as libzmq sends SUBSCRIBE, CANCEL, PING and PONG then).
fn put_command(
    codec: &mut Option<CurveCodec>,
    command: &Command,
    out: &mut Transmit,
) -> Result<(), CurveError> {
    match codec {
        None => {
            command.encode(out.scratch());
            Ok(())
        }
        Some(codec) => {
            let mut body = BytesMut::new();
            command.encode_body(&mut body);
            codec.encrypt_frame(FLAG_COMMAND, &body, out.scratch())
        }
    }
}

/// What a received message holds: [`held_cost`] of each frame.
fn message_held(msg: &Message) -> u64 {
    msg.frames().iter().map(|f| held_cost(f.len())).sum()
}

/// A SUB peer's SUBSCRIBE or CANCEL as a ZMTP 3.0 subscription message (`01` or `00`,
/// then the prefix), the form the socket engine reads subscriptions in.
fn subscription_message(subscribe: bool, prefix: &[u8]) -> Message {
    let mut frame = BytesMut::with_capacity(1 + prefix.len());
    frame.put_u8(u8::from(subscribe));
    frame.extend_from_slice(prefix);
    Message::from(frame.freeze())
}

/// The TTL sent in our PINGs: the heartbeat timeout in deciseconds, rounded up; 0 (none)
/// when libzmq would misread it (see [`MAX_PING_TTL`]).
fn ping_ttl(timeout: Duration) -> u16 {
    let deciseconds = timeout.as_millis().div_ceil(100);
    match u16::try_from(deciseconds) {
        Ok(ttl) if ttl <= MAX_PING_TTL => ttl,
        _ => 0,
    }
}
