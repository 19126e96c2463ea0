//! XPub and XSub over tcp, ipc and inproc, the forwarder, and libzmq XPUB/XSUB through
//! pyzmq in both roles.

mod common;

use common::endpoints;

use std::time::Duration;

use common::python::PythonPeer;
use common::{have_pyzmq, until_true, WAIT};
use futures::StreamExt;
use tokio::time::timeout;
use zocket::{Message, Options, Pub, Sub, XPub, XSub};

const T: Duration = Duration::from_secs(15);

/// A message as text: `+prefix` / `-prefix` for a subscription message, else its frames
/// joined by `|`.
fn show(msg: &Message) -> String {
    let frames = msg.frames();
    match (frames.len(), frames.first().and_then(|f| f.first())) {
        (1, Some(1)) => format!("+{}", String::from_utf8_lossy(&frames[0][1..])),
        (1, Some(0)) => format!("-{}", String::from_utf8_lossy(&frames[0][1..])),
        _ => frames
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect::<Vec<_>>()
            .join("|"),
    }
}

async fn next(xpub: &mut XPub) -> String {
    show(
        &timeout(T, xpub.recv())
            .await
            .expect("xpub heard nothing")
            .unwrap(),
    )
}

/// The next `n` messages of `xpub`, sorted (a snapshot's prefixes come in no set order).
async fn next_sorted(xpub: &mut XPub, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    for _ in 0..n {
        got.push(next(xpub).await);
    }
    got.sort();
    got
}

