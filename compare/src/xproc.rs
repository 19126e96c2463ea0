//! The cross-process cells: a receiving and a sending process on loopback TCP, either
//! `zocket perf` (the CLI in cli/) or `zmqperf` (c/zmqperf.c, compiled here against the
//! system libzmq).

use std::net::{Ipv4Addr, TcpListener as StdTcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Res;

/// How long one pair of processes may take before both are killed.
const PAIR_TIMEOUT: Duration = Duration::from_secs(30);

/// Which program plays both roles.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Prog {
    /// `zocket perf thr|send|lat|ping` (native wire, default options).
    Zocket,
    /// `zmqperf thr|send|lat|ping` on libzmq.
    Libzmq,
    /// libzmq binds (`zmqperf thr`, `lat`), zocket connects (`zocket perf send`, `ping`):
    /// zocket speaking ZMTP to libzmq.
    ZocketToLibzmq,
}

/// The programs found or built for this run.
#[derive(Debug, Default)]
pub struct Progs {
    /// The `zocket` binary, if found.
    pub zocket: Option<PathBuf>,
    /// The compiled `zmqperf`, if libzmq's headers and a C compiler were there.
    pub zmqperf: Option<PathBuf>,
    /// The libzmq version `zmqperf` reports (from `pkg-config`, if any).
    pub libzmq_version: Option<String>,
}

impl Progs {
    fn path(&self, prog: Prog) -> Option<&Path> {
        match prog {
            Prog::Zocket => self.zocket.as_deref(),
            Prog::Libzmq => self.zmqperf.as_deref(),
            Prog::ZocketToLibzmq => None,
        }
    }

    /// Whether every program `prog` needs is here.
    pub fn has(&self, prog: Prog) -> bool {
        match prog {
            Prog::Zocket => self.zocket.is_some(),
            Prog::Libzmq => self.zmqperf.is_some(),
            Prog::ZocketToLibzmq => self.zocket.is_some() && self.zmqperf.is_some(),
        }
    }
}

