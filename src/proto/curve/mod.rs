//! The CURVE security mechanism (ZMTP-CURVE, RFC 25, over CurveZMQ, RFC 26), as libzmq 4.3
//! implements it, as sans-IO cores.
//!
//! After a greeting whose mechanism is `CURVE`, the client core ([`CurveClient`]) and the
//! server core ([`CurveServer`]) exchange HELLO, WELCOME, INITIATE and READY (or ERROR) in
//! ZMTP command frames; each ends with a [`CurveCodec`], which seals and opens the
//! MESSAGE boxes that carry everything after the handshake. docs/PROTOCOL.md, section
//! "CURVE", has the bytes.
//!
//! Nothing here draws randomness or reads the clock: short-term keys, the cookie key and
//! the random nonce parts are passed in ([`ClientRandom`], [`ServerRandom`]), and the
//! long-term keys are the caller's. Every box is authenticated before a byte of it is
//! used; every length is checked before it is read; handshake frames are refused above
//! [`MAX_HANDSHAKE_COMMAND`] before anything waits for them.

mod client;
mod codec;
mod command;
mod server;
pub(crate) mod z85;

#[cfg(test)]
mod tests;

use bytes::BytesMut;
use crypto_box::aead::generic_array::GenericArray;
use crypto_box::aead::AeadInPlace;
use crypto_box::SalsaBox;
use zeroize::Zeroizing;

pub(crate) use client::{ClientConfig, ClientRandom, CurveClient};
#[cfg(test)]
pub(crate) use codec::Plaintext;
pub(crate) use codec::{CurveCodec, MESSAGE_OVERHEAD};
pub(crate) use server::{CurveServer, ServerConfig, ServerRandom};

use super::zmtp::frame::FrameError;

/// Longest handshake command accepted (INITIATE with its metadata is the only one that
/// varies); larger ones are refused from their frame header.
pub(crate) const MAX_HANDSHAKE_COMMAND: u64 = 64 * 1024;

/// Bit of a MESSAGE's flags byte: another frame of the same message follows.
pub(crate) const FLAG_MORE: u8 = 0x01;
/// Bit of a MESSAGE's flags byte: the payload is a ZMTP command (SUBSCRIBE, CANCEL, PING...).
pub(crate) const FLAG_COMMAND: u8 = 0x02;

/// The status code a refused client gets in ERROR (ZAP's "400": authentication failed),
/// which libzmq reports as an authentication failure.
pub(crate) const REFUSED_STATUS: &str = "400";

/// A 32-byte Curve25519 key as bytes (public keys; secrets are [`crypto_box::SecretKey`]).
pub(crate) type KeyBytes = [u8; 32];

/// What a CURVE core refused, and why the connection must close.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CurveError {
    /// A command other than the one the handshake is at (or an unknown one).
    #[error("expected a CURVE {expected} command, got {got:?}")]
    UnexpectedCommand {
        /// The command the state machine waits for.
        expected: &'static str,
        /// The name the peer sent.
        got: String,
    },
    /// A command whose size its layout does not allow.
    #[error("CURVE {command} of {size} bytes, it must be {expected} {limit}")]
    WrongSize {
        /// The command.
        command: &'static str,
        /// Its size.
        size: usize,
        /// `"exactly"` or `"at least"`.
        expected: &'static str,
        /// The size required.
        limit: usize,
    },
    /// A HELLO with a CurveZMQ version other than 1.0.
    #[error("CURVE HELLO has version {major}.{minor}, only 1.0 is known")]
    Version {
        /// Major version sent.
        major: u8,
        /// Minor version sent.
        minor: u8,
    },
    /// A box that failed authentication: forged, modified, or sealed with other keys.
    #[error("CURVE {0} box failed authentication{hint}", hint = bad_box_hint(.0))]
    BadBox(&'static str),
    /// The cookie in INITIATE opened but is not this connection's.
    #[error("CURVE INITIATE carries a cookie of another connection")]
    CookieMismatch,
    /// The vouch in INITIATE opened but names other keys than this connection's.
    #[error("CURVE INITIATE vouch does not name this connection's keys")]
    VouchMismatch,
    /// A nonce not above the last one from the same peer: a replayed or reordered box.
    #[error("CURVE {command} nonce {nonce} is not above the last nonce {last}")]
    ReplayedNonce {
        /// The command that carried it.
        command: &'static str,
        /// The nonce received.
        nonce: u64,
        /// The last nonce accepted from this peer.
        last: u64,
    },
    /// A handshake command in a frame without the COMMAND flag.
    #[error("CURVE handshake command sent in a message frame")]
    NotACommand,
    /// The handshake frame's header was refused (too large, reserved flags).
    #[error("CURVE handshake frame: {0}")]
    Frame(#[from] FrameError),
    /// The peer sent ERROR and will close the connection.
    #[error("CURVE peer sent ERROR: {reason}")]
    Peer {
        /// The peer's reason (libzmq sends a ZAP status code, e.g. `400`).
        reason: String,
    },
    /// We refused the client's long-term key (the authorizer said no).
    #[error("CURVE client key {client_key} refused by the authorizer")]
    Refused {
        /// The client's long-term public key, in Z85.
        client_key: String,
    },
    /// Our nonce counter reached its end: the connection must be re-established.
    #[error("CURVE nonce counter exhausted")]
    NonceExhausted,
    /// A plaintext too large for one box (XSalsa20's limit, 256 GiB).
    #[error("CURVE plaintext of {0} bytes is too large for one box")]
    TooLarge(usize),
}

/// The hint a failed box gives about its likely cause.
fn bad_box_hint(which: &str) -> &'static str {
    match which {
        "HELLO" => " (the client uses another server key?)",
        "WELCOME" => " (wrong server key?)",
        _ => "",
    }
}

