//! Throughput of one-way bulk transfer over one loopback TCP connection: raw TCP, yamux
//! 0.13 and zocket's multiplexer, for several write sizes and 1 or 16 concurrent streams.
//!
//! Run with `cargo bench --bench mux`. `ZOCKET_BENCH_SCALE` (a float, default 1) scales
//! the amount of data sent per row. `ZOCKET_BENCH_ONLY` (a comma-separated subset of
//! `raw,yamux,zocket`) skips the other columns, e.g. for profiling one contender.

mod common;

use common::{tcp_pair, Task};
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io;
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::compat::{FuturesAsyncReadCompatExt, TokioAsyncReadCompatExt};

/// Hard limit for one measurement (warm-up included).
const CELL_TIMEOUT: Duration = Duration::from_secs(30);
/// The receiver's read buffer.
const READ_BUF: usize = 64 * 1024;
const MIB: u64 = 1024 * 1024;

/// Any bidirectional byte stream, boxed so the three contenders share the same code.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}
type BoxIo = Box<dyn Io>;

/// Writes `bytes` in writes of `size`.
async fn write_chunks<W: AsyncWrite + Unpin>(w: &mut W, bytes: u64, size: usize) -> io::Result<()> {
    let buf = vec![0xa5u8; size];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(size as u64) as usize;
        w.write_all(&buf[..n]).await?;
        left -= n as u64;
    }
    w.flush().await
}

/// Reads exactly `bytes` through a 64 KiB buffer; returns when the last byte arrived.
async fn read_count<R: AsyncRead + Unpin>(r: &mut R, bytes: u64) -> io::Result<Instant> {
    let mut buf = vec![0u8; READ_BUF];
    let mut got = 0u64;
    while got < bytes {
        let want = (bytes - got).min(READ_BUF as u64) as usize;
        let n = r.read(&mut buf[..want]).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "short transfer",
            ));
        }
        got += n as u64;
    }
    Ok(Instant::now())
}

// ---------------------------------------------------------------------------------------
// Raw TCP

/// One phase over raw TCP: `bytes` from client to server. Returns the halves for reuse.
async fn tcp_phase(
    mut w: tokio::net::tcp::OwnedWriteHalf,
    mut r: tokio::net::tcp::OwnedReadHalf,
    bytes: u64,
    size: usize,
) -> io::Result<(
    tokio::net::tcp::OwnedWriteHalf,
    tokio::net::tcp::OwnedReadHalf,
    Duration,
)> {
    let start = Instant::now();
    let sender = Task::spawn(async move {
        write_chunks(&mut w, bytes, size).await?;
        io::Result::Ok(w)
    });
    let receiver = Task::spawn(async move {
        let end = read_count(&mut r, bytes).await?;
        io::Result::Ok((r, end))
    });
    let (w, (r, end)) = (sender.await?, receiver.await?);
    Ok((w, r, end - start))
}

async fn bench_tcp(size: usize, total: u64, warmup: u64) -> io::Result<Duration> {
    let (client, server) = tcp_pair().await?;
    let (_cr, cw) = client.into_split();
    let (sr, _sw) = server.into_split();
    let (cw, sr, _) = tcp_phase(cw, sr, warmup, size).await?;
    let (_cw, _sr, took) = tcp_phase(cw, sr, total, size).await?;
    Ok(took)
}

// ---------------------------------------------------------------------------------------
// Multiplexers

enum Opener {
    Zocket(zocket::mux::Session),
    Yamux(mpsc::UnboundedSender<oneshot::Sender<yamux::Stream>>),
}

impl Opener {
    async fn open(&self) -> io::Result<BoxIo> {
        match self {
            Opener::Zocket(s) => Ok(Box::new(s.open().await.map_err(io::Error::other)?)),
            Opener::Yamux(tx) => {
                let (reply, rx) = oneshot::channel();
                tx.send(reply)
                    .map_err(|_| io::Error::other("yamux closed"))?;
                let stream = rx.await.map_err(|_| io::Error::other("yamux closed"))?;
                Ok(Box::new(stream.compat()))
            }
        }
    }
}

enum Acceptor {
    Zocket(zocket::mux::Session),
    Yamux(mpsc::UnboundedReceiver<yamux::Stream>),
}

impl Acceptor {
    async fn accept(&mut self) -> io::Result<BoxIo> {
        match self {
            Acceptor::Zocket(s) => Ok(Box::new(s.accept().await.map_err(io::Error::other)?)),
            Acceptor::Yamux(rx) => match rx.recv().await {
                Some(stream) => Ok(Box::new(stream.compat())),
                None => Err(io::Error::other("yamux closed")),
            },
        }
    }
}

/// Sends `bytes` on `s`, half-closes, then waits for the peer's half-close (so the stream
/// ends cleanly on both sides).
async fn send_stream(mut s: BoxIo, bytes: u64, size: usize) -> io::Result<()> {
    write_chunks(&mut s, bytes, size).await?;
    s.shutdown().await?;
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await?;
    Ok(())
}

