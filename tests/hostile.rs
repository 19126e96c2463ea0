//! Hostile peers (issue 12): every peer is untrusted, and none can exhaust, stall or
//! impersonate its way past a socket.
//!
//! Each test is one attack, written as raw bytes on a real loopback TCP connection (the
//! encoders are at the bottom of this file), against a zocket socket that also serves an
//! honest peer. Each asserts, where it applies:
//! - **memory**: the process's heap (counted by `stats_alloc`, the global allocator here:
//!   allocated minus freed, sampled every millisecond during the attack, peak taken) grows
//!   by less than [`MEMORY_LIMIT`] (64 MiB). The attacker stops as soon as the limit is
//!   passed, so a failing test fails fast instead of eating the machine;
//! - **the attacker is cut off with a reason**: a ZMTP attacker sees an ERROR command or
//!   the end of the connection, a native attacker a RESET of its stream or a GOAWAY, and the
//!   socket's monitor reports `Disconnected`/`HandshakeFailed` with a reason;
//! - **an honest peer of the same socket is served throughout**, every answer within 5 s.
//!
//! Where the defence is not to cut the attacker off (a `Rep` drops replies to a client that
//! does not read them; what bounds a subscription flood is left to the publisher), the test
//! says so and checks the rest.
//!
//! | attack | wires | test |
//! |---|---|---|
//! | a. one message that never ends (empty MORE frames) | ZMTP, native | `a_*_never_ends_*` |
//! | a'. one message over `max_message_size` | native | `a_native_message_over_the_size_limit_*` |
//! | b. two READYs of 200,000 properties (2.2 MB each) | ZMTP | `huge_readys_*` |
//! | c. 20,000 requests, replies never read | native, ZMTP | `a_*_never_reads_*` |
//! | d. a second PAIR peer | native, ZMTP | `a_second_pair_peer_*` |
//! | e. 1-byte chunks between 4 KiB unknown frames | native | `one_byte_chunks_*` |
//! | f. millions of distinct subscriptions | ZMTP, native | `a_*_flood_cannot_exhaust_*` |
//! | g. 4,000 silent connections from another process | TCP | `a_flood_of_silent_*` |
//! | h. 200 garbage greetings in a row (a log flood) | TCP | `a_peer_refused_in_a_loop_*` |
//!
//! The tests take one lock (memory and descriptors are counted for the whole process) and
//! each runs on its own runtime of 2 workers, watched by a plain thread: a test whose
//! runtime is stalled (a worker stuck in a long computation) fails after [`TEST_LIMIT`]
//! instead of hanging.
//!
//! Run them with `cargo test --test hostile`; `RUST_LOG=zocket=debug` shows the reasons the
//! library logs.

mod common;

use std::alloc::System;
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use zocket::monitor::{Event, Monitor};
use zocket::{Dealer, Options, Pair, Pub, Pull, Push, Rep, Req, Sub};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// How much more heap than before an attack may make the process hold.
const MEMORY_LIMIT: i64 = 64 << 20;
/// How long an honest peer may wait for an answer while an attack runs.
const ANSWER: Duration = Duration::from_secs(5);
/// How long an attacker may be left connected once it has done its harm.
const CUT_OFF: Duration = Duration::from_secs(5);
/// The longest one test may take before it counts as stalled.
const TEST_LIMIT: Duration = Duration::from_secs(45);

// ---------------------------------------------------------------------------------------
// a. one message that never ends
// ---------------------------------------------------------------------------------------

/// Attack: a ZMTP DEALER says READY to a bound `Rep`, then sends 20 MB of `01 00` (empty
/// frames, each with MORE): one message that never ends.
/// Defence: the message is refused at `max_message_frames` (65,536) and the connection is
/// closed with an ERROR command and a reason; the memory it held is bounded; an honest `Req`
/// (plain ZMTP too) on the same `Rep` gets its answers throughout.
#[test]
fn a_zmtp_message_that_never_ends_is_cut_off_while_an_honest_req_is_served() {
    attack(async {
        let (rep, addr, mut events) = echo_rep(Options::new()).await;
        let honest = HonestReq::start(&rep, false).await;
        let watch = MemoryWatch::start();

        let mut attacker = ZmtpPeer::connect(&addr, b"DEALER").await;
        attacker.expect_ready().await;
        let chunk = [1u8, 0].repeat(32 * 1024); // 32,768 empty MORE frames
        let mut sent = 0usize;
        while sent < 20_000_000 && !watch.over_limit() && !attacker.has_ended() {
            if !attacker.send(&chunk).await {
                break;
            }
            sent += chunk.len();
        }
        println!("sent {sent} bytes of empty MORE frames");
        watch.assert_bounded("an endless ZMTP message");
        let cut = attacker.closed_within(CUT_OFF).await;
        assert!(
            cut.is_some(),
            "the attacker is still connected after {sent} bytes of one endless message"
        );
        println!("attacker cut off: {cut:?}");
        expect_peer_removed(&mut events).await;
        honest.finish().await;
    });
}

/// Attack: on the native wire, a stream sends one message of endless empty DATA chunks
/// (MORE), within the credit the receiver grants, up to 2 million frames.
/// Defence: the message is refused at `max_message_frames`: only that stream is RESET, the
/// connection goes on (a new stream on it is served), memory is bounded, and an honest
/// `Req` is served throughout.
#[test]
fn a_native_message_that_never_ends_resets_only_its_stream() {
    attack(async {
        // A larger window than the frame limit needs, so that the limit, not credit, ends
        // the message however the receiver returns credit.
        let (rep, addr, mut events) = echo_rep(Options::new().stream_window(4 << 20)).await;
        let honest = HonestReq::start(&rep, true).await;
        let watch = MemoryWatch::start();

        let mut attacker = NativePeer::connect(&addr).await;
        attacker.open(1, DEALER, "").await;
        const BATCH: usize = 4096;
        let batch: Vec<u8> = (0..BATCH)
            .flat_map(|_| native_frame(DATA, MORE, 1, &[]))
            .collect();
        let mut frames = 0usize;
        while frames < 2_000_000 && !watch.over_limit() {
            if !attacker.wait_credit(1, (BATCH * DATA_COST) as i64).await {
                break;
            }
            if !attacker.send_data(1, &batch, BATCH * DATA_COST).await {
                break;
            }
            frames += BATCH;
        }
        println!("sent {frames} empty MORE chunks");
        watch.assert_bounded("an endless native message");
        let outcome = attacker.stream_outcome_within(1, CUT_OFF).await;
        println!("attacking stream: {outcome:?}");
        assert!(
            matches!(outcome, Some(Outcome::Reset(_))),
            "expected a RESET of the attacking stream only, got {outcome:?} after {frames} frames"
        );
        expect_peer_removed(&mut events).await;
        attacker.expect_served_on_new_stream(3).await;
        honest.finish().await;
    });
}

