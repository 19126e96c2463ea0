//! Socket semantics over real sockets: reconnects, resends, limits, refusals, sharing.

mod common;

use common::{free_port, text, until_event, until_true};
use std::time::Duration;

use futures::FutureExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;
use zocket::monitor::Event;
use zocket::{Error, Message, Options, Pub, Pull, Push, Rep, Req, Router, Sub};

const T: Duration = Duration::from_secs(10);

fn fast_reconnect() -> Options {
    Options::new()
        .reconnect_interval(Duration::from_millis(10))
        .reconnect_interval_max(Duration::from_millis(200))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_connects_before_the_publisher_exists_and_survives_its_restart() {
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let mut sub = Sub::with_options(fast_reconnect());
    sub.subscribe("a.");
    sub.connect(&ep).unwrap(); // nobody listens yet

    let first = Pub::bind(&ep).await.unwrap();
    // A subscriber counts for a publisher once it receives (it then sends its
    // subscriptions): both wait together.
    let (a, b) = timeout(T, async {
        tokio::join!(first.wait_for_peers(1), sub.wait_for_peers(1))
    })
    .await
    .unwrap();
    a.unwrap();
    b.unwrap();
    first.send(["a.1", "first life"]).await.unwrap();
    assert_eq!(
        text(&timeout(T, sub.recv()).await.unwrap().unwrap()),
        "a.1|first life"
    );
    first.close().await;

    // A new publisher on the same address: the subscriber reconnects and resends its
    // subscriptions by itself.
    let second = Pub::bind(&ep).await.unwrap();
    timeout(T, second.wait_for_peers(1)).await.unwrap().unwrap();
    second.send(["b.1", "not subscribed"]).await.unwrap();
    second.send(["a.2", "second life"]).await.unwrap();
    assert_eq!(
        text(&timeout(T, sub.recv()).await.unwrap().unwrap()),
        "a.2|second life"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_resent_when_the_rep_holding_it_dies() {
    let dying_ep = format!("tcp://127.0.0.1:{}", free_port());
    let healthy_ep = format!("tcp://127.0.0.1:{}", free_port());
    let mut dying = Rep::bind(&dying_ep).await.unwrap();
    let mut req = Req::with_options(fast_reconnect());
    req.connect(&dying_ep).unwrap();
    timeout(T, req.wait_for_peers(1)).await.unwrap().unwrap();
    req.connect(&healthy_ep).unwrap(); // not there yet

    let (got_it, request_arrived) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let request = dying.recv().await.unwrap();
        assert_eq!(text(request.message()), "work");
        drop(request);
        let _ = got_it.send(());
        // Dies without replying.
        drop(dying);
    });
    let requester = tokio::spawn(async move { req.request("work").await });
    timeout(T, request_arrived).await.unwrap().unwrap();

    let mut healthy = Rep::bind(&healthy_ep).await.unwrap();
    let request = timeout(T, healthy.recv()).await.unwrap().unwrap();
    assert_eq!(text(request.message()), "work");
    request.reply("done").await.unwrap();
    let reply = timeout(T, requester).await.unwrap().unwrap().unwrap();
    assert_eq!(text(&reply), "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_timeout_fails_and_a_late_reply_does_not_poison_the_next_request() {
    let mut rep = Rep::bind("tcp://127.0.0.1:0").await.unwrap();
    let ep = rep.endpoints()[0].to_string();
    let mut req =
        Req::with_options(Options::new().request_timeout(Some(Duration::from_millis(200))));
    req.connect(&ep).unwrap();
    timeout(T, req.wait_for_peers(1)).await.unwrap().unwrap();

    let (release, held) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        // Hold the first request until the requester gave up, then answer it late.
        let first = rep.recv().await.unwrap();
        held.await.unwrap();
        first.reply("late answer to first").await.unwrap();
        let second = rep.recv().await.unwrap();
        let body = text(second.message());
        second.reply(format!("answer to {body}")).await.unwrap();
    });
    assert!(matches!(req.request("first").await, Err(Error::Timeout)));
    release.send(()).unwrap();
    let reply = timeout(T, req.request("second")).await.unwrap().unwrap();
    assert_eq!(
        text(&reply),
        "answer to second",
        "the stale reply was dropped"
    );
    server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_request_leaves_the_socket_usable() {
    let mut rep = Rep::bind("tcp://127.0.0.1:0").await.unwrap();
    let ep = rep.endpoints()[0].to_string();
    let mut req = Req::connect(&ep).await.unwrap();
    timeout(T, req.wait_for_peers(1)).await.unwrap().unwrap();
    // Poll the request once (it is sent), then drop it.
    assert!(req.request("abandoned").now_or_never().is_none());
    let server = tokio::spawn(async move {
        for _ in 0..2 {
            let r = rep.recv().await.unwrap();
            let body = text(r.message());
            r.reply(format!("re {body}")).await.unwrap();
        }
    });
    let reply = timeout(T, req.request("kept")).await.unwrap().unwrap();
    assert_eq!(text(&reply), "re kept");
    server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_waits_at_the_high_water_mark_and_resumes_when_the_puller_reads() {
    let opts = Options::new().send_hwm(5).stream_window(64 * 1024);
    let mut pull = Pull::with_options(Options::new().stream_window(64 * 1024));
    let ep = pull.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let mut push = Push::with_options(opts);
    push.connect(&ep).unwrap();
    timeout(T, push.wait_for_peers(1)).await.unwrap().unwrap();
    let payload = bytes::Bytes::from(vec![7u8; 1024]);
    let mut sent = 0usize;
    // Fill the window and the queue until a send has to wait.
    let blocked = timeout(T, async {
        loop {
            let mut send = Box::pin(push.send(Message::from(payload.clone())));
            // Give the connection a moment to move data between attempts.
            match timeout(Duration::from_millis(200), &mut send).await {
                Ok(r) => {
                    r.unwrap();
                    sent += 1;
                }
                Err(_) => return,
            }
            assert!(sent < 10_000, "push never waited");
        }
    })
    .await;
    assert!(blocked.is_ok());
    assert!(sent >= 5, "at least the HWM was accepted ({sent})");
    assert!(
        sent < 200,
        "memory is bounded by the window and the HWM ({sent})"
    );
    // Reading everything lets the pusher go on.
    for _ in 0..sent {
        timeout(T, pull.recv()).await.unwrap().unwrap();
    }
    timeout(T, push.send(Message::from(payload.clone())))
        .await
        .expect("push resumed")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incompatible_peers_are_refused_with_both_types_named_and_not_retried_in_a_tight_loop() {
    let publisher = Pub::bind("tcp://127.0.0.1:0").await.unwrap();
    let ep = publisher.endpoints()[0].to_string();
    let req = Req::with_options(
        Options::new()
            .reconnect_interval(Duration::from_millis(20))
            .reconnect_interval_max(Duration::from_secs(5)),
    );
    let mut monitor = req.monitor();
    req.connect(&ep).unwrap();
    let e = until_event(&mut monitor, |e| matches!(e, Event::HandshakeFailed { .. })).await;
    let Event::HandshakeFailed { reason, .. } = e else {
        unreachable!()
    };
    assert!(reason.contains("REQ") && reason.contains("PUB"), "{reason}");
    // Delays grow: the fourth retry waits longer than the first interval doubled.
    let mut delays = vec![];
    while delays.len() < 4 {
        if let Event::Retrying { delay, .. } =
            until_event(&mut monitor, |e| matches!(e, Event::Retrying { .. })).await
        {
            delays.push(delay);
        }
    }
    assert!(delays[3] >= Duration::from_millis(40), "{delays:?}");
    assert_eq!(publisher.peers(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bytes_close_that_connection_while_good_peers_are_served() {
    let mut pull = Pull::bind("tcp://127.0.0.1:0").await.unwrap();
    let ep = pull.endpoints()[0].to_string();
    let mut push = Push::connect(&ep).await.unwrap();
    timeout(T, push.wait_for_peers(1)).await.unwrap().unwrap();
    push.send("before").await.unwrap();
    assert_eq!(
        text(&timeout(T, pull.recv()).await.unwrap().unwrap()),
        "before"
    );

    let addr = ep.trim_start_matches("tcp://").to_owned();
    for garbage in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &[0xFF; 200][..],
        &[0u8, b'S', b'P', 0, 0, 0x10, 0, 0][..],
    ] {
        let mut raw = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let _ = raw.write_all(garbage).await;
        let mut sink = vec![];
        // The listener closes the connection (maybe after sending its greeting).
        timeout(T, raw.read_to_end(&mut sink))
            .await
            .expect("closed, not hung")
            .ok();
    }
    push.send("after").await.unwrap();
    assert_eq!(
        text(&timeout(T, pull.recv()).await.unwrap().unwrap()),
        "after"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_socket_sharing_a_listener_hears_its_events_even_after_the_first_one_left() {
    let first = Pull::bind("tcp://127.0.0.1:0/first").await.unwrap();
    let port = common::tcp_port(&first.endpoints()[0]);
    let second = Pull::bind(&format!("tcp://127.0.0.1:{port}/second"))
        .await
        .unwrap();
    let mut first_events = first.monitor();
    let mut second_events = second.monitor();
    let connect_garbage = || async move {
        let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let _ = raw.write_all(b"GET / HTTP/1.1\r\n\r\n").await;
        let mut sink = vec![];
        let _ = timeout(T, raw.read_to_end(&mut sink)).await;
    };
    connect_garbage().await;
    for events in [&mut first_events, &mut second_events] {
        until_event(events, |e| matches!(e, Event::Accepted { .. })).await;
        until_event(events, |e| matches!(e, Event::HandshakeFailed { .. })).await;
    }
    // The socket that made the listener leaves; the other still hears what happens there.
    first.close().await;
    connect_garbage().await;
    until_event(&mut second_events, |e| {
        matches!(e, Event::HandshakeFailed { .. })
    })
    .await;
}

/// Counts established TCP connections whose local port is `port` (IPv4).
fn established_on(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            cols.len() > 3 && cols[1].ends_with(&format!(":{port:04X}")) && cols[3] == "01"
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_sockets_of_one_process_share_one_tcp_connection() {
    let port = free_port();
    let mut pulls = vec![];
    for i in 0..64 {
        pulls.push(
            Pull::bind(&format!("tcp://127.0.0.1:{port}/q{i}"))
                .await
                .unwrap(),
        );
    }
    // A second bind of a taken path is refused.
    let dup = Pull::bind(&format!("tcp://127.0.0.1:{port}/q0")).await;
    assert!(matches!(dup, Err(Error::AddrInUse { .. })), "{dup:?}");
    let mut pushes = vec![];
    for i in 0..64 {
        pushes.push(
            Push::connect(&format!("tcp://127.0.0.1:{port}/q{i}"))
                .await
                .unwrap(),
        );
    }
    for (i, push) in pushes.iter_mut().enumerate() {
        timeout(T, push.wait_for_peers(1)).await.unwrap().unwrap();
        push.send(format!("to q{i}")).await.unwrap();
    }
    for (i, pull) in pulls.iter_mut().enumerate() {
        assert_eq!(
            text(&timeout(T, pull.recv()).await.unwrap().unwrap()),
            format!("to q{i}")
        );
    }
    assert_eq!(
        established_on(port),
        1,
        "one TCP connection carries all 64 links"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_nobody_bound_is_refused_and_named() {
    let port = free_port();
    let _pull = Pull::bind(&format!("tcp://127.0.0.1:{port}/real"))
        .await
        .unwrap();
    let push = Push::with_options(fast_reconnect());
    let mut monitor = push.monitor();
    push.connect(&format!("tcp://127.0.0.1:{port}/typo"))
        .unwrap();
    let e = until_event(&mut monitor, |e| matches!(e, Event::HandshakeFailed { .. })).await;
    let Event::HandshakeFailed { reason, .. } = e else {
        unreachable!()
    };
    assert!(reason.contains("typo"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_drops_or_refuses_messages_to_unknown_peers() {
    let mut router = Router::bind("tcp://127.0.0.1:0").await.unwrap();
    router.send("nobody", "lost").await.unwrap();
    let mut strict = Router::with_options(Options::new().router_mandatory(true));
    strict.bind("tcp://127.0.0.1:0").await.unwrap();
    assert!(matches!(
        strict.send("nobody", "x").await,
        Err(Error::HostUnreachable)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_peer_claiming_a_live_identity_is_refused() {
    let mut router = Router::bind("tcp://127.0.0.1:0").await.unwrap();
    let ep = router.endpoints()[0].to_string();
    let mut first = zocket::Dealer::with_options(Options::new().identity("same"));
    first.connect(&ep).unwrap();
    timeout(T, router.wait_for_peers(1)).await.unwrap().unwrap();
    let mut second = zocket::Dealer::with_options(fast_reconnect().identity("same"));
    let mut monitor = second.monitor();
    second.connect(&ep).unwrap();
    until_event(&mut monitor, |e| {
        matches!(
            e,
            Event::HandshakeFailed { .. } | Event::Disconnected { .. }
        )
    })
    .await;
    assert_eq!(router.peers(), 1);
    first.send("from the first").await.unwrap();
    let (id, msg) = timeout(T, router.recv()).await.unwrap().unwrap();
    assert_eq!(
        (&id[..], text(&msg).as_str()),
        (&b"same"[..], "from the first")
    );
    drop(second.send("ignored").now_or_never());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fair_queueing_does_not_starve_a_pusher() {
    let small = Options::new().stream_window(64 * 1024);
    let mut pull = Pull::with_options(small.clone());
    let ep = pull.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(3));
    let mut pushers = vec![];
    for name in ["a", "b"] {
        let mut push = Push::with_options(small.clone());
        push.connect(&ep).unwrap();
        timeout(T, push.wait_for_peers(1)).await.unwrap().unwrap();
        let start = start.clone();
        pushers.push(tokio::spawn(async move {
            start.wait().await;
            // Far more than the flow-control window holds: both stay backlogged.
            for _ in 0..20_000 {
                if push.send(name).await.is_err() {
                    return;
                }
            }
        }));
    }
    start.wait().await;
    // Count once both are sending: on a loaded machine one pusher's task may start well
    // after the other's, which says nothing about the fair queue.
    let mut seen = std::collections::HashSet::new();
    while seen.len() < 2 {
        let m = timeout(T, pull.recv()).await.unwrap().unwrap();
        seen.insert(text(&m));
    }
    let mut counts = std::collections::HashMap::new();
    for _ in 0..10_000 {
        let m = timeout(T, pull.recv()).await.unwrap().unwrap();
        *counts.entry(text(&m)).or_insert(0usize) += 1;
    }
    let a = counts.get("a").copied().unwrap_or(0);
    let b = counts.get("b").copied().unwrap_or(0);
    // Starvation would be near 0; fair is near 5,000 each.
    assert!(a >= 2_000 && b >= 2_000, "a={a} b={b}");
    for p in pushers {
        p.abort();
    }
}

/// A ZMTP greeting as libzmq sends it (no zocket marker), with a chosen version and mechanism.
fn zmtp_greeting(major: u8, mechanism: &[u8]) -> Vec<u8> {
    let mut g = vec![0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0x7F, major, 1];
    let mut mech = mechanism.to_vec();
    mech.resize(20, 0);
    g.extend_from_slice(&mech);
    g.push(0);
    g.resize(64, 0);
    g
}

/// A READY command for a `socket_type` peer: 04 len 05 "READY" 0b "Socket-Type" len type.
fn zmtp_ready(socket_type: &[u8]) -> Vec<u8> {
    let mut body = vec![5];
    body.extend_from_slice(b"READY");
    body.push(11);
    body.extend_from_slice(b"Socket-Type");
    body.extend_from_slice(&(socket_type.len() as u32).to_be_bytes());
    body.extend_from_slice(socket_type);
    let mut command = vec![0x04, body.len() as u8];
    command.extend_from_slice(&body);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zmtp_subscriber_whose_subscribe_comes_with_its_ready_is_served() {
    // libzmq sends SUBSCRIBE right behind READY; on a loaded machine both arrive in one
    // read. The publisher must apply the subscription then, not wait for another signal.
    let publisher = zocket::Pub::bind("tcp://127.0.0.1:0").await.unwrap();
    let port = common::tcp_port(&publisher.endpoints()[0]);
    let mut bytes = zmtp_greeting(3, b"NULL");
    bytes.extend_from_slice(&zmtp_ready(b"SUB"));
    bytes.extend_from_slice(&[0x04, 10, 9]); // SUBSCRIBE to everything
    bytes.extend_from_slice(b"SUBSCRIBE");
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    raw.write_all(&bytes).await.unwrap();
    timeout(T, publisher.wait_for_peers(1))
        .await
        .unwrap()
        .unwrap();
    publisher.send("hello").await.unwrap();
    let mut got = Vec::new();
    timeout(T, async {
        while !got.windows(5).any(|w| w == b"hello") {
            let mut buf = [0u8; 4096];
            let n = raw.read(&mut buf).await.unwrap();
            assert!(n > 0, "the publisher closed the connection");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("the subscriber gets what is published");
}

/// The IPv4 TCP socket whose local address is 127.0.0.1:`port` and remote port `remote`,
/// from /proc/net/tcp: its state ("01": established) and its receive queue in bytes.
fn tcp_socket(port: u16, remote: u16) -> Option<(String, u64)> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let ours = cols.len() > 4
            && cols[1] == format!("0100007F:{port:04X}")
            && cols[2].ends_with(&format!(":{remote:04X}"));
        ours.then(|| {
            let rx = cols[4].split(':').nth(1).unwrap_or("0");
            (cols[3].to_owned(), u64::from_str_radix(rx, 16).unwrap_or(0))
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zmtp_peer_that_stops_reading_cannot_keep_a_failed_connection_open() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut push = Push::connect(&format!("tcp://127.0.0.1:{port}"))
        .await
        .unwrap();
    let (mut raw, ours) = timeout(T, listener.accept()).await.unwrap().unwrap();
    raw.write_all(&zmtp_greeting(3, b"NULL")).await.unwrap();
    raw.write_all(&zmtp_ready(b"PULL")).await.unwrap();
    timeout(T, push.wait_for_peers(1)).await.unwrap().unwrap();
    // 64 MiB for a peer that never reads: more than every buffer between us holds.
    let block = bytes::Bytes::from(vec![0u8; 64 * 1024]);
    for _ in 0..1000 {
        push.send(block.clone()).await.unwrap();
    }
    // Wait until the data piles up unread at the peer (its kernel receive queue, 128 KiB
    // while its application does not read)...
    until_true(|| tcp_socket(port, ours.port()).is_some_and(|(_, rx)| rx >= 64 << 10)).await;
    // ... then it breaks the protocol: our session fails, and its ERROR cannot get out.
    raw.write_all(&[0xFF, 0x00]).await.unwrap();
    let our_state = || tcp_socket(ours.port(), port).map(|(state, _)| state);
    assert_eq!(our_state().as_deref(), Some("01"));
    // The connection is dropped after the close linger (2 s), not kept for as long as
    // the peer keeps its end open.
    let started = std::time::Instant::now();
    until_true(|| our_state().as_deref() != Some("01")).await;
    println!("dropped after {:?}", started.elapsed());
    drop(raw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_zmtp_peers_are_cut_off_while_good_peers_are_served() {
    let mut pull = Pull::bind("tcp://127.0.0.1:0").await.unwrap();
    let ep = pull.endpoints()[0].to_string();
    let mut monitor = pull.monitor();
    let mut push = Push::connect(&ep).await.unwrap();
    timeout(T, push.wait_for_peers(1)).await.unwrap().unwrap();
    let addr = ep.trim_start_matches("tcp://").to_owned();

    let oversized = {
        let mut v = zmtp_greeting(3, b"NULL");
        v.extend_from_slice(&zmtp_ready(b"PUSH"));
        v.extend_from_slice(&[0x02, 0, 0, 0, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF]); // 2^39-byte frame
        v
    };
    let command_first = {
        let mut v = zmtp_greeting(3, b"NULL");
        v.extend_from_slice(&[0x04, 5, 4]);
        v.extend_from_slice(b"PING");
        v
    };
    let cases: [(&str, Vec<u8>); 4] = [
        ("ZMTP 2.0", zmtp_greeting(2, b"NULL")),
        ("mechanism PLAIN", zmtp_greeting(3, b"PLAIN")),
        ("frame over the limit", oversized),
        ("command before READY", command_first),
    ];
    for (what, bytes) in cases {
        let mut raw = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let _ = raw.write_all(&bytes).await;
        let mut sink = vec![];
        timeout(T, raw.read_to_end(&mut sink))
            .await
            .unwrap_or_else(|_| panic!("{what}: connection not closed"))
            .ok();
        push.send(format!("still served after {what}"))
            .await
            .unwrap();
        let msg = timeout(T, pull.recv()).await.unwrap().unwrap();
        assert_eq!(text(&msg), format!("still served after {what}"));
    }
    // Every failure was reported: greeting failures as HandshakeFailed, the two that broke
    // the protocol after the greeting as Disconnected with the reason.
    let mut reasons = vec![];
    for e in common::events_now(&mut monitor) {
        match e {
            Event::HandshakeFailed { reason, .. } | Event::Disconnected { reason, .. } => {
                reasons.push(reason)
            }
            _ => {}
        }
    }
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("2.1") || r.contains("version")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("PLAIN")), "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("protocol")),
        "{reasons:?}"
    );
}

/// Two zocket sockets can be made to speak plain ZMTP (`Options::native(false)` on either).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zocket_peers_speak_plain_zmtp_when_asked() {
    let mut pull = Pull::bind("tcp://127.0.0.1:0").await.unwrap();
    let ep = pull.endpoints()[0].to_string();
    let mut push = Push::with_options(Options::new().native(false));
    push.connect(&ep).unwrap();
    timeout(T, push.wait_for_peers(1)).await.unwrap().unwrap();
    push.send(["over", "zmtp"]).await.unwrap();
    assert_eq!(
        text(&timeout(T, pull.recv()).await.unwrap().unwrap()),
        "over|zmtp"
    );

    let mut rep = Rep::with_options(Options::new().native(false));
    let ep = rep.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let mut req = Req::connect(&ep).await.unwrap();
    let server = tokio::spawn(async move {
        let r = rep.recv().await.unwrap();
        let body = text(r.message());
        r.reply(format!("re {body}")).await.unwrap();
    });
    assert_eq!(
        text(&timeout(T, req.request("zmtp")).await.unwrap().unwrap()),
        "re zmtp"
    );
    server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_drops_one_link_and_unbind_frees_the_address() {
    let mut kept = Pull::bind("tcp://127.0.0.1:0").await.unwrap();
    let kept_ep = kept.endpoints()[0].to_string();
    let file = std::env::temp_dir().join(format!("zocket-disconnect-{}.sock", std::process::id()));
    let dropped = Pull::bind(&format!("ipc://{}", file.display()))
        .await
        .unwrap();
    let dropped_ep = dropped.endpoints()[0].to_string();
    let mut push = Push::with_options(fast_reconnect());
    push.connect(&kept_ep).unwrap();
    push.connect(&dropped_ep).unwrap();
    timeout(T, push.wait_for_peers(2)).await.unwrap().unwrap();
    timeout(T, dropped.wait_for_peers(1))
        .await
        .unwrap()
        .unwrap();

    push.disconnect(&dropped_ep).unwrap();
    assert_eq!(push.peers(), 1);
    assert!(
        push.disconnect(&dropped_ep).is_err(),
        "no longer connected there"
    );
    // The other side sees the link go, and nothing redials it.
    timeout(T, async {
        while dropped.peers() > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the dropped pull loses its peer");
    for i in 0..4 {
        push.send(format!("only to kept {i}")).await.unwrap();
    }
    for i in 0..4 {
        assert_eq!(
            text(&timeout(T, kept.recv()).await.unwrap().unwrap()),
            format!("only to kept {i}")
        );
    }
    assert_eq!(dropped.peers(), 0);

    // Unbinding frees the address for another socket at once.
    kept.unbind(&kept_ep).await.unwrap();
    assert!(kept.endpoints().is_empty());
    let again = Pull::bind(&kept_ep).await.unwrap();
    assert_eq!(again.endpoints()[0].to_string(), kept_ep);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_a_shared_connections_limit_is_refused_and_the_connection_goes_on() {
    // Two sockets on one port share one connection from this process; the first socket
    // bound on the port sets the connection's limits, which its HELLO announces. A message
    // over them is refused at send (a peer that sends it anyway loses only its stream:
    // tests/hostile.rs), and the other stream on the connection goes on.
    let port = free_port();
    let strict = Pull::with_options(Options::new().max_message_size(1000));
    strict
        .bind(&format!("tcp://127.0.0.1:{port}/strict"))
        .await
        .unwrap();
    let mut other = Pull::bind(&format!("tcp://127.0.0.1:{port}/other"))
        .await
        .unwrap();
    let mut big = Push::connect(&format!("tcp://127.0.0.1:{port}/strict"))
        .await
        .unwrap();
    let mut fine = Push::connect(&format!("tcp://127.0.0.1:{port}/other"))
        .await
        .unwrap();
    timeout(T, big.wait_for_peers(1)).await.unwrap().unwrap();
    timeout(T, fine.wait_for_peers(1)).await.unwrap().unwrap();
    let refused = big.send(Message::from(vec![0u8; 5000])).await;
    let Err(e @ Error::MessageTooLarge { .. }) = refused else {
        panic!("{refused:?}")
    };
    assert_eq!(
        e.to_string(),
        "message of 5000 bytes exceeds the limit of 1000 bytes"
    );
    fine.send("still here").await.unwrap();
    assert_eq!(
        text(&timeout(T, other.recv()).await.unwrap().unwrap()),
        "still here"
    );
    assert_eq!(established_on(port), 1, "one shared connection");
    assert_eq!(big.peers(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_paused_at_its_window_resumes_as_the_reader_catches_up() {
    // 64 KiB holds under 900 small messages (64 bytes of overhead each), far fewer than
    // are sent: input pauses and resumes many times, and nothing is lost or reordered.
    let small_window = Options::new().connection_window(64 * 1024);
    let mut pull = Pull::with_options(small_window);
    let ep = pull.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let mut push = Push::connect(&ep).await.unwrap();
    timeout(T, push.wait_for_peers(1)).await.unwrap().unwrap();
    const N: usize = 20_000;
    let sender = tokio::spawn(async move {
        for i in 0..N {
            push.send(format!("{i}")).await.unwrap();
        }
        push
    });
    // Let the window fill before reading.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 0..N {
        let msg = timeout(T, pull.recv())
            .await
            .expect("input resumed")
            .unwrap();
        assert_eq!(text(&msg), format!("{i}"));
    }
    let _push = timeout(T, sender).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_peers_limit_is_refused_at_send_and_the_link_goes_on() {
    // The peer announces its max_message_size in its HELLO: a sender that knows it refuses
    // the message itself, with an error naming both numbers, instead of sending it for the
    // peer to reset the stream (losing what was queued behind it, and the link).
    let mut pull = Pull::with_options(Options::new().max_message_size(1000));
    let ep = pull.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let mut events = pull.monitor();
    let mut push = Push::connect(&ep).await.unwrap();
    timeout(T, push.wait_for_peers(1)).await.unwrap().unwrap();

    let refused = push.send(Message::from(vec![7u8; 5000])).await;
    assert!(
        matches!(
            refused,
            Err(Error::MessageTooLarge {
                size: 5000,
                max: 1000
            })
        ),
        "{refused:?}"
    );
    match push.try_send(Message::from(vec![7u8; 1001])) {
        Err(zocket::TrySendError::TooLarge { msg, max: 1000 }) => assert_eq!(msg.byte_len(), 1001),
        other => panic!("try_send of 1001 bytes: {other:?}"),
    }
    push.send(Message::from(vec![1u8; 1000])).await.unwrap();
    push.send("after").await.unwrap();
    let first = timeout(T, pull.recv()).await.unwrap().unwrap();
    assert_eq!(
        first.byte_len(),
        1000,
        "a message at the limit goes through"
    );
    assert_eq!(
        text(&timeout(T, pull.recv()).await.unwrap().unwrap()),
        "after"
    );
    let gone: Vec<_> = common::events_now(&mut events)
        .into_iter()
        .filter(|e| matches!(e, Event::Disconnected { .. }))
        .collect();
    assert!(gone.is_empty(), "the link was reset: {gone:?}");
    assert_eq!(push.peers(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_routed_messages_over_the_peers_limit_fail_at_send() {
    let small = || Options::new().max_message_size(100);
    // Req → Rep: the request fails, the Req can ask again.
    let mut rep = Rep::with_options(small());
    let ep = rep.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let echo = tokio::spawn(async move {
        while let Ok(request) = rep.recv().await {
            let body = request.message().clone();
            if request.reply(body).await.is_err() {
                break;
            }
        }
    });
    let mut req = Req::connect(&ep).await.unwrap();
    timeout(T, req.wait_for_peers(1)).await.unwrap().unwrap();
    let refused = timeout(T, req.request(Message::from(vec![0u8; 500])))
        .await
        .expect("the oversized request fails at once");
    assert!(
        matches!(
            refused,
            // The request as it goes on the wire: with its id and delimiter frames.
            Err(Error::MessageTooLarge {
                size: 500..,
                max: 100
            })
        ),
        "{refused:?}"
    );
    let answer = timeout(T, req.request("small")).await.unwrap().unwrap();
    assert_eq!(text(&answer), "small");
    echo.abort();

    // Router → a Dealer with a small limit: the send fails, the next one arrives.
    let mut router = Router::new();
    let ep = router.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let mut dealer = zocket::Dealer::with_options(small().identity("d"));
    dealer.connect(&ep).unwrap();
    timeout(T, dealer.wait_for_peers(1)).await.unwrap().unwrap();
    timeout(T, router.wait_for_peers(1)).await.unwrap().unwrap();
    let refused = router.send("d", Message::from(vec![0u8; 500])).await;
    assert!(
        matches!(
            refused,
            Err(Error::MessageTooLarge {
                size: 500,
                max: 100
            })
        ),
        "{refused:?}"
    );
    router.send("d", "fits").await.unwrap();
    assert_eq!(
        text(&timeout(T, dealer.recv()).await.unwrap().unwrap()),
        "fits"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_with_a_small_limit_misses_only_the_messages_over_it() {
    let publisher = Pub::bind("tcp://127.0.0.1:0").await.unwrap();
    let ep = publisher.endpoints()[0].to_string();
    let mut sub = Sub::with_options(Options::new().max_message_size(100));
    let mut events = sub.monitor();
    sub.subscribe("");
    sub.connect(&ep).unwrap();
    let (a, b) = timeout(T, async {
        tokio::join!(publisher.wait_for_peers(1), sub.wait_for_peers(1))
    })
    .await
    .unwrap();
    a.unwrap();
    b.unwrap();
    publisher.send(Message::from(vec![0u8; 500])).await.unwrap();
    publisher.send("fits").await.unwrap();
    assert_eq!(
        text(&timeout(T, sub.recv()).await.unwrap().unwrap()),
        "fits"
    );
    assert_eq!(
        publisher.stats().traffic.dropped,
        1,
        "the big one is counted as dropped"
    );
    let gone: Vec<_> = common::events_now(&mut events)
        .into_iter()
        .filter(|e| matches!(e, Event::Disconnected { .. }))
        .collect();
    assert!(gone.is_empty(), "the subscriber's link was reset: {gone:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_holds_its_own_limit_on_a_listener_another_socket_made() {
    // The first socket bound on a port makes the listener and sets the connection's limits
    // (64 MiB here); a second socket bound there with a smaller max_message_size must still
    // get nothing larger: its peer's stream is reset, the reason names its limit, and the
    // first socket's traffic on the same connection goes on.
    let port = free_port();
    let mut roomy = Pull::bind(&format!("tcp://127.0.0.1:{port}/roomy"))
        .await
        .unwrap();
    let mut strict = Pull::with_options(Options::new().max_message_size(1000));
    strict
        .bind(&format!("tcp://127.0.0.1:{port}/strict"))
        .await
        .unwrap();
    let mut events = strict.monitor();
    let mut big = Push::connect(&format!("tcp://127.0.0.1:{port}/strict"))
        .await
        .unwrap();
    let mut fine = Push::connect(&format!("tcp://127.0.0.1:{port}/roomy"))
        .await
        .unwrap();
    timeout(T, big.wait_for_peers(1)).await.unwrap().unwrap();
    timeout(T, fine.wait_for_peers(1)).await.unwrap().unwrap();
    // The strict socket reads (a socket takes its links' input as it receives).
    let strict_recv = tokio::spawn(async move { strict.recv().await.map(|m| m.byte_len()) });
    // The connection's HELLO announced 64 MiB: the sender cannot know, and sends it.
    big.send(Message::from(vec![0u8; 5000])).await.unwrap();
    let gone = until_event(&mut events, |e| matches!(e, Event::Disconnected { .. })).await;
    let Event::Disconnected { reason, .. } = gone else {
        unreachable!()
    };
    assert!(
        reason.contains("exceeds the limit of 1000 bytes"),
        "the monitor says why: {reason}"
    );
    fine.send(Message::from(vec![1u8; 5000])).await.unwrap();
    let got = timeout(T, roomy.recv()).await.unwrap().unwrap();
    assert_eq!(got.byte_len(), 5000, "the other socket's limit is its own");
    assert!(!strict_recv.is_finished(), "the strict socket got nothing");
    strict_recv.abort();
    assert_eq!(established_on(port), 1, "the shared connection survived");
}
