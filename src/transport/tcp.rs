//! tcp:// — bind, accept and connect, with `TCP_NODELAY` on every stream.
//!
//! zocket batches its own writes (many frames per syscall), so Nagle's algorithm would only add
//! latency; it is turned off on every stream, accepted or dialed. TCP keepalive
//! ([`Options::tcp_keepalive`]) is set, when asked for, on every stream too, through `socket2`
//! (tokio does not expose the idle time, interval and count).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::{lookup_host, TcpListener, TcpSocket, TcpStream};

use crate::{Error, Host, Options, Result};

/// TCP keepalive settings of a socket's connections, from [`Options::tcp_keepalive`],
/// [`Options::tcp_keepalive_interval`] and [`Options::tcp_keepalive_count`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Keepalive {
    /// Idle time before the first probe.
    idle: Duration,
    /// Time between unanswered probes; `None`: the OS default.
    interval: Option<Duration>,
    /// Unanswered probes before the connection is dropped; `None`: the OS default.
    count: Option<u32>,
}

impl Keepalive {
    /// The keepalive `options` ask for, or `None` when keepalive is off.
    pub(crate) fn from_options(options: &Options) -> Option<Self> {
        options.tcp_keepalive.map(|idle| Keepalive {
            idle,
            interval: options.tcp_keepalive_interval,
            count: options.tcp_keepalive_count,
        })
    }

    /// The `socket2` form: times in whole seconds, at least 1 (the kernel refuses 0).
    fn to_socket2(self) -> TcpKeepalive {
        let ka = TcpKeepalive::new().with_time(whole_seconds(self.idle));
        #[cfg(any(
            target_os = "linux",
            target_os = "android",
            target_vendor = "apple",
            target_os = "freebsd",
            target_os = "netbsd",
            target_os = "dragonfly",
            target_os = "illumos",
            target_os = "fuchsia",
        ))]
        let ka = {
            let ka = match self.interval {
                Some(interval) => ka.with_interval(whole_seconds(interval)),
                None => ka,
            };
            match self.count {
                Some(count) => ka.with_retries(count.max(1)),
                None => ka,
            }
        };
        ka
    }
}

fn whole_seconds(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs().max(1))
}

/// Pending connections the kernel queues for a listener before we accept them.
const BACKLOG: u32 = 1024;

/// Resolves `host:port` to socket addresses: a literal address as is, a name through the
/// system resolver ([`tokio::net::lookup_host`]).
///
/// # Errors
///
/// The resolver's error, or `NotFound` when a name resolves to no address.
pub(crate) async fn resolve(host: &Host, port: u16) -> io::Result<Vec<SocketAddr>> {
    match host {
        Host::Ip(ip) => Ok(vec![SocketAddr::new(*ip, port)]),
        Host::Name(name) => {
            let addrs: Vec<SocketAddr> = lookup_host((name.as_str(), port)).await?.collect();
            if addrs.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{name} resolves to no address"),
                ));
            }
            Ok(addrs)
        }
    }
}

/// Binds a listener on `host:port` and returns it with the port it really got (the one the
/// kernel picked when `port` is 0).
///
/// A name is resolved and the first address that can be bound is used. `SO_REUSEADDR` is set,
/// so a listener restarted on the same port is not refused because of old connections in
/// `TIME_WAIT` (a port another socket listens on stays refused).
///
/// # Errors
///
/// [`Error::AddrInUse`] when the address is taken, [`Error::Io`] for everything else
/// (resolution, permissions).
pub(crate) async fn bind(host: &Host, port: u16) -> Result<(TcpListener, u16)> {
    let endpoint = format!("tcp://{host}:{port}");
    let mut last_err = None;
    for addr in resolve(host, port).await? {
        match bind_addr(addr) {
            Ok(listener) => {
                let port = listener.local_addr()?.port();
                tracing::debug!(%endpoint, %addr, port, "tcp listener bound");
                return Ok((listener, port));
            }
            Err(e) => {
                tracing::debug!(%endpoint, %addr, error = %e, "tcp bind failed");
                // An address in use is the most useful error to report, keep it.
                if !matches!(&last_err, Some(prev) if is_addr_in_use(prev)) {
                    last_err = Some(e);
                }
            }
        }
    }
    let err = last_err.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"));
    if is_addr_in_use(&err) {
        Err(Error::AddrInUse { endpoint })
    } else {
        Err(Error::Io(err))
    }
}

fn is_addr_in_use(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::AddrInUse
}

