//! The public multiplexer over in-memory pipes and real loopback TCP.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use zocket::mux::{Session, Stream};
use zocket::{Error, Options};

const T: Duration = Duration::from_secs(10);

fn pair() -> (Session, Session) {
    let (a, b) = tokio::io::duplex(256 * 1024);
    (Session::client(a), Session::server(b))
}

async fn tcp_pair() -> (Session, Session) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (dialed, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let dialed = dialed.unwrap();
    dialed.set_nodelay(true).unwrap();
    let (accepted, _) = accepted.unwrap();
    accepted.set_nodelay(true).unwrap();
    (Session::client(dialed), Session::server(accepted))
}

async fn read_to_end(s: &mut Stream) -> Vec<u8> {
    let mut v = vec![];
    timeout(T, s.read_to_end(&mut v))
        .await
        .expect("read timed out")
        .unwrap();
    v
}

#[tokio::test]
async fn open_write_accept_read_both_ways() {
    let (client, server) = pair();
    let mut out = client.open().await.unwrap();
    out.write_all(b"hello server").await.unwrap();
    out.shutdown().await.unwrap();
    let mut inc = timeout(T, server.accept()).await.unwrap().unwrap();
    assert_eq!(read_to_end(&mut inc).await, b"hello server");
    inc.write_all(b"hello client").await.unwrap();
    inc.shutdown().await.unwrap();
    assert_eq!(read_to_end(&mut out).await, b"hello client");
    assert_eq!(out.id() % 2, 1, "client streams are odd");
}

