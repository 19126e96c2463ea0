//! Peer discovery: where a socket finds the addresses behind a name.
//!
//! A [`Discovery`] answers "which addresses are there now?"; the socket asks it again every
//! [`Options::dns_refresh`](crate::Options::dns_refresh), connects to the addresses that
//! appeared and drops the links to those that vanished, leaving the
//! others untouched. `dns://host:port[/path]` uses [`Dns`]; a socket's
//! [`Options::discovery`](crate::Options::discovery) plugs in any other source (a static
//! list, Consul, Kubernetes endpoints).

mod dns;
pub(crate) mod set;

use std::fmt;
use std::io;
use std::net::SocketAddr;

use futures::future::BoxFuture;

pub use dns::Dns;

/// A source of peer addresses for a name.
///
/// ```
/// use std::net::SocketAddr;
/// use futures::future::BoxFuture;
///
/// /// Always the same two addresses.
/// #[derive(Debug)]
/// struct Fixed(Vec<SocketAddr>);
///
/// impl zocket::discovery::Discovery for Fixed {
///     fn addresses(&self) -> BoxFuture<'static, std::io::Result<Vec<SocketAddr>>> {
///         let addrs = self.0.clone();
///         Box::pin(async move { Ok(addrs) })
///     }
/// }
/// ```
pub trait Discovery: Send + Sync + fmt::Debug + 'static {
    /// The addresses there are now. An error is retried (and reported on the socket's
    /// monitor); the socket keeps its current links meanwhile.
    fn addresses(&self) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>>;
}
