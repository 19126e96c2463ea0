//! Peer discovery: where a socket finds the addresses behind a name.
//!
//! A discovery source turns a name into a stream of [`Change`]s — an address
//! [added](Change::Added) or [removed](Change::Removed) — and the socket follows it: it
//! connects to every added address and drops the link to every removed one, leaving the
//! others untouched. Each change is reported on the socket's monitor as
//! [`Event::Discovered`](crate::monitor::Event::Discovered) or
//! [`Event::Lost`](crate::monitor::Event::Lost).
//!
//! - `dns://host:port[/path]` asks a [`Discovery`] — the system resolver ([`Dns`]) unless
//!   [`Options::discovery`](crate::Options::discovery) plugs in another source (a static
//!   list, Consul, Kubernetes endpoints) — every
//!   [`Options::dns_refresh`](crate::Options::dns_refresh) (30 s), or follows its
//!   [`Discovery::changes`] stream if it has one.
//! - `mdns://name[/path]` needs no server: `bind` listens on an ephemeral TCP port and
//!   announces it on the local network as an instance of `_zocket._tcp.local.` whose TXT
//!   record carries the name, the path, the socket type and the node; `connect` browses
//!   and connects to every instance of that name and path whose socket type is compatible,
//!   except those of its own node ([`Options::node`](crate::Options::node): by default the
//!   process, so a process never connects to itself). An instance is dropped when it says
//!   goodbye (its socket closed), when its records expire, or when its link fails and it
//!   does not answer a query within 3 s. See [`Options::mdns_interfaces`](crate::Options::mdns_interfaces)
//!   and [`Options::mdns_listen`](crate::Options::mdns_listen).
//!
//! ```no_run
//! # async fn demo() -> zocket::Result<()> {
//! use futures::StreamExt;
//! use zocket::monitor::Event;
//!
//! // Every node of the cluster runs this; nobody knows an address.
//! let publisher = zocket::Pub::bind("mdns://cluster").await?;
//! let mut subscriber = zocket::Sub::connect("mdns://cluster").await?;
//! subscriber.subscribe("");
//! let mut events = subscriber.monitor();
//! tokio::spawn(async move {
//!     while let Some(event) = events.next().await {
//!         match event {
//!             Event::Discovered { addr } => println!("peer at {addr}"),
//!             Event::Lost { addr } => println!("peer at {addr} gone"),
//!             _ => {}
//!         }
//!     }
//! });
//! publisher.send("hello, whoever is there").await?;
//! # Ok(()) }
//! ```

mod dns;
pub(crate) mod mdns;
pub(crate) mod set;

use std::fmt;
use std::io;
use std::net::SocketAddr;

use futures::future::BoxFuture;
use futures::stream::BoxStream;

pub use dns::Dns;

/// A change in the addresses behind a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    /// A peer appeared at this address: the socket connects to it.
    Added(SocketAddr),
    /// The peer at this address is gone: the socket drops its link and stops redialing.
    Removed(SocketAddr),
}

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
///
/// A source that can tell when something changes (a Kubernetes watch, a Consul blocking
/// query) also implements [`changes`](Discovery::changes):
///
/// ```
/// use std::net::SocketAddr;
/// use futures::future::BoxFuture;
/// use futures::stream::{BoxStream, StreamExt};
/// use zocket::discovery::{Change, Discovery};
///
/// /// Addresses pushed by some registry through a channel.
/// #[derive(Debug)]
/// struct Pushed(std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<Change>>>);
///
/// impl Discovery for Pushed {
///     fn addresses(&self) -> BoxFuture<'static, std::io::Result<Vec<SocketAddr>>> {
///         Box::pin(async { Ok(Vec::new()) }) // not used: `changes` is
///     }
///     fn changes(&self) -> Option<BoxStream<'static, std::io::Result<Change>>> {
///         let rx = self.0.lock().unwrap().take()?;
///         Some(tokio_stream_from(rx).map(Ok).boxed())
///     }
/// }
/// # fn tokio_stream_from(mut rx: tokio::sync::mpsc::Receiver<Change>)
/// #     -> impl futures::Stream<Item = Change> {
/// #     futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
/// # }
/// ```
pub trait Discovery: Send + Sync + fmt::Debug + 'static {
    /// The addresses there are now. An error is retried (and reported on the socket's
    /// monitor); the socket keeps its current links meanwhile. An address with port 0
    /// takes the port of the `dns://` endpoint.
    fn addresses(&self) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>>;

    /// The changes as they happen, for a source that can push them; called once per
    /// connect. The default, `None`, makes the socket call [`addresses`](Self::addresses)
    /// every [`Options::dns_refresh`](crate::Options::dns_refresh) and apply the
    /// difference. An `Err` item is reported on the monitor; the end of the stream ends
    /// the discovery (the links it made stay).
    fn changes(&self) -> Option<BoxStream<'static, io::Result<Change>>> {
        None
    }
}
