//! Socket and connection options.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

/// Tunables for sockets, connections and the multiplexer, in builder style.
///
/// Every option has a default that suits a service on a LAN; each setter says what it is
/// and what it protects against.
///
/// ```
/// use std::time::Duration;
/// let opts = zocket::Options::new()
///     .send_hwm(10_000)
///     .reconnect_interval(Duration::from_millis(50))
///     .max_message_size(1 << 20);
/// assert_eq!(opts.get_send_hwm(), 10_000);
/// ```
#[derive(Debug, Clone)]
pub struct Options {
    pub(crate) send_hwm: usize,
    pub(crate) recv_hwm: usize,
    pub(crate) linger: Option<Duration>,
    pub(crate) reconnect_interval: Duration,
    pub(crate) reconnect_interval_max: Duration,
    pub(crate) heartbeat_interval: Option<Duration>,
    pub(crate) heartbeat_timeout: Duration,
    pub(crate) handshake_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) tcp_keepalive: Option<Duration>,
    pub(crate) tcp_keepalive_interval: Option<Duration>,
    pub(crate) tcp_keepalive_count: Option<u32>,
    pub(crate) max_connections: usize,
    pub(crate) max_handshakes: usize,
    pub(crate) max_message_size: u64,
    pub(crate) max_message_frames: u32,
    pub(crate) identity: Option<Bytes>,
    pub(crate) request_timeout: Option<Duration>,
    pub(crate) router_mandatory: bool,
    pub(crate) router_handover: bool,
    pub(crate) conflate: bool,
    pub(crate) max_subscription_bytes: usize,
    pub(crate) xpub_verbose: bool,
    pub(crate) dns_refresh: Duration,
    pub(crate) stream_window: u32,
    pub(crate) max_streams: usize,
    pub(crate) connection_window: usize,
    pub(crate) native: bool,
    pub(crate) discovery: Option<std::sync::Arc<dyn crate::discovery::Discovery>>,
    pub(crate) node: Option<String>,
    pub(crate) mdns_interfaces: Vec<String>,
    pub(crate) mdns_listen: IpAddr,
    pub(crate) security: Security,
    pub(crate) curve_authorizer: Option<SharedAuthorizer>,
}

/// A CURVE server's authorizer, shared by its connections.
#[derive(Clone)]
pub(crate) struct SharedAuthorizer(pub(crate) Arc<dyn crate::curve::Authorizer>);

impl std::fmt::Debug for SharedAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authorizer")
    }
}

/// A socket's connection security: the ZMTP mechanism it greets with, and its keys.
#[derive(Clone, Default)]
pub(crate) enum Security {
    /// NULL: plaintext, unauthenticated (the default).
    #[default]
    Null,
    /// A CURVE server with this long-term key pair.
    CurveServer {
        /// The server's long-term key pair.
        keys: crate::curve::KeyPair,
    },
    /// A CURVE client: the server key it trusts and its own key pair.
    CurveClient {
        /// The server's long-term public key.
        server: crate::curve::PublicKey,
        /// The client's long-term key pair.
        keys: crate::curve::KeyPair,
    },
}

impl Security {
    /// Whether the socket greets with mechanism CURVE.
    pub(crate) fn is_curve(&self) -> bool {
        !matches!(self, Security::Null)
    }

    /// What the connection pool adds to an address's key: the mechanism, the server key
    /// and our own public key (never a secret), so that only sockets with the same
    /// security share a connection.
    pub(crate) fn pool_key(&self) -> String {
        match self {
            Security::Null => String::new(),
            Security::CurveServer { keys } => format!("#curve-server:{}", keys.public()),
            Security::CurveClient { server, keys } => {
                format!("#curve-client:{server}:{}", keys.public())
            }
        }
    }