/// Attack: on the native wire, a stream sends one 5,000-byte message to a `Rep` whose
/// `max_message_size` is 1,000 (a zocket sender would refuse it itself: the limit is in the
/// receiver's HELLO; this peer ignores it).
/// Defence: only that stream is RESET, the reason (both numbers) reaches the monitor, the
/// connection goes on (a new stream on it is served), and an honest `Req` is served
/// throughout.
#[test]
fn a_native_message_over_the_size_limit_resets_only_its_stream() {
    attack(async {
        let (rep, addr, mut events) = echo_rep(Options::new().max_message_size(1000)).await;
        let honest = HonestReq::start(&rep, true).await;
        let mut attacker = NativePeer::connect(&addr).await;
        attacker.open(1, DEALER, "").await;
        let body = [0u8; 5000];
        let cost = body.len() + DATA_COST;
        assert!(attacker.wait_credit(1, cost as i64).await, "no credit");
        assert!(
            attacker
                .send_data(1, &native_frame(DATA, 0, 1, &body), cost)
                .await
        );
        let outcome = attacker.stream_outcome_within(1, CUT_OFF).await;
        assert!(
            matches!(outcome, Some(Outcome::Reset(_))),
            "expected a RESET of the attacking stream only, got {outcome:?}"
        );
        let gone = until_event_within(&mut events, CUT_OFF, |e| {
            matches!(e, Event::Disconnected { .. })
        })
        .await;
        let Some(Event::Disconnected { reason, .. }) = gone else {
            panic!("the monitor did not report the attacker's removal: {gone:?}")
        };
        assert!(
            reason.contains("5000") && reason.contains("exceeds the limit of 1000 bytes"),
            "the monitor says why: {reason}"
        );
        attacker.expect_served_on_new_stream(3).await;
        honest.finish().await;
    });
}

// ---------------------------------------------------------------------------------------
// b. huge handshakes
// ---------------------------------------------------------------------------------------

/// Attack: two ZMTP connections each send a READY of 200,000 distinct properties (2.2 MB),
/// enough to keep a parser that is quadratic in the properties busy for minutes.
/// Defence: handshake commands are limited to a few KiB before READY, so both attackers
/// are closed at once (ERROR or end of connection) and reported on the monitor; a good
/// request on a fresh connection, native or plain ZMTP, is answered within 5 s; memory is
/// bounded.
///
/// Runs in a process of its own: a runtime stalled by this attack cannot be stopped, only
/// killed with its process (which then frees the CPU for the other tests).
#[test]
fn huge_readys_are_refused_and_a_fresh_connection_is_answered_within_five_seconds() {
    const NAME: &str =
        "huge_readys_are_refused_and_a_fresh_connection_is_answered_within_five_seconds";
    in_own_process(NAME, Duration::from_secs(20), async {
        let (rep, addr, mut events) = echo_rep(Options::new()).await;
        // The honest peers exist before the attack but connect only after it started.
        let watch = MemoryWatch::start();
        let mut properties = property(b"Socket-Type", b"DEALER");
        for i in 0..200_000u32 {
            properties.extend_from_slice(&property(format!("{i:06}").as_bytes(), b""));
        }
        let ready = zmtp_command(b"READY", &properties);
        assert!(ready.len() > 2_200_000);
        let mut attackers = vec![];
        for _ in 0..2 {
            let mut raw = ZmtpPeer::connect_raw(&addr).await;
            let ready = ready.clone();
            // The write may fail once we are refused: that is the point.
            let _ = timeout(CUT_OFF, raw.send(&ready)).await;
            attackers.push(raw);
        }
        let attacked = Instant::now();
        for native in [true, false] {
            let mut req = Req::with_options(Options::new().native(native));
            req.connect(&rep.ep.clone()).unwrap();
            let reply = timeout(ANSWER, req.request("good"))
                .await
                .unwrap_or_else(|_| {
                    panic!("a good request (native: {native}) was not answered within 5 s")
                })
                .unwrap();
            assert_eq!(common::text(&reply), "good");
        }
        let took = attacked.elapsed();
        assert!(took < ANSWER * 2, "good requests took {took:?}");
        for attacker in &mut attackers {
            let cut = attacker.closed_within(CUT_OFF).await;
            assert!(
                cut.is_some(),
                "an attacker with a 2.2 MB READY is still connected"
            );
            println!("attacker cut off: {cut:?}");
            expect_peer_removed(&mut events).await;
        }
        watch.assert_bounded("two 2.2 MB READY commands");
        drop(rep);
    });
}

// ---------------------------------------------------------------------------------------
// c. a client that never reads its replies
// ---------------------------------------------------------------------------------------

/// Attack: a native zocket `Dealer` sends 20,000 requests of 1 KiB to an echoing `Rep`
/// and never calls `recv`, so the `Rep`'s replies to it pile up.
/// Defence: a `Rep` never waits on one peer: a reply to a peer whose queue is full is
/// dropped (and counted), so another client's `Req` gets 10 of 10 answers within 5 s;
/// memory is bounded.
#[test]
fn a_native_dealer_that_never_reads_its_replies_does_not_stall_the_rep() {
    attack(async {
        let (rep, _addr, _events) = echo_rep(Options::new()).await;
        let ep = rep.ep.clone();
        let watch = MemoryWatch::start();
        let mut dealer = Dealer::connect(&ep).await.unwrap();
        timeout(ANSWER, dealer.wait_for_peers(1))
            .await
            .unwrap()
            .unwrap();
        let sent = Arc::new(AtomicUsize::new(0));
        let counter = sent.clone();
        let flood = tokio::spawn(async move {
            let body = bytes::Bytes::from(vec![b'x'; 1024]);
            for _ in 0..20_000 {
                if dealer
                    .send([bytes::Bytes::new(), body.clone()])
                    .await
                    .is_err()
                {
                    break;
                }
                counter.fetch_add(1, Ordering::Relaxed);
            }
            dealer // never read, kept alive until the test ends
        });
        // The honest client asks once the flood has done what it can.
        let flooded = all_sent_or_stalled(&sent, 20_000).await;
        println!("the Dealer sent {flooded} requests");
        ten_of_ten_answers(&ep, true).await;
        all_sent_within(&sent, 20_000, ANSWER).await;
        watch.assert_bounded("a Dealer that never reads");
        flood.abort();
    });
}

/// Attack: a plain ZMTP DEALER sends 20,000 requests of 1 KiB to an echoing `Rep` and
/// never reads a byte, so the replies fill the kernel's buffers, then the `Rep`'s queue.
/// Defence: the `Rep` drops replies to that peer instead of waiting, so another client's
/// `Req` gets 10 of 10 answers within 5 s; memory is bounded.
#[test]
fn a_zmtp_dealer_that_never_reads_its_replies_does_not_stall_the_rep() {
    attack(async {
        let (rep, addr, _events) = echo_rep(Options::new()).await;
        let ep = rep.ep.clone();
        let watch = MemoryWatch::start();
        let mut raw = TcpStream::connect(&addr).await.unwrap();
        let mut hello = zmtp_greeting().to_vec();
        hello.extend_from_slice(&zmtp_ready(b"DEALER", &[]));
        raw.write_all(&hello).await.unwrap();
        let mut request = zmtp_frame(MORE, &[]);
        request.extend_from_slice(&zmtp_frame(0, &[b'x'; 1024]));
        let sent = Arc::new(AtomicUsize::new(0));
        let counter = sent.clone();
        let flood = tokio::spawn(async move {
            let batch = request.repeat(100);
            for _ in 0..200 {
                if raw.write_all(&batch).await.is_err() {
                    break;
                }
                counter.fetch_add(100, Ordering::Relaxed);
            }
            raw // never read
        });
        // The honest clients ask once the flood has done what it can.
        let flooded = all_sent_or_stalled(&sent, 20_000).await;
        println!("the ZMTP Dealer sent {flooded} requests");
        ten_of_ten_answers(&ep, true).await;
        ten_of_ten_answers(&ep, false).await;
        all_sent_within(&sent, 20_000, ANSWER).await;
        watch.assert_bounded("a ZMTP Dealer that never reads");
        flood.abort();
    });
}

