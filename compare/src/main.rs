//! zocket's comparison benchmark: zocket against zmq.rs, rzmq, omq-tokio, a raw tokio
//! stream and libzmq, in one run, printed as one markdown table. See compare/README.md.
//!
//! ```text
//! cargo run --release -p zocket-compare -- [--quick] [--runs N] [--zocket PATH] [--no-processes]
//! ```

mod inproc;
mod xproc;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use inproc::{Bound, Lib};
use xproc::{Prog, Progs};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Res<T> = Result<T, BoxError>;

/// Hard limit for one in-process cell (set-up, warm-up, measurement).
const CELL_TIMEOUT: Duration = Duration::from_secs(15);
/// Push/Pull message sizes.
const SIZES: [usize; 4] = [16, 256, 4096, 65536];
/// Req/Rep message size.
const LAT_SIZE: usize = 16;

/// A spawned task that is aborted when dropped (so a timed-out cell leaves nothing behind).
struct Task<T>(tokio::task::JoinHandle<T>);

impl<T: Send + 'static> Task<T> {
    fn spawn(f: impl Future<Output = T> + Send + 'static) -> Self {
        Task(tokio::spawn(f))
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> Future for Task<T> {
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.expect("benchmark task panicked"))
    }
}

/// Percentiles of round-trip samples, in microseconds.
#[derive(Debug, Clone, Copy)]
struct Latency {
    p50: f64,
    p99: f64,
}

impl Latency {
    fn from_samples(mut samples: Vec<Duration>) -> Latency {
        if samples.is_empty() {
            return Latency {
                p50: f64::NAN,
                p99: f64::NAN,
            };
        }
        samples.sort_unstable();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let at = |q: f64| us(samples[((samples.len() - 1) as f64 * q).round() as usize]);
        Latency {
            p50: at(0.50),
            p99: at(0.99),
        }
    }
}

/// The table's columns.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Col {
    Native,
    Zmtp,
    ZmqRs,
    Rzmq,
    Omq,
    Libzmq,
    ZocketToLibzmq,
    Raw,
}

const COLS: [(Col, &str); 8] = [
    (Col::Native, "**zocket native**"),
    (Col::Zmtp, "zocket ZMTP"),
    (Col::ZmqRs, "zmq.rs"),
    (Col::Rzmq, "rzmq"),
    (Col::Omq, "omq-tokio"),
    (Col::Libzmq, "libzmq"),
    (Col::ZocketToLibzmq, "zocket→libzmq"),
    (Col::Raw, "raw tokio"),
];

/// The competitors zocket native is compared with (zocket ZMTP is zocket; raw tokio is
/// the floor, shown in its own ratio column).
const COMPETITORS: [Col; 4] = [Col::ZmqRs, Col::Rzmq, Col::Omq, Col::Libzmq];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Flavour {
    MultiThread,
    CurrentThread,
}

impl Flavour {
    fn name(self) -> &'static str {
        match self {
            Flavour::MultiThread => "2 workers",
            Flavour::CurrentThread => "current_thread",
        }
    }

    fn runtime(self) -> std::io::Result<tokio::runtime::Runtime> {
        match self {
            Flavour::MultiThread => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build(),
            Flavour::CurrentThread => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
        }
    }
}

/// What a row measures, which decides the unit and which way is better.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Unit {
    MsgPerSec,
    Micros,
    MiB,
}

/// One measurement to repeat: it fills one cell (or two: p50 and p99).
#[derive(Clone, Debug)]
enum Job {
    Thr {
        flavour: Flavour,
        lib: Lib,
        size: usize,
    },
    Lat {
        flavour: Flavour,
        lib: Lib,
    },
    ProcThr {
        prog: Prog,
        size: usize,
        curve: bool,
    },
    ProcLat {
        prog: Prog,
        curve: bool,
    },
}

/// Work per run.
#[derive(Clone, Copy, Debug)]
struct Plan {
    runs: usize,
    /// Multiplies message counts and time caps (`--quick` makes it small).
    scale: f64,
}

