//! The byte layouts of the CURVE commands (RFC 25/26 as libzmq 4.3 writes them).
//!
//! Every parser checks the name and the exact or minimum size before it reads a byte
//! past them, and returns views into the body: nothing is allocated here.
//!
//! ```text
//! HELLO    (200)  05 "HELLO" | 01 00 | 72 x 00 | C' (32) | nonce (8) | box (80)
//! WELCOME  (168)  07 "WELCOME" | nonce (16) | box (144)
//! INITIATE (257+) 08 "INITIATE" | cookie (96) | nonce (8) | box (144 + metadata)
//! READY    (30+)  05 "READY" | nonce (8) | box (16 + metadata)
//! ERROR    (7+)   05 "ERROR" | reason-length (1) | reason
//! MESSAGE  (33+)  07 "MESSAGE" | nonce (8) | box (16 + 1 + payload)
//! ```

use super::CurveError;

/// Name fields (with their length byte) of the commands.
pub(super) const HELLO: &[u8] = b"\x05HELLO";
pub(super) const WELCOME: &[u8] = b"\x07WELCOME";
pub(super) const INITIATE: &[u8] = b"\x08INITIATE";
pub(super) const READY: &[u8] = b"\x05READY";
pub(super) const ERROR: &[u8] = b"\x05ERROR";
pub(super) const MESSAGE: &[u8] = b"\x07MESSAGE";

/// Sizes of the fixed-size commands and the minimum sizes of the others.
pub(super) const HELLO_LEN: usize = 200;
pub(super) const WELCOME_LEN: usize = 168;
pub(super) const INITIATE_MIN_LEN: usize = 257;
pub(super) const READY_MIN_LEN: usize = 30;
pub(super) const ERROR_MIN_LEN: usize = 7;
/// `07 "MESSAGE"`, the short nonce, the MAC and the flags byte.
pub(super) const MESSAGE_MIN_LEN: usize = MESSAGE.len() + 8 + MAC_LEN + 1;

/// Bytes a box adds to its plaintext (the Poly1305 tag, first on the wire).
pub(super) const MAC_LEN: usize = 16;
/// Size of a cookie: the 16-byte nonce and the secretbox of C' and s' (64 + 16).
pub(super) const COOKIE_LEN: usize = 96;

/// A HELLO: the client's short-term key and the box proving it knows the server's key.
#[derive(Debug)]
pub(super) struct Hello<'a> {
    /// CurveZMQ version, major and minor (1.0).
    pub(super) version: [u8; 2],
    /// C', the client's short-term public key.
    pub(super) client_short: [u8; 32],
    /// The short nonce (after `CurveZMQHELLO---`).
    pub(super) nonce: u64,
    /// Box[64 zero bytes](C' -> S), tag first.
    pub(super) signature: &'a [u8],
}

/// A WELCOME: Box[S' + cookie](S -> C').
#[derive(Debug)]
pub(super) struct Welcome<'a> {
    /// The long nonce (after `WELCOME-`).
    pub(super) nonce: [u8; 16],
    /// The box, tag first (144 bytes).
    pub(super) sealed: &'a [u8],
}

/// An INITIATE: the cookie back, and Box[C + vouch + metadata](C' -> S').
#[derive(Debug)]
pub(super) struct Initiate<'a> {
    /// The cookie of the WELCOME, as sent.
    pub(super) cookie: &'a [u8],
    /// The short nonce (after `CurveZMQINITIATE`).
    pub(super) nonce: u64,
    /// The box, tag first (at least 144 bytes).
    pub(super) sealed: &'a [u8],
}

/// A READY: Box[metadata](S' -> C').
#[derive(Debug)]
pub(super) struct Ready<'a> {
    /// The short nonce (after `CurveZMQREADY---`).
    pub(super) nonce: u64,
    /// The box, tag first (at least 16 bytes).
    pub(super) sealed: &'a [u8],
}

/// A MESSAGE: Box[flags + payload](C' -> S' or S' -> C').
#[derive(Debug)]
pub(super) struct Message {
    /// The short nonce (after `CurveZMQMESSAGEC` or `CurveZMQMESSAGES`); the box follows
    /// it (the codec opens it in place).
    pub(super) nonce: u64,
}

/// The command's name, for error texts (lossy, at most 255 bytes), or `"(empty)"`.
pub(super) fn name_of(body: &[u8]) -> String {
    match body.split_first() {
        None => "(empty)".to_string(),
        Some((&len, rest)) => {
            let name = &rest[..rest.len().min(usize::from(len))];
            String::from_utf8_lossy(name).into_owned()
        }
    }
}

