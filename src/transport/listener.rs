//! The listener: binds an endpoint, accepts connections and runs a handler on each.
//!
//! One task accepts; each accepted connection runs the caller's [`AcceptHandler`] in a
//! [`JoinSet`] owned by that task. Dropping the [`Listener`] therefore stops accepting, closes
//! the listening socket (removing an ipc socket file, unregistering an inproc name) and aborts
//! every connection it accepted, so that dialers notice and redial the next listener.
//!
//! Two limits bound what peers can make a listener hold (see `DECISIONS.md`, "Connection
//! floods"): at most [`Options::max_connections`] connection tasks at once (a newcomer
//! beyond it is accepted and closed at once, with a rate-limited warning and an
//! [`Event::HandshakeFailed`]), and at most [`Options::max_handshakes`] greetings in progress
//! (while that many run, nothing more is accepted: newcomers wait in the kernel's backlog).

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tracing::Instrument;

use super::inproc::{self, InprocHello, InprocListener};
use super::ipc::IpcListener;
use super::{tcp, ByteStream, Connection};
use crate::monitor::{Event, MonitorSender};
use crate::warn_limit::WarnLimit;
use crate::{Endpoint, Error, Options, Result};

/// Runs one accepted connection to its end (greeting, protocol, driver). Called once per
/// connection; the future is aborted when the [`Listener`] is dropped. The connection counts
/// against [`Options::max_connections`] until the future ends, and its [`GreetingSlot`]
/// against [`Options::max_handshakes`] until the handler drops it: drop it once the greeting
/// is over.
pub(crate) type AcceptHandler =
    Arc<dyn Fn(Connection, GreetingSlot) -> BoxFuture<'static, ()> + Send + Sync>;

