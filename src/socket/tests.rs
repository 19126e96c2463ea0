//! Socket tests that look inside the engine (queue lengths, tasks).

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::time::timeout;

use crate::{Dealer, Message, Options, Pub, Pull, Push, Rep, Req, Router, Sub};

const T: Duration = Duration::from_secs(10);

/// A subscriber that never reads neither blocks the publisher nor slows a subscriber that
/// does, and what the publisher holds for it stays within the high-water mark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_neither_blocks_the_publisher_nor_starves_the_fast_one() {
    let hwm = 50;
    let publisher = Pub::with_options(Options::new().send_hwm(hwm).stream_window(64 * 1024));
    let ep = publisher
        .bind("tcp://127.0.0.1:0")
        .await
        .unwrap()
        .to_string();
    let slow = Sub::with_options(Options::new().stream_window(64 * 1024));
    slow.subscribe("");
    slow.connect(&ep).unwrap();
    let mut fast = Sub::connect(&ep).await.unwrap();
    fast.subscribe("");
    // Both start receiving (so the publisher has their subscriptions); the slow one then
    // never reads a message.
    timeout(T, slow.wait_for_peers(1)).await.unwrap().unwrap();
    timeout(T, fast.wait_for_peers(1)).await.unwrap().unwrap();
    timeout(T, publisher.wait_for_peers(2))
        .await
        .unwrap()
        .unwrap();

    let payload = bytes::Bytes::from(vec![1u8; 1024]);
    for i in 0..5_000u32 {
        let msg = Message::from(vec![
            bytes::Bytes::from(i.to_be_bytes().to_vec()),
            payload.clone(),
        ]);
        // Never waits, even though one subscriber reads nothing.
        timeout(Duration::from_secs(1), publisher.send(msg))
            .await
            .expect("publisher blocked")
            .unwrap();
        // The fast subscriber keeps up and gets every message.
        let got = timeout(T, fast.recv()).await.unwrap().unwrap();
        assert_eq!(got.frames()[0], i.to_be_bytes()[..]);
        let queues = publisher.engine.queue_lengths();
        assert!(queues.iter().all(|&q| q <= hwm), "{queues:?}");
    }
    // The slow subscriber's queue is full, the fast one's empty.
    let mut queues = publisher.engine.queue_lengths();
    queues.sort();
    assert_eq!(queues, vec![0, hwm]);
    drop(slow);
}

