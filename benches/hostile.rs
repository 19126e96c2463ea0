//! What one hostile connection can do to a bound socket: zocket beside libzmq, the same
//! attacks in the same run.
//!
//! Each server runs in a process of its own, bound to a loopback port: a zocket `Rep` (or
//! `Pair`) that echoes what it receives, built in release mode (this bench binary started again
//! with `ZOCKET_HOSTILE_SERVE` set), and a libzmq 4.3 `REP` (or `PAIR`) doing the same through
//! pyzmq. Against each, with raw bytes over TCP (plain ZMTP 3.1, which both speak):
//!
//! 1. READY as DEALER, then 20 MB of `01 00` (MORE, empty): one message that never ends. The
//!    server's resident memory (VmRSS) before, at its peak while the bytes flow, and whether
//!    the server closed the connection.
//! 2. Two connections each send a READY of 200,000 distinct properties (2.4 MB), then a good
//!    request comes on a fresh connection: how long until it is answered (5 s at most).
//! 3. A DEALER sends 20,000 requests of 1,000 bytes and never reads its replies; another client's REQ sends
//!    10 requests, each given 1 s: how many are answered.
//! 4. A PAIR is connected and talking; a second PAIR connects and sends: is it served?
//!
//! The honest clients are zocket sockets speaking plain ZMTP (`Options::native(false)`), the
//! same for both servers. Run with `cargo bench --bench hostile` (needs python3 with pyzmq:
//! `pip install pyzmq`). Every loop is bounded in count and time.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::timeout;
use zocket::{Options, Pair, Rep, Req};

/// Environment variable that makes this binary a server: `rep:<endpoint>` or `pair:<endpoint>`.
const SERVE: &str = "ZOCKET_HOSTILE_SERVE";

const LIBZMQ_SERVER: &str = r#"
import sys, zmq
kind, ep = sys.argv[1], sys.argv[2]
ctx = zmq.Context()
s = ctx.socket(zmq.REP if kind == "rep" else zmq.PAIR)
s.bind(ep)
print("ready", flush=True)
while True:
    s.send_multipart(s.recv_multipart())
"#;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    if let Ok(spec) = std::env::var(SERVE) {
        runtime.block_on(serve(&spec));
        return;
    }
    runtime.block_on(run());
}

