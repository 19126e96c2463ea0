//! Running a test inside a private network namespace, where its multicast cannot reach
//! the machine's real network.
//!
//! A test calls [`isolated`] with its own name. The first time (no marker in the
//! environment) that re-executes this test binary under `unshare -n`, asking it for just
//! that test; inside, the same call finds the marker, checks that the namespace holds
//! nothing but `lo`, brings `lo` up with multicast on, and runs the scenario. Each test
//! gets a namespace of its own, so tests running in parallel cannot hear each other.

use std::future::Future;
use std::process::Stdio;
use std::time::Duration;

/// Marks a process running inside a test's namespace; its value is the test's name.
pub(crate) const INSIDE: &str = "ZOCKET_TEST_NETNS";

/// Longest a test may take in its namespace.
const LIMIT: Duration = Duration::from_secs(180);

/// Runs `scenario` in a private network namespace (see the module docs). Skips, with the
/// reason printed, only where namespaces cannot be made and `CI` is not set.
pub(crate) fn isolated<F, Fut>(test: &str, scenario: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    if std::env::var(INSIDE).as_deref() == Ok(test) {
        enter_checked();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(scenario());
        return;
    }
    if let Err(reason) = namespaces_work() {
        if std::env::var_os("CI").is_some() {
            panic!("CI is set but a network namespace cannot be made: {reason}");
        }
        println!("SKIPPED {test}: cannot make a network namespace ({reason})");
        return;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let output = runtime.block_on(async {
        let child = tokio::process::Command::new("unshare")
            .arg("-n")
            .arg(&exe)
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(INSIDE, test)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start unshare");
        tokio::time::timeout(LIMIT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("{test} ran longer than {LIMIT:?} in its namespace"))
            .expect("wait for the namespaced test")
    });
    print!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    let ran = String::from_utf8_lossy(&output.stdout).contains("1 passed");
    assert!(
        output.status.success() && ran,
        "{test} failed in its network namespace ({})",
        output.status
    );
}

/// Whether this process is a test's namespaced run (for helper processes it starts).
pub(crate) fn inside() -> bool {
    std::env::var_os(INSIDE).is_some()
}

fn namespaces_work() -> Result<(), String> {
    let status = std::process::Command::new("unshare")
        .args(["-n", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run unshare: {e}"))?;
    if status.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&status.stderr).trim().to_owned())
    }
}

/// The interfaces this process's network namespace has (from /proc/self/net/dev, which
/// unlike /sys/class/net follows the namespace).
pub(crate) fn interfaces() -> Vec<String> {
    let dev = std::fs::read_to_string("/proc/self/net/dev").expect("read /proc/self/net/dev");
    dev.lines()
        .skip(2)
        .filter_map(|line| line.split(':').next())
        .map(|name| name.trim().to_owned())
        .collect()
}

/// Refuses to go on unless only `lo` is here, then sets it up for multicast.
fn enter_checked() {
    let interfaces = interfaces();
    assert_eq!(
        interfaces,
        vec!["lo".to_owned()],
        "refusing to run an mDNS test outside a private network namespace"
    );
    for args in [
        &["link", "set", "lo", "up"][..],
        &["link", "set", "lo", "multicast", "on"],
    ] {
        let status = std::process::Command::new("ip")
            .args(args)
            .status()
            .expect("run ip (iproute2)");
        assert!(status.success(), "ip {args:?} failed");
    }
}