    /// What a listener's peers see of it, for comparing two binds at one address: the
    /// mechanism, the role and the server key (never a secret).
    pub(crate) fn describe(&self) -> String {
        match self {
            Security::Null => "NULL (no security)".to_owned(),
            Security::CurveServer { keys, .. } => {
                format!("CURVE server with key {}", keys.public())
            }
            Security::CurveClient { server, .. } => {
                format!("CURVE client of server key {server}")
            }
        }
    }
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Security::Null => f.write_str("Null"),
            Security::CurveServer { keys } => f
                .debug_struct("CurveServer")
                .field("public", keys.public())
                .finish(),
            Security::CurveClient { server, keys } => f
                .debug_struct("CurveClient")
                .field("server", server)
                .field("public", keys.public())
                .finish(),
        }
    }
}

/// Default of [`Options::max_message_size`]: 64 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 64 * 1024 * 1024;

/// Default of [`Options::connection_window`]: 32 MiB.
pub const DEFAULT_CONNECTION_WINDOW: usize = 32 * 1024 * 1024;

/// Default of [`Options::max_subscription_bytes`]: 8 MiB (about 100,000 subscriptions of
/// 20 bytes each).
pub const DEFAULT_MAX_SUBSCRIPTION_BYTES: usize = 8 * 1024 * 1024;

/// Default of [`Options::max_connections`]: 1024 connections per listener.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Default of [`Options::max_handshakes`]: 64 greetings in progress per listener.
pub const DEFAULT_MAX_HANDSHAKES: usize = 64;

/// Default of [`Options::stream_window`]: 1 MiB.
pub const DEFAULT_STREAM_WINDOW: u32 = 1024 * 1024;

impl Default for Options {
    fn default() -> Self {
        Options {
            send_hwm: 1000,
            recv_hwm: 1000,
            linger: Some(Duration::from_secs(10)),
            reconnect_interval: Duration::from_millis(100),
            reconnect_interval_max: Duration::from_secs(10),
            heartbeat_interval: Some(Duration::from_secs(5)),
            heartbeat_timeout: Duration::from_secs(15),
            handshake_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            tcp_keepalive: None,
            tcp_keepalive_interval: None,
            tcp_keepalive_count: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_message_frames: crate::proto::limits::DEFAULT_MAX_MESSAGE_FRAMES,
            identity: None,
            request_timeout: None,
            router_mandatory: false,
            router_handover: false,
            conflate: false,
            max_subscription_bytes: DEFAULT_MAX_SUBSCRIPTION_BYTES,
            xpub_verbose: false,
            dns_refresh: Duration::from_secs(30),
            stream_window: DEFAULT_STREAM_WINDOW,
            max_streams: 256,
            connection_window: DEFAULT_CONNECTION_WINDOW,
            native: true,
            discovery: None,
            node: None,
            mdns_interfaces: Vec::new(),
            mdns_listen: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            security: Security::Null,
            curve_authorizer: None,
        }
    }
}

impl Options {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Outgoing messages queued per peer before the socket applies its "full" rule (drop
    /// for `Pub`, `Rep` and `Router`; the others send to another peer, or wait while none
    /// has room). Default 1000. Bounds memory per slow peer.
    pub fn send_hwm(mut self, messages: usize) -> Self {
        self.send_hwm = messages.max(1);
        self
    }

    /// Incoming messages queued per peer before the peer is pushed back. Default 1000.
    /// Bounds memory per fast peer (together with [`stream_window`](Self::stream_window),
    /// which bounds the bytes).
    pub fn recv_hwm(mut self, messages: usize) -> Self {
        self.recv_hwm = messages.max(1);
        self
    }

    /// How long `close` (or drop) keeps trying to deliver queued outgoing messages.
    /// `None` waits forever, `Some(ZERO)` discards them. Default 10 s. Once it is over, what
    /// is still undelivered is discarded and its links aborted (a native stream reset, a
    /// ZMTP connection closed), so a peer that stops reading cannot keep the connection
    /// and the data open.
    pub fn linger(mut self, linger: Option<Duration>) -> Self {
        self.linger = linger;
        self
    }

    /// First delay before redialing a lost or refused peer; it doubles (with jitter) up to
    /// [`reconnect_interval_max`](Self::reconnect_interval_max). Default 100 ms.
    pub fn reconnect_interval(mut self, interval: Duration) -> Self {
        self.reconnect_interval = interval;
        self
    }

    /// Upper bound of the redial delay. Default 10 s. Keeps a dead peer from being hammered.
    pub fn reconnect_interval_max(mut self, interval: Duration) -> Self {
        self.reconnect_interval_max = interval;
        self
    }

    /// How long a connection may be silent before we ping the peer; `None` disables
    /// heartbeats. Default 5 s.
    pub fn heartbeat_interval(mut self, interval: Option<Duration>) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// How long a connection may be silent before the peer is declared dead and the
    /// connection closed (and redialed by the side that dialed). Default 15 s. Detects peers
    /// behind a broken network path, which TCP alone notices only after many minutes.
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.heartbeat_timeout = timeout;
        self
    }