/// Receives `bytes` on `s` and reports when they all arrived, then reads to the end and
/// half-closes.
async fn recv_stream(
    mut s: BoxIo,
    bytes: u64,
    done: mpsc::UnboundedSender<Instant>,
) -> io::Result<()> {
    let end = read_count(&mut s, bytes).await?;
    let _ = done.send(end);
    let mut buf = [0u8; 64];
    if s.read(&mut buf).await? != 0 {
        return Err(io::Error::other("more data than sent"));
    }
    s.shutdown().await
}

/// One phase over a multiplexer: `streams` streams, `per_stream` bytes each, concurrently.
/// Returns the acceptor for reuse, and the time from the first write to the last byte.
async fn mux_phase(
    opener: &Opener,
    mut acceptor: Acceptor,
    streams: usize,
    per_stream: u64,
    size: usize,
) -> io::Result<(Acceptor, Duration)> {
    let mut outgoing = Vec::with_capacity(streams);
    for _ in 0..streams {
        outgoing.push(opener.open().await?);
    }
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let server = Task::spawn(async move {
        let mut receivers = Vec::with_capacity(streams);
        for _ in 0..streams {
            let s = acceptor.accept().await?;
            receivers.push(Task::spawn(recv_stream(s, per_stream, done_tx.clone())));
        }
        for r in receivers {
            r.await?;
        }
        io::Result::Ok(acceptor)
    });
    let start = Instant::now();
    let senders: Vec<_> = outgoing
        .into_iter()
        .map(|s| Task::spawn(send_stream(s, per_stream, size)))
        .collect();
    let mut end = start;
    for _ in 0..streams {
        match done_rx.recv().await {
            Some(t) => end = end.max(t),
            None => break, // a receiver failed: the server task reports it
        }
    }
    for s in senders {
        s.await?;
    }
    let acceptor = server.await?;
    Ok((acceptor, end - start))
}

async fn bench_mux(
    opener: Opener,
    acceptor: Acceptor,
    streams: usize,
    size: usize,
    total: u64,
    warmup: u64,
) -> io::Result<Duration> {
    let per = |bytes: u64| (bytes / streams as u64).max(size as u64);
    let (acceptor, _) = mux_phase(&opener, acceptor, streams, per(warmup), size).await?;
    let (_acceptor, took) = mux_phase(&opener, acceptor, streams, per(total), size).await?;
    Ok(took)
}

/// The yamux config used: the default. yamux 0.13 has no per-stream window setting: each
/// stream starts at 256 KiB and auto-tunes its window up to the connection limit (1 GiB
/// by default), so nothing needs raising to match zocket's 1 MiB per stream.
fn yamux_config() -> yamux::Config {
    yamux::Config::default()
}

/// Drives a client-side yamux connection; open requests come in on the returned channel.
fn yamux_client(
    io: TcpStream,
) -> (
    Task<()>,
    mpsc::UnboundedSender<oneshot::Sender<yamux::Stream>>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<oneshot::Sender<yamux::Stream>>();
    let mut conn = yamux::Connection::new(io.compat(), yamux_config(), yamux::Mode::Client);
    let task = Task::spawn(async move {
        let mut waiting = VecDeque::new();
        poll_fn(|cx| {
            while let Poll::Ready(Some(req)) = rx.poll_recv(cx) {
                waiting.push_back(req);
            }
            while !waiting.is_empty() {
                match conn.poll_new_outbound(cx) {
                    Poll::Ready(Ok(s)) => {
                        let req: oneshot::Sender<yamux::Stream> = waiting.pop_front().unwrap();
                        let _ = req.send(s);
                    }
                    Poll::Ready(Err(_)) => return Poll::Ready(()),
                    Poll::Pending => break,
                }
            }
            loop {
                match conn.poll_next_inbound(cx) {
                    Poll::Ready(Some(Ok(_unexpected))) => continue,
                    Poll::Ready(_) => return Poll::Ready(()),
                    Poll::Pending => return Poll::Pending,
                }
            }
        })
        .await
    });
    (task, tx)
}