// ---------------------------------------------------------------------------------------
// d. a second PAIR peer
// ---------------------------------------------------------------------------------------

/// Attack: while a zocket `Pair` is connected to a bound `Pair`, a second peer says READY
/// as a plain ZMTP PAIR (and another tries over the native wire).
/// Defence: a `Pair` has one peer on every transport: the second is refused (ERROR or the
/// end of its connection; a REJECT natively) and reported on the monitor, and the first
/// keeps exchanging messages both ways, all of them in order.
#[test]
fn a_second_pair_peer_is_refused_on_both_wires_while_the_first_keeps_working() {
    attack(async {
        let mut bound = Pair::bind("tcp://127.0.0.1:0").await.unwrap();
        let ep = bound.endpoints()[0].to_string();
        let addr = ep.trim_start_matches("tcp://").to_owned();
        let mut events = bound.monitor();
        let mut first = Pair::connect(&ep).await.unwrap();
        timeout(ANSWER, bound.wait_for_peers(1))
            .await
            .unwrap()
            .unwrap();

        let mut native = NativePeer::connect(&addr).await;
        native.open(1, PAIR, "").await;
        let outcome = native.stream_outcome_within(1, CUT_OFF).await;
        assert!(
            matches!(outcome, Some(Outcome::Rejected(_) | Outcome::Reset(_))),
            "a second native PAIR peer was not refused: {outcome:?}"
        );
        println!("second native PAIR: {outcome:?}");
        expect_peer_removed(&mut events).await;

        let mut second = ZmtpPeer::connect(&addr, b"PAIR").await;
        let cut = second.closed_within(CUT_OFF).await;
        assert!(cut.is_some(), "a second ZMTP PAIR peer was accepted");
        println!("second ZMTP PAIR: {cut:?}");
        expect_peer_removed(&mut events).await;

        for i in 0..10 {
            bound.send(format!("to first {i}")).await.unwrap();
            first.send(format!("to bound {i}")).await.unwrap();
        }
        for i in 0..10 {
            let got = timeout(ANSWER, first.recv()).await.unwrap().unwrap();
            assert_eq!(common::text(&got), format!("to first {i}"));
            let got = timeout(ANSWER, bound.recv()).await.unwrap().unwrap();
            assert_eq!(common::text(&got), format!("to bound {i}"));
        }
        assert_eq!(bound.peers(), 1);
    });
}

// ---------------------------------------------------------------------------------------
// e. tiny chunks that pin large buffers
// ---------------------------------------------------------------------------------------

/// Attack: on the native wire, one message of 1-byte DATA chunks (MORE), each followed by
/// a frame of an unknown type carrying 4 KiB (skipped by the receiver), up to 70,000 chunks
/// (288 MB on the wire). A 1-byte payload sliced out of the read buffer keeps the whole
/// buffer alive, so credit (17 bytes per chunk) would let it hold about all it sent.
/// Defence: payloads under 64 KiB are copied out of the read buffer and every frame is
/// charged 64 bytes, so memory stays bounded; the message is refused at
/// `max_message_frames` (RESET of that stream); an honest `Req` is served throughout.
#[test]
fn one_byte_chunks_between_unknown_frames_cannot_pin_read_buffers() {
    attack(async {
        let (rep, addr, mut events) = echo_rep(Options::new().stream_window(4 << 20)).await;
        let honest = HonestReq::start(&rep, true).await;
        let watch = MemoryWatch::start();

        let mut attacker = NativePeer::connect(&addr).await;
        attacker.open(1, DEALER, "").await;
        const BATCH: usize = 64;
        let filler = vec![0xAAu8; 4096];
        let batch: Vec<u8> = (0..BATCH)
            .flat_map(|_| {
                let mut pair = native_frame(DATA, MORE, 1, b"x");
                pair.extend_from_slice(&native_frame(UNKNOWN, 0, 0, &filler));
                pair
            })
            .collect();
        let cost = BATCH * (DATA_COST + 1);
        let mut chunks = 0usize;
        while chunks < 70_000 && !watch.over_limit() {
            if !attacker.wait_credit(1, cost as i64).await {
                break;
            }
            if !attacker.send_data(1, &batch, cost).await {
                break;
            }
            chunks += BATCH;
        }
        println!("sent {chunks} one-byte chunks with 4 KiB of unknown frames each");
        watch.assert_bounded("1-byte chunks between unknown frames");
        let outcome = attacker.stream_outcome_within(1, CUT_OFF).await;
        println!("attacking stream: {outcome:?}");
        assert!(
            outcome.is_some(),
            "the endless message of {chunks} chunks was never refused"
        );
        expect_peer_removed(&mut events).await;
        honest.finish().await;
    });
}

// ---------------------------------------------------------------------------------------
// f. subscription floods
// ---------------------------------------------------------------------------------------

/// Attack: a plain ZMTP SUB sends 2 million distinct SUBSCRIBE commands (8-byte prefixes,
/// 40 MB) to a zocket `Pub`.
/// Defence: what a subscriber can make a publisher hold is bounded
/// (`Options::max_subscription_bytes`): the subscriber is dropped once over it, with a
/// reason on the monitor; memory is bounded; the `Pub` still serves an honest `Sub`
/// throughout.
#[test]
fn a_zmtp_subscribe_flood_cannot_exhaust_a_publisher() {
    attack(async {
        let (publisher, addr, mut events, honest) = publisher_with_honest_sub().await;
        let watch = MemoryWatch::start();
        let mut attacker = ZmtpPeer::connect(&addr, b"SUB").await;
        const BATCH: u32 = 4096;
        let mut sent = 0u32;
        while sent < 2_000_000 && !watch.over_limit() && !attacker.has_ended() {
            let batch: Vec<u8> = (sent..sent + BATCH)
                .flat_map(|i| zmtp_command(b"SUBSCRIBE", &prefix(i)))
                .collect();
            match timeout(CUT_OFF, attacker.send(&batch)).await {
                Ok(true) => sent += BATCH,
                Ok(false) => break,
                Err(_) => {
                    println!("the publisher stopped reading the flood (backpressure)");
                    break;
                }
            }
        }
        println!("sent {sent} SUBSCRIBE commands");
        watch.assert_bounded("a ZMTP SUBSCRIBE flood");
        let cut = attacker.closed_within(CUT_OFF).await;
        assert!(
            cut.is_some(),
            "a subscriber that sent {sent} subscriptions is still connected"
        );
        println!("attacker cut off: {cut:?}");
        expect_peer_removed(&mut events).await;
        honest.finish().await;
        publisher.abort();
    });
}

