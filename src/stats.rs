//! What a socket knows about its peers, and what it has done: [`PeerInfo`] and [`Stats`].
//!
//! Every socket counts, per peer and in total, the messages and payload bytes it sent and
//! received, the messages it dropped at the high-water mark, and its connections (accepted,
//! connected, disconnected, failed handshakes). The counters are plain integers updated under
//! the lock a send or receive takes anyway (and a few relaxed atomics for connection events),
//! so they are always on; [`Socket::stats`](crate::Socket::stats) takes a snapshot.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> zocket::Result<()> {
//! let mut pull = zocket::Pull::bind("inproc://stats-doc").await?;
//! let mut push = zocket::Push::connect("inproc://stats-doc").await?;
//! push.send("hello").await?;
//! pull.recv().await?;
//!
//! let stats = push.stats();
//! assert_eq!(stats.traffic.messages_sent, 1);
//! assert_eq!(stats.traffic.bytes_sent, 5);
//! assert_eq!(stats.connections.connected, 1);
//! let peer = &stats.peers[0];
//! assert_eq!(peer.info.addr(), "inproc://stats-doc");
//! assert_eq!(peer.traffic.messages_sent, 1);
//! assert_eq!(pull.stats().traffic.messages_received, 1);
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::curve::PublicKey;
use crate::SocketType;

/// Which wire carries a peer's link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Wire {
    /// zocket's native multiplexed wire (a stream of a connection that other sockets of
    /// the two processes may share), CURVE-encrypted or not.
    Native,
    /// Plain ZMTP 3.x (a libzmq peer, or a zocket peer with `Options::native(false)`): one
    /// connection per link.
    Zmtp,
    /// In-process pipes (`inproc://`).
    Inproc,
}

impl fmt::Display for Wire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Wire::Native => "native",
            Wire::Zmtp => "zmtp",
            Wire::Inproc => "inproc",
        })
    }
}

/// Who made a peer's link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Direction {
    /// The peer connected to one of our bound endpoints.
    Accepted,
    /// We connected to the peer (`connect`, or a `dns://`/`mdns://` discovery).
    Connected,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Accepted => "accepted",
            Direction::Connected => "connected",
        })
    }
}

/// What a socket knows about one peer: where it is, over which wire, its routing id, and
/// the CURVE public key it proved it holds.
///
/// Given with each request by [`Request::peer`](crate::Request::peer), with each message by
/// the `recv_with_peer` of the receiving sockets ([`Router::recv_with_peer`](crate::Router::recv_with_peer),
/// [`Dealer::recv_with_peer`](crate::Dealer::recv_with_peer), ...), and per peer in
/// [`Stats`]. Cheap to clone (shared). A service behind CURVE authorizes per request with
/// [`curve_key`](Self::curve_key):
///
/// ```no_run
/// # async fn f(rep: &mut zocket::Rep, admins: &[zocket::curve::PublicKey]) -> zocket::Result<()> {
/// let request = rep.recv().await?;
/// let allowed = request.peer().curve_key().is_some_and(|key| admins.contains(&key));
/// request.reply(if allowed { "done" } else { "denied" }).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PeerInfo {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    addr: String,
    wire: Wire,
    direction: Direction,
    socket_type: Option<SocketType>,
    routing_id: Option<Bytes>,
    curve_key: Option<PublicKey>,
}

impl PeerInfo {
    pub(crate) fn new(
        addr: String,
        wire: Wire,
        direction: Direction,
        socket_type: Option<SocketType>,
        routing_id: Option<Bytes>,
        curve_key: Option<PublicKey>,
    ) -> PeerInfo {
        PeerInfo {
            inner: Arc::new(Inner {
                addr,
                wire,
                direction,
                socket_type,
                routing_id,
                curve_key,
            }),
        }
    }

    /// Where the peer is, as text: for a peer we connected to, the endpoint connected to
    /// (`tcp://10.0.0.7:5555/rpc`; for `dns://` and `mdns://`, the address discovered); for
    /// an accepted one, its address as our listener saw it (`127.0.0.1:40312` over TCP, the
    /// `ipc://` file, the `inproc://` name).
    pub fn addr(&self) -> &str {
        &self.inner.addr
    }

    /// The wire the link runs.
    pub fn wire(&self) -> Wire {
        self.inner.wire
    }

    /// Whether the peer connected to us or we to it.
    pub fn direction(&self) -> Direction {
        self.inner.direction
    }

    /// The peer's socket type, when it said (every zocket and ZMTP peer does).
    pub fn socket_type(&self) -> Option<SocketType> {
        self.inner.socket_type
    }

    /// The peer's routing id: for a [`Router`](crate::Router), the id it routes to this
    /// peer with (the one the peer asked for with `Options::identity`, or one the router
    /// made up); for other sockets, the identity the peer announced, if any.
    pub fn routing_id(&self) -> Option<&Bytes> {
        self.inner.routing_id.as_ref()
    }

    /// The long-term CURVE public key the peer proved it holds during the handshake, when
    /// the link is CURVE-encrypted: a client's key on a CURVE server (the one the
    /// authorizer accepted), the server's key on a client. `None` on a NULL link.
    pub fn curve_key(&self) -> Option<PublicKey> {
        self.inner.curve_key
    }
}