/// Drives a server-side yamux connection; inbound streams come out of the returned channel.
fn yamux_server(io: TcpStream) -> (Task<()>, mpsc::UnboundedReceiver<yamux::Stream>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut conn = yamux::Connection::new(io.compat(), yamux_config(), yamux::Mode::Server);
    let task = Task::spawn(async move {
        poll_fn(|cx| loop {
            match conn.poll_next_inbound(cx) {
                Poll::Ready(Some(Ok(s))) => {
                    let _ = tx.send(s);
                }
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        })
        .await
    });
    (task, rx)
}

async fn bench_yamux(streams: usize, size: usize, total: u64, warmup: u64) -> io::Result<Duration> {
    let (client, server) = tcp_pair().await?;
    let (_client_task, open) = yamux_client(client);
    let (_server_task, inbound) = yamux_server(server);
    bench_mux(
        Opener::Yamux(open),
        Acceptor::Yamux(inbound),
        streams,
        size,
        total,
        warmup,
    )
    .await
}

async fn bench_zocket(
    streams: usize,
    size: usize,
    total: u64,
    warmup: u64,
) -> io::Result<Duration> {
    let (client, server) = tcp_pair().await?;
    let options = zocket::Options::default();
    let client = zocket::mux::Session::with_options(client, false, &options);
    let server = zocket::mux::Session::with_options(server, true, &options);
    bench_mux(
        Opener::Zocket(client),
        Acceptor::Zocket(server),
        streams,
        size,
        total,
        warmup,
    )
    .await
}

// ---------------------------------------------------------------------------------------

/// A measurement: MB/s (10^6 bytes per second), or why there is none.
#[derive(Clone)]
enum Cell {
    Rate(f64),
    Timeout,
    Failed(String),
    Skipped,
}

impl Cell {
    fn rate(&self) -> Option<f64> {
        match self {
            Cell::Rate(r) => Some(*r),
            _ => None,
        }
    }

    fn show(&self) -> String {
        match self {
            Cell::Rate(r) => format!("{r:.0}"),
            Cell::Timeout => "timeout".into(),
            Cell::Failed(e) => format!("error: {e}"),
            Cell::Skipped => "-".into(),
        }
    }
}

fn measure<F>(rt: &tokio::runtime::Runtime, enabled: bool, total: u64, run: F) -> Cell
where
    F: Future<Output = io::Result<Duration>>,
{
    if !enabled {
        return Cell::Skipped;
    }
    match rt.block_on(async { tokio::time::timeout(CELL_TIMEOUT, run).await }) {
        Ok(Ok(took)) => Cell::Rate(total as f64 / took.as_secs_f64() / 1e6),
        Ok(Err(e)) => Cell::Failed(e.to_string()),
        Err(_) => Cell::Timeout,
    }
}

/// Bytes per row for each write size, before scaling (each row takes ~1-3 s here).
fn base_total(size: usize) -> u64 {
    match size {
        s if s <= 64 => 8 * MIB,
        s if s <= 4096 => 256 * MIB,
        _ => 1024 * MIB,
    }
}

fn human(bytes: usize) -> String {
    if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

fn main() {
    let scale = common::scale();
    let only = std::env::var("ZOCKET_BENCH_ONLY").unwrap_or_default();
    let run = |name: &str| only.is_empty() || only.split(',').any(|o| o.trim() == name);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("mux throughput over one loopback TCP connection (TCP_NODELAY), tokio multi-thread runtime with 2 workers");
    println!("machine cores: {cores}; ZOCKET_BENCH_SCALE={scale}; MB = 10^6 bytes; receiver reads into a 64 KiB buffer");
    println!("yamux 0.13: default Config (no per-stream window knob; 256 KiB initial window, auto-tuned up to the 1 GiB connection limit)");
    println!("raw TCP: 1 connection, same writes; for 16 streams the single-connection number is repeated (marked *)");
    println!();

    let sizes = [64usize, 4096, 65536];
    let mut raw = Vec::new();
    for &size in &sizes {
        let total = ((base_total(size) as f64 * scale) as u64).max(size as u64);
        raw.push(measure(
            &rt,
            run("raw"),
            total,
            bench_tcp(size, total, total / 16),
        ));
    }

    println!(
        "{:>7} {:>7} {:>10} {:>12} {:>10} {:>11} {:>13} {:>9}",
        "streams",
        "write",
        "total MiB",
        "raw TCP MB/s",
        "yamux MB/s",
        "zocket MB/s",
        "zocket/raw %",
        "z/yamux"
    );
    for streams in [1usize, 16] {
        for (i, &size) in sizes.iter().enumerate() {
            let total = ((base_total(size) as f64 * scale) as u64).max(size as u64);
            let total = total / streams as u64 * streams as u64;
            let warmup = total / 16;
            let yamux = measure(
                &rt,
                run("yamux"),
                total,
                bench_yamux(streams, size, total, warmup),
            );
            let zocket = measure(
                &rt,
                run("zocket"),
                total,
                bench_zocket(streams, size, total, warmup),
            );
            let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) if b > 0.0 => Some(a / b),
                _ => None,
            };
            let raw_pct = ratio(zocket.rate(), raw[i].rate())
                .map_or("-".into(), |r| format!("{:.0}%", r * 100.0));
            let vs_yamux =
                ratio(zocket.rate(), yamux.rate()).map_or("-".into(), |r| format!("{r:.2}x"));
            let raw_cell = if streams == 1 {
                raw[i].show()
            } else {
                format!("{}*", raw[i].show())
            };
            println!(
                "{:>7} {:>7} {:>10.1} {:>12} {:>10} {:>11} {:>13} {:>9}",
                streams,
                human(size),
                total as f64 / MIB as f64,
                raw_cell,
                yamux.show(),
                zocket.show(),
                raw_pct,
                vs_yamux
            );
        }
    }
    rt.shutdown_timeout(Duration::from_secs(1));
}
