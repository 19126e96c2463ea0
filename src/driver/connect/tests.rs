//! Listener and dialer running real native sessions over loopback.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::*;
use crate::monitor::Monitor;
use crate::mux;
use crate::proto::greeting::{Greeting as Wire, GREETING_LEN};
use crate::transport::dialer::{Dialer, Established};
use crate::transport::listener::{AcceptHandler, Listener};
use crate::transport::Connection;
use crate::{Endpoint, Host};

const T: Duration = Duration::from_secs(10);

fn options() -> Arc<Options> {
    Arc::new(Options::new().reconnect_interval(Duration::from_millis(10)))
}

/// A listener whose sessions echo every stream.
async fn echo_listener(endpoint: &Endpoint, monitor: MonitorSender) -> Listener {
    let opts = options();
    let text = endpoint.to_string();
    let mon = monitor.clone();
    let o = opts.clone();
    let handler: AcceptHandler = Arc::new(move |conn, slot| {
        let (o, mon, text) = (o.clone(), mon.clone(), text.clone());
        async move {
            let Connection::Stream { io, peer } = conn else {
                return;
            };
            let accepted = accept(io, peer, &text, &o, &mon).await;
            drop(slot);
            let Some(Connected::Native(shared)) = accepted else {
                return; // a ZMTP peer is dropped: this test listener serves zocket peers only
            };
            let session = mux::Session::from_shared(shared);
            while let Ok(mut s) = session.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = s.shutdown().await;
                });
            }
        }
        .boxed()
    });
    Listener::bind(endpoint, opts, monitor, handler)
        .await
        .unwrap()
}

async fn echo_once(session: &mux::Session, text: &[u8]) {
    let mut s = timeout(T, session.open()).await.unwrap().unwrap();
    s.write_all(text).await.unwrap();
    s.shutdown().await.unwrap();
    let mut back = vec![];
    timeout(T, s.read_to_end(&mut back)).await.unwrap().unwrap();
    assert_eq!(back, text);
}

fn loopback(port: u16) -> Endpoint {
    Endpoint::Tcp {
        host: Host::Ip("127.0.0.1".parse().unwrap()),
        port,
        path: None,
    }
}

async fn event(monitor: &mut Monitor, pred: impl Fn(&Event) -> bool) -> Event {
    use futures::StreamExt;
    timeout(T, async {
        loop {
            let e = monitor.next().await.expect("monitor ended");
            if pred(&e) {
                return e;
            }
        }
    })
    .await
    .expect("event did not come")
}

/// Raw client: connect, send `bytes`, read until the listener closes; returns what it sent us.
async fn raw_exchange(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    let mut got = vec![];
    timeout(T, tcp.read_to_end(&mut got))
        .await
        .expect("listener must close the connection, not hang")
        .ok();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_serves_native_peers_and_closes_bad_ones_while_serving_others() {
    let monitor = MonitorSender::new();
    let mut events = monitor.subscribe();
    let listener = echo_listener(&loopback(0), monitor).await;
    let Endpoint::Tcp { port, .. } = *listener.local_endpoint() else {
        unreachable!()
    };

    // A good peer, dialed by hand, stays connected throughout.
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let Connected::Native(good) = dial(ByteStream::Tcp(tcp), "good".into(), &options())
        .await
        .unwrap()
    else {
        panic!("a zocket listener negotiates native")
    };
    let good = mux::Session::from_shared(good);
    echo_once(&good, b"before").await;

    // A native peer whose frame header claims a 4 GiB body is cut off with a GOAWAY.
    let mut bytes = Wire::zocket().encode().to_vec();
    let mut hello = bytes::BytesMut::new();
    crate::proto::native::frame::Frame::Hello(crate::proto::native::Hello {
        instance: [9; 16],
        stream_window: 1 << 20,
        max_streams: 8,
        max_message_size: 1 << 20,
    })
    .encode(&mut hello);
    bytes.extend_from_slice(&hello);
    bytes.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF]);
    let got = raw_exchange(port, &bytes).await;
    let goaway = &got[GREETING_LEN..];
    assert!(
        goaway.windows(10).any(|w| w == b"4294967295"),
        "the GOAWAY names the bad length: {:?}",
        String::from_utf8_lossy(goaway)
    );

    // A plain ZMTP peer (libzmq's greeting: no marker) gets our greeting, then a clean close.
    let mut zmtp = Wire::zocket();
    zmtp.native = None;
    // (This test's listener serves zocket peers only; the socket engine serves ZMTP.)
    let got = raw_exchange(port, &zmtp.encode()).await;
    assert_eq!(got.len(), GREETING_LEN, "greeting then close");

    // An SP peer and an HTTP client are closed without a greeting.
    assert!(raw_exchange(port, &[0, b'S', b'P', 0, 0, 0x10, 0, 0])
        .await
        .is_empty());
    event(
        &mut events,
        |e| matches!(e, Event::HandshakeFailed { reason, .. } if reason.contains("SP")),
    )
    .await;
    assert!(raw_exchange(port, b"GET / HTTP/1.1\r\n\r\n")
        .await
        .is_empty());

    // The good peer never noticed.
    echo_once(&good, b"after").await;
}

