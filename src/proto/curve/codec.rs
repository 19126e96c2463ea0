//! The MESSAGE layer after the handshake: one box per MESSAGE, nonces strictly increasing
//! in each direction.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use crypto_box::aead::generic_array::GenericArray;
use crypto_box::aead::AeadInPlace;
use crypto_box::SalsaBox;

use super::command::{self, MAC_LEN, MESSAGE, MESSAGE_MIN_LEN};
use super::{short_nonce, CurveError, FLAG_COMMAND, FLAG_MORE};

/// Bytes a MESSAGE body adds to its payload: `07 "MESSAGE"`, the nonce, the MAC, the flags.
pub(crate) const MESSAGE_OVERHEAD: usize = MESSAGE_MIN_LEN;

/// An opened MESSAGE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plaintext {
    /// The flags byte, masked to the bits libzmq carries: [`FLAG_MORE`] and
    /// [`FLAG_COMMAND`].
    pub(crate) flags: u8,
    /// The payload after the flags byte.
    pub(crate) data: Bytes,
}

/// Seals and opens MESSAGE bodies with a connection's session box (C' and S'), after the
/// handshake (take it from the handshake core with `take_codec`).
///
/// [`encrypt`](Self::encrypt) gives a MESSAGE body for a plaintext (the caller frames it;
/// [`encrypt_frame`](Self::encrypt_frame) frames it as libzmq does);
/// [`decrypt`](Self::decrypt) opens a MESSAGE body: its nonce must be above the last one
/// accepted, and nothing of it is returned unless the box is authentic.
pub(crate) struct CurveCodec {
    session: SalsaBox,
    /// Prefix of the nonces we seal with, and of those we open with.
    encode_prefix: &'static [u8; 16],
    decode_prefix: &'static [u8; 16],
    /// The nonce of our next MESSAGE.
    next_nonce: u64,
    /// The last nonce accepted from the peer (its INITIATE's or READY's at first).
    peer_nonce: u64,
}

impl std::fmt::Debug for CurveCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurveCodec")
            .field("next_nonce", &self.next_nonce)
            .field("peer_nonce", &self.peer_nonce)
            .finish_non_exhaustive()
    }
}

impl CurveCodec {
    /// The MESSAGE layer of a client (`is_client`) or a server, sealing from `next_nonce`
    /// and accepting nonces above `peer_nonce`.
    pub(super) fn new(
        session: SalsaBox,
        is_client: bool,
        next_nonce: u64,
        peer_nonce: u64,
    ) -> Self {
        let (encode_prefix, decode_prefix) = if is_client {
            (b"CurveZMQMESSAGEC", b"CurveZMQMESSAGES")
        } else {
            (b"CurveZMQMESSAGES", b"CurveZMQMESSAGEC")
        };
        CurveCodec {
            session,
            encode_prefix,
            decode_prefix,
            next_nonce,
            peer_nonce,
        }
    }

    /// The nonce our next MESSAGE carries.
    #[cfg_attr(not(test), allow(dead_code))] // getters the tests use
    pub(crate) fn next_nonce(&self) -> u64 {
        self.next_nonce
    }

    /// The last nonce accepted from the peer.
    #[cfg_attr(not(test), allow(dead_code))] // getters the tests use
    pub(crate) fn peer_nonce(&self) -> u64 {
        self.peer_nonce
    }

    /// Length of the MESSAGE body for a `len`-byte payload.
    pub(crate) fn body_len(len: usize) -> usize {
        MESSAGE_OVERHEAD + len
    }

    /// Appends the MESSAGE body `07 "MESSAGE" | nonce | Box[flags + payload]` to `out`.
    ///
    /// # Errors
    /// [`CurveError::NonceExhausted`] after 2^64 - 2 messages: the connection must be
    /// re-established; [`CurveError::TooLarge`] past XSalsa20's limit. Nothing is
    /// appended then.
    pub(crate) fn encrypt(
        &mut self,
        flags: u8,
        payload: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), CurveError> {
        out.reserve(Self::body_len(payload.len()));
        self.encrypt_parts(flags, [payload], out)
    }

