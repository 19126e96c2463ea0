//! Helpers shared by the transport tests.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use tokio::time::timeout;

use crate::monitor::{Event, Monitor};

/// How long any single wait in a test may take before the test fails.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

fn counter() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A name no other test in this process uses.
pub(crate) fn unique_name(tag: &str) -> String {
    format!("test-{tag}-{}", counter())
}

/// A socket file path no other test (or test process) uses; the file does not exist.
pub(crate) fn ipc_path(tag: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "zocket-{}-{tag}-{}.sock",
        std::process::id(),
        counter()
    ));
    let _ = std::fs::remove_file(&path);
    path
}

/// The next monitor event, failing the test after [`WAIT`].
pub(crate) async fn next_event(monitor: &mut Monitor) -> Event {
    timeout(WAIT, monitor.next())
        .await
        .expect("timed out waiting for a monitor event")
        .expect("monitor closed")
}

/// Skips events until one matches `pred`, and returns it.
pub(crate) async fn event_where(monitor: &mut Monitor, pred: impl Fn(&Event) -> bool) -> Event {
    loop {
        let event = next_event(monitor).await;
        if pred(&event) {
            return event;
        }
    }
}

/// Waits (bounded by [`WAIT`]) until the runtime has no more than `baseline` live tasks.
pub(crate) async fn tasks_back_to(baseline: usize) {
    let metrics = tokio::runtime::Handle::current().metrics();
    timeout(WAIT, async {
        while metrics.num_alive_tasks() > baseline {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "{} tasks alive, expected {baseline}",
            metrics.num_alive_tasks()
        )
    });
}

/// Holds `conn` until the peer closes it (EOF or error on a stream, `None` from inproc).
pub(crate) async fn wait_closed(conn: crate::transport::Connection) -> Option<crate::Error> {
    use tokio::io::AsyncReadExt;
    match conn {
        crate::transport::Connection::Stream { mut io, .. } => {
            let mut buf = [0u8; 256];
            loop {
                match io.read(&mut buf).await {
                    Ok(0) => return None,
                    Ok(_) => {}
                    Err(e) => return Some(crate::Error::Io(e)),
                }
            }
        }
        crate::transport::Connection::Inproc(conn) => {
            while conn.recv().await.is_some() {}
            None
        }
    }
}