impl Plan {
    fn scaled(&self, n: u64) -> u64 {
        ((n as f64 * self.scale) as u64).max(10)
    }

    fn thr_bound(&self, size: usize) -> Bound {
        let count = match size {
            0..=64 => 3_000_000,
            65..=1024 => 1_500_000,
            1025..=8192 => 300_000,
            _ => 30_000,
        };
        Bound {
            warmup: self.scaled(count / 40),
            count: self.scaled(count),
            time: Duration::from_secs_f64(0.6 * self.scale.clamp(0.2, 1.0)),
        }
    }

    fn lat_bound(&self) -> Bound {
        Bound {
            warmup: self.scaled(1_000),
            count: self.scaled(20_000),
            time: Duration::from_secs_f64(0.6 * self.scale.clamp(0.2, 1.0)),
        }
    }

    /// Messages per cross-process throughput run (no time cap there: both programs take a
    /// count, as libzmq's perf tools do).
    fn proc_thr_count(&self, size: usize, curve: bool) -> u64 {
        let n = match (size, curve) {
            (0..=64, false) => 1_000_000,
            (65..=1024, false) => 600_000,
            (1025..=8192, false) => 150_000,
            (_, false) => 15_000,
            (0..=64, true) => 300_000,
            (65..=1024, true) => 150_000,
            (1025..=8192, true) => 30_000,
            (_, true) => 2_000,
        };
        self.scaled(n)
    }

    fn proc_lat_count(&self) -> u64 {
        self.scaled(5_000)
    }
}

struct Args {
    quick: bool,
    runs: Option<usize>,
    zocket: Option<PathBuf>,
    processes: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        quick: false,
        runs: None,
        zocket: None,
        processes: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--runs" => {
                let v = it.next().ok_or("--runs needs a number")?;
                a.runs = Some(
                    v.parse()
                        .ok()
                        .filter(|&n: &usize| n > 0)
                        .ok_or(format!("--runs {v}: expected a positive number"))?,
                );
            }
            "--zocket" => {
                a.zocket = Some(it.next().ok_or("--zocket needs a path")?.into());
            }
            "--no-processes" => a.processes = false,
            "--help" | "-h" => {
                println!(
                    "zocket-compare [--quick] [--runs N] [--zocket PATH] [--no-processes]\n\n\
                     Measures zocket against zmq.rs, rzmq, omq-tokio, raw tokio and libzmq over\n\
                     loopback TCP and prints one markdown table (medians of N runs, default 5).\n\
                     --quick         one run of few messages (a smoke test)\n\
                     --runs N        runs per cell (median shown)\n\
                     --zocket PATH   the zocket CLI for the cross-process rows\n\
                     --no-processes  skip the cross-process rows"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other} (try --help)")),
        }
    }
    Ok(a)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("zocket-compare: {e}");
            std::process::exit(2);
        }
    };
    let plan = Plan {
        runs: args.runs.unwrap_or(if args.quick { 1 } else { 5 }),
        scale: if args.quick { 0.02 } else { 1.0 },
    };
    let started = Instant::now();
    let load_start = loadavg();

    let mut progs = Progs::default();
    let mut skipped = Vec::new();
    if args.processes {
        match xproc::find_zocket(args.zocket.clone()) {
            Ok(p) => progs.zocket = Some(p),
            Err(e) => skipped.push(format!("zocket perf rows skipped: {e}")),
        }
        match xproc::build_zmqperf() {
            Ok(p) => {
                progs.zmqperf = Some(p);
                progs.libzmq_version = xproc::libzmq_version();
            }
            Err(e) => skipped.push(format!("libzmq rows skipped: {e}")),
        }
    } else {
        skipped.push("cross-process rows skipped (--no-processes)".into());
    }

    let jobs = jobs(&progs);
    let mut samples: HashMap<(usize, Col), Vec<f64>> = HashMap::new();
    let mut notes: Vec<String> = Vec::new();
    for run in 0..plan.runs {
        eprintln!(
            "run {}/{} ({} cells), load {}",
            run + 1,
            plan.runs,
            jobs.len(),
            loadavg()
        );
        for job in &jobs {
            let t = Instant::now();
            let got = execute(job, &plan, &progs);
            match got {
                Ok(values) => {
                    for (row, col, v) in values {
                        if v.is_finite() {
                            samples.entry((row, col)).or_default().push(v);
                        }
                    }
                }
                Err(e) => {
                    let note = format!("{}: {e}", describe(job));
                    eprintln!("  {note}");
                    if !notes.contains(&note) {
                        notes.push(note);
                    }
                }
            }
            eprintln!(
                "  {:<58} {:>6.2} s",
                describe(job),
                t.elapsed().as_secs_f64()
            );
        }
    }

    print_report(
        &plan,
        &progs,
        &samples,
        &notes,
        &skipped,
        &load_start,
        started,
    );
    xproc::cleanup(&progs);
}