    /// As [`encrypt_frame`](Self::encrypt_frame), for a payload given in `parts` (copied
    /// once, into the box).
    ///
    /// # Errors
    /// As [`encrypt`](Self::encrypt).
    pub(crate) fn encrypt_frame_parts<'a, I>(
        &mut self,
        flags: u8,
        parts: I,
        out: &mut BytesMut,
    ) -> Result<(), CurveError>
    where
        I: IntoIterator<Item = &'a [u8]>,
        I::IntoIter: Clone,
    {
        if self.next_nonce == u64::MAX {
            return Err(CurveError::NonceExhausted);
        }
        let parts = parts.into_iter();
        let len = parts.clone().map(<[u8]>::len).sum();
        let start = out.len();
        crate::proto::zmtp::frame::encode_header(out, false, false, Self::body_len(len));
        self.encrypt_parts(flags, parts, out)
            .inspect_err(|_| out.truncate(start))
    }

    /// Appends the MESSAGE body for the payload in `parts`.
    fn encrypt_parts<'a>(
        &mut self,
        flags: u8,
        parts: impl IntoIterator<Item = &'a [u8]>,
        out: &mut BytesMut,
    ) -> Result<(), CurveError> {
        let nonce = self.next_nonce;
        if nonce == u64::MAX {
            return Err(CurveError::NonceExhausted);
        }
        self.next_nonce += 1;
        let start = out.len();
        out.extend_from_slice(MESSAGE);
        out.put_u64(nonce);
        let tag_at = out.len();
        out.put_bytes(0, MAC_LEN);
        out.put_u8(flags);
        for part in parts {
            out.extend_from_slice(part);
        }
        let full = short_nonce(self.encode_prefix, nonce);
        match self
            .session
            .encrypt_in_place_detached(&full, b"", &mut out[tag_at + MAC_LEN..])
        {
            Ok(tag) => {
                out[tag_at..tag_at + MAC_LEN].copy_from_slice(&tag);
                Ok(())
            }
            Err(_) => {
                let len = out.len() - tag_at - MAC_LEN - 1;
                out.truncate(start);
                Err(CurveError::TooLarge(len))
            }
        }
    }

    /// Appends a whole ZMTP frame carrying a MESSAGE, framed as libzmq frames it: flags
    /// `00` (neither MORE nor COMMAND: both travel inside the box).
    ///
    /// # Errors
    /// As [`encrypt`](Self::encrypt).
    pub(crate) fn encrypt_frame(
        &mut self,
        flags: u8,
        payload: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), CurveError> {
        if self.next_nonce == u64::MAX {
            return Err(CurveError::NonceExhausted);
        }
        let start = out.len();
        crate::proto::zmtp::frame::encode_header(out, false, false, Self::body_len(payload.len()));
        self.encrypt(flags, payload, out)
            .inspect_err(|_| out.truncate(start))
    }

    /// Opens a MESSAGE body (copying it once).
    ///
    /// # Errors
    /// As [`decrypt_in_place`](Self::decrypt_in_place).
    #[cfg_attr(not(test), allow(dead_code))] // getters the tests use
    pub(crate) fn decrypt(&mut self, body: &[u8]) -> Result<Plaintext, CurveError> {
        self.decrypt_in_place(BytesMut::from(body))
    }

    /// Opens a MESSAGE body in its own buffer, without copying: the payload is a slice of
    /// `body`.
    ///
    /// # Errors
    /// [`CurveError::UnexpectedCommand`] for another command, [`CurveError::WrongSize`]
    /// below 33 bytes, [`CurveError::ReplayedNonce`] for a nonce not above the last one,
    /// [`CurveError::BadBox`] when the box fails authentication (nothing of it is
    /// returned, and the last nonce is unchanged).
    pub(crate) fn decrypt_in_place(&mut self, body: BytesMut) -> Result<Plaintext, CurveError> {
        let (flags, data) = self.open_in_place(body)?;
        Ok(Plaintext {
            flags: flags & (FLAG_MORE | FLAG_COMMAND),
            data: data.freeze(),
        })
    }

    /// Opens a MESSAGE body in its own buffer, without copying: its flags byte as sent
    /// (unmasked) and the payload after it, still mutable.
    ///
    /// # Errors
    /// As [`decrypt_in_place`](Self::decrypt_in_place).
    pub(crate) fn open_in_place(
        &mut self,
        mut body: BytesMut,
    ) -> Result<(u8, BytesMut), CurveError> {
        let nonce = command::Message::parse(&body)?.nonce;
        if nonce <= self.peer_nonce {
            return Err(CurveError::ReplayedNonce {
                command: "MESSAGE",
                nonce,
                last: self.peer_nonce,
            });
        }
        body.advance(MESSAGE.len() + 8);
        let mut tag = [0u8; MAC_LEN];
        tag.copy_from_slice(&body[..MAC_LEN]);
        body.advance(MAC_LEN);
        let full = short_nonce(self.decode_prefix, nonce);
        if self
            .session
            .decrypt_in_place_detached(&full, b"", &mut body, GenericArray::from_slice(&tag))
            .is_err()
        {
            return Err(CurveError::BadBox("MESSAGE"));
        }
        self.peer_nonce = nonce;
        // At least one byte: the size check kept the flags byte.
        let flags = body[0];
        body.advance(1);
        Ok((flags, body))
    }
}
