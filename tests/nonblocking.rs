//! `try_send` and `try_recv`: they return at once, hand back what they could not send, and
//! share the queues of `send` and `recv` (nothing lost, nothing reordered).

mod common;

use common::endpoints;

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::time::timeout;
use zocket::{
    Dealer, Message, Options, Pair, Pub, Pull, Push, Rep, Req, Router, Sub, TryRecvError,
    TrySendError,
};

const T: Duration = Duration::from_secs(20);

/// Calls `poll` (a `try_recv`) until it stops saying `Empty`, as an event loop would,
/// yielding between tries; bounded in time.
async fn poll_until<T>(mut poll: impl FnMut() -> Result<T, TryRecvError>) -> T {
    let start = Instant::now();
    loop {
        match poll() {
            Ok(got) => return got,
            Err(TryRecvError::Empty) => {
                assert!(start.elapsed() < T, "nothing arrived");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
}

/// Message `seq`: its number, then 16 KiB (a few fill a 64 KiB stream window).
fn big(seq: u32) -> Message {
    Message::from(vec![
        Bytes::from(seq.to_string()),
        Bytes::from(vec![(seq % 251) as u8; 16 * 1024]),
    ])
}

/// The number of a [`big`] message, checking that it is whole.
fn big_seq(msg: &Message) -> u32 {
    let frames = msg.frames();
    assert_eq!(frames.len(), 2, "{msg:?}");
    let seq: u32 = std::str::from_utf8(&frames[0]).unwrap().parse().unwrap();
    assert_eq!(frames[1].len(), 16 * 1024);
    assert!(frames[1].iter().all(|&b| b == (seq % 251) as u8));
    seq
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_recv_is_empty_until_a_message_arrives_and_mixes_with_recv_in_order() {
    for ep in endpoints("try-recv") {
        let mut pull = Pull::bind(&ep).await.unwrap();
        let bound = pull.endpoints()[0].to_string();
        assert_eq!(pull.try_recv().unwrap_err(), TryRecvError::Empty, "{ep}");
        let mut push = Push::connect(&bound).await.unwrap();
        timeout(T, push.send(["first", "1"]))
            .await
            .unwrap()
            .unwrap();
        let msg = poll_until(|| pull.try_recv()).await;
        assert_eq!(msg.frames(), &["first", "1"][..], "{ep}");
        assert_eq!(pull.try_recv().unwrap_err(), TryRecvError::Empty, "{ep}");

        // Taken alternately by try_recv and recv: every message once, in order.
        for i in 0..100u32 {
            timeout(T, push.send(i.to_string())).await.unwrap().unwrap();
        }
        for i in 0..100u32 {
            let msg = if i % 2 == 0 {
                poll_until(|| pull.try_recv()).await
            } else {
                timeout(T, pull.recv()).await.unwrap().unwrap()
            };
            assert_eq!(msg.frames()[0], i.to_string(), "{ep}");
        }
        assert_eq!(pull.try_recv().unwrap_err(), TryRecvError::Empty, "{ep}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_receiving_socket_has_a_try_recv_that_returns_what_recv_would() {
    // Sub
    let publisher = Pub::bind("tcp://127.0.0.1:0").await.unwrap();
    let ep = publisher.endpoints()[0].to_string();
    let mut sub = Sub::connect(&ep).await.unwrap();
    sub.subscribe("news");
    assert_eq!(sub.try_recv().unwrap_err(), TryRecvError::Empty);
    timeout(T, publisher.wait_for_peers(1))
        .await
        .unwrap()
        .unwrap();
    publisher.try_send(["sports", "no"]).unwrap();
    publisher.try_send(["news", "yes"]).unwrap();
    let msg = poll_until(|| sub.try_recv()).await;
    assert_eq!(msg.frames(), &["news", "yes"][..]);

    // Router (with the sender's routing id) and Dealer
    let mut router = Router::bind("tcp://127.0.0.1:0").await.unwrap();
    let ep = router.endpoints()[0].to_string();
    let mut dealer = Dealer::with_options(Options::new().identity("d-1"));
    dealer.connect(&ep).unwrap();
    assert_eq!(router.try_recv().unwrap_err(), TryRecvError::Empty);
    assert_eq!(dealer.try_recv().unwrap_err(), TryRecvError::Empty);
    timeout(T, dealer.send("ping")).await.unwrap().unwrap();
    let (id, msg) = poll_until(|| router.try_recv()).await;
    assert_eq!(id, "d-1");
    assert_eq!(msg.frames(), &["ping"][..]);
    router.try_send(&id, "pong").unwrap();
    let msg = poll_until(|| dealer.try_recv()).await;
    assert_eq!(msg.frames(), &["pong"][..]);

    // Rep: try_recv gives a Request, answered as usual
    let mut rep = Rep::bind("tcp://127.0.0.1:0").await.unwrap();
    let ep = rep.endpoints()[0].to_string();
    assert!(matches!(rep.try_recv(), Err(TryRecvError::Empty)));
    let client = tokio::spawn(async move {
        let mut req = Req::connect(&ep).await.unwrap();
        timeout(T, req.request("question")).await.unwrap().unwrap()
    });
    let start = Instant::now();
    let request = loop {
        match rep.try_recv() {
            Ok(request) => break request,
            Err(TryRecvError::Empty) => {
                assert!(start.elapsed() < T, "no request came");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(e) => panic!("{e:?}"),
        }
    };
    assert_eq!(request.message().frames(), &["question"][..]);
    request.reply("answer").await.unwrap();
    let reply = timeout(T, client).await.unwrap().unwrap();
    assert_eq!(reply.frames(), &["answer"][..]);

    // Pair, both ways
    let mut a = Pair::bind("tcp://127.0.0.1:0").await.unwrap();
    let ep = a.endpoints()[0].to_string();
    let mut b = Pair::connect(&ep).await.unwrap();
    assert_eq!(a.try_recv().unwrap_err(), TryRecvError::Empty);
    timeout(T, b.wait_for_peers(1)).await.unwrap().unwrap();
    b.try_send("to a").unwrap();
    assert_eq!(poll_until(|| a.try_recv()).await.frames(), &["to a"][..]);
    timeout(T, a.wait_for_peers(1)).await.unwrap().unwrap();
    a.try_send("to b").unwrap();
    assert_eq!(poll_until(|| b.try_recv()).await.frames(), &["to b"][..]);
}

/// At `send_hwm` (the peer reads nothing, its window or pipe is full), `try_send` returns
/// `Full` with the message intact; once the reader drains, the same message goes, and the
/// reader gets everything exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_send_is_full_at_send_hwm_hands_the_message_back_and_succeeds_after_the_reader_drains()
{
    for ep in endpoints("try-send-full") {
        let small = Options::new()
            .send_hwm(4)
            .recv_hwm(4)
            .stream_window(64 * 1024);
        let mut pull = Pull::with_options(small.clone());
        let bound = pull.bind(&ep).await.unwrap().to_string();
        let mut push = Push::with_options(small);
        // No peer yet: a send would wait.
        match push.try_send(big(0)) {
            Err(TrySendError::Full(back)) => assert_eq!(big_seq(&back), 0),
            other => panic!("{ep}: {other:?}"),
        }
        push.connect(&bound).unwrap();
        timeout(T, push.wait_for_peers(1)).await.unwrap().unwrap();

        let mut next = 0u32;
        let back = loop {
            match push.try_send(big(next)) {
                Ok(()) => next += 1,
                Err(TrySendError::Full(back)) => break back,
                Err(e) => panic!("{ep}: {e:?}"),
            }
            assert!(next < 10_000, "{ep}: never full");
        };
        assert!(next >= 4, "{ep}: full after {next}");
        assert_eq!(back, big(next), "{ep}: handed back intact");
        assert_eq!(big_seq(&back), next);

        // The reader drains; the handed-back message goes as soon as there is room.
        let mut back = Some(back);
        let mut expected = 0u32;
        while let Some(msg) = back.take() {
            match push.try_send(msg) {
                Ok(()) => {}
                Err(TrySendError::Full(msg)) => {
                    back = Some(msg);
                    let got = timeout(T, pull.recv()).await.unwrap().unwrap();
                    assert_eq!(big_seq(&got), expected, "{ep}");
                    expected += 1;
                }
                Err(e) => panic!("{ep}: {e:?}"),
            }
            assert!(expected <= next, "{ep}: read everything, still full");
        }
        while expected <= next {
            let got = timeout(T, pull.recv()).await.unwrap().unwrap();
            assert_eq!(big_seq(&got), expected, "{ep}");
            expected += 1;
        }
        assert_eq!(pull.try_recv().unwrap_err(), TryRecvError::Empty, "{ep}");
    }
}

/// A Router's `try_send` to a peer whose queue is full hands the message back where `send`
/// would drop it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_try_send_hands_back_instead_of_dropping_for_a_full_peer() {
    let small = Options::new()
        .send_hwm(4)
        .recv_hwm(4)
        .stream_window(64 * 1024);
    let mut router = Router::with_options(small.clone());
    let ep = router.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
    let mut dealer = Dealer::with_options(small.identity("slow"));
    dealer.connect(&ep).unwrap();
    timeout(T, router.wait_for_peers(1)).await.unwrap().unwrap();

    let mut next = 0u32;
    let back = loop {
        match router.try_send("slow", big(next)) {
            Ok(()) => next += 1,
            Err(TrySendError::Full(back)) => break back,
            Err(e) => panic!("{e:?}"),
        }
        assert!(next < 10_000, "never full");
    };
    assert_eq!(back, big(next));
    let mut back = Some(back);
    let mut expected = 0u32;
    while let Some(msg) = back.take() {
        if let Err(e) = router.try_send("slow", msg) {
            let TrySendError::Full(msg) = e else {
                panic!("{e:?}")
            };
            back = Some(msg);
            let got = timeout(T, dealer.recv()).await.unwrap().unwrap();
            assert_eq!(big_seq(&got), expected);
            expected += 1;
        }
        assert!(expected <= next, "read everything, still full");
    }
    while expected <= next {
        let got = timeout(T, dealer.recv()).await.unwrap().unwrap();
        assert_eq!(
            big_seq(&got),
            expected,
            "nothing dropped, nothing reordered"
        );
        expected += 1;
    }
    // An unknown peer: dropped as by `send`, unless router_mandatory.
    router.try_send("nobody", "lost").unwrap();
}