fn bind_addr(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Accepts one connection and sets `TCP_NODELAY` and `keepalive` (when `Some`) on it.
///
/// # Errors
///
/// The accept error (`EMFILE`, `ECONNABORTED`, ...); the listener stays usable.
///
/// # Cancel safety
///
/// Cancel safe, like [`TcpListener::accept`].
pub(crate) async fn accept(
    listener: &TcpListener,
    keepalive: Option<Keepalive>,
) -> io::Result<(TcpStream, SocketAddr)> {
    let (stream, addr) = listener.accept().await?;
    set_nodelay(&stream);
    set_keepalive(&stream, keepalive);
    Ok((stream, addr))
}

/// Connects to `host:port`, trying each resolved address in turn, and sets `TCP_NODELAY`.
///
/// # Errors
///
/// The resolver's error, or the error of the last address tried.
///
/// # Cancel safety
///
/// Dropping the future drops any half-made connection.
pub(crate) async fn connect(host: &Host, port: u16) -> io::Result<(TcpStream, SocketAddr)> {
    connect_with(host, port, None).await
}

/// A socket's dial: [`connect`] with `options`' TCP keepalive set on the stream, the whole
/// attempt (resolution and every address) bounded by [`Options::connect_timeout`].
///
/// # Errors
///
/// [`Error::Timeout`] when the connect takes longer than `connect_timeout`; otherwise as
/// [`connect`].
///
/// # Cancel safety
///
/// As [`connect`].
pub(crate) async fn dial(
    host: &Host,
    port: u16,
    options: &Options,
) -> Result<(TcpStream, SocketAddr)> {
    let keepalive = Keepalive::from_options(options);
    match tokio::time::timeout(options.connect_timeout, connect_with(host, port, keepalive)).await {
        Ok(connected) => Ok(connected?),
        Err(_) => {
            tracing::debug!(%host, port, timeout = ?options.connect_timeout, "tcp connect timed out");
            Err(Error::Timeout)
        }
    }
}

/// [`connect`], with `keepalive` (when `Some`) set on the stream.
async fn connect_with(
    host: &Host,
    port: u16,
    keepalive: Option<Keepalive>,
) -> io::Result<(TcpStream, SocketAddr)> {
    let mut last_err = None;
    for addr in resolve(host, port).await? {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                set_nodelay(&stream);
                set_keepalive(&stream, keepalive);
                return Ok((stream, addr));
            }
            Err(e) => {
                tracing::debug!(%addr, error = %e, "tcp connect failed");
                last_err = Some(e);
            }
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address")))
}

fn set_nodelay(stream: &TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::warn!(error = %e, "could not set TCP_NODELAY");
    }
}

