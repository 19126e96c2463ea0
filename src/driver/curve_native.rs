//! CURVE around the native wire: the core a native connection's driver runs, which is the
//! native [`Session`] alone (NULL) or the session inside a CURVE layer.
//!
//! The layer runs the CURVE handshake (HELLO, WELCOME, INITIATE, READY in ZMTP command
//! frames), then carries the native wire inside MESSAGE boxes: each box's plaintext is the
//! flags byte `00` and then whole native frames, as many as one call of the session's
//! `poll_transmit` gives (at most [`MAX_BOX_PLAINTEXT`] bytes), so that encryption costs
//! per write batch, not per message. A box's length is checked from its frame header
//! before it is buffered; a box whose plaintext ends inside a native frame is a connection
//! error. The handshake metadata carries `X-Zocket` (the zocket marker of the greeting,
//! authenticated this time); a peer whose metadata lacks it is refused. The native session
//! knows nothing of CURVE. No I/O and no clock here: the driver passes time in.
//! docs/PROTOCOL.md, section "CURVE", has the bytes.

use std::ops::{Deref, DerefMut};
use std::time::Instant;

use bytes::{Buf, BytesMut};
use tracing::debug;

use crate::proto::curve::{CurveCodec, CurveError, KeyBytes, MESSAGE_OVERHEAD};
use crate::proto::greeting::NATIVE_VERSION;
use crate::proto::limits::take_payload_mut;
use crate::proto::native::frame::{HEADER_LEN, MAX_CONTROL_PAYLOAD, MAX_FRAME_LEN};
use crate::proto::native::{Session, SessionError, Transmit};
use crate::proto::zmtp::command::Command;
use crate::proto::zmtp::command::{find_property, put_property, X_ZOCKET};
use crate::proto::zmtp::{CurveSetup, Handshake, ZmtpError};
use crate::Error;

/// Most plaintext one MESSAGE box of the native wire carries (the flags byte included).
pub(crate) const MAX_BOX_PLAINTEXT: usize = 128 * 1024;
/// Longest MESSAGE body accepted on the native wire (larger ones are refused from their
/// frame header, before they are buffered).
pub(crate) const MAX_BOX_BODY: usize = MESSAGE_OVERHEAD - 1 + MAX_BOX_PLAINTEXT;
/// Longest MESSAGE frame on the native wire (header included): a reader that keeps this
/// much room past what it holds never moves a partly received box.
pub(crate) const MAX_BOX_FRAME: usize = ZMTP_HEADER_MAX + MAX_BOX_BODY;
/// Bytes asked of the session per box: it may overshoot by one DATA frame and a GOAWAY,
/// and the flags byte comes first, so the plaintext stays within [`MAX_BOX_PLAINTEXT`].
const BATCH_LIMIT: usize =
    MAX_BOX_PLAINTEXT - 1 - MAX_FRAME_LEN - 2 * (HEADER_LEN + MAX_CONTROL_PAYLOAD);
/// The LONG bit of a ZMTP frame's flags (an 8-byte size follows); the only bit a MESSAGE
/// frame of the native wire may have.
const LONG: u8 = 0x02;
/// Longest ZMTP frame header (flags, LONG, 8-byte size).
const ZMTP_HEADER_MAX: usize = 9;

/// A native connection's core: the native session, inside a CURVE layer when the
/// connection is secured. It dereferences to the session, which the handles drive.
#[derive(Debug)]
pub(crate) struct Secured {
    session: Session,
    curve: Option<Box<CurveLayer>>,
}

impl Secured {
    /// The session alone (NULL mechanism).
    pub(crate) fn plain(session: Session) -> Self {
        Secured {
            session,
            curve: None,
        }
    }

    /// The session inside a CURVE layer that runs `setup`'s handshake first.
    pub(crate) fn curve(session: Session, setup: CurveSetup) -> Self {
        Secured {
            session,
            curve: Some(Box::new(CurveLayer::new(setup))),
        }
    }
}

impl Deref for Secured {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.session
    }
}

impl DerefMut for Secured {
    fn deref_mut(&mut self) -> &mut Session {
        &mut self.session
    }
}

