//! Telling protocols apart from a connection's first bytes.
//!
//! A listener reads the first byte a dialer sends: `0xFF` starts a ZMTP greeting (zocket's
//! native wire also opens with one, see [`greeting`](super::greeting)); `00 'S' 'P' 00` is
//! the nanomsg SP header. Anything else is not a protocol we know.

/// What the first bytes of a connection say about the dialer's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sniffed {
    /// A ZMTP 3.x greeting follows (native or plain ZMTP: the filler tells, once all 64
    /// bytes are in).
    Greeting,
    /// The nanomsg SP protocol header.
    Sp,
    /// Not enough bytes yet to tell.
    NeedMore,
    /// Bytes of no protocol we speak.
    Unknown,
}

/// SP's header starts with these four bytes.
const SP_PREFIX: [u8; 4] = [0x00, b'S', b'P', 0x00];

/// Classifies the first bytes received on an accepted connection.
pub(crate) fn sniff(first: &[u8]) -> Sniffed {
    match first.first() {
        None => Sniffed::NeedMore,
        Some(0xFF) => Sniffed::Greeting,
        Some(0x00) => {
            let n = first.len().min(SP_PREFIX.len());
            if first[..n] != SP_PREFIX[..n] {
                Sniffed::Unknown
            } else if n < SP_PREFIX.len() {
                Sniffed::NeedMore
            } else {
                Sniffed::Sp
            }
        }
        Some(_) => Sniffed::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes_are_classified() {
        assert_eq!(sniff(&[]), Sniffed::NeedMore);
        assert_eq!(sniff(&[0xFF]), Sniffed::Greeting);
        assert_eq!(sniff(&[0x00]), Sniffed::NeedMore);
        assert_eq!(sniff(&[0x00, b'S', b'P']), Sniffed::NeedMore);
        assert_eq!(sniff(&[0x00, b'S', b'P', 0x00, 0x00, 0x10]), Sniffed::Sp);
        assert_eq!(sniff(&[0x00, b'X']), Sniffed::Unknown);
        assert_eq!(sniff(b"GET / HTTP/1.1"), Sniffed::Unknown);
    }
}