impl fmt::Debug for PeerInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerInfo")
            .field("addr", &self.inner.addr)
            .field("wire", &self.inner.wire)
            .field("direction", &self.inner.direction)
            .field("socket_type", &self.inner.socket_type)
            .field("routing_id", &self.inner.routing_id)
            .field("curve_key", &self.inner.curve_key)
            .finish()
    }
}

/// One line: `127.0.0.1:40312 (accepted, native, DEALER, id 0x0a1b, curve <Z85 key>)`.
impl fmt::Display for PeerInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        write!(f, "{} ({}, {}", i.addr, i.direction, i.wire)?;
        if let Some(ty) = i.socket_type {
            write!(f, ", {ty}")?;
        }
        if let Some(id) = &i.routing_id {
            write!(f, ", id ")?;
            routing_id_text(f, id)?;
        }
        if let Some(key) = &i.curve_key {
            write!(f, ", curve {key}")?;
        }
        f.write_str(")")
    }
}

/// A routing id as text when it is printable ASCII, else as `0x` and hex digits.
fn routing_id_text(f: &mut fmt::Formatter<'_>, id: &[u8]) -> fmt::Result {
    if !id.is_empty() && id.iter().all(|b| b.is_ascii_graphic()) {
        f.write_str(&String::from_utf8_lossy(id))
    } else {
        f.write_str("0x")?;
        id.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// Message counters, of one peer or of the whole socket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Traffic {
    /// Messages handed to the peer's queue (a message published to three subscribers counts
    /// three times in the socket's total). A Req's request resent to another peer counts
    /// again; subscription commands are not messages and do not count.
    pub messages_sent: u64,
    /// Payload bytes of those messages (the sum of their frames' lengths; framing and
    /// encryption not included).
    pub bytes_sent: u64,
    /// Messages read from the peer, including those the pattern then discards (a reply
    /// to an abandoned request, a message a Sub's subscriptions do not match).
    pub messages_received: u64,
    /// Payload bytes of those messages.
    pub bytes_received: u64,
    /// Messages dropped because the peer's queue was full (`send_hwm`): by a Pub for a
    /// slow subscriber, by a Rep or Router for a peer that does not read. With
    /// [`Options::conflate`](crate::Options::conflate), also the messages replaced by a newer
    /// one: unsent ones at the sender (no longer counted as sent), unread ones at the
    /// receiver.
    pub dropped: u64,
    /// Messages waiting in the peer's queue now, not yet taken by its link (a gauge, not a
    /// counter: in a socket's total, the sum over its current peers).
    pub queued: u64,
}

impl fmt::Display for Traffic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sent {} msgs / {} B, received {} msgs / {} B, dropped {}, queued {}",
            self.messages_sent,
            self.bytes_sent,
            self.messages_received,
            self.bytes_received,
            self.dropped,
            self.queued
        )
    }
}

/// A socket's link counts since it was made.
///
/// A link is what joins the socket to one peer: a stream of a native connection (which may
/// carry other sockets' streams too), a ZMTP connection, an inproc pipe pair. Each link is
/// counted once, by the socket it served, also when several sockets share a listener.
/// `accepted + connected - disconnected` is the number of peers the socket has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Connections {
    /// Links peers made to our bound endpoints that became usable (handshake done).
    pub accepted: u64,
    /// Links we made (`connect`, discoveries) that became usable; a Sub's once its
    /// publisher has its subscriptions.
    pub connected: u64,
    /// Usable links that ended (the peer left, the connection broke or timed out, a
    /// `disconnect`).
    pub disconnected: u64,
    /// Links that failed before they became usable, in either direction: a greeting or
    /// CURVE handshake that failed (a wrong key, a client the authorizer refused, NULL
    /// meeting CURVE), an incompatible socket type, a second `Pair` peer, a routing id in
    /// use. A failure on a listener before any socket is known (its greeting) counts at the
    /// socket bound at the address's default path, else at the one with the first path.
    pub handshakes_failed: u64,
}

impl fmt::Display for Connections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "accepted {}, connected {}, disconnected {}, handshakes failed {}",
            self.accepted, self.connected, self.disconnected, self.handshakes_failed
        )
    }
}

/// One peer's figures.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PeerStats {
    /// Who the peer is.
    pub info: PeerInfo,
    /// Whether the link is usable (false while it is being set up: a subscriber whose
    /// subscriptions have not arrived, a stream not accepted yet).
    pub ready: bool,
    /// Its counters since the link was made.
    pub traffic: Traffic,
}

/// A snapshot of a socket's statistics ([`Socket::stats`](crate::Socket::stats)).
///
/// `Display` prints it as a few lines of text (the `zocket` CLI's `--stats`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Stats {
    /// The socket's type.
    pub socket_type: SocketType,
    /// Totals since the socket was made, over every peer it has had (`queued`: over its
    /// current peers).
    pub traffic: Traffic,
    /// Its link counts.
    pub connections: Connections,
    /// Each current peer, in the order they came.
    pub peers: Vec<PeerStats>,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} socket: {}", self.socket_type, self.traffic)?;
        write!(f, "  links: {}", self.connections)?;
        for peer in &self.peers {
            write!(f, "\n  peer {}", peer.info)?;
            if !peer.ready {
                f.write_str(" [not ready]")?;
            }
            write!(f, ": {}", peer.traffic)?;
        }
        Ok(())
    }
}

