//! Helpers the integration tests share.

#![allow(dead_code)] // each test file uses part of it

pub(crate) mod netns;

use zocket::Message;

/// A TCP port that was free a moment ago (for a listener that starts later).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A message's frames as text, joined by `|`.
pub(crate) fn text(msg: &Message) -> String {
    msg.frames()
        .iter()
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect::<Vec<_>>()
        .join("|")
}