/// The rows, in table order: (label, unit).
const ROWS: &[(&str, Unit)] = &[
    // 0..=5: in process, 2 workers
    ("push/pull 16 B, 2 workers", Unit::MsgPerSec),
    ("push/pull 256 B, 2 workers", Unit::MsgPerSec),
    ("push/pull 4 KiB, 2 workers", Unit::MsgPerSec),
    ("push/pull 64 KiB, 2 workers", Unit::MsgPerSec),
    ("req/rep 16 B p50, 2 workers", Unit::Micros),
    ("req/rep 16 B p99, 2 workers", Unit::Micros),
    // 6..=11: in process, current_thread
    ("push/pull 16 B, current_thread", Unit::MsgPerSec),
    ("push/pull 256 B, current_thread", Unit::MsgPerSec),
    ("push/pull 4 KiB, current_thread", Unit::MsgPerSec),
    ("push/pull 64 KiB, current_thread", Unit::MsgPerSec),
    ("req/rep 16 B p50, current_thread", Unit::Micros),
    ("req/rep 16 B p99, current_thread", Unit::Micros),
    // 12..=18: two processes
    ("2 processes: push/pull 16 B", Unit::MsgPerSec),
    ("2 processes: push/pull 256 B", Unit::MsgPerSec),
    ("2 processes: push/pull 4 KiB", Unit::MsgPerSec),
    ("2 processes: push/pull 64 KiB", Unit::MsgPerSec),
    ("2 processes: req/rep 16 B p50", Unit::Micros),
    ("2 processes: req/rep 16 B p99", Unit::Micros),
    ("2 processes: receiver peak RSS, 16 B", Unit::MiB),
    // 19..=23: CURVE, in process, 2 workers
    ("CURVE push/pull 16 B, 2 workers", Unit::MsgPerSec),
    ("CURVE push/pull 256 B, 2 workers", Unit::MsgPerSec),
    ("CURVE push/pull 4 KiB, 2 workers", Unit::MsgPerSec),
    ("CURVE push/pull 64 KiB, 2 workers", Unit::MsgPerSec),
    ("CURVE req/rep 16 B p50, 2 workers", Unit::Micros),
    // 24..=28: CURVE, two processes
    ("CURVE 2 processes: push/pull 16 B", Unit::MsgPerSec),
    ("CURVE 2 processes: push/pull 256 B", Unit::MsgPerSec),
    ("CURVE 2 processes: push/pull 4 KiB", Unit::MsgPerSec),
    ("CURVE 2 processes: push/pull 64 KiB", Unit::MsgPerSec),
    ("CURVE 2 processes: req/rep 16 B p50", Unit::Micros),
];

const ROW_PROC_RSS: usize = 18;

/// The first row of a block of four Push/Pull rows and two Req/Rep rows.
fn block(flavour: Flavour) -> usize {
    match flavour {
        Flavour::MultiThread => 0,
        Flavour::CurrentThread => 6,
    }
}

