//! The 64-byte ZMTP 3.x greeting, which every zocket connection over a byte stream opens with.
//!
//! zocket sends a valid ZMTP 3.1 greeting (mechanism NULL) whose filler carries the marker
//! `ZOCKET` and the native protocol's version. libzmq ignores the filler, so a libzmq peer
//! sees an ordinary ZMTP peer; a zocket peer sees the marker and both sides switch to the
//! native multiplexed wire right after the greeting. See `docs/PROTOCOL.md`.

use std::fmt;

/// Length of a ZMTP 3.x greeting.
pub(crate) const GREETING_LEN: usize = 64;

/// The zocket marker placed at the start of the filler.
pub(crate) const MARKER: &[u8; 6] = b"ZOCKET";

/// Native protocol version spoken by this build.
pub(crate) const NATIVE_VERSION: (u8, u8) = (1, 0);

/// Signature as libzmq sends it: 0xFF, 8 padding bytes (libzmq puts 1 in the last), 0x7F.
const SIGNATURE: [u8; 10] = [0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0x7F];

const MECHANISM_OFFSET: usize = 12;
const MECHANISM_LEN: usize = 20;
const AS_SERVER_OFFSET: usize = 32;
const FILLER_OFFSET: usize = 33;

/// A decoded greeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Greeting {
    /// ZMTP version (major, minor) the peer announced.
    pub(crate) version: (u8, u8),
    /// Security mechanism name, e.g. `NULL`.
    pub(crate) mechanism: Mechanism,
    /// The as-server flag (meaningful for PLAIN and CURVE only).
    pub(crate) as_server: bool,
    /// `Some((major, minor))` when the peer is zocket and speaks that native version.
    pub(crate) native: Option<(u8, u8)>,
}

/// A ZMTP mechanism name, as the 20 bytes of the greeting hold it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mechanism([u8; MECHANISM_LEN]);

impl Mechanism {
    /// The NULL mechanism (no security).
    pub(crate) const NULL: Mechanism = Mechanism(*b"NULL\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
    /// The CURVE mechanism (ZMTP-CURVE, RFC 25): encrypted and authenticated.
    pub(crate) const CURVE: Mechanism = Mechanism(*b"CURVE\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0");

    /// The name without its zero padding.
    pub(crate) fn name(&self) -> &[u8] {
        let end = self.0.iter().position(|&b| b == 0).unwrap_or(MECHANISM_LEN);
        &self.0[..end]
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.name()))
    }
}

impl fmt::Debug for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.name()))
    }
}

/// Why a greeting was not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum GreetingError {
    /// The first ten bytes are not a ZMTP 3.x signature.
    #[error("not a ZMTP greeting (bad signature)")]
    BadSignature,
    /// ZMTP 1.0 / 2.0, which zocket does not speak.
    #[error("unsupported ZMTP version {0}.{1} (zocket speaks 3.0 and 3.1)")]
    UnsupportedVersion(u8, u8),
}

impl Greeting {
    /// The greeting zocket sends: ZMTP 3.1, NULL, not as-server, with the zocket marker.
    pub(crate) fn zocket() -> Greeting {
        Greeting {
            version: (3, 1),
            mechanism: Mechanism::NULL,
            as_server: false,
            native: Some(NATIVE_VERSION),
        }
    }

    /// The greeting of a CURVE socket: ZMTP 3.1, CURVE, `as_server` for the CURVE server
    /// (RFC 23; libzmq sends 0 whatever its role and ignores ours), without the zocket
    /// marker: a zocket socket that offers the native wire adds it (two zocket peers then
    /// run the native wire inside CURVE boxes; docs/PROTOCOL.md section 7).
    pub(crate) fn curve(as_server: bool) -> Greeting {
        Greeting {
            version: (3, 1),
            mechanism: Mechanism::CURVE,
            as_server,
            native: None,
        }
    }

