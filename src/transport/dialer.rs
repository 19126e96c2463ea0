//! The dialer: keeps one connection to an endpoint alive, redialing with exponential backoff.
//!
//! The loop: connect the transport; run the caller's [`Handshake`] on the new connection; while
//! the connection lives, await its `closed` future; then start over. Every failure waits a
//! delay from backon's exponential backoff with jitter, from `reconnect_interval` up to
//! `reconnect_interval_max`. A successful handshake resets the backoff; a failed one does not,
//! so a peer that accepts connections but cannot talk to us is retried ever more slowly.
//! An inproc name that is not bound yet is not retried at all: the dialer sleeps until it is.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::future::BoxFuture;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tracing::Instrument;

use super::inproc::{self, InprocHello};
use super::{ipc, tcp, ByteStream, Connection};
use crate::monitor::{Event, MonitorSender};
use crate::warn_limit::warn_limited;
use crate::{Endpoint, Error, Host, Options, Result};

/// A connection that completed its handshake.
pub(crate) struct Established {
    /// Who the peer is, for events and logs (its address, or what the handshake learned).
    pub(crate) peer: String,
    /// Resolves when the connection is over, with the error that ended it (`None` for an
    /// orderly close). Dropped, with everything it owns, when the [`Dialer`] is dropped.
    pub(crate) closed: BoxFuture<'static, Option<Error>>,
}

impl fmt::Debug for Established {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Established")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

/// Turns a fresh transport connection into a live one (greeting, protocol, driver), or fails.
/// Called once per successful transport connect; bounded by `options.handshake_timeout`.
pub(crate) type Handshake = HandshakeWith<Connection>;

/// A handshake over any kind of fresh connection `C`.
pub(crate) type HandshakeWith<C> =
    Box<dyn FnMut(C) -> BoxFuture<'static, Result<Established, Error>> + Send>;

/// Makes one fresh connection of kind `C` (one attempt; the dialer retries).
pub(crate) type Connect<C> = Box<dyn FnMut() -> BoxFuture<'static, Result<C>> + Send>;

/// A background task that keeps a connection to one endpoint alive.
///
/// Dropping it stops the task and everything the task owns: a pending dial, a handshake in
/// progress, and the established connection's `closed` future (and with it the connection).
pub(crate) struct Dialer {
    endpoint: Endpoint,
    task: JoinHandle<()>,
}

impl Dialer {
    #[cfg(test)]
    /// Starts dialing `endpoint` in the background; `handshake` runs on every new connection.
    ///
    /// Emits [`Event::Retrying`] before every wait, [`Event::HandshakeFailed`],
    /// [`Event::Connected`] and [`Event::Disconnected`] on `monitor`. Over inproc the dialer
    /// presents itself with no socket type and `options.identity`; use
    /// [`spawn_with_hello`](Self::spawn_with_hello) to say more.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] with `Unsupported` for dns:// and mdns:// endpoints, which need
    /// discovery.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub(crate) fn spawn(
        endpoint: Endpoint,
        options: Arc<Options>,
        monitor: MonitorSender,
        handshake: Handshake,
    ) -> Result<Dialer> {
        let hello = InprocHello {
            socket_type: None,
            identity: options.identity.clone(),
        };
        Self::spawn_with_hello(endpoint, options, monitor, hello, handshake)
    }

    /// Like [`spawn`](Self::spawn), with `hello` as what an inproc listener sees of this
    /// dialer (ignored for tcp and ipc, where the handshake says it).
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub(crate) fn spawn_with_hello(
        endpoint: Endpoint,
        options: Arc<Options>,
        monitor: MonitorSender,
        hello: InprocHello,
        handshake: Handshake,
    ) -> Result<Dialer> {
        let target = match &endpoint {
            Endpoint::Tcp { host, port, .. } => Target::Tcp {
                host: host.clone(),
                port: *port,
            },
            Endpoint::Ipc { file, .. } => Target::Ipc(file.clone()),
            Endpoint::Inproc { name } => Target::Inproc {
                name: name.clone(),
                hello,
                capacity: options.send_hwm,
            },
            Endpoint::Dns { .. } | Endpoint::Mdns { .. } => {
                return Err(Error::Io(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "dns:// and mdns:// endpoints are handled by a socket's discovery, not by a transport",
                )))
            }
        };
        let target = Arc::new(target);
        let limit = options.handshake_timeout;
        let connect: Connect<Connection> = Box::new(move || {
            let target = target.clone();
            Box::pin(async move { target.connect(limit).await })
        });
        Ok(Self::spawn_custom(
            endpoint, options, monitor, connect, handshake,
        ))
    }

    /// A dialer whose transport step is `connect` (the socket engine dials through its
    /// pool of shared connections) and whose handshake is `handshake`; the backoff, events
    /// and lifetime are those of [`spawn`](Self::spawn).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub(crate) fn spawn_custom<C: Send + 'static>(
        endpoint: Endpoint,
        options: Arc<Options>,
        monitor: MonitorSender,
        connect: Connect<C>,
        handshake: HandshakeWith<C>,
    ) -> Dialer {
        let text = endpoint.to_string();
        let span = tracing::info_span!("dialer", endpoint = %text);
        let dial_loop = DialLoop {
            endpoint: text,
            connect,
            options,
            monitor,
            handshake,
        };
        let task = tokio::spawn(dial_loop.run().instrument(span));
        Dialer { endpoint, task }
    }

    #[cfg(test)]
    /// The endpoint being dialed.
    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl Drop for Dialer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl fmt::Debug for Dialer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dialer")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// Where to dial, with everything resolved from the endpoint.