/// Attack: a native SUB stream sends its (empty) snapshot, then 2 million single-frame
/// subscription messages `01` + an 8-byte prefix, within credit.
/// Defence: what the stream can make the `Pub` hold is bounded
/// (`Options::max_subscription_bytes`): the subscriber's stream is ended once over it, with
/// a reason on the monitor; memory is bounded; the `Pub` still serves an honest `Sub`
/// throughout.
#[test]
fn a_native_subscription_flood_cannot_exhaust_a_publisher() {
    attack(async {
        let (publisher, addr, mut events, honest) = publisher_with_honest_sub().await;
        let watch = MemoryWatch::start();
        let mut attacker = NativePeer::connect(&addr).await;
        attacker.open(1, SUB, "").await;
        assert!(
            attacker
                .send_data(1, &native_frame(DATA, 0, 1, &[2]), 17)
                .await
        );
        if let Err(outcome) = attacker.accepted(1).await {
            panic!("the publisher did not accept the subscriber: {outcome:?}");
        }
        const BATCH: u32 = 4096;
        let mut sent = 0u32;
        while sent < 2_000_000 && !watch.over_limit() {
            let cost = BATCH as usize * (DATA_COST + 9);
            if !attacker.wait_credit(1, cost as i64).await {
                break;
            }
            let batch: Vec<u8> = (sent..sent + BATCH)
                .flat_map(|i| {
                    let mut body = vec![1];
                    body.extend_from_slice(&prefix(i));
                    native_frame(DATA, 0, 1, &body)
                })
                .collect();
            if !attacker.send_data(1, &batch, cost).await {
                break;
            }
            sent += BATCH;
        }
        println!("sent {sent} subscription messages");
        watch.assert_bounded("a native subscription flood");
        let outcome = attacker.stream_outcome_within(1, CUT_OFF).await;
        assert!(
            outcome.is_some(),
            "a subscriber that sent {sent} subscriptions is still served"
        );
        println!("attacking stream: {outcome:?}");
        expect_peer_removed(&mut events).await;
        honest.finish().await;
        publisher.abort();
    });
}

// ---------------------------------------------------------------------------------------
// g. connection flood
// ---------------------------------------------------------------------------------------

/// How many silent connections the flood opens.
const FLOOD: usize = 4000;

/// Attack: another process opens 4,000 TCP connections to a bound `Pull` and says nothing
/// on any of them.
/// Defence: the listener bounds the connections it holds (`max_connections`) and the
/// greetings in progress (`max_handshakes`), so this process's descriptors grow by less
/// than half the flood; silent connections are dropped with a reason (`HandshakeFailed`);
/// a `Push` connected before the flood is served throughout, a fresh one after it; the
/// descriptors return to where they were.
#[test]
fn a_flood_of_silent_connections_cannot_exhaust_descriptors() {
    attack(async {
        let pull = Pull::with_options(Options::new().handshake_timeout(Duration::from_secs(2)));
        let ep = pull.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
        let mut pull = pull;
        let mut events = pull.monitor();
        let mut push = Push::connect(&ep).await.unwrap();
        timeout(ANSWER, push.wait_for_peers(1))
            .await
            .unwrap()
            .unwrap();
        push.send("before").await.unwrap();
        assert_eq!(
            common::text(&timeout(ANSWER, pull.recv()).await.unwrap().unwrap()),
            "before"
        );
        let before = common::open_fds();

        let mut flood = common::rerun_self("helper_process_floods_a_listener_when_asked")
            .env(
                FLOOD_ENV,
                format!("{} {FLOOD}", ep.trim_start_matches("tcp://")),
            )
            .spawn()
            .expect("the flood helper starts");
        let mut lines = BufReader::new(flood.stdout.take().unwrap()).lines();
        let opened = timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                // libtest may print `test <name> ... ` in front.
                if let Some((_, n)) = line.split_once("flood open ") {
                    return n.trim().parse::<usize>().unwrap();
                }
            }
            panic!("the flood helper ended without opening its connections");
        })
        .await
        .expect("the flood helper opened its connections in time");
        println!("the helper holds {opened} silent connections");

        // While the flood holds: the Push connected before it is served, and our
        // descriptors (sampled for a second, highest taken) stay bounded.
        let mut most = 0;
        for i in 0..10 {
            push.send(format!("during {i}")).await.unwrap();
            let got = timeout(ANSWER, pull.recv()).await.unwrap().unwrap();
            assert_eq!(common::text(&got), format!("during {i}"));
            most = most.max(common::open_fds());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let grew = most.saturating_sub(before);
        println!("descriptors: {before} before, {most} during the flood (+{grew})");
        assert!(
            grew < FLOOD / 2,
            "{opened} silent connections made this process hold {grew} more descriptors"
        );
        until_event_within(&mut events, Duration::from_secs(10), |e| {
            matches!(
                e,
                Event::HandshakeFailed { .. } | Event::Disconnected { .. }
            )
        })
        .await
        .expect("no silent connection was dropped with a reason");

        flood.start_kill().unwrap();
        let _ = flood.wait().await;
        let mut fresh = Push::connect(&ep).await.unwrap();
        timeout(Duration::from_secs(15), fresh.wait_for_peers(1))
            .await
            .expect("a fresh peer is served once the flood is gone")
            .unwrap();
        fresh.send("after").await.unwrap();
        assert_eq!(
            common::text(&timeout(ANSWER, pull.recv()).await.unwrap().unwrap()),
            "after"
        );
        // The descriptors come back (the fresh Push has a connection of its own: +2).
        let settled = timeout(Duration::from_secs(15), async {
            while common::open_fds() > before + 4 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(
            settled.is_ok(),
            "descriptors stayed at {} (before the flood: {before})",
            common::open_fds()
        );
    });
}

/// The environment variable that makes [`helper_process_floods_a_listener_when_asked`]
/// open connections: `host:port count`.
const FLOOD_ENV: &str = "ZOCKET_HOSTILE_FLOOD";

/// Not a test on its own: with [`FLOOD_ENV`] set, the process that
/// [`a_flood_of_silent_connections_cannot_exhaust_descriptors`] starts, which opens the
/// connections, prints how many, and holds them silently until it is killed (at most a
/// minute). Without the variable it returns at once.
#[test]
fn helper_process_floods_a_listener_when_asked() {
    let Ok(spec) = std::env::var(FLOOD_ENV) else {
        return;
    };
    let (addr, count) = spec.split_once(' ').expect("`host:port count`");
    let count: usize = count.parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let connects =
            (0..count).map(|_| timeout(Duration::from_secs(3), TcpStream::connect(addr)));
        let held: Vec<TcpStream> = futures::future::join_all(connects)
            .await
            .into_iter()
            .filter_map(|r| r.ok().and_then(Result::ok))
            .collect();
        println!("flood open {}", held.len());
        // Held (silent) until the parent kills us; the bound is for a parent that died.
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(held);
    });
}

// ---------------------------------------------------------------------------------------
// h. a peer refused in a loop
// ---------------------------------------------------------------------------------------

/// Attack: 200 connections in a row to a bound `Rep`, each greeting with 64 bytes of an
/// HTTP request instead of a ZMTP greeting, each closed by the server before the next.
/// Defence: every refusal is reported on the monitor and logged, but at `warn` at most once
/// a second per call site (the others at `debug`, counted in the next warning): a peer that
/// reconnects in a loop does not decide how much we write to the log. An honest `Req` is
/// answered afterwards. Runs in its own process, whose global `tracing` subscriber counts
/// the refusals logged.
#[test]
fn a_peer_refused_in_a_loop_cannot_flood_the_log() {
    const NAME: &str = "a_peer_refused_in_a_loop_cannot_flood_the_log";
    const ROUNDS: u64 = 200;
    in_own_process(NAME, TEST_LIMIT, async {
        let logged = RefusalLog::install();
        let (rep, addr, mut events) = echo_rep(Options::default()).await;
        // As long as a greeting, so the server has all it needs to refuse it.
        let mut garbage = b"GET / HTTP/1.1\r\nHost: zocket\r\n\r\n".to_vec();
        garbage.resize(64, b' ');
        let started = Instant::now();
        for round in 0..ROUNDS {
            let mut conn = TcpStream::connect(&addr).await.unwrap();
            conn.write_all(&garbage).await.unwrap();
            let mut sink = [0u8; 256];
            let closed = timeout(CUT_OFF, async {
                while let Ok(1..) = conn.read(&mut sink).await {}
            })
            .await;
            assert!(closed.is_ok(), "connection {round} was not closed");
        }
        let elapsed = started.elapsed();
        let mut refused = 0;
        while refused < ROUNDS {
            match timeout(CUT_OFF, events.next()).await {
                Ok(Some(Event::HandshakeFailed { .. })) => refused += 1,
                Ok(Some(_)) => {}
                other => panic!("{refused} of {ROUNDS} refusals on the monitor, then {other:?}"),
            }
        }
        let (warnings, debugs) = logged.counts();
        println!("{ROUNDS} refusals in {elapsed:?}: {warnings} warnings, {debugs} debug lines");
        assert_eq!(
            warnings + debugs,
            ROUNDS,
            "every refusal is logged, at warn or at debug"
        );
        let allowed = 2 + elapsed.as_secs();
        assert!(
            warnings <= allowed,
            "{warnings} warnings for {ROUNDS} refusals in {elapsed:?} (at most {allowed})"
        );
        ten_of_ten_answers(&rep.ep, true).await;
    });
}

