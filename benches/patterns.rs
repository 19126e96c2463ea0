//! Socket-pattern benchmarks over loopback, each against a raw tokio TCP baseline:
//!
//! 1. Push→Pull throughput for 16 B .. 64 KiB messages, against length-prefixed messages
//!    written through a `BufWriter` and parsed through a `BufReader`.
//! 2. Pub→Sub publish rate and delivery for 16 B messages, 1 and 4 subscribers.
//! 3. Req→Rep round-trip latency (p50/p99) over tcp and inproc, against a raw TCP ping-pong.
//! 4. Peak RSS (`VmHWM`) of the 16 B Push/Pull run (and of the raw baseline), each measured
//!    in a child process (this binary re-executed with `ZOCKET_BENCH_CHILD` set).
//!
//! Run with `cargo bench --bench patterns`. `ZOCKET_BENCH_SCALE` (a float, default 1)
//! multiplies every message count; `ZOCKET_BENCH_ONLY` (a comma-separated subset of
//! `pipeline,pubsub,latency,rss`) skips the other sections; `ZOCKET_BENCH_STREAM_WINDOW`
//! (bytes) sets the Push/Pull sockets' stream window instead of the default. Every loop is bounded by a count and a hard timeout; a
//! row that runs out of time prints `timeout`.

mod common;

use common::{loadavg, rate, tcp_pair, Latency, Task};
use std::future::Future;
use std::io::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::time::timeout;
use zocket::{Message, Options, Pub, Pull, Push, Rep, Req, Sub};

/// Hard limit for one row (set-up, warm-up and measurement).
const ROW_TIMEOUT: Duration = Duration::from_secs(15);
/// How long subscribers may take to drain after the publisher is done.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Hard limit for a child process of section 4.
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);
/// The environment variable that makes this binary run one case of section 4 and exit.
const CHILD_ENV: &str = "ZOCKET_BENCH_CHILD";

/// Push/Pull message sizes and their message counts at scale 1 (about 1 s per row on a
/// 2-core machine, both contenders together).
const PIPELINE_ROWS: [(usize, u64); 4] = [
    (16, 1_500_000),
    (256, 1_000_000),
    (4096, 150_000),
    (65536, 20_000),
];
/// Messages published per Pub/Sub row at scale 1.
const PUBSUB_COUNT: u64 = 200_000;
/// Round trips measured per latency row at scale 1, and the warm-up before them.
const LATENCY_COUNT: u64 = 20_000;
const LATENCY_WARMUP: u64 = 2_000;
/// The 16 B Push/Pull run measured for memory at scale 1.
const RSS_COUNT: u64 = 1_500_000;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Res<T> = Result<T, BoxError>;

fn main() {
    let scale = common::scale();
    let scaled = |n: u64| ((n as f64 * scale) as u64).max(1);

    if let Ok(case) = std::env::var(CHILD_ENV) {
        std::process::exit(child(&case, scaled(RSS_COUNT)));
    }

    let rt = runtime();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("zocket pattern benchmarks: {cores} cores, 2 tokio workers, scale {scale}");
    println!("load average at start: {}", loadavg());

    // `ZOCKET_BENCH_ONLY`: a comma-separated subset of `pipeline,pubsub,latency,rss`.
    let only = std::env::var("ZOCKET_BENCH_ONLY").ok();
    let run = |section: &str| {
        only.as_ref()
            .is_none_or(|o| o.split(',').any(|s| s == section))
    };
    rt.block_on(async {
        if run("pipeline") {
            pipeline_section(&scaled).await;
        }
        if run("pubsub") {
            pubsub_section(scaled(PUBSUB_COUNT)).await;
        }
        if run("latency") {
            latency_section(scaled(LATENCY_COUNT), scaled(LATENCY_WARMUP)).await;
        }
    });
    drop(rt);
    if run("rss") {
        rss_section();
    }
    println!("\nload average at end: {}", loadavg());
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Runs `f` with the row timeout; `None` (printed as `timeout`) when it runs out of time.
async fn bounded<T>(f: impl Future<Output = Res<T>>) -> Option<T> {
    match timeout(ROW_TIMEOUT, f).await {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            println!("  error: {e}");
            None
        }
        Err(_) => None,
    }
}