enum Target {
    Tcp {
        host: Host,
        port: u16,
    },
    Ipc(PathBuf),
    Inproc {
        name: String,
        hello: InprocHello,
        capacity: usize,
    },
}

impl Target {
    /// Makes one transport connection. A tcp or ipc attempt gives up after `limit`; an inproc
    /// one waits for its name to be bound, however long that takes.
    async fn connect(&self, limit: Duration) -> Result<Connection> {
        match self {
            Target::Tcp { host, port } => {
                let (stream, addr) = timeout(limit, tcp::connect(host, *port))
                    .await
                    .map_err(|_| Error::Timeout)??;
                Ok(Connection::Stream {
                    io: ByteStream::Tcp(stream),
                    peer: addr.to_string(),
                })
            }
            Target::Ipc(file) => {
                let stream = timeout(limit, ipc::connect(file))
                    .await
                    .map_err(|_| Error::Timeout)??;
                Ok(Connection::Stream {
                    io: ByteStream::Ipc(stream),
                    peer: format!("ipc://{}", file.display()),
                })
            }
            Target::Inproc {
                name,
                hello,
                capacity,
            } => loop {
                match inproc::connect(name, hello.clone(), *capacity) {
                    Ok(conn) => return Ok(Connection::Inproc(conn)),
                    Err(e) => {
                        tracing::debug!(error = %e, "waiting for the inproc name to be bound");
                        inproc::wait_bound(name).await;
                    }
                }
            },
        }
    }
}

/// The state of the dialer task.
struct DialLoop<C> {
    endpoint: String,
    connect: Connect<C>,
    options: Arc<Options>,
    monitor: MonitorSender,
    handshake: HandshakeWith<C>,
}

