//! Cooperative scheduling: every send, receive, request and reply spends tokio's task budget
//! (`tokio::task::coop`), so a tight loop over a socket lets the other tasks of its runtime
//! run, the connection drivers included, on a current_thread runtime as on several workers.

mod common;

use std::cell::Cell;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::task::LocalSet;
use tokio::time::timeout;
use zocket::{Dealer, Options, Pub, Pull, Push, Rep, Req, Router, Sub};

/// Bound on every whole scenario (the machine may be loaded, and tests run unoptimised).
const LIMIT: Duration = Duration::from_secs(120);

/// A unique `inproc://` name for `tag`.
fn inproc(tag: &str) -> String {
    format!("inproc://coop-{tag}-{}", std::process::id())
}

/// A current_thread runtime (what `#[tokio::test]` and many services run on), with a
/// `LocalSet` so the tests may share `Rc` counters between tasks.
fn run_on_one_thread<F: Future>(scenario: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    LocalSet::new().block_on(&rt, async move {
        timeout(LIMIT, scenario)
            .await
            .expect("scenario took too long")
    })
}

/// Polls a fresh `$op` future again and again within ONE poll of the task, and gives how
/// many completed before one returned `Pending`, at most `$max`. An operation that spends
/// the task's budget yields after tokio's budget (128 operations per poll); one that does
/// not never yields while it is ready.
macro_rules! ready_in_one_poll {
    ($max:expr, $op:expr) => {{
        // Start from a fresh budget.
        tokio::task::yield_now().await;
        poll_fn(|cx| {
            for n in 0..$max {
                let op = pin!($op);
                if op.poll(cx).is_pending() {
                    return Poll::Ready(n);
                }
            }
            Poll::Ready($max)
        })
        .await
    }};
}

/// More ready operations than any budget allows in one poll: a tight loop that runs this
/// many without yielding starves its runtime.
const MANY: usize = 5_000;

/// Options under which nothing but the budget stops a ready operation within [`MANY`].
fn roomy() -> Options {
    Options::new().send_hwm(2 * MANY).recv_hwm(2 * MANY)
}

/// Asserts that a tight loop yielded (`ready` operations completed in one poll) well before
/// [`MANY`], after spending a budget's worth (tokio's is 128).
fn assert_yields(what: &str, ready: usize) {
    assert!(
        (1..=256).contains(&ready),
        "{what}: {ready} operations completed in one poll of the task before it yielded \
         (a budget is 128; {MANY} means it never yields)"
    );
}

#[test]
fn a_publishing_loop_on_one_thread_delivers_most_messages_to_a_subscriber_over_tcp() {
    publishing_loop_delivers_most("tcp://127.0.0.1:0");
}

#[test]
fn a_publishing_loop_on_one_thread_delivers_most_messages_to_a_subscriber_over_inproc() {
    publishing_loop_delivers_most(&inproc("pubsub"));
}

/// A Pub sends 1,000,000 small messages as fast as it can, on a current_thread runtime,
/// to a Sub of the same runtime at the default high-water marks: at least half arrive.
fn publishing_loop_delivers_most(endpoint: &str) {
    const SENT: usize = 1_000_000;
    run_on_one_thread(async {
        let publisher = Pub::new();
        let bound = publisher.bind(endpoint).await.unwrap().to_string();
        let mut sub = Sub::connect(&bound).await.unwrap();
        sub.subscribe("");
        sub.wait_for_peers(1).await.unwrap();
        publisher.wait_for_peers(1).await.unwrap();

        let received = Rc::new(Cell::new(0usize));
        let reader = tokio::task::spawn_local({
            let received = received.clone();
            async move {
                while let Some(msg) = sub.next().await {
                    if msg.unwrap().frames()[0] == "end" {
                        return;
                    }
                    received.set(received.get() + 1);
                }
            }
        });
        let payload = bytes::Bytes::from_static(b"0123456789abcdef");
        for _ in 0..SENT {
            publisher.send(payload.clone()).await.unwrap();
        }
        // The end marker may be dropped like any message while the queue is full: send it
        // until the reader has seen one (each send yields to the reader once its budget is
        // spent, and `yield_now` lets the drivers run in between).
        let mut reader = pin!(reader);
        let mut ends = 0;
        loop {
            publisher.send("end").await.unwrap();
            ends += 1;
            assert!(ends < 10_000_000, "the end marker never arrived");
            tokio::select! {
                biased;
                done = &mut reader => { done.unwrap(); break; }
                () = tokio::task::yield_now() => {}
            }
        }
        let received = received.get();
        eprintln!("{endpoint}: the subscriber received {received} of {SENT}");
        assert!(
            received >= SENT / 2,
            "the subscriber received {received} of {SENT} messages"
        );
    });
}

