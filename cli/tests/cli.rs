//! The `zocket` command, run as a built binary over loopback TCP and ipc.
//!
//! No test sleeps to synchronise: a binding process prints `bound ENDPOINT` on stderr (the
//! real port for `:0`) and the other side is started after that line; senders use
//! `--wait-peers` so nothing is published before a subscriber is there; every process and
//! every read of its output is bounded by `LIMIT`, after which the process is killed.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use predicates::prelude::*;

const BIN: &str = env!("CARGO_BIN_EXE_zocket");

/// Upper bound for any process and any wait, generous for a loaded 2-core machine.
const LIMIT: Duration = Duration::from_secs(30);

/// A `zocket` run to completion (killed after `LIMIT`).
fn zocket(args: &[&str]) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(BIN);
    cmd.args(args).timeout(LIMIT);
    cmd
}

/// A `zocket` running in the background, its stdout and stderr read line by line; killed
/// when dropped.
struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    name: String,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start zocket");
        let stdout = lines(child.stdout.take().expect("stdout"));
        let stderr = lines(child.stderr.take().expect("stderr"));
        Running {
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            name: args.join(" "),
        }
    }

    /// Writes `text` to the process's stdin.
    fn send(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(text.as_bytes()).expect("write stdin");
        stdin.flush().expect("flush stdin");
    }

    /// Closes the process's stdin (end of input).
    fn close_stdin(&mut self) {
        self.stdin.take();
    }

    fn stdout_line(&self) -> String {
        self.stdout
            .recv_timeout(LIMIT)
            .unwrap_or_else(|_| panic!("no stdout line from `zocket {}`", self.name))
    }

    /// Waits for the stderr line that starts with `prefix`, and returns the rest of it.
    fn stderr_after(&self, prefix: &str) -> String {
        let deadline = Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    if let Some(at) = line.find(prefix) {
                        return line[at + prefix.len()..].to_owned();
                    }
                }
                Err(_) => panic!("no stderr line with {prefix:?} from `zocket {}`", self.name),
            }
        }
    }

    /// The endpoint the process reported as bound.
    fn bound(&self) -> String {
        self.stderr_after("bound ")
    }

    /// Waits (at most `LIMIT`) for the process to exit; returns its status and the rest of
    /// its stdout and stderr.
    fn finish(mut self) -> (ExitStatus, String, String) {
        self.close_stdin();
        let deadline = Instant::now() + LIMIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "`zocket {}` did not exit within {LIMIT:?}",
                self.name
            );
            thread::sleep(Duration::from_millis(10)); // polling an exit, not synchronising
        };
        let drain = |rx: &Receiver<String>| {
            let mut text = String::new();
            while let Ok(line) = rx.recv_timeout(LIMIT) {
                text.push_str(&line);
                text.push('\n');
            }
            text
        };
        (status, drain(&self.stdout), drain(&self.stderr))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines of `reader`, through a channel that closes at end of file.
