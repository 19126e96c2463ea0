//! The server side of the CURVE handshake: HELLO, WELCOME, INITIATE, the authorizer's
//! answer, then READY or ERROR.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use crypto_box::aead::KeyInit;
use crypto_box::SalsaBox;
use crypto_secretbox::XSalsa20Poly1305;
use zeroize::{Zeroize, Zeroizing};

use super::codec::CurveCodec;
use super::command::{self, Hello, Initiate};
use super::{
    equal_ct, nonce, open, salsa_box, seal, short_nonce, transmit_next, CurveError, CurveEvent,
    KeyBytes, MAX_HANDSHAKE_COMMAND, REFUSED_STATUS,
};
use crate::proto::zmtp::frame::Frame;

/// What a CURVE server knows: its long-term key and its metadata.
pub(crate) struct ServerConfig {
    /// The server's long-term secret key (s).
    pub(crate) secret_key: crypto_box::SecretKey,
    /// Its public key (S), as a [`KeyPair`](crate::curve::KeyPair) keeps it (deriving it
    /// costs an X25519 operation per connection). A wrong one fails closed: the vouch of
    /// every client names the right one.
    pub(crate) public_key: KeyBytes,
    /// Our metadata for READY: ZMTP properties (`Socket-Type`, `Identity`...), encoded.
    pub(crate) metadata: Bytes,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("public_key", &super::z85::encode_key(&self.public_key))
            .field("secret_key", &"<secret>")
            .field("metadata", &self.metadata)
            .finish()
    }
}

/// The random bytes one server connection uses, drawn by the caller (wiped on drop).
pub(crate) struct ServerRandom {
    /// The short-term secret key (s') of this connection.
    pub(crate) short_secret: [u8; 32],
    /// The key that seals this connection's cookie (libzmq draws one per connection, so
    /// an INITIATE cannot be replayed on another connection).
    pub(crate) cookie_key: [u8; 32],
    /// The random part of the cookie's nonce (after `COOKIE--`).
    pub(crate) cookie_nonce: [u8; 16],
    /// The random part of WELCOME's nonce (after `WELCOME-`).
    pub(crate) welcome_nonce: [u8; 16],
}

impl Drop for ServerRandom {
    fn drop(&mut self) {
        self.short_secret.zeroize();
        self.cookie_key.zeroize();
    }
}

impl std::fmt::Debug for ServerRandom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerRandom(<secret>)")
    }
}

/// What the server has learnt from a HELLO.
struct HelloSeen {
    /// C', the client's short-term public key.
    client_short: KeyBytes,
    /// HELLO's nonce: INITIATE's must be above it.
    nonce: u64,
}

/// Where the server's handshake is.
enum State {
    /// Nothing received yet.
    ExpectHello,
    /// WELCOME is queued or sent.
    ExpectInitiate(HelloSeen),
    /// INITIATE was opened: the authorizer decides on the client's key.
    Authorizing {
        client_key: KeyBytes,
        metadata: Bytes,
        session: Box<SalsaBox>,
        peer_nonce: u64,
    },
    /// READY is queued; the codec waits to be taken.
    Done(Option<Box<CurveCodec>>),
    /// The handshake failed (ERROR may be queued).
    Failed(CurveError),
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            State::ExpectHello => f.write_str("ExpectHello"),
            State::ExpectInitiate(_) => f.write_str("ExpectInitiate"),
            State::Authorizing { client_key, .. } => f
                .debug_struct("Authorizing")
                .field("client_key", &super::z85::encode_key(client_key))
                .finish_non_exhaustive(),
            State::Done(_) => f.write_str("Done"),
            State::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
        }
    }
}

/// The server's CURVE handshake core (sans-IO).
///
/// Shaped like the crate's other cores: `handle_*` for input ([`handle_input`] takes whole
/// ZMTP frames from the read buffer and leaves what follows the handshake in it;
/// [`handle_command`] takes one command body); commands for the authorizer's answer
/// ([`accept`], [`refuse`]); `poll_*` for outputs ([`poll_transmit`] appends the next
/// command as a ZMTP COMMAND frame, [`poll_event`] yields [`CurveEvent::Authorize`], then
/// [`CurveEvent::Ready`]); and [`take_codec`](Self::take_codec) once READY is queued.
///
/// Until INITIATE, the server keeps what libzmq keeps: the client's C', its own short-term
/// key pair and the per-connection cookie key. WELCOME carries no nonce of the counter
/// (its nonce is random); READY has nonce 1, so the codec's first MESSAGE has nonce 2.
///
/// [`handle_input`]: Self::handle_input
/// [`handle_command`]: Self::handle_command
/// [`accept`]: Self::accept
/// [`refuse`]: Self::refuse
/// [`poll_transmit`]: Self::poll_transmit
/// [`poll_event`]: Self::poll_event
pub(crate) struct CurveServer {
    config: ServerConfig,
    /// s', S' derived from it.
    short_secret: crypto_box::SecretKey,
    short_public: KeyBytes,
    cookie_key: Zeroizing<[u8; 32]>,
    cookie_nonce: [u8; 16],
    welcome_nonce: [u8; 16],
    state: State,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<CurveEvent>,
}