fn size_index(size: usize) -> usize {
    SIZES
        .iter()
        .position(|&s| s == size)
        .expect("a listed size")
}

fn jobs(progs: &Progs) -> Vec<Job> {
    let mut jobs = Vec::new();
    for flavour in [Flavour::MultiThread, Flavour::CurrentThread] {
        for size in SIZES {
            for lib in [
                Lib::Native,
                Lib::Zmtp,
                Lib::ZmqRs,
                Lib::Rzmq,
                Lib::Omq,
                Lib::Raw,
            ] {
                jobs.push(Job::Thr { flavour, lib, size });
            }
        }
        for lib in [
            Lib::Native,
            Lib::Zmtp,
            Lib::ZmqRs,
            Lib::Rzmq,
            Lib::Omq,
            Lib::Raw,
        ] {
            jobs.push(Job::Lat { flavour, lib });
        }
    }
    let available = |curve: bool| -> Vec<Prog> {
        let progs_of_row: &[Prog] = if curve {
            &[Prog::Zocket, Prog::Libzmq]
        } else {
            &[Prog::Zocket, Prog::Libzmq, Prog::ZocketToLibzmq]
        };
        progs_of_row
            .iter()
            .copied()
            .filter(|&p| progs.has(p))
            .collect()
    };
    for curve in [false, true] {
        if curve {
            for size in SIZES {
                for lib in [Lib::NativeCurve, Lib::ZmtpCurve] {
                    jobs.push(Job::Thr {
                        flavour: Flavour::MultiThread,
                        lib,
                        size,
                    });
                }
            }
            for lib in [Lib::NativeCurve, Lib::ZmtpCurve] {
                jobs.push(Job::Lat {
                    flavour: Flavour::MultiThread,
                    lib,
                });
            }
        }
        for size in SIZES {
            for prog in available(curve) {
                jobs.push(Job::ProcThr { prog, size, curve });
            }
        }
        for prog in available(curve) {
            jobs.push(Job::ProcLat { prog, curve });
        }
    }
    jobs
}

fn lib_name(lib: Lib) -> &'static str {
    match lib {
        Lib::Native => "zocket native",
        Lib::Zmtp => "zocket ZMTP",
        Lib::ZmqRs => "zmq.rs",
        Lib::Rzmq => "rzmq",
        Lib::Omq => "omq-tokio",
        Lib::Raw => "raw tokio",
        Lib::NativeCurve => "zocket native CURVE",
        Lib::ZmtpCurve => "zocket ZMTP CURVE",
    }
}

fn prog_name(prog: Prog, curve: bool) -> String {
    let p = match prog {
        Prog::Zocket => "zocket perf",
        Prog::Libzmq => "libzmq zmqperf",
        Prog::ZocketToLibzmq => "zocket perf -> libzmq zmqperf",
    };
    if curve {
        format!("{p} CURVE")
    } else {
        p.to_string()
    }
}

fn describe(job: &Job) -> String {
    match job {
        Job::Thr { flavour, lib, size } => format!(
            "push/pull {} {} ({})",
            size_name(*size),
            lib_name(*lib),
            flavour.name()
        ),
        Job::Lat { flavour, lib } => format!("req/rep {} ({})", lib_name(*lib), flavour.name()),
        Job::ProcThr { prog, size, curve } => {
            format!(
                "2 processes push/pull {} {}",
                size_name(*size),
                prog_name(*prog, *curve)
            )
        }
        Job::ProcLat { prog, curve } => format!("2 processes req/rep {}", prog_name(*prog, *curve)),
    }
}

fn col_of(lib: Lib) -> Col {
    match lib {
        Lib::Native | Lib::NativeCurve => Col::Native,
        Lib::Zmtp | Lib::ZmtpCurve => Col::Zmtp,
        Lib::ZmqRs => Col::ZmqRs,
        Lib::Rzmq => Col::Rzmq,
        Lib::Omq => Col::Omq,
        Lib::Raw => Col::Raw,
    }
}

