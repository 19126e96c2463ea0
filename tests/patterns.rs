//! Every pattern over tcp, ipc and inproc.

mod common;

use common::endpoints;

use std::time::Duration;

use futures::StreamExt;
use tokio::time::timeout;
use zocket::{Dealer, Message, Pair, Pub, Pull, Push, Rep, Req, Router, Sub};

const T: Duration = Duration::from_secs(10);

fn text(msg: &Message) -> Vec<String> {
    msg.frames()
        .iter()
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pub_sub_filters_by_prefix_on_every_transport() {
    for ep in endpoints("pubsub") {
        let publisher = Pub::new();
        let bound = publisher.bind(&ep).await.unwrap().to_string();
        let mut weather = Sub::connect(&bound).await.unwrap();
        weather.subscribe("weather.");
        let mut all = Sub::connect(&bound).await.unwrap();
        all.subscribe("");
        timeout(T, weather.wait_for_peers(1))
            .await
            .unwrap()
            .unwrap();
        timeout(T, all.wait_for_peers(1)).await.unwrap().unwrap();
        timeout(T, publisher.wait_for_peers(2))
            .await
            .unwrap()
            .unwrap();
        publisher.send(["sports.football", "1-0"]).await.unwrap();
        publisher.send(["weather.paris", "sunny"]).await.unwrap();
        let got = timeout(T, weather.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(text(&got), ["weather.paris", "sunny"], "{ep}");
        let first = timeout(T, all.next()).await.unwrap().unwrap().unwrap();
        let second = timeout(T, all.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(text(&first)[0], "sports.football", "{ep}");
        assert_eq!(text(&second)[0], "weather.paris", "{ep}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_pull_spreads_evenly_over_pullers() {
    for ep in endpoints("pipeline") {
        let mut push = Push::new();
        let bound = push.bind(&ep).await.unwrap().to_string();
        let mut pulls = vec![];
        for _ in 0..3 {
            pulls.push(Pull::connect(&bound).await.unwrap());
        }
        timeout(T, push.wait_for_peers(3)).await.unwrap().unwrap();
        for i in 0..30 {
            push.send(format!("job {i}")).await.unwrap();
        }
        for pull in &mut pulls {
            for _ in 0..10 {
                timeout(T, pull.recv())
                    .await
                    .expect("each puller gets 10")
                    .unwrap();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn req_rep_round_trip_on_every_transport() {
    for ep in endpoints("reqrep") {
        let mut rep = Rep::new();
        let bound = rep.bind(&ep).await.unwrap().to_string();
        let server = tokio::spawn(async move {
            for _ in 0..3 {
                let request = rep.recv().await.unwrap();
                let body = text(request.message()).join("+");
                request.reply(format!("re: {body}")).await.unwrap();
            }
        });
        let mut req = Req::connect(&bound).await.unwrap();
        for i in 0..3 {
            let request = Message::from(["hello".to_owned(), i.to_string()]);
            let reply = timeout(T, req.request(request)).await.unwrap().unwrap();
            assert_eq!(text(&reply), [format!("re: hello+{i}")], "{ep}");
        }
        server.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dealer_router_with_identities() {
    for ep in endpoints("routing") {
        let mut router = Router::new();
        let bound = router.bind(&ep).await.unwrap().to_string();
        let mut dealer = Dealer::with_options(zocket::Options::new().identity("worker-7"));
        dealer.connect(&bound).unwrap();
        timeout(T, router.wait_for_peers(1)).await.unwrap().unwrap();
        dealer.send(["ready"]).await.unwrap();
        let (id, msg) = timeout(T, router.recv()).await.unwrap().unwrap();
        assert_eq!(&id[..], b"worker-7", "{ep}");
        assert_eq!(text(&msg), ["ready"]);
        router.send(&id, ["job", "42"]).await.unwrap();
        let got = timeout(T, dealer.recv()).await.unwrap().unwrap();
        assert_eq!(text(&got), ["job", "42"], "{ep}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pair_talks_both_ways() {
    for ep in endpoints("pair") {
        let mut a = Pair::new();
        let bound = a.bind(&ep).await.unwrap().to_string();
        let mut b = Pair::connect(&bound).await.unwrap();
        timeout(T, b.wait_for_peers(1)).await.unwrap().unwrap();
        b.send("ping").await.unwrap();
        assert_eq!(
            text(&timeout(T, a.recv()).await.unwrap().unwrap()),
            ["ping"]
        );
        a.send("pong").await.unwrap();
        assert_eq!(
            text(&timeout(T, b.recv()).await.unwrap().unwrap()),
            ["pong"]
        );
    }
}
