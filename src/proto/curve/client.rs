//! The client side of the CURVE handshake: HELLO, then WELCOME, INITIATE, READY.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use crypto_box::SalsaBox;
use zeroize::{Zeroize, Zeroizing};

use super::codec::CurveCodec;
use super::command::{self, Ready, Welcome, COOKIE_LEN};
use super::{
    nonce, open, salsa_box, seal, short_nonce, transmit_next, CurveError, CurveEvent, KeyBytes,
    MAX_HANDSHAKE_COMMAND,
};
use crate::proto::zmtp::frame::Frame;

/// What a CURVE client knows before it connects.
pub(crate) struct ClientConfig {
    /// The server's long-term public key (S), which the client must already trust.
    pub(crate) server_key: KeyBytes,
    /// The client's long-term secret key (c).
    pub(crate) secret_key: crypto_box::SecretKey,
    /// Its public key (C), as a [`KeyPair`](crate::curve::KeyPair) keeps it (deriving it
    /// costs an X25519 operation per connection). A wrong one fails closed: the server
    /// cannot open the vouch.
    pub(crate) public_key: KeyBytes,
    /// Our metadata for INITIATE: ZMTP properties (`Socket-Type`, `Identity`...), encoded.
    pub(crate) metadata: Bytes,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("server_key", &super::z85::encode_key(&self.server_key))
            .field("public_key", &super::z85::encode_key(&self.public_key))
            .field("secret_key", &"<secret>")
            .field("metadata", &self.metadata)
            .finish()
    }
}

/// The random bytes one client connection uses, drawn by the caller (wiped on drop).
pub(crate) struct ClientRandom {
    /// The short-term secret key (c') of this connection.
    pub(crate) short_secret: [u8; 32],
    /// The random part of the vouch's nonce (after `VOUCH---`).
    pub(crate) vouch_nonce: [u8; 16],
}

impl Drop for ClientRandom {
    fn drop(&mut self) {
        self.short_secret.zeroize();
    }
}

impl std::fmt::Debug for ClientRandom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientRandom(<secret>)")
    }
}

/// Where the client's handshake is.
enum State {
    /// HELLO is queued or sent; WELCOME comes next, in this box of S and c'.
    ExpectWelcome(Box<SalsaBox>),
    /// INITIATE is queued or sent; READY comes next (with this box of C' and S').
    ExpectReady(Box<SalsaBox>),
    /// READY arrived; the codec waits to be taken.
    Done(Option<Box<CurveCodec>>),
    /// The handshake failed with this error.
    Failed(CurveError),
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            State::ExpectWelcome(_) => f.write_str("ExpectWelcome"),
            State::ExpectReady(_) => f.write_str("ExpectReady"),
            State::Done(_) => f.write_str("Done"),
            State::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
        }
    }
}

/// The client's CURVE handshake core (sans-IO).
///
/// Shaped like the crate's other cores: `handle_*` for input ([`handle_input`] takes whole
/// ZMTP frames from the read buffer and leaves what follows the handshake in it;
/// [`handle_command`] takes one command body); `poll_*` for outputs, drained after every
/// input ([`poll_transmit`] appends the next command as a ZMTP COMMAND frame,
/// [`poll_event`] yields [`CurveEvent::Ready`] at the end); getters; and
/// [`take_codec`](Self::take_codec), the MESSAGE layer once the handshake is complete.
///
/// HELLO is queued at construction (nonce 1), INITIATE when WELCOME is opened (nonce 2),
/// so the codec's first MESSAGE has nonce 3.
///
/// [`handle_input`]: Self::handle_input
/// [`handle_command`]: Self::handle_command
/// [`poll_transmit`]: Self::poll_transmit
/// [`poll_event`]: Self::poll_event
pub(crate) struct CurveClient {
    config: ClientConfig,
    /// c', and C' derived from it.
    short_secret: crypto_box::SecretKey,
    short_public: KeyBytes,
    vouch_nonce: [u8; 16],
    state: State,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<CurveEvent>,
}

impl std::fmt::Debug for CurveClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurveClient")
            .field("config", &self.config)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// The client's nonces for HELLO and INITIATE; MESSAGEs continue from 3.
