//! What a socket tells about its peers and its traffic, over real loopback connections: the
//! CURVE key of each request's sender (zocket and libzmq clients, native wire and ZMTP), and
//! `Socket::stats` after known traffic, high-water-mark drops, disconnections and refused
//! handshakes.
//!
//! `.ci/run` installs pyzmq. Elsewhere, without it, the libzmq test says so and passes; with
//! `CI` set it fails instead.

mod common;

use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use common::{have_pyzmq_curve, until_event};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::time::timeout;
use zocket::curve::KeyPair;
use zocket::monitor::Event;
use zocket::stats::{Direction, Wire};
use zocket::{Dealer, Message, Options, Pub, Pull, Push, Rep, Req, Router, Sub};

const T: Duration = Duration::from_secs(20);

/// Options that redial fast.
fn fast() -> Options {
    Options::new()
        .reconnect_interval(Duration::from_millis(20))
        .reconnect_interval_max(Duration::from_millis(200))
        .handshake_timeout(Duration::from_secs(10))
}

/// Options that dial once within a test's time (the refusal tests count attempts).
fn once() -> Options {
    Options::new()
        .reconnect_interval(Duration::from_secs(600))
        .reconnect_interval_max(Duration::from_secs(600))
        .handshake_timeout(Duration::from_secs(10))
}

fn wire(native: bool) -> Wire {
    if native {
        Wire::Native
    } else {
        Wire::Zmtp
    }
}