async fn echo_server(server: Session) {
    while let Ok(mut s) = server.accept().await {
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = s.shutdown().await;
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_streams_echo_concurrently_over_one_tcp_connection() {
    let (client, server) = tcp_pair().await;
    tokio::spawn(echo_server(server));
    let mut tasks = vec![];
    for i in 0..16u8 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let s = client.open().await.unwrap();
            let (mut r, mut w) = tokio::io::split(s);
            let data: Vec<u8> = (0..300_000u32).map(|x| (x as u8).wrapping_add(i)).collect();
            let expected = data.clone();
            let writer = tokio::spawn(async move {
                w.write_all(&data).await.unwrap();
                w.shutdown().await.unwrap();
                w
            });
            let mut got = vec![];
            timeout(T, r.read_to_end(&mut got)).await.unwrap().unwrap();
            let _w = writer.await.unwrap();
            assert_eq!(got, expected, "stream {i}");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn shutting_down_one_stream_leaves_the_others_running() {
    let (client, server) = pair();
    tokio::spawn(echo_server(server));
    let mut a = client.open().await.unwrap();
    let mut b = client.open().await.unwrap();
    a.write_all(b"aaa").await.unwrap();
    a.shutdown().await.unwrap();
    assert_eq!(read_to_end(&mut a).await, b"aaa");
    drop(a);
    b.write_all(b"still here").await.unwrap();
    let mut buf = [0u8; 10];
    timeout(T, b.read_exact(&mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf, b"still here");
}

#[tokio::test]
async fn closing_the_session_fails_every_stream_instead_of_hanging() {
    let (client, server) = pair();
    let mut out = client.open().await.unwrap();
    out.write_all(b"x").await.unwrap();
    let mut inc = timeout(T, server.accept()).await.unwrap().unwrap();
    let mut one = [0u8; 1];
    inc.read_exact(&mut one).await.unwrap();
    timeout(T, client.close()).await.expect("close returns");
    // Both ends see an error, not a hang.
    let mut buf = [0u8; 8];
    let err = timeout(T, out.read(&mut buf)).await.unwrap().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionAborted, "{err}");
    let err = timeout(T, inc.read(&mut buf)).await.unwrap().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionAborted, "{err}");
    assert!(out.write_all(b"more").await.is_err());
    assert!(matches!(
        timeout(T, server.accept()).await.unwrap(),
        Err(Error::Closed)
    ));
    assert!(matches!(client.open().await, Err(Error::Closed)));
}

#[tokio::test]
async fn dropping_a_stream_with_unread_data_resets_it_for_the_peer() {
    let (client, server) = pair();
    let mut out = client.open().await.unwrap();
    out.write_all(b"nobody reads this").await.unwrap();
    let inc = timeout(T, server.accept()).await.unwrap().unwrap();
    drop(inc);
    let mut buf = [0u8; 8];
    let err = timeout(T, out.read(&mut buf)).await.unwrap().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
}

#[tokio::test]
async fn a_stream_whose_reader_never_reads_blocks_only_its_writer() {
    let opts = Options::new().stream_window(64 * 1024);
    let (a, b) = tokio::io::duplex(1 << 20);
    let client = Session::with_options(a, false, &opts);
    let server = Session::with_options(b, true, &opts);
    let mut slow = client.open().await.unwrap();
    let mut fast = client.open().await.unwrap();
    slow.write_all(b"s").await.unwrap();
    fast.write_all(b"f").await.unwrap();
    let _slow_in = timeout(T, server.accept()).await.unwrap().unwrap(); // never read
    let mut fast_in = timeout(T, server.accept()).await.unwrap().unwrap();
    // The slow stream's writer stops at the window...
    let big = vec![0u8; 1 << 20];
    let blocked = timeout(Duration::from_millis(300), slow.write_all(&big)).await;
    assert!(
        blocked.is_err(),
        "the writer must be held back by flow control"
    );
    // ...and the other stream is unaffected.
    let mut one = [0u8; 1];
    fast_in.read_exact(&mut one).await.unwrap();
    fast.write_all(b"after").await.unwrap();
    let mut five = [0u8; 5];
    timeout(T, fast_in.read_exact(&mut five))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&five, b"after");
}

/// A 32 MiB transfer stuck on a stream nobody reads must not delay a small message on
/// another stream of the same TCP connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_transfer_on_an_unread_stream_does_not_delay_a_small_message() {
    let (client, server) = tcp_pair().await;
    let mut bulk = client.open().await.unwrap();
    bulk.write_all(b"b").await.unwrap();
    let _bulk_in = timeout(T, server.accept()).await.unwrap().unwrap(); // never read
    let writer = tokio::spawn(async move {
        let big = vec![7u8; 32 << 20];
        let _ = bulk.write_all(&big).await;
    });
    let mut small = client.open().await.unwrap();
    let started = std::time::Instant::now();
    small.write_all(b"urgent").await.unwrap();
    let mut small_in = timeout(T, server.accept()).await.unwrap().unwrap();
    let mut buf = [0u8; 6];
    timeout(Duration::from_secs(2), small_in.read_exact(&mut buf))
        .await
        .expect("small message stuck behind the bulk transfer")
        .unwrap();
    assert_eq!(&buf, b"urgent");
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    writer.abort();
}

/// Raw bytes of a zocket peer: greeting + HELLO, built by hand as docs/PROTOCOL.md says.
fn raw_prelude() -> Vec<u8> {
    let mut v = vec![0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0x7F, 3, 1];
    let mut mech = b"NULL".to_vec();
    mech.resize(20, 0);
    v.extend_from_slice(&mech);
    v.push(0);
    let mut filler = b"ZOCKET\x01\x00".to_vec();
    filler.resize(31, 0);
    v.extend_from_slice(&filler);
    assert_eq!(v.len(), 64);
    // HELLO: type 9, flags 0, stream 0, length 32
    v.extend_from_slice(&[9, 0, 0, 0, 0, 0, 0, 0, 0, 32]);
    v.extend_from_slice(&[0xAB; 16]);
    v.extend_from_slice(&(1u32 << 20).to_be_bytes());
    v.extend_from_slice(&16u32.to_be_bytes());
    v.extend_from_slice(&(1u64 << 20).to_be_bytes());
    v
}

