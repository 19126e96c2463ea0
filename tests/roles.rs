//! Roles hold on every transport, and no socket waits on one peer for the others (issue 12):
//! a client that never reads its replies does not stop a Rep; a bound Pair refuses a second
//! ZeroMQ peer; a Req takes its reply only from the peer holding its request; a subscriber
//! over its subscription budget is dropped. Over real loopback sockets; the libzmq peers are
//! pyzmq snippets (skipped, with a note, where pyzmq is missing and `CI` is unset).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::python::PythonPeer;
use common::{have_pyzmq, text, until_event};
use tokio::time::timeout;
use zocket::monitor::Event;
use zocket::{Dealer, Message, Options, Pair, Pub, Rep, Req, Router, Sub};

/// The time the Rep tests give a Req for its ten requests.
const SERVE: Duration = Duration::from_secs(5);
/// A generous bound for setup steps (connects, a python start).
const T: Duration = Duration::from_secs(15);
/// Requests a flooding client sends.
const FLOOD: usize = 2_000;
/// Flood requests the Rep must have served before the other client asks: far more than
/// the replies a client that never reads can absorb (its window, our queue, socket buffers).
const SERVED_BEFORE_ASKING: usize = 1_000;
/// Padding the test Rep adds to each reply, so a client that never reads fills up quickly.
const REPLY_PADDING: usize = 32 * 1024;

/// A python snippet driving pyzmq; it reads its stdin until closed, so it lives as long as
/// this handle.
fn python(script: &str, args: &[&str]) -> PythonPeer {
    PythonPeer::inline(script, args, T)
}

/// A Rep on loopback TCP that answers every request with the request's frames and
/// [`REPLY_PADDING`] bytes, counting what it served. Small `send_hwm` and `stream_window`
/// keep a stalled client cheap to reach.
async fn padded_rep() -> (String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let mut rep = Rep::with_options(Options::new().send_hwm(8).stream_window(16 * 1024));
    let ep = rep.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    let padding = Bytes::from(vec![0u8; REPLY_PADDING]);
    let server = tokio::spawn(async move {
        while let Ok(request) = rep.recv().await {
            let mut reply = request.message().clone().into_frames();
            reply.push(padding.clone());
            if request.reply(reply).await.is_err() {
                return;
            }
            count.fetch_add(1, Ordering::Relaxed);
        }
    });
    (ep, served, server)
}

