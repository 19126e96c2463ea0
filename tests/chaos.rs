//! Chaos: a broker under continuous load while its workers are killed and restarted.
//!
//! A `Router`/`Dealer` broker ([`zocket::proxy`]) runs in the test process. Four `Rep`
//! workers run as separate processes: this test binary again, running only
//! [`helper_process_serves_as_a_chaos_worker_when_asked`], which serves while
//! [`WORKER_ENV`] is set and returns at once otherwise. Four `Req` clients in the test
//! process ask without pause, with a request timeout and the "lazy pirate" retry: a `Req`
//! whose request timed out is dropped, a new one asks again. Worker processes are killed
//! with SIGKILL (by PID, `Child::start_kill`), one at a time, and started again.
//!
//! Asserted: every request is answered (none gives up after its retries); once the clients
//! are idle again and four workers are connected, the broker process's file descriptors
//! (`/proc/self/fd`) and tokio tasks (`num_alive_tasks`) are back where they were before
//! the first kill (a small tolerance, waited for with a bounded poll), and its resident
//! memory (`VmRSS`) is within a few MiB of it.
//!
//! The number of kills comes from `ZOCKET_CHAOS_KILLS`: 5 by default (the CI run, well
//! under a minute). The full run kills 50 times:
//!
//! ```text
//! ZOCKET_CHAOS_KILLS=50 cargo test --test chaos -- --nocapture
//! ```
//!
//! It is bounded in time too (30 s plus 5 s per kill).

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use zocket::{Dealer, Error, Options, Rep, Req, Router};

/// Set (to the broker's backend endpoint) in a worker process.
const WORKER_ENV: &str = "ZOCKET_CHAOS_WORKER";
/// How many workers serve the broker.
const WORKERS: usize = 4;
/// How many clients load it.
const CLIENTS: usize = 4;
/// How long a client's request may wait before the client gives up on that `Req`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// How many times a client asks again (each time with a new `Req`) before it fails.
const TRIES: u32 = 20;
/// How many more answers the clients must get after each restart before the next kill.
const ANSWERS_PER_ROUND: usize = 40;
/// Descriptors and tasks the broker may hold above its starting level at the end.
const TOLERANCE: usize = 2;
/// Resident memory the broker may have grown by at the end.
const RSS_TOLERANCE: u64 = 8 << 20;

/// Not a test on its own: with [`WORKER_ENV`] set, a worker process of
/// [`every_request_is_answered_while_workers_are_killed_and_restarted`]: a `Rep` that
/// connects to the broker's backend, says when it is ready, and answers `done <request>`
/// until it is killed (or 10 minutes have passed). Without the variable it returns at once.
#[test]
fn helper_process_serves_as_a_chaos_worker_when_asked() {
    let Ok(backend) = std::env::var(WORKER_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut rep = Rep::with_options(
            Options::new()
                .reconnect_interval(Duration::from_millis(10))
                .reconnect_interval_max(Duration::from_millis(200)),
        );
        rep.connect(&backend).unwrap();
        timeout(Duration::from_secs(30), rep.wait_for_peers(1))
            .await
            .expect("the broker accepts the worker")
            .unwrap();
        println!("chaos worker ready");
        let _ = timeout(Duration::from_secs(600), async {
            while let Ok(request) = rep.recv().await {
                let answer = format!("done {}", common::text(request.message()));
                if request.reply(answer).await.is_err() {
                    break;
                }
            }
        })
        .await;
    });
}

/// A worker process and its output (kept open: the worker may still print).
struct Worker {
    child: Child,
    _output: Lines<BufReader<ChildStdout>>,
}

