//! zocket against real libzmq (4.3, through pyzmq): every pattern in both roles.
//!
//! `.ci/run` installs pyzmq. Elsewhere, without it, the tests say so and pass; with `CI`
//! set they fail instead, so CI can never skip them silently.

mod common;

use common::python::PythonPeer;
use common::{free_port, have_pyzmq, text};
use std::time::Duration;

use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::time::timeout;
use zocket::{Dealer, Message, Options, Pull, Rep, Req, Router, Sub};

const T: Duration = Duration::from_secs(15);

/// The libzmq peer of these tests (`tests/interop/peer.py`).
fn libzmq_peer(args: &[&str]) -> PythonPeer {
    PythonPeer::script("peer.py", args, T)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zocket_pub_to_libzmq_sub_with_a_topic_filter() {
    if !have_pyzmq() {
        return;
    }
    let publisher = zocket::Pub::bind("tcp://127.0.0.1:0").await.unwrap();
    let ep = publisher.endpoints()[0].to_string();
    let mut sub = libzmq_peer(&["sub", &ep, "connect", "a.", "1"]);
    assert_eq!(sub.line().await, "ready");
    timeout(T, publisher.wait_for_peers(1))
        .await
        .unwrap()
        .unwrap();
    // libzmq's subscription arrives after its READY: publish until it is heard.
    let got = timeout(T, async {
        loop {
            publisher.send(["b.x", "filtered out"]).await.unwrap();
            publisher.send(["a.x", "wanted"]).await.unwrap();
            tokio::select! {
                line = sub.lines.next_line() => return line.unwrap().unwrap(),
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(got, "got a.x|wanted");
    sub.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libzmq_pub_to_zocket_sub_with_a_topic_filter() {
    if !have_pyzmq() {
        return;
    }
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let mut publisher = libzmq_peer(&["pub", &ep, "a.topic"]);
    assert_eq!(publisher.line().await, "ready");
    let mut sub = Sub::with_options(Options::new().reconnect_interval(Duration::from_millis(20)));
    sub.subscribe("a.");
    sub.connect(&ep).unwrap();
    for _ in 0..3 {
        let msg = timeout(T, sub.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(msg.frames()[0], "a.topic", "{}", text(&msg));
    }
    publisher.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zocket_rep_serves_a_libzmq_req() {
    if !have_pyzmq() {
        return;
    }
    let mut rep = Rep::bind("tcp://127.0.0.1:0").await.unwrap();
    let ep = rep.endpoints()[0].to_string();
    let mut req = libzmq_peer(&["req", &ep, "hello", "world"]);
    let request = timeout(T, rep.recv()).await.unwrap().unwrap();
    assert_eq!(text(request.message()), "hello|world");
    request.reply("re: hello|world").await.unwrap();
    assert_eq!(req.line().await, "got re: hello|world");
    req.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zocket_req_to_a_libzmq_rep() {
    if !have_pyzmq() {
        return;
    }
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let mut rep = libzmq_peer(&["rep", &ep, "2"]);
    assert_eq!(rep.line().await, "ready");
    let mut req = Req::with_options(Options::new().reconnect_interval(Duration::from_millis(20)));
    req.connect(&ep).unwrap();
    for word in ["ping", "again"] {
        let reply = timeout(T, req.request(word)).await.unwrap().unwrap();
        assert_eq!(text(&reply), format!("re: {word}"));
    }
    rep.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libzmq_dealer_with_identity_to_zocket_router() {
    if !have_pyzmq() {
        return;
    }
    let mut router = Router::bind("tcp://127.0.0.1:0").await.unwrap();
    let ep = router.endpoints()[0].to_string();
    let mut dealer = libzmq_peer(&["dealer", &ep, "py-1"]);
    let (id, msg) = timeout(T, router.recv()).await.unwrap().unwrap();
    assert_eq!((&id[..], text(&msg).as_str()), (&b"py-1"[..], "hello"));
    router.send(&id, "answer").await.unwrap();
    assert_eq!(dealer.line().await, "got answer");
    dealer.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zocket_dealer_with_identity_to_libzmq_router() {
    if !have_pyzmq() {
        return;
    }
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let mut router = libzmq_peer(&["router", &ep]);
    assert_eq!(router.line().await, "ready");
    let mut dealer = Dealer::with_options(
        Options::new()
            .identity("zk-1")
            .reconnect_interval(Duration::from_millis(20)),
    );
    dealer.connect(&ep).unwrap();
    timeout(T, dealer.wait_for_peers(1)).await.unwrap().unwrap();
    dealer.send("hi").await.unwrap();
    assert_eq!(router.line().await, "from zk-1");
    let answer = timeout(T, dealer.recv()).await.unwrap().unwrap();
    assert_eq!(text(&answer), "answer to hi");
    router.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libzmq_push_to_zocket_pull_multipart() {
    if !have_pyzmq() {
        return;
    }
    let mut pull = Pull::bind("tcp://127.0.0.1:0").await.unwrap();
    let ep = pull.endpoints()[0].to_string();
    let mut push = libzmq_peer(&["push", &ep, "100"]);
    for i in 0..100 {
        let msg = timeout(T, pull.recv()).await.unwrap().unwrap();
        assert_eq!(text(&msg), format!("job|{i}"));
    }
    assert_eq!(push.line().await, "sent");
    push.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zocket_push_to_libzmq_pull() {
    if !have_pyzmq() {
        return;
    }
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let mut pull = libzmq_peer(&["pull", &ep, "3"]);
    assert_eq!(pull.line().await, "ready");
    let mut push =
        zocket::Push::with_options(Options::new().reconnect_interval(Duration::from_millis(20)));
    push.connect(&ep).unwrap();
    for i in 0..3 {
        push.send(["job".to_owned(), i.to_string()]).await.unwrap();
    }
    for i in 0..3 {
        assert_eq!(pull.line().await, format!("got job|{i}"));
    }
    pull.finish().await;
    let _ = tokio::io::stdout().flush().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pair_with_libzmq_in_both_roles() {
    if !have_pyzmq() {
        return;
    }
    // libzmq binds, zocket connects.
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let mut peer = libzmq_peer(&["pair", &ep, "bind"]);
    assert_eq!(peer.line().await, "ready");
    let mut pair =
        zocket::Pair::with_options(Options::new().reconnect_interval(Duration::from_millis(20)));
    pair.connect(&ep).unwrap();
    pair.send(["ping", "", "multi"]).await.unwrap();
    assert_eq!(peer.line().await, "got ping||multi");
    assert_eq!(
        text(&timeout(T, pair.recv()).await.unwrap().unwrap()),
        "pong:ping||multi"
    );
    peer.finish().await;
    // zocket binds, libzmq connects.
    let mut pair = zocket::Pair::bind("tcp://127.0.0.1:0").await.unwrap();
    let ep = pair.endpoints()[0].to_string();
    let mut peer = libzmq_peer(&["pair", &ep, "connect"]);
    assert_eq!(peer.line().await, "ready");
    timeout(T, pair.wait_for_peers(1)).await.unwrap().unwrap();
    pair.send("hello").await.unwrap();
    assert_eq!(peer.line().await, "got hello");
    assert_eq!(
        text(&timeout(T, pair.recv()).await.unwrap().unwrap()),
        "pong:hello"
    );
    peer.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_16_mib_request_to_libzmq_and_back() {
    if !have_pyzmq() {
        return;
    }
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let mut rep = libzmq_peer(&["rep", &ep, "1"]);
    assert_eq!(rep.line().await, "ready");
    let mut req = Req::with_options(Options::new().reconnect_interval(Duration::from_millis(20)));
    req.connect(&ep).unwrap();
    let big = bytes::Bytes::from(vec![b'z'; 16 << 20]);
    let reply = timeout(T, req.request(Message::from(big)))
        .await
        .unwrap()
        .unwrap();
    let body = &reply.frames()[0];
    assert_eq!(body.len(), 4 + (16 << 20));
    assert!(body.starts_with(b"re: zzz") && body.ends_with(b"zzz"));
    rep.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libzmq_heartbeats_keep_an_idle_connection_alive() {
    if !have_pyzmq() {
        return;
    }
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let mut rep = libzmq_peer(&["rep-heartbeat", &ep, "2"]);
    assert_eq!(rep.line().await, "ready");
    let mut req = Req::with_options(Options::new().reconnect_interval(Duration::from_millis(20)));
    let mut monitor = req.monitor();
    req.connect(&ep).unwrap();
    assert_eq!(
        text(&timeout(T, req.request("one")).await.unwrap().unwrap()),
        "re: one"
    );
    // Idle for many libzmq heartbeat timeouts (300 ms): libzmq pings, zocket must answer,
    // or libzmq drops the connection.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        text(&timeout(T, req.request("two")).await.unwrap().unwrap()),
        "re: two"
    );
    for event in common::events_now(&mut monitor) {
        assert!(
            !matches!(event, zocket::monitor::Event::Disconnected { .. }),
            "connection dropped while idle: {event:?}"
        );
    }
    rep.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zocket_reconnects_after_a_libzmq_peer_restarts() {
    if !have_pyzmq() {
        return;
    }
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let mut first = libzmq_peer(&["rep", &ep, "1"]);
    assert_eq!(first.line().await, "ready");
    let mut req = Req::with_options(Options::new().reconnect_interval(Duration::from_millis(20)));
    req.connect(&ep).unwrap();
    assert_eq!(
        text(&timeout(T, req.request("before")).await.unwrap().unwrap()),
        "re: before"
    );
    first.finish().await; // the first libzmq process exits
    let mut second = libzmq_peer(&["rep", &ep, "1"]);
    assert_eq!(second.line().await, "ready");
    assert_eq!(
        text(&timeout(T, req.request("after")).await.unwrap().unwrap()),
        "re: after"
    );
    second.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_libzmq_sub_unsubscribes_from_a_zocket_pub() {
    if !have_pyzmq() {
        return;
    }
    let publisher = zocket::Pub::bind("tcp://127.0.0.1:0").await.unwrap();
    let ep = publisher.endpoints()[0].to_string();
    let mut sub = libzmq_peer(&["sub-unsubscribe", &ep, "40"]);
    assert_eq!(sub.line().await, "ready");
    timeout(T, publisher.wait_for_peers(1))
        .await
        .unwrap()
        .unwrap();
    let mut lines = vec![];
    let mut unsubscribed = false;
    timeout(T, async {
        while lines.len() < 40 {
            publisher.send(["a.x", "keep"]).await.unwrap();
            publisher.send(["b.x", "dropped later"]).await.unwrap();
            tokio::select! {
                line = sub.lines.next_line() => {
                    let line = line.unwrap().unwrap();
                    if line == "unsubscribed" {
                        unsubscribed = true;
                    } else if unsubscribed {
                        lines.push(line);
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
    })
    .await
    .unwrap();
    // After the cancel is in, only a. arrives: the last messages are all a.
    assert!(
        lines[10..].iter().all(|l| l.starts_with("got a.x")),
        "{lines:?}"
    );
    sub.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zocket_req_to_a_libzmq_router_and_libzmq_req_to_a_zocket_router() {
    if !have_pyzmq() {
        return;
    }
    // zocket REQ -> libzmq ROUTER (which keeps the envelope, request id included).
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let mut router = libzmq_peer(&["router-envelope", &ep, "2"]);
    assert_eq!(router.line().await, "ready");
    let mut req = Req::with_options(Options::new().reconnect_interval(Duration::from_millis(20)));
    req.connect(&ep).unwrap();
    for word in ["one", "two"] {
        let reply = timeout(T, req.request(word)).await.unwrap().unwrap();
        assert_eq!(text(&reply), format!("routed {word}"));
    }
    router.finish().await;
    // libzmq REQ -> zocket ROUTER: the request arrives as ["", body] behind the peer id.
    let mut router = Router::bind("tcp://127.0.0.1:0").await.unwrap();
    let ep = router.endpoints()[0].to_string();
    let mut req = libzmq_peer(&["req", &ep, "question"]);
    let (id, msg) = timeout(T, router.recv()).await.unwrap().unwrap();
    assert_eq!(text(&msg), "|question");
    router.send(&id, ["", "answer"]).await.unwrap();
    assert_eq!(req.line().await, "got answer");
    req.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dealer_to_rep_across_the_two_libraries() {
    if !have_pyzmq() {
        return;
    }
    // zocket DEALER -> libzmq REP: the dealer writes the empty delimiter itself.
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let mut rep = libzmq_peer(&["rep", &ep, "1"]);
    assert_eq!(rep.line().await, "ready");
    let mut dealer =
        Dealer::with_options(Options::new().reconnect_interval(Duration::from_millis(20)));
    dealer.connect(&ep).unwrap();
    timeout(T, dealer.wait_for_peers(1)).await.unwrap().unwrap();
    dealer.send(["", "from zocket"]).await.unwrap();
    assert_eq!(
        text(&timeout(T, dealer.recv()).await.unwrap().unwrap()),
        "|re: from zocket"
    );
    rep.finish().await;
    // libzmq DEALER -> zocket REP.
    let mut rep = Rep::bind("tcp://127.0.0.1:0").await.unwrap();
    let ep = rep.endpoints()[0].to_string();
    let mut dealer = libzmq_peer(&["dealer-to-rep", &ep]);
    let request = timeout(T, rep.recv()).await.unwrap().unwrap();
    assert_eq!(text(request.message()), "from dealer");
    request.reply("rep answered").await.unwrap();
    assert_eq!(dealer.line().await, "got |rep answered");
    dealer.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zocket_pull_fair_queues_several_libzmq_pushers() {
    if !have_pyzmq() {
        return;
    }
    let mut pull = Pull::bind("tcp://127.0.0.1:0").await.unwrap();
    let ep = pull.endpoints()[0].to_string();
    let pushers: Vec<PythonPeer> = (0..3).map(|_| libzmq_peer(&["push", &ep, "50"])).collect();
    let mut got = 0;
    while got < 150 {
        timeout(T, pull.recv()).await.unwrap().unwrap();
        got += 1;
    }
    for mut p in pushers {
        assert_eq!(p.line().await, "sent");
        p.finish().await;
    }
}
