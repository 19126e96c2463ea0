//! The native wire against zocket's own ZMTP path, on both runtime flavours: Push→Pull over
//! tcp loopback, 16 B .. 64 KiB, in one process, sender and receiver as tasks of their own,
//! rates taken at the receiver. Each cell is the median of `ZOCKET_BENCH_REPEAT` (default 3)
//! runs, and the runs of one size are interleaved (native, ZMTP, each flavour, then again),
//! so a machine busy with other work slows every variant alike.
//!
//! Run with `cargo bench --bench wire`. `ZOCKET_BENCH_SCALE` (a float, default 1) multiplies
//! every message count; `ZOCKET_BENCH_SIZES` (comma-separated bytes) picks sizes;
//! `ZOCKET_BENCH_VARIANTS` (comma-separated of `native-mt,zmtp-mt,native-ct,zmtp-ct`) picks
//! variants; `ZOCKET_BENCH_STREAM_WINDOW` (bytes) sets the stream window. Every run is bounded by a count and a hard timeout.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{loadavg, rate, Task};
use tokio::time::timeout;
use zocket::{Message, Options, Pull, Push};

/// Hard limit for one run.
const RUN_TIMEOUT: Duration = Duration::from_secs(20);

/// Sizes and message counts at scale 1 (a few hundred milliseconds per run).
const ROWS: [(usize, u64); 4] = [
    (16, 1_000_000),
    (256, 600_000),
    (4096, 150_000),
    (65536, 15_000),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Wire {
    Native,
    Zmtp,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavour {
    Multi,
    Current,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() {
    let scale = common::scale();
    let repeat: usize = std::env::var("ZOCKET_BENCH_REPEAT")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(3);
    let sizes: Option<Vec<usize>> = std::env::var("ZOCKET_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect());
    let all = [
        ("native-mt", Wire::Native, Flavour::Multi),
        ("zmtp-mt", Wire::Zmtp, Flavour::Multi),
        ("native-ct", Wire::Native, Flavour::Current),
        ("zmtp-ct", Wire::Zmtp, Flavour::Current),
    ];
    let wanted = std::env::var("ZOCKET_BENCH_VARIANTS").ok();
    let variants: Vec<_> = all
        .into_iter()
        .filter(|(name, _, _)| {
            wanted
                .as_ref()
                .is_none_or(|w| w.split(',').any(|x| x == *name))
        })
        .collect();
    println!(
        "Push->Pull msg/s over tcp loopback, median of {repeat}, scale {scale}; load {}",
        loadavg()
    );
    print!("{:>7} {:>8}", "size", "msgs");
    for (name, _, _) in &variants {
        print!(" | {name:>10}");
    }
    println!();
    for (size, count) in ROWS {
        if sizes.as_ref().is_some_and(|s| !s.contains(&size)) {
            continue;
        }
        let n = ((count as f64 * scale) as u64).max(1);
        let mut results: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
        for _ in 0..repeat {
            for (i, (_, wire, flavour)) in variants.iter().enumerate() {
                let r = run(*wire, *flavour, size, n);
                results[i].push(r.map_or(0.0, |d| rate(n, d)));
            }
        }
        print!("{size:>7} {n:>8}");
        for r in &mut results {
            r.sort_by(f64::total_cmp);
            let median = r[r.len() / 2];
            if median == 0.0 {
                print!(" | {:>10}", "timeout");
            } else {
                print!(" | {median:>10.0}");
            }
        }
        println!();
    }
    println!("load at end: {}", loadavg());
}

fn run(wire: Wire, flavour: Flavour, size: usize, n: u64) -> Option<Duration> {
    let rt = match flavour {
        Flavour::Multi => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
        Flavour::Current => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    }
    .expect("tokio runtime");
    let res = rt.block_on(async { timeout(RUN_TIMEOUT, pipeline(wire, size, n)).await });
    rt.shutdown_timeout(Duration::from_secs(1));
    match res {
        Ok(Ok(d)) => Some(d),
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            None
        }
        Err(_) => None,
    }
}

/// `n` messages of `size` through a fresh Push/Pull pair; the time from the first send to
/// the puller holding the last one (after a warm-up of a tenth of `n`).
async fn pipeline(wire: Wire, size: usize, n: u64) -> Result<Duration, BoxError> {
    let window = std::env::var("ZOCKET_BENCH_STREAM_WINDOW")
        .ok()
        .and_then(|w| w.parse::<u32>().ok());
    let options = || {
        let o = Options::new().native(wire == Wire::Native);
        match window {
            Some(w) => o.stream_window(w),
            None => o,
        }
    };
    let mut pull = Pull::with_options(options());
    let ep = pull.bind("tcp://127.0.0.1:0").await?.to_string();
    let mut push = Push::with_options(options());
    push.connect(&ep)?;
    push.wait_for_peers(1).await?;
    let data = Bytes::from(vec![7u8; size]);
    for phase_n in [(n / 10).max(1), n] {
        let puller = Task::spawn(async move {
            for _ in 0..phase_n {
                let msg = pull.recv().await?;
                debug_assert_eq!(msg.frames()[0].len(), size);
            }
            Ok::<_, BoxError>((pull, Instant::now()))
        });
        let data = data.clone();
        let pusher = Task::spawn(async move {
            let start = Instant::now();
            for _ in 0..phase_n {
                push.send(Message::from(data.clone())).await?;
            }
            Ok::<_, BoxError>((push, start))
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
