//! `zocket perf`: throughput (thr + send, Pull + Push) and round-trip latency (lat + ping,
//! Rep + Req) between two processes, measured as libzmq's perf tools do.

use std::time::{Duration, Instant};

use bytes::Bytes;
use zocket::{Message, Options, Pull, Push, Rep, Req};

use crate::args::{Perf, PerfArgs};
use crate::talk::bind_and_connect;
use crate::Fail;

pub async fn run(perf: Perf) -> Result<(), Fail> {
    match perf {
        Perf::Thr(a) => thr(a).await,
        Perf::Send(a) => send(a).await,
        Perf::Lat(a) => lat(a).await,
        Perf::Ping(a) => ping(a).await,
    }
}

const THR_COUNT: u64 = 1_000_000;
const LAT_COUNT: u64 = 10_000;

fn check(role: &str, a: &PerfArgs) -> Result<(), Fail> {
    if a.endpoints.bind.is_empty() && a.endpoints.connect.is_empty() {
        return Err(Fail::Usage(format!(
            "zocket perf {role} needs an endpoint: expected --bind ENDPOINT or --connect ENDPOINT, such as --bind tcp://127.0.0.1:5555"
        )));
    }
    Ok(())
}

/// The socket options the CURVE flags ask for.
fn options(a: &PerfArgs) -> Result<Options, Fail> {
    Ok(a.curve.security()?.apply(Options::default(), a.quiet))
}

fn check_size(msg: &Message, size: usize) -> Result<(), Fail> {
    if msg.byte_len() == size {
        Ok(())
    } else {
        Err(Fail::Runtime(format!(
            "got a {}-byte message, expected {size} bytes: give both sides the same --size",
            msg.byte_len()
        )))
    }
}

/// Prints the report line (a closed stdout is not an error worth a panic).
fn say(line: String) -> Result<(), Fail> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => Fail::BrokenPipe,
            _ => Fail::runtime("writing to stdout", e),
        })
}

fn payload(size: usize) -> Message {
    Message::from(Bytes::from(vec![0u8; size]))
}

/// Receives --count messages; the clock starts at the first one (as libzmq's local_thr).
async fn thr(a: PerfArgs) -> Result<(), Fail> {
    check("thr", &a)?;
    let count = a.count.unwrap_or(THR_COUNT);
    let mut pull = Pull::with_options(options(&a)?);
    bind_and_connect(&pull, "perf thr", &a.endpoints, a.quiet).await?;
    let recv_error = |e| Fail::runtime("receiving", e);
    check_size(&pull.recv().await.map_err(recv_error)?, a.size)?;
    let start = Instant::now();
    for _ in 1..count {
        check_size(&pull.recv().await.map_err(recv_error)?, a.size)?;
    }
    let seconds = start.elapsed().max(Duration::from_nanos(1)).as_secs_f64();
    let msgs_per_s = count as f64 / seconds;
    let mb_per_s = msgs_per_s * a.size as f64 / 1e6;
    // Read before the socket is dropped: the peak of the run itself (the comparison benchmark
    // sets it beside libzmq's receiver).
    let peak = peak_rss_kib();
    let line = if a.json {
        let peak = peak.map_or(String::new(), |kib| format!(",\"peak_rss_kib\":{kib}"));
        format!(
            "{{\"test\":\"thr\",\"size\":{},\"count\":{count},\"seconds\":{seconds:.6},\"msgs_per_s\":{msgs_per_s:.0},\"mb_per_s\":{mb_per_s:.3}{peak}}}",
            a.size
        )
    } else {
        let peak = peak.map_or(String::new(), |kib| format!(", peak RSS {kib} KiB"));
        format!(
            "thr: {} B x {count} msgs in {seconds:.3} s: {msgs_per_s:.0} msgs/s, {mb_per_s:.2} MB/s{peak}",
            a.size
        )
    };
    say(line)
}

