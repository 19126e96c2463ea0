//! CURVE keys: the long-term Curve25519 key pairs that authenticate and encrypt
//! connections (ZMTP-CURVE, RFC 25, interoperable with libzmq).
//!
//! A server has a [`KeyPair`] and publishes its [`PublicKey`]; a client needs that public
//! key (it trusts nothing else) and a key pair of its own, which the server may check
//! against a list of allowed clients. Keys are written as 40 characters of Z85
//! (ZeroMQ RFC 32), the form libzmq's `curve_keygen` and pyzmq's `zmq.curve_keypair()`
//! print; [`Display`](std::fmt::Display) and [`FromStr`] convert both ways.
//!
//! ```
//! use zocket::curve::{KeyPair, PublicKey, SecretKey};
//!
//! let server = KeyPair::generate();
//! let text = server.public().to_string();        // 40 Z85 characters, safe to publish
//! let public: PublicKey = text.parse().unwrap();
//! assert_eq!(&public, server.public());
//!
//! // A secret key from its Z85 text (e.g. read from a file): its public key is derived.
//! let secret: SecretKey = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6".parse().unwrap();
//! let pair = KeyPair::from_secret(secret);
//! assert_eq!(pair.public().to_string(), "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7");
//! // Debug never shows a secret.
//! assert!(!format!("{pair:?}").contains("JTKVSB"));
//! ```

use std::fmt;
use std::str::FromStr;

use crypto_box::aead::rand_core::RngCore;
use crypto_box::aead::OsRng;

use crate::proto::curve::z85::{self, Z85Error};
use crate::proto::curve::{ClientRandom, ServerRandom};

#[cfg(test)]
mod interop_tests;

/// A Curve25519 public key: a server's identity that clients trust, or a client's that a
/// server may allow.
///
/// [`Display`](fmt::Display) writes its 40-character Z85 text, [`FromStr`] reads it.
///
/// ```
/// let key: zocket::curve::PublicKey = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7".parse()?;
/// assert_eq!(key.as_bytes()[0], 84);
/// # Ok::<(), zocket::curve::ParseKeyError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// The key of these 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> PublicKey {
        PublicKey(bytes)
    }

    /// The key's 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for PublicKey {
    /// The 40-character Z85 text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&z85::encode_key(&self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = ParseKeyError;

    /// Reads a 40-character Z85 text (surrounding whitespace is ignored).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(PublicKey(parse_z85(text)?))
    }
}

/// A Curve25519 secret key: wiped from memory when dropped, never shown by `Debug`.
///
/// [`Display`](fmt::Display) does write its Z85 text (to store it, as `zocket keygen`
/// prints it): keep that text as secret as the key. [`FromStr`] reads it.
///
/// ```
/// let secret = zocket::curve::SecretKey::generate();
/// assert_eq!(format!("{secret:?}"), "SecretKey(<redacted>)");
/// let again: zocket::curve::SecretKey = secret.to_string().parse()?;
/// assert_eq!(again.public_key(), secret.public_key());
/// # Ok::<(), zocket::curve::ParseKeyError>(())
/// ```
#[derive(Clone)]
pub struct SecretKey(crypto_box::SecretKey);

impl SecretKey {
    /// A new random secret key, from the operating system's random source.
    pub fn generate() -> SecretKey {
        SecretKey(crypto_box::SecretKey::generate(&mut OsRng))
    }

    /// The key of these 32 bytes (any 32 bytes are a valid key).
    pub fn from_bytes(bytes: [u8; 32]) -> SecretKey {
        SecretKey(crypto_box::SecretKey::from(bytes))
    }

    /// The public key that belongs to this secret key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(*self.0.public_key().as_bytes())
    }

    /// The key as the CURVE core uses it.
    pub(crate) fn as_crypto(&self) -> &crypto_box::SecretKey {
        &self.0
    }
}