/// The 24-byte nonce: a prefix and the rest.
fn nonce(prefix: &[u8], tail: &[u8]) -> crypto_box::Nonce {
    let mut n = GenericArray::default();
    n[..prefix.len()].copy_from_slice(prefix);
    n[prefix.len()..].copy_from_slice(tail);
    n
}

/// The 24-byte nonce of a 16-byte prefix and a short (counter) nonce.
fn short_nonce(prefix: &[u8; 16], counter: u64) -> crypto_box::Nonce {
    nonce(prefix, &counter.to_be_bytes())
}

/// Appends Box[plaintext] (tag first, then the ciphertext, as NaCl's `crypto_box_easy`).
fn seal<A: AeadInPlace>(
    cipher: &A,
    nonce: &GenericArray<u8, A::NonceSize>,
    plaintext: &[u8],
    out: &mut Vec<u8>,
) {
    let at = out.len();
    out.extend_from_slice(&[0; command::MAC_LEN]);
    out.extend_from_slice(plaintext);
    // Encryption fails only for messages beyond 2^38 bytes, which no caller builds.
    if let Ok(tag) = cipher.encrypt_in_place_detached(nonce, b"", &mut out[at + command::MAC_LEN..])
    {
        out[at..at + command::MAC_LEN].copy_from_slice(&tag);
    }
}

/// Opens Box[...] (tag first); the plaintext only if the box is authentic. `which` names
/// the box in the error.
fn open<A: AeadInPlace>(
    cipher: &A,
    nonce: &GenericArray<u8, A::NonceSize>,
    sealed: &[u8],
    which: &'static str,
) -> Result<Zeroizing<Vec<u8>>, CurveError> {
    let Some((tag, ciphertext)) = sealed.split_at_checked(command::MAC_LEN) else {
        return Err(CurveError::BadBox(which));
    };
    let mut plain = Zeroizing::new(ciphertext.to_vec());
    cipher
        .decrypt_in_place_detached(nonce, b"", &mut plain, GenericArray::from_slice(tag))
        .map_err(|_| CurveError::BadBox(which))?;
    Ok(plain)
}

/// The box of a key pair: the X25519 shared secret, computed once.
fn salsa_box(public: &KeyBytes, secret: &crypto_box::SecretKey) -> SalsaBox {
    SalsaBox::new(&crypto_box::PublicKey::from(*public), secret)
}

/// Compares two byte strings without stopping at the first difference.
fn equal_ct(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Appends a handshake command as a ZMTP command frame.
fn put_command_frame(out: &mut BytesMut, body: &[u8]) {
    super::zmtp::frame::encode_header(out, false, true, body.len());
    out.extend_from_slice(body);
}

/// Moves the next queued handshake command into `out` as a ZMTP command frame; `false` when
/// none waits (the client's and the server's `poll_transmit`).
fn transmit_next(queue: &mut std::collections::VecDeque<Vec<u8>>, out: &mut BytesMut) -> bool {
    match queue.pop_front() {
        Some(body) => {
            put_command_frame(out, &body);
            true
        }
        None => false,
    }
}

/// Something the owner of a CURVE handshake core must react to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CurveEvent {
    /// Server only: a client proved it holds this long-term key and wants in. Answer
    /// with [`CurveServer::accept`] or [`CurveServer::refuse`]; nothing more happens
    /// until then.
    Authorize {
        /// The client's long-term public key (C).
        client_key: KeyBytes,
    },
    /// The handshake is complete on our side: take the [`CurveCodec`] with `take_codec`
    /// (after writing what `poll_transmit` still has: a server's READY).
    Ready {
        /// The peer's metadata: ZMTP properties (`Socket-Type`, `Identity`...), as sent,
        /// authenticated but not parsed.
        metadata: bytes::Bytes,
        /// The peer's long-term public key (the server's S, or the client's C).
        peer_key: KeyBytes,
    },
}