impl<C: Send + 'static> DialLoop<C> {
    fn backoff(&self) -> ExponentialBuilder {
        // A zero interval would redial a refusing peer in a tight loop.
        let min = self
            .options
            .reconnect_interval
            .max(Duration::from_millis(1));
        let max = self.options.reconnect_interval_max.max(min);
        ExponentialBuilder::new()
            .with_min_delay(min)
            .with_max_delay(max)
            .with_jitter()
            .without_max_times()
    }

    async fn run(mut self) {
        let builder = self.backoff();
        let mut backoff = builder.build();
        let mut attempt: u32 = 0;
        let limit = self.options.handshake_timeout;
        loop {
            match (self.connect)().await {
                Err(e) => tracing::debug!(error = %e, "dial failed"),
                Ok(conn) => {
                    let handshake = (self.handshake)(conn);
                    match timeout(limit, handshake)
                        .await
                        .unwrap_or(Err(Error::Timeout))
                    {
                        Err(e) => {
                            warn_limited!(error = %e, "handshake failed");
                            self.monitor.emit(Event::HandshakeFailed {
                                endpoint: self.endpoint.clone(),
                                reason: e.to_string(),
                            });
                        }
                        Ok(Established { peer, closed }) => {
                            tracing::info!(%peer, "connected");
                            self.monitor.emit(Event::Connected {
                                endpoint: self.endpoint.clone(),
                                peer,
                            });
                            backoff = builder.build();
                            attempt = 0;
                            let reason = match closed.await {
                                Some(e) => e.to_string(),
                                None => "connection closed".to_owned(),
                            };
                            tracing::info!(%reason, "disconnected");
                            self.monitor.emit(Event::Disconnected {
                                endpoint: self.endpoint.clone(),
                                reason,
                            });
                        }
                    }
                }
            }
            attempt = attempt.saturating_add(1);
            // Never `None`: the backoff has no limit on attempts.
            let delay = backoff
                .next()
                .unwrap_or(self.options.reconnect_interval_max);
            tracing::debug!(attempt, ?delay, "retrying");
            self.monitor.emit(Event::Retrying {
                endpoint: self.endpoint.clone(),
                attempt,
                delay,
            });
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use tokio::sync::mpsc;

    use super::*;
    use crate::monitor::Monitor;
    use crate::transport::listener::{AcceptHandler, Listener};
    use crate::transport::test_util::{
        event_where, ipc_path, next_event, tasks_back_to, unique_name, wait_closed, WAIT,
    };

    const MIN: Duration = Duration::from_millis(10);

    fn options() -> Arc<Options> {
        Arc::new(
            Options::new()
                .reconnect_interval(MIN)
                .reconnect_interval_max(Duration::from_secs(10)),
        )
    }

    /// A handshake that succeeds at once; the connection lasts until the peer closes it.
    fn trivial_handshake() -> Handshake {
        Box::new(|conn| {
            Box::pin(async move {
                let peer = match &conn {
                    Connection::Stream { peer, .. } => peer.clone(),
                    Connection::Inproc(_) => "inproc".to_owned(),
                };
                Ok(Established {
                    peer,
                    closed: Box::pin(wait_closed(conn)),
                })
            })
        })
    }

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

    fn quiet_holding() -> AcceptHandler {
        holding(mpsc::unbounded_channel().0)
    }

    async fn bind(endpoint: &Endpoint) -> Listener {
        Listener::bind(endpoint, options(), MonitorSender::new(), quiet_holding())
            .await
            .unwrap()
    }

    /// A loopback tcp endpoint nobody listens on (yet).
    fn free_tcp_endpoint() -> Endpoint {
        let probe = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = probe.local_addr().unwrap().port();
        Endpoint::Tcp {
            host: Host::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            port,
            path: None,
        }
    }

    fn is_connected(event: &Event) -> bool {
        matches!(event, Event::Connected { .. })
    }

    /// Awaits `n` `Retrying` events and checks that they count up from 1 and wait longer each
    /// time. With jitter, attempt k waits in [MIN·2^(k-1), MIN·2^k), so the delays grow
    /// strictly while under the maximum.
    async fn expect_growing_retries(events: &mut Monitor, n: u32) -> Vec<Duration> {
        let mut delays = Vec::new();
        for expected in 1..=n {
            match event_where(events, |e| matches!(e, Event::Retrying { .. })).await {
                Event::Retrying { attempt, delay, .. } => {
                    assert_eq!(attempt, expected);
                    delays.push(delay);
                }
                _ => unreachable!(),
            }
        }
        assert!(delays[0] >= MIN, "{delays:?}");
        assert!(delays.windows(2).all(|w| w[0] < w[1]), "{delays:?}");
        delays
    }

    /// Dial before the listener exists, connect once it is bound, survive a listener restart.
    async fn reconnects_across_listener_restarts(endpoint: Endpoint, retries_before_bind: bool) {
        let baseline = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        let monitor = MonitorSender::new();
        let mut events = monitor.subscribe();
        let dialer =
            Dialer::spawn(endpoint.clone(), options(), monitor, trivial_handshake()).unwrap();
        assert_eq!(dialer.endpoint(), &endpoint);

        let listener = if retries_before_bind {
            expect_growing_retries(&mut events, 3).await;
            let listener = bind(&endpoint).await;
            event_where(&mut events, is_connected).await;
            listener
        } else {
            // An inproc dialer waits for the bind without retrying: its first event is Connected.
            let listener = bind(&endpoint).await;
            assert!(is_connected(&next_event(&mut events).await));
            listener
        };

        drop(listener);
        assert!(matches!(
            next_event(&mut events).await,
            Event::Disconnected { .. }
        ));
        // The backoff was reset by the successful handshake: the first retry waits the minimum.
        match next_event(&mut events).await {
            Event::Retrying { attempt, delay, .. } => {
                assert_eq!(attempt, 1);
                assert!(delay >= MIN && delay < 2 * MIN, "{delay:?}");
            }
            other => panic!("expected Retrying, got {other:?}"),
        }

        let listener = bind(&endpoint).await;
        event_where(&mut events, is_connected).await;

        drop(dialer);
        drop(listener);
        tasks_back_to(baseline).await;
    }

    // Two workers: connection tasks are dropped concurrently with the accept task.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tcp_dialer_reconnects_across_listener_restarts() {
        reconnects_across_listener_restarts(free_tcp_endpoint(), true).await;
    }

    // Two workers: connection tasks are dropped concurrently with the accept task.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ipc_dialer_reconnects_across_listener_restarts() {
        let endpoint = Endpoint::Ipc {
            file: ipc_path("dialer"),
            path: None,
        };
        reconnects_across_listener_restarts(endpoint, true).await;
    }

    #[tokio::test]
    async fn inproc_dialer_reconnects_across_listener_restarts() {
        let endpoint = Endpoint::Inproc {
            name: unique_name("dialer"),
        };
        reconnects_across_listener_restarts(endpoint, false).await;
    }

    #[tokio::test]
    async fn failed_handshakes_back_off_without_reset() {
        let listener = bind(&Endpoint::Tcp {
            host: Host::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            port: 0,
            path: None,
        })
        .await;
        let monitor = MonitorSender::new();
        let mut events = monitor.subscribe();
        let handshake: Handshake = Box::new(|_conn| {
            Box::pin(async { Err(Error::Protocol("test: incompatible peer".into())) })
        });
        let _dialer = Dialer::spawn(
            listener.local_endpoint().clone(),
            options(),
            monitor,
            handshake,
        )
        .unwrap();
        let mut delays = Vec::new();
        for expected in 1..=3 {
            assert_eq!(
                next_event(&mut events).await,
                Event::HandshakeFailed {
                    endpoint: listener.local_endpoint().to_string(),
                    reason: "protocol error: test: incompatible peer".into(),
                }
            );
            match next_event(&mut events).await {
                Event::Retrying { attempt, delay, .. } => {
                    assert_eq!(attempt, expected);
                    delays.push(delay);
                }
                other => panic!("expected Retrying, got {other:?}"),
            }
        }
        assert!(delays.windows(2).all(|w| w[0] < w[1]), "{delays:?}");
    }

    #[tokio::test]
    async fn silent_handshake_times_out() {
        let listener = bind(&Endpoint::Inproc {
            name: unique_name("silent"),
        })
        .await;
        let monitor = MonitorSender::new();
        let mut events = monitor.subscribe();
        let handshake: Handshake =
            Box::new(|_conn| Box::pin(futures::future::pending::<Result<Established>>()));
        let options = Options::new()
            .reconnect_interval(MIN)
            .handshake_timeout(Duration::from_millis(20));
        let _dialer = Dialer::spawn(
            listener.local_endpoint().clone(),
            Arc::new(options),
            monitor,
            handshake,
        )
        .unwrap();
        match next_event(&mut events).await {
            Event::HandshakeFailed { reason, .. } => assert_eq!(reason, "timed out"),
            other => panic!("expected HandshakeFailed, got {other:?}"),
        }
    }

    // Two workers: connection tasks are dropped concurrently with the accept task.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_the_dialer_closes_its_connection_and_task() {
        let baseline = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        let (closed_tx, mut closed_rx) = mpsc::unbounded_channel();
        let listener_monitor = MonitorSender::new();
        let mut listener_events = listener_monitor.subscribe();
        let listener = Listener::bind(
            &free_tcp_endpoint(),
            options(),
            listener_monitor,
            holding(closed_tx),
        )
        .await
        .unwrap();
        let monitor = MonitorSender::new();
        let mut events = monitor.subscribe();
        let dialer = Dialer::spawn(
            listener.local_endpoint().clone(),
            options(),
            monitor,
            trivial_handshake(),
        )
        .unwrap();
        event_where(&mut events, is_connected).await;
        event_where(&mut listener_events, |e| {
            matches!(e, Event::Accepted { .. })
        })
        .await;

        drop(dialer);
        // The listener's side of the connection reads EOF: the dialer's socket is closed.
        tokio::time::timeout(WAIT, closed_rx.recv())
            .await
            .unwrap()
            .unwrap();
        drop(listener);
        tasks_back_to(baseline).await;
    }

    #[tokio::test]
    async fn discovery_endpoints_are_rejected() {
        let endpoint = Endpoint::Dns {
            host: "example.com".into(),
            port: 5555,
            path: None,
        };
        let err = Dialer::spawn(
            endpoint,
            options(),
            MonitorSender::new(),
            trivial_handshake(),
        )
        .unwrap_err();
        assert!(matches!(&err, Error::Io(e) if e.kind() == io::ErrorKind::Unsupported));
        assert!(err.to_string().contains("discovery"));
    }
}