/// Counts the "refusing connection" events the library logs (src/driver/connect.rs), by
/// level, as the process's global `tracing` subscriber.
#[derive(Clone, Default)]
struct RefusalLog(Arc<(AtomicUsize, AtomicUsize)>);

impl RefusalLog {
    /// Installs a counter as the global subscriber (once per process: this test's own).
    fn install() -> RefusalLog {
        use tracing_subscriber::layer::SubscriberExt as _;
        use tracing_subscriber::Layer as _;
        let log = RefusalLog::default();
        let only_refusals = tracing_subscriber::filter::filter_fn(|m| {
            m.is_event() && m.file().is_some_and(|f| f.ends_with("driver/connect.rs"))
        });
        let subscriber =
            tracing_subscriber::registry().with(log.clone().with_filter(only_refusals));
        tracing::subscriber::set_global_default(subscriber).expect("no subscriber yet");
        log
    }

    /// (warnings, debug lines) so far.
    fn counts(&self) -> (u64, u64) {
        (
            self.0 .0.load(Ordering::SeqCst) as u64,
            self.0 .1.load(Ordering::SeqCst) as u64,
        )
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for RefusalLog {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        match *event.metadata().level() {
            tracing::Level::WARN => self.0 .0.fetch_add(1, Ordering::SeqCst),
            tracing::Level::DEBUG => self.0 .1.fetch_add(1, Ordering::SeqCst),
            _ => 0,
        };
    }
}

// ---------------------------------------------------------------------------------------
// The honest side
// ---------------------------------------------------------------------------------------

/// A `Rep` bound to loopback TCP that echoes every request, served by a task until this
/// handle is dropped.
struct EchoRep {
    /// Its `tcp://` endpoint.
    ep: String,
    task: JoinHandle<()>,
}

impl Drop for EchoRep {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An [`EchoRep`] with `options`, its `host:port`, and a monitor made before anyone
/// connected.
async fn echo_rep(options: Options) -> (EchoRep, String, Monitor) {
    let mut rep = Rep::with_options(options);
    let ep = rep.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let events = rep.monitor();
    let task = tokio::spawn(async move {
        while let Ok(request) = rep.recv().await {
            let body = request.message().clone();
            if request.reply(body).await.is_err() {
                break;
            }
        }
    });
    let addr = ep.trim_start_matches("tcp://").to_owned();
    (EchoRep { ep, task }, addr, events)
}

/// A `Req` that asks the echoing `Rep` again and again while an attack runs; every answer
/// must come within [`ANSWER`].
struct HonestReq {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Result<usize, String>>,
}

impl HonestReq {
    /// Starts asking, over the native wire or plain ZMTP, once a first answer came.
    async fn start(rep: &EchoRep, native: bool) -> HonestReq {
        let mut req = Req::with_options(Options::new().native(native));
        req.connect(&rep.ep).unwrap();
        let first = timeout(ANSWER, req.request("first")).await;
        assert!(
            matches!(first, Ok(Ok(_))),
            "honest Req not served before the attack"
        );
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut answered = 0;
            while !stopped.load(Ordering::Relaxed) {
                let body = format!("honest {answered}");
                match timeout(ANSWER, req.request(body.as_str())).await {
                    Ok(Ok(reply)) if common::text(&reply) == body => answered += 1,
                    Ok(Ok(reply)) => return Err(format!("wrong answer {reply:?} to {body}")),
                    Ok(Err(e)) => return Err(format!("request {answered} failed: {e}")),
                    Err(_) => return Err(format!("request {answered} not answered within 5 s")),
                }
                // Pacing, not synchronisation: a request every 10 ms.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok(answered)
        });
        HonestReq { stop, task }
    }

    /// Stops asking and checks that every request was answered in time.
    async fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        let answered = timeout(ANSWER * 2, self.task)
            .await
            .expect("the honest Req finished")
            .unwrap();
        match answered {
            Ok(n) => println!("the honest Req got {n} answers during the attack"),
            Err(e) => panic!("honest Req: {e}"),
        }
    }
}

