//! zocket against libzmq in the same run, over loopback TCP:
//!
//! - Push→Pull throughput at 16 B, 256 B, 4 KiB and 64 KiB;
//! - Req→Rep round-trip latency (p50/p99) at 16 B;
//!
//! each for four pairings: (a) zocket↔zocket on the native wire, (b) zocket↔zocket over
//! plain ZMTP 3.1 (the sending/requesting side built with `Options::new().native(false)`),
//! (c) libzmq↔libzmq, (d) zocket↔libzmq (zocket Push → libzmq Pull, zocket Req → libzmq
//! Rep). One table, every cell with its ratio to libzmq↔libzmq.
//!
//! libzmq is driven through the `zmq` crate (libzmq 4.3.4 built from source by
//! zeromq-src) from dedicated std threads with the blocking API; each libzmq socket has a
//! context of its own (one I/O thread each, as two libzmq processes would) unless
//! `ZOCKET_BENCH_LIBZMQ_CONTEXT=shared` (one context, one I/O thread for all), default HWMs
//! (1000). zocket runs both ends on one tokio runtime with 2 workers, default options.
//!
//! Run with `cargo bench --bench vs_libzmq --features bench-libzmq`. `ZOCKET_BENCH_SCALE`
//! (a float, default 1) multiplies every message count. Every loop is bounded by a count
//! and a hard timeout; a cell that runs out of time prints `timeout`.

mod common;

use common::{loadavg, rate, Latency, Task};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::timeout;
use zocket::{Message, Options, Pull, Push, Rep, Req};

/// Hard limit for one cell (set-up, warm-up and measurement).
const ROW_TIMEOUT: Duration = Duration::from_secs(15);
/// libzmq send/receive timeout (ms): a blocked libzmq call gives up after this long.
const OP_TIMEOUT_MS: i32 = 2_000;
/// How long a libzmq pusher lingers on close to deliver what it has queued (ms).
const PUSH_LINGER_MS: i32 = 5_000;

/// Push/Pull message sizes and their message counts at scale 1.
const PIPELINE_ROWS: [(usize, u64); 4] = [
    (16, 1_000_000),
    (256, 600_000),
    (4096, 100_000),
    (65536, 15_000),
];
/// Round trips measured per latency cell at scale 1, and the warm-up before them.
const LATENCY_COUNT: u64 = 20_000;
const LATENCY_WARMUP: u64 = 2_000;
const LATENCY_SIZE: usize = 16;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Res<T> = Result<T, BoxError>;

/// The four pairings, in table-column order.
#[derive(Clone, Copy, PartialEq)]
enum Pairing {
    Native,
    Zmtp,
    Libzmq,
    ZocketToLibzmq,
}

const PAIRINGS: [Pairing; 4] = [
    Pairing::Native,
    Pairing::Zmtp,
    Pairing::Libzmq,
    Pairing::ZocketToLibzmq,
];

fn main() {
    let scale = common::scale();
    let scaled = |n: u64| ((n as f64 * scale) as u64).max(1);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let (major, minor, patch) = zmq::version();
    println!(
        "zocket vs libzmq {major}.{minor}.{patch}: {cores} cores, 2 tokio workers, scale {scale}, tcp loopback"
    );
    let contexts = if shared_context().is_some() {
        "one shared context (1 I/O thread)"
    } else {
        "a context per socket (1 I/O thread each)"
    };
    println!("libzmq: {contexts}; load average at start: {}", loadavg());

    let mut rows: Vec<(String, &str, [Option<f64>; 4])> = Vec::new();
    rt.block_on(async {
        for (size, count) in PIPELINE_ROWS {
            let n = scaled(count);
            let warmup = (n / 10).max(1);
            let mut cells = [None; 4];
            for (i, p) in PAIRINGS.into_iter().enumerate() {
                cells[i] = bounded(pipeline(p, size, n, warmup))
                    .await
                    .map(|d| rate(n, d));
            }
            rows.push((
                format!("push/pull {} x{n}", size_name(size)),
                "msg/s",
                cells,
            ));
        }
        let (n, warmup) = (scaled(LATENCY_COUNT), scaled(LATENCY_WARMUP));
        let mut p50 = [None; 4];
        let mut p99 = [None; 4];
        for (i, p) in PAIRINGS.into_iter().enumerate() {
            if let Some(l) = bounded(reqrep(p, n, warmup)).await {
                p50[i] = Some(l.p50);
                p99[i] = Some(l.p99);
            }
        }
        let name = size_name(LATENCY_SIZE);
        rows.push((format!("req/rep {name} p50 x{n}"), "us", p50));
        rows.push((format!("req/rep {name} p99 x{n}"), "us", p99));
    });
    drop(rt);
    print_table(&rows);
    println!("\nload average at end: {}", loadavg());
}