/// Messages sent and received so far (warm-up included), to say where a timed-out row stopped.
#[derive(Clone, Default)]
struct Progress(Arc<Counters>);

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    received: AtomicU64,
}

impl std::ops::Deref for Progress {
    type Target = Counters;
    fn deref(&self) -> &Counters {
        &self.0
    }
}

impl Progress {
    fn report(&self) -> String {
        format!(
            "{} sent, {} received (warm-up included)",
            self.sent.load(Ordering::Relaxed),
            self.received.load(Ordering::Relaxed)
        )
    }
}

fn payload(size: usize) -> Bytes {
    Bytes::from((0..size).map(|i| i as u8).collect::<Vec<u8>>())
}

// ---------------------------------------------------------------------------------------
// 1. Push→Pull throughput

async fn pipeline_section(scaled: &impl Fn(u64) -> u64) {
    let window = std::env::var("ZOCKET_BENCH_STREAM_WINDOW").unwrap_or_else(|_| "default".into());
    println!(
        "\n[1] Push->Pull throughput, tcp loopback, 1 pusher, 1 puller (send_hwm 1000, stream window {window})"
    );
    println!(
        "{:>7} {:>9} | {:>12} {:>9} | {:>12} {:>9} | {:>7}",
        "size", "msgs", "zocket msg/s", "MB/s", "raw msg/s", "MB/s", "ratio"
    );
    for (size, count) in PIPELINE_ROWS {
        let n = scaled(count);
        let progress = Progress::default();
        let zocket = bounded(zocket_pipeline(size, n, (n / 10).max(1), progress.clone())).await;
        let raw = bounded(raw_pipeline(size, n, (n / 10).max(1))).await;
        let cell = |d: Option<Duration>| match d {
            Some(d) => format!(
                "{:>12.0} {:>9.1}",
                rate(n, d),
                rate(n * size as u64, d) / 1e6
            ),
            None => format!("{:>12} {:>9}", "timeout", "-"),
        };
        let ratio = match (zocket, raw) {
            (Some(z), Some(r)) => format!("{:>6.1}%", 100.0 * r.as_secs_f64() / z.as_secs_f64()),
            _ => "-".into(),
        };
        println!(
            "{size:>7} {n:>9} | {} | {} | {ratio:>7}",
            cell(zocket),
            cell(raw)
        );
        if zocket.is_none() {
            println!("        zocket stopped at: {}", progress.report());
        }
    }
}

/// Default options, except the stream window when `ZOCKET_BENCH_STREAM_WINDOW` is set.
fn pipeline_options() -> Options {
    match std::env::var("ZOCKET_BENCH_STREAM_WINDOW").map(|w| w.parse::<u32>()) {
        Ok(Ok(window)) => Options::new().stream_window(window),
        _ => Options::new(),
    }
}

/// Sends `n` messages of `size` through a fresh Push/Pull pair over tcp; returns the time
/// from the first send to the puller holding the last one.
async fn zocket_pipeline(size: usize, n: u64, warmup: u64, progress: Progress) -> Res<Duration> {
    let mut pull = Pull::with_options(pipeline_options());
    let ep = pull.bind("tcp://127.0.0.1:0").await?.to_string();
    let mut push = Push::with_options(pipeline_options());
    push.connect(&ep)?;
    push.wait_for_peers(1).await?;
    let data = payload(size);

    // Warm-up, then the measured phase; the puller is a task of its own in both.
    for phase_n in [warmup, n] {
        let (sent, received) = (progress.clone(), progress.clone());
        let puller = Task::spawn(async move {
            for _ in 0..phase_n {
                let msg = pull.recv().await?;
                received.received.fetch_add(1, Ordering::Relaxed);
                debug_assert_eq!(msg.frames()[0].len(), size);
            }
            Res::Ok((pull, Instant::now()))
        });
        let data = data.clone();
        let pusher = Task::spawn(async move {
            let start = Instant::now();
            for _ in 0..phase_n {
                push.send(Message::from(data.clone())).await?;
                sent.sent.fetch_add(1, Ordering::Relaxed);
            }
            Res::Ok((push, start))
        });
        let (p, start) = pusher.await?;
        let (q, end) = puller.await?;
        push = p;
        pull = q;
        if phase_n == n {
            return Ok(end - start);
        }
    }
    unreachable!()
}

