//! The hub over real sockets: dial leaks, the pool, accepted ZMTP peers.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

use std::sync::Arc;

use super::pool::*;
use crate::engine::Engine;
use crate::monitor::Event;
use crate::proto::greeting::{Greeting, GREETING_LEN};
use crate::proto::zmtp::command::{Command, Ready};
use crate::transport::test_util::{event_where, tasks_back_to, WAIT};
use crate::{Endpoint, Error, SocketType};
use crate::{Message, Options};

/// Quick redials and a short handshake, so that a test sees several attempts.
fn hasty() -> Options {
    Options::new()
        .handshake_timeout(Duration::from_millis(100))
        .reconnect_interval(Duration::from_millis(5))
        .reconnect_interval_max(Duration::from_millis(20))
}

/// Reads and discards until the peer closes.
async fn drain(mut s: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
}

#[tokio::test]
async fn a_dial_whose_stream_is_never_accepted_leaves_no_peer_behind() {
    // Greets as a zocket peer and says HELLO, then never answers: the stream OPEN
    // stays unanswered while the session itself is fine.
    let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = server.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = server.accept().await {
            tokio::spawn(async move {
                let mut theirs = [0u8; GREETING_LEN];
                let mut hello = BytesMut::new();
                crate::proto::native::frame::Frame::Hello(crate::proto::native::Hello {
                    instance: [7; 16],
                    stream_window: 1 << 20,
                    max_streams: 256,
                    max_message_size: 1 << 20,
                })
                .encode(&mut hello);
                if s.read_exact(&mut theirs).await.is_ok()
                    && s.write_all(&Greeting::zocket().encode()).await.is_ok()
                    && s.write_all(&hello).await.is_ok()
                {
                    drain(s).await;
                }
            });
        }
    });
    let engine = Engine::new(SocketType::Push, hasty());
    let mut events = engine.monitor();
    engine.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    for _ in 0..6 {
        event_where(&mut events, |e| matches!(e, Event::HandshakeFailed { .. })).await;
    }
    // At most the attempt in progress is there.
    let peers = engine.lock().peers.len();
    assert!(peers <= 1, "{peers} peers after six timed-out handshakes");
    engine.close().await;
}

/// Sends 64 KiB messages until `push` stops taking them (the peer reads nothing, so
/// the kernel's buffers and then ours fill up); returns how many bytes it took.
async fn fill(push: &mut crate::Push) -> usize {
    let payload = Bytes::from(vec![7u8; 64 * 1024]);
    let mut sent = 0;
    for _ in 0..2_000 {
        let send = push.send(Message::from(vec![payload.clone()]));
        match timeout(Duration::from_millis(200), send).await {
            Ok(done) => done.unwrap(),
            Err(_) => return sent, // full
        }
        sent += payload.len();
    }
    panic!("{sent} bytes were taken by a peer that reads nothing");
}

/// Reads everything until the end of the stream; how many bytes came.
async fn read_to_end(s: &mut TcpStream) -> usize {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0;
    loop {
        match timeout(WAIT, s.read(&mut buf))
            .await
            .expect("no end of stream")
        {
            Ok(0) | Err(_) => return total,
            Ok(n) => total += n,
        }
    }
}

/// A socket closed with `linger` cuts a ZMTP peer that reads nothing off once the
/// linger time is over: what it still held is discarded, the connection closed.
#[tokio::test]
async fn after_the_linger_time_a_zmtp_peer_that_reads_nothing_is_cut_off() {
    let baseline = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = server.local_addr().unwrap().port();
    let mut push = crate::Push::with_options(
        Options::new()
            .native(false)
            .linger(Some(Duration::from_millis(100))),
    );
    push.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    let (mut raw, _) = timeout(WAIT, server.accept()).await.unwrap().unwrap();
    // A ZMTP PULL that greets, says READY, then reads nothing more.
    let mut theirs = [0u8; GREETING_LEN];
    raw.read_exact(&mut theirs).await.unwrap();
    let zmtp = Greeting {
        native: None,
        ..Greeting::zocket()
    };
    raw.write_all(&zmtp.encode()).await.unwrap();
    let mut ready = BytesMut::new();
    Command::Ready(Ready {
        socket_type: SocketType::Pull,
        identity: Bytes::new(),
    })
    .encode(&mut ready);
    raw.write_all(&ready).await.unwrap();
    timeout(WAIT, push.wait_for_peers(1))
        .await
        .unwrap()
        .unwrap();

    let sent = fill(&mut push).await;
    timeout(WAIT, push.close()).await.unwrap();
    // The connection's driver is gone (without the cut it would wait for the peer to
    // read forever)...
    tasks_back_to(baseline).await;
    // ...so the peer gets what the kernel had taken, then the end: not everything.
    let got = read_to_end(&mut raw).await;
    assert!(
        got < sent,
        "the peer got all {sent} bytes: nothing was discarded"
    );
}

