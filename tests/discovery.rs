//! `dns://` endpoints and pluggable discovery sources: one link per address a source
//! reports, kept in step with it (mDNS is in tests/mdns.rs).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::time::timeout;
use zocket::discovery::{Change, Discovery};
use zocket::monitor::Event;
use zocket::{Options, Pull, Push};

mod common;
use common::{tcp_port, until_event, until_true};

const T: Duration = Duration::from_secs(10);

/// A resolver whose answer the test changes (shared with the test through an `Arc`).
#[derive(Debug, Clone)]
struct Changing(Arc<Mutex<std::io::Result<Vec<SocketAddr>>>>);

impl Changing {
    fn new() -> Self {
        Changing(Arc::new(Mutex::new(Ok(vec![]))))
    }

    fn set(&self, answer: std::io::Result<Vec<SocketAddr>>) {
        *self.0.lock().unwrap() = answer;
    }
}

impl Discovery for Changing {
    fn addresses(&self) -> BoxFuture<'static, std::io::Result<Vec<SocketAddr>>> {
        let answer = match &*self.0.lock().unwrap() {
            Ok(v) => Ok(v.clone()),
            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
        };
        Box::pin(async move { answer })
    }
}

/// A Push whose `dns://` connects follow `answers`, asked again every 30 ms.
fn push_following(answers: Changing) -> Push {
    Push::with_options(
        Options::new()
            .dns_refresh(Duration::from_millis(30))
            .reconnect_interval(Duration::from_millis(10))
            .discovery(Arc::new(answers)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_endpoint_follows_its_answers_without_touching_the_links_that_stay() {
    // Two pullers on the same port of two loopback addresses.
    let mut a = Pull::bind("tcp://127.0.0.1:0").await.unwrap();
    let port = tcp_port(&a.endpoints()[0]);
    let mut b = Pull::bind(&format!("tcp://127.0.0.2:{port}"))
        .await
        .unwrap();
    let addr_a: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let addr_b: SocketAddr = format!("127.0.0.2:{port}").parse().unwrap();

    let answers = Changing::new();
    answers.set(Ok(vec![addr_a]));
    let mut push = push_following(answers.clone());
    let mut monitor = push.monitor();
    push.connect(&format!("dns://cluster.test:{port}")).unwrap();
    until_event(
        &mut monitor,
        |e| matches!(e, Event::Discovered { addr } if *addr == addr_a.to_string()),
    )
    .await;
    timeout(T, push.wait_for_peers(1)).await.unwrap().unwrap();
    push.send("to a").await.unwrap();
    assert_eq!(
        timeout(T, a.recv()).await.unwrap().unwrap().frames()[0],
        "to a"
    );

    // A second address appears: connected to, and a's link stays as it is.
    answers.set(Ok(vec![addr_a, addr_b]));
    timeout(T, push.wait_for_peers(2)).await.unwrap().unwrap();
    until_true(|| b.peers() == 1).await;
    assert_eq!(a.peers(), 1);

    // A name that stops resolving is reported and retried; the links stay meanwhile.
    answers.set(Err(std::io::Error::other(
        "temporary failure in name resolution",
    )));
    until_event(
        &mut monitor,
        |e| matches!(e, Event::HandshakeFailed { reason, .. } if reason.contains("resolve")),
    )
    .await;
    assert_eq!(push.peers(), 2);

    // The first address vanishes: its link is dropped, the other one untouched.
    answers.set(Ok(vec![addr_b]));
    until_event(
        &mut monitor,
        |e| matches!(e, Event::Lost { addr } if *addr == addr_a.to_string()),
    )
    .await;
    until_true(|| push.peers() == 1 && a.peers() == 0).await;
    for i in 0..3 {
        push.send(format!("to b {i}")).await.unwrap();
    }
    for i in 0..3 {
        let msg = timeout(T, b.recv()).await.unwrap().unwrap();
        assert_eq!(msg.frames()[0], format!("to b {i}"));
    }
    assert_eq!(b.peers(), 1);

    // disconnect() on the dns endpoint drops everything it made.
    push.disconnect(&format!("dns://cluster.test:{port}"))
        .unwrap();
    until_true(|| push.peers() == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_localhost_connects_through_the_system_resolver() {
    let mut pull = Pull::bind("tcp://127.0.0.1:0").await.unwrap();
    let port = tcp_port(&pull.endpoints()[0]);
    let mut push = Push::connect(&format!("dns://localhost:{port}"))
        .await
        .unwrap();
    timeout(T, push.wait_for_peers(1)).await.unwrap().unwrap();
    push.send("via dns").await.unwrap();
    assert_eq!(
        timeout(T, pull.recv()).await.unwrap().unwrap().frames()[0],
        "via dns"
    );
}

/// A source that pushes its changes (as a Kubernetes watch would) through a channel.
#[derive(Debug)]
struct Pushed(Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<std::io::Result<Change>>>>);

impl Discovery for Pushed {
    fn addresses(&self) -> BoxFuture<'static, std::io::Result<Vec<SocketAddr>>> {
        Box::pin(async { panic!("a source with changes() is never polled") })
    }

    fn changes(&self) -> Option<BoxStream<'static, std::io::Result<Change>>> {
        let mut rx = self.0.lock().unwrap().take()?;
        Some(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_pushes_changes_is_followed_as_they_come() {
    let a = Pull::bind("tcp://127.0.0.1:0").await.unwrap();
    let port = tcp_port(&a.endpoints()[0]);
    let mut b = Pull::bind(&format!("tcp://127.0.0.2:{port}"))
        .await
        .unwrap();
    // Port 0 takes the endpoint's port.
    let addr_a: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let addr_b: SocketAddr = format!("127.0.0.2:{port}").parse().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let options = Options::new()
        .reconnect_interval(Duration::from_millis(10))
        // Would fail the test if the socket polled instead of following the stream.
        .dns_refresh(Duration::from_millis(1))
        .discovery(Arc::new(Pushed(Mutex::new(Some(rx)))));
    let mut push = Push::with_options(options);
    let mut monitor = push.monitor();
    push.connect(&format!("dns://registry.test:{port}"))
        .unwrap();

    tx.send(Ok(Change::Added(addr_a))).unwrap();
    tx.send(Ok(Change::Added(addr_b))).unwrap();
    timeout(T, push.wait_for_peers(2)).await.unwrap().unwrap();
    until_true(|| a.peers() == 1 && b.peers() == 1).await;

    tx.send(Err(std::io::Error::other("registry unreachable")))
        .unwrap();
    until_event(
        &mut monitor,
        |e| matches!(e, Event::HandshakeFailed { reason, .. } if reason.contains("registry unreachable")),
    )
    .await;
    assert_eq!(push.peers(), 2, "an error leaves the links alone");

    tx.send(Ok(Change::Removed(addr_a))).unwrap();
    until_event(
        &mut monitor,
        |e| matches!(e, Event::Lost { addr } if *addr == format!("127.0.0.1:{port}")),
    )
    .await;
    until_true(|| push.peers() == 1 && a.peers() == 0).await;
    push.send("to b").await.unwrap();
    assert_eq!(
        timeout(T, b.recv()).await.unwrap().unwrap().frames()[0],
        "to b"
    );
    // The stream ending stops following; the links it made stay.
    drop(tx);
    push.send("still b").await.unwrap();
    assert_eq!(
        timeout(T, b.recv()).await.unwrap().unwrap().frames()[0],
        "still b"
    );
    assert_eq!(push.peers(), 1);
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovery_never_drops_a_connect_the_user_made() {
    let mut pull = Pull::bind("tcp://127.0.0.1:0").await.unwrap();
    let port = tcp_port(&pull.endpoints()[0]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let answers = Changing::new();
    answers.set(Ok(vec![addr]));
    let mut push = push_following(answers.clone());
    let mut monitor = push.monitor();
    let explicit = format!("tcp://127.0.0.1:{port}");
    push.connect(&explicit).unwrap(); // the user's own connect...
    push.connect(&format!("dns://svc.test:{port}")).unwrap(); // ... and a discovery's
    until_event(
        &mut monitor,
        |e| matches!(e, Event::Discovered { addr: a } if *a == addr.to_string()),
    )
    .await;
    timeout(T, push.wait_for_peers(2)).await.unwrap().unwrap();

    // The discovery loses the address: its link goes, the user's stays.
    answers.set(Ok(vec![]));
    until_event(
        &mut monitor,
        |e| matches!(e, Event::Lost { addr: a } if *a == addr.to_string()),
    )
    .await;
    until_true(|| push.peers() == 1).await;
    push.send("still here").await.unwrap();
    assert_eq!(
        timeout(T, pull.recv()).await.unwrap().unwrap().frames()[0],
        "still here"
    );
    // And it is still the user's to disconnect.
    push.disconnect(&explicit).unwrap();
    until_true(|| push.peers() == 0).await;
}