fn first_text(msg: &Message) -> String {
    String::from_utf8_lossy(&msg.frames()[0]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_curve_rep_sees_the_key_of_each_requests_client_over_the_native_wire_and_zmtp() {
    for native in [true, false] {
        let (server, alice, bob) = (
            KeyPair::generate(),
            KeyPair::generate(),
            KeyPair::generate(),
        );
        let mut rep = Rep::with_options(
            fast()
                .native(native)
                .curve_server(server.secret().clone())
                .curve_allow([*alice.public(), *bob.public()]),
        );
        let ep = rep.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
        // Answers each request with the key it came with, and keeps what else it saw.
        let served = tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..4 {
                let request = rep.recv().await.unwrap();
                let key = request.peer_key().expect("a CURVE request has a key");
                assert_eq!(request.peer().curve_key(), Some(key));
                seen.push((
                    request.peer().wire(),
                    request.peer().direction(),
                    request.peer().socket_type(),
                ));
                request.reply(key.to_string()).await.unwrap();
            }
            seen
        });
        let mut clients = Vec::new();
        for keys in [alice.clone(), bob.clone()] {
            let req = Req::with_options(
                fast()
                    .native(native)
                    .curve_client(*server.public(), keys.clone()),
            );
            req.connect(&ep).unwrap();
            clients.push((req, *keys.public()));
        }
        // Interleaved: each request is told apart, not each connection's first.
        for _ in 0..2 {
            for (req, key) in &mut clients {
                let reply = timeout(T, req.request("whoami")).await.unwrap().unwrap();
                assert_eq!(first_text(&reply), key.to_string(), "native: {native}");
            }
        }
        let seen = timeout(T, served).await.unwrap().unwrap();
        for (w, direction, ty) in seen {
            assert_eq!(w, wire(native));
            assert_eq!(direction, Direction::Accepted);
            assert_eq!(ty, Some(zocket::SocketType::Req));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_curve_router_sees_the_key_and_routing_id_of_each_message_over_the_native_wire_and_zmtp()
{
    for native in [true, false] {
        let (server, alice, bob) = (
            KeyPair::generate(),
            KeyPair::generate(),
            KeyPair::generate(),
        );
        let mut router = Router::with_options(
            fast()
                .native(native)
                .curve_server(server.secret().clone())
                .curve_allow([*alice.public(), *bob.public()]),
        );
        let ep = router.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
        let mut dealers = Vec::new();
        for (name, keys) in [("alice", alice.clone()), ("bob", bob.clone())] {
            let mut dealer = Dealer::with_options(
                fast()
                    .native(native)
                    .identity(name)
                    .curve_client(*server.public(), keys.clone()),
            );
            dealer.connect(&ep).unwrap();
            dealer.send(name).await.unwrap();
            dealers.push((dealer, name, *keys.public()));
        }
        let mut keys_by_id = std::collections::HashMap::new();
        for _ in 0..2 {
            let (from, msg) = timeout(T, router.recv_with_peer()).await.unwrap().unwrap();
            let id = from
                .routing_id()
                .expect("a router peer has a routing id")
                .clone();
            assert_eq!(id, msg.frames()[0], "the routing id the dealer asked for");
            assert_eq!(from.wire(), wire(native));
            assert_eq!(from.socket_type(), Some(zocket::SocketType::Dealer));
            let key = from.curve_key().expect("a CURVE peer has a key");
            // The same peer, looked up by its routing id.
            assert_eq!(router.peer(&id).unwrap().curve_key(), Some(key));
            router.send(&id, key.to_string()).await.unwrap();
            keys_by_id.insert(id, key);
        }
        for (dealer, name, key) in &mut dealers {
            assert_eq!(keys_by_id[&Bytes::from(name.to_owned())], *key);
            // The dealer sees the server's key on its side, on a link it made.
            let (from, reply) = timeout(T, dealer.recv_with_peer()).await.unwrap().unwrap();
            assert_eq!(first_text(&reply), key.to_string());
            assert_eq!(from.curve_key(), Some(*server.public()));
            assert_eq!(from.direction(), Direction::Connected);
            assert_eq!(from.addr(), ep);
        }
        assert!(router.peer("nobody").is_none());
    }
}

/// Two libzmq CURVE clients with their own keys, one after the other, of a zocket server of
/// `kind` (REQ clients of a Rep, DEALER clients of a Router): each prints `ok` when the reply
/// names its own public key.
const PYZMQ_CLIENTS: &str = r#"
import sys, zmq
ctx = zmq.Context()
kind = zmq.REQ if sys.argv[3] == "req" else zmq.DEALER
for i in range(2):
    public, secret = zmq.curve_keypair()
    s = ctx.socket(kind)
    s.curve_serverkey = sys.argv[2].encode()
    s.curve_publickey = public
    s.curve_secretkey = secret
    s.rcvtimeo = 15000
    s.linger = 0
    s.connect(sys.argv[1])
    s.send(b"whoami")
    reply = s.recv()
    print("ok" if reply == public else "wrong: " + reply.decode() + " for " + public.decode(), flush=True)
    s.close()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zocket_rep_and_router_see_the_keys_of_two_pyzmq_curve_clients() {
    if !have_pyzmq_curve() {
        return;
    }
    for kind in ["req", "dealer"] {
        let server = KeyPair::generate();
        let options = fast().curve_server(server.secret().clone());
        let (ep, served) = if kind == "req" {
            let mut rep = Rep::with_options(options);
            let ep = rep.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
            let served = tokio::spawn(async move {
                for _ in 0..2 {
                    let request = rep.recv().await.unwrap();
                    assert_eq!(request.peer().wire(), Wire::Zmtp);
                    let key = request.peer_key().unwrap();
                    request.reply(key.to_string()).await.unwrap();
                }
            });
            (ep, served)
        } else {
            let mut router = Router::with_options(options);
            let ep = router.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
            let served = tokio::spawn(async move {
                for _ in 0..2 {
                    let (from, _) = router.recv_with_peer().await.unwrap();
                    let id = from.routing_id().unwrap().clone();
                    let key = from.curve_key().unwrap();
                    router.send(id, key.to_string()).await.unwrap();
                }
            });
            (ep, served)
        };
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(PYZMQ_CLIENTS)
            .args([&ep, &server.public().to_string(), kind])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        for _ in 0..2 {
            let line = timeout(T, lines.next_line())
                .await
                .expect("the libzmq client said nothing in time")
                .unwrap()
                .expect("the libzmq client exited early");
            assert_eq!(line, "ok", "{kind}");
        }
        timeout(T, served).await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_messages_bytes_and_links_after_known_traffic_and_a_disconnection() {
    let file = std::env::temp_dir().join(format!("zocket-stats-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&file);
    for (address, native) in [
        ("tcp://127.0.0.1:0".to_owned(), true),
        ("tcp://127.0.0.1:0".to_owned(), false),
        (format!("ipc://{}", file.display()), true),
    ] {
        let what = format!("{address} native {native}");
        let mut pull = Pull::with_options(fast().native(native));
        let mut pull_events = pull.monitor();
        let ep = pull.bind(&address).await.unwrap().to_string();
        let mut push = Push::with_options(fast().native(native));
        push.connect(&ep).unwrap();
        timeout(T, push.wait_for_peers(1)).await.unwrap().unwrap();
        // 10 messages of 100 bytes, 5 of two frames (3 + 4 bytes), 1 of one empty frame.
        for _ in 0..10 {
            push.send(vec![7u8; 100]).await.unwrap();
        }
        for _ in 0..5 {
            push.send(["abc", "defg"]).await.unwrap();
        }
        push.send(Bytes::new()).await.unwrap();
        for _ in 0..16 {
            timeout(T, pull.recv()).await.unwrap().unwrap();
        }
        let sent = push.stats();
        assert_eq!(sent.socket_type, zocket::SocketType::Push);
        assert_eq!(sent.traffic.messages_sent, 16, "{what}");
        assert_eq!(sent.traffic.bytes_sent, 1035, "{what}");
        assert_eq!(sent.traffic.messages_received, 0, "{what}");
        assert_eq!(sent.traffic.dropped, 0, "{what}");
        let links = sent.connections;
        assert_eq!(
            (
                links.accepted,
                links.connected,
                links.disconnected,
                links.handshakes_failed
            ),
            (0, 1, 0, 0),
            "{what}"
        );
        assert_eq!(sent.peers.len(), 1, "{what}");
        let peer = &sent.peers[0];
        assert!(peer.ready);
        assert_eq!(peer.traffic, sent.traffic);
        assert_eq!(peer.info.direction(), Direction::Connected);
        assert_eq!(peer.info.wire(), wire(native));
        assert_eq!(peer.info.addr(), ep);
        assert_eq!(peer.info.socket_type(), Some(zocket::SocketType::Pull));
        assert_eq!(peer.info.curve_key(), None);

        let got = pull.stats();
        assert_eq!(got.traffic.messages_received, 16, "{what}");
        assert_eq!(got.traffic.bytes_received, 1035, "{what}");
        assert_eq!(got.traffic.messages_sent, 0, "{what}");
        assert_eq!(got.connections.accepted, 1, "{what}");
        assert_eq!(got.connections.connected, 0, "{what}");
        assert_eq!(got.peers[0].info.direction(), Direction::Accepted);
        if address.starts_with("tcp") {
            assert!(got.peers[0].info.addr().starts_with("127.0.0.1:"), "{what}");
        }
        assert!(
            got.to_string().contains("received 16 msgs / 1035 B"),
            "{got}"
        );

        // The pusher goes: the puller counts a disconnection and keeps the totals.
        push.close().await;
        until_event(&mut pull_events, |e| {
            matches!(e, Event::Disconnected { .. })
        })
        .await;
        let after = pull.stats();
        assert_eq!(after.connections.disconnected, 1, "{what}");
        assert!(after.peers.is_empty(), "{what}");
        assert_eq!(after.traffic.messages_received, 16, "{what}");
        assert_eq!(after.traffic.bytes_received, 1035, "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pub_counts_what_it_drops_for_a_subscriber_that_does_not_read() {
    let n = 2000u64;
    let publisher = Pub::with_options(fast().send_hwm(8));
    let ep = publisher
        .bind("tcp://127.0.0.1:0")
        .await
        .unwrap()
        .to_string();
    // Never reads, with a small window: it holds back the publisher's stream soon.
    let slow = Sub::with_options(fast().stream_window(16 * 1024).identity("slow"));
    slow.subscribe("");
    slow.connect(&ep).unwrap();
    timeout(T, slow.wait_for_peers(1)).await.unwrap().unwrap();
    let mut fast_sub = Sub::with_options(fast().identity("fast"));
    fast_sub.subscribe("");
    fast_sub.connect(&ep).unwrap();
    timeout(T, fast_sub.wait_for_peers(1))
        .await
        .unwrap()
        .unwrap();
    timeout(T, publisher.wait_for_peers(2))
        .await
        .unwrap()
        .unwrap();

    let body = Bytes::from(vec![1u8; 1024]);
    for _ in 0..n {
        publisher.send(body.clone()).await.unwrap();
    }
    let stats = publisher.stats();
    let peer = |id: &str| {
        stats
            .peers
            .iter()
            .find(|p| p.info.routing_id().is_some_and(|r| r == id))
            .unwrap_or_else(|| panic!("no peer {id} in {stats}"))
            .traffic
    };
    let (slow_peer, fast_peer) = (peer("slow"), peer("fast"));
    // Every message either queued for a subscriber or dropped for it, none unaccounted.
    for t in [slow_peer, fast_peer] {
        assert_eq!(t.messages_sent + t.dropped, n, "{stats}");
        assert_eq!(t.bytes_sent, t.messages_sent * 1024, "{stats}");
        assert!(t.queued <= 8, "{stats}");
    }
    assert!(
        slow_peer.dropped > 0,
        "the slow subscriber's drops: {stats}"
    );
    assert_eq!(stats.traffic.dropped, slow_peer.dropped + fast_peer.dropped);
    assert_eq!(
        stats.traffic.messages_sent,
        slow_peer.messages_sent + fast_peer.messages_sent
    );
    // What was queued for the reading subscriber reaches it, all of it.
    for _ in 0..fast_peer.messages_sent {
        timeout(T, fast_sub.recv()).await.unwrap().unwrap();
    }
    let received = fast_sub.stats().traffic;
    assert_eq!(received.messages_received, fast_peer.messages_sent);
    assert_eq!(received.bytes_received, fast_peer.bytes_sent);
    drop(slow);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_counts_what_it_drops_for_a_peer_that_does_not_read() {
    let mut router = Router::with_options(fast().send_hwm(2));
    let ep = router.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let dealer = Dealer::with_options(fast().stream_window(16 * 1024).identity("sleepy"));
    dealer.connect(&ep).unwrap();
    timeout(T, router.wait_for_peers(1)).await.unwrap().unwrap();
    let padding = Bytes::from(vec![0u8; 32 * 1024]);
    for _ in 0..200 {
        router.send("sleepy", padding.clone()).await.unwrap();
    }
    let stats = router.stats();
    let t = stats.peers[0].traffic;
    assert!(t.dropped > 100, "{stats}");
    assert_eq!(t.messages_sent + t.dropped, 200, "{stats}");
    assert_eq!(stats.traffic.dropped, t.dropped);
    drop(dealer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_curve_handshake_is_counted_once_on_each_side_over_the_native_wire_and_zmtp() {
    for native in [true, false] {
        let (server, allowed, unlisted) = (
            KeyPair::generate(),
            KeyPair::generate(),
            KeyPair::generate(),
        );
        let rep = Rep::with_options(
            fast()
                .native(native)
                .curve_server(server.secret().clone())
                .curve_allow([*allowed.public()]),
        );
        let mut rep_events = rep.monitor();
        let ep = rep.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
        let outsider = Req::with_options(
            once()
                .native(native)
                .curve_client(*server.public(), unlisted),
        );
        let mut outsider_events = outsider.monitor();
        outsider.connect(&ep).unwrap();
        until_event(&mut outsider_events, |e| {
            matches!(e, Event::HandshakeFailed { .. })
        })
        .await;
        until_event(&mut rep_events, |e| {
            matches!(e, Event::HandshakeFailed { .. })
        })
        .await;
        let links = rep.stats().connections;
        assert_eq!(
            (links.accepted, links.disconnected, links.handshakes_failed),
            (0, 0, 1),
            "native {native}"
        );
        let links = outsider.stats().connections;
        assert_eq!(
            (links.connected, links.handshakes_failed),
            (0, 1),
            "native {native}"
        );
        assert!(outsider.stats().peers.is_empty());

        // A listed client is served and counted as accepted.
        let mut good = Req::with_options(
            fast()
                .native(native)
                .curve_client(*server.public(), allowed.clone()),
        );
        good.connect(&ep).unwrap();
        let mut rep = rep;
        let serve = async {
            let request = rep.recv().await.unwrap();
            assert_eq!(request.peer_key(), Some(*allowed.public()));
            request.reply("hi").await.unwrap();
        };
        let (reply, ()) = timeout(T, async { tokio::join!(good.request("hello"), serve) })
            .await
            .unwrap();
        reply.unwrap();
        let links = rep.stats().connections;
        assert_eq!((links.accepted, links.handshakes_failed), (1, 1));
        assert_eq!(good.stats().connections.connected, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_refused_on_a_shared_listener_is_counted_once_and_a_link_at_the_socket_it_served(
) {
    let (server, allowed, unlisted) = (
        KeyPair::generate(),
        KeyPair::generate(),
        KeyPair::generate(),
    );
    let options = || {
        fast()
            .curve_server(server.secret().clone())
            .curve_allow([*allowed.public()])
    };
    // Two sockets at one address, paths /a and /b.
    let a = Rep::with_options(options());
    let a_ep = a.bind("tcp://127.0.0.1:0/a").await.unwrap().to_string();
    let base = a_ep.trim_end_matches("/a").to_owned();
    let mut b = Rep::with_options(options());
    b.bind(&format!("{base}/b")).await.unwrap();
    let (mut a_events, mut b_events) = (a.monitor(), b.monitor());

    // Refused before any path is known (the CURVE handshake of the native connection).
    let outsider = Req::with_options(once().curve_client(*server.public(), unlisted));
    outsider.connect(&format!("{base}/b")).unwrap();
    for events in [&mut a_events, &mut b_events] {
        until_event(events, |e| matches!(e, Event::HandshakeFailed { .. })).await;
    }
    let (sa, sb) = (a.stats().connections, b.stats().connections);
    assert_eq!(
        sa.handshakes_failed + sb.handshakes_failed,
        1,
        "{sa:?} {sb:?}"
    );
    assert_eq!(sa.handshakes_failed, 1, "counted at the first path");

    // A served client counts at the socket it reached.
    let mut good = Req::with_options(fast().curve_client(*server.public(), allowed.clone()));
    good.connect(&format!("{base}/b")).unwrap();
    let serve = async {
        let request = b.recv().await.unwrap();
        request.reply("hi").await.unwrap();
    };
    let (reply, ()) = timeout(T, async { tokio::join!(good.request("hello"), serve) })
        .await
        .unwrap();
    reply.unwrap();
    assert_eq!(b.stats().connections.accepted, 1);
    assert_eq!(a.stats().connections.accepted, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_of_incompatible_types_is_counted_as_a_failed_handshake_on_both_sides() {
    let publisher = Pub::with_options(fast());
    let ep = publisher
        .bind("tcp://127.0.0.1:0")
        .await
        .unwrap()
        .to_string();
    let mut events = publisher.monitor();
    let push = Push::with_options(once());
    let mut push_events = push.monitor();
    push.connect(&ep).unwrap();
    until_event(&mut push_events, |e| {
        matches!(e, Event::HandshakeFailed { .. })
    })
    .await;
    until_event(&mut events, |e| matches!(e, Event::HandshakeFailed { .. })).await;
    assert_eq!(push.stats().connections.handshakes_failed, 1);
    assert_eq!(publisher.stats().connections.handshakes_failed, 1);
    assert_eq!(publisher.stats().connections.accepted, 0);
    assert!(push.stats().peers.is_empty());
}