/// Waits until the Rep served `n` requests; panics (naming what it saw) after `limit`.
async fn until_served(served: &AtomicUsize, n: usize, limit: Duration) {
    let reached = timeout(limit, async {
        while served.load(Ordering::Relaxed) < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        reached.is_ok(),
        "the Rep served only {} requests in {limit:?}: it waits on the client that never reads",
        served.load(Ordering::Relaxed)
    );
}

/// Ten requests from a fresh Req, all answered within [`SERVE`].
async fn ten_requests_answered(ep: &str) {
    let mut req = Req::connect(ep).await.unwrap();
    timeout(T, req.wait_for_peers(1)).await.unwrap().unwrap();
    let answered = timeout(SERVE, async {
        for i in 0..10 {
            let word = format!("request {i}");
            let reply = req.request(word.as_str()).await.unwrap();
            assert_eq!(reply.frames()[0], word.as_bytes());
            assert_eq!(reply.frames()[1].len(), REPLY_PADDING);
        }
    })
    .await;
    assert!(
        answered.is_ok(),
        "the Req did not get 10 of 10 answers in {SERVE:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dealer_that_never_reads_its_replies_does_not_stop_a_rep_from_serving_another_req() {
    let (ep, served, server) = padded_rep().await;
    let flooder = Dealer::with_options(Options::new().stream_window(16 * 1024));
    flooder.connect(&ep).unwrap();
    timeout(T, flooder.wait_for_peers(1))
        .await
        .unwrap()
        .unwrap();
    let flood = tokio::spawn(async move {
        let mut flooder = flooder;
        let _ = timeout(T, async {
            for i in 0..FLOOD {
                let request = Message::from(vec![Bytes::new(), Bytes::from(i.to_string())]);
                flooder.send(request).await.unwrap();
            }
        })
        .await;
        flooder // kept alive, never read
    });

    until_served(&served, SERVED_BEFORE_ASKING, SERVE).await;
    ten_requests_answered(&ep).await;
    flood.abort();
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_libzmq_dealer_that_never_reads_its_replies_does_not_stop_a_rep_from_serving_another_req()
{
    if !have_pyzmq() {
        return;
    }
    let (ep, served, server) = padded_rep().await;
    // Unbounded send queue, a receive queue of one and a small kernel buffer: libzmq stops
    // reading the replies almost at once.
    let mut flooder = python(
        r#"
import sys, zmq
ep, n = sys.argv[1], int(sys.argv[2])
s = zmq.Context().socket(zmq.DEALER)
s.setsockopt(zmq.SNDHWM, 0)
s.setsockopt(zmq.RCVHWM, 1)
s.setsockopt(zmq.RCVBUF, 4096)
s.connect(ep)
for i in range(n):
    s.send_multipart([b"", str(i).encode()])
print("flooding", flush=True)
sys.stdin.read()
"#,
        &[&ep, &FLOOD.to_string()],
    );
    assert_eq!(flooder.line().await, "flooding");

    until_served(&served, SERVED_BEFORE_ASKING, SERVE).await;
    ten_requests_answered(&ep).await;
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_pair_refuses_a_second_libzmq_pair_and_keeps_talking_to_the_first() {
    if !have_pyzmq() {
        return;
    }
    let mut pair = Pair::new();
    let ep = pair.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let mut monitor = pair.monitor();
    let mut peers = python(
        r#"
import sys, zmq
ctx = zmq.Context()
first = ctx.socket(zmq.PAIR)
first.connect(sys.argv[1])
first.send(b"from first")
print("first sent", flush=True)
sys.stdin.readline()
second = ctx.socket(zmq.PAIR)
second.connect(sys.argv[1])
print("second connecting", flush=True)
sys.stdin.readline()
got = []
while len(got) < 4 and first.poll(5000):
    got.append(first.recv())
print("first got " + b",".join(got).decode(), flush=True)
print("second got " + (second.recv().decode() if second.poll(300) else "nothing"), flush=True)
first.send(b"first still there")
sys.stdin.read()
"#,
        &[&ep],
    );
    assert_eq!(peers.line().await, "first sent");
    let msg = timeout(T, pair.recv()).await.unwrap().unwrap();
    assert_eq!(text(&msg), "from first");

    peers.tell("connect the second").await;
    assert_eq!(peers.line().await, "second connecting");
    let refused = timeout(
        T,
        until_event(&mut monitor, |e| matches!(e, Event::HandshakeFailed { .. })),
    )
    .await
    .expect("the second PAIR was never refused");
    let Event::HandshakeFailed { reason, .. } = refused else {
        unreachable!()
    };
    assert!(reason.contains("PAIR"), "{reason}");
    assert_eq!(pair.peers(), 1);

    for i in 0..4 {
        timeout(T, pair.send(format!("m{i}")))
            .await
            .unwrap()
            .unwrap();
    }
    peers.tell("read").await;
    assert_eq!(peers.line().await, "first got m0,m1,m2,m3");
    assert_eq!(peers.line().await, "second got nothing");
    let msg = timeout(T, pair.recv()).await.unwrap().unwrap();
    assert_eq!(text(&msg), "first still there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_req_takes_its_reply_only_from_the_peer_that_holds_its_request() {
    let mut a = Router::bind("tcp://127.0.0.1:0").await.unwrap();
    let mut b = Router::bind("tcp://127.0.0.1:0").await.unwrap();
    let mut req = Req::with_options(Options::new().identity("the-req"));
    req.connect(&a.endpoints()[0].to_string()).unwrap();
    req.connect(&b.endpoints()[0].to_string()).unwrap();
    timeout(T, req.wait_for_peers(2)).await.unwrap().unwrap();
    timeout(T, a.wait_for_peers(1)).await.unwrap().unwrap();
    timeout(T, b.wait_for_peers(1)).await.unwrap().unwrap();

    let asking = tokio::spawn(async move {
        let reply = req.request("question").await;
        (req, reply)
    });
    tokio::pin!(asking);
    // Whichever router got the request holds it; the other one plays the rogue and, having
    // guessed the request id exactly, answers first.
    let (mut holder, mut rogue, envelope) = timeout(T, async {
        tokio::select! {
            got = a.recv() => (a, b, got.unwrap()),
            got = b.recv() => (b, a, got.unwrap()),
        }
    })
    .await
    .unwrap();
    let (from, request) = envelope;
    assert_eq!(&from[..], b"the-req");
    let frames = request.frames();
    assert_eq!((frames[1].len(), &frames[2][..]), (0, &b"question"[..]));
    let id = frames[0].clone();

    rogue
        .send(
            "the-req",
            Message::from(vec![id.clone(), Bytes::new(), Bytes::from("forged")]),
        )
        .await
        .unwrap();
    // The forged reply must not end the request: give it time to arrive and be (wrongly)
    // taken.
    let early = timeout(Duration::from_millis(500), &mut asking).await;
    if let Ok(done) = early {
        let (_, reply) = done.unwrap();
        panic!(
            "the Req took a reply from a peer that does not hold its request: {}",
            text(&reply.unwrap())
        );
    }
    holder
        .send(
            "the-req",
            Message::from(vec![id, Bytes::new(), Bytes::from("real")]),
        )
        .await
        .unwrap();
    let (_req, reply) = timeout(T, asking).await.unwrap().unwrap();
    assert_eq!(text(&reply.unwrap()), "real");
}

/// A publisher whose subscribers may hold at most 4 KiB of subscriptions each.
fn small_budget_pub() -> Pub {
    Pub::with_options(Options::new().max_subscription_bytes(4 * 1024))
}

/// Publishes until `sub` hears a message (the publisher may not count it at once).
async fn publish_until_heard(publisher: &Pub, sub: &mut Sub) {
    let heard = timeout(T, async {
        loop {
            publisher.send(["news", "still here"]).await.unwrap();
            if let Ok(Some(msg)) = timeout(Duration::from_millis(20), sub.recv())
                .await
                .map(Result::ok)
            {
                return msg;
            }
        }
    })
    .await
    .expect("the well-behaved subscriber stopped receiving");
    assert_eq!(text(&heard), "news|still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_over_its_subscription_budget_is_dropped_while_another_keeps_receiving() {
    let publisher = small_budget_pub();
    let ep = publisher
        .bind("tcp://127.0.0.1:0")
        .await
        .unwrap()
        .to_string();
    let mut monitor = publisher.monitor();
    let mut good = Sub::connect(&ep).await.unwrap();
    good.subscribe("news");
    timeout(T, good.wait_for_peers(1)).await.unwrap().unwrap();
    timeout(T, publisher.wait_for_peers(1))
        .await
        .unwrap()
        .unwrap();

    // 100 prefixes of 100 bytes: about 16 KiB counted, four times the budget.
    let greedy = Sub::new();
    for i in 0..100 {
        greedy.subscribe(format!("{i:0>100}"));
    }
    let mut greedy_monitor = greedy.monitor();
    greedy.connect(&ep).unwrap();
    let greedy_waits = tokio::spawn(async move {
        let _ = greedy.wait_for_peers(1).await;
        greedy // kept open
    });
    let dropped = timeout(
        T,
        until_event(
            &mut monitor,
            |e| matches!(e, Event::Disconnected { reason, .. } if reason.contains("subscription")),
        ),
    )
    .await
    .expect("the greedy subscriber was never dropped");
    let Event::Disconnected { reason, .. } = dropped else {
        unreachable!()
    };
    assert!(reason.contains("subscription"), "{reason}");
    assert_eq!(publisher.peers(), 1);
    publish_until_heard(&publisher, &mut good).await;
    // The greedy subscriber's side hears why.
    timeout(
        T,
        until_event(&mut greedy_monitor, |e| {
            matches!(e, Event::Disconnected { reason, .. } if reason.contains("subscription budget"))
        }),
    )
    .await
    .expect("the greedy subscriber was not told why");
    greedy_waits.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_libzmq_subscriber_over_its_subscription_budget_is_dropped_while_another_keeps_receiving()
{
    if !have_pyzmq() {
        return;
    }
    let publisher = small_budget_pub();
    let ep = publisher
        .bind("tcp://127.0.0.1:0")
        .await
        .unwrap()
        .to_string();
    let mut monitor = publisher.monitor();
    let mut good = Sub::connect(&ep).await.unwrap();
    good.subscribe("news");
    timeout(T, good.wait_for_peers(1)).await.unwrap().unwrap();

    let _greedy = python(
        r#"
import sys, zmq
s = zmq.Context().socket(zmq.SUB)
for i in range(100):
    s.setsockopt(zmq.SUBSCRIBE, str(i).rjust(100, "0").encode())
s.connect(sys.argv[1])
print("subscribed", flush=True)
sys.stdin.read()
"#,
        &[&ep],
    );
    let dropped = timeout(
        T,
        until_event(
            &mut monitor,
            |e| matches!(e, Event::Disconnected { reason, .. } if reason.contains("subscription")),
        ),
    )
    .await
    .expect("the greedy subscriber was never dropped");
    let Event::Disconnected { reason, .. } = dropped else {
        unreachable!()
    };
    assert!(reason.contains("subscription"), "{reason}");
    publish_until_heard(&publisher, &mut good).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mandatory_router_fails_a_send_to_a_peer_that_never_reads_instead_of_waiting() {
    let mut router = Router::with_options(Options::new().send_hwm(2).router_mandatory(true));
    let ep = router.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let slow = Dealer::with_options(Options::new().identity("slow").stream_window(16 * 1024));
    slow.connect(&ep).unwrap();
    let mut fast = Dealer::with_options(Options::new().identity("fast"));
    fast.connect(&ep).unwrap();
    timeout(T, router.wait_for_peers(2)).await.unwrap().unwrap();

    let big = Bytes::from(vec![0u8; REPLY_PADDING]);
    let mut refused = false;
    for _ in 0..10_000 {
        let sent = timeout(Duration::from_secs(1), router.send("slow", big.clone()))
            .await
            .expect("the router waited on a peer that never reads");
        match sent {
            Ok(()) => {}
            Err(zocket::Error::HostUnreachable) => {
                refused = true;
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(refused, "the slow peer's queue never filled");
    router.send("fast", "still served").await.unwrap();
    let got = timeout(T, fast.recv()).await.unwrap().unwrap();
    assert_eq!(text(&got), "still served");
    drop(slow);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sub_with_thousands_of_subscriptions_is_accepted_with_all_of_them() {
    let publisher = Pub::bind("tcp://127.0.0.1:0").await.unwrap();
    let ep = publisher.endpoints()[0].to_string();
    let mut sub = Sub::new();
    for i in 0..3_000 {
        sub.subscribe(format!("topic.{i}."));
    }
    sub.connect(&ep).unwrap();
    timeout(T, sub.wait_for_peers(1)).await.unwrap().unwrap();
    // Subscriptions from the first and the last part of the snapshot both hold.
    for topic in ["topic.0.x", "topic.2999.x", "other"] {
        publisher.send([topic, "body"]).await.unwrap();
    }
    let first = timeout(T, sub.recv()).await.unwrap().unwrap();
    let second = timeout(T, sub.recv()).await.unwrap().unwrap();
    let mut got = [text(&first), text(&second)];
    got.sort();
    assert_eq!(got, ["topic.0.x|body", "topic.2999.x|body"]);
}
