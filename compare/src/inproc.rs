//! The in-process cells: a sender task and a receiver task on one tokio runtime, over
//! loopback TCP, for every library. One function per library and pattern; the measuring
//! loops are the macros below, so every library is timed by the same code.

use std::net::{Ipv4Addr, TcpListener as StdTcpListener};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};

use crate::{Latency, Res, Task};

/// One contender of the in-process rows.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Lib {
    /// zocket ↔ zocket, native multiplexed wire (default options).
    Native,
    /// zocket ↔ zocket, plain ZMTP 3.1 (`Options::native(false)` on both sockets).
    Zmtp,
    /// zmq.rs (crate `zeromq`).
    ZmqRs,
    /// rzmq.
    Rzmq,
    /// omq-tokio.
    Omq,
    /// A length-prefixed stream over a raw tokio `TcpStream`.
    Raw,
    /// zocket native wire with CURVE.
    NativeCurve,
    /// zocket plain ZMTP with CURVE.
    ZmtpCurve,
}

/// How much one throughput or latency run may do.
#[derive(Clone, Copy, Debug)]
pub struct Bound {
    /// Messages (or round trips) received before the clock starts.
    pub warmup: u64,
    /// At most this many measured messages (or round trips)...
    pub count: u64,
    /// ...and for at most this long.
    pub time: Duration,
}

/// Receives `warmup` messages, then up to `count` more for at most `time`; evaluates to the
/// rate of the measured ones, in messages per second, at the receiver. `$recv` is an
/// expression that receives one message and evaluates to its length.
macro_rules! receive_rate {
    ($bound:expr, $size:expr, $recv:expr) => {{
        let b: Bound = $bound;
        for _ in 0..b.warmup {
            let len: usize = $recv;
            check_len(len, $size)?;
        }
        let start = Instant::now();
        let deadline = start + b.time;
        let mut got = 0u64;
        while got < b.count {
            let len: usize = $recv;
            check_len(len, $size)?;
            got += 1;
            if got % 128 == 0 && Instant::now() >= deadline {
                break;
            }
        }
        Res::Ok(got as f64 / start.elapsed().as_secs_f64())
    }};
}

/// Times `warmup` + up to `count` round trips (at most `time` after the warm-up);
/// `$round_trip` is an expression that sends one request and awaits its reply.
macro_rules! round_trips {
    ($bound:expr, $round_trip:expr) => {{
        let b: Bound = $bound;
        for _ in 0..b.warmup {
            $round_trip;
        }
        let mut samples = Vec::with_capacity(b.count.min(1 << 20) as usize);
        let deadline = Instant::now() + b.time;
        while (samples.len() as u64) < b.count {
            let t = Instant::now();
            $round_trip;
            samples.push(t.elapsed());
            if t >= deadline {
                break;
            }
        }
        Res::Ok(Latency::from_samples(samples))
    }};
}

fn check_len(len: usize, size: usize) -> Res<()> {
    if len == size {
        Ok(())
    } else {
        Err(format!("received {len} bytes, expected {size}").into())
    }
}

/// A loopback endpoint on a port that was free a moment ago (for libraries whose bind does
/// not report the port it got).
fn free_endpoint() -> Res<String> {
    let l = StdTcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(format!("tcp://127.0.0.1:{}", l.local_addr()?.port()))
}

fn payload(size: usize) -> Bytes {
    Bytes::from(vec![0xA5u8; size])
}