impl std::fmt::Debug for CurveServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurveServer")
            .field(
                "public_key",
                &super::z85::encode_key(&self.config.public_key),
            )
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// The server's READY nonce; MESSAGEs continue from 2.
const READY_NONCE: u64 = 1;

impl CurveServer {
    /// A server core waiting for HELLO.
    pub(crate) fn new(config: ServerConfig, random: ServerRandom) -> Self {
        let short_secret = crypto_box::SecretKey::from(random.short_secret);
        let short_public = *short_secret.public_key().as_bytes();
        CurveServer {
            config,
            short_secret,
            short_public,
            cookie_key: Zeroizing::new(random.cookie_key),
            cookie_nonce: random.cookie_nonce,
            welcome_nonce: random.welcome_nonce,
            state: State::ExpectHello,
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Whether READY is queued (the handshake is complete on our side).
    pub(crate) fn is_done(&self) -> bool {
        matches!(self.state, State::Done(_))
    }

    /// The error that ended the handshake, if one did.
    pub(crate) fn error(&self) -> Option<&CurveError> {
        match &self.state {
            State::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// Whether the handshake waits for a command from the client (not while the
    /// authorizer decides: a client cannot make the server read ahead of its answer).
    pub(crate) fn wants_input(&self) -> bool {
        matches!(self.state, State::ExpectHello | State::ExpectInitiate(_))
    }

    /// Takes whole ZMTP frames from the front of `buf` while the handshake waits for
    /// input; stops after INITIATE (what follows stays in `buf`), or at an incomplete
    /// frame (`Ok` with the bytes left in `buf`).
    ///
    /// # Errors
    /// [`CurveError`] when a frame or a command is refused; the connection must close.
    pub(crate) fn handle_input(&mut self, buf: &mut BytesMut) -> Result<(), CurveError> {
        while self.wants_input() {
            let decoded = Frame::decode(buf, MAX_HANDSHAKE_COMMAND);
            let Some(frame) = decoded.map_err(|e| self.fail(e.into()))? else {
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

    /// Processes one command body from the client (HELLO, then INITIATE).
    ///
    /// # Errors
    /// [`CurveError`] naming what was wrong; the error is also kept
    /// ([`error`](Self::error)); the connection must close.
    pub(crate) fn handle_command(&mut self, body: &[u8]) -> Result<(), CurveError> {
        let result = match &self.state {
            State::Failed(e) => return Err(e.clone()),
            State::ExpectHello => self.on_hello(body),
            State::ExpectInitiate(_) => self.on_initiate(body),
            State::Authorizing { .. } | State::Done(_) => Err(CurveError::UnexpectedCommand {
                expected: if self.is_done() {
                    "MESSAGE"
                } else {
                    "nothing before READY"
                },
                got: command::name_of(body),
            }),
        };
        result.map_err(|e| self.fail(e))
    }

    /// The authorizer accepts the client: READY is queued and [`CurveEvent::Ready`]
    /// follows. `false` (and nothing happens) unless an [`CurveEvent::Authorize`] waits
    /// for its answer.
    pub(crate) fn accept(&mut self) -> bool {
        if !matches!(self.state, State::Authorizing { .. }) {
            return false;
        }
        let State::Authorizing {
            client_key,
            metadata,
            session,
            peer_nonce,
        } = std::mem::replace(&mut self.state, State::Done(None))
        else {
            return false;
        };
        let mut ready = Vec::with_capacity(command::READY_MIN_LEN + self.config.metadata.len());
        ready.extend_from_slice(command::READY);
        ready.extend_from_slice(&READY_NONCE.to_be_bytes());
        seal(
            &*session,
            &short_nonce(b"CurveZMQREADY---", READY_NONCE),
            &self.config.metadata,
            &mut ready,
        );
        self.out.push_back(ready);
        let codec = CurveCodec::new(*session, false, READY_NONCE + 1, peer_nonce);
        self.state = State::Done(Some(Box::new(codec)));
        self.events.push_back(CurveEvent::Ready {
            metadata,
            peer_key: client_key,
        });
        true
    }

    /// The authorizer refuses the client: ERROR `400` (ZAP's "authentication failed",
    /// which libzmq clients report as such) is queued, and the handshake ends with
    /// [`CurveError::Refused`]. `false` (and nothing happens) unless an
    /// [`CurveEvent::Authorize`] waits for its answer.
    pub(crate) fn refuse(&mut self) -> bool {
        let State::Authorizing { client_key, .. } = &self.state else {
            return false;
        };
        let client_key = super::z85::encode_key(client_key);
        self.fail(CurveError::Refused { client_key });
        let mut error = Vec::new();
        command::put_error(&mut error, REFUSED_STATUS);
        self.out.push_back(error);
        true
    }

    /// Appends the next handshake command as a ZMTP COMMAND frame; `false` when none waits.
    pub(crate) fn poll_transmit(&mut self, out: &mut BytesMut) -> bool {
        transmit_next(&mut self.out, out)
    }

    /// The next event: [`CurveEvent::Authorize`], then [`CurveEvent::Ready`].
    pub(crate) fn poll_event(&mut self) -> Option<CurveEvent> {
        self.events.pop_front()
    }

    /// The MESSAGE layer once READY is queued (once: later calls give `None`). Write
    /// what [`poll_transmit`](Self::poll_transmit) has (READY) before any MESSAGE.
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

    /// HELLO: open Box[64 zeros](C' -> S), then queue WELCOME.
    fn on_hello(&mut self, body: &[u8]) -> Result<(), CurveError> {
        let hello = Hello::parse(body)?;
        if hello.version != [1, 0] {
            return Err(CurveError::Version {
                major: hello.version[0],
                minor: hello.version[1],
            });
        }
        let cipher = salsa_box(&hello.client_short, &self.config.secret_key);
        // The 64 bytes inside are zeros by the RFC; libzmq checks only that the box is
        // authentic, and so do we.
        open(
            &cipher,
            &short_nonce(b"CurveZMQHELLO---", hello.nonce),
            hello.signature,
            "HELLO",
        )?;

        // cookie = nonce (16) + SecretBox[C' + s'](cookie key).
        let mut cookie_plain = Zeroizing::new(Vec::with_capacity(64));
        cookie_plain.extend_from_slice(&hello.client_short);
        cookie_plain.extend_from_slice(Zeroizing::new(self.short_secret.to_bytes()).as_ref());
        let mut welcome_plain = Zeroizing::new(Vec::with_capacity(128));
        welcome_plain.extend_from_slice(&self.short_public);
        welcome_plain.extend_from_slice(&self.cookie_nonce);
        let secretbox = XSalsa20Poly1305::new(self.cookie_key.as_ref().into());
        seal(
            &secretbox,
            &nonce(b"COOKIE--", &self.cookie_nonce),
            &cookie_plain,
            &mut welcome_plain,
        );

        // WELCOME = nonce (16) + Box[S' + cookie](S -> C').
        let mut welcome = Vec::with_capacity(command::WELCOME_LEN);
        welcome.extend_from_slice(command::WELCOME);
        welcome.extend_from_slice(&self.welcome_nonce);
        seal(
            &cipher,
            &nonce(b"WELCOME-", &self.welcome_nonce),
            &welcome_plain,
            &mut welcome,
        );
        self.out.push_back(welcome);
        self.state = State::ExpectInitiate(HelloSeen {
            client_short: hello.client_short,
            nonce: hello.nonce,
        });
        Ok(())
    }

    /// INITIATE: open the cookie, the box and the vouch, check they name this
    /// connection's keys, then ask the authorizer.
    fn on_initiate(&mut self, body: &[u8]) -> Result<(), CurveError> {
        let State::ExpectInitiate(hello) = &self.state else {
            return Ok(());
        };
        let initiate = Initiate::parse(body)?;

        let secretbox = XSalsa20Poly1305::new(self.cookie_key.as_ref().into());
        let cookie = open(
            &secretbox,
            &nonce(b"COOKIE--", &initiate.cookie[..16]),
            &initiate.cookie[16..],
            "cookie",
        )?;
        if !equal_ct(&cookie[..32], &hello.client_short)
            || !equal_ct(
                &cookie[32..64],
                Zeroizing::new(self.short_secret.to_bytes()).as_ref(),
            )
        {
            return Err(CurveError::CookieMismatch);
        }

        // libzmq does not compare INITIATE's nonce with HELLO's; its clients send 1 then
        // 2. We refuse one that does not increase.
        if initiate.nonce <= hello.nonce {
            return Err(CurveError::ReplayedNonce {
                command: "INITIATE",
                nonce: initiate.nonce,
                last: hello.nonce,
            });
        }
        let session = salsa_box(&hello.client_short, &self.short_secret);
        let plain = open(
            &session,
            &short_nonce(b"CurveZMQINITIATE", initiate.nonce),
            initiate.sealed,
            "INITIATE",
        )?;
        // At least 144 bytes sealed: at least 128 of plaintext.
        let mut client_key = [0u8; 32];
        client_key.copy_from_slice(&plain[..32]);
        let vouch = open(
            &salsa_box(&client_key, &self.short_secret),
            &nonce(b"VOUCH---", &plain[32..48]),
            &plain[48..128],
            "vouch",
        )?;
        // libzmq checks C'; we check S as well (a libzmq client puts it there).
        if !equal_ct(&vouch[..32], &hello.client_short)
            || !equal_ct(&vouch[32..64], &self.config.public_key)
        {
            return Err(CurveError::VouchMismatch);
        }
        let metadata = Bytes::copy_from_slice(&plain[128..]);
        let peer_nonce = initiate.nonce;
        self.state = State::Authorizing {
            client_key,
            metadata,
            session: Box::new(session),
            peer_nonce,
        };
        self.events.push_back(CurveEvent::Authorize { client_key });
        Ok(())
    }
}