fn print_table(rows: &[(String, &str, [Option<f64>; 4])]) {
    println!(
        "\n{:<24} {:>5} | {:>19} | {:>19} | {:>10} | {:>19}",
        "", "unit", "zocket native", "zocket ZMTP", "libzmq", "zocket->libzmq"
    );
    for (name, unit, cells) in rows {
        let base = cells[2];
        let cell = |v: Option<f64>| match (v, base) {
            (Some(v), Some(b)) => format!("{:>10} ({:>5.2}x)", fmt_value(v), v / b),
            (Some(v), None) => format!("{:>10} {:>8}", fmt_value(v), "(-)"),
            (None, _) => format!("{:>19}", "timeout"),
        };
        let base = match base {
            Some(b) => format!("{:>10}", fmt_value(b)),
            None => format!("{:>10}", "timeout"),
        };
        println!(
            "{name:<24} {unit:>5} | {} | {} | {base} | {}",
            cell(cells[0]),
            cell(cells[1]),
            cell(cells[3])
        );
    }
    println!(
        "  (x) = value / libzmq's: above 1 is better for msg/s, below 1 is better for latency"
    );
}

fn fmt_value(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn size_name(size: usize) -> String {
    if size >= 1024 {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

/// Runs `f` on a std thread of its own; its result arrives through the receiver. The
/// thread ends by itself: every libzmq call in it has a timeout and every loop a deadline.
fn thread<T: Send + 'static>(
    f: impl FnOnce() -> Res<T> + Send + 'static,
) -> oneshot::Receiver<Res<T>> {
    let (tx, rx) = oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx
}

async fn joined<T>(rx: oneshot::Receiver<Res<T>>) -> Res<T> {
    rx.await.map_err(|_| "libzmq thread panicked")?
}

/// Runs `f` with the cell timeout; `None` (printed as `timeout`) when it runs out of time.
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

fn payload(size: usize) -> Bytes {
    Bytes::from((0..size).map(|i| i as u8).collect::<Vec<u8>>())
}

/// Errs once `deadline` has passed (checked every 1024 iterations of a hot loop).
fn check(i: u64, deadline: Instant) -> Res<()> {
    if i % 1024 == 0 && Instant::now() > deadline {
        return Err("timeout".into());
    }
    Ok(())
}

/// Whether every libzmq socket shares one context (`ZOCKET_BENCH_LIBZMQ_CONTEXT=shared`).
fn shared_context() -> Option<&'static zmq::Context> {
    static SHARED: OnceLock<Option<zmq::Context>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            (std::env::var("ZOCKET_BENCH_LIBZMQ_CONTEXT").as_deref() == Ok("shared"))
                .then(zmq::Context::new)
        })
        .as_ref()
}

/// A libzmq socket in a context of its own (or the shared one), with send/receive timeouts
/// and `linger`.
fn zmq_socket(kind: zmq::SocketType, linger: i32) -> Res<(zmq::Context, zmq::Socket)> {
    let ctx = shared_context().cloned().unwrap_or_default();
    let s = ctx.socket(kind)?;
    s.set_linger(linger)?;
    s.set_rcvtimeo(OP_TIMEOUT_MS)?;
    s.set_sndtimeo(OP_TIMEOUT_MS)?;
    Ok((ctx, s))
}

/// Binds a libzmq socket to an ephemeral loopback port; returns the real endpoint.
fn zmq_bind(s: &zmq::Socket) -> Res<String> {
    s.bind("tcp://127.0.0.1:*")?;
    s.get_last_endpoint()?
        .map_err(|_| "endpoint is not UTF-8".into())
}

// ---------------------------------------------------------------------------------------
// Push→Pull throughput: the time from the first measured send to the puller holding the
// last message, after a warm-up of `warmup` messages that both ends have finished.