fn prog_col(prog: Prog) -> Col {
    match prog {
        Prog::Zocket => Col::Native,
        Prog::Libzmq => Col::Libzmq,
        Prog::ZocketToLibzmq => Col::ZocketToLibzmq,
    }
}

/// Runs one job once; returns the cells it filled.
fn execute(job: &Job, plan: &Plan, progs: &Progs) -> Res<Vec<(usize, Col, f64)>> {
    match job.clone() {
        Job::Thr { flavour, lib, size } => {
            let curve = matches!(lib, Lib::NativeCurve | Lib::ZmtpCurve);
            let row = if curve { 19 } else { block(flavour) } + size_index(size);
            let rate = in_runtime(flavour, inproc::throughput(lib, size, plan.thr_bound(size)))?;
            Ok(vec![(row, col_of(lib), rate)])
        }
        Job::Lat { flavour, lib } => {
            let l = in_runtime(flavour, inproc::latency(lib, LAT_SIZE, plan.lat_bound()))?;
            if matches!(lib, Lib::NativeCurve | Lib::ZmtpCurve) {
                Ok(vec![(23, col_of(lib), l.p50)])
            } else {
                let row = block(flavour) + 4;
                Ok(vec![
                    (row, col_of(lib), l.p50),
                    (row + 1, col_of(lib), l.p99),
                ])
            }
        }
        Job::ProcThr { prog, size, curve } => {
            let keys = curve.then(curve_keys);
            let count = plan.proc_thr_count(size, curve);
            let (rate, rss) = xproc::throughput(progs, prog, size, count, keys.as_ref())?;
            let row = if curve { 24 } else { 12 } + size_index(size);
            let mut cells = vec![(row, prog_col(prog), rate)];
            if let (false, 16, Some(kib), false) = (curve, size, rss, prog == Prog::ZocketToLibzmq)
            {
                cells.push((ROW_PROC_RSS, prog_col(prog), kib as f64 / 1024.0));
            }
            Ok(cells)
        }
        Job::ProcLat { prog, curve } => {
            let keys = curve.then(curve_keys);
            let (p50, p99) =
                xproc::latency(progs, prog, LAT_SIZE, plan.proc_lat_count(), keys.as_ref())?;
            if curve {
                Ok(vec![(28, prog_col(prog), p50)])
            } else {
                Ok(vec![(16, prog_col(prog), p50), (17, prog_col(prog), p99)])
            }
        }
    }
}

/// A fresh CURVE server key pair as Z85 text (zocket's and libzmq's Z85 are the same).
fn curve_keys() -> xproc::CurveKeys {
    let keys = zocket::curve::KeyPair::generate();
    (keys.public().to_string(), keys.secret().to_string())
}

/// Runs `f` on a fresh runtime of `flavour`, bounded by [`CELL_TIMEOUT`]; the runtime (and
/// whatever a library left running on it) is shut down after.
fn in_runtime<T>(flavour: Flavour, f: impl Future<Output = Res<T>>) -> Res<T> {
    let rt = flavour.runtime()?;
    let out = rt.block_on(async { tokio::time::timeout(CELL_TIMEOUT, f).await });
    rt.shutdown_timeout(Duration::from_secs(1));
    match out {
        Ok(r) => r,
        Err(_) => Err(format!("timed out after {} s", CELL_TIMEOUT.as_secs()).into()),
    }
}

fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn fmt_value(v: f64, unit: Unit) -> String {
    match unit {
        Unit::MsgPerSec if v >= 1e6 => format!("{:.2}M", v / 1e6),
        Unit::MsgPerSec if v >= 1e4 => format!("{:.0}k", v / 1e3),
        Unit::MsgPerSec if v >= 1e3 => format!("{:.2}k", v / 1e3),
        Unit::MsgPerSec => format!("{v:.0}"),
        Unit::Micros => format!("{v:.1} µs"),
        Unit::MiB => format!("{v:.1} MiB"),
    }
}