impl Worker {
    /// Starts a worker process and waits until its `Rep` is connected to `backend`.
    async fn start(backend: &str) -> Worker {
        let mut child = common::rerun_self("helper_process_serves_as_a_chaos_worker_when_asked")
            .env(WORKER_ENV, backend)
            .spawn()
            .expect("the test binary runs again as a worker");
        let mut output = BufReader::new(child.stdout.take().unwrap()).lines();
        timeout(Duration::from_secs(20), async {
            // libtest may print `test <name> ... ` in front of the line.
            while let Some(line) = output.next_line().await.unwrap() {
                if line.contains("chaos worker ready") {
                    return;
                }
            }
            panic!("the worker process ended before it was ready");
        })
        .await
        .expect("the worker process was ready in time");
        Worker {
            child,
            _output: output,
        }
    }

    /// Kills the process with SIGKILL (by its PID) and reaps it.
    async fn kill(mut self) {
        self.child.start_kill().expect("the worker can be killed");
        let status = timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("a killed worker ends")
            .unwrap();
        assert!(!status.success());
    }
}

/// What the clients share: a stop flag and the count of answers, with a signal per answer.
#[derive(Default)]
struct Load {
    stop: AtomicBool,
    answered: AtomicUsize,
    retried: AtomicUsize,
    progress: Notify,
}

impl Load {
    /// Waits until `target` requests have been answered in all; false after `within`.
    async fn until_answered(&self, target: usize, within: Duration) -> bool {
        timeout(within, async {
            loop {
                let next = self.progress.notified();
                if self.answered.load(Ordering::Relaxed) >= target {
                    return;
                }
                next.await;
            }
        })
        .await
        .is_ok()
    }
}

/// The options of the clients' `Req`s.
fn client_options() -> Options {
    Options::new()
        .request_timeout(Some(REQUEST_TIMEOUT))
        .reconnect_interval(Duration::from_millis(10))
        .reconnect_interval_max(Duration::from_millis(200))
        .linger(Some(Duration::ZERO))
}

/// One client: asks `c<id>-<n>` until told to stop, retrying each request with a new `Req`
/// after a timeout (lazy pirate). Returns its (last) `Req`, idle, so that the socket
/// population is the same whenever the clients stop.
fn client(id: usize, frontend: String, req: Option<Req>, load: Arc<Load>) -> JoinHandle<Req> {
    tokio::spawn(async move {
        let fresh = || {
            let req = Req::with_options(client_options());
            req.connect(&frontend).unwrap();
            req
        };
        let mut req = req.unwrap_or_else(fresh);
        let mut n = 0u64;
        while !load.stop.load(Ordering::Relaxed) {
            let body = format!("c{id}-{n}");
            let mut tries = 0;
            loop {
                match req.request(body.as_str()).await {
                    Ok(reply) => {
                        assert_eq!(common::text(&reply), format!("done {body}"));
                        break;
                    }
                    Err(Error::Timeout) => {
                        tries += 1;
                        assert!(
                            tries < TRIES,
                            "request {body} not answered in {TRIES} tries"
                        );
                        load.retried.fetch_add(1, Ordering::Relaxed);
                        req = fresh();
                    }
                    Err(e) => panic!("request {body} failed: {e}"),
                }
            }
            n += 1;
            load.answered.fetch_add(1, Ordering::Relaxed);
            load.progress.notify_waiters();
        }
        req
    })
}

/// Starts the clients (with their previous `Req`s, if any).
fn start_clients(frontend: &str, reqs: Vec<Option<Req>>, load: &Arc<Load>) -> Vec<JoinHandle<Req>> {
    reqs.into_iter()
        .enumerate()
        .map(|(id, req)| client(id, frontend.to_owned(), req, load.clone()))
        .collect()
}

/// Stops the clients and takes their `Req`s back; a client's panic (a request that was
/// never answered) fails the test here.
async fn stop_clients(clients: Vec<JoinHandle<Req>>, load: &Load) -> Vec<Option<Req>> {
    load.stop.store(true, Ordering::Relaxed);
    let mut reqs = vec![];
    for client in clients {
        let req = timeout(REQUEST_TIMEOUT * (TRIES + 2), client)
            .await
            .expect("a client stops within its retries")
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        reqs.push(Some(req));
    }
    load.stop.store(false, Ordering::Relaxed);
    reqs
}

