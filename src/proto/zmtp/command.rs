//! ZMTP 3.1 commands: the bodies of COMMAND frames.
//!
//! ```text
//! command   = name-length (1 byte) name data
//! READY     = properties: { name-length (1) name value-length (4, big-endian) value }
//! SUBSCRIBE = the prefix            CANCEL = the prefix            (ZMTP 3.1 only)
//! PING      = TTL (2, big-endian, deciseconds) context (0..=16 bytes)
//! PONG      = the PING's context
//! ERROR     = reason-length (1) reason
//! ```
//!
//! Command names are case-sensitive (libzmq compares them byte for byte); property names
//! are matched ignoring ASCII case (RFC 37). Unknown commands decode as
//! [`Command::Unknown`], unknown READY properties are skipped.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::frame::{encode_header, header_len};
use crate::SocketType;

/// Longest context a PING carries (RFC 37); libzmq truncates longer ones, and so do we.
pub(crate) const MAX_PING_CONTEXT: usize = 16;

const READY: &[u8] = b"READY";
/// The name of the SUBSCRIBE command.
pub(crate) const SUBSCRIBE: &[u8] = b"SUBSCRIBE";
/// The name of the CANCEL command.
pub(crate) const CANCEL: &[u8] = b"CANCEL";
const PING: &[u8] = b"PING";
const PONG: &[u8] = b"PONG";
const ERROR: &[u8] = b"ERROR";

const SOCKET_TYPE: &str = "Socket-Type";
/// The metadata property by which a zocket peer repeats, inside the authenticated CURVE
/// handshake, the zocket marker of its greeting (value: the native version it offered,
/// e.g. `1.0`). See docs/PROTOCOL.md, section "CURVE".
pub(crate) const X_ZOCKET: &str = "X-Zocket";

/// The value of property `name` (case-insensitive) in a property list; `None` when it is
/// absent or the list is malformed before it.
pub(crate) fn find_property<'a>(mut p: &'a [u8], name: &str) -> Option<&'a [u8]> {
    while !p.is_empty() {
        let name_len = usize::from(p[0]);
        let rest = p.get(1..)?;
        let (n, rest) = rest.split_at_checked(name_len)?;
        let (len, rest) = rest.split_at_checked(4)?;
        let value_len = usize::try_from(u32::from_be_bytes(len.try_into().ok()?)).ok()?;
        let (value, rest) = rest.split_at_checked(value_len)?;
        if n.eq_ignore_ascii_case(name.as_bytes()) {
            return Some(value);
        }
        p = rest;
    }
    None
}
const IDENTITY: &str = "Identity";

/// What a peer says about itself in READY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ready {
    /// The peer's socket type (libzmq's `XPUB` and `XSUB` as [`SocketType::XPub`] and
    /// [`SocketType::XSub`]).
    pub(crate) socket_type: SocketType,
    /// The peer's routing id; empty when it sent none. Sent only when non-empty.
    pub(crate) identity: Bytes,
}

/// One ZMTP command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    /// The NULL mechanism's handshake: the sender's socket type and identity.
    Ready(Ready),
    /// A subscriber wants messages starting with this prefix (ZMTP 3.1).
    Subscribe(Bytes),
    /// A subscriber no longer wants this prefix (ZMTP 3.1).
    Cancel(Bytes),
    /// Heartbeat: answer with PONG echoing `context`; the sender may drop the connection
    /// if it hears nothing for `ttl` deciseconds (0: no limit).
    Ping {
        /// Time to live in tenths of a second.
        ttl: u16,
        /// Up to [`MAX_PING_CONTEXT`] bytes to echo.
        context: Bytes,
    },
    /// Heartbeat answer, echoing a PING's context.
    Pong(Bytes),
    /// The sender refuses the connection and will close it.
    Error(String),
    /// A command this implementation does not know, by name; the session skips it.
    Unknown(Bytes),
}

/// A command body the decoder refuses; the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CommandError {
    /// The body does not have the layout its command requires.
    #[error("malformed {0} command")]
    Malformed(&'static str),
    /// READY without the required `Socket-Type` property.
    #[error("READY has no Socket-Type property")]
    MissingSocketType,
    /// READY with the same property twice.
    #[error("READY has the property {0:?} twice")]
    DuplicateProperty(String),
    /// READY naming a socket type zocket does not know.
    #[error("READY has unknown Socket-Type {0:?}")]
    UnknownSocketType(String),
}