/// Subscribes `sub` and waits until `xpub` has it (the marker is the next thing the XPub
/// sees, which proves nothing came before it).
async fn subscribe_and_see(xpub: &mut XPub, sub: &Sub, prefix: &str) {
    sub.subscribe(prefix);
    assert_eq!(next(xpub).await, format!("+{prefix}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_xpub_passes_only_the_first_subscribe_and_the_last_unsubscribe_on_every_transport() {
    for ep in endpoints("xpub-dedup") {
        let mut xpub = XPub::new();
        let bound = xpub.bind(&ep).await.unwrap().to_string();
        // A's snapshot reaches the XPub as one subscribe per prefix.
        let a = Sub::connect(&bound).await.unwrap();
        a.subscribe("news");
        a.subscribe("sport");
        timeout(T, a.wait_for_peers(1)).await.unwrap().unwrap();
        assert_eq!(next_sorted(&mut xpub, 2).await, ["+news", "+sport"], "{ep}");
        // B wants "news" too: not passed on; its "b.marker" is, and comes next.
        let b = Sub::connect(&bound).await.unwrap();
        b.subscribe("news");
        b.subscribe("b.marker");
        timeout(T, b.wait_for_peers(1)).await.unwrap().unwrap();
        assert_eq!(next(&mut xpub).await, "+b.marker", "{ep}");
        // B drops "news": A still holds it, so nothing; then A drops it: the last one.
        b.unsubscribe("news");
        subscribe_and_see(&mut xpub, &b, "b.marker2").await;
        a.unsubscribe("news");
        assert_eq!(next(&mut xpub).await, "-news", "{ep}");
        // A subscribing twice counts at A: its second subscribe is not even sent.
        a.subscribe("sport");
        subscribe_and_see(&mut xpub, &a, "a.marker").await;
        // A leaves: the prefixes only it held are unsubscribed.
        a.close().await;
        assert_eq!(
            next_sorted(&mut xpub, 2).await,
            ["-a.marker", "-sport"],
            "{ep}"
        );
        b.close().await;
        assert_eq!(
            next_sorted(&mut xpub, 2).await,
            ["-b.marker", "-b.marker2"],
            "{ep}"
        );
        until_true(|| xpub.peers() == 0).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verbose_xpub_passes_every_subscribe_and_unsubscribe_on_every_transport() {
    for ep in endpoints("xpub-verbose") {
        let mut xpub = XPub::with_options(Options::new().xpub_verbose(true));
        let bound = xpub.bind(&ep).await.unwrap().to_string();
        let a = Sub::connect(&bound).await.unwrap();
        a.subscribe("news");
        timeout(T, a.wait_for_peers(1)).await.unwrap().unwrap();
        assert_eq!(next(&mut xpub).await, "+news", "{ep}");
        let b = Sub::connect(&bound).await.unwrap();
        b.subscribe("news");
        timeout(T, b.wait_for_peers(1)).await.unwrap().unwrap();
        assert_eq!(next(&mut xpub).await, "+news", "{ep}");
        b.unsubscribe("news");
        assert_eq!(next(&mut xpub).await, "-news", "{ep}");
        b.subscribe("news");
        assert_eq!(next(&mut xpub).await, "+news", "{ep}");
        // A leaves: verbose unsubscribes every prefix it held, though B holds "news".
        a.close().await;
        assert_eq!(next(&mut xpub).await, "-news", "{ep}");
        b.close().await;
        assert_eq!(next(&mut xpub).await, "-news", "{ep}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xsub_and_xpub_talk_to_each_other_and_to_pub_and_sub_on_every_transport() {
    for ep in endpoints("xpubsub-pairs") {
        // XSub -> XPub: subscriptions and an upstream message arrive in order; the XPub's
        // messages are filtered.
        let mut xpub = XPub::new();
        let bound = xpub.bind(&ep).await.unwrap().to_string();
        let mut xsub = XSub::connect(&bound).await.unwrap();
        xsub.send(b"\x01a.").await.unwrap();
        timeout(T, xsub.wait_for_peers(1)).await.unwrap().unwrap();
        // (Sent to the publishers connected now, as every XSub message is.)
        xsub.send(["hello", "upstream"]).await.unwrap();
        assert_eq!(next(&mut xpub).await, "+a.", "{ep}");
        assert_eq!(next(&mut xpub).await, "hello|upstream", "{ep}");
        xpub.send(["b.x", "no"]).await.unwrap();
        xpub.send(["a.x", "yes"]).await.unwrap();
        let got = timeout(T, xsub.recv()).await.unwrap().unwrap();
        assert_eq!(show(&got), "a.x|yes", "{ep}");
        // Unsubscribing by message: the XPub hears it.
        xsub.send(b"\x00a.").await.unwrap();
        assert_eq!(next(&mut xpub).await, "-a.", "{ep}");
        xsub.close().await;
        xpub.close().await;

        // XSub -> Pub (which ignores upstream messages).
        let publisher = Pub::new();
        let bound = publisher.bind(&ep).await.unwrap().to_string();
        let mut xsub = XSub::connect(&bound).await.unwrap();
        xsub.subscribe("w.");
        timeout(T, xsub.wait_for_peers(1)).await.unwrap().unwrap();
        xsub.send("ignored by a pub").await.unwrap();
        timeout(T, publisher.wait_for_peers(1))
            .await
            .unwrap()
            .unwrap();
        publisher.send(["x.y", "no"]).await.unwrap();
        publisher.send(["w.paris", "sunny"]).await.unwrap();
        let got = timeout(T, xsub.recv()).await.unwrap().unwrap();
        assert_eq!(show(&got), "w.paris|sunny", "{ep}");
        xsub.close().await;
        publisher.close().await;

        // Sub binds, XPub connects: the XPub still hears the snapshot.
        let mut sub = Sub::new();
        let bound = sub.bind(&ep).await.unwrap().to_string();
        sub.subscribe("t.");
        let mut xpub = XPub::connect(&bound).await.unwrap();
        timeout(T, sub.wait_for_peers(1)).await.unwrap().unwrap();
        assert_eq!(next(&mut xpub).await, "+t.", "{ep}");
        xpub.send(["t.1", "to the sub"]).await.unwrap();
        let got = timeout(T, sub.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(show(&got), "t.1|to the sub", "{ep}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xsub_and_xpub_work_over_plain_zmtp_and_over_curve() {
    use zocket::curve::KeyPair;
    let server = KeyPair::generate();
    let cases = [
        (
            "plain ZMTP",
            Options::new().native(false),
            Options::new().native(false),
        ),
        (
            "CURVE",
            Options::new().curve_server(server.secret().clone()),
            Options::new().curve_client(*server.public(), KeyPair::generate()),
        ),
    ];
    for (what, xpub_options, xsub_options) in cases {
        let mut xpub = XPub::with_options(xpub_options);
        let ep = xpub.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
        let mut xsub = XSub::with_options(xsub_options);
        xsub.connect(&ep).unwrap();
        xsub.send(b"\x01a.").await.unwrap();
        xsub.send(b"\x01b.").await.unwrap();
        timeout(T, xsub.wait_for_peers(1)).await.unwrap().unwrap();
        xsub.send(["up", "stream"]).await.unwrap();
        xsub.send(b"\x00b.").await.unwrap();
        assert_eq!(next_sorted(&mut xpub, 2).await, ["+a.", "+b."], "{what}");
        assert_eq!(next(&mut xpub).await, "up|stream", "{what}");
        assert_eq!(next(&mut xpub).await, "-b.", "{what}");
        xpub.send(["b.1", "no"]).await.unwrap();
        xpub.send(["a.1", "yes"]).await.unwrap();
        let got = timeout(T, xsub.recv()).await.unwrap().unwrap();
        assert_eq!(show(&got), "a.1|yes", "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_xsub_resends_its_subscriptions_after_the_xpub_restarts() {
    let mut first = XPub::bind("tcp://127.0.0.1:0").await.unwrap();
    let ep = first.endpoints()[0].to_string();
    let mut xsub = XSub::with_options(Options::new().reconnect_interval(Duration::from_millis(20)));
    xsub.connect(&ep).unwrap();
    xsub.send(b"\x01alpha").await.unwrap();
    xsub.send(b"\x01beta").await.unwrap();
    assert_eq!(next_sorted(&mut first, 2).await, ["+alpha", "+beta"]);
    let mut monitor = xsub.monitor();
    first.close().await;
    common::until_event(&mut monitor, |e| {
        matches!(e, zocket::monitor::Event::Disconnected { .. })
    })
    .await;
    // A new XPub on the same address: the XSub reconnects and sends both again, once each.
    let mut second = XPub::bind(&ep).await.unwrap();
    assert_eq!(next_sorted(&mut second, 2).await, ["+alpha", "+beta"]);
    timeout(T, second.wait_for_peers(1)).await.unwrap().unwrap();
    second.send(["gamma", "not wanted"]).await.unwrap();
    second.send(["beta.1", "wanted"]).await.unwrap();
    let got = timeout(T, xsub.recv()).await.unwrap().unwrap();
    assert_eq!(show(&got), "beta.1|wanted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_xsub_over_the_subscription_budget_is_dropped_and_its_prefixes_unsubscribed() {
    // Room for two prefixes of 4 bytes (each counts its length plus 64).
    let budget = 2 * (4 + 64);
    let mut xpub = XPub::with_options(Options::new().max_subscription_bytes(budget));
    let ep = xpub.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let mut monitor = xpub.monitor();
    let xsub = XSub::connect(&ep).await.unwrap();
    xsub.send(b"\x01aaaa").await.unwrap();
    assert_eq!(next(&mut xpub).await, "+aaaa");
    xsub.send(b"\x01bbbb").await.unwrap();
    assert_eq!(next(&mut xpub).await, "+bbbb");
    xsub.send(b"\x01cccc").await.unwrap();
    let event = common::until_event(&mut monitor, |e| {
        matches!(e, zocket::monitor::Event::Disconnected { .. })
    })
    .await;
    assert!(
        format!("{event:?}").contains("max_subscription_bytes"),
        "{event:?}"
    );
    assert_eq!(next_sorted(&mut xpub, 2).await, ["-aaaa", "-bbbb"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_an_xpub_does_not_read_push_back_and_none_is_lost() {
    // recv_hwm 4: the XPub reads its subscriber only while fewer than 4 wait for us.
    let mut xpub = XPub::with_options(Options::new().recv_hwm(4));
    let ep = xpub.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let xsub = XSub::connect(&ep).await.unwrap();
    timeout(T, xsub.wait_for_peers(1)).await.unwrap().unwrap();
    for i in 0..200 {
        xsub.send(format!("\x01topic.{i:03}")).await.unwrap();
    }
    xsub.send(["done"]).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..201 {
        got.push(next(&mut xpub).await);
    }
    let expected: Vec<String> = (0..200)
        .map(|i| format!("+topic.{i:03}"))
        .chain(["done".to_owned()])
        .collect();
    assert_eq!(got, expected, "in order, none lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarder_carries_only_subscribed_topics_from_publishers_to_subscribers() {
    for ep in endpoints("forwarder") {
        let ep2 = ep
            .replace(".sock", "-down.sock")
            .replace("forwarder-", "forwarder-down-");
        let mut xsub = XSub::new();
        let up = xsub.bind(&ep).await.unwrap().to_string();
        let mut xpub = XPub::new();
        let down = xpub.bind(&ep2).await.unwrap().to_string();
        let forwarder = tokio::spawn(async move { zocket::forward(&mut xsub, &mut xpub).await });

        let publishers = [
            Pub::connect(&up).await.unwrap(),
            Pub::connect(&up).await.unwrap(),
        ];
        let mut subs = [
            Sub::connect(&down).await.unwrap(),
            Sub::connect(&down).await.unwrap(),
        ];
        subs[0].subscribe("a.");
        subs[1].subscribe("b.");
        for sub in &subs {
            timeout(T, sub.wait_for_peers(1)).await.unwrap().unwrap();
        }
        for p in &publishers {
            timeout(T, p.wait_for_peers(1)).await.unwrap().unwrap();
        }
        // The subscriptions travel up through the forwarder: publish until both subscribers
        // have heard from both publishers, then check that nothing else came.
        let mut got: [Vec<String>; 2] = [vec![], vec![]];
        timeout(WAIT, async {
            for round in 0..10_000u32 {
                for (n, p) in publishers.iter().enumerate() {
                    p.send([format!("c.{n}"), round.to_string()]).await.unwrap();
                    p.send([format!("a.{n}"), round.to_string()]).await.unwrap();
                    p.send([format!("b.{n}"), round.to_string()]).await.unwrap();
                }
                for (i, sub) in subs.iter_mut().enumerate() {
                    while let Ok(Some(msg)) = timeout(Duration::from_millis(5), sub.next()).await {
                        got[i].push(show(&msg.unwrap()));
                    }
                }
                let heard_both = |v: &Vec<String>, t: &str| {
                    (0..2).all(|n| v.iter().any(|m| m.starts_with(&format!("{t}.{n}|"))))
                };
                if heard_both(&got[0], "a") && heard_both(&got[1], "b") {
                    return;
                }
            }
            panic!("the subscribers never heard both publishers");
        })
        .await
        .unwrap();
        assert!(
            got[0].iter().all(|m| m.starts_with("a.")),
            "{ep}: {:?}",
            got[0]
        );
        assert!(
            got[1].iter().all(|m| m.starts_with("b.")),
            "{ep}: {:?}",
            got[1]
        );
        forwarder.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_xsub_resets_a_publisher_that_leaves_its_subscription_changes_unread() {
    use tokio::io::AsyncWriteExt;
    // A forwarder's XSub passes on what its subscribers send: a publisher that stops
    // reading must not make it queue subscription changes without bound.
    let xsub = XSub::with_options(Options::new().send_hwm(1));
    let ep = xsub.bind("tcp://127.0.0.1:0").await.unwrap();
    let mut monitor = xsub.monitor();
    // A ZMTP PUB that says READY and then never reads.
    let mut greeting = vec![0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0x7F, 3, 1];
    greeting.extend_from_slice(b"NULL");
    greeting.resize(64, 0);
    let mut ready = vec![5];
    ready.extend_from_slice(b"READY");
    ready.push(11);
    ready.extend_from_slice(b"Socket-Type");
    ready.extend_from_slice(&3u32.to_be_bytes());
    ready.extend_from_slice(b"PUB");
    greeting.extend_from_slice(&[0x04, ready.len() as u8]);
    greeting.extend_from_slice(&ready);
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", common::tcp_port(&ep)))
        .await
        .unwrap();
    raw.write_all(&greeting).await.unwrap();
    timeout(T, xsub.wait_for_peers(1)).await.unwrap().unwrap();
    // Churn a 4 KiB prefix (a downstream subscriber could): each change goes to the
    // publisher, which reads nothing, until its link is reset.
    let prefix = vec![b'p'; 4096];
    let reason = timeout(WAIT, async {
        for _ in 0..1_000_000 {
            xsub.subscribe(&prefix);
            xsub.unsubscribe(&prefix);
            tokio::task::yield_now().await;
            for event in common::events_now(&mut monitor) {
                if let zocket::monitor::Event::Disconnected { reason, .. } = event {
                    return reason;
                }
            }
        }
        panic!("the publisher that reads nothing was never reset");
    })
    .await
    .unwrap();
    assert!(reason.contains("subscription changes unread"), "{reason}");
    assert_eq!(xsub.peers(), 0);
    drop(raw);
}

// ----- libzmq through pyzmq -----

/// The libzmq peer of these tests (`tests/interop/xpubsub.py`).
fn libzmq_peer(args: &[&str]) -> PythonPeer {
    PythonPeer::script("xpubsub.py", args, T)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_libzmq_sub_subscribing_to_a_zocket_xpub_is_seen_as_x01_topic() {
    if !have_pyzmq() {
        return;
    }
    let mut xpub = XPub::bind("tcp://127.0.0.1:0").await.unwrap();
    let ep = xpub.endpoints()[0].to_string();
    let mut sub = libzmq_peer(&["sub-subscriber", &ep, "topic"]);
    assert_eq!(sub.line().await, "ready");
    let msg = timeout(T, xpub.recv()).await.unwrap().unwrap();
    assert_eq!(msg.len(), 1);
    assert_eq!(msg.frames()[0], &b"\x01topic"[..]);
    sub.tell("unsubscribe").await;
    assert_eq!(sub.line().await, "unsubscribed");
    assert_eq!(next(&mut xpub).await, "-topic");
    sub.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_libzmq_xsub_subscribes_and_sends_upstream_to_a_zocket_xpub() {
    if !have_pyzmq() {
        return;
    }
    let mut xpub = XPub::bind("tcp://127.0.0.1:0").await.unwrap();
    let ep = xpub.endpoints()[0].to_string();
    let mut xsub = libzmq_peer(&["xsub-peer", &ep, "a."]);
    assert_eq!(xsub.line().await, "ready");
    assert_eq!(next(&mut xpub).await, "+a.");
    assert_eq!(next(&mut xpub).await, "hello|up");
    for i in 0..3 {
        xpub.send(["b.no", "x"]).await.unwrap();
        xpub.send(["a.yes".to_owned(), i.to_string()])
            .await
            .unwrap();
    }
    for i in 0..3 {
        assert_eq!(xsub.line().await, format!("got a.yes|{i}"));
    }
    xsub.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zocket_xsub_subscribes_and_sends_upstream_to_a_libzmq_xpub() {
    if !have_pyzmq() {
        return;
    }
    let mut xpub = libzmq_peer(&["xpub-peer", "a.topic"]);
    let ready = xpub.line().await;
    let ep = ready.strip_prefix("ready ").expect("ready line").to_owned();
    let mut xsub = XSub::with_options(Options::new().reconnect_interval(Duration::from_millis(20)));
    xsub.connect(&ep).unwrap();
    xsub.send(b"\x01a.").await.unwrap();
    timeout(T, xsub.wait_for_peers(1)).await.unwrap().unwrap();
    xsub.send(["hi", "from zocket"]).await.unwrap();
    assert_eq!(xpub.line().await, "got \\x01a.");
    assert_eq!(xpub.line().await, "got hi|from zocket");
    for _ in 0..3 {
        let msg = timeout(T, xsub.recv()).await.unwrap().unwrap();
        assert_eq!(msg.frames()[0], "a.topic", "{}", show(&msg));
    }
    xpub.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_libzmq_forwarder_carries_a_zocket_pub_to_a_zocket_sub() {
    if !have_pyzmq() {
        return;
    }
    let mut forwarder = libzmq_peer(&["forwarder"]);
    let ready = forwarder.line().await;
    let parts: Vec<&str> = ready.split(' ').collect();
    let (up, down) = (parts[1].to_owned(), parts[2].to_owned());
    let publisher = Pub::connect(&up).await.unwrap();
    let mut sub = Sub::connect(&down).await.unwrap();
    sub.subscribe("a.");
    timeout(T, sub.wait_for_peers(1)).await.unwrap().unwrap();
    timeout(T, publisher.wait_for_peers(1))
        .await
        .unwrap()
        .unwrap();
    let mut got = Vec::new();
    timeout(WAIT, async {
        for i in 0..10_000u32 {
            publisher
                .send(["b.x".to_owned(), i.to_string()])
                .await
                .unwrap();
            publisher
                .send(["a.x".to_owned(), i.to_string()])
                .await
                .unwrap();
            while let Ok(Some(msg)) = timeout(Duration::from_millis(10), sub.next()).await {
                got.push(show(&msg.unwrap()));
            }
            if got.len() >= 3 {
                return;
            }
        }
    })
    .await
    .unwrap();
    assert!(got.iter().all(|m| m.starts_with("a.x|")), "{got:?}");
    forwarder.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zocket_forwarder_carries_a_libzmq_pub_to_a_libzmq_sub() {
    if !have_pyzmq() {
        return;
    }
    let mut xsub = XSub::bind("tcp://127.0.0.1:0").await.unwrap();
    let up = xsub.endpoints()[0].to_string();
    let mut xpub = XPub::bind("tcp://127.0.0.1:0").await.unwrap();
    let down = xpub.endpoints()[0].to_string();
    let forwarder = tokio::spawn(async move { zocket::forward(&mut xsub, &mut xpub).await });
    let mut sub = libzmq_peer(&["sub", &down, "a.", "5"]);
    assert_eq!(sub.line().await, "ready");
    let mut publisher = libzmq_peer(&["pub", &up, "a.topic"]);
    assert_eq!(publisher.line().await, "ready");
    for _ in 0..5 {
        let line = sub.line().await;
        assert!(line.starts_with("got a.topic|"), "{line}");
    }
    sub.finish().await;
    publisher.finish().await;
    forwarder.abort();
}
