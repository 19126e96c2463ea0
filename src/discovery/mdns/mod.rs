//! `mdns://name[/path]`: zocket sockets announcing themselves on the local network as
//! instances of `_zocket._tcp.local.` (DNS-SD over multicast DNS, RFC 6762/6763).
//!
//! - [`daemon`]: the process's responder (the `mdns-sd` crate), shared by all sockets; it
//!   announces binds and keeps the catalog of instances it hears.
//! - [`txt`]: what an instance's TXT record says (name, path, socket type, node).
//! - [`browse`]: one connect's view of the catalog — which instances to be connected to.

pub(crate) mod browse;
pub(crate) mod daemon;
pub(crate) mod txt;