    /// How long a new connection may take to complete its greeting and handshake.
    /// Default 10 s. Stops a peer that connects and says nothing from holding a slot.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// How long one dial's transport connect may take: name resolution and the TCP connect
    /// (the `SYN` and its answer) of a `tcp://` endpoint, or the connect of an `ipc://` one.
    /// Default 10 s. The greeting and handshake that follow have their own
    /// [`handshake_timeout`](Self::handshake_timeout).
    ///
    /// Without it a dial to an address that silently drops packets (a host that is down
    /// behind a firewall, a full listen backlog) waits for the operating system's own limit
    /// (minutes on Linux) before the next attempt. A connect that times out fails with
    /// [`Error::Timeout`](crate::Error::Timeout) and is retried after the reconnect backoff.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// TCP keepalive on every `tcp://` connection of the socket, dialed or accepted:
    /// `Some(idle)` turns it on (`SO_KEEPALIVE`) and has the operating system send a probe
    /// after `idle` without traffic (`TCP_KEEPIDLE`); `None` (the default) leaves keepalive
    /// off, as the operating system makes new sockets. `idle` is counted in whole seconds
    /// (rounded down, at least 1 s).
    ///
    /// For links that sit idle behind NATs and firewalls, which forget a connection after a
    /// few minutes without traffic and then drop its packets silently: probes more often
    /// than that keep the mapping alive, and a peer that stopped answering is noticed by
    /// the kernel after [`tcp_keepalive_count`](Self::tcp_keepalive_count) unanswered probes.
    /// Between zocket peers and ZMTP 3.1 peers [`heartbeat_interval`](Self::heartbeat_interval)
    /// does this too; keepalive also covers peers that never heartbeat, and works below
    /// the application. Sockets of one process share their connections to one address and
    /// their listener at one address: the setting of the socket that dialed or bound first
    /// applies.
    ///
    /// ```
    /// use std::time::Duration;
    /// // A probe after 60 s of silence, then every 10 s; the link is dropped after 5 misses.
    /// let options = zocket::Options::new()
    ///     .tcp_keepalive(Some(Duration::from_secs(60)))
    ///     .tcp_keepalive_interval(Duration::from_secs(10))
    ///     .tcp_keepalive_count(5)
    ///     .connect_timeout(Duration::from_secs(3));
    /// # drop(options);
    /// ```
    pub fn tcp_keepalive(mut self, idle: Option<Duration>) -> Self {
        self.tcp_keepalive = idle;
        self
    }

    /// Time between two TCP keepalive probes while the peer does not answer
    /// (`TCP_KEEPINTVL`), in whole seconds (rounded down, at least 1 s). Default: the
    /// operating system's (75 s on Linux). Used only when
    /// [`tcp_keepalive`](Self::tcp_keepalive) is on; ignored on platforms without the option.
    pub fn tcp_keepalive_interval(mut self, interval: Duration) -> Self {
        self.tcp_keepalive_interval = Some(interval);
        self
    }