/// The CURVE state of a secured native connection.
#[derive(Debug)]
pub(crate) struct CurveLayer {
    /// The handshake, while it runs.
    handshake: Option<Handshake>,
    /// After the handshake: seals and opens the MESSAGE boxes.
    codec: Option<CurveCodec>,
    /// Handshake commands (or a refused client's ERROR) waiting to be transmitted.
    out: BytesMut,
    /// Plaintext of opened boxes (whole native frames) the session has not taken yet: it
    /// paused its input (the connection window is full).
    plain: BytesMut,
    /// The layer refused its input (or could not seal): nothing more goes in or out but
    /// what [`out`](Self::out) holds.
    failed: bool,
    /// Why (a refusal is told apart from a protocol error in the public error).
    error: Option<LayerError>,
    /// After the handshake: the peer's long-term public key.
    peer_key: Option<KeyBytes>,
}

/// Why the CURVE layer refused its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LayerError {
    /// The CURVE handshake or a MESSAGE box was refused.
    #[error("{0}")]
    Curve(#[from] CurveError),
    /// The peer broke the native-in-CURVE framing (or its metadata lacks `X-Zocket`).
    #[error("{0}")]
    Protocol(String),
}

impl CurveLayer {
    /// A layer that starts the handshake of `setup`, announcing `X-Zocket`.
    pub(crate) fn new(setup: CurveSetup) -> Self {
        let mut metadata = BytesMut::new();
        let version = format!("{}.{}", NATIVE_VERSION.0, NATIVE_VERSION.1);
        put_property(&mut metadata, X_ZOCKET, version.as_bytes());
        let mut handshake = Handshake::new(setup, metadata.freeze());
        let mut out = BytesMut::new();
        handshake.drain(&mut out);
        CurveLayer {
            handshake: Some(handshake),
            codec: None,
            out,
            plain: BytesMut::new(),
            failed: false,
            error: None,
            peer_key: None,
        }
    }

    /// Runs the handshake on the input; `Ok(true)` once it is complete.
    fn handshake(&mut self, buf: &mut BytesMut) -> Result<bool, LayerError> {
        let Some(handshake) = self.handshake.as_mut() else {
            return Ok(true);
        };
        let ready = match handshake.step(buf, &mut self.out) {
            Ok(ready) => ready,
            Err((e, explain)) => {
                if explain {
                    // Tell the client why, in place of WELCOME or READY (a refused client
                    // has its ERROR queued already).
                    Command::Error(e.to_string()).encode(&mut self.out);
                }
                return Err(e.into());
            }
        };
        let Some((metadata, peer_key)) = ready else {
            return Ok(false);
        };
        self.codec = handshake.take_codec();
        self.peer_key = Some(peer_key);
        self.handshake = None;
        check_metadata(&metadata)?;
        Ok(true)
    }