impl PartialEq for SecretKey {
    /// Compares in constant time.
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for SecretKey {}

impl fmt::Display for SecretKey {
    /// The 40-character Z85 text: as secret as the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = zeroize::Zeroizing::new(self.0.to_bytes());
        let text = zeroize::Zeroizing::new(z85::encode_key(&bytes));
        f.write_str(&text)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl FromStr for SecretKey {
    type Err = ParseKeyError;

    /// Reads a 40-character Z85 text (surrounding whitespace is ignored).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bytes = zeroize::Zeroizing::new(parse_z85(text)?);
        Ok(SecretKey::from_bytes(*bytes))
    }
}

/// A secret key and its public key.
///
/// ```
/// let pair = zocket::curve::KeyPair::generate();
/// assert_eq!(pair.secret().public_key(), *pair.public());
/// println!("public: {}", pair.public());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPair {
    public: PublicKey,
    secret: SecretKey,
}

impl KeyPair {
    /// A new random key pair, from the operating system's random source.
    pub fn generate() -> KeyPair {
        KeyPair::from_secret(SecretKey::generate())
    }

    /// The pair of this secret key (its public key is derived).
    pub fn from_secret(secret: SecretKey) -> KeyPair {
        KeyPair {
            public: secret.public_key(),
            secret,
        }
    }

    /// The public key: safe to publish.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The secret key.
    pub fn secret(&self) -> &SecretKey {
        &self.secret
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &self.public)
            .field("secret", &self.secret)
            .finish()
    }
}

/// A text that is not the Z85 form of a 32-byte key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseKeyError {
    /// A key is 40 Z85 characters.
    #[error("a CURVE key is 40 Z85 characters, this one has {len}")]
    Length {
        /// Characters given (after trimming whitespace).
        len: usize,
    },
    /// A character outside the Z85 alphabet (RFC 32).
    #[error("{ch:?} at position {pos} is not a Z85 character (is this a CURVE key?)")]
    Character {
        /// Position of the character, from 0.
        pos: usize,
        /// The character.
        ch: char,
    },
    /// Five characters whose value is above what 4 bytes hold.
    #[error("the 5 characters at position {pos} are not valid Z85 (value above 2^32 - 1)")]
    Overflow {
        /// Position of the first of the five characters.
        pos: usize,
    },
}

/// Decodes a key's Z85 text, ignoring surrounding whitespace (a line read from a file).
fn parse_z85(text: &str) -> Result<[u8; 32], ParseKeyError> {
    z85::decode_key(text.trim()).map_err(|e| match e {
        Z85Error::Length(len) => ParseKeyError::Length { len },
        Z85Error::Character { pos, ch } => ParseKeyError::Character { pos, ch },
        Z85Error::Overflow { pos } => ParseKeyError::Overflow { pos },
    })
}

/// Decides which clients a CURVE server accepts, by their long-term public key (the key
/// each client proved it holds during the handshake).
///
/// Give one to [`Options::curve_authorizer`](crate::Options::curve_authorizer); an
/// [`AllowList`] is the common case ([`Options::curve_allow`](crate::Options::curve_allow)),
/// and any `Fn(&PublicKey) -> bool` is an authorizer too, for anything else (a database, a
/// file that is re-read). It is called once per handshake, on the connection's task: keep it
/// fast (look up something in memory; refresh it elsewhere).
///
/// ```
/// use zocket::curve::{KeyPair, PublicKey};
/// let server = KeyPair::generate();
/// let opts = zocket::Options::new()
///     .curve_server(server.secret().clone())
///     .curve_authorizer(|client: &PublicKey| client.as_bytes()[0] != 0);
/// # let _ = opts;
/// ```
pub trait Authorizer: Send + Sync + 'static {
    /// Whether the client with this long-term public key may connect. A refused client
    /// gets an ERROR (status `400`) and the connection closes.
    fn authorize(&self, client: &PublicKey) -> bool;
}

impl<F> Authorizer for F
where
    F: Fn(&PublicKey) -> bool + Send + Sync + 'static,
{
    fn authorize(&self, client: &PublicKey) -> bool {
        self(client)
    }
}

/// An [`Authorizer`] that accepts the clients whose public keys it holds, and no other.
///
/// ```
/// use zocket::curve::{AllowList, Authorizer, KeyPair};
/// let alice = KeyPair::generate();
/// let list: AllowList = [*alice.public()].into_iter().collect();
/// assert!(list.authorize(alice.public()));
/// assert!(!list.authorize(KeyPair::generate().public()));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(std::collections::HashSet<PublicKey>);

