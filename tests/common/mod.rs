//! Helpers the integration tests share.

#![allow(dead_code)] // each test file uses part of it

pub(crate) mod netns;
pub(crate) mod python;

use std::time::Duration;

use futures::{FutureExt, StreamExt};
use tokio::time::timeout;
use zocket::monitor::{Event, Monitor};
use zocket::{Endpoint, Message};

/// How long the shared waits allow for what must happen: generous, the machine may be loaded.
pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// Every event `monitor` holds now, without waiting. Outside tokio's cooperative budget: a
/// monitor is a tokio broadcast receiver, which answers `Pending` once the task has spent its
/// budget, so a plain `now_or_never` may see nothing although events wait (a test then fails
/// now and then, or passes without having looked).
pub(crate) fn events_now(monitor: &mut Monitor) -> Vec<Event> {
    std::iter::from_fn(|| {
        tokio::task::unconstrained(monitor.next())
            .now_or_never()
            .flatten()
    })
    .collect()
}

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

/// One endpoint of each transport to bind, unique per test.
pub(crate) fn endpoints(tag: &str) -> Vec<String> {
    let file = std::env::temp_dir().join(format!("zocket-{tag}-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&file);
    vec![
        "tcp://127.0.0.1:0".to_owned(),
        format!("ipc://{}", file.display()),
        format!("inproc://{tag}-{}", std::process::id()),
    ]
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

/// A command that runs this test binary again, only the `#[test]` named `test` (the name as
/// libtest prints it), with its output not captured: how a test starts a helper process
/// (a worker to kill, a flood of connections whose descriptors are not ours). The helper
/// test checks an environment variable set with `.env(...)` and returns at once without it.
pub(crate) fn rerun_self(test: &str) -> tokio::process::Command {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let mut command = tokio::process::Command::new(exe);
    command
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Open file descriptors of this process (entries of `/proc/self/fd`).
pub(crate) fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count())
}

/// Whether python3 with pyzmq (libzmq) is here for the interop tests. `.ci/run` installs it;
/// elsewhere a test without it says so and passes, but with `CI` set it fails, so CI can
/// never skip the interop tests silently.
pub(crate) fn have_pyzmq() -> bool {
    have_python("import zmq", "pyzmq (libzmq)")
}

/// [`have_pyzmq`], with a libzmq that has CURVE (pyzmq's wheels do).
pub(crate) fn have_pyzmq_curve() -> bool {
    have_python(
        "import zmq, sys; sys.exit(0 if zmq.has('curve') else 1)",
        "pyzmq (libzmq with CURVE)",
    )
}

/// Whether `python3 -c check` succeeds; `what` names it in the skip message.
fn have_python(check: &str, what: &str) -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", check])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{what} is missing: .ci/run installs it (pip install pyzmq)"
        );
        eprintln!("skipping: python3 with {what} is not installed; `pip install pyzmq` to run the interop tests");
    }
    ok
}