#[test]
fn a_push_loop_on_one_thread_delivers_everything_to_its_pull() {
    const SENT: usize = 200_000;
    run_on_one_thread(async {
        let mut pull = Pull::bind("tcp://127.0.0.1:0").await.unwrap();
        let bound = pull.endpoints()[0].to_string();
        let mut push = Push::connect(&bound).await.unwrap();
        push.wait_for_peers(1).await.unwrap();
        let reader = tokio::task::spawn_local(async move {
            for _ in 0..SENT {
                pull.recv().await.unwrap();
            }
        });
        for _ in 0..SENT {
            push.send("0123456789abcdef").await.unwrap();
        }
        reader.await.unwrap();
    });
}

/// A task that counts the ticks of a 1 ms timer until told to stop.
fn ticker() -> (Rc<Cell<usize>>, tokio::task::JoinHandle<()>) {
    let ticks = Rc::new(Cell::new(0usize));
    let task = tokio::task::spawn_local({
        let ticks = ticks.clone();
        async move {
            let mut every = tokio::time::interval(Duration::from_millis(1));
            loop {
                every.tick().await;
                ticks.set(ticks.get() + 1);
            }
        }
    });
    (ticks, task)
}

#[test]
fn a_router_sending_in_a_loop_on_one_thread_lets_a_timer_tick_and_its_dealer_read() {
    const MAX: usize = 2_000_000;
    run_on_one_thread(async {
        let mut router = Router::bind("tcp://127.0.0.1:0").await.unwrap();
        let bound = router.endpoints()[0].to_string();
        let dealer = Dealer::with_options(Options::new().identity("d"));
        dealer.connect(&bound).unwrap();
        dealer.wait_for_peers(1).await.unwrap();
        router.wait_for_peers(1).await.unwrap();
        let received = Rc::new(Cell::new(0usize));
        let reader = tokio::task::spawn_local({
            let received = received.clone();
            let mut dealer = dealer;
            async move {
                loop {
                    dealer.recv().await.unwrap();
                    received.set(received.get() + 1);
                }
            }
        });
        let (ticks, timer) = ticker();
        let start = ticks.get();
        let mut sent = 0;
        // Send until the timer ticked three times and the dealer got something.
        while ticks.get() < start + 3 || received.get() == 0 {
            assert!(
                sent < MAX,
                "{MAX} sends and the timer ticked {} times, the dealer read {}",
                ticks.get() - start,
                received.get()
            );
            router.send("d", "0123456789abcdef").await.unwrap();
            sent += 1;
        }
        timer.abort();
        reader.abort();
    });
}

#[test]
fn a_dealer_router_exchange_on_one_thread_lets_a_timer_tick() {
    const MAX: usize = 1_000_000;
    run_on_one_thread(async {
        let mut router = Router::bind("tcp://127.0.0.1:0").await.unwrap();
        let bound = router.endpoints()[0].to_string();
        let mut dealer = Dealer::connect(&bound).await.unwrap();
        dealer.wait_for_peers(1).await.unwrap();
        router.wait_for_peers(1).await.unwrap();
        let echo = tokio::task::spawn_local(async move {
            loop {
                let (id, msg) = router.recv().await.unwrap();
                router.send(id, msg).await.unwrap();
            }
        });
        let (ticks, timer) = ticker();
        let start = ticks.get();
        let mut exchanged = 0;
        // Pipelined: 100 messages out, then their 100 echoes back.
        while ticks.get() < start + 3 {
            assert!(
                exchanged < MAX,
                "{MAX} messages and the timer never ticked 3 times"
            );
            for _ in 0..100 {
                dealer.send("ping").await.unwrap();
            }
            for _ in 0..100 {
                dealer.recv().await.unwrap();
            }
            exchanged += 100;
        }
        timer.abort();
        echo.abort();
    });
}