async fn raw_peer_sends(bytes: Vec<u8>) -> (Session, impl AsyncRead + AsyncWrite) {
    let (a, mut b) = tokio::io::duplex(1 << 16);
    let session = Session::server(a);
    b.write_all(&bytes).await.unwrap();
    (session, b)
}

#[tokio::test]
async fn a_frame_header_claiming_4_gib_closes_the_session_with_a_protocol_error() {
    let mut bytes = raw_prelude();
    bytes.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF]);
    let (session, _peer) = raw_peer_sends(bytes).await;
    let err = timeout(T, session.accept()).await.unwrap().unwrap_err();
    assert!(
        matches!(err, Error::Protocol(ref m) if m.contains("4294967295")),
        "{err}"
    );
}

#[tokio::test]
async fn garbage_instead_of_a_greeting_ends_the_session() {
    let (session, _peer) = raw_peer_sends(b"GET / HTTP/1.1\r\n\r\n".repeat(8)).await;
    let err = timeout(T, session.accept()).await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Protocol(_)), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_silent_peer_is_declared_dead_after_the_heartbeat_timeout() {
    let (session, mut peer) = raw_peer_sends(raw_prelude()).await;
    // Read what the session sends (greeting, HELLO, then PINGs) but never answer.
    tokio::spawn(async move {
        let mut sink = vec![0u8; 4096];
        while let Ok(n) = peer.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    });
    let started = tokio::time::Instant::now();
    let err = session.accept().await.unwrap_err();
    assert!(matches!(err, Error::Timeout), "{err}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(15) && waited < Duration::from_secs(16),
        "{waited:?}"
    );
}

#[tokio::test]
async fn peer_dropping_the_connection_fails_open_streams() {
    let (client, server) = tcp_pair().await;
    let mut out = client.open().await.unwrap();
    out.write_all(b"x").await.unwrap();
    let inc = timeout(T, server.accept()).await.unwrap().unwrap();
    drop(inc);
    drop(server);
    let mut buf = [0u8; 1];
    assert!(timeout(T, out.read(&mut buf)).await.unwrap().is_err());
}

/// Everything a session started ends when its handles are dropped: the driver task is gone
/// and the peer sees the connection close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_every_handle_ends_the_driver_task_and_closes_the_connection() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (dialed, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let mut raw_peer = accepted.unwrap().0;
    let client = Session::client(dialed.unwrap());
    // The raw peer answers the greeting by hand so the session starts.
    let mut greeting = [0u8; 64];
    raw_peer.read_exact(&mut greeting).await.unwrap();
    raw_peer.write_all(&raw_prelude()).await.unwrap();
    let mut stream = timeout(T, client.open()).await.unwrap().unwrap();
    stream.write_all(b"x").await.unwrap();
    assert!(metrics.num_alive_tasks() > baseline, "the driver task runs");
    drop(stream);
    drop(client);
    // The peer sees our frames, then end-of-stream.
    let mut rest = vec![];
    timeout(T, raw_peer.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    timeout(T, async {
        while metrics.num_alive_tasks() > baseline {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("driver task did not end");
}

/// A peer that stops reading cannot keep a closed session's task alive forever.
#[tokio::test(start_paused = true)]
async fn a_closed_session_does_not_wait_forever_for_a_peer_that_never_reads() {
    let (a, mut b) = tokio::io::duplex(128); // tiny pipe: our writes soon block
    let session = Session::server(a);
    b.write_all(&raw_prelude()).await.unwrap();
    let mut s = {
        // Let the session take our HELLO, then open a stream and stuff the pipe.
        let mut s = timeout(T, session.open()).await.unwrap().unwrap();
        let _ = timeout(Duration::from_millis(50), s.write_all(&[0u8; 4096])).await;
        s
    };
    timeout(Duration::from_secs(5), session.close())
        .await
        .expect("close gives up on a peer that never reads");
    assert!(s.write_all(b"late").await.is_err());
}