/// Waits until a flood has sent `total` requests or made no progress for half a second
/// (its peer stopped reading): there is no event for "stuck", so this samples the count.
/// Returns how many it sent.
async fn all_sent_or_stalled(sent: &AtomicUsize, total: usize) -> usize {
    let mut last = usize::MAX;
    for _ in 0..60 {
        let now = sent.load(Ordering::Relaxed);
        if now >= total || now == last {
            return now;
        }
        last = now;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    sent.load(Ordering::Relaxed)
}

/// A `Rep` that never waits on one peer keeps reading that peer's requests too: the whole
/// flood goes in.
async fn all_sent_within(sent: &AtomicUsize, total: usize, within: Duration) {
    let done = timeout(within, async {
        while sent.load(Ordering::Relaxed) < total {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        done.is_ok(),
        "the Rep stopped reading the flood after {} of {total} requests",
        sent.load(Ordering::Relaxed)
    );
}

/// A fresh `Req` (native or plain ZMTP) gets 10 answers of 10 within 5 s in all.
async fn ten_of_ten_answers(ep: &str, native: bool) {
    let mut req = Req::with_options(Options::new().native(native));
    req.connect(ep).unwrap();
    let started = Instant::now();
    let mut answered = 0;
    let _ = timeout(ANSWER, async {
        for i in 0..10 {
            let body = format!("honest {i}");
            let reply = req.request(body.as_str()).await.unwrap();
            assert_eq!(common::text(&reply), body);
            answered += 1;
        }
    })
    .await;
    assert_eq!(
        answered,
        10,
        "the honest Req (native: {native}) got {answered} of 10 answers in {:?}",
        started.elapsed()
    );
}

/// A `Pub` bound to loopback TCP, publishing `honest <i>` every 10 ms (until the task is
/// aborted), its `host:port` and monitor, and a `Sub` of it that must receive throughout.
async fn publisher_with_honest_sub() -> (JoinHandle<()>, String, Monitor, HonestSub) {
    let publisher = Pub::bind("tcp://127.0.0.1:0").await.unwrap();
    let ep = publisher.endpoints()[0].to_string();
    let events = publisher.monitor();
    let mut sub = Sub::connect(&ep).await.unwrap();
    sub.subscribe("honest");
    let (a, b) = tokio::join!(publisher.wait_for_peers(1), sub.wait_for_peers(1));
    a.unwrap();
    b.unwrap();
    let publishing = tokio::spawn(async move {
        for i in 0u64.. {
            if publisher.send(format!("honest {i}")).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let first = timeout(ANSWER, sub.recv()).await;
    assert!(
        matches!(first, Ok(Ok(_))),
        "honest Sub not served before the attack"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let task = tokio::spawn(async move {
        let mut received = 0;
        while !stopped.load(Ordering::Relaxed) {
            match timeout(ANSWER, sub.recv()).await {
                Ok(Ok(_)) => received += 1,
                Ok(Err(e)) => return Err(format!("receive failed: {e}")),
                Err(_) => {
                    return Err(format!(
                        "nothing published reached it in 5 s (after {received})"
                    ))
                }
            }
        }
        Ok(received)
    });
    let addr = ep.trim_start_matches("tcp://").to_owned();
    (publishing, addr, events, HonestSub { stop, task })
}

/// An honest `Sub` receiving while an attack runs.
struct HonestSub {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Result<usize, String>>,
}

impl HonestSub {
    /// Stops and checks that something arrived at least every 5 s.
    async fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        match timeout(ANSWER * 2, self.task)
            .await
            .expect("the honest Sub finished")
            .unwrap()
        {
            Ok(n) => println!("the honest Sub got {n} messages during the attack"),
            Err(e) => panic!("honest Sub: {e}"),
        }
    }
}

/// Waits for the monitor to report a removed or refused peer, with a reason.
async fn expect_peer_removed(events: &mut Monitor) {
    let event = until_event_within(events, CUT_OFF, |e| {
        matches!(
            e,
            Event::Disconnected { .. } | Event::HandshakeFailed { .. }
        )
    })
    .await
    .expect("the monitor never reported the attacker's removal");
    println!("monitor: {event:?}");
}

/// The next event `pred` accepts within `within`.
async fn until_event_within(
    events: &mut Monitor,
    within: Duration,
    pred: impl Fn(&Event) -> bool,
) -> Option<Event> {
    timeout(within, async {
        while let Some(e) = events.next().await {
            if pred(&e) {
                return Some(e);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

/// An 8-byte subscription prefix no honest message starts with.
fn prefix(i: u32) -> [u8; 8] {
    let mut p = [b'z'; 8];
    p[4..].copy_from_slice(&i.to_be_bytes());
    p
}

// ---------------------------------------------------------------------------------------
// Running an attack, measuring memory
// ---------------------------------------------------------------------------------------

/// Taken by every attack: they run one at a time.
static ATTACKS: Mutex<()> = Mutex::new(());

/// Runs one attack alone (memory and descriptors are process-wide), on a runtime of 2
/// workers, and fails it after [`TEST_LIMIT`] even if the runtime is stalled.
fn attack(body: impl Future<Output = ()> + Send + 'static) {
    let _alone = ATTACKS.lock().unwrap_or_else(|e| e.into_inner());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    rt.spawn(async move {
        let _ = tx.send(AssertUnwindSafe(body).catch_unwind().await);
    });
    let outcome = rx.recv_timeout(TEST_LIMIT);
    // Everything the attack left is dropped now, not while the next test measures memory
    // (bounded: a worker stuck in a computation is left behind).
    rt.shutdown_timeout(Duration::from_secs(10));
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!(
            "the test did not finish within {TEST_LIMIT:?}: the runtime is stalled \
             (a worker busy on one peer's input?) or an attack never ended"
        ),
    }
}

/// Names the test a child process of [`in_own_process`] runs.
const CHILD_ENV: &str = "ZOCKET_HOSTILE_CHILD";

/// Runs the attack `body` of the test `name` as [`attack`] does, but in a child process
/// (this binary again, with only that test), which is killed after `limit`: for attacks
/// that can stall a runtime's workers in a computation nothing can interrupt.
fn in_own_process(name: &str, limit: Duration, body: impl Future<Output = ()> + Send + 'static) {
    if std::env::var(CHILD_ENV).as_deref() == Ok(name) {
        return attack(body);
    }
    let _alone = ATTACKS.lock().unwrap_or_else(|e| e.into_inner());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let child = common::rerun_self(name)
            .env(CHILD_ENV, name)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the test binary runs again");
        // On timeout the child is dropped, which kills it (`kill_on_drop`).
        match timeout(limit, child.wait_with_output()).await {
            Ok(Ok(out)) => {
                let said = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                println!("{said}");
                assert!(
                    out.status.success(),
                    "the attack failed in its process:\n{said}"
                );
            }
            Ok(Err(e)) => panic!("waiting for the attack's process failed: {e}"),
            Err(_) => panic!(
                "the attack's process did not finish within {limit:?} and was killed: its \
                 runtime is stalled (a worker busy on one peer's input?)"
            ),
        }
    });
}

/// Heap held by the process now: bytes allocated minus bytes freed.
fn heap() -> i64 {
    let s = GLOBAL.stats();
    s.bytes_allocated as i64 - s.bytes_deallocated as i64
}

/// Samples the heap every millisecond on a thread of its own and keeps the peak above
/// where it was at the start.
struct MemoryWatch {
    start: i64,
    peak: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
}

impl MemoryWatch {
    fn start() -> MemoryWatch {
        let start = heap();
        let peak = Arc::new(AtomicI64::new(start));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(heap(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        MemoryWatch { start, peak, stop }
    }

    /// Highest heap growth seen so far (including now).
    fn grown(&self) -> i64 {
        self.peak.fetch_max(heap(), Ordering::Relaxed);
        self.peak.load(Ordering::Relaxed) - self.start
    }

    /// Whether the heap grew past [`MEMORY_LIMIT`]: the attacker stops then.
    fn over_limit(&self) -> bool {
        self.grown() >= MEMORY_LIMIT
    }

    fn assert_bounded(&self, what: &str) {
        let grown = self.grown();
        println!("{what}: heap grew by at most {} KiB", grown >> 10);
        assert!(
            grown < MEMORY_LIMIT,
            "{what} made the process hold {} MiB more (limit {} MiB)",
            grown >> 20,
            MEMORY_LIMIT >> 20
        );
    }
}

impl Drop for MemoryWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------
// Plain ZMTP 3.1, by hand
// ---------------------------------------------------------------------------------------

/// ZMTP frame flag: more frames of this message follow.
const MORE: u8 = 0x01;
/// ZMTP frame flag: 8-byte size.
const LONG: u8 = 0x02;
/// ZMTP frame flag: a command.
const COMMAND: u8 = 0x04;

/// A ZMTP 3.1 NULL greeting as libzmq sends it: no zocket marker, so plain ZMTP follows.
fn zmtp_greeting() -> [u8; 64] {
    let mut g = [0u8; 64];
    g[..10].copy_from_slice(&[0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0x7F]);
    g[10] = 3;
    g[11] = 1;
    g[12..16].copy_from_slice(b"NULL");
    g
}

/// One ZMTP frame: flags, a 1- or 8-byte size, the body.
fn zmtp_frame(flags: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 9);
    match u8::try_from(body.len()) {
        Ok(short) => out.extend_from_slice(&[flags, short]),
        Err(_) => {
            out.push(flags | LONG);
            out.extend_from_slice(&(body.len() as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(body);
    out
}

/// A command frame: name length, name, data.
fn zmtp_command(name: &[u8], data: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(1 + name.len() + data.len());
    body.push(name.len() as u8);
    body.extend_from_slice(name);
    body.extend_from_slice(data);
    zmtp_frame(COMMAND, &body)
}

/// One READY property: name length, name, value length (4 bytes), value.
fn property(name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut p = vec![name.len() as u8];
    p.extend_from_slice(name);
    p.extend_from_slice(&(value.len() as u32).to_be_bytes());
    p.extend_from_slice(value);
    p
}

/// READY for a `socket_type` peer, with `extra` properties after Socket-Type.
fn zmtp_ready(socket_type: &[u8], extra: &[u8]) -> Vec<u8> {
    let mut properties = property(b"Socket-Type", socket_type);
    properties.extend_from_slice(extra);
    zmtp_command(b"READY", &properties)
}

/// What a raw ZMTP connection heard from us.
#[derive(Debug)]
enum ZmtpHeard {
    /// A command, by name, with its data.
    Command(String, Vec<u8>),
    /// A message frame.
    Frame,
    /// The connection ended (EOF or an error).
    Ended(String),
}

/// A raw ZMTP peer: writes what the test says, reads (and parses) what we send.
struct ZmtpPeer {
    write: OwnedWriteHalf,
    heard: mpsc::UnboundedReceiver<ZmtpHeard>,
    ended: Option<String>,
}

impl ZmtpPeer {
    /// Connects, sends the greeting and READY as `socket_type`.
    async fn connect(addr: &str, socket_type: &[u8]) -> ZmtpPeer {
        let mut peer = Self::connect_raw(addr).await;
        assert!(peer.send(&zmtp_ready(socket_type, &[])).await);
        peer
    }

    /// Connects and sends the greeting only.
    async fn connect_raw(addr: &str) -> ZmtpPeer {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (read, mut write) = stream.into_split();
        write.write_all(&zmtp_greeting()).await.unwrap();
        let (tx, heard) = mpsc::unbounded_channel();
        tokio::spawn(zmtp_reader(read, tx));
        ZmtpPeer {
            write,
            heard,
            ended: None,
        }
    }

    /// Writes `bytes`; false once the connection refuses them (it was closed).
    async fn send(&mut self, bytes: &[u8]) -> bool {
        self.write.write_all(bytes).await.is_ok()
    }

    fn absorb(&mut self, heard: ZmtpHeard) {
        match heard {
            ZmtpHeard::Command(name, data) if name == "ERROR" => {
                let reason = String::from_utf8_lossy(data.get(1..).unwrap_or_default());
                self.ended.get_or_insert(format!("ERROR {reason}"));
            }
            ZmtpHeard::Ended(why) => {
                self.ended.get_or_insert(why);
            }
            _ => {}
        }
    }

    /// Whether we sent ERROR or ended the connection (as far as heard so far).
    fn has_ended(&mut self) -> bool {
        while let Ok(heard) = self.heard.try_recv() {
            self.absorb(heard);
        }
        self.ended.is_some()
    }

    /// Waits for our READY.
    async fn expect_ready(&mut self) {
        let ready = timeout(ANSWER, async {
            while let Some(heard) = self.heard.recv().await {
                match heard {
                    ZmtpHeard::Command(name, _) if name == "READY" => return true,
                    other => self.absorb(other),
                }
            }
            false
        })
        .await;
        assert_eq!(ready, Ok(true), "no READY came back");
    }

    /// The ERROR we sent or how the connection ended, if that happens within `within`.
    async fn closed_within(&mut self, within: Duration) -> Option<String> {
        let _ = timeout(within, async {
            while !self.has_ended() {
                match self.heard.recv().await {
                    Some(heard) => self.absorb(heard),
                    None => return,
                }
            }
        })
        .await;
        self.ended.clone()
    }
}

/// Reads our greeting, then our frames, until the connection ends.
async fn zmtp_reader(mut read: OwnedReadHalf, tx: mpsc::UnboundedSender<ZmtpHeard>) {
    let mut greeting = [0u8; 64];
    let why = match read.read_exact(&mut greeting).await {
        Err(e) => format!("ended in the greeting: {e}"),
        Ok(_) => loop {
            let mut flags = [0u8; 1];
            if let Err(e) = read.read_exact(&mut flags).await {
                break format!("ended: {e}");
            }
            let size = if flags[0] & LONG != 0 {
                let mut size = [0u8; 8];
                read.read_exact(&mut size)
                    .await
                    .map(|_| u64::from_be_bytes(size))
            } else {
                let mut size = [0u8; 1];
                read.read_exact(&mut size).await.map(|_| u64::from(size[0]))
            };
            let size = match size {
                Ok(size) if size <= 1 << 24 => size as usize,
                Ok(size) => break format!("we sent a {size}-byte frame?"),
                Err(e) => break format!("ended: {e}"),
            };
            let mut body = vec![0u8; size];
            if let Err(e) = read.read_exact(&mut body).await {
                break format!("ended: {e}");
            }
            let heard = if flags[0] & COMMAND != 0 && !body.is_empty() {
                let len = usize::from(body[0]).min(body.len() - 1);
                let name = String::from_utf8_lossy(&body[1..1 + len]).into_owned();
                ZmtpHeard::Command(name, body[1 + len..].to_vec())
            } else {
                ZmtpHeard::Frame
            };
            if tx.send(heard).is_err() {
                return;
            }
        },
    };
    let _ = tx.send(ZmtpHeard::Ended(why));
}

// ---------------------------------------------------------------------------------------
// The native wire, by hand (docs/PROTOCOL.md)
// ---------------------------------------------------------------------------------------

const DATA: u8 = 0x00;
const WINDOW: u8 = 0x01;
const OPEN: u8 = 0x02;
const ACCEPT: u8 = 0x03;
const REJECT: u8 = 0x04;
const RESET: u8 = 0x06;
const HELLO: u8 = 0x09;
const GOAWAY: u8 = 0x0A;
/// A frame type the protocol does not define (receivers skip it).
const UNKNOWN: u8 = 0x7E;
/// Credit a DATA frame costs on top of its payload.
const DATA_COST: usize = 16;

/// Socket-type codes (libzmq's numbers).
const PAIR: u8 = 0;
const SUB: u8 = 2;
const DEALER: u8 = 5;

/// The native greeting: a ZMTP greeting whose filler carries `ZOCKET` and version 1.0.
fn native_greeting() -> [u8; 64] {
    let mut g = zmtp_greeting();
    g[33..39].copy_from_slice(b"ZOCKET");
    g[39] = 1;
    g[40] = 0;
    g
}

/// One native frame: type, flags, stream id, length, payload.
fn native_frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + payload.len());
    out.push(ty);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// How a stream of the raw native peer ended up.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// REJECT with this reason code.
    Rejected(u32),
    /// RESET with this reason code.
    Reset(u32),
    /// The whole connection ended (GOAWAY or the transport), with what we learned.
    ConnectionEnded(String),
}

/// What the raw native peer heard.
#[derive(Debug)]
enum NativeHeard {
    Hello { window: u32 },
    Accepted(u32),
    Stream(u32, Outcome),
    Window(u32, u32),
    Data(u32, Vec<u8>),
    Ended(String),
}

/// A raw native peer (a dialer: odd stream ids), counting its send credit per stream.
struct NativePeer {
    write: OwnedWriteHalf,
    heard: mpsc::UnboundedReceiver<NativeHeard>,
    window: Option<u32>,
    credit: HashMap<u32, i64>,
    accepted: Vec<u32>,
    outcomes: HashMap<u32, Outcome>,
    data: Vec<(u32, Vec<u8>)>,
    ended: Option<String>,
}

impl NativePeer {
    /// Connects and sends the greeting and HELLO (stream window 1 MiB, 256 streams).
    async fn connect(addr: &str) -> NativePeer {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (read, mut write) = stream.into_split();
        let mut hello = vec![0x5Au8; 16]; // an instance id that is not ours
        hello.extend_from_slice(&(1u32 << 20).to_be_bytes());
        hello.extend_from_slice(&256u32.to_be_bytes());
        hello.extend_from_slice(&(64u64 << 20).to_be_bytes());
        let mut bytes = native_greeting().to_vec();
        bytes.extend_from_slice(&native_frame(HELLO, 0, 0, &hello));
        write.write_all(&bytes).await.unwrap();
        let (tx, heard) = mpsc::unbounded_channel();
        tokio::spawn(native_reader(read, tx));
        NativePeer {
            write,
            heard,
            window: None,
            credit: HashMap::new(),
            accepted: Vec::new(),
            outcomes: HashMap::new(),
            data: Vec::new(),
            ended: None,
        }
    }

    fn absorb(&mut self, heard: NativeHeard) {
        match heard {
            NativeHeard::Hello { window } => self.window = Some(window),
            NativeHeard::Window(stream, increment) => {
                *self.credit.entry(stream).or_default() += i64::from(increment);
            }
            NativeHeard::Accepted(stream) => self.accepted.push(stream),
            NativeHeard::Stream(stream, outcome) => {
                self.outcomes.insert(stream, outcome);
            }
            NativeHeard::Data(stream, payload) => self.data.push((stream, payload)),
            NativeHeard::Ended(why) => {
                self.ended.get_or_insert(why);
            }
        }
    }

    fn drain(&mut self) {
        while let Ok(heard) = self.heard.try_recv() {
            self.absorb(heard);
        }
    }

    /// Waits (up to 5 s) for one more thing heard; false when nothing more will come.
    async fn hear(&mut self) -> bool {
        match timeout(ANSWER, self.heard.recv()).await {
            Ok(Some(heard)) => {
                self.absorb(heard);
                true
            }
            _ => false,
        }
    }

    /// Opens `stream` as `socket_type` on `path`, once our HELLO told the credit.
    async fn open(&mut self, stream: u32, socket_type: u8, path: &str) {
        while self.window.is_none() {
            assert!(self.hear().await, "no HELLO came back");
        }
        let mut payload = vec![socket_type, path.len() as u8];
        payload.extend_from_slice(path.as_bytes());
        assert!(
            self.send_data(0, &native_frame(OPEN, 0, stream, &payload), 0)
                .await
        );
        *self.credit.entry(stream).or_default() += i64::from(self.window.unwrap_or(0));
    }

    /// Writes `bytes` (frames of `stream` costing `cost` credit); false once refused.
    async fn send_data(&mut self, stream: u32, bytes: &[u8], cost: usize) -> bool {
        if stream != 0 {
            *self.credit.entry(stream).or_default() -= cost as i64;
        }
        matches!(
            timeout(CUT_OFF, self.write.write_all(bytes)).await,
            Ok(Ok(()))
        )
    }

    /// Waits until `stream` has `need` credit; false when it will not get it (the stream
    /// or connection ended, or no credit came for 5 s).
    async fn wait_credit(&mut self, stream: u32, need: i64) -> bool {
        self.drain();
        loop {
            if self.ended.is_some()
                || matches!(
                    self.outcomes.get(&stream),
                    Some(Outcome::Reset(_) | Outcome::Rejected(_))
                )
            {
                return false;
            }
            if self.credit.get(&stream).copied().unwrap_or(0) >= need {
                return true;
            }
            if !self.hear().await {
                println!("stream {stream}: no credit came for 5 s");
                return false;
            }
        }
    }

    /// Waits (up to 5 s) for ACCEPT of `stream`; how it ended instead if it did.
    async fn accepted(&mut self, stream: u32) -> Result<(), Option<Outcome>> {
        loop {
            self.drain();
            if self.accepted.contains(&stream) {
                return Ok(());
            }
            if let Some(outcome) = self.outcomes.get(&stream) {
                return Err(Some(outcome.clone()));
            }
            if let Some(why) = &self.ended {
                return Err(Some(Outcome::ConnectionEnded(why.clone())));
            }
            if !self.hear().await {
                return Err(None);
            }
        }
    }

    /// How `stream` ended up (or the connection), if it does within `within`.
    async fn stream_outcome_within(&mut self, stream: u32, within: Duration) -> Option<Outcome> {
        let _ = timeout(within, async {
            loop {
                self.drain();
                if self.outcomes.contains_key(&stream) || self.ended.is_some() {
                    return;
                }
                match self.heard.recv().await {
                    Some(heard) => self.absorb(heard),
                    None => return,
                }
            }
        })
        .await;
        self.outcomes
            .get(&stream)
            .cloned()
            .or_else(|| self.ended.clone().map(Outcome::ConnectionEnded))
    }

    /// The connection still serves: a request on a new DEALER `stream` is echoed.
    async fn expect_served_on_new_stream(&mut self, stream: u32) {
        self.open(stream, DEALER, "").await;
        let mut request = native_frame(DATA, MORE, stream, &[]);
        request.extend_from_slice(&native_frame(DATA, 0, stream, b"still here"));
        assert!(
            self.send_data(stream, &request, 2 * DATA_COST + 10).await,
            "the connection was closed"
        );
        let served = timeout(ANSWER, async {
            loop {
                if self
                    .data
                    .iter()
                    .any(|(s, p)| *s == stream && p == b"still here")
                {
                    return true;
                }
                match self.heard.recv().await {
                    Some(heard) => self.absorb(heard),
                    None => return false,
                }
            }
        })
        .await;
        assert_eq!(
            served,
            Ok(true),
            "a new stream on the attacker's connection is not served (connection: {:?})",
            self.ended
        );
    }
}

/// Reads our greeting, then our frames, until the connection ends.
async fn native_reader(mut read: OwnedReadHalf, tx: mpsc::UnboundedSender<NativeHeard>) {
    let mut greeting = [0u8; 64];
    let why = match read.read_exact(&mut greeting).await {
        Err(e) => format!("ended in the greeting: {e}"),
        Ok(_) => loop {
            let mut header = [0u8; 10];
            if let Err(e) = read.read_exact(&mut header).await {
                break format!("ended: {e}");
            }
            let stream = u32::from_be_bytes(header[2..6].try_into().unwrap());
            let len = u32::from_be_bytes(header[6..10].try_into().unwrap()) as usize;
            if len > 65_536 {
                break format!("we sent a {len}-byte frame?");
            }
            let mut payload = vec![0u8; len];
            if let Err(e) = read.read_exact(&mut payload).await {
                break format!("ended: {e}");
            }
            let word = |at: usize| {
                payload
                    .get(at..at + 4)
                    .map_or(0, |b| u32::from_be_bytes(b.try_into().unwrap()))
            };
            let heard = match header[0] {
                HELLO => NativeHeard::Hello { window: word(16) },
                WINDOW => NativeHeard::Window(stream, word(0)),
                ACCEPT => NativeHeard::Accepted(stream),
                REJECT => NativeHeard::Stream(stream, Outcome::Rejected(word(0))),
                RESET => NativeHeard::Stream(stream, Outcome::Reset(word(0))),
                DATA => NativeHeard::Data(stream, payload),
                GOAWAY => {
                    let text = String::from_utf8_lossy(payload.get(4..).unwrap_or_default());
                    NativeHeard::Ended(format!("GOAWAY {}: {text}", word(0)))
                }
                _ => continue,
            };
            if tx.send(heard).is_err() {
                return;
            }
        },
    };
    let _ = tx.send(NativeHeard::Ended(why));
}
