//! A three-node cluster in which every node is publisher and subscriber at once.
//!
//! ```text
//! cargo run --example cluster
//! ```
//!
//! Each node binds a `Pub` on its own ephemeral loopback port and connects a `Sub`
//! (subscribed to everything) to the two other nodes' publishers. Once every subscriber
//! has its two peers (`wait_for_peers(2)`, which also means the publishers have applied
//! the subscriptions), each node says "hello from node N" three times and prints what it
//! hears. At the end the example checks that each node heard every greeting of the two
//! others, and never its own.

use std::time::Duration;

use zocket::{Message, Pub, Sub};

const NODES: usize = 3;
const GREETINGS: usize = 3;

struct Node {
    id: usize,
    publisher: Pub,
    subscriber: Sub,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().len() > 1 {
        eprintln!("cluster takes no arguments; it runs its {NODES} nodes in one process");
        std::process::exit(2);
    }

    // Every node binds its publisher first, so each knows where the others are.
    let mut publishers = Vec::new();
    let mut endpoints = Vec::new();
    for id in 1..=NODES {
        let publisher = Pub::new();
        let endpoint = publisher.bind("tcp://127.0.0.1:0").await?.to_string();
        println!("node {id}: publishing on {endpoint}");
        publishers.push(publisher);
        endpoints.push(endpoint);
    }

    // Then connects its subscriber to every other node.
    let mut nodes = Vec::new();
    for (i, publisher) in publishers.into_iter().enumerate() {
        let subscriber = Sub::new();
        subscriber.subscribe("");
        for (j, endpoint) in endpoints.iter().enumerate() {
            if i != j {
                subscriber.connect(endpoint)?;
            }
        }
        nodes.push(Node {
            id: i + 1,
            publisher,
            subscriber,
        });
    }
    for node in &nodes {
        node.subscriber.wait_for_peers(NODES - 1).await?;
        println!("node {}: subscribed to its {} peers", node.id, NODES - 1);
    }
    println!();

    let tasks: Vec<_> = nodes
        .into_iter()
        .map(|node| tokio::spawn(run_node(node)))
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("node task panicked")?);
    }
    println!();
    let mut ok = true;
    for (id, heard) in results {
        let own = heard.iter().filter(|&&from| from == id).count();
        let others: Vec<usize> = (1..=NODES)
            .filter(|&other| other != id)
            .map(|other| heard.iter().filter(|&&from| from == other).count())
            .collect();
        let complete = others.iter().all(|&count| count == GREETINGS);
        println!(
            "node {id}: heard {} greetings, {} from itself, all {} from each peer: {}",
            heard.len(),
            own,
            GREETINGS,
            if complete { "yes" } else { "NO" }
        );
        ok &= own == 0 && complete;
    }
    if ok {
        println!(
            "check passed: no node ever heard itself, and every greeting reached both other nodes"
        );
        Ok(())
    } else {
        Err("check failed".into())
    }
}

/// Says hello `GREETINGS` times, then listens until it has heard every greeting of the
/// other nodes, and 300 ms more in case anything else (its own voice) arrives; it gives up
/// after 2 s without a message. Returns the node id and who it heard.
async fn run_node(mut node: Node) -> zocket::Result<(usize, Vec<usize>)> {
    let id = node.id;
    for k in 1..=GREETINGS {
        let greeting =
            Message::from([format!("node.{id}"), format!("hello from node {id} (#{k})")]);
        node.publisher.send(greeting).await?;
    }
    let mut heard = Vec::new();
    let expected = (NODES - 1) * GREETINGS;
    loop {
        let patience = if heard.len() < expected {
            Duration::from_secs(2)
        } else {
            Duration::from_millis(300)
        };
        let Ok(msg) = tokio::time::timeout(patience, node.subscriber.recv()).await else {
            break;
        };
        let msg = msg?;
        let topic = String::from_utf8_lossy(&msg.frames()[0]).into_owned();
        let from: usize = topic.trim_start_matches("node.").parse().unwrap_or(0);
        println!(
            "node {id} heard: {}",
            String::from_utf8_lossy(&msg.frames()[1])
        );
        heard.push(from);
    }
    node.publisher.close().await;
    node.subscriber.close().await;
    Ok((id, heard))
}