const HELLO_NONCE: u64 = 1;
const INITIATE_NONCE: u64 = 2;

impl CurveClient {
    /// A client core with HELLO queued.
    pub(crate) fn new(config: ClientConfig, random: ClientRandom) -> Self {
        let short_secret = crypto_box::SecretKey::from(random.short_secret);
        let short_public = *short_secret.public_key().as_bytes();
        let hello_box = salsa_box(&config.server_key, &short_secret);
        let hello = hello(&short_public, &hello_box);
        CurveClient {
            config,
            short_secret,
            short_public,
            vouch_nonce: random.vouch_nonce,
            state: State::ExpectWelcome(Box::new(hello_box)),
            out: VecDeque::from([hello]),
            events: VecDeque::new(),
        }
    }

    /// Whether the handshake is complete (READY opened).
    #[cfg_attr(not(test), allow(dead_code))] // getters the tests use
    pub(crate) fn is_done(&self) -> bool {
        matches!(self.state, State::Done(_))
    }

    /// The error that ended the handshake, if one did.
    #[cfg_attr(not(test), allow(dead_code))] // getters the tests use
    pub(crate) fn error(&self) -> Option<&CurveError> {
        match &self.state {
            State::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// Takes whole ZMTP frames from the front of `buf` while the handshake waits for
    /// input; stops after READY (what follows stays in `buf` for the MESSAGE layer), or
    /// at an incomplete frame (`Ok` with the bytes left in `buf`).
    ///
    /// # Errors
    /// [`CurveError`] when a frame or a command is refused; the connection must close.
    pub(crate) fn handle_input(&mut self, buf: &mut BytesMut) -> Result<(), CurveError> {
        while self.wants_input() {
            let Some(frame) =
                Frame::decode(buf, MAX_HANDSHAKE_COMMAND).map_err(|e| self.fail(e.into()))?
            else {
                break;
            };
            if !frame.command {
                return Err(self.fail(CurveError::NotACommand));
            }
            self.handle_command(&frame.body)?;
        }
        match &self.state {
            State::Failed(e) => Err(e.clone()),
            _ => Ok(()),
        }
    }

    /// Whether the handshake waits for a command from the server.
    pub(crate) fn wants_input(&self) -> bool {
        matches!(self.state, State::ExpectWelcome(_) | State::ExpectReady(_))
    }

    /// Processes one command body from the server (WELCOME, READY or ERROR).
    ///
    /// # Errors
    /// [`CurveError`] naming what was wrong; [`CurveError::Peer`] for an ERROR. The
    /// error is also kept ([`error`](Self::error)); the connection must close.
    pub(crate) fn handle_command(&mut self, body: &[u8]) -> Result<(), CurveError> {
        let result = match &self.state {
            State::Failed(e) => return Err(e.clone()),
            State::Done(_) => Err(CurveError::UnexpectedCommand {
                expected: "MESSAGE",
                got: command::name_of(body),
            }),
            _ if command::is(body, command::ERROR) => {
                command::parse_error(body).and_then(|reason| Err(CurveError::Peer { reason }))
            }
            State::ExpectWelcome(_) => self.on_welcome(body),
            State::ExpectReady(_) => self.on_ready(body),
        };
        result.map_err(|e| self.fail(e))
    }

    /// Appends the next handshake command as a ZMTP COMMAND frame; `false` when none waits.
    pub(crate) fn poll_transmit(&mut self, out: &mut BytesMut) -> bool {
        transmit_next(&mut self.out, out)
    }

    /// The next event: [`CurveEvent::Ready`] once READY is opened.
    pub(crate) fn poll_event(&mut self) -> Option<CurveEvent> {
        self.events.pop_front()
    }

    /// The MESSAGE layer, once the handshake is complete (once: later calls give `None`).
    pub(crate) fn take_codec(&mut self) -> Option<CurveCodec> {
        match &mut self.state {
            State::Done(codec) => codec.take().map(|c| *c),
            _ => None,
        }
    }

    /// Records `error` as the end of the handshake and gives it back.
    fn fail(&mut self, error: CurveError) -> CurveError {
        self.state = State::Failed(error.clone());
        self.out.clear();
        error
    }

    /// WELCOME: open Box[S' + cookie](S -> C'), then queue INITIATE.
    fn on_welcome(&mut self, body: &[u8]) -> Result<(), CurveError> {
        let State::ExpectWelcome(cipher) = &self.state else {
            return Ok(());
        };
        let welcome = Welcome::parse(body)?;
        let plain = open(
            &**cipher,
            &nonce(b"WELCOME-", &welcome.nonce),
            welcome.sealed,
            "WELCOME",
        )?;
        // 144-byte box: 128 bytes of plaintext.
        let mut server_short = [0u8; 32];
        server_short.copy_from_slice(&plain[..32]);
        let cookie = &plain[32..32 + COOKIE_LEN];

        // vouch = Box[C' + S](C -> S'), nonce "VOUCH---" + 16 random bytes.
        let mut vouch_plain = Zeroizing::new(Vec::with_capacity(64));
        vouch_plain.extend_from_slice(&self.short_public);
        vouch_plain.extend_from_slice(&self.config.server_key);
        let mut vouch = Vec::with_capacity(80);
        seal(
            &salsa_box(&server_short, &self.config.secret_key),
            &nonce(b"VOUCH---", &self.vouch_nonce),
            &vouch_plain,
            &mut vouch,
        );

        // Box[C + vouch nonce + vouch + metadata](C' -> S').
        let session = salsa_box(&server_short, &self.short_secret);
        let mut plain = Zeroizing::new(Vec::with_capacity(128 + self.config.metadata.len()));
        plain.extend_from_slice(&self.config.public_key);
        plain.extend_from_slice(&self.vouch_nonce);
        plain.extend_from_slice(&vouch);
        plain.extend_from_slice(&self.config.metadata);
        let mut initiate =
            Vec::with_capacity(command::INITIATE_MIN_LEN + self.config.metadata.len());
        initiate.extend_from_slice(command::INITIATE);
        initiate.extend_from_slice(cookie);
        initiate.extend_from_slice(&INITIATE_NONCE.to_be_bytes());
        seal(
            &session,
            &short_nonce(b"CurveZMQINITIATE", INITIATE_NONCE),
            &plain,
            &mut initiate,
        );
        self.out.push_back(initiate);
        self.state = State::ExpectReady(Box::new(session));
        Ok(())
    }

    /// READY: open Box[metadata](S' -> C'); the handshake is complete.
    fn on_ready(&mut self, body: &[u8]) -> Result<(), CurveError> {
        let State::ExpectReady(session) = &self.state else {
            return Ok(());
        };
        let ready = Ready::parse(body)?;
        let metadata = open(
            &**session,
            &short_nonce(b"CurveZMQREADY---", ready.nonce),
            ready.sealed,
            "READY",
        )?;
        let State::ExpectReady(session) = std::mem::replace(&mut self.state, State::Done(None))
        else {
            return Ok(());
        };
        let codec = CurveCodec::new(*session, true, INITIATE_NONCE + 1, ready.nonce);
        self.state = State::Done(Some(Box::new(codec)));
        self.events.push_back(CurveEvent::Ready {
            metadata: Bytes::copy_from_slice(&metadata),
            peer_key: self.config.server_key,
        });
        Ok(())
    }
}

/// HELLO: version 1.0, 72 bytes of padding (so HELLO, 200 bytes, is larger than the
/// 168-byte WELCOME it asks for: a spoofed source gains no amplification), C', nonce 1,
/// Box[64 zeros](C' -> S).
fn hello(short_public: &KeyBytes, cipher: &SalsaBox) -> Vec<u8> {
    let mut hello = Vec::with_capacity(command::HELLO_LEN);
    hello.extend_from_slice(command::HELLO);
    hello.extend_from_slice(&[1, 0]);
    hello.extend_from_slice(&[0; 72]);
    hello.extend_from_slice(short_public);
    hello.extend_from_slice(&HELLO_NONCE.to_be_bytes());
    seal(
        cipher,
        &short_nonce(b"CurveZMQHELLO---", HELLO_NONCE),
        &[0; 64],
        &mut hello,
    );
    hello
}
