//! tcp:// — bind, accept and connect, with `TCP_NODELAY` on every stream.
//!
//! zocket batches its own writes (many frames per syscall), so Nagle's algorithm would only add
//! latency; it is turned off on every stream, accepted or dialed.

use std::io;
use std::net::SocketAddr;

use tokio::net::{lookup_host, TcpListener, TcpSocket, TcpStream};

use crate::{Error, Host, Result};

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

/// Accepts one connection and sets `TCP_NODELAY` on it.
///
/// # Errors
///
/// The accept error (`EMFILE`, `ECONNABORTED`, ...); the listener stays usable.
///
/// # Cancel safety
///
/// Cancel safe, like [`TcpListener::accept`].
pub(crate) async fn accept(listener: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
    let (stream, addr) = listener.accept().await?;
    set_nodelay(&stream);
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
    let mut last_err = None;
    for addr in resolve(host, port).await? {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                set_nodelay(&stream);
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

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;

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
            tokio::join!(accept(&listener), connect(&LOCALHOST, port))
        })
        .await
        .unwrap();
        let (accepted, _) = accepted.unwrap();
        let (dialed, addr) = dialed.unwrap();
        assert_eq!(addr.port(), port);
        assert!(accepted.nodelay().unwrap());
        assert!(dialed.nodelay().unwrap());
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
