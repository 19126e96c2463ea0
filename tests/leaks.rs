//! Floods and leaks: what many connections, or peers that stop talking, can make a socket hold.
//!
//! The tests here count this process's file descriptors, so this file holds only tests whose
//! descriptors are accounted for; they run one at a time (see [`one_at_a_time`]).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{open_fds, tcp_port, WAIT};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio::time::timeout;
use zocket::{Options, Pull, Push};

/// Serialises the tests of this file, which count the process's descriptors.
async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::const_new(());
    LOCK.lock().await
}

/// Silent connections (a "slowloris" flood) neither make the listener hold a descriptor each
/// nor lock out an honest peer: it is served once the greetings in progress time out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_silent_connections_holds_few_descriptors_and_an_honest_peer_is_served() {
    let _serial = one_at_a_time().await;
    const SILENT: usize = 100;
    const GREETINGS: usize = 8;
    let mut pull = Pull::with_options(
        Options::new()
            .handshake_timeout(Duration::from_millis(300))
            .max_handshakes(GREETINGS)
            .max_connections(64),
    );
    let ep = pull.bind("tcp://127.0.0.1:0").await.unwrap();
    let port = tcp_port(&ep);
    let baseline = open_fds();

    let mut silent = Vec::with_capacity(SILENT);
    for _ in 0..SILENT {
        silent.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    }
    // Our own SILENT client ends, the listener's greetings in progress, and a little slack
    // for the runtime and the honest peer's connection.
    let bound = baseline + SILENT + GREETINGS + 16;
    let most = Arc::new(AtomicUsize::new(open_fds()));
    let sampler = tokio::spawn({
        let most = most.clone();
        async move {
            loop {
                most.fetch_max(open_fds(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    let mut push = Push::connect(&ep.to_string()).await.unwrap();
    let served = timeout(WAIT, async {
        push.send("honest").await.unwrap();
        pull.recv().await.unwrap()
    })
    .await
    .expect("the honest peer was never served");
    sampler.abort();
    let most = most.load(Ordering::Relaxed);
    assert_eq!(common::text(&served), "honest");
    assert!(
        most <= bound,
        "{most} descriptors open at the peak, expected at most {bound} (baseline {baseline})"
    );
    drop(silent);
}
