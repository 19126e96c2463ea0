//! Sans-IO protocol cores: bytes in, events and bytes out, time passed in as a value.
//!
//! Nothing here touches tokio, sockets or the clock, so every state can be driven from a
//! test in memory. The tokio side lives in [`driver`](crate::driver).

pub(crate) mod curve;
pub(crate) mod greeting;
pub(crate) mod limits;
pub(crate) mod native;
pub(crate) mod sniff;
pub(crate) mod zmtp;

/// How a session error shows the reason the transport ended: `": reason"`, or nothing at a
/// plain end-of-file (empty `reason`).
pub(crate) fn eof_detail(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary
/// (for reason texts that go into a length-limited field).
pub(crate) fn truncate_utf8(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
