//! A cluster that finds itself by mDNS: no addresses anywhere.
//!
//! ```text
//! cargo run --example discovery               # three nodes, a b c, in this process
//! cargo run --example discovery -- node NAME  # one node; start several (other terminals,
//!                                             # other machines on the LAN)
//! ```
//!
//! Each node binds a `Pub` on `mdns://chat` — an ephemeral TCP port, announced on the local
//! network as a `_zocket._tcp.local.` instance — and connects a `Sub` to `mdns://chat`,
//! which connects to every other node's publisher as it appears. Every second, for a few
//! seconds, each node publishes its name, and prints what it hears. A node never hears
//! itself: its subscriber skips the announcements of its own node (by default its process;
//! here, in one process, each node is named with `Options::node`).
//!
//! This sends multicast DNS on your network interfaces, as any mDNS service does.

use std::collections::BTreeMap;
use std::time::Duration;

use zocket::{Message, Options, Pub, Sub};

const ROUNDS: usize = 4;
const NODES: [&str; 3] = ["a", "b", "c"];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => three_nodes().await,
        ["node", name] => one_node(name).await,
        _ => {
            eprintln!("usage: discovery [node NAME]");
            std::process::exit(2);
        }
    }
}

/// One node: a publisher and a subscriber on `mdns://chat`.
struct Node {
    name: String,
    publisher: Pub,
    subscriber: Sub,
}

impl Node {
    async fn start(name: &str, options: Options) -> zocket::Result<Node> {
        let publisher = Pub::with_options(options.clone());
        let bound = publisher.bind("mdns://chat").await?;
        println!("{name}: publishing on {bound}, announced as mdns://chat");
        let subscriber = Sub::with_options(options);
        subscriber.subscribe("");
        subscriber.connect("mdns://chat")?;
        Ok(Node {
            name: name.to_owned(),
            publisher,
            subscriber,
        })
    }

    /// Publishes its name every second for `ROUNDS` seconds while printing what it hears;
    /// returns how often it heard each node.
    async fn chat(mut self) -> zocket::Result<(String, BTreeMap<String, usize>)> {
        let mut heard = BTreeMap::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut round = 0;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if round == ROUNDS {
                        break;
                    }
                    round += 1;
                    let hello = Message::from([self.name.clone(), format!("hello #{round}")]);
                    self.publisher.send(hello).await?;
                }
                msg = self.subscriber.recv() => {
                    let msg = msg?;
                    let from = String::from_utf8_lossy(&msg.frames()[0]).into_owned();
                    let text = String::from_utf8_lossy(&msg.frames()[1]).into_owned();
                    println!("{} heard {from}: {text}", self.name);
                    *heard.entry(from).or_insert(0) += 1;
                }
            }
        }
        self.publisher.close().await;
        self.subscriber.close().await;
        Ok((self.name, heard))
    }
}

async fn three_nodes() -> Result<(), Box<dyn std::error::Error>> {
    let mut nodes = Vec::new();
    for name in NODES {
        nodes.push(Node::start(name, Options::new().node(name)).await?);
    }
    // Every subscriber has found the two other publishers (and they have its
    // subscription) before anyone speaks, so nothing is missed.
    for node in &nodes {
        let found = tokio::time::timeout(
            Duration::from_secs(10),
            node.subscriber.wait_for_peers(NODES.len() - 1),
        )
        .await;
        if found.is_err() {
            return Err(format!(
                "{} found {} of its {} peers in 10 s: is multicast blocked here?",
                node.name,
                node.subscriber.peers(),
                NODES.len() - 1
            )
            .into());
        }
        println!("{}: found both other nodes", node.name);
    }
    let tasks: Vec<_> = nodes.into_iter().map(|n| tokio::spawn(n.chat())).collect();
    let mut ok = true;
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await??);
    }
    println!();
    for (name, heard) in results {
        let own = heard.get(&name).copied().unwrap_or(0);
        let others: Vec<String> = NODES
            .iter()
            .filter(|n| **n != name)
            .map(|n| format!("{n} {}x", heard.get(*n).copied().unwrap_or(0)))
            .collect();
        let complete = NODES
            .iter()
            .filter(|n| **n != name)
            .all(|n| heard.get(*n).copied().unwrap_or(0) > 0);
        println!("{name} heard {}, itself {own}x", others.join(", "));
        ok &= own == 0 && complete;
    }
    if ok {
        println!("check passed: every node heard both others and never itself");
        Ok(())
    } else {
        Err("check failed".into())
    }
}

async fn one_node(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let node = Node::start(name, Options::new().node(name)).await?;
    println!("{name}: talking for {ROUNDS} s; start other nodes to hear them");
    let (_, heard) = node.chat().await?;
    println!("{name} heard: {heard:?}");
    Ok(())
}