#[test]
fn a_req_rep_loop_on_one_thread_lets_a_timer_tick() {
    const MAX: usize = 1_000_000;
    run_on_one_thread(async {
        let mut rep = Rep::bind("tcp://127.0.0.1:0").await.unwrap();
        let bound = rep.endpoints()[0].to_string();
        let mut req = Req::connect(&bound).await.unwrap();
        req.wait_for_peers(1).await.unwrap();
        let server = tokio::task::spawn_local(async move {
            loop {
                let request = rep.recv().await.unwrap();
                let body = request.message().clone();
                request.reply(body).await.unwrap();
            }
        });
        let (ticks, timer) = ticker();
        let start = ticks.get();
        let mut requests = 0;
        while ticks.get() < start + 3 {
            assert!(
                requests < MAX,
                "{MAX} requests and the timer never ticked 3 times"
            );
            let reply = req.request("ping").await.unwrap();
            assert_eq!(reply.frames()[0], "ping");
            requests += 1;
        }
        timer.abort();
        server.abort();
    });
}

// ----- each operation spends the budget -----

#[tokio::test(flavor = "current_thread")]
async fn pub_send_spends_the_task_budget() {
    pub_send_spends_budget("budget-pub").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pub_send_spends_the_task_budget_on_two_workers() {
    pub_send_spends_budget("budget-pub-mt").await;
}

async fn pub_send_spends_budget(tag: &str) {
    let publisher = Pub::bind(&inproc(tag)).await.unwrap();
    let ready = ready_in_one_poll!(MANY, publisher.send("m"));
    assert_yields("Pub::send", ready);
    // After yielding it sends again.
    publisher.send("m").await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn pub_as_a_sink_spends_the_task_budget() {
    let mut publisher = Pub::bind(&inproc("budget-pub-sink")).await.unwrap();
    let ready = ready_in_one_poll!(MANY, SinkExt::send(&mut publisher, "m".into()));
    assert_yields("Pub as a Sink", ready);
}

#[tokio::test(flavor = "current_thread")]
async fn push_send_spends_the_task_budget() {
    let ep = inproc("budget-push");
    let mut pull = Pull::with_options(roomy());
    pull.bind(&ep).await.unwrap();
    let mut push = Push::with_options(roomy());
    push.connect(&ep).unwrap();
    push.wait_for_peers(1).await.unwrap();
    let ready = ready_in_one_poll!(MANY, push.send("m"));
    assert_yields("Push::send", ready);
    // What was sent arrives.
    for _ in 0..ready {
        timeout(common::WAIT, pull.recv()).await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "current_thread")]
async fn router_send_spends_the_task_budget() {
    let ep = inproc("budget-router");
    let mut router = Router::with_options(roomy());
    router.bind(&ep).await.unwrap();
    let dealer = Dealer::with_options(roomy().identity("d"));
    dealer.connect(&ep).unwrap();
    router.wait_for_peers(1).await.unwrap();
    let ready = ready_in_one_poll!(MANY, router.send("d", "m"));
    assert_yields("Router::send", ready);
}

/// `count` messages queued for `pull` over inproc, all in its queue already.
async fn queued_pull(tag: &str, count: usize) -> (Push, Pull) {
    let ep = inproc(tag);
    let pull = Pull::with_options(roomy());
    pull.bind(&ep).await.unwrap();
    let mut push = Push::with_options(roomy());
    push.connect(&ep).unwrap();
    push.wait_for_peers(1).await.unwrap();
    for _ in 0..count {
        push.send("m").await.unwrap();
    }
    (push, pull)
}

#[tokio::test(flavor = "current_thread")]
async fn pull_recv_spends_the_task_budget() {
    pull_recv_spends_budget("budget-pull").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_recv_spends_the_task_budget_on_two_workers() {
    pull_recv_spends_budget("budget-pull-mt").await;
}

async fn pull_recv_spends_budget(tag: &str) {
    let (_push, mut pull) = queued_pull(tag, MANY).await;
    let ready = ready_in_one_poll!(MANY, pull.recv());
    assert_yields("Pull::recv", ready);
    // Nothing was lost by yielding: the rest is there.
    for _ in ready..MANY {
        timeout(common::WAIT, pull.recv()).await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_receiving_stream_spends_the_task_budget() {
    let (_push, mut pull) = queued_pull("budget-stream", MANY).await;
    let ready = ready_in_one_poll!(MANY, pull.next());
    assert_yields("Pull as a Stream", ready);
}

#[tokio::test(flavor = "current_thread")]
async fn sub_recv_spends_the_task_budget() {
    let ep = inproc("budget-sub");
    let publisher = Pub::with_options(roomy());
    publisher.bind(&ep).await.unwrap();
    let mut sub = Sub::with_options(roomy());
    sub.connect(&ep).unwrap();
    sub.subscribe("");
    sub.wait_for_peers(1).await.unwrap();
    publisher.wait_for_peers(1).await.unwrap();
    for _ in 0..MANY {
        publisher.send("m").await.unwrap();
    }
    let ready = ready_in_one_poll!(MANY, sub.recv());
    assert_yields("Sub::recv", ready);
}

#[tokio::test(flavor = "current_thread")]
async fn rep_recv_and_reply_spend_the_task_budget() {
    let ep = inproc("budget-rep");
    let mut rep = Rep::with_options(roomy());
    rep.bind(&ep).await.unwrap();
    // Dealers speak to a Rep with an empty delimiter before the body.
    let mut dealer = Dealer::with_options(roomy());
    dealer.connect(&ep).unwrap();
    dealer.wait_for_peers(1).await.unwrap();
    for _ in 0..MANY {
        dealer.send(["", "q"]).await.unwrap();
    }
    let ready = ready_in_one_poll!(MANY, async {
        let request = rep.recv().await.unwrap();
        request.reply("a").await.unwrap();
    });
    // Each round spends two units (a receive and a reply).
    assert_yields("Rep::recv and Request::reply", ready);
    assert!(
        ready <= 64,
        "{ready} rounds of receive and reply in one poll"
    );
    // A reply that yielded was not sent; the others were.
    for _ in 0..ready {
        let reply = timeout(common::WAIT, dealer.recv()).await.unwrap().unwrap();
        assert_eq!(reply.frames()[1], "a");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_request_whose_budget_is_spent_yields_before_sending() {
    let ep = inproc("budget-req");
    let mut rep = Rep::bind(&ep).await.unwrap();
    let mut req = Req::connect(&ep).await.unwrap();
    req.wait_for_peers(1).await.unwrap();
    // Spend the budget on a Pub with nobody listening, then try a request in the same poll.
    let idle = Pub::new();
    tokio::task::yield_now().await;
    let sent_with_no_budget = poll_fn(|cx| {
        for _ in 0..MANY {
            if pin!(idle.send("m")).poll(cx).is_pending() {
                break;
            }
        }
        let mut request = pin!(req.request("first"));
        Poll::Ready(request.as_mut().poll(cx).is_ready())
    })
    .await;
    assert!(!sent_with_no_budget);
    // The yielded request was not sent: the first request the Rep sees is the next one.
    let (reply, ()) = tokio::join!(req.request("second"), async {
        let request = rep.recv().await.unwrap();
        assert_eq!(request.message().frames()[0], "second");
        request.reply("ok").await.unwrap();
    });
    assert_eq!(reply.unwrap().frames()[0], "ok");
}