/// The baseline: `n` length-prefixed messages over one TCP connection, `BufWriter` on the
/// sending side (flushed at the end), `BufReader` + `read_exact` into a reused buffer on
/// the receiving side.
async fn raw_pipeline(size: usize, n: u64, warmup: u64) -> Res<Duration> {
    let (client, server) = tcp_pair().await?;
    let mut w = BufWriter::new(client);
    let mut r = BufReader::new(server);
    let data = payload(size);
    for phase_n in [warmup, n] {
        let reader = Task::spawn(async move {
            let mut buf = Vec::new();
            for _ in 0..phase_n {
                let len = r.read_u32().await? as usize;
                buf.resize(len, 0);
                r.read_exact(&mut buf).await?;
            }
            Res::Ok((r, Instant::now()))
        });
        let data = data.clone();
        let writer = Task::spawn(async move {
            let start = Instant::now();
            for _ in 0..phase_n {
                w.write_u32(data.len() as u32).await?;
                w.write_all(&data).await?;
            }
            w.flush().await?;
            Res::Ok((w, start))
        });
        let (ww, start) = writer.await?;
        let (rr, end) = reader.await?;
        w = ww;
        r = rr;
        if phase_n == n {
            return Ok(end - start);
        }
    }
    unreachable!()
}

// ---------------------------------------------------------------------------------------
// 2. Pub→Sub

async fn pubsub_section(n: u64) {
    println!("\n[2] Pub->Sub, 16 B, tcp loopback, send_hwm = recv_hwm = {n} + 1000, nothing paced");
    println!(
        "{:>5} {:>9} | {:>13} | {:>15} | {:>12}",
        "subs", "published", "publish msg/s", "delivered (min)", "drain msg/s"
    );
    for subs in [1usize, 4] {
        match bounded(zocket_pubsub(subs, n)).await {
            Some((publish, delivered, drain)) => {
                let min = delivered.iter().copied().min().unwrap_or(0);
                let drain = match drain {
                    Some(d) => format!("{:>12.0}", rate(n, d)),
                    None => format!("{:>12}", "timeout"),
                };
                println!(
                    "{subs:>5} {n:>9} | {:>13.0} | {:>14.2}% | {drain}",
                    rate(n, publish),
                    100.0 * min as f64 / n as f64
                );
            }
            None => println!("{subs:>5} {n:>9} | {:>13} |", "timeout"),
        }
    }
    println!(
        "  (drain msg/s: messages per second from the first publish to the last subscriber done)"
    );
}

