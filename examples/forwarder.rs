//! A pub/sub forwarder: `zocket::forward` joins an `XSub` (publishers connect to it) and an
//! `XPub` (subscribers connect to it), so publishers and subscribers know only the forwarder.
//!
//! ```text
//! cargo run --example forwarder                                   # a demo in one process, then exits
//! cargo run --example forwarder -- tcp://0.0.0.0:5570 tcp://0.0.0.0:5571   # a forwarder, until Ctrl-C
//! ```
//!
//! The demo starts a forwarder on two ephemeral loopback ports, two subscribers (`weather.`
//! and `sports.`) on its downstream side and two publishers on its upstream side. The
//! subscriptions travel up through the forwarder to the publishers, which filter: a message
//! nobody subscribed to (`traffic.`) never leaves its publisher. Each publisher is an
//! `XPub`, so it *sees* the subscriptions arrive and starts publishing only once someone
//! wants its topic (a plain `Pub` would work the same, minus that knowledge: messages it
//! publishes before the subscriptions reach it are not delivered).

use std::time::Duration;

use zocket::{Message, Sub, XPub, XSub};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => demo().await?,
        [up, down] => run_forever(up, down).await?,
        _ => {
            eprintln!("usage: forwarder [UPSTREAM_ENDPOINT DOWNSTREAM_ENDPOINT]");
            std::process::exit(2);
        }
    }
    Ok(())
}

async fn demo() -> zocket::Result<()> {
    // The forwarder: publishers connect upstream, subscribers downstream.
    let mut xsub = XSub::new();
    let upstream = xsub.bind("tcp://127.0.0.1:0").await?.to_string();
    let mut xpub = XPub::new();
    let downstream = xpub.bind("tcp://127.0.0.1:0").await?.to_string();
    println!("forwarder: publishers connect to {upstream}, subscribers to {downstream}");
    let forwarder = tokio::spawn(async move { zocket::forward(&mut xsub, &mut xpub).await });

    // Subscribers know only the forwarder's downstream endpoint.
    let mut subscribers = Vec::new();
    for topic in ["weather.", "sports."] {
        let sub = Sub::connect(&downstream).await?;
        sub.subscribe(topic);
        sub.wait_for_peers(1).await?; // the forwarder has our subscription
        println!("sub[{topic}] connected to the forwarder and subscribed");
        subscribers.push(tokio::spawn(receive(topic, sub, 3)));
    }

    // Publishers know only the forwarder's upstream endpoint.
    let weather = [
        ["weather.paris", "sunny, 24 C"],
        ["weather.oslo", "snow, -3 C"],
        ["weather.lima", "fog, 17 C"],
    ];
    let sports = [
        ["sports.football", "Lyon 2 - 1 Nantes"],
        ["sports.tennis", "6-4 6-3"],
        ["sports.chess", "draw in 41 moves"],
    ];
    let publishers = [
        tokio::spawn(publish("weather.", upstream.clone(), weather)),
        tokio::spawn(publish("sports.", upstream.clone(), sports)),
    ];

    let mut heard = 0;
    for task in subscribers {
        heard += task.await.expect("subscriber task panicked")?;
    }
    for task in publishers {
        task.await.expect("publisher task panicked")?;
    }
    forwarder.abort();
    println!(
        "\nthe subscribers received {heard} of 6 messages; no traffic. message reached anyone"
    );
    Ok(())
}

/// A publisher (an `XPub`, to see subscriptions arrive) that waits until the forwarder
/// passes on a subscription to `topic`, then publishes `messages`, each after an unwanted
/// `traffic.` message.
async fn publish(
    topic: &'static str,
    upstream: String,
    messages: [[&'static str; 2]; 3],
) -> zocket::Result<()> {
    let mut publisher = XPub::connect(&upstream).await?;
    loop {
        let subscription = tokio::time::timeout(Duration::from_secs(10), publisher.recv())
            .await
            .map_err(|_| zocket::Error::Timeout)??;
        // 0x01 + prefix: a subscribe; 0x00 + prefix: an unsubscribe.
        let frame = &subscription.frames()[0];
        let (kind, prefix) = match frame.split_first() {
            Some((1, prefix)) => ("subscribe", prefix),
            Some((_, prefix)) => ("unsubscribe", prefix),
            None => continue,
        };
        let wanted = kind == "subscribe" && prefix == topic.as_bytes();
        println!(
            "publisher[{topic}] hears {kind} {:?}, forwarded by the forwarder",
            String::from_utf8_lossy(prefix)
        );
        if wanted {
            break;
        }
    }
    for msg in messages {
        publisher.send(["traffic.a7", "jam"]).await?; // nobody subscribed: filtered here
        println!("publisher[{topic}] -> {}", show(&Message::from(msg)));
        publisher.send(msg).await?;
    }
    publisher.close().await;
    Ok(())
}

/// Receives `expected` messages (or gives up after 10 s) and prints each one.
async fn receive(name: &'static str, mut sub: Sub, expected: usize) -> zocket::Result<usize> {
    let mut received = 0;
    while received < expected {
        match tokio::time::timeout(Duration::from_secs(10), sub.recv()).await {
            Ok(msg) => {
                println!("  sub[{name}] <- {}", show(&msg?));
                received += 1;
            }
            Err(_) => {
                println!("  sub[{name}] timed out waiting for a message");
                break;
            }
        }
    }
    sub.close().await;
    Ok(received)
}

/// A forwarder between `up` (publishers connect) and `down` (subscribers connect), until
/// Ctrl-C.
async fn run_forever(up: &str, down: &str) -> zocket::Result<()> {
    let mut xsub = XSub::bind(up).await?;
    let mut xpub = XPub::bind(down).await?;
    println!("forwarding from {up} to {down} (Ctrl-C to stop)");
    tokio::select! {
        result = zocket::forward(&mut xsub, &mut xpub) => result,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// A message's frames as text, separated by ` | `.
fn show(msg: &Message) -> String {
    msg.frames()
        .iter()
        .map(|frame| String::from_utf8_lossy(frame))
        .collect::<Vec<_>>()
        .join(" | ")
}