impl AllowList {
    /// An empty list (which refuses everyone).
    pub fn new() -> AllowList {
        AllowList::default()
    }

    /// Adds a client key.
    pub fn insert(&mut self, key: PublicKey) {
        self.0.insert(key);
    }

    /// Whether the list holds `key`.
    pub fn contains(&self, key: &PublicKey) -> bool {
        self.0.contains(key)
    }
}

impl FromIterator<PublicKey> for AllowList {
    fn from_iter<I: IntoIterator<Item = PublicKey>>(keys: I) -> Self {
        AllowList(keys.into_iter().collect())
    }
}

impl Authorizer for AllowList {
    fn authorize(&self, client: &PublicKey) -> bool {
        self.contains(client)
    }
}

/// Fresh random bytes from the operating system for one client connection's handshake
/// (the sans-IO core draws none itself).
pub(crate) fn client_random() -> ClientRandom {
    let mut random = ClientRandom {
        short_secret: [0; 32],
        vouch_nonce: [0; 16],
    };
    OsRng.fill_bytes(&mut random.short_secret);
    OsRng.fill_bytes(&mut random.vouch_nonce);
    random
}

/// Fresh random bytes from the operating system for one server connection's handshake:
/// its short-term key, its own cookie key, and the random nonce parts.
pub(crate) fn server_random() -> ServerRandom {
    let mut random = ServerRandom {
        short_secret: [0; 32],
        cookie_key: [0; 32],
        cookie_nonce: [0; 16],
        welcome_nonce: [0; 16],
    };
    OsRng.fill_bytes(&mut random.short_secret);
    OsRng.fill_bytes(&mut random.cookie_key);
    OsRng.fill_bytes(&mut random.cookie_nonce);
    OsRng.fill_bytes(&mut random.welcome_nonce);
    random
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libzmq_test_secrets_derive_the_public_keys_libzmq_prints() {
        // The key pairs of libzmq's tests/testutil_security (public keys as pyzmq's
        // zmq.curve_public computes them from the secrets).
        for (secret, public) in [
            (
                "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6",
                "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7",
            ),
            (
                "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs",
                "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID",
            ),
        ] {
            let secret: SecretKey = secret.parse().unwrap();
            assert_eq!(secret.public_key().to_string(), public);
            let pair = KeyPair::from_secret(secret.clone());
            assert_eq!(pair.public().to_string(), public);
            assert_eq!(pair.secret(), &secret);
        }
    }

    #[test]
    fn generated_pairs_differ_and_round_trip_through_z85() {
        let a = KeyPair::generate();
        let b = KeyPair::generate();
        assert_ne!(a.public(), b.public());
        let secret: SecretKey = a.secret().to_string().parse().unwrap();
        assert_eq!(&secret, a.secret());
        let public: PublicKey = format!(" {}\n", a.public()).parse().unwrap();
        assert_eq!(&public, a.public());
    }

    #[test]
    fn debug_shows_public_keys_and_never_secrets() {
        let pair =
            KeyPair::from_secret("JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6".parse().unwrap());
        let shown = format!("{pair:?} {:?} {:#?}", pair.secret(), pair);
        assert!(shown.contains("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"));
        assert!(!shown.contains("JTKVSB"));
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn bad_texts_are_refused_with_what_is_wrong() {
        assert_eq!(
            "short".parse::<PublicKey>(),
            Err(ParseKeyError::Length { len: 5 })
        );
        let text = format!("{}~{}", "0".repeat(12), "0".repeat(27));
        let err = text.parse::<SecretKey>().unwrap_err();
        assert_eq!(err, ParseKeyError::Character { pos: 12, ch: '~' });
        assert!(err.to_string().contains("not a Z85 character"));
        let text = format!("#####{}", "0".repeat(35));
        assert_eq!(
            text.parse::<PublicKey>(),
            Err(ParseKeyError::Overflow { pos: 0 })
        );
    }
}
