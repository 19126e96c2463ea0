//! A python child driving pyzmq (libzmq) for the interop tests: started with a script from
//! `tests/interop/` or inline code, read line by line, told lines on its stdin; killed on
//! drop.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::timeout;

/// A running python peer.
pub(crate) struct PythonPeer {
    child: Child,
    /// What it prints, line by line (for tests that wait on a line with `select!`).
    pub(crate) lines: Lines<BufReader<ChildStdout>>,
    /// How long [`line`](Self::line) and [`finish`](Self::finish) wait.
    limit: Duration,
}

impl PythonPeer {
    /// Runs `tests/interop/<file>` with `args`.
    pub(crate) fn script(file: &str, args: &[&str], limit: Duration) -> PythonPeer {
        let path = format!("{}/tests/interop/{file}", env!("CARGO_MANIFEST_DIR"));
        Self::spawn(&[path.as_str()], args, limit)
    }

    /// Runs `code` (`python3 -c`) with `args`.
    pub(crate) fn inline(code: &str, args: &[&str], limit: Duration) -> PythonPeer {
        Self::spawn(&["-c", code], args, limit)
    }

    fn spawn(program: &[&str], args: &[&str], limit: Duration) -> PythonPeer {
        let mut child = Command::new("python3")
            .args(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        PythonPeer {
            child,
            lines,
            limit,
        }
    }

    /// The next line it prints.
    pub(crate) async fn line(&mut self) -> String {
        timeout(self.limit, self.lines.next_line())
            .await
            .expect("the libzmq peer said nothing in time")
            .unwrap()
            .expect("the libzmq peer exited early")
    }

    /// Writes `line` to its stdin.
    pub(crate) async fn tell(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
    }

    /// Closes its stdin and waits for it to exit successfully.
    pub(crate) async fn finish(mut self) {
        drop(self.child.stdin.take());
        let status = timeout(self.limit, self.child.wait())
            .await
            .expect("peer exits")
            .unwrap();
        assert!(status.success(), "libzmq peer failed: {status}");
    }
}
