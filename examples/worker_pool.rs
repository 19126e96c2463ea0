//! A worker pool: `Req` clients -> `Router` | `zocket::proxy` | `Dealer` -> `Rep` workers.
//!
//! ```text
//! cargo run --example worker_pool
//! ```
//!
//! One process, loopback TCP. A broker binds a `Router` for clients and a `Dealer` for
//! workers and joins them with `zocket::proxy`; the dealer hands each request to the next
//! worker in turn and the router sends each reply back to the client that asked. Four `Rep`
//! workers and two `Req` clients (A and B, ten requests each) connect to it.
//!
//! Midway, worker 2 is killed while it holds a request: its task is aborted, which drops
//! its socket, and the request it held is never answered. The clients use ZeroMQ's "lazy
//! pirate" pattern: with `Options::request_timeout` set to 500 ms a lost request fails
//! with `Error::Timeout`, and the client sends it again; a live worker answers the retry.
//! The example exits once every request is answered and prints how many each worker served.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::oneshot;
use zocket::{Dealer, Error, Message, Options, Rep, Req, Router};

const WORKERS: usize = 4;
const REQUESTS_PER_CLIENT: usize = 10;
const VICTIM: usize = 2;
const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);
const MAX_ATTEMPTS: usize = 5;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().len() > 1 {
        eprintln!("worker_pool takes no arguments; it runs the broker, workers and clients itself");
        std::process::exit(2);
    }
    tokio::time::timeout(Duration::from_secs(60), run())
        .await
        .map_err(|_| "the example did not finish within 60 s")??;
    Ok(())
}

async fn run() -> zocket::Result<()> {
    // The broker.
    let mut frontend = Router::new();
    let frontend_ep = frontend.bind("tcp://127.0.0.1:0").await?.to_string();
    let mut backend = Dealer::new();
    let backend_ep = backend.bind("tcp://127.0.0.1:0").await?.to_string();
    println!("broker: clients connect to {frontend_ep}, workers to {backend_ep}");

    // The workers. Worker 2 reports the third request it receives, and is killed then.
    let (victim_tx, victim_rx) = oneshot::channel();
    let mut victim_tx = Some(victim_tx);
    let mut workers = Vec::new();
    for n in 1..=WORKERS {
        let rep = Rep::connect(&backend_ep).await?;
        rep.wait_for_peers(1).await?;
        let report = if n == VICTIM { victim_tx.take() } else { None };
        workers.push(tokio::spawn(worker(n, rep, report)));
    }
    backend.wait_for_peers(WORKERS).await?;
    println!("broker: {WORKERS} workers connected");

    let broker = tokio::spawn(async move { zocket::proxy(&mut frontend, &mut backend).await });

    let victim = workers[VICTIM - 1].abort_handle();
    let killer = tokio::spawn(async move {
        if let Ok(held) = victim_rx.await {
            victim.abort();
            println!("*** worker {VICTIM} killed while holding {held:?} ***");
        }
    });

    // The clients.
    let clients: Vec<_> = ["A", "B"]
        .into_iter()
        .map(|name| tokio::spawn(client(name, frontend_ep.clone())))
        .collect();
    let mut served = BTreeMap::<usize, usize>::new();
    let mut retries = 0;
    for client in clients {
        let report = client.await.expect("client task panicked")?;
        for worker in report.served_by {
            *served.entry(worker).or_default() += 1;
        }
        retries += report.retries;
    }

    broker.abort();
    killer.abort();
    for worker in workers {
        worker.abort();
    }

    let total: usize = served.values().sum();
    println!("\nall {total} requests answered ({retries} retried after a timeout)");
    for n in 1..=WORKERS {
        let count = served.get(&n).copied().unwrap_or(0);
        let note = if n == VICTIM { "  (killed midway)" } else { "" };
        let plural = if count == 1 { "" } else { "s" };
        println!("  worker {n}: {count:2} request{plural}{note}");
    }
    Ok(())
}

/// Serves requests: takes 100 ms of "work", then replies with its number.
/// With `report`, tells it (and then keeps working) when it holds its third request.
async fn worker(
    n: usize,
    mut rep: Rep,
    mut report: Option<oneshot::Sender<String>>,
) -> zocket::Result<()> {
    let mut count = 0;
    loop {
        let request = rep.recv().await?;
        count += 1;
        let text = show(request.message());
        if count == 3 {
            if let Some(report) = report.take() {
                let _ = report.send(text);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        request.reply(n.to_string()).await?;
    }
}

struct ClientReport {
    /// The worker that answered each request, in order.
    served_by: Vec<usize>,
    /// How many times a request timed out and was sent again.
    retries: usize,
}

/// Sends `REQUESTS_PER_CLIENT` requests one after the other, retrying on timeout.
async fn client(name: &'static str, endpoint: String) -> zocket::Result<ClientReport> {
    let mut req = Req::with_options(Options::new().request_timeout(Some(REQUEST_TIMEOUT)));
    req.connect(&endpoint)?;
    req.wait_for_peers(1).await?;
    let mut report = ClientReport {
        served_by: Vec::new(),
        retries: 0,
    };
    for i in 1..=REQUESTS_PER_CLIENT {
        let text = format!("client {name} request {i}");
        let mut attempt = 1;
        let reply = loop {
            match req.request(Message::from(text.as_str())).await {
                Ok(reply) => break reply,
                Err(Error::Timeout) if attempt < MAX_ATTEMPTS => {
                    println!(
                        "client {name} request {i}: no reply within {} ms, retrying (attempt {})",
                        REQUEST_TIMEOUT.as_millis(),
                        attempt + 1
                    );
                    attempt += 1;
                    report.retries += 1;
                }
                Err(e) => return Err(e),
            }
        };
        let worker: usize = show(&reply)
            .parse()
            .expect("a worker replies with its number");
        println!("client {name} request {i} served by worker {worker}");
        report.served_by.push(worker);
    }
    req.close().await;
    Ok(report)
}

/// A message's frames as text, separated by ` | `.
fn show(msg: &Message) -> String {
    msg.frames()
        .iter()
        .map(|frame| String::from_utf8_lossy(frame))
        .collect::<Vec<_>>()
        .join(" | ")
}