/// This process's peak resident set in KiB (`VmHWM` in /proc/self/status), where the system
/// reports it (Linux). Not `getrusage`: its `ru_maxrss` also counts the address space of the
/// parent that forked us, before our exec.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Sends --count messages of --size bytes, then waits until they are delivered (linger).
async fn send(a: PerfArgs) -> Result<(), Fail> {
    check("send", &a)?;
    let count = a.count.unwrap_or(THR_COUNT);
    let mut push = Push::with_options(options(&a)?);
    bind_and_connect(&push, "perf send", &a.endpoints, a.quiet).await?;
    push.wait_for_peers(1)
        .await
        .map_err(|e| Fail::runtime("waiting for the receiver", e))?;
    let msg = payload(a.size);
    let start = Instant::now();
    for _ in 0..count {
        push.send(msg.clone())
            .await
            .map_err(|e| Fail::runtime("send", e))?;
    }
    push.close().await;
    let seconds = start.elapsed().as_secs_f64();
    say(if a.json {
        format!(
            "{{\"test\":\"send\",\"size\":{},\"count\":{count},\"seconds\":{seconds:.6}}}",
            a.size
        )
    } else {
        format!("send: {} B x {count} msgs sent in {seconds:.3} s", a.size)
    })
}

/// Answers --count requests with the request itself (as libzmq's local_lat).
async fn lat(a: PerfArgs) -> Result<(), Fail> {
    check("lat", &a)?;
    let count = a.count.unwrap_or(LAT_COUNT);
    let mut rep = Rep::with_options(options(&a)?);
    bind_and_connect(&rep, "perf lat", &a.endpoints, a.quiet).await?;
    for _ in 0..count {
        let request = rep
            .recv()
            .await
            .map_err(|e| Fail::runtime("receiving", e))?;
        check_size(request.message(), a.size)?;
        let body = request.message().clone();
        request
            .reply(body)
            .await
            .map_err(|e| Fail::runtime("reply", e))?;
    }
    rep.close().await;
    say(if a.json {
        format!("{{\"test\":\"lat\",\"size\":{},\"count\":{count}}}", a.size)
    } else {
        format!("lat: {} B x {count} requests answered", a.size)
    })
}

/// Times --count round trips once the peer is connected; reports p50/p90/p99/max.
async fn ping(a: PerfArgs) -> Result<(), Fail> {
    check("ping", &a)?;
    let count = a.count.unwrap_or(LAT_COUNT);
    let mut req = Req::with_options(options(&a)?);
    bind_and_connect(&req, "perf ping", &a.endpoints, a.quiet).await?;
    req.wait_for_peers(1)
        .await
        .map_err(|e| Fail::runtime("waiting for the replier", e))?;
    let msg = payload(a.size);
    let mut samples = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for _ in 0..count {
        let start = Instant::now();
        let reply = req
            .request(msg.clone())
            .await
            .map_err(|e| Fail::runtime("request", e))?;
        samples.push(start.elapsed());
        check_size(&reply, a.size)?;
    }
    req.close().await;
    samples.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    // Nearest rank: the smallest sample with at least p% of the samples at or below it.
    let pct = |p: f64| {
        let rank = (p / 100.0 * samples.len() as f64).ceil() as usize;
        us(samples[rank.clamp(1, samples.len()) - 1])
    };
    let mean = us(samples.iter().sum::<Duration>()) / samples.len() as f64;
    let (p50, p90, p99, max) = (pct(50.0), pct(90.0), pct(99.0), pct(100.0));
    if a.json {
        say(format!(
            "{{\"test\":\"ping\",\"size\":{},\"count\":{count},\"p50_us\":{p50:.1},\"p90_us\":{p90:.1},\"p99_us\":{p99:.1},\"max_us\":{max:.1},\"mean_us\":{mean:.1}}}",
            a.size
        ))
    } else {
        say(format!(
            "ping: {} B x {count} round trips: p50 {p50:.1} us, p90 {p90:.1} us, p99 {p99:.1} us, max {max:.1} us (mean {mean:.1} us)",
            a.size
        ))
    }
}