/// One of a listener's [`Options::max_handshakes`] greeting slots, held by a connection whose
/// greeting is in progress; dropping it lets the listener accept again.
#[derive(Debug)]
pub(crate) struct GreetingSlot(#[allow(dead_code)] OwnedSemaphorePermit);

/// How long the accept loop pauses after an accept error (`EMFILE`, ...), instead of spinning
/// on an error that will repeat until some connection closes.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// A bound endpoint accepting connections in a background task.
///
/// Dropping it stops accepting, closes the listening socket and aborts every connection task
/// it started. The socket closes when the runtime next runs the aborted task, which is
/// before any of its connections is closed; use [`close`](Self::close) to wait for it.
pub(crate) struct Listener {
    endpoint: Endpoint,
    task: JoinHandle<()>,
}

impl Listener {
    #[cfg(test)]
    /// Binds `endpoint` and starts accepting; `handler` runs each accepted connection.
    ///
    /// Emits [`Event::Listening`] once bound and [`Event::Accepted`] per connection. An inproc
    /// listener presents itself to connectors with no socket type and `options.identity`; use
    /// [`bind_with_hello`](Self::bind_with_hello) to say more.
    ///
    /// # Errors
    ///
    /// [`Error::AddrInUse`] when the address, socket file or inproc name is taken;
    /// [`Error::Io`] for other bind failures, and with `Unsupported` for dns:// and mdns://,
    /// which need discovery.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes releases anything it bound.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub(crate) async fn bind(
        endpoint: &Endpoint,
        options: Arc<Options>,
        monitor: MonitorSender,
        handler: AcceptHandler,
    ) -> Result<Listener> {
        let hello = InprocHello {
            socket_type: None,
            identity: options.identity.clone(),
        };
        Self::bind_with_hello(endpoint, options, monitor, hello, handler).await
    }

    /// Like [`bind`](Self::bind), with `hello` as what inproc connectors see of this listener
    /// (ignored for tcp and ipc, where the handler's handshake says it).
    ///
    /// # Errors
    ///
    /// As [`bind`](Self::bind).
    ///
    /// # Cancel safety
    ///
    /// As [`bind`](Self::bind).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub(crate) async fn bind_with_hello(
        endpoint: &Endpoint,
        options: Arc<Options>,
        monitor: MonitorSender,
        hello: InprocHello,
        handler: AcceptHandler,
    ) -> Result<Listener> {
        let (bound, local) = match endpoint {
            Endpoint::Tcp { host, port, path } => {
                let (listener, port) = tcp::bind(host, *port).await?;
                let local = Endpoint::Tcp {
                    host: host.clone(),
                    port,
                    path: path.clone(),
                };
                (Bound::Tcp(listener, tcp::Keepalive::from_options(&options)), local)
            }
            Endpoint::Ipc { file, .. } => {
                (Bound::Ipc(IpcListener::bind(file).await?), endpoint.clone())
            }
            Endpoint::Inproc { name } => {
                (Bound::Inproc(inproc::bind(name, hello)?), endpoint.clone())
            }
            Endpoint::Dns { .. } | Endpoint::Mdns { .. } => {
                return Err(Error::Io(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "dns:// and mdns:// endpoints are handled by a socket's discovery, not by a transport",
                )))
            }
        };
        let endpoint_text = local.to_string();
        let span = tracing::info_span!("listener", endpoint = %endpoint_text);
        span.in_scope(|| tracing::info!("listening"));
        monitor.emit(Event::Listening {
            endpoint: endpoint_text.clone(),
        });
        let accept_loop = AcceptLoop {
            bound: Some(bound),
            connections: JoinSet::new(),
            max_connections: options.max_connections.max(1),
            greetings: Arc::new(Semaphore::new(options.max_handshakes.max(1))),
            refusals: WarnLimit::new(),
            endpoint: endpoint_text,
            monitor,
            handler,
        };
        let task = tokio::spawn(accept_loop.run().instrument(span));
        Ok(Listener {
            endpoint: local,
            task,
        })
    }

    /// The bound endpoint, with the real port when bound to port 0.
    pub(crate) fn local_endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Stops the listener like dropping it does, and waits until its socket is closed and its
    /// connection tasks are aborted, so the address can be bound again at once.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the listener is stopped either way.
    pub(crate) async fn close(mut self) {
        self.task.abort();
        if let Err(e) = (&mut self.task).await {
            log_join_error(&e);
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// A bound listening socket of any transport.
enum Bound {
    /// With the keepalive its accepted streams get.
    Tcp(TcpListener, Option<tcp::Keepalive>),
    Ipc(IpcListener),
    Inproc(InprocListener),
}

impl Bound {
    /// Accepts one connection; `endpoint` names the peer where the transport has no address.
    ///
    /// Cancel safe: every transport's accept is.
    async fn accept(&mut self, endpoint: &str) -> io::Result<Connection> {
        match self {
            Bound::Tcp(listener, keepalive) => {
                let (stream, addr) = tcp::accept(listener, *keepalive).await?;
                Ok(Connection::Stream {
                    io: ByteStream::Tcp(stream),
                    peer: addr.to_string(),
                })
            }
            Bound::Ipc(listener) => Ok(Connection::Stream {
                io: ByteStream::Ipc(listener.accept().await?),
                peer: endpoint.to_owned(),
            }),
            Bound::Inproc(listener) => listener
                .accept()
                .await
                .map(Connection::Inproc)
                .ok_or_else(|| io::Error::other("inproc listener closed")),
        }
    }
}

/// The state of the accept task. Dropping it (when the task is aborted) closes the listening
/// socket first, then aborts the connection tasks, so a peer that sees its connection closed
/// can bind or dial the address again at once.
struct AcceptLoop {
    bound: Option<Bound>,
    /// One task per connection, greeting or established.
    connections: JoinSet<()>,
    /// [`Options::max_connections`].
    max_connections: usize,
    /// [`Options::max_handshakes`] permits, one per greeting in progress.
    greetings: Arc<Semaphore>,
    /// Connections refused at [`Options::max_connections`] warn at most once a second (the
    /// others go to `debug`), so a flood cannot flood the log too.
    refusals: WarnLimit,
    endpoint: String,
    monitor: MonitorSender,
    handler: AcceptHandler,
}

enum Step {
    Accepted(io::Result<Connection>, Option<OwnedSemaphorePermit>),
    Finished(std::result::Result<(), JoinError>),
}

impl AcceptLoop {
    async fn run(mut self) {
        loop {
            let Some(bound) = self.bound.as_mut() else {
                return;
            };
            let full = self.connections.len() >= self.max_connections;
            let step = if full {
                // Accept to close at once: the dialer learns now instead of waiting in the
                // backlog, and the backlog does not fill with connections we will not serve.
                tokio::select! {
                    accepted = bound.accept(&self.endpoint) => Step::Accepted(accepted, None),
                    Some(finished) = self.connections.join_next() => Step::Finished(finished),
                }
            } else {
                // No greeting slot free: accept nothing until one frees (a greeting ends or
                // times out); newcomers wait in the kernel's backlog, costing us nothing.
                let greetings = self.greetings.clone();
                let endpoint = &self.endpoint;
                let accept = async {
                    let Ok(permit) = greetings.acquire_owned().await else {
                        return std::future::pending().await; // never closed
                    };
                    (bound.accept(endpoint).await, Some(permit))
                };
                tokio::select! {
                    (accepted, permit) = accept => Step::Accepted(accepted, permit),
                    Some(finished) = self.connections.join_next() => Step::Finished(finished),
                }
            };
            match step {
                Step::Accepted(Ok(conn), None) => self.refuse(conn),
                Step::Accepted(Ok(conn), Some(permit)) => {
                    let peer = match &conn {
                        Connection::Stream { peer, .. } => peer.clone(),
                        Connection::Inproc(_) => self.endpoint.clone(),
                    };
                    tracing::debug!(%peer, "accepted");
                    self.monitor.emit(Event::Accepted {
                        endpoint: self.endpoint.clone(),
                        peer: peer.clone(),
                    });
                    let span = tracing::info_span!("connection", %peer);
                    self.connections
                        .spawn((self.handler)(conn, GreetingSlot(permit)).instrument(span));
                }
                Step::Accepted(Err(e), _) => {
                    tracing::warn!(error = %e, "accept failed; pausing before the next accept");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
                Step::Finished(Ok(())) => {}
                Step::Finished(Err(e)) => log_join_error(&e),
            }
        }
    }
}

impl AcceptLoop {
    /// Closes a connection accepted beyond [`Options::max_connections`]: a monitor event
    /// each time, a warning at most once per [`WARN_INTERVAL`](crate::warn_limit::WARN_INTERVAL).
    fn refuse(&mut self, conn: Connection) {
        let peer = match &conn {
            Connection::Stream { peer, .. } => peer.clone(),
            Connection::Inproc(_) => self.endpoint.clone(),
        };
        drop(conn);
        let reason = format!(
            "{peer}: connection refused: this listener holds its maximum of {} connections (Options::max_connections)",
            self.max_connections
        );
        match self.refusals.admit(Instant::now()) {
            Some(held_back) => tracing::warn!(%reason, held_back, "refusing connection"),
            None => tracing::debug!(%reason, "refusing connection"),
        }
        self.monitor.emit(Event::HandshakeFailed {
            endpoint: self.endpoint.clone(),
            reason,
        });
    }
}

impl Drop for AcceptLoop {
    fn drop(&mut self) {
        // Close the listening socket before `connections` is dropped (which aborts them).
        drop(self.bound.take());
    }
}

fn log_join_error(e: &JoinError) {
    if e.is_panic() {
        tracing::error!(error = %e, "task panicked");
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use tokio::io::AsyncReadExt;
    use tokio::sync::mpsc;
    use tokio::time::timeout;

    use super::*;
    use crate::transport::test_util::{
        event_where, ipc_path, next_event, tasks_back_to, unique_name, wait_closed, WAIT,
    };
    use crate::Host;

    /// A handler that holds each connection until the peer closes it, reporting each closure.
    fn holding(closed: mpsc::UnboundedSender<()>) -> AcceptHandler {
        Arc::new(move |conn, slot| {
            let closed = closed.clone();
            Box::pin(async move {
                drop(slot);
                wait_closed(conn).await;
                let _ = closed.send(());
            })
        })
    }

    fn localhost(port: u16) -> Endpoint {
        Endpoint::Tcp {
            host: Host::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            port,
            path: Some("events".into()),
        }
    }

    #[tokio::test]
    async fn tcp_listener_reports_the_real_port_and_accepts() {
        let monitor = MonitorSender::new();
        let mut events = monitor.subscribe();
        let (closed_tx, mut closed_rx) = mpsc::unbounded_channel();
        let listener = Listener::bind(
            &localhost(0),
            Arc::default(),
            monitor.clone(),
            holding(closed_tx),
        )
        .await
        .unwrap();
        let Endpoint::Tcp { port, path, .. } = listener.local_endpoint().clone() else {
            panic!("not tcp");
        };
        assert_ne!(port, 0);
        assert_eq!(path.as_deref(), Some("events"));
        let text = format!("tcp://127.0.0.1:{port}/events");
        assert_eq!(
            next_event(&mut events).await,
            Event::Listening {
                endpoint: text.clone()
            }
        );

        let (stream, _) = tcp::connect(&Host::Ip(Ipv4Addr::LOCALHOST.into()), port)
            .await
            .unwrap();
        assert_eq!(
            next_event(&mut events).await,
            Event::Accepted {
                endpoint: text,
                peer: stream.local_addr().unwrap().to_string(),
            }
        );
        drop(stream);
        timeout(WAIT, closed_rx.recv()).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn dropping_the_listener_closes_its_connections_and_tasks() {
        let baseline = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        let (closed_tx, _closed_rx) = mpsc::unbounded_channel();
        let monitor = MonitorSender::new();
        let mut events = monitor.subscribe();
        let listener = Listener::bind(&localhost(0), Arc::default(), monitor, holding(closed_tx))
            .await
            .unwrap();
        let Endpoint::Tcp { port, .. } = *listener.local_endpoint() else {
            panic!("not tcp");
        };
        let host = Host::Ip(Ipv4Addr::LOCALHOST.into());
        let (mut a, _) = tcp::connect(&host, port).await.unwrap();
        let (mut b, _) = tcp::connect(&host, port).await.unwrap();
        next_event(&mut events).await; // Listening
        next_event(&mut events).await; // Accepted
        next_event(&mut events).await; // Accepted

        drop(listener);
        let mut buf = [0u8; 8];
        assert_eq!(timeout(WAIT, a.read(&mut buf)).await.unwrap().unwrap(), 0);
        assert_eq!(timeout(WAIT, b.read(&mut buf)).await.unwrap().unwrap(), 0);
        // The listening socket was closed before the connections: the port is free again.
        let again = Listener::bind(
            &localhost(port),
            Arc::default(),
            MonitorSender::new(),
            holding(mpsc::unbounded_channel().0),
        )
        .await
        .unwrap();
        again.close().await;
        tasks_back_to(baseline).await;
    }

    #[tokio::test]
    async fn ipc_listener_accepts_and_cleans_up() {
        let file = ipc_path("listener");
        let endpoint = Endpoint::Ipc {
            file: file.clone(),
            path: None,
        };
        let (closed_tx, mut closed_rx) = mpsc::unbounded_channel();
        let listener = Listener::bind(
            &endpoint,
            Arc::default(),
            MonitorSender::new(),
            holding(closed_tx),
        )
        .await
        .unwrap();
        assert_eq!(listener.local_endpoint(), &endpoint);
        let stream = super::super::ipc::connect(&file).await.unwrap();
        drop(stream);
        timeout(WAIT, closed_rx.recv()).await.unwrap().unwrap();
        listener.close().await;
        assert!(!file.exists());
    }

    #[tokio::test]
    async fn inproc_listener_accepts_with_its_hello() {
        let name = unique_name("listener");
        let endpoint = Endpoint::Inproc { name: name.clone() };
        let (closed_tx, mut closed_rx) = mpsc::unbounded_channel();
        let hello = InprocHello {
            socket_type: Some(crate::SocketType::Pull),
            identity: None,
        };
        let listener = Listener::bind_with_hello(
            &endpoint,
            Arc::default(),
            MonitorSender::new(),
            hello.clone(),
            holding(closed_tx),
        )
        .await
        .unwrap();
        let conn = inproc::connect(&name, InprocHello::default(), 1).unwrap();
        assert_eq!(conn.peer, hello);
        drop(conn);
        timeout(WAIT, closed_rx.recv()).await.unwrap().unwrap();
        drop(listener);
        // Unregistered at once? Not necessarily: the task is dropped when the runtime runs it.
        timeout(WAIT, async {
            while inproc::is_registered(&name) {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
    }

    /// A handler that keeps the greeting slot and the connection until the peer closes it.
    fn greeting_forever() -> AcceptHandler {
        Arc::new(move |conn, slot| {
            Box::pin(async move {
                wait_closed(conn).await;
                drop(slot);
            })
        })
    }

    #[tokio::test]
    async fn a_connection_beyond_max_connections_is_closed_at_once_and_reported() {
        let monitor = MonitorSender::new();
        let mut events = monitor.subscribe();
        let options = Arc::new(Options::new().max_connections(2));
        let (closed_tx, _closed_rx) = mpsc::unbounded_channel();
        let listener = Listener::bind(&localhost(0), options, monitor, holding(closed_tx))
            .await
            .unwrap();
        let Endpoint::Tcp { port, .. } = *listener.local_endpoint() else {
            panic!("not tcp");
        };
        let host = Host::Ip(Ipv4Addr::LOCALHOST.into());
        let (mut held_a, _) = tcp::connect(&host, port).await.unwrap();
        let (mut held_b, _) = tcp::connect(&host, port).await.unwrap();
        for _ in 0..2 {
            event_where(&mut events, |e| matches!(e, Event::Accepted { .. })).await;
        }
        let (mut extra, _) = tcp::connect(&host, port).await.unwrap();
        let mut buf = [0u8; 8];
        // Closed by us at once (end of file), not left waiting in the backlog.
        assert_eq!(
            timeout(WAIT, extra.read(&mut buf)).await.unwrap().unwrap(),
            0
        );
        let Event::HandshakeFailed { reason, .. } =
            event_where(&mut events, |e| matches!(e, Event::HandshakeFailed { .. })).await
        else {
            unreachable!()
        };
        assert!(reason.contains("max_connections"), "{reason}");
        // The two held connections are still open.
        for held in [&mut held_a, &mut held_b] {
            assert!(timeout(Duration::from_millis(50), held.read(&mut buf))
                .await
                .is_err());
        }
        // Once one of them closes, a newcomer is served again.
        drop(held_a);
        let mut served = false;
        for _ in 0..100 {
            let (mut again, _) = tcp::connect(&host, port).await.unwrap();
            if timeout(Duration::from_millis(100), again.read(&mut buf))
                .await
                .is_err()
            {
                served = true;
                break;
            }
        }
        assert!(served, "no connection was kept after a slot freed");
        listener.close().await;
    }

    #[tokio::test]
    async fn while_max_handshakes_greetings_run_nothing_more_is_accepted() {
        let monitor = MonitorSender::new();
        let mut events = monitor.subscribe();
        let options = Arc::new(Options::new().max_handshakes(2));
        let listener = Listener::bind(&localhost(0), options, monitor, greeting_forever())
            .await
            .unwrap();
        let Endpoint::Tcp { port, .. } = *listener.local_endpoint() else {
            panic!("not tcp");
        };
        let host = Host::Ip(Ipv4Addr::LOCALHOST.into());
        let (first, _) = tcp::connect(&host, port).await.unwrap();
        let (_second, _) = tcp::connect(&host, port).await.unwrap();
        for _ in 0..2 {
            event_where(&mut events, |e| matches!(e, Event::Accepted { .. })).await;
        }
        // The kernel completes the third connection, but we do not accept it...
        let (third, _) = tcp::connect(&host, port).await.unwrap();
        let waited = timeout(
            Duration::from_millis(300),
            event_where(&mut events, |e| matches!(e, Event::Accepted { .. })),
        )
        .await;
        assert!(
            waited.is_err(),
            "accepted beyond max_handshakes: {waited:?}"
        );
        // ...until a greeting ends.
        drop(first);
        let Event::Accepted { peer, .. } =
            event_where(&mut events, |e| matches!(e, Event::Accepted { .. })).await
        else {
            unreachable!()
        };
        assert_eq!(peer, third.local_addr().unwrap().to_string());
        listener.close().await;
    }

    #[tokio::test]
    async fn discovery_endpoints_are_unsupported() {
        let endpoint = Endpoint::Mdns {
            name: "svc".into(),
            path: None,
        };
        let err = Listener::bind(
            &endpoint,
            Arc::default(),
            MonitorSender::new(),
            holding(mpsc::unbounded_channel().0),
        )
        .await
        .unwrap_err();
        assert!(matches!(&err, Error::Io(e) if e.kind() == io::ErrorKind::Unsupported));
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_listener_sets_its_options_keepalive_on_accepted_streams() {
        use std::time::Duration;

        let options = Options::new()
            .tcp_keepalive(Some(Duration::from_secs(20)))
            .tcp_keepalive_interval(Duration::from_secs(5))
            .tcp_keepalive_count(3);
        let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
        let handler: AcceptHandler = Arc::new(move |conn, _slot| {
            let seen = seen_tx.clone();
            Box::pin(async move {
                if let Connection::Stream {
                    io: ByteStream::Tcp(stream),
                    ..
                } = &conn
                {
                    let sock = socket2::SockRef::from(stream);
                    let _ = seen.send((
                        sock.keepalive().unwrap(),
                        sock.tcp_keepalive_time().unwrap(),
                        sock.tcp_keepalive_interval().unwrap(),
                        sock.tcp_keepalive_retries().unwrap(),
                    ));
                }
            })
        });
        let listener = Listener::bind(
            &localhost(0),
            Arc::new(options),
            MonitorSender::new(),
            handler,
        )
        .await
        .unwrap();
        let Endpoint::Tcp { port, .. } = *listener.local_endpoint() else {
            panic!("not tcp");
        };
        let (_stream, _) = tcp::connect(&Host::Ip(Ipv4Addr::LOCALHOST.into()), port)
            .await
            .unwrap();
        let seen = timeout(WAIT, seen_rx.recv()).await.unwrap().unwrap();
        assert_eq!(
            seen,
            (true, Duration::from_secs(20), Duration::from_secs(5), 3)
        );
        listener.close().await;
    }
}