fn lines(reader: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A fresh directory for ipc socket files, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "zocket-cli-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn ipc(&self, name: &str) -> String {
        format!("ipc://{}", self.0.join(name).display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn assert_success(what: &str, (status, stdout, stderr): &(ExitStatus, String, String)) {
    assert!(
        status.success(),
        "{what} failed with {status}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
}

/// A Pub bound at `endpoint` waits for its Sub, publishes two topics, and the Sub gets only
/// the one it subscribed to, frames split and joined on `|`.
fn pub_sub_filters_topics(endpoint: &str) {
    let mut publisher = Running::start(&[
        "pub",
        "--bind",
        endpoint,
        "--wait-peers",
        "1",
        "--frames",
        "|",
    ]);
    let endpoint = publisher.bound();
    publisher
        .send("sports.football|1-0\nweather.paris|sunny\nsports.tennis|6-4\nweather.oslo|snow\n");
    publisher.close_stdin();
    zocket(&[
        "sub",
        "--connect",
        &endpoint,
        "--subscribe",
        "weather.",
        "--count",
        "2",
    ])
    .assert()
    .success()
    .stdout("weather.paris|sunny\nweather.oslo|snow\n");
    assert_success("pub", &publisher.finish());
}

#[test]
fn sub_receives_only_its_topics_over_tcp() {
    pub_sub_filters_topics("tcp://127.0.0.1:0");
}

#[test]
fn sub_receives_only_its_topics_over_ipc() {
    let dir = TempDir::new();
    pub_sub_filters_topics(&dir.ipc("pub.sock"));
}

#[test]
fn sub_with_several_topics_and_quoted_output() {
    let dir = TempDir::new();
    let mut publisher = Running::start(&[
        "pub",
        "--bind",
        &dir.ipc("pub.sock"),
        "--wait-peers",
        "1",
        "--frames",
        ",",
    ]);
    let endpoint = publisher.bound();
    publisher.send("a,1\nb,\"2\"\nc,3\n");
    publisher.close_stdin();
    zocket(&[
        "sub",
        "--connect",
        &endpoint,
        "--subscribe",
        "b",
        "--subscribe",
        "c",
        "--count",
        "2",
        "--format",
        "quoted",
    ])
    .assert()
    .success()
    .stdout("\"b\" \"\\\"2\\\"\"\n\"c\" \"3\"\n");
    assert_success("pub", &publisher.finish());
}

#[test]
fn req_prints_the_replies_of_rep_echo() {
    let rep = Running::start(&[
        "rep",
        "--bind",
        "tcp://127.0.0.1:0",
        "--echo",
        "--count",
        "2",
    ]);
    let endpoint = rep.bound();
    zocket(&["req", "--connect", &endpoint])
        .write_stdin("hello\nworld\n")
        .assert()
        .success()
        .stdout("hello\nworld\n");
    let finished = rep.finish();
    assert_success("rep", &finished);
    assert_eq!(
        finished.1, "hello\nworld\n",
        "rep prints the requests it answers"
    );
}

#[test]
fn rep_exec_pipes_each_request_through_a_command() {
    let dir = TempDir::new();
    let rep = Running::start(&[
        "rep",
        "--bind",
        &dir.ipc("rep.sock"),
        "--exec",
        "tr a-z A-Z",
        "--count",
        "3",
    ]);
    let endpoint = rep.bound();
    zocket(&[
        "req",
        "--connect",
        &endpoint,
        "--data",
        "hello",
        "--count",
        "3",
    ])
    .assert()
    .success()
    .stdout("HELLO\nHELLO\nHELLO\n");
    assert_success("rep", &rep.finish());
}

#[test]
fn rep_reply_answers_with_fixed_text() {
    let rep = Running::start(&["rep", "--bind", "tcp://127.0.0.1:0", "--reply", "pong"]);
    let endpoint = rep.bound();
    zocket(&[
        "req",
        "--connect",
        &endpoint,
        "--data",
        "ping",
        "--format",
        "json",
    ])
    .assert()
    .success()
    .stdout("{\"frames\":[\"pong\"]}\n");
}

#[test]
fn push_sends_count_lines_and_pull_exits_after_count() {
    let pull = Running::start(&["pull", "--bind", "tcp://127.0.0.1:0", "--count", "3"]);
    let endpoint = pull.bound();
    zocket(&["push", "--connect", &endpoint, "--count", "3"])
        .write_stdin("1\n2\n3\n4\n5\n")
        .assert()
        .success()
        .stdout("");
    let finished = pull.finish();
    assert_success("pull", &finished);
    assert_eq!(finished.1, "1\n2\n3\n");
}

#[test]
fn push_repeats_data_at_an_interval_and_pull_prints_binary_as_json_base64() {
    let dir = TempDir::new();
    let file = dir.0.join("payload.bin");
    std::fs::write(&file, [0xff, 0x00, b'\n']).unwrap();
    let pull = Running::start(&[
        "pull",
        "--bind",
        &dir.ipc("pull.sock"),
        "--count",
        "2",
        "--format",
        "json",
    ]);
    let endpoint = pull.bound();
    zocket(&[
        "push",
        "--connect",
        &endpoint,
        "--file",
        file.to_str().unwrap(),
        "--count",
        "2",
        "--interval",
        "10ms",
        "--delay",
        "1ms",
    ])
    .assert()
    .success();
    let finished = pull.finish();
    assert_success("pull", &finished);
    assert_eq!(
        finished.1,
        "{\"frames\":[{\"base64\":\"/wAK\"}]}\n{\"frames\":[{\"base64\":\"/wAK\"}]}\n"
    );
}

#[test]
fn router_prints_peer_ids_in_json_and_answers_dealers_by_id() {
    let mut router = Running::start(&[
        "router",
        "--bind",
        "tcp://127.0.0.1:0",
        "--format",
        "json",
        "--frames",
        "|",
    ]);
    let endpoint = router.bound();

    // A dealer with an identity of its own.
    let named = Running::start(&[
        "dealer",
        "--connect",
        &endpoint,
        "--identity",
        "worker-1",
        "--data",
        "hello|there",
        "--frames",
        "|",
        "--count",
        "1",
    ]);
    assert_eq!(
        router.stdout_line(),
        "{\"peer\":\"worker-1\",\"frames\":[\"hello\",\"there\"]}"
    );
    router.send("worker-1|welcome\n");
    let finished = named.finish();
    assert_success("named dealer", &finished);
    assert_eq!(finished.1, "welcome\n");

    // An anonymous dealer: the router makes up a binary id and prints it as 0x and hex,
    // which its input takes back.
    let anonymous = Running::start(&[
        "dealer",
        "--connect",
        &endpoint,
        "--data",
        "hi",
        "--count",
        "1",
        "--format",
        "hex",
    ]);
    let line = router.stdout_line();
    let peer = line
        .strip_prefix("{\"peer\":\"")
        .and_then(|rest| rest.strip_suffix("\",\"frames\":[\"hi\"]}"))
        .unwrap_or_else(|| panic!("unexpected router line {line:?}"));
    assert!(
        peer.starts_with("0x") && peer[2..].chars().all(|c| c.is_ascii_hexdigit()),
        "binary peer id printed as {peer:?}"
    );
    router.send(&format!("{peer}|ok\n"));
    let finished = anonymous.finish();
    assert_success("anonymous dealer", &finished);
    assert_eq!(finished.1, "6f6b\n");
}

#[test]
fn pair_sends_and_receives_at_once() {
    let mut left = Running::start(&["pair", "--bind", "tcp://127.0.0.1:0"]);
    let endpoint = left.bound();
    let right = Running::start(&[
        "pair",
        "--connect",
        &endpoint,
        "--wait-peers",
        "1",
        "--data",
        "from right",
        "--count",
        "1",
    ]);
    // The left side answers only after it has received, so both directions are exercised
    // while each process is already receiving.
    assert_eq!(left.stdout_line(), "from right");
    left.send("from left\n");
    let finished = right.finish();
    assert_success("right", &finished);
    assert_eq!(finished.1, "from left\n");
}

#[test]
fn xpub_prints_the_subscriptions_of_an_xsub_which_receives_only_its_topic() {
    let mut xpub = Running::start(&["xpub", "--bind", "tcp://127.0.0.1:0", "--frames", "|"]);
    let endpoint = xpub.bound();
    let xsub = Running::start(&[
        "xsub",
        "--connect",
        &endpoint,
        "--subscribe",
        "weather.",
        "--count",
        "1",
    ]);
    // The subscription arrives as one frame, 0x01 + topic (ascii prints 0x01 as '.').
    assert_eq!(xpub.stdout_line(), ".weather.");
    xpub.send("sports.football|1-0\nweather.paris|sunny\n");
    let finished = xsub.finish();
    assert_success("xsub", &finished);
    assert_eq!(finished.1, "weather.paris|sunny\n");
}

#[test]
fn wait_peers_holds_the_first_message_until_every_subscriber_is_there() {
    let publisher = Running::start(&[
        "pub",
        "--bind",
        "tcp://127.0.0.1:0",
        "--wait-peers",
        "2",
        "--data",
        "news",
    ]);
    let endpoint = publisher.bound();
    let first = Running::start(&["sub", "--connect", &endpoint, "--count", "1"]);
    let second = Running::start(&["sub", "--connect", &endpoint, "--count", "1"]);
    for (name, sub) in [("first sub", first), ("second sub", second)] {
        let finished = sub.finish();
        assert_success(name, &finished);
        assert_eq!(finished.1, "news\n");
    }
    assert_success("pub", &publisher.finish());
}

#[test]
fn recv_timeout_exits_with_code_1_and_says_why() {
    zocket(&[
        "pull",
        "--bind",
        "tcp://127.0.0.1:0",
        "--recv-timeout",
        "200ms",
        "--quiet",
    ])
    .assert()
    .code(1)
    .stdout("")
    .stderr("error: no message within 200ms (--recv-timeout)\n");

    // Nobody listens there, so the reply never comes.
    let dir = TempDir::new();
    zocket(&[
        "req",
        "--connect",
        &dir.ipc("nobody.sock"),
        "--data",
        "anyone?",
        "--recv-timeout",
        "300ms",
    ])
    .assert()
    .code(1)
    .stderr("error: no reply within 300ms (--recv-timeout)\n");
}

#[test]
fn monitor_prints_connection_events_to_stderr() {
    // Req/Rep rather than Push/Pull: a push that sends one message and exits at once can be
    // gone before its dialer reports `connected` (see the CONNECTED_GRACE note in talk.rs).
    let rep = Running::start(&[
        "rep",
        "--bind",
        "tcp://127.0.0.1:0",
        "--echo",
        "--count",
        "1",
        "--monitor",
    ]);
    let endpoint = rep.bound();
    zocket(&["req", "--connect", &endpoint, "--data", "x", "--monitor"])
        .assert()
        .success()
        .stdout("x\n")
        .stderr(predicate::str::contains(format!(
            "zocket req: connected to {endpoint}\n"
        )));
    let (status, stdout, stderr) = rep.finish();
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout, "x\n");
    // (Its `listening` line may come before `bound`, which `bound()` already read.)
    assert!(
        stderr.contains("zocket rep: accepted 127.0.0.1:"),
        "no accepted event in {stderr:?}"
    );
}

#[test]
fn stats_prints_each_sides_figures_to_stderr_at_exit() {
    let pull = Running::start(&[
        "pull",
        "--bind",
        "tcp://127.0.0.1:0",
        "--count",
        "3",
        "--stats",
    ]);
    let endpoint = pull.bound();
    zocket(&["push", "--connect", &endpoint, "--count", "3", "--stats"])
        .write_stdin("a\nbb\nccc\n")
        .assert()
        .success()
        .stderr(
            predicate::str::contains(
                "zocket push: PUSH socket: sent 3 msgs / 6 B, received 0 msgs / 0 B, dropped 0",
            )
            .and(predicate::str::contains(
                "zocket push:   links: accepted 0, connected 1, disconnected 0, handshakes failed 0",
            ))
            .and(predicate::str::contains(format!(
                "zocket push:   peer {endpoint} (connected, native, PULL): sent 3 msgs / 6 B"
            ))),
        );
    let (status, stdout, stderr) = pull.finish();
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout, "a\nbb\nccc\n");
    assert!(
        stderr.contains("zocket pull: PULL socket: sent 0 msgs / 0 B, received 3 msgs / 6 B"),
        "{stderr}"
    );
    assert!(
        stderr.contains("zocket pull:   links: accepted 1"),
        "{stderr}"
    );
    assert!(
        stderr.contains("zocket pull:   peer 127.0.0.1:"),
        "{stderr}"
    );
}

#[test]
fn stats_are_printed_when_a_command_that_runs_forever_is_terminated() {
    let sub = Running::start(&["sub", "--bind", "tcp://127.0.0.1:0", "--stats"]);
    let endpoint = sub.bound();
    zocket(&[
        "pub",
        "--connect",
        &endpoint,
        "--wait-peers",
        "1",
        "--data",
        "tick",
        "--count",
        "2",
    ])
    .assert()
    .success();
    assert_eq!(sub.stdout_line(), "tick");
    assert_eq!(sub.stdout_line(), "tick");
    let terminated = Command::new("kill")
        .args(["-TERM", &sub.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(terminated.success());
    let (status, _, stderr) = sub.finish();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("zocket sub: SUB socket: sent 0 msgs / 0 B, received 2 msgs / 8 B"),
        "{stderr}"
    );
}

#[test]
fn perf_thr_and_send_report_throughput() {
    // The receiver on a multi-threaded runtime (--threads 3), the sender on the default one thread.
    let thr = Running::start(&[
        "perf",
        "thr",
        "--bind",
        "tcp://127.0.0.1:0",
        "--size",
        "1KiB",
        "--count",
        "2000",
        "--json",
        "--threads",
        "3",
    ]);
    let endpoint = thr.bound();
    zocket(&[
        "perf",
        "send",
        "--connect",
        &endpoint,
        "--size",
        "1KiB",
        "--count",
        "2000",
    ])
    .assert()
    .success()
    .stdout(predicate::str::starts_with(
        "send: 1024 B x 2000 msgs sent in ",
    ));
    let finished = thr.finish();
    assert_success("perf thr", &finished);
    let report = finished.1;
    assert!(
        report.starts_with("{\"test\":\"thr\",\"size\":1024,\"count\":2000,\"seconds\":")
            && report.contains("\"msgs_per_s\":")
            && report.contains("\"mb_per_s\":"),
        "{report}"
    );
}

#[test]
fn perf_lat_and_ping_report_round_trip_percentiles() {
    let dir = TempDir::new();
    let lat = Running::start(&[
        "perf",
        "lat",
        "--bind",
        &dir.ipc("lat.sock"),
        "--size",
        "16",
        "--count",
        "200",
    ]);
    let endpoint = lat.bound();
    zocket(&["perf", "ping", "--connect", &endpoint, "--size", "16", "--count", "200"])
        .assert()
        .success()
        .stdout(
            predicate::str::is_match(
                r"^ping: 16 B x 200 round trips: p50 [0-9.]+ us, p90 [0-9.]+ us, p99 [0-9.]+ us, max [0-9.]+ us \(mean [0-9.]+ us\)\n$",
            )
            .unwrap(),
        );
    assert_success("perf lat", &lat.finish());
}

/// Every usage mistake: one line on stderr naming what was wrong and what is expected,
/// exit code 2, nothing on stdout, no panic.
#[test]
fn usage_mistakes_exit_with_code_2_and_one_clear_line() {
    let ep = "tcp://127.0.0.1:5555";
    let cases: &[(&[&str], &str)] = &[
        (
            &["push", "--data", "x"],
            "error: zocket push needs an endpoint: expected at least one --bind ENDPOINT or --connect ENDPOINT, such as --connect tcp://127.0.0.1:5555",
        ),
        (
            &["perf", "thr", "--size", "16"],
            "error: zocket perf thr needs an endpoint: expected --bind ENDPOINT or --connect ENDPOINT",
        ),
        (
            &["push", "--connect", ep, "--subscribe", "weather."],
            "error: --subscribe makes no sense for a push socket: only sub and xsub subscribe",
        ),
        (
            &["sub", "--connect", ep, "--data", "x"],
            "error: --data makes no sense for a sub socket: it only receives; the sockets that send are",
        ),
        (
            &["pull", "--bind", ep, "--wait-peers", "1"],
            "error: --wait-peers makes no sense for a pull socket: it only receives",
        ),
        (
            &["rep", "--bind", ep, "--echo", "--interval", "1s"],
            "error: --interval makes no sense for a rep socket: it only answers requests",
        ),
        (
            &["pub", "--bind", ep, "--format", "json"],
            "error: --format makes no sense for a pub socket: it never receives; the sockets that receive are",
        ),
        (
            &["push", "--connect", ep, "--recv-timeout", "1s"],
            "error: --recv-timeout makes no sense for a push socket: it never receives",
        ),
        (
            &["req", "--connect", ep, "--echo"],
            "error: --echo makes no sense for a req socket: only rep answers requests",
        ),
        (
            &["rep", "--bind", ep],
            "error: zocket rep needs to know how to answer: expected --reply TEXT, --echo or --exec CMD",
        ),
        (
            &["pub", "--bind", ep, "--identity", "me"],
            "error: --identity makes no sense for a pub socket: only req, dealer and router have a routing id",
        ),
        (
            &["router", "--bind", ep, "--data", "x"],
            "error: zocket router sends each message to the peer its first frame names: with --data or --file, also give --frames SEP and write PEER<SEP>BODY",
        ),
    ];
    for (args, expected) in cases {
        let output = zocket(args).output().expect("run zocket");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?} printed to stdout");
        assert!(stderr.starts_with(expected), "{args:?}: got {stderr:?}");
        assert_eq!(
            stderr.lines().count(),
            1,
            "{args:?}: more than one line: {stderr:?}"
        );
    }
}

/// What clap itself refuses (malformed values, conflicts, unknown words): exit code 2 and a
/// first line naming the value and what was expected.
#[test]
fn malformed_arguments_exit_with_code_2_and_say_what_was_expected() {
    let ep = "tcp://127.0.0.1:5555";
    let cases: &[(&[&str], &str)] = &[
        (
            &["push", "--connect", "tcp://127.0.0.1"],
            "error: invalid value 'tcp://127.0.0.1' for '--connect <ENDPOINT>': invalid endpoint \"tcp://127.0.0.1\": expected",
        ),
        (
            &["pull", "--bind", "localhost:5555"],
            "error: invalid value 'localhost:5555' for '--bind <ENDPOINT>': invalid endpoint \"localhost:5555\": expected an endpoint of the form tcp://host:port",
        ),
        (
            &["push", "--connect", ep, "--interval", "100"],
            "error: invalid value '100' for '--interval <DURATION>': expected a number with a unit",
        ),
        (
            &["pull", "--connect", ep, "--format", "yaml"],
            "error: invalid value 'yaml' for '--format <FORMAT>'",
        ),
        (
            &["pull", "--connect", ep, "--count", "0"],
            "error: invalid value '0' for '--count <N>'",
        ),
        (
            &["perf", "thr", "--bind", ep, "--size", "4 parsecs"],
            "error: invalid value '4 parsecs' for '--size <SIZE>': expected a byte count",
        ),
        (
            &["perf", "send", "--connect", ep, "--threads", "0"],
            "error: invalid value '0' for '--threads <N>'",
        ),
        (
            &["rep", "--bind", ep, "--echo", "--reply", "x"],
            "error: the argument '--echo' cannot be used with '--reply <TEXT>'",
        ),
        (
            &["push", "--connect", ep, "--data", "x", "--file", "f"],
            "error: the argument '--data <TEXT>' cannot be used with '--file <PATH>'",
        ),
        (&["stream", "--bind", ep], "error: unrecognized subcommand 'stream'"),
    ];
    for (args, expected) in cases {
        let output = zocket(args).output().expect("run zocket");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.starts_with(expected), "{args:?}: got {stderr:?}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn runtime_failures_exit_with_code_1() {
    let pull = Running::start(&["pull", "--bind", "tcp://127.0.0.1:0"]);
    let endpoint = pull.bound();
    zocket(&["pull", "--bind", &endpoint])
        .assert()
        .code(1)
        .stderr(predicate::str::starts_with(format!(
            "error: cannot bind {endpoint}: address in use"
        )));
    zocket(&[
        "push",
        "--connect",
        "tcp://127.0.0.1:5555",
        "--file",
        "/nonexistent/zocket",
    ])
    .assert()
    .code(1)
    .stderr(predicate::str::starts_with(
        "error: cannot read --file /nonexistent/zocket: ",
    ));
    // (mdns:// is not tried here: it would multicast outside a network namespace; the
    // library's tests/mdns.rs covers it inside one.)
    zocket(&["sub", "--bind", "dns://localhost:5555"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("can only be connected to"));
}

#[test]
fn help_lists_every_socket_type_perf_keygen_and_the_curve_flags() {
    zocket(&["--help"]).assert().success().stdout(
        predicate::str::contains("pub")
            .and(predicate::str::contains("router"))
            .and(predicate::str::contains("xpub"))
            .and(predicate::str::contains("xsub"))
            .and(predicate::str::contains("perf"))
            .and(predicate::str::contains("keygen"))
            .and(predicate::str::contains("Exit codes")),
    );
    // Every socket command and perf list the CURVE flags.
    for args in [&["rep", "--help"][..], &["perf", "ping", "--help"]] {
        zocket(args).assert().success().stdout(
            predicate::str::contains("--curve-secret-file")
                .and(predicate::str::contains("--curve-server-key"))
                .and(predicate::str::contains("--curve-allow"))
                .and(predicate::str::contains("ZOCKET_CURVE_SECRET")),
        );
    }
}

/// A libzmq peer from the library's interop tests (pyzmq), killed when dropped.
struct LibzmqPeer(Child);

impl Drop for LibzmqPeer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `tests/interop/peer.py` and waits for its "ready" line; `None` when pyzmq is not
/// installed (outside CI; in CI that fails the test).
fn libzmq_peer(args: &[&str]) -> Option<LibzmqPeer> {
    let have = Command::new("python3")
        .args(["-c", "import zmq"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        assert!(
            std::env::var_os("CI").is_none(),
            "pyzmq missing: .ci/run installs it"
        );
        eprintln!("skipping: python3 with pyzmq (libzmq) is not installed");
        return None;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/interop/peer.py");
    let mut child = Command::new("python3")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let out = lines(child.stdout.take().expect("stdout"));
    let first = out.recv_timeout(LIMIT).expect("libzmq peer ready");
    assert_eq!(first, "ready");
    Some(LibzmqPeer(child))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn sub_against_a_libzmq_pub() {
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let Some(_publisher) = libzmq_peer(&["pub", &ep, "a.topic"]) else {
        return;
    };
    zocket(&["sub", "--connect", &ep, "--subscribe", "a.", "--count", "2"])
        .assert()
        .success()
        .stdout(predicate::str::contains("a.topic").and(predicate::str::contains("skip.me").not()));
}

#[test]
fn req_against_a_libzmq_rep() {
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let Some(_rep) = libzmq_peer(&["rep", &ep, "1"]) else {
        return;
    };
    zocket(&["req", "--connect", &ep, "--data", "hello libzmq"])
        .assert()
        .success()
        .stdout(predicate::str::contains("re: hello libzmq"));
}

/// A key pair made by `zocket keygen`, as its two Z85 lines.
struct Keys {
    public: String,
    secret: String,
}

fn keygen() -> Keys {
    let output = zocket(&["keygen"]).output().expect("run zocket keygen");
    assert!(output.status.success(), "zocket keygen failed");
    let text = String::from_utf8(output.stdout).expect("keygen prints text");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "two lines: {text:?}");
    let public = lines[0]
        .strip_prefix("public: ")
        .expect("first line: public: KEY");
    let secret = lines[1]
        .strip_prefix("secret: ")
        .expect("second line: secret: KEY");
    Keys {
        public: public.to_owned(),
        secret: secret.to_owned(),
    }
}

#[test]
fn keygen_prints_a_public_and_a_secret_key_of_one_pair() {
    let keys = keygen();
    let public: zocket::curve::PublicKey = keys.public.parse().expect("public key in Z85");
    let secret: zocket::curve::SecretKey = keys.secret.parse().expect("secret key in Z85");
    assert_eq!(keys.public.len(), 40);
    assert_eq!(keys.secret.len(), 40);
    assert_eq!(
        secret.public_key(),
        public,
        "the public key is the secret's"
    );
    assert_ne!(keygen().secret, keys.secret, "each run makes a new pair");
}

#[test]
fn a_curve_req_is_answered_by_a_curve_rep_over_tcp_and_ipc() {
    let dir = TempDir::new();
    for endpoint in ["tcp://127.0.0.1:0".to_owned(), dir.ipc("curve.sock")] {
        let server = keygen();
        let rep = Running::start(&[
            "rep",
            "--bind",
            &endpoint,
            "--curve-secret",
            &server.secret,
            "--echo",
            "--count",
            "1",
        ]);
        // Said before the bound endpoint: the server's public key, and that it lets in any client.
        let warning = rep.stderr_after("CURVE server ");
        assert!(
            warning.starts_with(&server.public) && warning.contains("no --curve-allow"),
            "a server without an allow-list says it authenticates nobody: {warning}"
        );
        let bound = rep.bound();
        zocket(&[
            "req",
            "--connect",
            &bound,
            "--curve-server-key",
            &server.public,
        ])
        .write_stdin("secret hello\n")
        .assert()
        .success()
        .stdout("secret hello\n");
        let finished = rep.finish();
        assert_success("rep", &finished);
        assert_eq!(finished.1, "secret hello\n");
    }
}

/// The server's secret from a `zocket keygen` file, the listed client's from the
/// environment; an unlisted client and one with the wrong server key get no answer (exit 1)
/// and the server's monitor names the refused key, while the listed client is served.
#[test]
fn curve_allow_refuses_unlisted_clients_and_wrong_server_keys_while_serving_a_listed_one() {
    let dir = TempDir::new();
    let server = keygen();
    let listed = keygen();
    let unlisted = keygen();
    let key_file = dir.0.join("server.key");
    std::fs::write(
        &key_file,
        format!("public: {}\nsecret: {}\n", server.public, server.secret),
    )
    .unwrap();
    let rep = Running::start(&[
        "rep",
        "--bind",
        "tcp://127.0.0.1:0",
        "--curve-secret-file",
        key_file.to_str().unwrap(),
        "--curve-allow",
        &listed.public,
        "--echo",
        "--count",
        "1",
        "--monitor",
    ]);
    let endpoint = rep.bound();
    let refused = zocket(&[
        "req",
        "--connect",
        &endpoint,
        "--curve-server-key",
        &server.public,
        "--curve-secret",
        &unlisted.secret,
        "--data",
        "let me in",
        "--recv-timeout",
        "1s",
        "--monitor",
    ])
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(refused.stdout.is_empty());
    assert!(stderr.contains("ERROR 400"), "{stderr}");
    let server_says = rep.stderr_after("handshake with ");
    assert!(
        server_says.contains(&unlisted.public) && server_says.contains("refused"),
        "the server's monitor names the refused key: {server_says}"
    );
    let wrong = zocket(&[
        "req",
        "--connect",
        &endpoint,
        "--curve-server-key",
        &unlisted.public,
        "--data",
        "who are you",
        "--recv-timeout",
        "1s",
    ])
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert_eq!(wrong.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("handshake with ") && stderr.contains("another server key"),
        "a failed handshake is printed without --monitor: {stderr}"
    );
    zocket(&[
        "req",
        "--connect",
        &endpoint,
        "--curve-server-key",
        &server.public,
    ])
    .env("ZOCKET_CURVE_SECRET", &listed.secret)
    .write_stdin("listed\n")
    .assert()
    .success()
    .stdout("listed\n");
    let finished = rep.finish();
    assert_success("rep", &finished);
    assert_eq!(
        finished.1, "listed\n",
        "only the listed client's request arrived"
    );
}

#[test]
fn perf_lat_and_ping_measure_over_curve() {
    let server = keygen();
    let lat = Running::start(&[
        "perf",
        "lat",
        "--bind",
        "tcp://127.0.0.1:0",
        "--count",
        "20",
        "--curve-secret",
        &server.secret,
    ]);
    let endpoint = lat.bound();
    zocket(&[
        "perf",
        "ping",
        "--connect",
        &endpoint,
        "--count",
        "20",
        "--curve-server-key",
        &server.public,
    ])
    .assert()
    .success()
    .stdout(predicate::str::contains("p50"));
    assert_success("perf lat", &lat.finish());
}

/// Bad keys and CURVE flags that do not fit together: exit code 2, one line naming the flag
/// (or variable), and never the secret that was given.
#[test]
fn bad_curve_keys_are_usage_errors_naming_the_flag() {
    let ep = "tcp://127.0.0.1:5555";
    let good = keygen();
    let missing = std::env::temp_dir().join("zocket-cli-test-no-such-key-file");
    let missing = missing.to_str().unwrap();
    let cases: &[(&[&str], Option<&str>, &str)] = &[
        (
            &["rep", "--bind", ep, "--echo", "--curve-secret", "s3cr3t-typo"],
            None,
            "error: --curve-secret: not a CURVE secret key: a CURVE key is 40 Z85 characters, this one has 11",
        ),
        (
            &["req", "--connect", ep, "--curve-server-key", "nope"],
            None,
            "error: invalid value 'nope' for '--curve-server-key <KEY>': not a CURVE public key",
        ),
        (
            &["rep", "--bind", ep, "--echo", "--curve-secret", &good.secret, "--curve-allow", "x"],
            None,
            "error: invalid value 'x' for '--curve-allow <KEY>': not a CURVE public key",
        ),
        (
            &["rep", "--bind", ep, "--echo", "--curve-secret-file", missing],
            None,
            "error: --curve-secret-file ",
        ),
        (
            &["rep", "--bind", ep, "--echo"],
            Some("s3cr3t-typo"),
            "error: ZOCKET_CURVE_SECRET: not a CURVE secret key",
        ),
        (
            &["rep", "--bind", ep, "--echo", "--curve-allow", &good.public],
            None,
            "error: --curve-allow needs a server secret key",
        ),
        (
            &["perf", "thr", "--bind", ep, "--curve-secret", "s3cr3t-typo"],
            None,
            "error: --curve-secret: not a CURVE secret key",
        ),
    ];
    for (args, env, expected) in cases {
        let mut cmd = zocket(args);
        if let Some(value) = env {
            cmd.env("ZOCKET_CURVE_SECRET", value);
        }
        let output = cmd.output().expect("run zocket");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.starts_with(expected), "{args:?}: got {stderr:?}");
        assert!(
            !stderr.contains("s3cr3t-typo"),
            "the secret is echoed: {stderr}"
        );
        assert!(output.stdout.is_empty(), "{args:?} printed to stdout");
    }
}

fn have_pyzmq_curve() -> bool {
    let ok = Command::new("python3")
        .args([
            "-c",
            "import zmq, sys; sys.exit(0 if zmq.has('curve') else 1)",
        ])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "pyzmq with CURVE is missing: .ci/run installs it"
        );
        eprintln!("skipping: python3 with pyzmq (libzmq with CURVE) is not installed");
    }
    ok
}

/// A python child running `script` with `args`, its stdout read line by line; killed on drop.
fn python(script: &str, args: &[&str]) -> (LibzmqPeer, Receiver<String>) {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let out = lines(child.stdout.take().expect("stdout"));
    (LibzmqPeer(child), out)
}

const PYZMQ_CURVE_REQ: &str = r#"
import sys, zmq
req = zmq.Context().socket(zmq.REQ)
req.curve_serverkey = sys.argv[2].encode()
req.curve_publickey, req.curve_secretkey = zmq.curve_keypair()
req.rcvtimeo = 20000
req.linger = 0
req.connect(sys.argv[1])
req.send(b"from libzmq")
print(req.recv().decode(), flush=True)
"#;

#[test]
fn a_pyzmq_curve_req_is_answered_by_zocket_rep_curve_secret() {
    if !have_pyzmq_curve() {
        return;
    }
    let server = keygen();
    let rep = Running::start(&[
        "rep",
        "--bind",
        "tcp://127.0.0.1:0",
        "--curve-secret",
        &server.secret,
        "--reply",
        "from zocket",
        "--count",
        "1",
    ]);
    let endpoint = rep.bound();
    let (_py, out) = python(PYZMQ_CURVE_REQ, &[&endpoint, &server.public]);
    assert_eq!(
        out.recv_timeout(LIMIT).expect("pyzmq got a reply"),
        "from zocket"
    );
    let finished = rep.finish();
    assert_success("rep", &finished);
    assert_eq!(finished.1, "from libzmq\n");
}

const PYZMQ_CURVE_REP: &str = r#"
import sys, zmq
rep = zmq.Context().socket(zmq.REP)
rep.curve_server = True
rep.curve_secretkey = sys.argv[2].encode()
rep.rcvtimeo = 20000
port = rep.bind_to_random_port("tcp://127.0.0.1")
print(port, flush=True)
rep.send(b"re: " + rep.recv())
print("done", flush=True)
"#;

#[test]
fn zocket_req_curve_server_key_is_answered_by_a_pyzmq_curve_rep() {
    if !have_pyzmq_curve() {
        return;
    }
    let server = keygen();
    // pyzmq picks its own port: a port from `free_port` could be taken by another test's
    // process before python binds it.
    let (_py, out) = python(PYZMQ_CURVE_REP, &["unused", &server.secret]);
    let port = out.recv_timeout(LIMIT).expect("pyzmq bound");
    let ep = format!("tcp://127.0.0.1:{port}");
    // --monitor: should this fail again, its output says how far each connection got.
    zocket(&[
        "req",
        "--connect",
        &ep,
        "--curve-server-key",
        &server.public,
        "--data",
        "hello libzmq",
        "--monitor",
    ])
    .assert()
    .success()
    .stdout("re: hello libzmq\n");
    assert_eq!(out.recv_timeout(LIMIT).expect("pyzmq done"), "done");
}