    /// Takes one MESSAGE frame from the front of `buf` and opens it: its plaintext after
    /// the flags byte (whole native frames), or `None` while the frame is incomplete.
    fn take_box(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, LayerError> {
        let Some(&flags) = buf.first() else {
            return Ok(None);
        };
        if flags & !LONG != 0 {
            return Err(LayerError::Protocol(format!(
                "native wire inside CURVE: expected a MESSAGE frame (flags 00 or LONG 02), got \
                 flags {flags:#04x}"
            )));
        }
        let Some((_, header_len, size)) = crate::proto::zmtp::frame::header(buf) else {
            return Ok(None);
        };
        if size > MAX_BOX_BODY as u64 {
            return Err(LayerError::Protocol(format!(
                "native wire inside CURVE: a box of {size} bytes, the limit is {MAX_BOX_BODY} \
                 ({MAX_BOX_PLAINTEXT} bytes of plaintext)"
            )));
        }
        let len = size as usize; // at most MAX_BOX_BODY
        if buf.len() < header_len + len {
            return Ok(None);
        }
        buf.advance(header_len);
        // A short box is copied out (it keeps no read buffer alive); a long one is split
        // off and opened in place.
        let body = take_payload_mut(buf, len);
        let Some(codec) = self.codec.as_mut() else {
            return Ok(None);
        };
        let (flags, plain) = codec.open_in_place(body)?;
        if flags != 0x00 {
            return Err(LayerError::Protocol(format!(
                "native wire inside CURVE: a box's plaintext starts with {flags:#04x}, not 00"
            )));
        }
        check_whole_frames(&plain)?;
        Ok(Some(plain))
    }

    /// Seals what the session transmits, one box per call, into `out`.
    fn seal(
        &mut self,
        session: &mut Session,
        now: Instant,
        out: &mut Transmit,
    ) -> Result<bool, CurveError> {
        let Some(codec) = self.codec.as_mut() else {
            return Ok(false);
        };
        let mut batch = Transmit::new();
        if !session.poll_transmit_limited(now, &mut batch, BATCH_LIMIT) {
            return Ok(false);
        }
        let scratch = out.scratch();
        scratch.reserve(ZMTP_HEADER_MAX + MESSAGE_OVERHEAD + batch.len());
        codec.encrypt_frame_parts(0x00, batch.segments().collect::<Vec<_>>(), scratch)?;
        Ok(true)
    }
}

/// Refuses handshake metadata without `X-Zocket` of our native major version.
fn check_metadata(metadata: &[u8]) -> Result<(), LayerError> {
    match find_property(metadata, X_ZOCKET) {
        Some(v)
            if v.split(|&b| b == b'.').next() == Some(NATIVE_VERSION.0.to_string().as_bytes()) =>
        {
            Ok(())
        }
        Some(v) => Err(LayerError::Protocol(format!(
            "the peer's CURVE metadata offers zocket native {}, this build speaks {}.{}",
            String::from_utf8_lossy(v),
            NATIVE_VERSION.0,
            NATIVE_VERSION.1
        ))),
        None => Err(LayerError::Protocol(
            "the peer's CURVE metadata has no X-Zocket property though its greeting carried the \
             zocket marker: the greeting was altered on the way (upgrade refused)"
                .into(),
        )),
    }
}

/// Refuses a plaintext that does not end at a native frame boundary.
fn check_whole_frames(mut p: &[u8]) -> Result<(), LayerError> {
    while !p.is_empty() {
        let whole = p.len() >= HEADER_LEN && {
            let len = u32::from_be_bytes([p[6], p[7], p[8], p[9]]) as usize;
            let total = HEADER_LEN.saturating_add(len);
            if p.len() >= total {
                p = &p[total..];
                true
            } else {
                false
            }
        };
        if !whole {
            return Err(LayerError::Protocol(format!(
                "native wire inside CURVE: a box ends inside a native frame ({} bytes of it)",
                p.len()
            )));
        }
    }
    Ok(())
}

impl Secured {
    /// Why the CURVE layer ended the connection, if it did (the session's own error
    /// otherwise).
    pub(crate) fn layer_error(&self) -> Option<Error> {
        match self.curve.as_ref()?.error.as_ref()? {
            LayerError::Curve(c) => Some(super::zmtp::zmtp_error(&ZmtpError::Curve(c.clone()))),
            LayerError::Protocol(m) => Some(Error::Protocol(m.clone())),
        }
    }

    /// The long-term CURVE public key the peer proved it holds, once the handshake is
    /// complete (`None` without CURVE).
    pub(crate) fn peer_key(&self) -> Option<KeyBytes> {
        self.curve.as_ref()?.peer_key
    }

    /// Whether the connection runs CURVE.
    pub(crate) fn is_secured(&self) -> bool {
        self.curve.is_some()
    }

    /// Ends the session after the layer refused its input.
    fn fail(&mut self, e: LayerError) -> SessionError {
        debug!(error = %e, "CURVE layer failed");
        if let Some(layer) = self.curve.as_mut() {
            layer.failed = true;
            layer.plain.clear();
            layer.error = Some(e.clone());
        }
        let err = SessionError::Protocol(e.to_string());
        self.session.abort(err.clone());
        err
    }