/// Turns keepalive on with `keepalive`'s times; `None` leaves the stream as the OS made it
/// (keepalive off). A failure is logged and the connection kept: keepalive only helps.
fn set_keepalive(stream: &TcpStream, keepalive: Option<Keepalive>) {
    let Some(keepalive) = keepalive else {
        return;
    };
    if let Err(e) = SockRef::from(stream).set_tcp_keepalive(&keepalive.to_socket2()) {
        tracing::warn!(error = %e, ?keepalive, "could not set TCP keepalive");
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use tokio::time::timeout;

    use super::*;

    const WAIT: Duration = Duration::from_secs(5);
    const LOCALHOST: Host = Host::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST));

    #[tokio::test]
    async fn bind_to_port_zero_reports_the_real_port() {
        let (listener, port) = bind(&LOCALHOST, 0).await.unwrap();
        assert_ne!(port, 0);
        assert_eq!(listener.local_addr().unwrap().port(), port);
    }

    #[tokio::test]
    async fn accepted_and_dialed_streams_have_nodelay_set() {
        let (listener, port) = bind(&LOCALHOST, 0).await.unwrap();
        let (accepted, dialed) = timeout(WAIT, async {
            tokio::join!(accept(&listener, None), connect(&LOCALHOST, port))
        })
        .await
        .unwrap();
        let (accepted, _) = accepted.unwrap();
        let (dialed, addr) = dialed.unwrap();
        assert_eq!(addr.port(), port);
        assert!(accepted.nodelay().unwrap());
        assert!(dialed.nodelay().unwrap());
    }

    /// A dialed and an accepted stream of `options`, connected to each other over loopback.
    async fn dialed_and_accepted(options: &Options) -> (TcpStream, TcpStream) {
        let (listener, port) = bind(&LOCALHOST, 0).await.unwrap();
        let (accepted, dialed) = timeout(WAIT, async {
            tokio::join!(
                accept(&listener, Keepalive::from_options(options)),
                dial(&LOCALHOST, port, options)
            )
        })
        .await
        .unwrap();
        (dialed.unwrap().0, accepted.unwrap().0)
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn dialed_and_accepted_streams_carry_the_configured_keepalive() {
        let options = Options::new()
            .tcp_keepalive(Some(Duration::from_secs(30)))
            .tcp_keepalive_interval(Duration::from_secs(7))
            .tcp_keepalive_count(4);
        let (dialed, accepted) = dialed_and_accepted(&options).await;
        for (side, stream) in [("dialed", &dialed), ("accepted", &accepted)] {
            let sock = SockRef::from(stream);
            assert!(sock.keepalive().unwrap(), "{side}: SO_KEEPALIVE");
            assert_eq!(
                sock.tcp_keepalive_time().unwrap(),
                Duration::from_secs(30),
                "{side}: TCP_KEEPIDLE"
            );
            assert_eq!(
                sock.tcp_keepalive_interval().unwrap(),
                Duration::from_secs(7),
                "{side}: TCP_KEEPINTVL"
            );
            assert_eq!(
                sock.tcp_keepalive_retries().unwrap(),
                4,
                "{side}: TCP_KEEPCNT"
            );
            assert!(stream.nodelay().unwrap(), "{side}: TCP_NODELAY");
        }
    }

    /// The keepalive values of a socket nobody configured: the OS defaults.
    #[cfg(target_os = "linux")]
    fn os_defaults() -> (bool, Duration, Duration, u32) {
        let fresh =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        (
            fresh.keepalive().unwrap(),
            fresh.tcp_keepalive_time().unwrap(),
            fresh.tcp_keepalive_interval().unwrap(),
            fresh.tcp_keepalive_retries().unwrap(),
        )
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn without_the_option_keepalive_stays_off_as_the_os_makes_sockets() {
        let defaults = os_defaults();
        assert!(!defaults.0, "a new socket has keepalive off");
        let (dialed, accepted) = dialed_and_accepted(&Options::new()).await;
        for (side, stream) in [("dialed", &dialed), ("accepted", &accepted)] {
            let sock = SockRef::from(stream);
            let got = (
                sock.keepalive().unwrap(),
                sock.tcp_keepalive_time().unwrap(),
                sock.tcp_keepalive_interval().unwrap(),
                sock.tcp_keepalive_retries().unwrap(),
            );
            assert_eq!(got, defaults, "{side}");
        }
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn keepalive_idle_alone_leaves_interval_and_count_at_the_os_defaults() {
        let (_, _, interval, count) = os_defaults();
        let options = Options::new().tcp_keepalive(Some(Duration::from_secs(45)));
        let (dialed, accepted) = dialed_and_accepted(&options).await;
        for (side, stream) in [("dialed", &dialed), ("accepted", &accepted)] {
            let sock = SockRef::from(stream);
            assert!(sock.keepalive().unwrap(), "{side}");
            assert_eq!(
                sock.tcp_keepalive_time().unwrap(),
                Duration::from_secs(45),
                "{side}"
            );
            assert_eq!(sock.tcp_keepalive_interval().unwrap(), interval, "{side}");
            assert_eq!(sock.tcp_keepalive_retries().unwrap(), count, "{side}");
        }
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn sub_second_keepalive_times_become_one_second_not_an_error() {
        let options = Options::new()
            .tcp_keepalive(Some(Duration::from_millis(500)))
            .tcp_keepalive_interval(Duration::ZERO)
            .tcp_keepalive_count(0);
        let (dialed, _accepted) = dialed_and_accepted(&options).await;
        let sock = SockRef::from(&dialed);
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(1));
        assert_eq!(
            sock.tcp_keepalive_interval().unwrap(),
            Duration::from_secs(1)
        );
        assert_eq!(sock.tcp_keepalive_retries().unwrap(), 1);
    }

    /// A loopback listener that answers no more `SYN`s: its accept queue (backlog 0) is full
    /// and nobody accepts, so Linux drops new `SYN`s and a connect waits for retransmits.
    /// Returns the listener, the connections filling it and its port.
    #[cfg(target_os = "linux")]
    async fn full_listener() -> (socket2::Socket, Vec<TcpStream>, u16) {
        let listener =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        listener
            .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
            .unwrap();
        listener.listen(0).unwrap();
        let port = listener.local_addr().unwrap().as_socket().unwrap().port();
        // Fill the queue: connects succeed until one is left waiting (bounded tries).
        let mut held = Vec::new();
        for _ in 0..8 {
            match timeout(
                Duration::from_millis(200),
                TcpStream::connect((Ipv4Addr::LOCALHOST, port)),
            )
            .await
            {
                Ok(stream) => held.push(stream.unwrap()),
                Err(_) => return (listener, held, port),
            }
        }
        panic!("a backlog-0 listener accepted 8 connections nobody accepted");
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_connect_the_peer_never_answers_fails_after_connect_timeout() {
        let (_listener, _held, port) = full_listener().await;
        let options = Options::new()
            .handshake_timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_millis(300));
        let started = std::time::Instant::now();
        let result = timeout(WAIT, dial(&LOCALHOST, port, &options))
            .await
            .expect("connect_timeout, not the test's bound, ends the dial");
        let took = started.elapsed();
        assert!(matches!(result, Err(Error::Timeout)), "{result:?}");
        assert!(
            took >= Duration::from_millis(300),
            "gave up early: {took:?}"
        );
        assert!(took < Duration::from_secs(3), "took {took:?}");
    }

    #[tokio::test]
    async fn names_are_resolved() {
        let (_listener, port) = bind(&Host::Name("localhost".into()), 0).await.unwrap();
        assert_ne!(port, 0);
    }

    #[tokio::test]
    async fn binding_a_port_in_use_is_addr_in_use() {
        let (_listener, port) = bind(&LOCALHOST, 0).await.unwrap();
        match bind(&LOCALHOST, port).await {
            Err(Error::AddrInUse { endpoint }) => {
                assert_eq!(endpoint, format!("tcp://127.0.0.1:{port}"));
            }
            other => panic!("expected AddrInUse, got {other:?}"),
        }
    }
}
