//! `Options::conflate`: only the newest message per peer, over tcp, ipc and inproc, and from
//! a libzmq peer (through pyzmq).

mod common;

use common::endpoints;

use std::time::Duration;

use bytes::Bytes;
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::time::timeout;
use zocket::{Dealer, Error, Message, Options, Pair, Pub, Pull, Push, Rep, Req, Router, Sub};

const T: Duration = Duration::from_secs(20);

/// Message `seq`: three frames, each carrying the sequence number, so a message mixed
/// from two (or cut short) is seen.
fn numbered(seq: u32) -> Message {
    let fill = Bytes::from(vec![(seq % 251) as u8; 64 + (seq % 7) as usize]);
    Message::from(vec![
        Bytes::from_static(b"tick"),
        Bytes::from(seq.to_string()),
        fill,
    ])
}

/// The sequence number of a message made by [`numbered`], checking that it is whole.
fn seq_of(msg: &Message) -> u32 {
    let frames = msg.frames();
    assert_eq!(frames.len(), 3, "a whole three-frame message: {msg:?}");
    assert_eq!(frames[0], "tick");
    let seq: u32 = std::str::from_utf8(&frames[1]).unwrap().parse().unwrap();
    assert_eq!(frames[2].len(), 64 + (seq % 7) as usize, "frame 3 of {seq}");
    assert!(
        frames[2].iter().all(|&b| b == (seq % 251) as u8),
        "frame 3 of {seq}"
    );
    seq
}

/// Sends messages 0..n, each within a second (a conflating sender never waits for room).
async fn burst<S>(tx: &mut S, n: u32)
where
    S: Sink<Message, Error = Error> + Unpin,
{
    for seq in 0..n {
        timeout(Duration::from_secs(1), tx.send(numbered(seq)))
            .await
            .unwrap_or_else(|_| panic!("send {seq} waited"))
            .unwrap();
    }
}

/// Receives until message `last` arrives; returns the sequence numbers seen, checked to be
/// strictly increasing (nothing stale after something newer, nothing twice).
async fn until_newest<R>(rx: &mut R, last: u32) -> Vec<u32>
where
    R: Stream<Item = zocket::Result<Message>> + Unpin,
{
    let mut seen = Vec::new();
    for _ in 0..=last {
        let msg = timeout(T, rx.next()).await.expect("newest never came");
        let seq = seq_of(&msg.unwrap().unwrap());
        if let Some(&before) = seen.last() {
            assert!(seq > before, "{seq} after {before}: {seen:?}");
        }
        seen.push(seq);
        if seq == last {
            return seen;
        }
    }
    panic!("more messages than were sent: {seen:?}");
}

/// The reader is busy elsewhere while the burst is sent (the scenario, not a
/// synchronisation: what is asserted holds without it, it only makes the burst arrive
/// while nobody reads).
async fn busy_reader() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