/// The zocket server: echoes every request (Rep) or message (Pair), default options.
async fn serve(spec: &str) {
    let (kind, ep) = spec.split_once(':').expect("kind:endpoint");
    match kind {
        "rep" => {
            let mut rep = Rep::bind(ep).await.expect("bind");
            println!("ready");
            loop {
                let Ok(request) = rep.recv().await else {
                    return;
                };
                let body = request.message().clone();
                if request.reply(body).await.is_err() {
                    return;
                }
            }
        }
        _ => {
            let mut pair = Pair::bind(ep).await.expect("bind");
            println!("ready");
            loop {
                let Ok(msg) = pair.recv().await else { return };
                if pair.send(msg).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Server {
    Zocket,
    Libzmq,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::Zocket => "zocket",
            Server::Libzmq => "libzmq",
        }
    }
}

/// A running server process, killed when dropped.
struct Running {
    child: Child,
    endpoint: String,
}

impl Running {
    async fn start(server: Server, kind: &str) -> Running {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let endpoint = format!("tcp://127.0.0.1:{port}");
        let mut command = match server {
            Server::Zocket => {
                let mut c = Command::new(std::env::current_exe().expect("own path"));
                c.env(SERVE, format!("{kind}:{endpoint}"));
                c
            }
            Server::Libzmq => {
                let mut c = Command::new("python3");
                c.args(["-c", LIBZMQ_SERVER, kind, &endpoint]);
                c
            }
        };
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("server starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = timeout(Duration::from_secs(20), lines.next_line()).await;
        assert!(
            matches!(ready, Ok(Ok(Some(ref l))) if l == "ready"),
            "{} server did not start",
            server.name()
        );
        Running { child, endpoint }
    }

    /// Resident memory of the server process, in MiB.
    fn rss_mib(&self) -> f64 {
        let pid = self.child.id().unwrap_or(0);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(f64::NAN, |kib| kib / 1024.0)
    }

    fn port(&self) -> u16 {
        self.endpoint.rsplit(':').next().unwrap().parse().unwrap()
    }
}

/// A plain ZMTP 3.1 greeting, NULL mechanism, no zocket marker.
fn greeting() -> Vec<u8> {
    let mut g = vec![0u8; 64];
    g[0] = 0xFF;
    g[8] = 1;
    g[9] = 0x7F;
    g[10] = 3;
    g[11] = 1;
    g[12..16].copy_from_slice(b"NULL");
    g
}

/// A COMMAND frame with `body`.
fn command_frame(body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(body.len() + 9);
    if body.len() <= 255 {
        f.extend_from_slice(&[0x04, body.len() as u8]);
    } else {
        f.push(0x06);
        f.extend_from_slice(&(body.len() as u64).to_be_bytes());
    }
    f.extend_from_slice(body);
    f
}

/// READY with Socket-Type `socket_type` and `extra` distinct empty properties.
fn ready(socket_type: &str, extra: usize) -> Vec<u8> {
    let mut body = vec![5];
    body.extend_from_slice(b"READY");
    let mut property = |name: &[u8], value: &[u8]| {
        body.push(name.len() as u8);
        body.extend_from_slice(name);
        body.extend_from_slice(&(value.len() as u32).to_be_bytes());
        body.extend_from_slice(value);
    };
    property(b"Socket-Type", socket_type.as_bytes());
    for i in 0..extra {
        property(format!("x{i:07}").as_bytes(), b"");
    }
    command_frame(&body)
}

/// A raw connection that has greeted and sent READY as `socket_type`; what the server sends is
/// read and dropped in the background, and its end of the connection noticed.
struct RawPeer {
    write: tokio::net::tcp::OwnedWriteHalf,
    closed: tokio::sync::watch::Receiver<bool>,
}

impl RawPeer {
    async fn connect(port: u16, ready_frame: &[u8], read: bool) -> std::io::Result<RawPeer> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        let (mut rd, mut write) = stream.into_split();
        let (tx, closed) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                if !read {
                    // Read only the greeting and READY, then nothing: replies pile up.
                    let _ = timeout(Duration::from_secs(1), rd.read(&mut buf)).await;
                    std::future::pending::<()>().await;
                }
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            let _ = tx.send(true);
            drop(rd);
        });
        write.write_all(&greeting()).await?;
        write.write_all(ready_frame).await?;
        Ok(RawPeer { write, closed })
    }

    /// Writes `bytes` in pieces, each given `patience`; returns how many were written (a
    /// server that stops reading stops us here).
    async fn write_for(&mut self, bytes: &[u8], patience: Duration) -> usize {
        let mut written = 0;
        for piece in bytes.chunks(64 * 1024) {
            match timeout(patience, self.write.write_all(piece)).await {
                Ok(Ok(())) => written += piece.len(),
                _ => break,
            }
        }
        written
    }

    fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }
}

fn honest() -> Options {
    Options::new()
        .native(false)
        .reconnect_interval(Duration::from_millis(20))
}

/// Row 1: one message of endless empty frames.
async fn endless_message(server: Server) -> String {
    let running = Running::start(server, "rep").await;
    let before = running.rss_mib();
    let Ok(mut peer) = RawPeer::connect(running.port(), &ready("DEALER", 0), true).await else {
        return "connect failed".into();
    };
    let flood: Vec<u8> = [0x01u8, 0x00].repeat(10_000_000);
    let writer = async { peer.write_for(&flood, Duration::from_secs(2)).await };
    let mut peak = before;
    let sampler = async {
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            peak = peak.max(running.rss_mib());
        }
    };
    let written = tokio::select! {
        n = writer => n,
        _ = sampler => unreachable!(),
    };
    peak = peak.max(running.rss_mib());
    let fate = if peer.is_closed() {
        "closed".to_owned()
    } else if written < flood.len() {
        format!("stopped reading at {:.1} MB", written as f64 / 1e6)
    } else {
        "kept reading".to_owned()
    };
    format!(
        "{before:.0} → peak {peak:.0} MiB (+{:.0}), {fate}",
        peak - before
    )
}

/// Row 2: two huge READYs, then a good request on a fresh connection.
async fn huge_ready(server: Server) -> String {
    let running = Running::start(server, "rep").await;
    let frame = ready("DEALER", 200_000);
    let mut attackers = Vec::new();
    for _ in 0..2 {
        let port = running.port();
        let frame = frame.clone();
        attackers.push(tokio::spawn(async move {
            let _ = timeout(
                Duration::from_secs(10),
                RawPeer::connect(port, &frame, true),
            )
            .await;
        }));
    }
    // Let both start writing before the honest client comes.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let start = Instant::now();
    let mut req = Req::with_options(honest().request_timeout(Some(Duration::from_secs(5))));
    req.connect(&running.endpoint).unwrap();
    let answer = match req.request("hello").await {
        Ok(_) => format!("answered in {:.1} ms", start.elapsed().as_secs_f64() * 1e3),
        Err(_) => "not answered within 5 s".into(),
    };
    for a in attackers {
        a.abort();
    }
    answer
}