/// The same over the native wire: once the linger time is over, the stream of a socket
/// whose peer reads nothing is reset, even though another socket still uses the
/// connection (a finished stream would hold its data as long as the connection lives).
#[test]
fn after_the_linger_time_a_native_peer_that_reads_nothing_is_cut_off() {
    // The reader lives in a runtime of its own, so this one's tasks are the writer's.
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let reader = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let pull = crate::Pull::new();
            let ep = pull.bind("tcp://127.0.0.1:0").await.unwrap();
            port_tx.send(ep.to_string()).unwrap();
            let _ = stop_rx.await; // never reads
            drop(pull);
        });
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let baseline = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        let ep = port_rx.recv_timeout(WAIT).unwrap();
        let mut push =
            crate::Push::with_options(Options::new().linger(Some(Duration::from_millis(100))));
        push.connect(&ep).unwrap();
        timeout(WAIT, push.wait_for_peers(1))
            .await
            .unwrap()
            .unwrap();
        // Another socket of this process shares the connection.
        let other = crate::Push::connect(&ep).await.unwrap();
        timeout(WAIT, other.wait_for_peers(1))
            .await
            .unwrap()
            .unwrap();
        let Endpoint::Tcp { port, .. } = ep.parse::<Endpoint>().unwrap() else {
            unreachable!()
        };
        let session = {
            let slot = pool()
                .get(&format!("tcp://127.0.0.1:{port}"))
                .cloned()
                .unwrap();
            let shared = slot.try_lock().unwrap().upgrade().unwrap();
            shared
        };
        assert_eq!(session.lock().core.stream_count(), 2);
        fill(&mut push).await;
        timeout(WAIT, push.close()).await.unwrap();
        // The stream is gone with what it held; the other socket's stays.
        timeout(WAIT, async {
            while session.lock().core.stream_count() > 1 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the closed socket's stream is still there");
        drop(session);
        other.close().await;
        // The session's driver, and with it the connection, is gone.
        tasks_back_to(baseline).await;
    });
    let _ = stop_tx.send(());
    reader.join().unwrap();
}

/// An accepted ZMTP peer counts against the listener's `max_connections` for as long as
/// it is connected, like a native session does.
#[tokio::test]
async fn an_accepted_zmtp_peer_counts_against_max_connections() {
    let pull = Engine::new(SocketType::Pull, Options::new().max_connections(1));
    let mut events = pull.monitor();
    let Endpoint::Tcp { port, .. } = pull.bind("tcp://127.0.0.1:0").await.unwrap() else {
        unreachable!()
    };
    // A ZMTP PUSH: greets without the zocket marker, says READY.
    let mut zmtp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let greeting = Greeting {
        native: None,
        ..Greeting::zocket()
    };
    zmtp.write_all(&greeting.encode()).await.unwrap();
    let mut ready = BytesMut::new();
    Command::Ready(Ready {
        socket_type: SocketType::Push,
        identity: Bytes::new(),
    })
    .encode(&mut ready);
    zmtp.write_all(&ready).await.unwrap();
    timeout(WAIT, pull.wait_for_peers(1))
        .await
        .unwrap()
        .unwrap();
    // The listener is full: the next connection is closed at once.
    let mut next = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut buf = [0u8; 8];
    let read = timeout(WAIT, next.read(&mut buf)).await.unwrap();
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let Event::HandshakeFailed { reason, .. } =
        event_where(&mut events, |e| matches!(e, Event::HandshakeFailed { .. })).await
    else {
        unreachable!()
    };
    assert!(reason.contains("max_connections"), "{reason}");
    drop(zmtp);
    pull.close().await;
}

