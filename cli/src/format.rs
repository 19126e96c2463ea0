//! How received messages are printed: `raw`, `ascii`, `quoted`, `hex` and `json`.

use clap::ValueEnum;

/// The output formats of `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Every frame's bytes as received, back to back, with no separator or newline.
    Raw,
    /// One line per message, frames joined by the --frames separator (default `|`),
    /// bytes outside printable ASCII shown as `.`.
    Ascii,
    /// One line per message, each frame in double quotes with C-style escapes (`\n`, `\x00`),
    /// separated by spaces.
    Quoted,
    /// One line per message, each frame in lowercase hex, separated by spaces.
    Hex,
    /// One JSON object per line: {"frames": [...]} (plus "peer" for router); a frame is a
    /// JSON string when it is UTF-8, else {"base64": "..."}; "peer" is the routing id as text,
    /// or 0x and hex digits when it is not printable ASCII.
    Json,
}

/// Appends one message, as `format` prints it, to `out`. `peer` is the sender's routing id
/// (Router only); `separator` joins frames in `ascii`.
pub fn message(
    out: &mut Vec<u8>,
    format: Format,
    separator: &[u8],
    peer: Option<&[u8]>,
    frames: &[bytes::Bytes],
) {
    match format {
        Format::Raw => {
            for frame in frames {
                out.extend_from_slice(frame);
            }
        }
        Format::Ascii => {
            let mut first = true;
            if let Some(peer) = peer {
                out.extend_from_slice(peer_text(peer).as_bytes());
                first = false;
            }
            for frame in frames {
                if !first {
                    out.extend_from_slice(separator);
                }
                first = false;
                out.extend(
                    frame
                        .iter()
                        .map(|&b| if (0x20..0x7f).contains(&b) { b } else { b'.' }),
                );
            }
            out.push(b'\n');
        }
        Format::Quoted => {
            let all = peer.into_iter().chain(frames.iter().map(|f| &f[..]));
            for (i, frame) in all.enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                quoted(out, frame);
            }
            out.push(b'\n');
        }
        Format::Hex => {
            let all = peer.into_iter().chain(frames.iter().map(|f| &f[..]));
            for (i, frame) in all.enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                hex(out, frame);
            }
            out.push(b'\n');
        }
        Format::Json => {
            out.push(b'{');
            if let Some(peer) = peer {
                // As a router's input takes it back: text, or 0x and hex for binary ids.
                out.extend_from_slice(b"\"peer\":");
                json_string(out, &peer_text(peer));
                out.push(b',');
            }
            out.extend_from_slice(b"\"frames\":[");
            for (i, frame) in frames.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json_bytes(out, frame);
            }
            out.extend_from_slice(b"]}\n");
        }
    }
}

/// A routing id as a user can type it back: the text when it is printable ASCII, else `0x`
/// and hex (what `--identity` and a router's first input frame accept).
pub fn peer_text(peer: &[u8]) -> String {
    if !peer.is_empty() && !peer.starts_with(b"0x") && peer.iter().all(|b| (0x21..0x7f).contains(b))
    {
        String::from_utf8_lossy(peer).into_owned()
    } else {
        let mut out = b"0x".to_vec();
        hex(&mut out, peer);
        String::from_utf8_lossy(&out).into_owned()
    }
}

fn hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 15)]);
    }
}

/// `"..."` with `\\`, `\"`, `\n`, `\r`, `\t`, `\xNN` for other control bytes and for bytes
/// that are not UTF-8; UTF-8 text outside ASCII is kept as is.
fn quoted(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.extend_from_slice(b"\\\\"),
                '"' => out.extend_from_slice(b"\\\""),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                c if c.is_control() => {
                    let mut buf = [0; 4];
                    for &b in c.encode_utf8(&mut buf).as_bytes() {
                        out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
                    }
                }
                c => {
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        for &b in chunk.invalid() {
            out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
        }
    }
    out.push(b'"');
}

/// A JSON string when `bytes` is UTF-8, else `{"base64":"..."}`.
fn json_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => json_string(out, text),
        Err(_) => {
            out.extend_from_slice(b"{\"base64\":\"");
            base64(out, bytes);
            out.extend_from_slice(b"\"}");
        }
    }
}

/// Appends `text` as a JSON string literal.
fn json_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    for c in text.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if u32::from(c) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", u32::from(c)).as_bytes());
            }
            c => {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// Standard base64 (RFC 4648, `+/`, `=` padding). Twenty lines do not justify a dependency.
fn base64(out: &mut Vec<u8>, bytes: &[u8]) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        let sextet = |shift: u32| ALPHABET[((n >> shift) & 63) as usize];
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if chunk.len() > 1 { sextet(6) } else { b'=' });
        out.push(if chunk.len() > 2 { sextet(0) } else { b'=' });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn show(format: Format, peer: Option<&[u8]>, frames: &[&'static [u8]]) -> Vec<u8> {
        let frames: Vec<Bytes> = frames.iter().map(|f| Bytes::from_static(f)).collect();
        let mut out = Vec::new();
        message(&mut out, format, b"|", peer, &frames);
        out
    }

    #[test]
    fn base64_matches_rfc_4648_test_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            let mut out = Vec::new();
            base64(&mut out, input.as_bytes());
            assert_eq!(String::from_utf8(out).unwrap(), expected);
        }
        let mut out = Vec::new();
        base64(&mut out, &[0xff, 0xfe, 0x00]);
        assert_eq!(out, b"//4A");
    }

    #[test]
    fn every_format_prints_the_frames_and_the_peer() {
        let frames: &[&[u8]] = &[b"a\"b", b"\x00\xff\n"];
        assert_eq!(show(Format::Raw, Some(b"p"), frames), b"a\"b\x00\xff\n");
        assert_eq!(show(Format::Ascii, None, frames), b"a\"b|...\n");
        assert_eq!(show(Format::Ascii, Some(b"w1"), frames), b"w1|a\"b|...\n");
        assert_eq!(
            show(Format::Ascii, Some(b"\x00\x01"), &[b"x"]),
            b"0x0001|x\n"
        );
        assert_eq!(
            show(
                Format::Quoted,
                None,
                &[b"a\"b", b"\x00\xff\n", "é".as_bytes()]
            ),
            "\"a\\\"b\" \"\\x00\\xff\\n\" \"é\"\n".as_bytes()
        );
        assert_eq!(show(Format::Hex, Some(b"p"), frames), b"70 612262 00ff0a\n");
        assert_eq!(
            show(Format::Json, Some(b"\x00\x80"), &[b"hi \"x\"\n", b"\xff"]),
            b"{\"peer\":\"0x0080\",\"frames\":[\"hi \\\"x\\\"\\n\",{\"base64\":\"/w==\"}]}\n"
        );
        assert_eq!(
            show(Format::Json, Some(b"w1"), &[]),
            b"{\"peer\":\"w1\",\"frames\":[]}\n"
        );
        assert_eq!(
            show(Format::Json, None, &[b"\x01"]),
            b"{\"frames\":[\"\\u0001\"]}\n"
        );
    }
}