fn size_name(size: usize) -> String {
    if size >= 1024 {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// `native / best competitor` as text: for msg/s above 1 is better, for µs and MiB below 1.
fn ratio(native: Option<f64>, others: &[f64], unit: Unit) -> String {
    let best = match unit {
        Unit::MsgPerSec => others.iter().copied().reduce(f64::max),
        Unit::Micros | Unit::MiB => others.iter().copied().reduce(f64::min),
    };
    match (native, best) {
        (Some(n), Some(b)) if b > 0.0 => format!("{:.2}×", n / b),
        _ => "–".into(),
    }
}

fn print_report(
    plan: &Plan,
    progs: &Progs,
    samples: &HashMap<(usize, Col), Vec<f64>>,
    notes: &[String],
    skipped: &[String],
    load_start: &str,
    started: Instant,
) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    println!("## zocket-compare");
    println!();
    println!(
        "- machine: {cores} cores ({cpu}); load average {load_start} at start, {} at end; {:.0} s",
        loadavg(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "- versions: zocket {}, zmq.rs (zeromq) {}, rzmq {}, omq-tokio {}, tokio {}, libzmq {}",
        env!("COMPARE_VERSION_ZOCKET"),
        env!("COMPARE_VERSION_ZEROMQ"),
        env!("COMPARE_VERSION_RZMQ"),
        env!("COMPARE_VERSION_OMQ"),
        env!("COMPARE_VERSION_TOKIO"),
        progs.libzmq_version.as_deref().unwrap_or("not found"),
    );
    println!(
        "- {} of {} run{} per cell{}; loopback TCP; default high-water marks; one message per send call; rates at the receiver",
        if plan.runs > 1 { "median" } else { "value" },
        plan.runs,
        if plan.runs > 1 { "s" } else { "" },
        if plan.scale < 1.0 { " (--quick: few messages, a smoke test, not a measurement)" } else { "" },
    );
    println!("- in process: sender and receiver are tasks of one tokio runtime (2 worker threads, or current_thread); 2 processes: `zocket perf thr`/`send`, `lat`/`ping` against libzmq's (c/zmqperf.c on the system libzmq), native column = zocket perf; zocket→libzmq = `zocket perf send`/`ping` connected to libzmq's receiver/echo (ZMTP)");
    println!("- ratios: zocket native ÷ the best of zmq.rs, rzmq, omq-tokio and libzmq in that row (msg/s: above 1 is better; µs and MiB: below 1 is better), and ÷ raw tokio");
    println!();
    print!("| row |");
    for (_, name) in COLS {
        print!(" {name} |");
    }
    println!(" native ÷ best | native ÷ raw |");
    print!("|---|");
    for _ in COLS {
        print!("---:|");
    }
    println!("---:|---:|");
    for (row, (label, unit)) in ROWS.iter().enumerate() {
        let med = |c: Col| samples.get(&(row, c)).and_then(|v| median(v));
        if COLS.iter().all(|&(c, _)| med(c).is_none()) {
            continue;
        }
        print!("| {label} |");
        for (c, _) in COLS {
            match med(c) {
                Some(v) if c == Col::Native => print!(" **{}** |", fmt_value(v, *unit)),
                Some(v) => print!(" {} |", fmt_value(v, *unit)),
                None => print!(" – |"),
            }
        }
        let others: Vec<f64> = COMPETITORS.iter().filter_map(|&c| med(c)).collect();
        let raw: Vec<f64> = med(Col::Raw).into_iter().collect();
        println!(
            " {} | {} |",
            ratio(med(Col::Native), &others, *unit),
            ratio(med(Col::Native), &raw, *unit)
        );
    }
    println!();
    println!("CURVE rows: the native column is zocket native + CURVE, the ZMTP column zocket ZMTP + CURVE; libzmq CURVE runs only across processes (the 2-process CURVE rows compare `zocket perf` with CURVE to it).");
    for s in skipped {
        println!("- {s}");
    }
    for n in notes {
        println!("- failed: {n}");
    }
}