fn native_handshake(
    options: Arc<Options>,
    sessions: tokio::sync::mpsc::UnboundedSender<mux::Session>,
) -> crate::transport::dialer::Handshake {
    Box::new(move |conn| {
        let (options, sessions) = (options.clone(), sessions.clone());
        async move {
            let Connection::Stream { io, peer } = conn else {
                return Err(Error::Protocol("not a byte stream".into()));
            };
            let Connected::Native(shared) = dial(io, peer.clone(), &options).await? else {
                return Err(Error::Protocol("expected a zocket peer".into()));
            };
            let done = closed(shared.clone());
            let _ = sessions.send(mux::Session::from_shared(shared));
            Ok(Established {
                peer,
                closed: done.boxed(),
            })
        }
        .boxed()
    })
}

async fn dial_before_bind_then_restart(endpoint: Endpoint) {
    let monitor = MonitorSender::new();
    let mut events = monitor.subscribe();
    let (tx, mut sessions) = tokio::sync::mpsc::unbounded_channel();
    let dialer = Dialer::spawn(
        endpoint.clone(),
        options(),
        monitor.clone(),
        native_handshake(options(), tx),
    )
    .unwrap();
    event(&mut events, |e| {
        matches!(e, Event::Retrying { attempt: 2, .. })
    })
    .await;

    let listener = echo_listener(&endpoint, monitor.clone()).await;
    event(&mut events, |e| matches!(e, Event::Connected { .. })).await;
    let session = timeout(T, sessions.recv()).await.unwrap().unwrap();
    echo_once(&session, b"first life").await;

    listener.close().await;
    event(&mut events, |e| matches!(e, Event::Disconnected { .. })).await;
    let mut buf = [0u8; 1];
    let mut s = session.open().await.map(Some).unwrap_or(None);
    if let Some(s) = s.as_mut() {
        assert!(s.read(&mut buf).await.is_err(), "old session is dead");
    }
    drop(session);

    let _listener = echo_listener(&endpoint, monitor.clone()).await;
    event(&mut events, |e| matches!(e, Event::Connected { .. })).await;
    let session = timeout(T, sessions.recv()).await.unwrap().unwrap();
    echo_once(&session, b"second life").await;
    drop(dialer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_dialer_connects_before_bind_and_after_restart_with_native_sessions() {
    // Reserve a free port, then release it for the listener to come.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    dial_before_bind_then_restart(loopback(port)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipc_dialer_connects_before_bind_and_after_restart_with_native_sessions() {
    let file = std::env::temp_dir().join(format!("zocket-native-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&file);
    dial_before_bind_then_restart(Endpoint::Ipc { file, path: None }).await;
}
