//! Sans-IO protocol cores: bytes in, events and bytes out, time passed in as a value.
//!
//! Nothing here touches tokio, sockets or the clock, so every state can be driven from a
//! test in memory. The tokio side lives in [`driver`](crate::driver).

pub(crate) mod greeting;
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