const BURST: u32 = 10_000;
/// At most this many of the burst reach a reader that reads only after it (the newest, and
/// a few the reader caught while the burst's tail was still arriving). Without conflate
/// the reader would get at least `send_hwm` (1000) of them.
const FEW: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_conflating_subscriber_gets_only_the_newest_whole_message_on_every_transport() {
    for ep in endpoints("conflate-pubsub") {
        let mut publisher = Pub::with_options(Options::new().conflate(true));
        let bound = publisher.bind(&ep).await.unwrap().to_string();
        let mut sub = Sub::with_options(Options::new().conflate(true));
        sub.subscribe("tick");
        sub.connect(&bound).unwrap();
        timeout(T, sub.wait_for_peers(1)).await.unwrap().unwrap();
        timeout(T, publisher.wait_for_peers(1))
            .await
            .unwrap()
            .unwrap();

        burst(&mut publisher, BURST).await;
        busy_reader().await;
        let seen = until_newest(&mut sub, BURST - 1).await;
        assert!(seen.len() <= FEW, "{ep}: {} arrived: {seen:?}", seen.len());
        // Nothing older turns up after the newest.
        assert_eq!(sub.try_recv().unwrap_err(), zocket::TryRecvError::Empty);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_conflating_puller_gets_only_the_newest_whole_message_on_every_transport() {
    for ep in endpoints("conflate-pipeline") {
        let mut pull = Pull::with_options(Options::new().conflate(true));
        let bound = pull.bind(&ep).await.unwrap().to_string();
        let mut push = Push::with_options(Options::new().conflate(true));
        push.connect(&bound).unwrap();
        timeout(T, push.wait_for_peers(1)).await.unwrap().unwrap();

        burst(&mut push, BURST).await;
        busy_reader().await;
        let seen = until_newest(&mut pull, BURST - 1).await;
        assert!(seen.len() <= FEW, "{ep}: {} arrived: {seen:?}", seen.len());
        assert_eq!(pull.try_recv().unwrap_err(), zocket::TryRecvError::Empty);
        // Every message of the burst is counted once: sent or conflated away at the
        // sender; received or conflated away at the receiver.
        let (sent, got) = (push.stats().traffic, pull.stats().traffic);
        assert_eq!(
            sent.messages_sent + sent.dropped,
            u64::from(BURST),
            "{ep}: {sent:?}"
        );
        assert_eq!(got.messages_received, seen.len() as u64, "{ep}: {got:?}");
        assert_eq!(
            got.messages_received + got.dropped,
            sent.messages_sent,
            "{ep}: {sent:?} {got:?}"
        );
    }
}

/// Pair and Dealer conflate in both directions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflating_pairs_and_dealers_keep_the_newest_in_both_directions() {
    for ep in endpoints("conflate-pair") {
        let mut a = Pair::with_options(Options::new().conflate(true));
        let bound = a.bind(&ep).await.unwrap().to_string();
        let mut b = Pair::with_options(Options::new().conflate(true));
        b.connect(&bound).unwrap();
        timeout(T, a.wait_for_peers(1)).await.unwrap().unwrap();
        timeout(T, b.wait_for_peers(1)).await.unwrap().unwrap();
        one_way(&mut a, &mut b, &ep).await;
        one_way(&mut b, &mut a, &ep).await;
    }
    let ep = "tcp://127.0.0.1:0";
    let mut a = Dealer::with_options(Options::new().conflate(true));
    let bound = a.bind(ep).await.unwrap().to_string();
    let mut b = Dealer::with_options(Options::new().conflate(true));
    b.connect(&bound).unwrap();
    timeout(T, a.wait_for_peers(1)).await.unwrap().unwrap();
    timeout(T, b.wait_for_peers(1)).await.unwrap().unwrap();
    one_way(&mut a, &mut b, "dealer").await;
    one_way(&mut b, &mut a, "dealer").await;
}

/// A burst from `from`, read late by `to`: only the newest (and a few) arrive.
async fn one_way<S, R>(from: &mut S, to: &mut R, label: &str)
where
    S: Sink<Message, Error = Error> + Unpin,
    R: Stream<Item = zocket::Result<Message>> + Unpin,
{
    burst(from, BURST).await;
    busy_reader().await;
    let seen = until_newest(to, BURST - 1).await;
    assert!(
        seen.len() <= FEW,
        "{label}: {} arrived: {seen:?}",
        seen.len()
    );
}

/// The sending side alone: a conflating `Push` whose `Pull` (not conflating) does not read
/// never waits; once the connection (its window, or the inproc pipe) is full, each new
/// message replaces the one still queued, so the reader gets what the connection had
/// taken, in order, then the newest, and nothing in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflating_sender_replaces_its_unsent_message_and_never_waits() {
    for ep in endpoints("conflate-sender") {
        let small = Options::new()
            .send_hwm(8)
            .recv_hwm(8)
            .stream_window(64 * 1024);
        let mut pull = Pull::with_options(small.clone());
        let bound = pull.bind(&ep).await.unwrap().to_string();
        let mut push = Push::with_options(small.conflate(true));
        push.connect(&bound).unwrap();
        timeout(T, push.wait_for_peers(1)).await.unwrap().unwrap();

        // 16 KiB messages: a few fill the 64 KiB window (or the 8-message pipe).
        let n = 2_000u32;
        for seq in 0..n {
            let msg = Message::from(vec![
                Bytes::from(seq.to_string()),
                Bytes::from(vec![(seq % 251) as u8; 16 * 1024]),
            ]);
            timeout(Duration::from_secs(1), push.send(msg))
                .await
                .unwrap_or_else(|_| panic!("{ep}: send {seq} waited"))
                .unwrap();
        }
        let mut seen: Vec<u32> = Vec::new();
        loop {
            let msg = timeout(T, pull.recv())
                .await
                .expect("newest never came")
                .unwrap();
            let frames = msg.frames();
            assert_eq!(frames.len(), 2);
            let seq: u32 = std::str::from_utf8(&frames[0]).unwrap().parse().unwrap();
            assert_eq!(frames[1].len(), 16 * 1024);
            assert!(frames[1].iter().all(|&b| b == (seq % 251) as u8));
            if let Some(&before) = seen.last() {
                assert!(seq > before, "{ep}: {seq} after {before}");
            }
            seen.push(seq);
            if seq == n - 1 {
                break;
            }
            assert!(seen.len() < n as usize, "{ep}: {seen:?}");
        }
        // What the reader got: a run the connection held, and then the newest.
        assert!(seen.len() < 200, "{ep}: {} of {n} arrived", seen.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflate_is_refused_on_req_rep_and_router_with_an_error_naming_option_and_type() {
    let opts = Options::new().conflate(true);
    let ep = format!("inproc://conflate-refused-{}", std::process::id());
    let req = Req::with_options(opts.clone());
    let rep = Rep::with_options(opts.clone());
    let router = Router::with_options(opts.clone());
    for (socket, name) in [(&*req, "REQ"), (&*rep, "REP"), (&*router, "ROUTER")] {
        for err in [
            socket.bind(&ep).await.unwrap_err(),
            socket.connect("tcp://127.0.0.1:1").unwrap_err(),
        ] {
            assert!(
                matches!(
                    err,
                    Error::InvalidOption {
                        option: "conflate",
                        ..
                    }
                ),
                "{err:?}"
            );
            assert_eq!(
                err.to_string(),
                format!(
                    "option conflate is not supported on a {name} socket: conflate is for \
                     PUB, SUB, PUSH, PULL, DEALER and PAIR sockets; replacing requests or \
                     replies would break the pattern"
                )
            );
        }
        assert!(socket.endpoints().is_empty(), "nothing was bound");
    }
    // The six types that conflate bind as usual.
    let ok = [
        Pub::with_options(opts.clone())
            .bind("tcp://127.0.0.1:0")
            .await,
        Sub::with_options(opts.clone())
            .bind("tcp://127.0.0.1:0")
            .await,
        Push::with_options(opts.clone())
            .bind("tcp://127.0.0.1:0")
            .await,
        Pull::with_options(opts.clone())
            .bind("tcp://127.0.0.1:0")
            .await,
        Dealer::with_options(opts.clone())
            .bind("tcp://127.0.0.1:0")
            .await,
        Pair::with_options(opts.clone())
            .bind("tcp://127.0.0.1:0")
            .await,
    ];
    for bound in ok {
        bound.unwrap();
    }
}

/// A libzmq PUSH (plain ZMTP) bursts multipart messages at a conflating zocket `Pull` that
/// reads late: only the newest arrive, whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflating_pull_keeps_only_the_newest_from_a_libzmq_push() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    if !common::have_pyzmq() {
        return;
    }
    let script = format!(
        r#"
import sys, zmq
ctx = zmq.Context()
push = ctx.socket(zmq.PUSH)
port = push.bind_to_random_port("tcp://127.0.0.1")
print(port, flush=True)
sys.stdin.readline()
for seq in range({BURST}):
    fill = bytes([seq % 251]) * (64 + seq % 7)
    push.send_multipart([b"tick", str(seq).encode(), fill])
print("sent", flush=True)
sys.stdin.readline()
push.close(linger=0)
ctx.term()
"#
    );
    let mut child = tokio::process::Command::new("python3")
        .args(["-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port = timeout(T, lines.next_line())
        .await
        .expect("python said nothing")
        .unwrap()
        .expect("python exited early");
    let mut pull = Pull::with_options(Options::new().conflate(true));
    pull.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    timeout(T, pull.wait_for_peers(1)).await.unwrap().unwrap();
    stdin.write_all(b"go\n").await.unwrap();
    let sent = timeout(T, lines.next_line()).await.unwrap().unwrap();
    assert_eq!(sent.as_deref(), Some("sent"));
    busy_reader().await;
    let seen = until_newest(&mut pull, BURST - 1).await;
    assert!(seen.len() <= FEW, "{} arrived: {seen:?}", seen.len());
    stdin.write_all(b"done\n").await.unwrap();
    let status = timeout(T, child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
}
