//! Helpers the integration tests share.

#![allow(dead_code)] // each test file uses part of it

pub(crate) mod netns;

use std::time::Duration;

use futures::StreamExt;
use tokio::time::timeout;
use zocket::monitor::{Event, Monitor};
use zocket::{Endpoint, Message};

/// How long the shared waits allow for what must happen: generous, the machine may be loaded.
pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// The next event on `monitor` that `pred` accepts (panics after [`WAIT`]).
pub(crate) async fn until_event(monitor: &mut Monitor, pred: impl Fn(&Event) -> bool) -> Event {
    timeout(WAIT, async {
        loop {
            let e = monitor.next().await.expect("monitor ended");
            if pred(&e) {
                return e;
            }
        }
    })
    .await
    .expect("event never came")
}

/// Waits until `f` holds, looking again every 2 ms, for state that has no event to await
/// (a peer count, say). Panics after [`WAIT`].
pub(crate) async fn until_true(mut f: impl FnMut() -> bool) {
    timeout(WAIT, async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("condition never held");
}

/// The port of a `tcp://` endpoint (as `bind` returns it).
pub(crate) fn tcp_port(endpoint: &Endpoint) -> u16 {
    match endpoint {
        Endpoint::Tcp { port, .. } => *port,
        other => panic!("expected a tcp:// endpoint, got {other}"),
    }
}

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