/// Finds the `zocket` binary: `--zocket PATH`, else beside this executable (cargo puts
/// both in target/release), else builds it with the cargo that runs us. Says why not.
pub fn find_zocket(explicit: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("--zocket {}: no such file", p.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe.parent().ok_or("no directory for this executable")?;
    let beside = dir.join("zocket");
    // Build (or bring up to date) the CLI with the same profile as this binary, when cargo
    // runs us; a stale CLI would measure old code.
    if let Some(cargo) = std::env::var_os("CARGO") {
        let release = dir.file_name().is_some_and(|n| n == "release");
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", "zocket-cli"]);
        if release {
            cmd.arg("--release");
        }
        eprintln!(
            "building the zocket CLI (cargo build -p zocket-cli{})...",
            if release { " --release" } else { "" }
        );
        match cmd.status() {
            Ok(s) if s.success() => {}
            Ok(s) => return Err(format!("cargo build -p zocket-cli failed: {s}")),
            Err(e) => return Err(format!("cannot run cargo: {e}")),
        }
    }
    if beside.is_file() {
        Ok(beside)
    } else {
        Err(format!(
            "no zocket binary at {} (build it with `cargo build --release -p zocket-cli` or pass --zocket PATH)",
            beside.display()
        ))
    }
}

/// Compiles c/zmqperf.c against the system libzmq into a temporary directory. Says why not
/// (no C compiler, no `zmq.h`: `apt-get install libzmq3-dev`).
pub fn build_zmqperf() -> Result<PathBuf, String> {
    const SOURCE: &str = include_str!("../c/zmqperf.c");
    let dir = std::env::temp_dir().join(format!("zocket-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let src = dir.join("zmqperf.c");
    let bin = dir.join("zmqperf");
    std::fs::write(&src, SOURCE).map_err(|e| format!("{}: {e}", src.display()))?;
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args(["-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .arg("-lzmq")
        .output()
        .map_err(|e| format!("cannot run the C compiler `{cc}`: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let hint = if err.contains("zmq.h") {
            " (libzmq's headers are missing: `apt-get install libzmq3-dev`)"
        } else {
            ""
        };
        return Err(format!(
            "compiling zmqperf failed{hint}: {}",
            err.lines().next().unwrap_or("")
        ));
    }
    Ok(bin)
}

/// The system libzmq's version, from pkg-config.
pub fn libzmq_version() -> Option<String> {
    let out = Command::new("pkg-config")
        .args(["--modversion", "libzmq"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Removes the temporary directory of `zmqperf`.
pub fn cleanup(progs: &Progs) {
    if let Some(dir) = progs.zmqperf.as_deref().and_then(Path::parent) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A CURVE server key pair for one cell, as Z85 text: (public, secret).
pub type CurveKeys = (String, String);

/// One throughput run: receiver `thr` binds, sender `send` connects. Returns messages per
/// second at the receiver and the receiver's peak RSS in KiB (`VmHWM`: the larger of what the
/// receiver reports and what was sampled while it ran).
pub fn throughput(
    progs: &Progs,
    prog: Prog,
    size: usize,
    count: u64,
    curve: Option<&CurveKeys>,
) -> Res<(f64, Option<u64>)> {
    let ((recv_out, _), sampled) = pair(progs, prog, ("thr", "send"), size, count, curve)?;
    // Both receivers report their own VmHWM when done, which a 5 ms sample can miss the end
    // of; the sample is the fallback (and a peak after the report, at exit, still counts).
    let reported = field(&recv_out, "peak_rss_kib").ok().map(|kib| kib as u64);
    Ok((field(&recv_out, "msgs_per_s")?, sampled.max(reported)))
}

/// One latency run: `lat` binds and echoes, `ping` connects and times. Returns (p50, p99) µs.
pub fn latency(
    progs: &Progs,
    prog: Prog,
    size: usize,
    count: u64,
    curve: Option<&CurveKeys>,
) -> Res<(f64, f64)> {
    let ((_, ping_out), _) = pair(progs, prog, ("lat", "ping"), size, count, curve)?;
    Ok((field(&ping_out, "p50_us")?, field(&ping_out, "p99_us")?))
}

/// Starts the binding role, then the connecting one; waits for both (killing both after
/// [`PAIR_TIMEOUT`]); returns both standard outputs and the binding process's peak RSS.
fn pair(
    progs: &Progs,
    prog: Prog,
    (bind_role, connect_role): (&str, &str),
    size: usize,
    count: u64,
    curve: Option<&CurveKeys>,
) -> Res<((String, String), Option<u64>)> {
    let port = StdTcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port();
    let ep = format!("tcp://127.0.0.1:{port}");
    let command = |role: &str, binds: bool| -> Res<Command> {
        let prog = match prog {
            Prog::ZocketToLibzmq if binds => Prog::Libzmq,
            Prog::ZocketToLibzmq => Prog::Zocket,
            p => p,
        };
        let bin = progs.path(prog).ok_or("program not available")?;
        let mut c = Command::new(bin);
        match prog {
            Prog::Zocket => {
                c.args([
                    "perf",
                    role,
                    if binds { "--bind" } else { "--connect" },
                    &ep,
                ]);
                c.args(["--size", &size.to_string(), "--count", &count.to_string()]);
                c.args(["--json", "--quiet"]);
                c.env_remove("ZOCKET_CURVE_SECRET");
                if let Some((public, secret)) = curve {
                    if binds {
                        // The environment, not the command line: a secret in argv shows in ps.
                        c.env("ZOCKET_CURVE_SECRET", secret);
                    } else {
                        c.args(["--curve-server-key", public]);
                    }
                }
            }
            Prog::Libzmq => {
                c.args([role, &ep, &size.to_string(), &count.to_string()]);
                if let Some((public, secret)) = curve {
                    c.arg(if binds { secret } else { public });
                }
            }
            Prog::ZocketToLibzmq => unreachable!("resolved to one program per role above"),
        }
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Ok(c)
    };
    let mut receiver = Killer(Some(command(bind_role, true)?.spawn()?));
    let mut sender = Killer(Some(command(connect_role, false)?.spawn()?));
    let deadline = Instant::now() + PAIR_TIMEOUT;
    let mut rss = None;
    loop {
        if let Some(kib) = vm_hwm(receiver.child().id()) {
            rss = Some(kib);
        }
        let r_done = receiver.child().try_wait()?.is_some();
        let s_done = sender.child().try_wait()?.is_some();
        if r_done && s_done {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("{bind_role}/{connect_role} pair timed out").into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = |k: Killer, role: &str| -> Res<String> {
        let o = k.into_output()?;
        if !o.status.success() {
            return Err(format!(
                "{role} failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            )
            .into());
        }
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let r = out(receiver, bind_role)?;
    let s = out(sender, connect_role)?;
    Ok(((r, s), rss))
}

/// A child process that is killed (by its own id) if dropped before it was waited for.
struct Killer(Option<Child>);

impl Killer {
    fn child(&mut self) -> &mut Child {
        self.0
            .as_mut()
            .expect("a Killer holds its child until into_output")
    }

    fn into_output(mut self) -> std::io::Result<std::process::Output> {
        self.0
            .take()
            .expect("a Killer holds its child until into_output")
            .wait_with_output()
    }
}

impl Drop for Killer {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

/// The peak resident set (`VmHWM`, KiB) of a running process.
fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The number after `key` in `out` (`"key":N` of JSON or `key=N`).
fn field(out: &str, key: &str) -> Res<f64> {
    let at = out
        .find(key)
        .ok_or_else(|| format!("no {key} in the output {out:?}"))?;
    let rest = out[at + key.len()..].trim_start_matches(['"', ':', '=', ' ']);
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    rest[..end]
        .parse()
        .map_err(|_| format!("no number after {key} in {out:?}").into())
}