    /// Feeds the layer's input (boxes in `buf`) through to the session.
    pub(crate) fn handle_input(
        &mut self,
        now: Instant,
        buf: &mut BytesMut,
    ) -> Result<(), SessionError> {
        let Some(layer) = self.curve.as_mut() else {
            return self.session.handle_input(now, buf);
        };
        if layer.failed || self.session.error().is_some() {
            buf.clear();
            return Ok(());
        }
        match layer.handshake(buf) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(e) => return Err(self.fail(e)),
        }
        loop {
            let Some(layer) = self.curve.as_mut() else {
                return Ok(());
            };
            if !layer.plain.is_empty() {
                self.session.handle_input(now, &mut layer.plain)?;
                if !layer.plain.is_empty() {
                    return Ok(()); // the session paused its input
                }
            }
            match layer.take_box(buf) {
                Ok(Some(plain)) => layer.plain = plain,
                Ok(None) => return Ok(()),
                Err(e) => return Err(self.fail(e)),
            }
        }
    }

    /// Whether input waits in the layer or the session (no read until it is taken).
    pub(crate) fn input_held(&self) -> bool {
        self.session.is_input_paused() || self.curve.as_ref().is_some_and(|l| !l.plain.is_empty())
    }

    /// Encodes what is due into `out`: the handshake's commands, then one box of the
    /// session's frames (or the session's frames alone, without CURVE).
    pub(crate) fn poll_transmit(&mut self, now: Instant, out: &mut Transmit) -> bool {
        let Some(layer) = self.curve.as_mut() else {
            return self.session.poll_transmit(now, out);
        };
        let before = out.len();
        if !layer.out.is_empty() {
            let head = layer.out.split().freeze();
            out.scratch().extend_from_slice(&head);
        }
        if !layer.failed {
            if let Err(e) = layer.seal(&mut self.session, now, out) {
                self.fail(e.into());
            }
        }
        out.seal();
        out.len() > before
    }