/// Closing sockets ends every task they started and every connection they held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_sockets_leave_no_task_behind() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();
    {
        let mut pull = Pull::new();
        let ep = pull.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
        let ipc = std::env::temp_dir().join(format!("zocket-leak-{}.sock", std::process::id()));
        let ipc = format!("ipc://{}", ipc.display());
        pull.bind(&ipc).await.unwrap();
        let mut push = Push::connect(&ep).await.unwrap();
        push.connect(&ipc).unwrap();
        push.connect("inproc://leak-check").unwrap();
        timeout(T, push.wait_for_peers(2)).await.unwrap().unwrap();
        push.send("x").await.unwrap();
        timeout(T, pull.recv()).await.unwrap().unwrap();
        push.close().await;
        pull.close().await;
    }
    timeout(T, async {
        while metrics.num_alive_tasks() > baseline {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{} tasks left", metrics.num_alive_tasks() - baseline));
}

/// `close` delivers what is still queued (within the linger time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_delivers_queued_messages() {
    let mut pull = Pull::with_options(Options::new().stream_window(64 * 1024));
    let ep = pull.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let mut push = Push::with_options(Options::new().send_hwm(10_000));
    push.connect(&ep).unwrap();
    timeout(T, push.wait_for_peers(1)).await.unwrap().unwrap();
    let payload = bytes::Bytes::from(vec![3u8; 4096]);
    for _ in 0..500 {
        push.send(Message::from(payload.clone())).await.unwrap();
    }
    assert!(
        push.engine.queue_lengths()[0] > 0,
        "more than the window was written, so some wait in the queue"
    );
    let closing = tokio::spawn(push.close());
    for _ in 0..500 {
        timeout(T, pull.recv()).await.unwrap().unwrap();
    }
    timeout(T, closing).await.unwrap().unwrap();
}

/// A Req talks to a Router and a Dealer to a Rep, envelopes and all; the proxy joins them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn req_through_a_router_dealer_proxy_to_rep_workers() {
    let mut frontend = Router::new();
    let front = frontend
        .bind("tcp://127.0.0.1:0")
        .await
        .unwrap()
        .to_string();
    let mut backend = Dealer::new();
    let back = backend
        .bind("inproc://proxy-backend")
        .await
        .unwrap()
        .to_string();
    tokio::spawn(async move { crate::proxy(&mut frontend, &mut backend).await });
    for w in 0..2 {
        let mut rep = Rep::connect(&back).await.unwrap();
        tokio::spawn(async move {
            while let Ok(request) = rep.recv().await {
                let body = String::from_utf8_lossy(&request.message().frames()[0]).into_owned();
                if request
                    .reply(format!("{body} by worker {w}"))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
    }
    let mut req = Req::connect(&front).await.unwrap();
    timeout(T, req.wait_for_peers(1)).await.unwrap().unwrap();
    let mut served_by = std::collections::HashSet::new();
    for i in 0..6 {
        let reply = timeout(T, req.request(format!("job {i}")))
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&reply.frames()[0]).into_owned();
        assert!(text.starts_with(&format!("job {i} by worker")), "{text}");
        served_by.insert(text.chars().last());
    }
    assert_eq!(served_by.len(), 2, "both workers served");
}

/// Sockets are `Sink`s and `Stream`s.
#[tokio::test]
async fn sockets_are_sinks_and_streams() {
    let mut pull = Pull::bind("inproc://sink-stream").await.unwrap();
    let mut push = Push::connect("inproc://sink-stream").await.unwrap();
    let mut items = futures::stream::iter((0..3).map(|i| Ok(Message::from(format!("m{i}")))));
    push.send_all(&mut items).await.unwrap();
    let got: Vec<_> = pull.by_ref().take(3).collect().await;
    let got: Vec<_> = got
        .into_iter()
        .map(|m| m.unwrap().frames()[0].clone())
        .collect();
    assert_eq!(got, ["m0", "m1", "m2"]);
}

/// A Rep answering a client that never reads drops (and counts) the replies that do not fit
/// its queue instead of waiting, and serves every request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rep_drops_and_counts_replies_to_a_client_that_never_reads() {
    let mut rep = Rep::with_options(Options::new().send_hwm(2));
    let ep = rep.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let mut dealer = Dealer::with_options(Options::new().stream_window(16 * 1024));
    dealer.connect(&ep).unwrap();
    timeout(T, dealer.wait_for_peers(1)).await.unwrap().unwrap();
    let requests = 200;
    let flood = tokio::spawn(async move {
        for i in 0..requests {
            let request = Message::from(vec![
                bytes::Bytes::new(),
                bytes::Bytes::from(format!("{i}")),
            ]);
            dealer.send(request).await.unwrap();
        }
        dealer // never reads
    });
    let padding = bytes::Bytes::from(vec![0u8; 32 * 1024]);
    for _ in 0..requests {
        let request = timeout(T, rep.recv())
            .await
            .expect("the Rep stalled")
            .unwrap();
        timeout(T, request.reply(padding.clone()))
            .await
            .expect("reply waited")
            .unwrap();
    }
    let dropped = rep.engine.dropped_messages();
    assert!(dropped > 100, "{dropped} replies dropped");
    drop(flood);
}

/// After close, `try_send` hands the message back with `Closed` and `try_recv` says
/// `Closed`, on every socket type that has them.
#[tokio::test]
async fn try_send_and_try_recv_say_closed_after_close_and_hand_the_message_back() {
    use crate::{Pair, TryRecvError, TrySendError};
    let msg = || Message::from(vec![bytes::Bytes::from_static(b"a"), "b".into()]);
    let closed = |r: Result<(), TrySendError>| match r {
        Err(TrySendError::Closed(back)) => assert_eq!(back, msg()),
        other => panic!("{other:?}"),
    };

    let mut push = Push::new();
    push.engine.close().await;
    closed(push.try_send(msg()));
    let publisher = Pub::new();
    publisher.engine.close().await;
    closed(publisher.try_send(msg()));
    let mut router = Router::new();
    router.engine.close().await;
    closed(router.try_send("peer", msg()));
    assert_eq!(router.try_recv().unwrap_err(), TryRecvError::Closed);
    let mut dealer = Dealer::new();
    dealer.engine.close().await;
    closed(dealer.try_send(msg()));
    assert_eq!(dealer.try_recv().unwrap_err(), TryRecvError::Closed);
    let mut pair = Pair::new();
    pair.engine.close().await;
    closed(pair.try_send(msg()));
    assert_eq!(pair.try_recv().unwrap_err(), TryRecvError::Closed);
    let mut pull = Pull::new();
    pull.engine.close().await;
    assert_eq!(pull.try_recv().unwrap_err(), TryRecvError::Closed);
    let mut sub = Sub::new();
    sub.engine.close().await;
    assert_eq!(sub.try_recv().unwrap_err(), TryRecvError::Closed);
    let mut rep = Rep::new();
    rep.engine.close().await;
    assert!(matches!(rep.try_recv(), Err(TryRecvError::Closed)));
}

/// A conflating sender's queue never holds more than one unsent message per peer, however
/// many are sent while the peer reads nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflating_sender_holds_at_most_one_unsent_message_per_peer() {
    let opts = Options::new().stream_window(64 * 1024).conflate(true);
    let publisher = Pub::with_options(opts.clone());
    let ep = publisher
        .bind("tcp://127.0.0.1:0")
        .await
        .unwrap()
        .to_string();
    // Not conflating, and never reading: its window fills.
    let slow = Sub::with_options(Options::new().stream_window(64 * 1024));
    slow.subscribe("");
    slow.connect(&ep).unwrap();
    timeout(T, slow.wait_for_peers(1)).await.unwrap().unwrap();
    timeout(T, publisher.wait_for_peers(1))
        .await
        .unwrap()
        .unwrap();
    let payload = bytes::Bytes::from(vec![7u8; 16 * 1024]);
    for i in 0..1_000u32 {
        publisher
            .send(Message::from(vec![
                bytes::Bytes::from(i.to_string()),
                payload.clone(),
            ]))
            .await
            .unwrap();
        let queues = publisher.engine.queue_lengths();
        assert!(queues.iter().all(|&q| q <= 2), "{queues:?}"); // one begun + one whole
    }
    // What was replaced before it went out is a drop, not a send.
    let traffic = publisher.stats().traffic;
    assert_eq!(
        traffic.messages_sent + traffic.dropped,
        1_000,
        "{traffic:?}"
    );
    assert!(traffic.dropped > 0, "{traffic:?}");
    assert!(traffic.queued <= 2, "{traffic:?}");
    drop(slow);
}