/// The broker process's descriptors, tokio tasks and resident memory.
#[derive(Debug, Clone, Copy)]
struct Usage {
    fds: usize,
    tasks: usize,
    rss: u64,
}

impl Usage {
    fn now() -> Usage {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0);
        Usage {
            fds: common::open_fds(),
            tasks: tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks(),
            rss: rss_kib << 10,
        }
    }
}

/// How many kills this run makes (`ZOCKET_CHAOS_KILLS`, default 5).
fn kills() -> usize {
    std::env::var("ZOCKET_CHAOS_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

/// A broker keeps answering every request while its worker processes are killed with
/// SIGKILL and restarted, and gets back its descriptors, tasks and memory afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_answered_while_workers_are_killed_and_restarted() {
    let kills = kills();
    let limit = Duration::from_secs(30 + 5 * kills as u64);
    timeout(limit, chaos(kills))
        .await
        .unwrap_or_else(|_| panic!("{kills} kills did not finish within {limit:?}"));
}

async fn chaos(kills: usize) {
    let started = Instant::now();
    let mut frontend = Router::bind("tcp://127.0.0.1:0").await.unwrap();
    let mut backend = Dealer::bind("tcp://127.0.0.1:0").await.unwrap();
    let frontend_ep = frontend.endpoints()[0].to_string();
    let backend_ep = backend.endpoints()[0].to_string();
    let broker = tokio::spawn(async move {
        let ended = zocket::proxy(&mut frontend, &mut backend).await;
        panic!("the broker stopped: {ended:?}");
    });

    let mut workers = vec![];
    for _ in 0..WORKERS {
        workers.push(Worker::start(&backend_ep).await);
    }
    let load = Arc::new(Load::default());
    // Warm up, then stop the clients to take the starting level with them idle.
    let clients = start_clients(&frontend_ep, (0..CLIENTS).map(|_| None).collect(), &load);
    assert!(
        load.until_answered(ANSWERS_PER_ROUND, Duration::from_secs(20))
            .await,
        "the clients are not served before any kill"
    );
    let reqs = stop_clients(clients, &load).await;
    let before = Usage::now();
    println!("before the kills: {before:?}");

    let clients = start_clients(&frontend_ep, reqs, &load);
    for k in 0..kills {
        let victim = workers.swap_remove(k % WORKERS);
        victim.kill().await;
        workers.push(Worker::start(&backend_ep).await);
        let target = load.answered.load(Ordering::Relaxed) + ANSWERS_PER_ROUND;
        assert!(
            load.until_answered(target, Duration::from_secs(20)).await,
            "no progress after kill {k}: {} answered",
            load.answered.load(Ordering::Relaxed)
        );
    }
    let _reqs = stop_clients(clients, &load).await;
    println!(
        "{kills} kills in {:?}: {} requests answered, {} retried with a new Req",
        started.elapsed(),
        load.answered.load(Ordering::Relaxed),
        load.retried.load(Ordering::Relaxed)
    );

    // The same population as before the kills: the broker, four idle clients, four workers.
    // What the killed workers' connections held must be gone.
    let mut after = Usage::now();
    let _ = timeout(Duration::from_secs(15), async {
        while after.fds > before.fds + TOLERANCE || after.tasks > before.tasks + TOLERANCE {
            tokio::time::sleep(Duration::from_millis(20)).await;
            after = Usage::now();
        }
    })
    .await;
    println!("after the kills: {after:?}");
    assert!(
        after.fds <= before.fds + TOLERANCE,
        "descriptors: {} before the kills, {} after",
        before.fds,
        after.fds
    );
    assert!(
        after.tasks <= before.tasks + TOLERANCE,
        "tokio tasks: {} before the kills, {} after",
        before.tasks,
        after.tasks
    );
    assert!(
        after.rss <= before.rss + RSS_TOLERANCE,
        "resident memory: {} KiB before the kills, {} KiB after",
        before.rss >> 10,
        after.rss >> 10
    );
    broker.abort();
    for worker in workers {
        worker.kill().await;
    }
}