    /// Encodes the greeting into its 64 bytes.
    pub(crate) fn encode(&self) -> [u8; GREETING_LEN] {
        let mut out = [0u8; GREETING_LEN];
        out[..10].copy_from_slice(&SIGNATURE);
        out[10] = self.version.0;
        out[11] = self.version.1;
        out[MECHANISM_OFFSET..MECHANISM_OFFSET + MECHANISM_LEN].copy_from_slice(&self.mechanism.0);
        out[AS_SERVER_OFFSET] = u8::from(self.as_server);
        if let Some((major, minor)) = self.native {
            let f = FILLER_OFFSET;
            out[f..f + MARKER.len()].copy_from_slice(MARKER);
            out[f + MARKER.len()] = major;
            out[f + MARKER.len() + 1] = minor;
        }
        out
    }

    /// Decodes 64 bytes received from a peer.
    ///
    /// # Errors
    /// [`GreetingError`] when the bytes are not a ZMTP 3.x greeting.
    pub(crate) fn decode(bytes: &[u8; GREETING_LEN]) -> Result<Greeting, GreetingError> {
        // libzmq's own test: first byte 0xFF and the low bit of byte 9 set.
        if bytes[0] != 0xFF || bytes[9] & 1 == 0 {
            return Err(GreetingError::BadSignature);
        }
        let version = (bytes[10], bytes[11]);
        if version.0 < 3 {
            return Err(GreetingError::UnsupportedVersion(version.0, version.1));
        }
        let mut mechanism = [0u8; MECHANISM_LEN];
        mechanism.copy_from_slice(&bytes[MECHANISM_OFFSET..MECHANISM_OFFSET + MECHANISM_LEN]);
        let f = FILLER_OFFSET;
        let native = (&bytes[f..f + MARKER.len()] == MARKER)
            .then(|| (bytes[f + MARKER.len()], bytes[f + MARKER.len() + 1]));
        Ok(Greeting {
            version,
            mechanism: Mechanism(mechanism),
            as_server: bytes[AS_SERVER_OFFSET] != 0,
            native,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zocket_greeting_round_trips_and_carries_marker() {
        let g = Greeting::zocket();
        let bytes = g.encode();
        assert_eq!(bytes[0], 0xFF);
        assert_eq!(&bytes[..10], &SIGNATURE);
        assert_eq!(&bytes[12..16], b"NULL");
        assert_eq!(&bytes[33..39], b"ZOCKET");
        assert_eq!(Greeting::decode(&bytes), Ok(g));
    }

    #[test]
    fn plain_zmtp_greeting_has_no_native_version() {
        let mut g = Greeting::zocket();
        g.native = None;
        let decoded = Greeting::decode(&g.encode()).unwrap();
        assert_eq!(decoded.native, None);
        assert_eq!(decoded.mechanism.name(), b"NULL");
    }

    #[test]
    fn a_curve_greeting_names_curve_says_as_server_and_has_no_marker() {
        let bytes = Greeting::curve(true).encode();
        assert_eq!(&bytes[12..32], b"CURVE\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
        assert_eq!(bytes[32], 1);
        assert_ne!(&bytes[33..39], MARKER);
        let decoded = Greeting::decode(&bytes).unwrap();
        assert_eq!(decoded.mechanism, Mechanism::CURVE);
        assert_eq!(decoded.mechanism.to_string(), "CURVE");
        assert!(decoded.as_server);
        assert_eq!(decoded.native, None);
        assert!(
            !Greeting::decode(&Greeting::curve(false).encode())
                .unwrap()
                .as_server
        );
    }

    #[test]
    fn old_versions_and_bad_signatures_are_refused() {
        let mut bytes = Greeting::zocket().encode();
        bytes[10] = 2;
        assert_eq!(
            Greeting::decode(&bytes),
            Err(GreetingError::UnsupportedVersion(2, 1))
        );
        let mut bytes = Greeting::zocket().encode();
        bytes[9] = 0x7E;
        assert_eq!(Greeting::decode(&bytes), Err(GreetingError::BadSignature));
    }
}