/// Whether `body` is the command `name` (its length byte and name match; as libzmq
/// compares them).
pub(super) fn is(body: &[u8], name: &[u8]) -> bool {
    body.starts_with(name)
}

/// Refuses `body` unless it is the command `name`.
fn expect(body: &[u8], name: &'static [u8]) -> Result<(), CurveError> {
    if is(body, name) {
        Ok(())
    } else {
        Err(CurveError::UnexpectedCommand {
            expected: command_str(name),
            got: name_of(body),
        })
    }
}

/// The printable name of a name field (`b"\x05HELLO"` -> `"HELLO"`).
pub(super) fn command_str(name: &'static [u8]) -> &'static str {
    std::str::from_utf8(&name[1..]).unwrap_or("?")
}

/// Refuses a size outside what `name` allows.
fn size(body: &[u8], name: &'static [u8], min: usize, exact: bool) -> Result<(), CurveError> {
    if body.len() < min || (exact && body.len() != min) {
        return Err(CurveError::WrongSize {
            command: command_str(name),
            size: body.len(),
            expected: if exact { "exactly" } else { "at least" },
            limit: min,
        });
    }
    Ok(())
}

/// Reads the 8-byte big-endian short nonce at `at` (the caller has checked the size).
fn short_nonce(body: &[u8], at: usize) -> u64 {
    let mut n = [0u8; 8];
    n.copy_from_slice(&body[at..at + 8]);
    u64::from_be_bytes(n)
}

impl<'a> Hello<'a> {
    /// Parses a HELLO body.
    pub(super) fn parse(body: &'a [u8]) -> Result<Self, CurveError> {
        expect(body, HELLO)?;
        size(body, HELLO, HELLO_LEN, true)?;
        let mut client_short = [0u8; 32];
        client_short.copy_from_slice(&body[80..112]);
        Ok(Hello {
            version: [body[6], body[7]],
            client_short,
            nonce: short_nonce(body, 112),
            signature: &body[120..200],
        })
    }
}

impl<'a> Welcome<'a> {
    /// Parses a WELCOME body.
    pub(super) fn parse(body: &'a [u8]) -> Result<Self, CurveError> {
        expect(body, WELCOME)?;
        size(body, WELCOME, WELCOME_LEN, true)?;
        let mut nonce = [0u8; 16];
        nonce.copy_from_slice(&body[8..24]);
        Ok(Welcome {
            nonce,
            sealed: &body[24..168],
        })
    }
}

impl<'a> Initiate<'a> {
    /// Parses an INITIATE body.
    pub(super) fn parse(body: &'a [u8]) -> Result<Self, CurveError> {
        expect(body, INITIATE)?;
        size(body, INITIATE, INITIATE_MIN_LEN, false)?;
        Ok(Initiate {
            cookie: &body[9..105],
            nonce: short_nonce(body, 105),
            sealed: &body[113..],
        })
    }
}

impl<'a> Ready<'a> {
    /// Parses a READY body.
    pub(super) fn parse(body: &'a [u8]) -> Result<Self, CurveError> {
        expect(body, READY)?;
        size(body, READY, READY_MIN_LEN, false)?;
        Ok(Ready {
            nonce: short_nonce(body, 6),
            sealed: &body[14..],
        })
    }
}

impl Message {
    /// Parses a MESSAGE body.
    pub(super) fn parse(body: &[u8]) -> Result<Self, CurveError> {
        expect(body, MESSAGE)?;
        size(body, MESSAGE, MESSAGE_MIN_LEN, false)?;
        Ok(Message {
            nonce: short_nonce(body, 8),
        })
    }
}

/// The reason of an ERROR body (bytes after the reason are ignored, as libzmq does).
pub(super) fn parse_error(body: &[u8]) -> Result<String, CurveError> {
    expect(body, ERROR)?;
    size(body, ERROR, ERROR_MIN_LEN, false)?;
    let len = usize::from(body[6]);
    let reason = body.get(7..7 + len).ok_or(CurveError::WrongSize {
        command: "ERROR",
        size: body.len(),
        expected: "at least",
        limit: 7 + len,
    })?;
    Ok(String::from_utf8_lossy(reason).into_owned())
}

/// Appends an ERROR body with `reason` (cut to 255 bytes on a character boundary).
pub(super) fn put_error(out: &mut Vec<u8>, reason: &str) {
    let reason = crate::proto::truncate_utf8(reason, 255);
    out.extend_from_slice(ERROR);
    out.push(reason.len() as u8);
    out.extend_from_slice(reason.as_bytes());
}