/// A socket can send to its peer as soon as the peer is usable, before the dial task
/// has seen it; a close then aborts that task: the peer (with what was sent to it)
/// must stay until the close delivers it.
#[tokio::test]
async fn an_abandoned_attempt_leaves_a_peer_that_became_usable() {
    let pull = Engine::new(SocketType::Pull, Options::new());
    let bound = pull.bind("tcp://127.0.0.1:0").await.unwrap();
    let push = Engine::new(SocketType::Push, Options::new());
    push.connect(&bound.to_string()).unwrap();
    timeout(WAIT, push.wait_for_peers(1))
        .await
        .unwrap()
        .unwrap();
    let dialed = push.lock().dialers[0].2.clone();
    let peer = dialed.lock().unwrap().expect("the dialed peer is recorded");
    drop(Attempt {
        engine: Arc::downgrade(&push),
        dialed: dialed.clone(),
        pending: true,
    });
    assert!(
        push.lock().peers.contains_key(&peer),
        "the usable peer was removed"
    );
    assert_eq!(*dialed.lock().unwrap(), Some(peer));
    push.close().await;
    pull.close().await;
}

#[tokio::test]
async fn the_pool_forgets_addresses_nobody_dials_any_more() {
    let engine = Engine::new(SocketType::Push, hasty());
    let mut events = engine.monitor();
    // Addresses where nobody listens: every dial fails.
    let ports: Vec<u16> = (0..20)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        })
        .collect();
    for port in &ports {
        engine.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    }
    // And one where a socket listens: a session is made, then closed.
    let pull = Engine::new(SocketType::Pull, Options::new());
    let bound = pull.bind("tcp://127.0.0.1:0").await.unwrap();
    engine.connect(&bound.to_string()).unwrap();
    event_where(&mut events, |e| matches!(e, Event::Connected { .. })).await;
    for _ in 0..ports.len() {
        event_where(&mut events, |e| matches!(e, Event::Retrying { .. })).await;
    }
    engine.close().await;
    pull.close().await;
    let crate::Endpoint::Tcp {
        port: listening, ..
    } = bound
    else {
        panic!("not tcp: {bound}");
    };
    let ours = |key: &String| {
        ports
            .iter()
            .chain(std::iter::once(&listening))
            .any(|p| key.ends_with(&format!(":{p}")))
    };
    timeout(WAIT, async {
        while pool_keys().iter().any(ours) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("stale pool keys: {:?}", pool_keys()));
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_dial_whose_syn_is_never_answered_ends_at_connect_timeout_not_handshake_timeout() {
    // Backlog 0 and nobody accepts: once one connection fills the accept queue, Linux
    // drops further SYNs and a connect waits for retransmits.
    let listener =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    listener
        .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    listener.listen(0).unwrap();
    let port = listener.local_addr().unwrap().as_socket().unwrap().port();
    let mut held = Vec::new();
    for _ in 0..8 {
        match timeout(
            Duration::from_millis(200),
            TcpStream::connect(("127.0.0.1", port)),
        )
        .await
        {
            Ok(stream) => held.push(stream.unwrap()),
            Err(_) => break,
        }
    }
    assert!(held.len() < 8, "the accept queue never filled");
    let options = Options::new()
        .handshake_timeout(Duration::from_secs(60))
        .connect_timeout(Duration::from_millis(300));
    let target: Endpoint = format!("tcp://127.0.0.1:{port}").parse().unwrap();
    let key = format!("connect-timeout-test:{port}");
    let started = std::time::Instant::now();
    let dialed = timeout(WAIT, pooled_session(&key, &target, &options))
        .await
        .expect("connect_timeout, not handshake_timeout, ends the dial");
    assert!(matches!(dialed, Err(Error::Timeout)));
    assert!(started.elapsed() >= Duration::from_millis(300));
}