impl Command {
    /// Decodes a COMMAND frame's body.
    ///
    /// # Errors
    /// [`CommandError`] when the body is malformed; an unknown command name is not an
    /// error ([`Command::Unknown`]).
    pub(crate) fn decode(mut body: Bytes) -> Result<Command, CommandError> {
        let Some(&name_len) = body.first() else {
            return Err(CommandError::Malformed("empty"));
        };
        let name_len = usize::from(name_len);
        if body.len() < 1 + name_len {
            return Err(CommandError::Malformed("truncated"));
        }
        body.advance(1);
        let name = body.split_to(name_len);
        let data = body;
        Ok(match &name[..] {
            READY => Command::Ready(decode_ready(&data)?),
            SUBSCRIBE => Command::Subscribe(data),
            CANCEL => Command::Cancel(data),
            PING => {
                if data.len() < 2 {
                    return Err(CommandError::Malformed("PING"));
                }
                let ttl = u16::from_be_bytes([data[0], data[1]]);
                let end = data.len().min(2 + MAX_PING_CONTEXT);
                Command::Ping {
                    ttl,
                    context: data.slice(2..end),
                }
            }
            PONG => Command::Pong(data),
            ERROR => {
                let Some(&len) = data.first() else {
                    return Err(CommandError::Malformed("ERROR"));
                };
                let reason = data
                    .get(1..1 + usize::from(len))
                    .ok_or(CommandError::Malformed("ERROR"))?;
                // Bytes after the reason are ignored, as libzmq does.
                Command::Error(String::from_utf8_lossy(reason).into_owned())
            }
            _ => Command::Unknown(name),
        })
    }

    /// The command's name as on the wire.
    pub(crate) fn name(&self) -> &[u8] {
        match self {
            Command::Ready(_) => READY,
            Command::Subscribe(_) => SUBSCRIBE,
            Command::Cancel(_) => CANCEL,
            Command::Ping { .. } => PING,
            Command::Pong(_) => PONG,
            Command::Error(_) => ERROR,
            Command::Unknown(name) => name,
        }
    }

    /// Length of the encoded body.
    fn body_len(&self) -> usize {
        let data = match self {
            Command::Ready(r) => {
                let mut len = property_len(SOCKET_TYPE, r.socket_type.as_str().len());
                if !r.identity.is_empty() {
                    len += property_len(IDENTITY, r.identity.len());
                }
                len
            }
            Command::Subscribe(p) | Command::Cancel(p) => p.len(),
            Command::Ping { context, .. } => 2 + context.len().min(MAX_PING_CONTEXT),
            Command::Pong(context) => context.len(),
            Command::Error(reason) => 1 + crate::proto::truncate_utf8(reason, 255).len(),
            Command::Unknown(_) => 0,
        };
        1 + self.name().len().min(255) + data
    }

    /// Appends the whole COMMAND frame (header and body) to `out`.
    ///
    /// A PING context is cut to 16 bytes and an ERROR reason to 255 bytes; an unknown
    /// command is sent with its name only.
    pub(crate) fn encode(&self, out: &mut BytesMut) {
        let len = self.body_len();
        out.reserve(header_len(len) + len);
        encode_header(out, false, true, len);
        self.encode_body(out);
    }

    /// Appends the command's body alone (name length, name, data): what travels inside a
    /// CURVE MESSAGE box with the COMMAND flag.
    pub(crate) fn encode_body(&self, out: &mut BytesMut) {
        out.reserve(self.body_len());
        let name = &self.name()[..self.name().len().min(255)];
        out.put_u8(name.len() as u8);
        out.extend_from_slice(name);
        match self {
            Command::Ready(r) => put_properties(out, r),
            Command::Subscribe(p) | Command::Cancel(p) => out.extend_from_slice(p),
            Command::Ping { ttl, context } => {
                out.put_u16(*ttl);
                out.extend_from_slice(&context[..context.len().min(MAX_PING_CONTEXT)]);
            }
            Command::Pong(context) => out.extend_from_slice(context),
            Command::Error(reason) => {
                let reason = crate::proto::truncate_utf8(reason, 255);
                out.put_u8(reason.len() as u8);
                out.extend_from_slice(reason.as_bytes());
            }
            Command::Unknown(_) => {}
        }
    }
}