/// A peer's counters, kept in the peer under the engine's lock (no atomics on the hot
/// path: every send and receive holds that lock already).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counters {
    messages_sent: u64,
    bytes_sent: u64,
    messages_received: u64,
    bytes_received: u64,
    dropped: u64,
}

impl Counters {
    /// One message of `bytes` payload bytes handed to the peer's queue.
    #[inline]
    pub(crate) fn sent(&mut self, bytes: usize) {
        self.messages_sent += 1;
        self.bytes_sent += bytes as u64;
    }

    /// One message of `bytes` payload bytes read from the peer.
    #[inline]
    pub(crate) fn received(&mut self, bytes: usize) {
        self.messages_received += 1;
        self.bytes_received += bytes as u64;
    }

    /// One message dropped at the high-water mark; returns the peer's drops so far.
    #[inline]
    pub(crate) fn dropped(&mut self) -> u64 {
        self.dropped += 1;
        self.dropped
    }

    /// Conflate: a message of `bytes` counted as sent was replaced in the queue by a newer
    /// one before any of it went out: it is a drop, not a send.
    #[inline]
    pub(crate) fn replaced_unsent(&mut self, bytes: usize) {
        self.messages_sent = self.messages_sent.saturating_sub(1);
        self.bytes_sent = self.bytes_sent.saturating_sub(bytes as u64);
        self.dropped += 1;
    }

    /// Adds `other` (a departing peer's counters, into the socket's).
    pub(crate) fn add(&mut self, other: &Counters) {
        self.messages_sent += other.messages_sent;
        self.bytes_sent += other.bytes_sent;
        self.messages_received += other.messages_received;
        self.bytes_received += other.bytes_received;
        self.dropped += other.dropped;
    }

    /// As public figures, with `queued` messages waiting.
    pub(crate) fn traffic(&self, queued: usize) -> Traffic {
        Traffic {
            messages_sent: self.messages_sent,
            bytes_sent: self.bytes_sent,
            messages_received: self.messages_received,
            bytes_received: self.bytes_received,
            dropped: self.dropped,
            queued: queued as u64,
        }
    }
}

/// A socket's link counts, as relaxed atomics: they change outside the engine's lock too
/// (a dial whose greeting failed, a listener's refused greeting).
#[derive(Debug, Default)]
pub(crate) struct LinkCounters {
    accepted: AtomicU64,
    connected: AtomicU64,
    disconnected: AtomicU64,
    handshakes_failed: AtomicU64,
}

impl LinkCounters {
    /// A link became usable.
    pub(crate) fn up(&self, direction: Direction) {
        let counter = match direction {
            Direction::Accepted => &self.accepted,
            Direction::Connected => &self.connected,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A usable link ended.
    pub(crate) fn down(&self) {
        self.disconnected.fetch_add(1, Ordering::Relaxed);
    }

    /// A link failed before it became usable.
    pub(crate) fn failed(&self) {
        self.handshakes_failed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Connections {
        Connections {
            accepted: self.accepted.load(Ordering::Relaxed),
            connected: self.connected.load(Ordering::Relaxed),
            disconnected: self.disconnected.load(Ordering::Relaxed),
            handshakes_failed: self.handshakes_failed.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_prints_its_routing_id_as_text_or_hex_and_its_key() {
        let key = crate::curve::KeyPair::generate();
        let info = PeerInfo::new(
            "127.0.0.1:4000".into(),
            Wire::Native,
            Direction::Accepted,
            Some(SocketType::Dealer),
            Some(Bytes::from_static(b"\x00\x01\xff")),
            Some(*key.public()),
        );
        let text = info.to_string();
        assert!(
            text.starts_with("127.0.0.1:4000 (accepted, native, DEALER, id 0x0001ff, curve "),
            "{text}"
        );
        assert!(text.contains(&key.public().to_string()), "{text}");
        let plain = PeerInfo::new(
            "inproc://x".into(),
            Wire::Inproc,
            Direction::Connected,
            None,
            Some(Bytes::from_static(b"worker-1")),
            None,
        );
        assert_eq!(
            plain.to_string(),
            "inproc://x (connected, inproc, id worker-1)"
        );
    }

    #[test]
    fn a_departed_peers_counters_add_into_the_sockets() {
        let mut socket = Counters::default();
        let mut peer = Counters::default();
        peer.sent(10);
        peer.sent(6);
        peer.received(3);
        assert_eq!(peer.dropped(), 1);
        socket.add(&peer);
        socket.add(&peer);
        let t = socket.traffic(4);
        assert_eq!(
            (
                t.messages_sent,
                t.bytes_sent,
                t.messages_received,
                t.bytes_received
            ),
            (4, 32, 2, 6)
        );
        assert_eq!((t.dropped, t.queued), (2, 4));
    }
}