/// Push→Pull throughput of `lib` at `size` bytes, in messages per second at the receiver.
pub async fn throughput(lib: Lib, size: usize, b: Bound) -> Res<f64> {
    // The sender sends everything the receiver could want; once the receiver has its
    // figure, the sender task is aborted (dropped) wherever it is.
    let total = b.warmup + b.count;
    match lib {
        Lib::Native | Lib::Zmtp | Lib::NativeCurve | Lib::ZmtpCurve => {
            let (server, client) = zocket_options(lib);
            let mut pull = zocket::Pull::with_options(server);
            let ep = pull.bind("tcp://127.0.0.1:0").await?.to_string();
            let mut push = zocket::Push::with_options(client);
            push.connect(&ep)?;
            push.wait_for_peers(1).await?;
            let data = payload(size);
            let _sender = Task::spawn(async move {
                for _ in 0..total {
                    if push.send(data.clone()).await.is_err() {
                        break;
                    }
                }
                push
            });
            Task::spawn(async move { receive_rate!(b, size, pull.recv().await?.byte_len()) }).await
        }
        Lib::ZmqRs => {
            use zeromq::{Socket, SocketRecv, SocketSend};
            let mut pull = zeromq::PullSocket::new();
            let ep = pull.bind("tcp://127.0.0.1:0").await?.to_string();
            let mut push = zeromq::PushSocket::new();
            push.connect(&ep).await?;
            let data = payload(size);
            let _sender = Task::spawn(async move {
                for _ in 0..total {
                    if push.send(data.clone().into()).await.is_err() {
                        break;
                    }
                }
                push
            });
            Task::spawn(async move {
                receive_rate!(b, size, {
                    let m = pull.recv().await?;
                    m.iter().map(|f| f.len()).sum()
                })
            })
            .await
        }
        Lib::Rzmq => {
            let ctx = rzmq::Context::new()?;
            let pull = ctx.socket(rzmq::SocketType::Pull)?;
            let ep = free_endpoint()?;
            pull.bind(&ep).await?;
            let push = ctx.socket(rzmq::SocketType::Push)?;
            push.connect(&ep).await?;
            let data = payload(size);
            let _sender = Task::spawn(async move {
                for _ in 0..total {
                    if push
                        .send(rzmq::Msg::from_bytes(data.clone()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                push
            });
            let rate =
                Task::spawn(async move { receive_rate!(b, size, pull.recv().await?.size()) }).await;
            let _ = tokio::time::timeout(Duration::from_secs(1), ctx.term()).await;
            rate
        }
        Lib::Omq => {
            use omq_tokio::{Message, Options, Socket, SocketType};
            let pull = Socket::new(SocketType::Pull, Options::default());
            let ep = free_endpoint()?;
            pull.bind(ep.parse::<omq_tokio::Endpoint>()?).await?;
            let push = Socket::new(SocketType::Push, Options::default());
            push.connect(ep.parse::<omq_tokio::Endpoint>()?).await?;
            push.wait_connected(1, Duration::from_secs(5)).await?;
            let data = payload(size);
            let _sender = Task::spawn(async move {
                for _ in 0..total {
                    if push.send(Message::single(data.clone())).await.is_err() {
                        break;
                    }
                }
                push
            });
            Task::spawn(async move { receive_rate!(b, size, pull.recv().await?.byte_len()) }).await
        }
        Lib::Raw => {
            let (client, server) = tcp_pair().await?;
            let data = payload(size);
            let _sender = Task::spawn(async move {
                // One length prefix and one payload per message into a BufWriter, as a
                // hand-written framing would do.
                let mut w = BufWriter::new(client);
                for _ in 0..total {
                    if w.write_u32(data.len() as u32).await.is_err()
                        || w.write_all(&data).await.is_err()
                    {
                        break;
                    }
                }
                let _ = w.flush().await;
                w
            });
            Task::spawn(async move {
                let mut r = BufReader::new(server);
                let mut buf = Vec::new();
                receive_rate!(b, size, {
                    let len = r.read_u32().await? as usize;
                    if len > 1 << 20 {
                        return Err("raw frame too long".into());
                    }
                    buf.resize(len, 0);
                    r.read_exact(&mut buf).await?;
                    len
                })
            })
            .await
        }
    }
}

/// Req→Rep round trips of `size` bytes with `lib`.
pub async fn latency(lib: Lib, size: usize, b: Bound) -> Res<Latency> {
    let data = payload(size);
    match lib {
        Lib::Native | Lib::Zmtp | Lib::NativeCurve | Lib::ZmtpCurve => {
            let (server, client) = zocket_options(lib);
            let mut rep = zocket::Rep::with_options(server);
            let ep = rep.bind("tcp://127.0.0.1:0").await?.to_string();
            let _server = Task::spawn(async move {
                while let Ok(request) = rep.recv().await {
                    let body = request.message().clone();
                    if request.reply(body).await.is_err() {
                        break;
                    }
                }
            });
            let mut req = zocket::Req::with_options(client);
            req.connect(&ep)?;
            req.wait_for_peers(1).await?;
            Task::spawn(async move {
                round_trips!(
                    b,
                    check_len(req.request(data.clone()).await?.byte_len(), size)?
                )
            })
            .await
        }
        Lib::ZmqRs => {
            use zeromq::{Socket, SocketRecv, SocketSend};
            let mut rep = zeromq::RepSocket::new();
            let ep = rep.bind("tcp://127.0.0.1:0").await?.to_string();
            let _server = Task::spawn(async move {
                while let Ok(m) = rep.recv().await {
                    if rep.send(m).await.is_err() {
                        break;
                    }
                }
            });
            let mut req = zeromq::ReqSocket::new();
            req.connect(&ep).await?;
            Task::spawn(async move {
                round_trips!(b, {
                    req.send(data.clone().into()).await?;
                    let m = req.recv().await?;
                    check_len(m.iter().map(|f| f.len()).sum(), size)?;
                })
            })
            .await
        }
        Lib::Rzmq => {
            let ctx = rzmq::Context::new()?;
            let rep = ctx.socket(rzmq::SocketType::Rep)?;
            let ep = free_endpoint()?;
            rep.bind(&ep).await?;
            let _server = Task::spawn(async move {
                while let Ok(m) = rep.recv().await {
                    if rep.send(m).await.is_err() {
                        break;
                    }
                }
            });
            let req = ctx.socket(rzmq::SocketType::Req)?;
            req.connect(&ep).await?;
            let lat = Task::spawn(async move {
                round_trips!(b, {
                    req.send(rzmq::Msg::from_bytes(data.clone())).await?;
                    check_len(req.recv().await?.size(), size)?;
                })
            })
            .await;
            let _ = tokio::time::timeout(Duration::from_secs(1), ctx.term()).await;
            lat
        }
        Lib::Omq => {
            use omq_tokio::{Message, Options, Socket, SocketType};
            let rep = Socket::new(SocketType::Rep, Options::default());
            let ep = free_endpoint()?;
            rep.bind(ep.parse::<omq_tokio::Endpoint>()?).await?;
            let _server = Task::spawn(async move {
                while let Ok(m) = rep.recv().await {
                    if rep.send(m).await.is_err() {
                        break;
                    }
                }
            });
            let req = Socket::new(SocketType::Req, Options::default());
            req.connect(ep.parse::<omq_tokio::Endpoint>()?).await?;
            req.wait_connected(1, Duration::from_secs(5)).await?;
            Task::spawn(async move {
                round_trips!(b, {
                    req.send(Message::single(data.clone())).await?;
                    check_len(req.recv().await?.byte_len(), size)?;
                })
            })
            .await
        }
        Lib::Raw => {
            // Ping-pong of one length-prefixed frame: a 4-byte length and the payload in one
            // write, read back whole.
            let (mut client, mut server) = tcp_pair().await?;
            let _server = Task::spawn(async move {
                let mut buf = vec![0u8; 4 + size];
                while server.read_exact(&mut buf).await.is_ok() {
                    if server.write_all(&buf).await.is_err() {
                        break;
                    }
                }
            });
            let mut frame = (size as u32).to_be_bytes().to_vec();
            frame.extend_from_slice(&data);
            Task::spawn(async move {
                let mut buf = vec![0u8; 4 + size];
                round_trips!(b, {
                    client.write_all(&frame).await?;
                    client.read_exact(&mut buf).await?;
                })
            })
            .await
        }
    }
}

/// The (bound side, connecting side) options of a zocket contender.
fn zocket_options(lib: Lib) -> (zocket::Options, zocket::Options) {
    use zocket::curve::KeyPair;
    use zocket::Options;
    let native = matches!(lib, Lib::Native | Lib::NativeCurve);
    let (server, client) = (Options::new().native(native), Options::new().native(native));
    match lib {
        Lib::NativeCurve | Lib::ZmtpCurve => {
            let keys = KeyPair::generate();
            (
                server.curve_server(keys.secret().clone()),
                client.curve_client(*keys.public(), KeyPair::generate()),
            )
        }
        _ => (server, client),
    }
}

/// A connected loopback TCP pair with TCP_NODELAY on both ends: (client, server).
async fn tcp_pair() -> std::io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (client, (server, _)) = (client?, accepted?);
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    Ok((client, server))
}