    /// Unanswered TCP keepalive probes after which the kernel closes the connection
    /// (`TCP_KEEPCNT`); at least 1. Default: the operating system's (9 on Linux). A dead peer
    /// is noticed after about `idle + interval × count`. Used only when
    /// [`tcp_keepalive`](Self::tcp_keepalive) is on; ignored on platforms without the option.
    pub fn tcp_keepalive_count(mut self, count: u32) -> Self {
        self.tcp_keepalive_count = Some(count.max(1));
        self
    }

    /// Most connections one listener (a bound `tcp://` or `ipc://` address) holds at once,
    /// greeting or established. Default 1024 ([`DEFAULT_MAX_CONNECTIONS`]); at least 1.
    ///
    /// Defends against connection floods: without it, every connection a peer (or many)
    /// opens costs a file descriptor, a task and buffers until the process runs out of
    /// descriptors and cannot accept anyone. Beyond the limit a new connection is accepted
    /// and closed at once, with a `warn!` (at most one per second) and an
    /// [`Event::HandshakeFailed`](crate::monitor::Event::HandshakeFailed) on the monitor, so
    /// it leaves the kernel's backlog and the dialer learns at once, instead of waiting
    /// there. Sockets sharing one address share its listener: the limit of the socket that
    /// bound it first applies.
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections.max(1);
        self
    }

    /// Most connections one listener lets run their greeting at once (the bytes exchanged
    /// before a peer is known to speak zocket or ZMTP). Default 64
    /// ([`DEFAULT_MAX_HANDSHAKES`]); at least 1.
    ///
    /// Defends against slow or silent peers (a "slowloris"): each greeting may take up to
    /// [`handshake_timeout`](Self::handshake_timeout), and while this many are in progress the
    /// listener stops accepting until one of them finishes or times out, so silent
    /// connections wait in the kernel's backlog (costing us nothing) rather than holding
    /// descriptors and tasks here. Honest peers are served as soon as a slot frees.
    /// On a CURVE socket the slot is held until the CURVE handshake is done too, so this
    /// also bounds the handshakes in progress that cost us X25519 operations.
    pub fn max_handshakes(mut self, handshakes: usize) -> Self {
        self.max_handshakes = handshakes.max(1);
        self
    }

    /// Largest message accepted from a peer, in bytes, all frames together. Default
    /// 64 MiB ([`DEFAULT_MAX_MESSAGE_SIZE`]). A peer's length claims are checked against it
    /// before any memory is reserved, so a hostile peer cannot make us allocate more.
    ///
    /// Sockets of one process share connections and listeners; each socket holds its
    /// peers to its own limit, whichever socket made the connection. The native wire
    /// announces the limit of the socket that made the connection (in its HELLO), and a
    /// zocket sender refuses a message over the peer's announced limit itself: `send`
    /// fails with [`Error::MessageTooLarge`](crate::Error::MessageTooLarge), `try_send`
    /// hands the message back ([`TrySendError::TooLarge`](crate::TrySendError::TooLarge)),
    /// a `Pub`'s subscriber misses it (counted as dropped), and the link goes on. A peer
    /// that sends it anyway loses only that stream (RESET). Plain ZMTP announces no limit:
    /// an oversized message closes the connection (ERROR), as libzmq's `ZMQ_MAXMSGSIZE`
    /// does.
    pub fn max_message_size(mut self, bytes: u64) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Most frames in one message accepted from a peer. Default 65,536. A message's frames
    /// cost memory even when empty (each is a handle in the message), so a peer that sends
    /// one message of endless empty frames (`MORE`, `MORE`, …) is refused at this count
    /// instead of growing a message without bound. Over the limit, the native wire resets
    /// only that peer's stream; a ZMTP peer loses its connection. A `Sub` sends its
    /// subscriptions to a publisher as one message of one frame each, so a subscriber with
    /// more subscriptions than this needs a higher limit at its publishers.
    pub fn max_message_frames(mut self, frames: u32) -> Self {
        self.max_message_frames = frames.max(1);
        self
    }

    /// The routing id this socket announces to the peers it connects to (seen by a
    /// `Router`). Default none: the Router assigns one.
    pub fn identity(mut self, identity: impl Into<Bytes>) -> Self {
        self.identity = Some(identity.into());
        self
    }

    /// How long a `Req` waits for a reply before failing with `Error::Timeout`.
    /// Default none (wait forever, resending to another peer if the holder disconnects).
    pub fn request_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Whether a `Router` fails a send to an unknown peer with `Error::HostUnreachable`
    /// instead of dropping it. Default false.
    pub fn router_mandatory(mut self, mandatory: bool) -> Self {
        self.router_mandatory = mandatory;
        self
    }

    /// Whether a `Router` hands a routing identity over to a newcomer that claims it while
    /// another link holds it (libzmq's `ZMQ_ROUTER_HANDOVER`). Default false: the newcomer
    /// is refused and the holder keeps the identity.
    ///
    /// For peers that restart with a fixed identity (a worker given `Options::identity`):
    /// after a network cut the router still holds the dead link's identity until the
    /// heartbeat declares it dead (up to `heartbeat_timeout`), and without handover the
    /// restarted worker is refused until then. With handover the old link is closed at once
    /// (its queued messages are dropped, its monitor says why) and the newcomer routes under
    /// the identity.
    ///
    /// On a CURVE server, an identity is handed over only to a client with the same public
    /// key as its holder: the key is authenticated, so a peer cannot take another client's
    /// identity. Without CURVE, identities are only what peers claim: any peer that can
    /// connect can take over any identity it knows, and receive the messages routed to it.
    /// Use handover without CURVE on trusted networks only.
    ///
    /// ```no_run
    /// # async fn f() -> zocket::Result<()> {
    /// use zocket::{Options, Router};
    /// // Workers connect with fixed identities (`Options::identity`) and may restart.
    /// let router = Router::with_options(Options::new().router_handover(true));
    /// router.bind("tcp://0.0.0.0:5555").await?;
    /// # Ok(()) }
    /// ```
    pub fn router_handover(mut self, handover: bool) -> Self {
        self.router_handover = handover;
        self
    }

    /// Keep only the newest message per peer instead of a queue. Default false.
    ///
    /// For state that each message replaces (a price, a position, a sensor reading), where a
    /// slow reader wants the latest value, not a backlog. For `Pub`, `Sub`, `Push`, `Pull`,
    /// `Dealer` and `Pair`; on any other type, [`bind`](crate::Socket::bind) and
    /// [`connect`](crate::Socket::connect) fail with
    /// [`Error::InvalidOption`](crate::Error::InvalidOption) (a `Req`, `Rep` or `Router`
    /// would lose requests or replies, which their patterns cannot recover from).
    ///
    /// - Sending: a message not yet handed to the peer's connection is replaced by the next
    ///   one, so each peer holds at most one unsent message and a send never waits for room
    ///   (it still waits, on a `Push`, `Dealer` or `Pair`, while no peer is connected).
    ///   `send_hwm` does not apply.
    /// - Receiving: what each peer sends is read as it arrives (so its connection never
    ///   stalls behind an unread backlog) and only its newest whole message is kept; `recv`
    ///   returns it. With several peers, each one's newest is kept, fair-queued.
    ///
    /// Unlike libzmq's `ZMQ_CONFLATE`, multipart messages work: a message is always replaced
    /// whole, never in part, and never merged with another. What a peer can make the socket
    /// hold stays one message (at most [`max_message_size`](Self::max_message_size)) plus its
    /// connection's window. Subscriptions a `Sub` sends are never conflated. Messages
    /// already handed to a connection (up to its flow-control window, or an inproc pipe's
    /// capacity) are delivered, so a reader may see a few older ones before the newest
    /// after a burst; it never sees them out of order.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> zocket::Result<()> {
    /// let opts = zocket::Options::new().conflate(true);
    /// let mut pull = zocket::Pull::with_options(opts.clone());
    /// pull.bind("inproc://doc-conflate").await?;
    /// let mut push = zocket::Push::with_options(opts);
    /// push.connect("inproc://doc-conflate")?;
    /// push.wait_for_peers(1).await?;
    /// for i in 0..100u32 {
    ///     push.send(["price".to_string(), i.to_string()]).await?; // never waits for room
    /// }
    /// let latest = pull.recv().await?; // the newest, whole: ["price", "99"]
    /// assert_eq!(latest.frames(), &["price", "99"][..]);
    /// # Ok(()) }
    /// ```
    pub fn conflate(mut self, conflate: bool) -> Self {
        self.conflate = conflate;
        self
    }

    /// Refuses options that `socket_type` cannot honour (see [`conflate`](Self::conflate)).
    pub(crate) fn check(&self, socket_type: crate::SocketType) -> crate::Result<()> {
        use crate::SocketType as T;
        let conflates = matches!(
            socket_type,
            T::Pub | T::Sub | T::Push | T::Pull | T::Dealer | T::Pair
        );
        if self.conflate && !conflates {
            return Err(crate::Error::InvalidOption {
                option: "conflate",
                socket_type,
                reason: "conflate is for PUB, SUB, PUSH, PULL, DEALER and PAIR sockets; \
                         replacing requests or replies would break the pattern"
                    .to_owned(),
            });
        }
        Ok(())
    }

    /// How much subscription state one subscriber may make a `Pub` hold: the sum, over the
    /// distinct prefixes it subscribed to, of each prefix's length plus 64 bytes (what a
    /// trie node and its bookkeeping cost). Subscribing to a prefix it already holds costs
    /// nothing more. Default [`DEFAULT_MAX_SUBSCRIPTION_BYTES`] (8 MiB: about 100,000
    /// topics of 20 bytes).
    ///
    /// Defends against a subscriber (any ZeroMQ peer that can connect) growing the
    /// publisher's subscription trie without bound, which would also slow every `send`. A
    /// subscriber that goes over the budget is dropped, with the reason in the log and in a
    /// monitor `Disconnected` event: its native stream is reset, its ZMTP connection closed.
    /// A `Sub` whose own subscriptions exceed its publisher's budget is dropped on every
    /// reconnect, so set the same budget on both sides.
    pub fn max_subscription_bytes(mut self, bytes: usize) -> Self {
        self.max_subscription_bytes = bytes;
        self
    }

    /// Whether an [`XPub`](crate::XPub) passes on every subscribe and unsubscribe message
    /// its subscribers send (`true`), or only the first subscribe and the last unsubscribe
    /// of each prefix across all of them, plus unsubscribes for the prefixes a leaving
    /// subscriber alone held (`false`, the default). Verbose is libzmq's
    /// `ZMQ_XPUB_VERBOSER` (subscribes and unsubscribes both): a forwarder whose upstream
    /// must see each subscriber's subscriptions sets it. Other socket types ignore it.
    pub fn xpub_verbose(mut self, verbose: bool) -> Self {
        self.xpub_verbose = verbose;
        self
    }

    /// How often `dns://` endpoints are resolved again. Default 30 s.
    pub fn dns_refresh(mut self, interval: Duration) -> Self {
        self.dns_refresh = interval;
        self
    }

    /// Bytes a peer may send on one multiplexed stream before we have read them (the
    /// per-stream flow-control window). Default 1 MiB ([`DEFAULT_STREAM_WINDOW`]). Bounds the
    /// memory one unread stream can hold; larger windows help throughput on long, fast links.
    /// A plain ZMTP peer (libzmq) has no window: its input is left in the kernel (TCP
    /// backpressure) once its unread messages hold this many bytes (or
    /// [`connection_window`](Self::connection_window), whichever is smaller, counted as
    /// really held: payload plus 64 bytes per frame), or `recv_hwm` messages wait unread,
    /// and taken again once half of that has been read.
    pub fn stream_window(mut self, bytes: u32) -> Self {
        self.stream_window = bytes.max(MIN_STREAM_WINDOW);
        self
    }

    /// Most streams a peer may open on one connection. Default 256. Beyond it, its OPENs
    /// are refused (REJECT 5). Each stream costs a table entry and a window of credit; what
    /// all of them together may hold unread is bounded by
    /// [`connection_window`](Self::connection_window).
    pub fn max_streams(mut self, streams: usize) -> Self {
        self.max_streams = streams.max(1);
        self
    }

    /// Bytes one connection's received but unread data may hold, all its streams together,
    /// counted as really held: payloads, 64 bytes per frame, and the read buffer a large
    /// payload keeps alive (payloads under 64 KiB are copied out of it). Default 32 MiB
    /// ([`DEFAULT_CONNECTION_WINDOW`]). When a connection reaches it, we stop reading from
    /// that connection (TCP pushes back on that peer alone) until our sockets have read
    /// half of it, so a peer that opens many streams to a slow reader cannot make us hold
    /// `max_streams` × `stream_window`. A plain ZMTP connection is held to the smaller of
    /// this and `stream_window`.
    pub fn connection_window(mut self, bytes: usize) -> Self {
        self.connection_window = bytes.max(MIN_STREAM_WINDOW as usize);
        self
    }

    /// Whether to offer zocket's native multiplexed wire to peers that are zocket too.
    /// Default true. With false the socket greets like libzmq and speaks plain ZMTP 3.1 to
    /// every peer, zocket or not (for testing interop, or to compare the two wires); each
    /// link then has a connection of its own.
    pub fn native(mut self, native: bool) -> Self {
        self.native = native;
        self
    }

    /// Where `dns://` endpoints find their addresses: by default the system resolver
    /// ([`Dns`](crate::discovery::Dns)); any [`Discovery`](crate::discovery::Discovery)
    /// plugs in here (a static list, a service registry). The endpoint's port and path are
    /// still those of the `dns://` endpoint when the source gives port 0.
    pub fn discovery(mut self, discovery: std::sync::Arc<dyn crate::discovery::Discovery>) -> Self {
        self.discovery = Some(discovery);
        self
    }

    /// The node this socket belongs to, for `mdns://`: a connect never joins an
    /// announcement of its own node. Default: this process (its random instance id), so a
    /// process never connects to itself. Give the sockets of one logical node the same name
    /// to run several nodes in one process (tests, simulations); at most 64 printable ASCII
    /// characters, longer names are cut.
    ///
    /// ```no_run
    /// # async fn demo() -> zocket::Result<()> {
    /// use zocket::{Options, Pub, Sub};
    /// let node_a = Options::new().node("a");
    /// let publisher = Pub::with_options(node_a.clone());
    /// publisher.bind("mdns://chat").await?;
    /// let subscriber = Sub::with_options(node_a); // hears every node on "chat" but "a"
    /// subscriber.connect("mdns://chat")?;
    /// # Ok(()) }
    /// ```
    pub fn node(mut self, name: impl Into<String>) -> Self {
        let name: String = name
            .into()
            .chars()
            .filter(char::is_ascii_graphic)
            .take(crate::discovery::mdns::txt::MAX_NODE_LEN)
            .collect();
        self.node = (!name.is_empty()).then_some(name);
        self
    }

    /// The network interfaces (by name: `eth0`, `lo`) on which `mdns://` endpoints announce
    /// and browse. Default: all of them. The mDNS responder is shared by the sockets of a
    /// process that use the same interface list.
    pub fn mdns_interfaces<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.mdns_interfaces = names.into_iter().map(Into::into).collect();
        self
    }

    /// The address a `bind("mdns://…")` listens on, at an ephemeral port. Default
    /// `0.0.0.0` (every IPv4 interface; the announcement lists their addresses). `::`
    /// listens on IPv6 as well; a specific address is the only one announced.
    pub fn mdns_listen(mut self, addr: IpAddr) -> Self {
        self.mdns_listen = addr;
        self
    }

    /// Makes this socket a CURVE server (ZMTP-CURVE, RFC 25, as libzmq's
    /// `ZMQ_CURVE_SERVER`) with this long-term secret key: every connection is encrypted
    /// and clients must know the matching public key (publish
    /// `secret.public_key()`). Default: no security (NULL), which is only safe on a network
    /// where every host is trusted.
    ///
    /// Defends against eavesdropping, tampering and impersonation of the server. Without
    /// an authorizer ([`curve_allow`](Self::curve_allow),
    /// [`curve_authorizer`](Self::curve_authorizer)) any client that completes the
    /// handshake is accepted, as libzmq without ZAP: encryption without authentication of
    /// clients (logged once at bind). Security belongs to the listening address: binding a
    /// socket with other security at an address bound already fails. Two zocket peers run
    /// the native multiplexed wire inside CURVE boxes (one box per write batch); a libzmq
    /// peer gets ZMTP frames inside MESSAGE boxes. A peer greeting with another mechanism
    /// (NULL) is refused with an error naming both. The application sees each client's key
    /// where it receives ([`Request::peer_key`](crate::Request::peer_key),
    /// `recv_with_peer`), to authorize per request.
    ///
    /// ```
    /// use zocket::curve::KeyPair;
    /// let server = KeyPair::generate();
    /// let opts = zocket::Options::new().curve_server(server.secret().clone());
    /// // Clients use `Options::new().curve_client(*server.public(), KeyPair::generate())`.
    /// # let _ = opts;
    /// ```
    pub fn curve_server(mut self, secret: crate::curve::SecretKey) -> Self {
        self.security = Security::CurveServer {
            keys: crate::curve::KeyPair::from_secret(secret),
        };
        self
    }

    /// Makes this socket a CURVE client that trusts only the server holding the secret key
    /// of `server` and proves itself with `keys` (which a server may check against its
    /// allow-list). Default: no security (NULL).
    ///
    /// Defends against a man in the middle and impersonation of the server: a server
    /// without the secret key of `server` cannot complete the handshake; the connection
    /// then fails, is reported (`HandshakeFailed`) and redialed with backoff like any failed
    /// handshake.
    pub fn curve_client(
        mut self,
        server: crate::curve::PublicKey,
        keys: crate::curve::KeyPair,
    ) -> Self {
        self.security = Security::CurveClient { server, keys };
        self
    }

    /// A CURVE server accepts only the clients whose public keys are listed (see
    /// [`AllowList`](crate::curve::AllowList)); others get an ERROR, and the server's monitor
    /// a `HandshakeFailed` naming the refused key. Default: no list (every client that
    /// completes the handshake). Call it after [`curve_server`](Self::curve_server), or
    /// before: the two combine.
    pub fn curve_allow<I>(self, clients: I) -> Self
    where
        I: IntoIterator<Item = crate::curve::PublicKey>,
    {
        self.curve_authorizer(clients.into_iter().collect::<crate::curve::AllowList>())
    }

    /// A CURVE server asks `authorizer` about every client's public key once its handshake
    /// has proved the client holds the secret key (see
    /// [`Authorizer`](crate::curve::Authorizer)); refused clients get an ERROR and the
    /// server's monitor a `HandshakeFailed` naming the key. Default: none (every client that
    /// completes the handshake is accepted). It replaces an earlier
    /// [`curve_allow`](Self::curve_allow). Ignored unless the socket is a CURVE server.
    pub fn curve_authorizer(mut self, authorizer: impl crate::curve::Authorizer) -> Self {
        self.curve_authorizer = Some(SharedAuthorizer(Arc::new(authorizer)));
        self
    }

    /// The node name announced and compared by `mdns://` ([`node`](Self::node)).
    pub(crate) fn node_name(&self) -> String {
        match &self.node {
            Some(name) => name.clone(),
            None => crate::instance::hex(&crate::instance::id()),
        }
    }

    /// Current value of [`send_hwm`](Self::send_hwm).
    pub fn get_send_hwm(&self) -> usize {
        self.send_hwm
    }

    /// Current value of [`max_message_size`](Self::max_message_size).
    pub fn get_max_message_size(&self) -> u64 {
        self.max_message_size
    }
}

/// Smallest allowed stream window: one full data chunk.
pub(crate) const MIN_STREAM_WINDOW: u32 = 64 * 1024;
