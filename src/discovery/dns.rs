//! `dns://`: every A and AAAA record of a name.

use std::io;
use std::net::SocketAddr;

use futures::future::BoxFuture;

use super::Discovery;

/// Resolves a host name with the system resolver (tokio's `lookup_host`: A and AAAA
/// records; SRV records are not used).
#[derive(Debug, Clone)]
pub struct Dns {
    host: String,
    port: u16,
}

impl Dns {
    /// Addresses of `host`, each with `port`.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Dns {
            host: host.into(),
            port,
        }
    }
}

impl Discovery for Dns {
    fn addresses(&self) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>> {
        let target = (self.host.clone(), self.port);
        Box::pin(async move {
            let addrs = tokio::net::lookup_host(target).await?;
            Ok(addrs.collect())
        })
    }
}