    /// Whether the session ended and nothing of the layer waits to be written.
    pub(crate) fn is_closed(&self) -> bool {
        let layer_idle = self.curve.as_ref().is_none_or(|l| l.out.is_empty());
        layer_idle && (self.session.is_closed() || self.curve.as_ref().is_some_and(|l| l.failed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curve::KeyPair;
    use crate::proto::native::{Event, Side};
    use crate::Options;

    /// A CURVE client layer and a CURVE server layer around fresh native sessions.
    fn pair() -> (Secured, Secured, Instant) {
        let now = Instant::now();
        let (server_keys, client_keys) = (KeyPair::generate(), KeyPair::generate());
        let server = Options::new().curve_server(server_keys.secret().clone());
        let client = Options::new().curve_client(*server_keys.public(), client_keys);
        let make = |options: &Options, side| {
            let session = Session::new(crate::driver::session_config(options, side), now);
            let setup = crate::driver::curve_setup(options).expect("a CURVE socket");
            Secured::curve(session, setup)
        };
        (
            make(&client, Side::Client),
            make(&server, Side::Server),
            now,
        )
    }

    /// Moves what `from` transmits into `to`'s input (all of it: whole boxes); returns the
    /// largest single transmission, 0 when there was nothing.
    fn step(from: &mut Secured, to: &mut Secured, now: Instant) -> usize {
        let mut largest = 0;
        let mut t = Transmit::new();
        while from.poll_transmit(now, &mut t) {
            let mut buf = BytesMut::new();
            for s in t.segments() {
                buf.extend_from_slice(s);
            }
            t = Transmit::new();
            largest = largest.max(buf.len());
            to.handle_input(now, &mut buf).expect("input accepted");
            assert!(buf.is_empty(), "whole boxes are consumed");
        }
        largest
    }

    /// Moves bytes both ways until neither side has anything to say (bounded); returns
    /// the largest single transmission seen.
    fn pump(a: &mut Secured, b: &mut Secured, now: Instant) -> usize {
        let mut largest = 0;
        for _ in 0..1000 {
            let moved = step(a, b, now).max(step(b, a, now));
            if moved == 0 {
                return largest;
            }
            largest = largest.max(moved);
        }
        panic!("the layers never went quiet");
    }

    fn established(s: &mut Secured) -> bool {
        std::iter::from_fn(|| s.poll_event()).any(|e| matches!(e, Event::Established(_)))
    }

    #[test]
    fn the_native_sessions_greet_each_other_inside_boxes_after_the_curve_handshake() {
        let (mut client, mut server, now) = pair();
        pump(&mut client, &mut server, now);
        assert!(established(&mut client) && established(&mut server));
        let codec = client.curve.as_ref().unwrap().codec.as_ref().unwrap();
        assert!(
            codec.next_nonce() > 3,
            "the HELLO travelled in a MESSAGE box"
        );
    }

    #[test]
    fn a_large_transfer_travels_in_boxes_of_at_most_128_kib_and_arrives_whole() {
        let (mut client, mut server, now) = pair();
        pump(&mut client, &mut server, now);
        let id = client
            .open(1, "", &bytes::Bytes::new())
            .expect("a stream opens");
        let data: Vec<u8> = (0..400 * 1024).map(|i| (i % 251) as u8).collect();
        let written = client.write_bytes(id, &data).expect("written");
        assert!(
            written > MAX_BOX_PLAINTEXT,
            "only {written} bytes fit the window"
        );
        let largest = pump(&mut client, &mut server, now);
        assert!(
            largest <= ZMTP_HEADER_MAX + MESSAGE_OVERHEAD - 1 + MAX_BOX_PLAINTEXT,
            "a box of {largest} bytes"
        );
        let incoming = std::iter::from_fn(|| server.poll_event())
            .find_map(|e| match e {
                Event::Incoming { id, .. } => Some(id),
                _ => None,
            })
            .expect("the stream arrived");
        server.accept(incoming, 1, bytes::Bytes::new());
        let mut got = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        for _ in 0..100 {
            match server.read_bytes(incoming, &mut chunk).expect("readable") {
                crate::proto::native::ReadBytes::Data(n) => got.extend_from_slice(&chunk[..n]),
                _ => break,
            }
        }
        assert_eq!(got, data[..written]);
    }

    #[test]
    fn a_box_over_the_limit_is_refused_from_its_header_before_it_is_buffered() {
        let (mut client, mut server, now) = pair();
        pump(&mut client, &mut server, now);
        // A MESSAGE frame header (LONG) claiming one byte more than the limit, alone.
        let mut buf = BytesMut::new();
        crate::proto::zmtp::frame::encode_header(&mut buf, false, false, MAX_BOX_BODY + 1);
        let err = server.handle_input(now, &mut buf).unwrap_err();
        assert!(err.to_string().contains("the limit is"), "{err}");
        assert!(server.error().is_some(), "the session ended");
        assert!(server.is_closed(), "nothing more goes out");
    }

    #[test]
    fn a_box_that_ends_inside_a_native_frame_is_a_connection_error() {
        let (mut client, mut server, now) = pair();
        pump(&mut client, &mut server, now);
        // A DATA frame header announcing 100 bytes, followed by 10 of them.
        let mut plain = vec![0u8; HEADER_LEN];
        plain[6..10].copy_from_slice(&100u32.to_be_bytes());
        plain.extend_from_slice(&[1; 10]);
        let mut buf = BytesMut::new();
        let codec = client.curve.as_mut().unwrap().codec.as_mut().unwrap();
        codec.encrypt_frame(0x00, &plain, &mut buf).unwrap();
        let err = server.handle_input(now, &mut buf).unwrap_err();
        assert!(
            err.to_string().contains("ends inside a native frame"),
            "{err}"
        );
    }

    #[test]
    fn handshake_metadata_without_x_zocket_is_refused() {
        let err = check_metadata(b"").unwrap_err();
        assert!(err.to_string().contains("no X-Zocket"), "{err}");
        let mut m = BytesMut::new();
        put_property(&mut m, X_ZOCKET, b"2.0");
        assert!(check_metadata(&m).is_err());
        let mut m = BytesMut::new();
        put_property(&mut m, "Socket-Type", b"DEALER");
        put_property(&mut m, X_ZOCKET, b"1.0");
        assert!(check_metadata(&m).is_ok());
    }
}
