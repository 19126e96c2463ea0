//! Router handover (`Options::router_handover`): a peer that comes back with the identity a
//! dead-but-undetected link still holds takes it over at once; without handover it is
//! refused until the old link is declared dead. The old link is kept "alive" by a relay
//! that stops forwarding and holds both sockets open, as a network cut does.

mod common;

use std::time::Duration;

use common::{until_event, WAIT};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::time::timeout;
use zocket::monitor::Event;
use zocket::{Dealer, Options, Router};

/// A TCP relay to `target` that forwards until [`cut`](Relay::cut), then holds its sockets
/// open without forwarding a byte: to both ends the link looks alive and silent.
struct Relay {
    port: u16,
    cut: Option<oneshot::Sender<oneshot::Sender<()>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(target: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, mut cut_seen) = oneshot::channel::<oneshot::Sender<()>>();
        let task = tokio::spawn(async move {
            let (mut inbound, _) = listener.accept().await.unwrap();
            let mut outbound = TcpStream::connect(("127.0.0.1", target)).await.unwrap();
            let done = tokio::select! {
                biased;
                done = &mut cut_seen => done,
                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {
                    panic!("the relayed link ended before the cut")
                }
            };
            // The cut: hold both sockets, forward nothing, until the test ends.
            let _ = done.map(|ack| ack.send(()));
            std::future::pending::<()>().await;
            let _ = (inbound.shutdown().await, outbound.shutdown().await);
        });
        Relay {
            port,
            cut: Some(cut),
            task,
        }
    }

    /// Stops forwarding; returns once no byte will pass any more.
    async fn cut(&mut self) {
        let (ack, acked) = oneshot::channel();
        self.cut.take().expect("cut once").send(ack).unwrap();
        acked.await.unwrap();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Heartbeats slow enough that the cut link is not declared dead while a test runs.
fn patient() -> Options {
    Options::new()
        .heartbeat_interval(Some(Duration::from_secs(60)))
        .heartbeat_timeout(Duration::from_secs(120))
        .reconnect_interval(Duration::from_millis(20))
        .reconnect_interval_max(Duration::from_millis(200))
}

fn worker(native: bool) -> Options {
    patient()
        .identity(bytes::Bytes::from_static(b"worker-1"))
        .native(native)
}

async fn recv_from(router: &mut Router) -> (String, String) {
    let (id, msg) = timeout(WAIT, router.recv())
        .await
        .expect("router received nothing")
        .unwrap();
    (
        String::from_utf8_lossy(&id).into_owned(),
        String::from_utf8_lossy(&msg.frames()[0]).into_owned(),
    )
}

async fn recv_text(dealer: &mut Dealer) -> String {
    let msg = timeout(WAIT, dealer.recv())
        .await
        .expect("dealer received nothing")
        .unwrap();
    String::from_utf8_lossy(&msg.frames()[0]).into_owned()
}

/// A router, and a first "worker-1" dealer that reached it through a relay which is then
/// cut (the dealer's process is gone, the router's side of the link looks alive).
async fn router_with_a_cut_worker(handover: bool, native: bool) -> (Router, u16, Relay) {
    let mut router = Router::with_options(patient().router_handover(handover).native(native));
    let port = common::tcp_port(&router.bind("tcp://127.0.0.1:0").await.unwrap());
    let mut relay = Relay::start(port).await;
    let mut first = Dealer::with_options(worker(native));
    first
        .connect(&format!("tcp://127.0.0.1:{}", relay.port))
        .unwrap();
    first.send("first here").await.unwrap();
    assert_eq!(
        recv_from(&mut router).await,
        ("worker-1".into(), "first here".into())
    );
    router.send("worker-1", "to first").await.unwrap();
    assert_eq!(recv_text(&mut first).await, "to first");
    relay.cut().await;
    drop(first);
    (router, port, relay)
}

async fn a_restarted_worker_takes_its_identity_over(native: bool) {
    let (mut router, port, _relay) = router_with_a_cut_worker(true, native).await;
    let mut events = router.monitor();
    let mut second = Dealer::with_options(worker(native));
    second.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    second.send("second here").await.unwrap();
    assert_eq!(
        recv_from(&mut router).await,
        ("worker-1".into(), "second here".into()),
        "the restarted worker is served under its identity at once"
    );
    router.send("worker-1", "to second").await.unwrap();
    assert_eq!(
        recv_text(&mut second).await,
        "to second",
        "the identity routes to the newcomer"
    );
    let gone = until_event(&mut events, |e| {
        matches!(e, Event::Disconnected { reason, .. } if reason.contains("took this routing identity over"))
    })
    .await;
    tracing::debug!(?gone, "old link closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_handover_a_restarted_worker_takes_its_identity_from_a_cut_link_on_the_native_wire() {
    a_restarted_worker_takes_its_identity_over(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_handover_a_restarted_worker_takes_its_identity_from_a_cut_link_over_zmtp() {
    a_restarted_worker_takes_its_identity_over(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_handover_a_restarted_worker_is_refused_while_the_cut_link_holds_its_identity() {
    let (mut router, port, _relay) = router_with_a_cut_worker(false, true).await;
    let mut router_events = router.monitor();
    let mut second = Dealer::with_options(worker(true));
    let mut second_events = second.monitor();
    second.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    // The router refuses the newcomer (the link holding "worker-1" looks alive), again on
    // each of its redials...
    for _ in 0..2 {
        until_event(&mut router_events, |e| {
            matches!(e, Event::HandshakeFailed { reason, .. }
                if reason.contains("already uses this identity"))
        })
        .await;
        until_event(&mut second_events, |e| {
            matches!(e, Event::HandshakeFailed { reason, .. }
                if reason.contains("already has a live peer with that routing identity"))
        })
        .await;
    }
    // ...so what the router sends to "worker-1" goes to the cut link, not to the newcomer.
    router.send("worker-1", "to whom?").await.unwrap();
    assert!(
        timeout(Duration::from_millis(300), second.recv())
            .await
            .is_err(),
        "the refused newcomer got a message routed to the identity it claimed"
    );
    assert_eq!(second.peers(), 0, "the newcomer has no usable link");
}

/// Under CURVE, handover goes only to a client with the holder's public key: the key is
/// authenticated, the routing id is only claimed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_curve_an_identity_is_handed_over_only_to_a_client_with_the_holders_key() {
    use zocket::curve::KeyPair;
    let server = KeyPair::generate();
    let (owner, intruder) = (KeyPair::generate(), KeyPair::generate());
    let client = |keys: &KeyPair| worker(true).curve_client(*server.public(), keys.clone());
    let mut router = Router::with_options(
        patient()
            .router_handover(true)
            .curve_server(server.secret().clone()),
    );
    let port = common::tcp_port(&router.bind("tcp://127.0.0.1:0").await.unwrap());
    let mut relay = Relay::start(port).await;
    let mut first = Dealer::with_options(client(&owner));
    first
        .connect(&format!("tcp://127.0.0.1:{}", relay.port))
        .unwrap();
    first.send("first here").await.unwrap();
    assert_eq!(
        recv_from(&mut router).await,
        ("worker-1".into(), "first here".into())
    );
    relay.cut().await;
    drop(first);

    // Another key claiming "worker-1" is refused, with a reason it reports...
    let mut events = router.monitor();
    let intruding = Dealer::with_options(client(&intruder));
    let mut intruder_events = intruding.monitor();
    intruding
        .connect(&format!("tcp://127.0.0.1:{port}"))
        .unwrap();
    until_event(&mut intruder_events, |e| {
        matches!(e, Event::HandshakeFailed { reason, .. } if reason.contains("holder's CURVE key"))
    })
    .await;
    until_event(&mut events, |e| {
        matches!(e, Event::HandshakeFailed { reason, .. } if reason.contains("another CURVE key"))
    })
    .await;
    drop(intruding);

    // ...and the owner's key, restarted, takes it over.
    let mut second = Dealer::with_options(client(&owner));
    second.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    second.send("owner again").await.unwrap();
    let (from, msg) = timeout(WAIT, router.recv_with_peer())
        .await
        .expect("router received nothing")
        .unwrap();
    assert_eq!(&msg.frames()[0][..], b"owner again");
    assert_eq!(from.routing_id().map(|id| &id[..]), Some(&b"worker-1"[..]));
    assert_eq!(from.curve_key(), Some(*owner.public()));
    router.send("worker-1", "to the owner").await.unwrap();
    assert_eq!(recv_text(&mut second).await, "to the owner");
}