impl Ready {
    /// The properties of READY alone (`Socket-Type`, and `Identity` when non-empty): the
    /// metadata a CURVE INITIATE or READY box carries.
    pub(crate) fn properties(&self) -> Bytes {
        let mut out = BytesMut::new();
        put_properties(&mut out, self);
        out.freeze()
    }

    /// Parses a property list (a CURVE INITIATE's or READY's metadata) as READY's.
    ///
    /// # Errors
    /// As READY: [`CommandError`] for a malformed list, a missing or unknown
    /// `Socket-Type`, or a property given twice.
    pub(crate) fn decode_properties(properties: &[u8]) -> Result<Ready, CommandError> {
        decode_ready(properties)
    }
}

/// Appends READY's properties.
fn put_properties(out: &mut BytesMut, r: &Ready) {
    put_property(out, SOCKET_TYPE, r.socket_type.as_str().as_bytes());
    if !r.identity.is_empty() {
        put_property(out, IDENTITY, &r.identity);
    }
}

/// Parses READY's properties.
fn decode_ready(mut p: &[u8]) -> Result<Ready, CommandError> {
    let mut socket_type = None;
    let mut identity = None;
    // Every property name seen (known or not), for duplicates: a sorted set, so that a
    // READY of many properties costs O(n log n), not a scan of the names per name.
    let mut seen = BTreeSet::new();
    while !p.is_empty() {
        let name_len = usize::from(p.get_u8());
        if p.len() < name_len + 4 {
            return Err(CommandError::Malformed("READY (truncated property)"));
        }
        let (name, rest) = p.split_at(name_len);
        p = rest;
        let value_len = usize::try_from(p.get_u32())
            .map_err(|_| CommandError::Malformed("READY (property too long)"))?;
        if p.len() < value_len {
            return Err(CommandError::Malformed("READY (truncated property)"));
        }
        let (value, rest) = p.split_at(value_len);
        p = rest;
        if !seen.insert(PropertyName(name)) {
            return Err(CommandError::DuplicateProperty(
                String::from_utf8_lossy(name).into_owned(),
            ));
        }
        if name.eq_ignore_ascii_case(SOCKET_TYPE.as_bytes()) {
            socket_type = Some(peer_socket_type(value).ok_or_else(|| {
                CommandError::UnknownSocketType(String::from_utf8_lossy(value).into_owned())
            })?);
        } else if name.eq_ignore_ascii_case(IDENTITY.as_bytes()) {
            identity = Some(Bytes::copy_from_slice(value));
        }
    }
    Ok(Ready {
        socket_type: socket_type.ok_or(CommandError::MissingSocketType)?,
        identity: identity.unwrap_or_default(),
    })
}

/// A READY property name, ordered and compared ignoring ASCII case (RFC 37).
#[derive(Debug, Clone, Copy)]
struct PropertyName<'a>(&'a [u8]);

impl Ord for PropertyName<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.0, other.0);
        let mut i = 0;
        while i < a.len() && i < b.len() {
            match a[i].to_ascii_lowercase().cmp(&b[i].to_ascii_lowercase()) {
                Ordering::Equal => i += 1,
                unequal => return unequal,
            }
        }
        a.len().cmp(&b.len())
    }
}

impl PartialOrd for PropertyName<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for PropertyName<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(other.0)
    }
}

impl Eq for PropertyName<'_> {}

/// A peer's Socket-Type value (every ZMTP 3.1 type zocket has, XPUB and XSUB included).
fn peer_socket_type(name: &[u8]) -> Option<SocketType> {
    SocketType::from_name(name)
}

fn property_len(name: &str, value_len: usize) -> usize {
    1 + name.len() + 4 + value_len
}

pub(crate) fn put_property(out: &mut BytesMut, name: &str, value: &[u8]) {
    out.put_u8(name.len() as u8);
    out.extend_from_slice(name.as_bytes());
    // Identities are bounded far below 4 GiB by the caller (ZeroMQ allows 255 bytes).
    out.put_u32(u32::try_from(value.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(value);
}