/// Publishes `n` 16 B messages to `subs` subscribers. Returns the publishing time, what
/// each subscriber received, and the time until every subscriber had all (None if some
/// did not within the drain timeout).
async fn zocket_pubsub(subs: usize, n: u64) -> Res<(Duration, Vec<u64>, Option<Duration>)> {
    let hwm = n as usize + 1000;
    let options = Options::new().send_hwm(hwm).recv_hwm(hwm);
    let publisher = Pub::with_options(options.clone());
    let ep = publisher.bind("tcp://127.0.0.1:0").await?.to_string();
    let mut subscribers = Vec::new();
    for _ in 0..subs {
        let sub = Sub::with_options(options.clone());
        sub.subscribe("");
        sub.connect(&ep)?;
        subscribers.push(sub);
    }
    for sub in &subscribers {
        sub.wait_for_peers(1).await?;
    }
    publisher.wait_for_peers(subs).await?;

    // Each subscriber counts until it has all, or the publisher is done and the drain
    // time is up.
    let (done_tx, done_rx) = tokio::sync::watch::channel(None::<Instant>);
    let tasks: Vec<_> = subscribers
        .into_iter()
        .map(|mut sub| {
            let mut done_rx = done_rx.clone();
            Task::spawn(async move {
                let mut got = 0u64;
                let mut deadline = None;
                while got < n {
                    let recv = sub.recv();
                    let msg = match deadline {
                        None => tokio::select! {
                            m = recv => m,
                            _ = done_rx.changed() => {
                                let at = done_rx.borrow().unwrap_or_else(Instant::now);
                                deadline = Some(tokio::time::Instant::from_std(at + DRAIN_TIMEOUT));
                                continue;
                            }
                        },
                        Some(at) => match tokio::time::timeout_at(at, recv).await {
                            Ok(m) => m,
                            Err(_) => break,
                        },
                    };
                    msg?;
                    got += 1;
                }
                Res::Ok((got, Instant::now(), sub))
            })
        })
        .collect();

    // The publisher runs on a worker too (not on the thread driving `block_on`).
    let (start, publish, _publisher) = Task::spawn(async move {
        let msg = Message::from(payload(16));
        let start = Instant::now();
        for _ in 0..n {
            publisher.send(msg.clone()).await?;
        }
        let publish = start.elapsed();
        let _ = done_tx.send(Some(Instant::now()));
        Res::Ok((start, publish, publisher))
    })
    .await?;

    let mut delivered = Vec::new();
    let mut last = start;
    for task in tasks {
        let (got, end, _sub) = task.await?;
        delivered.push(got);
        last = last.max(end);
    }
    let all = delivered.iter().all(|&g| g == n);
    Ok((publish, delivered, all.then(|| last - start)))
}

// ---------------------------------------------------------------------------------------
// 3. Req→Rep latency

async fn latency_section(n: u64, warmup: u64) {
    println!("\n[3] Req->Rep round trip, 16 B, {n} requests after {warmup} warm-up");
    println!(
        "{:>14} | {:>9} {:>9} {:>9} | {:>11}",
        "transport", "p50 us", "p99 us", "max us", "p50 vs raw"
    );
    let raw = bounded(raw_pingpong(n, warmup)).await;
    let raw_p50 = raw.as_ref().map(|l| l.p50);
    for (name, ep) in [
        ("zocket tcp", "tcp://127.0.0.1:0"),
        ("zocket inproc", "inproc://bench-patterns-reqrep"),
    ] {
        let lat = bounded(zocket_reqrep(ep, n, warmup)).await;
        let ratio = match (&lat, raw_p50) {
            (Some(l), Some(r)) => format!("{:>10.2}x", l.p50 / r),
            _ => "-".into(),
        };
        print_latency(name, lat.as_ref(), &ratio);
    }
    print_latency("raw tcp", raw.as_ref(), "1.00x");
}

fn print_latency(name: &str, lat: Option<&Latency>, ratio: &str) {
    match lat {
        Some(l) => println!(
            "{name:>14} | {:>9.1} {:>9.1} {:>9.1} | {ratio:>11}",
            l.p50, l.p99, l.max
        ),
        None => println!("{name:>14} | {:>9} |", "timeout"),
    }
}