async fn pipeline(p: Pairing, size: usize, n: u64, warmup: u64) -> Res<Duration> {
    let deadline = Instant::now() + ROW_TIMEOUT;
    match p {
        Pairing::Native => zocket_pipeline(Options::new(), size, n, warmup).await,
        Pairing::Zmtp => zocket_pipeline(Options::new().native(false), size, n, warmup).await,
        Pairing::Libzmq => joined(thread(move || libzmq_pipeline(size, n, warmup, deadline))).await,
        Pairing::ZocketToLibzmq => zocket_to_libzmq_pipeline(size, n, warmup, deadline).await,
    }
}

async fn zocket_pipeline(push_options: Options, size: usize, n: u64, warmup: u64) -> Res<Duration> {
    let mut pull = Pull::new();
    let ep = pull.bind("tcp://127.0.0.1:0").await?.to_string();
    let mut push = Push::with_options(push_options);
    push.connect(&ep)?;
    push.wait_for_peers(1).await?;
    let data = payload(size);
    for phase_n in [warmup, n] {
        let puller = Task::spawn(async move {
            for _ in 0..phase_n {
                let msg = pull.recv().await?;
                debug_assert_eq!(msg.frames()[0].len(), size);
            }
            Res::Ok((pull, Instant::now()))
        });
        let data = data.clone();
        let pusher = Task::spawn(async move {
            let start = Instant::now();
            for _ in 0..phase_n {
                push.send(Message::from(data.clone())).await?;
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

/// libzmq Pull (binds, on this thread) and libzmq Push (connects, on a thread of its own).
fn libzmq_pipeline(size: usize, n: u64, warmup: u64, deadline: Instant) -> Res<Duration> {
    let (_ctx, pull) = zmq_socket(zmq::PULL, 0)?;
    let ep = zmq_bind(&pull)?;
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let pusher = std::thread::spawn(move || -> Res<Instant> {
        let (_ctx, push) = zmq_socket(zmq::PUSH, PUSH_LINGER_MS)?;
        push.connect(&ep)?;
        let data = payload(size);
        for i in 0..warmup {
            check(i, deadline)?;
            push.send(&data[..], 0)?;
        }
        go_rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))?;
        let start = Instant::now();
        for i in 0..n {
            check(i, deadline)?;
            push.send(&data[..], 0)?;
        }
        Ok(start)
    });
    let end = libzmq_pull(&pull, size, n, warmup, deadline, || {
        let _ = go_tx.send(());
        Ok(())
    });
    drop(go_tx);
    let start = pusher.join().map_err(|_| "pusher panicked")??;
    Ok(end? - start)
}

/// Receives `warmup` messages, calls `go`, receives `n` more; returns when it had the last.
fn libzmq_pull(
    pull: &zmq::Socket,
    size: usize,
    n: u64,
    warmup: u64,
    deadline: Instant,
    go: impl FnOnce() -> Res<()>,
) -> Res<Instant> {
    let mut msg = zmq::Message::new();
    for i in 0..warmup {
        check(i, deadline)?;
        pull.recv(&mut msg, 0)?;
    }
    go()?;
    for i in 0..n {
        check(i, deadline)?;
        pull.recv(&mut msg, 0)?;
        debug_assert_eq!(msg.len(), size);
    }
    Ok(Instant::now())
}

/// zocket Push (connects, default options, so it speaks ZMTP to libzmq) → libzmq Pull
/// (binds, on a std thread).
async fn zocket_to_libzmq_pipeline(
    size: usize,
    n: u64,
    warmup: u64,
    deadline: Instant,
) -> Res<Duration> {
    let (ep_tx, ep_rx) = oneshot::channel::<String>();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let puller = thread(move || {
        let (_ctx, pull) = zmq_socket(zmq::PULL, 0)?;
        let _ = ep_tx.send(zmq_bind(&pull)?);
        libzmq_pull(&pull, size, n, warmup, deadline, || {
            go_tx.send(()).map_err(|_| "zocket side gone".into())
        })
    });
    let ep = ep_rx.await.map_err(|_| "libzmq pull did not bind")?;
    let mut push = Push::new();
    push.connect(&ep)?;
    push.wait_for_peers(1).await?;
    let data = payload(size);
    let (push, start) = Task::spawn(async move {
        for _ in 0..warmup {
            push.send(Message::from(data.clone())).await?;
        }
        go_rx
            .await
            .map_err(|_| "libzmq pull failed in the warm-up")?;
        let start = Instant::now();
        for _ in 0..n {
            push.send(Message::from(data.clone())).await?;
        }
        Res::Ok((push, start))
    })
    .await?;
    // Keep the pusher until the puller has everything.
    let end = joined(puller).await?;
    drop(push);
    Ok(end - start)
}

// ---------------------------------------------------------------------------------------
// Req→Rep latency

async fn reqrep(p: Pairing, n: u64, warmup: u64) -> Res<Latency> {
    let deadline = Instant::now() + ROW_TIMEOUT;
    match p {
        Pairing::Native => zocket_reqrep(Options::new(), n, warmup).await,
        Pairing::Zmtp => zocket_reqrep(Options::new().native(false), n, warmup).await,
        Pairing::Libzmq => {
            let (rep, ep, stop) = libzmq_rep(deadline).await?;
            let req = thread(move || libzmq_req(&ep, n, warmup, deadline));
            let lat = joined(req).await;
            stop.store(true, Ordering::Relaxed);
            joined(rep).await?;
            lat
        }
        Pairing::ZocketToLibzmq => {
            let (rep, ep, stop) = libzmq_rep(deadline).await?;
            let lat = zocket_req(&ep, Options::new(), n, warmup).await;
            stop.store(true, Ordering::Relaxed);
            joined(rep).await?;
            lat
        }
    }
}

async fn zocket_reqrep(req_options: Options, n: u64, warmup: u64) -> Res<Latency> {
    let mut rep = Rep::new();
    let ep = rep.bind("tcp://127.0.0.1:0").await?.to_string();
    let _server = Task::spawn(async move {
        while let Ok(request) = rep.recv().await {
            let reply = request.message().clone();
            if request.reply(reply).await.is_err() {
                break;
            }
        }
    });
    zocket_req(&ep, req_options, n, warmup).await
}

/// A zocket Req connecting to `ep`, timing `warmup + n` 16 B round trips on a worker.
async fn zocket_req(ep: &str, options: Options, n: u64, warmup: u64) -> Res<Latency> {
    let mut req = Req::with_options(options);
    req.connect(ep)?;
    req.wait_for_peers(1).await?;
    let client = Task::spawn(async move {
        let msg = Message::from(payload(LATENCY_SIZE));
        let mut samples = Vec::with_capacity(n as usize);
        for i in 0..warmup + n {
            let start = Instant::now();
            let reply = req.request(msg.clone()).await?;
            let took = start.elapsed();
            debug_assert_eq!(reply.frames()[0].len(), LATENCY_SIZE);
            if i >= warmup {
                samples.push(took);
            }
        }
        Res::Ok(samples)
    });
    Ok(Latency::from_samples(client.await?))
}

/// A libzmq Rep echo server on a std thread, bound to an ephemeral port; it stops when the
/// flag is set (checked at least every 100 ms) or at `deadline`.
async fn libzmq_rep(
    deadline: Instant,
) -> Res<(oneshot::Receiver<Res<()>>, String, Arc<AtomicBool>)> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let (ep_tx, ep_rx) = oneshot::channel::<String>();
    let rep = thread(move || {
        let (_ctx, rep) = zmq_socket(zmq::REP, 0)?;
        rep.set_rcvtimeo(100)?;
        let _ = ep_tx.send(zmq_bind(&rep)?);
        let mut msg = zmq::Message::new();
        while !stopped.load(Ordering::Relaxed) && Instant::now() < deadline {
            match rep.recv(&mut msg, 0) {
                Ok(()) => rep.send(&msg[..], 0)?,
                Err(zmq::Error::EAGAIN) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    });
    let ep = ep_rx.await.map_err(|_| "libzmq rep did not bind")?;
    Ok((rep, ep, stop))
}

fn libzmq_req(ep: &str, n: u64, warmup: u64, deadline: Instant) -> Res<Latency> {
    let (_ctx, req) = zmq_socket(zmq::REQ, 0)?;
    req.connect(ep)?;
    let data = payload(LATENCY_SIZE);
    let mut reply = zmq::Message::new();
    let mut samples = Vec::with_capacity(n as usize);
    for i in 0..warmup + n {
        check(i, deadline)?;
        let start = Instant::now();
        req.send(&data[..], 0)?;
        req.recv(&mut reply, 0)?;
        let took = start.elapsed();
        debug_assert_eq!(reply.len(), LATENCY_SIZE);
        if i >= warmup {
            samples.push(took);
        }
    }
    Ok(Latency::from_samples(samples))
}