/// Row 3: a DEALER that never reads, and another client's REQ.
async fn unread_replies(server: Server) -> String {
    let running = Running::start(server, "rep").await;
    let Ok(mut dealer) = RawPeer::connect(running.port(), &ready("DEALER", 0), false).await else {
        return "connect failed".into();
    };
    // Each request: an empty delimiter, then a 1,000-byte body (its reply is as large, so the
    // replies outgrow every buffer on the way: socket buffers, queues).
    let mut requests = Vec::with_capacity(20_000 * 1_004);
    for _ in 0..20_000 {
        requests.extend_from_slice(&[0x01, 0x00]); // MORE, empty
        requests.push(0x02); // LONG: an 8-byte size follows
        requests.extend_from_slice(&1_000u64.to_be_bytes());
        requests.extend_from_slice(&[b'x'; 1_000]);
    }
    let flood = tokio::spawn(async move {
        dealer.write_for(&requests, Duration::from_secs(3)).await;
        dealer // kept open, never read
    });
    // Give the flood a head start, as a real one would have.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut req = Req::with_options(honest().request_timeout(Some(Duration::from_secs(1))));
    req.connect(&running.endpoint).unwrap();
    let start = Instant::now();
    let mut answered = 0;
    for i in 0..10 {
        if req.request(format!("r{i}")).await.is_ok() {
            answered += 1;
        }
    }
    let took = start.elapsed();
    flood.abort();
    format!(
        "{answered} of 10 answered in {:.0} ms",
        took.as_secs_f64() * 1e3
    )
}

/// Row 4: a second PAIR while the first talks.
async fn second_pair(server: Server) -> String {
    let running = Running::start(server, "pair").await;
    let mut first = Pair::with_options(honest());
    first.connect(&running.endpoint).unwrap();
    let echoed = timeout(Duration::from_secs(5), async {
        first.send("one").await?;
        first.recv().await
    })
    .await;
    if !matches!(echoed, Ok(Ok(_))) {
        return "first PAIR not served".into();
    }
    let mut second = Pair::with_options(honest());
    second.connect(&running.endpoint).unwrap();
    // The second sends; if the server took it, the echo comes back to one of the two.
    let _ = timeout(Duration::from_secs(1), second.send("two")).await;
    let heard = tokio::select! {
        m = second.recv() => m.ok(),
        m = first.recv() => m.ok(),
        _ = tokio::time::sleep(Duration::from_secs(1)) => None,
    };
    let still = timeout(Duration::from_secs(2), async {
        first.send("three").await?;
        first.recv().await
    })
    .await;
    let first_ok = if matches!(still, Ok(Ok(_))) {
        "first still served"
    } else {
        "first no longer served"
    };
    match heard {
        Some(_) => format!("second accepted; {first_ok}"),
        None => format!("second refused; {first_ok}"),
    }
}

async fn run() {
    let have_pyzmq = std::process::Command::new("python3")
        .args(["-c", "import zmq"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let servers: &[Server] = if have_pyzmq {
        &[Server::Zocket, Server::Libzmq]
    } else {
        eprintln!("python3 with pyzmq not found (pip install pyzmq): zocket only");
        &[Server::Zocket]
    };
    println!(
        "hostile peers against a bound socket (load {})",
        common::loadavg()
    );
    println!();
    print!("| what one connection does |");
    for s in servers {
        print!(" {} |", s.name());
    }
    println!();
    println!("|---|{}", "---|".repeat(servers.len()));
    type Row = fn(Server) -> std::pin::Pin<Box<dyn std::future::Future<Output = String>>>;
    let rows: [(&str, Row); 4] = [
        ("READY as DEALER, then 20 MB of `01 00` (RSS, fate)", |s| {
            Box::pin(endless_message(s))
        }),
        (
            "two READYs of 200,000 properties, then a good request",
            |s| Box::pin(huge_ready(s)),
        ),
        (
            "a DEALER sends 20,000 requests, never reads; another REQ sends 10",
            |s| Box::pin(unread_replies(s)),
        ),
        ("a second PAIR connects to a bound PAIR", |s| {
            Box::pin(second_pair(s))
        }),
    ];
    for (what, row) in rows {
        print!("| {what} |");
        for &s in servers {
            let cell = timeout(Duration::from_secs(60), row(s))
                .await
                .unwrap_or_else(|_| "timeout (60 s)".into());
            print!(" {cell} |");
        }
        println!();
    }
}