async fn zocket_reqrep(endpoint: &str, n: u64, warmup: u64) -> Res<Latency> {
    let mut rep = Rep::new();
    let ep = rep.bind(endpoint).await?.to_string();
    let mut req = Req::new();
    req.connect(&ep)?;
    req.wait_for_peers(1).await?;
    let _server = Task::spawn(async move {
        while let Ok(request) = rep.recv().await {
            let reply = request.message().clone();
            if request.reply(reply).await.is_err() {
                break;
            }
        }
    });
    let client = Task::spawn(async move {
        let msg = Message::from(payload(16));
        let mut samples = Vec::with_capacity(n as usize);
        for i in 0..warmup + n {
            let start = Instant::now();
            let reply = req.request(msg.clone()).await?;
            let took = start.elapsed();
            debug_assert_eq!(reply.frames()[0].len(), 16);
            if i >= warmup {
                samples.push(took);
            }
        }
        Res::Ok(samples)
    });
    Ok(Latency::from_samples(client.await?))
}

/// The baseline: write 16 B, read 16 B back, over one TCP connection with TCP_NODELAY.
async fn raw_pingpong(n: u64, warmup: u64) -> Res<Latency> {
    let (mut client, mut server) = tcp_pair().await?;
    let _server = Task::spawn(async move {
        let mut buf = [0u8; 16];
        while server.read_exact(&mut buf).await.is_ok() {
            if server.write_all(&buf).await.is_err() {
                break;
            }
        }
    });
    let client = Task::spawn(async move {
        let msg = payload(16);
        let mut buf = [0u8; 16];
        let mut samples = Vec::with_capacity(n as usize);
        for i in 0..warmup + n {
            let start = Instant::now();
            client.write_all(&msg).await?;
            client.read_exact(&mut buf).await?;
            let took = start.elapsed();
            if i >= warmup {
                samples.push(took);
            }
        }
        Res::Ok(samples)
    });
    Ok(Latency::from_samples(client.await?))
}

// ---------------------------------------------------------------------------------------
// 4. Peak RSS of the 16 B Push/Pull run, in a child process

fn rss_section() {
    println!("\n[4] Peak RSS (VmHWM) of a 16 B Push->Pull run over tcp, in a fresh child process");
    println!(
        "{:>8} {:>9} | {:>11} {:>11} {:>11} | {:>12}",
        "case", "msgs", "start kB", "peak kB", "delta kB", "msg/s"
    );
    for case in ["zocket", "raw"] {
        match run_child(case) {
            Ok(line) => println!("{line}"),
            Err(e) => println!("{case:>8} {e}"),
        }
    }
}

/// Re-executes this binary to run one case alone; returns the line it printed.
fn run_child(case: &str) -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = std::process::Command::new(exe)
        .env(CHILD_ENV, case)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + CHILD_TIMEOUT;
    loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(_) => break,
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("timeout".into());
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    let mut out = String::new();
    io::Read::read_to_string(&mut child.stdout.take().expect("piped stdout"), &mut out)
        .map_err(|e| e.to_string())?;
    out.lines()
        .find(|l| l.starts_with("rss "))
        .map(|l| l["rss ".len()..].to_string())
        .ok_or_else(|| format!("no result from the child: {out:?}"))
}

fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The child side of section 4: one 16 B Push/Pull run (or its raw baseline), then one
/// line with VmHWM right after the runtime started and at the end. Returns the exit code.
fn child(case: &str, n: u64) -> i32 {
    let rt = runtime();
    let start_kb = rt.block_on(async { vm_hwm_kb() });
    let took = rt.block_on(async {
        match case {
            "zocket" => bounded(zocket_pipeline(16, n, 1, Progress::default())).await,
            "raw" => bounded(raw_pipeline(16, n, 1)).await,
            _ => None,
        }
    });
    let peak_kb = vm_hwm_kb();
    let speed = took.map_or_else(|| "timeout".to_string(), |d| format!("{:.0}", rate(n, d)));
    println!(
        "rss {case:>8} {n:>9} | {start_kb:>11} {peak_kb:>11} {:>11} | {speed:>12}",
        peak_kb.saturating_sub(start_kb)
    );
    let _ = io::stdout().flush();
    drop(rt);
    i32::from(took.is_none())
}
