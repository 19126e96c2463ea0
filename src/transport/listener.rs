//! The listener: binds an endpoint, accepts connections and runs a handler on each.
//!
//! One task accepts; each accepted connection runs the caller's [`AcceptHandler`] in a
//! [`JoinSet`] owned by that task. Dropping the [`Listener`] therefore stops accepting, closes
//! the listening socket (removing an ipc socket file, unregistering an inproc name) and aborts
//! every connection it accepted, so that dialers notice and redial the next listener.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::net::TcpListener;
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tracing::Instrument;

use super::inproc::{self, InprocHello, InprocListener};
use super::ipc::IpcListener;
use super::{tcp, ByteStream, Connection};
use crate::monitor::{Event, MonitorSender};
use crate::{Endpoint, Error, Options, Result};

/// Runs one accepted connection to its end (greeting, protocol, driver). Called once per
/// connection; the future is aborted when the [`Listener`] is dropped.
pub(crate) type AcceptHandler = Arc<dyn Fn(Connection) -> BoxFuture<'static, ()> + Send + Sync>;

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
        _options: Arc<Options>,
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
                (Bound::Tcp(listener), local)
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
    Tcp(TcpListener),
    Ipc(IpcListener),
    Inproc(InprocListener),
}

impl Bound {
    /// Accepts one connection; `endpoint` names the peer where the transport has no address.
    ///
    /// Cancel safe: every transport's accept is.
    async fn accept(&mut self, endpoint: &str) -> io::Result<Connection> {
        match self {
            Bound::Tcp(listener) => {
                let (stream, addr) = tcp::accept(listener).await?;
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
    connections: JoinSet<()>,
    endpoint: String,
    monitor: MonitorSender,
    handler: AcceptHandler,
}

enum Step {
    Accepted(io::Result<Connection>),
    Finished(std::result::Result<(), JoinError>),
}

impl AcceptLoop {
    async fn run(mut self) {
        loop {
            let Some(bound) = self.bound.as_mut() else {
                return;
            };
            let step = tokio::select! {
                accepted = bound.accept(&self.endpoint) => Step::Accepted(accepted),
                Some(finished) = self.connections.join_next() => Step::Finished(finished),
            };
            match step {
                Step::Accepted(Ok(conn)) => {
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
                        .spawn((self.handler)(conn).instrument(span));
                }
                Step::Accepted(Err(e)) => {
                    tracing::warn!(error = %e, "accept failed; pausing before the next accept");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
                Step::Finished(Ok(())) => {}
                Step::Finished(Err(e)) => log_join_error(&e),
            }
        }
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
        ipc_path, next_event, tasks_back_to, unique_name, wait_closed, WAIT,
    };
    use crate::Host;

    /// A handler that holds each connection until the peer closes it, reporting each closure.
    fn holding(closed: mpsc::UnboundedSender<()>) -> AcceptHandler {
        Arc::new(move |conn| {
            let closed = closed.clone();
            Box::pin(async move {
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
}
