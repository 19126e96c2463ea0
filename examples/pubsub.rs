//! Publish/subscribe with `zocket::Pub` and `zocket::Sub`.
//!
//! ```text
//! cargo run --example pubsub                                        # all in one process, then exits
//! cargo run --example pubsub -- pub tcp://127.0.0.1:5556            # terminal 1: publish every 500 ms
//! cargo run --example pubsub -- sub tcp://127.0.0.1:5556 weather.   # terminal 2: print what arrives
//! ```
//!
//! With no arguments, one publisher binds an ephemeral loopback port and two subscribers
//! connect to it: one subscribed to `weather.`, one to everything. `wait_for_peers` returns
//! once the publisher has applied each subscriber's subscriptions, so none of the six
//! messages is lost to ZeroMQ's "slow joiner" problem. Filtering happens at the publisher:
//! the `weather.` subscriber never even receives the `sports.` messages.

use std::time::Duration;

use futures::StreamExt;
use zocket::{Message, Pub, Sub};

const MESSAGES: [[&str; 2]; 6] = [
    ["weather.paris", "sunny, 24 C"],
    ["sports.football", "Lyon 2 - 1 Nantes"],
    ["weather.oslo", "snow, -3 C"],
    ["sports.tennis", "6-4 6-3"],
    ["weather.lima", "fog, 17 C"],
    ["sports.chess", "draw in 41 moves"],
];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => demo().await?,
        Some("pub") => {
            publish_forever(args.get(1).map_or("tcp://127.0.0.1:5556", String::as_str)).await?
        }
        Some("sub") => {
            let endpoint = args.get(1).map_or("tcp://127.0.0.1:5556", String::as_str);
            subscribe_forever(endpoint, args.get(2).map_or("", String::as_str)).await?;
        }
        Some(other) => {
            eprintln!(
                "unknown mode {other:?}; usage: pubsub [pub ENDPOINT | sub ENDPOINT [TOPIC]]"
            );
            std::process::exit(2);
        }
    }
    Ok(())
}

/// One publisher and two subscribers in one process.
async fn demo() -> zocket::Result<()> {
    let publisher = Pub::new();
    let endpoint = publisher.bind("tcp://127.0.0.1:0").await?.to_string();
    println!("publisher bound to {endpoint}");

    let weather = Sub::connect(&endpoint).await?;
    weather.subscribe("weather.");
    let everything = Sub::connect(&endpoint).await?;
    everything.subscribe("");

    // Wait until the publisher knows both subscribers and their subscriptions.
    weather.wait_for_peers(1).await?;
    everything.wait_for_peers(1).await?;
    println!("both subscribers connected and subscribed\n");

    let weather_task = tokio::spawn(receive("sub[weather.]", weather, 3));
    let everything_task = tokio::spawn(receive("sub[*]       ", everything, 6));

    for msg in MESSAGES {
        println!("publish       {}", show(&Message::from(msg)));
        publisher.send(msg).await?;
    }

    let heard_weather = weather_task.await.expect("subscriber task panicked")?;
    let heard_all = everything_task.await.expect("subscriber task panicked")?;
    println!(
        "\nsub[weather.] received {heard_weather} of {} messages, sub[*] received {heard_all}",
        MESSAGES.len()
    );
    publisher.close().await;
    Ok(())
}

/// Receives `expected` messages (or gives up after 5 s) and prints each one.
async fn receive(name: &'static str, mut sub: Sub, expected: usize) -> zocket::Result<usize> {
    let mut received = 0;
    while received < expected {
        match tokio::time::timeout(Duration::from_secs(5), sub.recv()).await {
            Ok(msg) => {
                println!("  {name} <- {}", show(&msg?));
                received += 1;
            }
            Err(_) => {
                println!("  {name} timed out waiting for a message");
                break;
            }
        }
    }
    sub.close().await;
    Ok(received)
}

/// Publishes a numbered message on two topics every 500 ms, until Ctrl-C.
async fn publish_forever(endpoint: &str) -> zocket::Result<()> {
    let publisher = Pub::bind(endpoint).await?;
    println!("publishing on {endpoint} every 500 ms (Ctrl-C to stop)");
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    for n in 1u64.. {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        for topic in ["weather.paris", "sports.football"] {
            let msg = Message::from([topic.to_string(), format!("update #{n}")]);
            println!(
                "publish {}  ({} subscriber(s))",
                show(&msg),
                publisher.peers()
            );
            publisher.send(msg).await?;
        }
    }
    publisher.close().await;
    Ok(())
}

/// Prints every message whose topic starts with `topic`, until Ctrl-C.
async fn subscribe_forever(endpoint: &str, topic: &str) -> zocket::Result<()> {
    let mut sub = Sub::connect(endpoint).await?;
    sub.subscribe(topic);
    println!("subscribed to {topic:?} on {endpoint} (Ctrl-C to stop)");
    loop {
        tokio::select! {
            msg = sub.next() => match msg {
                Some(msg) => println!("received {}", show(&msg?)),
                None => break,
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    Ok(())
}

/// A message's frames as text, separated by ` | `.
fn show(msg: &Message) -> String {
    msg.frames()
        .iter()
        .map(|frame| String::from_utf8_lossy(frame))
        .collect::<Vec<_>>()
        .join(" | ")
}
