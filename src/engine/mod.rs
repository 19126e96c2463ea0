//! The engine every socket type shares.
//!
//! An [`Engine`] owns a socket's peers (one per connected peer, each with a link and a queue
//! bounded by `send_hwm`), the routing structures of [`pattern`](crate::pattern) that pick
//! peers, its binds and dialers, and a background task. Socket front ends call it directly:
//! a send picks a peer and hands the message to that peer's link at once when the link has
//! room (no task hop); the background task only finishes what the links could not take at
//! once, accepts subscriptions, notices dead peers and lingers on close.
//!
//! Links report readiness through one [`Signal`] per socket; whoever takes the engine's lock
//! next absorbs it ([`Engine::absorb`]), so a socket with a thousand peers never polls them
//! one by one.

mod discover;
mod hub;
mod peer;
mod signal;
mod stats;
mod subscription;
mod xpub;

use std::collections::BTreeMap;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};

use bytes::Bytes;
use tracing::{debug, info, warn};

pub(crate) use peer::{Link, Peer, Phase, Read};
pub(crate) use signal::Signal;

use crate::monitor::{Event, Monitor, MonitorSender};
use crate::pattern::fair_queue::FairQueue;
use crate::pattern::fan_out::{FanOut, OverBudget, Subscriptions};
use crate::pattern::round_robin::RoundRobin;
use crate::pattern::router::Identities;
use crate::pattern::PeerId;
use crate::proto::native::Reason;
use crate::stats::{Counters, LinkCounters, PeerInfo};
use crate::transport::dialer::Dialer;
use crate::warn_limit::warn_limited;
use crate::{Endpoint, Error, Message, Options, Result, SocketType, TryRecvError, TrySendError};

/// The shared core of one socket.
#[derive(Debug)]
pub(crate) struct Engine {
    pub(crate) socket_type: SocketType,
    pub(crate) options: Arc<Options>,
    pub(crate) signal: Arc<Signal>,
    pub(crate) monitor: MonitorSender,
    /// Link counts (accepted, connected, ...; see [`crate::stats::Connections`]).
    pub(crate) links: LinkCounters,
    state: Mutex<State>,
}

/// What became of a message sent to one peer ([`Engine::send_to`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub(crate) enum Delivery {
    /// Queued for the peer.
    Queued,
    /// The peer is not (or no longer) connected: the message is gone.
    NoSuchPeer,
    /// The peer's queue was full: the message was dropped and counted.
    Dropped,
}

/// What the engine's lock guards.
#[derive(Debug)]
pub(crate) struct State {
    /// Every peer, in any phase.
    pub(crate) peers: BTreeMap<PeerId, Peer>,
    next_peer: u64,
    /// Active peers, for round-robin sends.
    rr: RoundRobin,
    /// Peers that may have something to read.
    fair: FairQueue,
    /// Pub: each subscriber's subscriptions.
    fanout: FanOut,
    /// Router: routing ids.
    identities: Identities,
    /// Sub: what we subscribed to, sent to every publisher.
    subscriptions: Subscriptions,
    /// XPub: subscriptions for the handle, deduplicated across subscribers.
    xpub: xpub::XPubState,
    /// Sub, XSub: distinct prefixes in `subscriptions`.
    subscribed_prefixes: usize,
    /// `close` began: no more binds, connects or sends.
    closing: bool,
    /// Sub: the handle has started receiving; publishers get our subscriptions.
    receiving: bool,
    binds: Vec<hub::Binding>,
    /// Each connect: its endpoint, its dialer, the peer its current connection made, and
    /// who asked for it.
    dialers: Vec<(Endpoint, Dialer, hub::DialedPeer, Origin)>,
    /// Each `dns://` and `mdns://` connect: its endpoint and the discovery that keeps its
    /// connects.
    watches: Vec<(Endpoint, discover::Watch)>,
    /// Reused by fan-out.
    matched: Vec<PeerId>,
    /// Reused by `absorb`.
    ready: signal::Ready,
    /// The message counters of the peers that have gone.
    retired: Counters,
}

impl Engine {
    /// A new engine for a socket of `socket_type`, with its background task running.
    pub(crate) fn new(socket_type: SocketType, options: Options) -> Arc<Engine> {
        let subscription_budget = options.max_subscription_bytes;
        let conflate = options.conflate;
        let xpub = xpub::XPubState::new(options.xpub_verbose, options.recv_hwm);
        let engine = Arc::new(Engine {
            socket_type,
            options: Arc::new(options),
            // A conflating socket reads as messages arrive (keeping each peer's newest), so
            // its engine reads too.
            signal: Signal::new(
                matches!(
                    socket_type,
                    SocketType::Pub | SocketType::XPub | SocketType::Push
                ) || conflate,
            ),
            monitor: MonitorSender::new(),
            links: LinkCounters::default(),
            state: Mutex::new(State {
                peers: BTreeMap::new(),
                next_peer: 1,
                rr: RoundRobin::new(),
                fair: FairQueue::new(),
                fanout: FanOut::new(subscription_budget),
                identities: Identities::new(),
                subscriptions: Subscriptions::new(),
                xpub,
                subscribed_prefixes: 0,
                closing: false,
                receiving: false,
                binds: Vec::new(),
                dialers: Vec::new(),
                watches: Vec::new(),
                matched: Vec::new(),
                ready: signal::Ready::default(),
                retired: Counters::default(),
            }),
        });
        let weak = Arc::downgrade(&engine);
        let span = tracing::debug_span!("zocket.socket", socket = %socket_type);
        tokio::spawn(tracing::Instrument::instrument(background(weak), span));
        engine
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A stream of this socket's connection events.
    pub(crate) fn monitor(&self) -> Monitor {
        self.monitor.subscribe()
    }

    // ----- binding and connecting -----

    /// Binds `endpoint`; returns the endpoint actually bound (the real port for `:0`).
    pub(crate) async fn bind(self: &Arc<Self>, endpoint: &str) -> Result<Endpoint> {
        self.options.check(self.socket_type)?;
        let endpoint: Endpoint = endpoint.parse()?;
        let binding = hub::bind(self, &endpoint).await?;
        let local = binding.endpoint().clone();
        let mut st = self.lock();
        if st.closing {
            return Err(Error::Closed);
        }
        st.binds.push(binding);
        Ok(local)
    }

    /// The endpoints bound, in order.
    pub(crate) fn endpoints(&self) -> Vec<Endpoint> {
        self.lock()
            .binds
            .iter()
            .map(|b| b.endpoint().clone())
            .collect()
    }

    /// Starts connecting to `endpoint` in the background (and reconnecting when lost).
    pub(crate) fn connect(self: &Arc<Self>, endpoint: &str) -> Result<()> {
        self.options.check(self.socket_type)?;
        let endpoint: Endpoint = endpoint.parse()?;
        let watch = match &endpoint {
            Endpoint::Dns { host, port, path } => Some(discover::watch_dns(
                self,
                host.clone(),
                *port,
                path.clone(),
                endpoint.to_string(),
            )),
            Endpoint::Mdns { name, path } => Some(discover::watch_mdns(
                self,
                name.clone(),
                path.clone(),
                endpoint.to_string(),
            )?),
            _ => None,
        };
        if let Some(watch) = watch {
            let mut st = self.lock();
            if st.closing {
                return Err(Error::Closed);
            }
            st.watches.push((endpoint, watch));
            return Ok(());
        }
        self.connect_as(endpoint, Origin::User)
    }

    /// Starts a connect to an address endpoint on behalf of `origin`.
    pub(crate) fn connect_as(self: &Arc<Self>, endpoint: Endpoint, origin: Origin) -> Result<()> {
        let dialed = hub::DialedPeer::default();
        let dialer = hub::dial(self, endpoint.clone(), dialed.clone())?;
        let mut st = self.lock();
        if st.closing {
            return Err(Error::Closed);
        }
        st.dialers.push((endpoint, dialer, dialed, origin));
        Ok(())
    }

    /// Stops connecting to `endpoint` and closes the link its connect made.
    pub(crate) fn disconnect(&self, endpoint: &str) -> Result<()> {
        let wanted: Endpoint = endpoint.parse()?;
        if let Endpoint::Dns { .. } | Endpoint::Mdns { .. } = wanted {
            let watches = {
                let mut st = self.lock();
                let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut st.watches)
                    .into_iter()
                    .partition(|(ep, _)| *ep == wanted);
                st.watches = kept;
                gone
            };
            if watches.is_empty() {
                return Err(Error::Io(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("not connected to {endpoint}"),
                )));
            }
            for (_, watch) in watches {
                let (origin, endpoints) = (watch.origin(), watch.endpoints());
                drop(watch); // stops resolving first
                for ep in endpoints {
                    let _ = self.disconnect_as(&ep, origin);
                }
            }
            return Ok(());
        }
        self.disconnect_as(&wanted, Origin::User)
    }

    /// Stops the connects to `wanted` that `origin` made (a user's `disconnect` leaves the
    /// ones a discovery made, and the other way round) and closes their links.
    pub(crate) fn disconnect_as(&self, wanted: &Endpoint, origin: Origin) -> Result<()> {
        let mut st = self.lock();
        let before = st.dialers.len();
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut st.dialers)
            .into_iter()
            .partition(|(ep, _, _, by)| ep == wanted && *by == origin);
        st.dialers = kept;
        if st.dialers.len() == before {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("not connected to {wanted}"),
            )));
        }
        for (_, dialer, dialed, _) in gone {
            drop(dialer); // stops redialing first, so the link is not made again
            let peer = dialed.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(peer) = peer {
                self.remove_peer(&mut st, peer, None);
            }
        }
        Ok(())
    }

    /// Stops listening on a bound endpoint (as `bind` was given it, or as it returned it).
    /// Peers already connected through it stay.
    pub(crate) async fn unbind(&self, endpoint: &str) -> Result<()> {
        let wanted: Endpoint = endpoint.parse()?;
        let binding = {
            let mut st = self.lock();
            let at = st
                .binds
                .iter()
                .position(|b| *b.endpoint() == wanted || b.requested() == &wanted);
            match at {
                Some(i) => st.binds.remove(i),
                None => {
                    return Err(Error::Io(std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("not bound to {endpoint}"),
                    )))
                }
            }
        };
        binding.close().await;
        Ok(())
    }

    // ----- peers -----

    /// Adds a peer whose link is set up; returns its id. `phase` says whether it is usable
    /// yet. Starts observing its link.
    pub(crate) fn add_peer(&self, st: &mut State, peer_fn: impl FnOnce(PeerId) -> Peer) -> PeerId {
        let id = PeerId(st.next_peer);
        st.next_peer += 1;
        let mut peer = peer_fn(id);
        let active = peer.phase == Phase::Active;
        if self.socket_type.is_subscriber() && st.receiving {
            // A publisher learns our subscriptions before anything else, even before it
            // accepts our stream: it accepts only once it has them.
            for msg in subscription::snapshot_for(&peer.link, &st.subscriptions) {
                peer.enqueue_now(msg);
            }
            peer.snapshot_sent = true;
        }
        match &peer.link {
            Link::Native {
                session, stream, ..
            } => session.lock().observe(*stream, self.signal.clone(), id.0),
            Link::Zmtp(shared) => shared.lock().observe(self.signal.clone(), id.0),
            Link::Inproc(_) => {}
        }
        st.peers.insert(id, peer);
        if active {
            self.activate(st, id);
        } else if let Some(Peer {
            link: Link::Inproc(_),
            ..
        }) = st.peers.get(&id)
        {
            // Inproc links report readiness through wakers registered on first read.
            self.signal.notify();
        }
        // Inproc links have no observer: look at them once now (which also registers
        // their wakers), and write what was queued before the peer was added.
        self.poke(st, id);
        self.on_writable(st, id);
        id
    }

    /// Reads from a fresh inproc peer once, so its reader waker gets registered.
    fn poke(&self, st: &mut State, id: PeerId) {
        if let Some(peer) = st.peers.get(&id) {
            if matches!(peer.link, Link::Inproc(_)) {
                self.on_readable(st, id);
            }
        }
    }

    /// Makes a peer usable: it joins the routing structures and waiters are told.
    fn activate(&self, st: &mut State, id: PeerId) {
        let Some(peer) = st.peers.get_mut(&id) else {
            return;
        };
        peer.phase = Phase::Active;
        peer.learn_peer_limits();
        if let Some(tx) = peer.on_active.take() {
            let _ = tx.send(Ok(()));
        }
        let identity = peer.identity.clone();
        match self.socket_type {
            SocketType::Pub | SocketType::XPub => st.fanout.add_peer(id),
            SocketType::Router => {
                let requested = (!identity.is_empty()).then_some(identity);
                let mut inserted = st.identities.insert(id, requested.clone());
                if let Err(dup) = &inserted {
                    if self.may_take_over(st, dup.holder, id) {
                        info!(identity = ?dup.identity, "router handover: a new link takes the identity over");
                        self.remove_peer(
                            st,
                            dup.holder,
                            Some(Error::Refused {
                                reason:
                                    "another link took this routing identity over (router_handover)"
                                        .into(),
                            }),
                        );
                        inserted = st.identities.insert(id, requested);
                    }
                }
                match inserted {
                    Ok(routing_id) => {
                        if let Some(peer) = st.peers.get_mut(&id) {
                            peer.identity = routing_id;
                        }
                    }
                    Err(dup) => {
                        warn_limited!(identity = ?dup.identity, "refusing a second peer with a live identity");
                        self.remove_peer(
                            st,
                            id,
                            Some(Error::Refused {
                                reason: "another peer already uses this identity".into(),
                            }),
                        );
                        return;
                    }
                }
            }
            _ => {}
        }
        if let Some(peer) = st.peers.get_mut(&id).filter(|p| p.info.is_none()) {
            let info = stats::describe(peer);
            self.links.up(info.direction());
            peer.info = Some(info);
        }
        st.rr.add(id);
        st.fair.push_ready(id);
        self.signal.notify();
    }

    /// Whether `newcomer` may take the routing identity `holder` holds: only with
    /// `Options::router_handover`, and on CURVE links only between the same client key.
    fn may_take_over(&self, st: &State, holder: PeerId, newcomer: PeerId) -> bool {
        if !self.options.router_handover {
            return false;
        }
        match (st.peers.get(&holder), st.peers.get(&newcomer)) {
            (Some(old), Some(new)) => old.curve_key() == new.curve_key(),
            _ => false,
        }
    }

    /// Drops a peer: out of every structure, its link closed, its watchers told.
    pub(crate) fn remove_peer(&self, st: &mut State, id: PeerId, why: Option<Error>) {
        let Some(mut peer) = st.peers.remove(&id) else {
            return;
        };
        st.rr.remove(id);
        st.fair.remove(id);
        if self.socket_type == SocketType::XPub {
            // Its prefixes leave the fan-out; the handle hears of those no one else holds.
            let State { xpub, fanout, .. } = &mut *st;
            xpub.remove_peer(fanout, id);
        }
        st.fanout.remove_peer(id);
        st.identities.remove(id);
        st.retired.add(&peer.counters);
        if peer.info.is_some() {
            self.links.down();
        } else if why.is_some() && !st.closing {
            self.links.failed(); // it never became usable
        }
        match &why {
            Some(e @ (Error::Protocol(_) | Error::MessageTooLarge { .. })) => {
                warn_limited!(peer = %peer.endpoint, error = %e, "peer broke the protocol or a limit; its link is closed")
            }
            _ => debug!(peer = %peer.endpoint, reason = ?why, "peer removed"),
        }
        if !peer.dialed && !st.closing {
            // An accepted peer: no dialer reports it, so the engine does. One that never
            // became usable (its ZMTP or CURVE handshake failed) failed its handshake.
            let endpoint = peer.endpoint.clone();
            let reason = why
                .as_ref()
                .map_or_else(|| "closed".to_owned(), Error::to_string);
            let opening = peer.phase == Phase::Opening && matches!(peer.link, Link::Zmtp(_));
            self.monitor.emit(if opening {
                Event::HandshakeFailed { endpoint, reason }
            } else {
                Event::Disconnected { endpoint, reason }
            });
        }
        peer.close(why.is_some());
        if let Some(tx) = peer.on_active.take() {
            let _ = tx.send(Err(why.as_ref().map_or(Error::Closed, Error::duplicate)));
        }
        if let Some(tx) = peer.on_gone.take() {
            let _ = tx.send(why);
        }
        self.signal.notify();
    }

    /// Absorbs readiness signals: flushes peers that can take more, handles what
    /// only the engine reads (subscriptions, links that are opening), drops dead peers.
    pub(crate) fn absorb(&self, st: &mut State) {
        if !self.signal.has_pending() {
            return;
        }
        let mut ready = std::mem::take(&mut st.ready);
        self.signal.take_into(&mut ready);
        for &token in &ready.writable {
            self.on_writable(st, PeerId(token));
        }
        for &token in &ready.readable {
            self.on_readable(st, PeerId(token));
        }
        st.ready = ready;
    }

    fn on_writable(&self, st: &mut State, id: PeerId) {
        let Some(peer) = st.peers.get_mut(&id) else {
            return;
        };
        let opening = peer.phase == Phase::Opening;
        if let Err(e) = peer.flush(&self.signal, false) {
            self.remove_peer(st, id, Some(e));
            return;
        }
        if opening {
            self.check_opening(st, id);
        }
    }

    fn on_readable(&self, st: &mut State, id: PeerId) {
        let Some(peer) = st.peers.get_mut(&id) else {
            return;
        };
        match peer.phase {
            Phase::Opening => self.check_opening(st, id),
            Phase::AwaitingSubscriptions if self.socket_type == SocketType::XPub => {
                self.read_xpub(st, id)
            }
            Phase::AwaitingSubscriptions => self.read_subscriptions(st, id),
            Phase::Active => match self.socket_type {
                SocketType::Pub => self.read_subscriptions(st, id),
                SocketType::XPub => self.read_xpub(st, id),
                SocketType::Push => self.drain_ignored(st, id),
                _ if self.options.conflate => self.read_latest(st, id),
                _ => {
                    if peer.failed() {
                        // Reading a failed link says why it went (a reset, a message over
                        // the limit, the connection lost), for the log and the monitor.
                        let why = match peer.read(&self.signal) {
                            Read::Gone(why) => why,
                            _ => None,
                        };
                        self.remove_peer(st, id, why);
                    } else {
                        st.fair.push_ready(id);
                    }
                }
            },
        }
    }

    /// An outgoing native stream: activate once accepted, drop if refused.
    fn check_opening(&self, st: &mut State, id: PeerId) {
        let Some(peer) = st.peers.get_mut(&id) else {
            return;
        };
        if let Link::Zmtp(shared) = &peer.link {
            // A ZMTP peer is there once its READY arrived (no acknowledgement exists).
            let (ready, failure) = {
                let inner = shared.lock();
                (inner.ready.clone(), inner.failure())
            };
            if let Some((remote, identity)) = ready {
                peer.remote_type = Some(remote);
                if peer.identity.is_empty() {
                    peer.identity = identity;
                }
                self.activate(st, id);
                self.read_arrived_with_acceptance(st, id);
            } else if let Some(e) = failure {
                self.remove_peer(st, id, Some(e));
            }
            return;
        }
        let Link::Native {
            session, stream, ..
        } = &peer.link
        else {
            // An inproc subscriber waits for the publisher's acknowledgement.
            match peer.read(&self.signal) {
                Read::Message(msg) if subscription::is_snapshot(&msg) => self.activate(st, id),
                Read::Message(_) | Read::Empty => {}
                Read::Gone(why) => self.remove_peer(st, id, Some(why.unwrap_or(Error::Closed))),
            }
            return;
        };
        let (accepted, failed) = {
            let inner = session.lock();
            (
                inner.core.stream_peer(*stream),
                inner.core.stream_failed(*stream),
            )
        };
        if let Some((code, identity)) = accepted {
            peer.remote_type = SocketType::from_code(code);
            if peer.identity.is_empty() {
                peer.identity = identity;
            }
            self.activate(st, id);
            self.read_arrived_with_acceptance(st, id);
        } else if failed {
            let why = match peer.read(&self.signal) {
                Read::Gone(why) => why,
                _ => None,
            };
            self.remove_peer(st, id, Some(why.unwrap_or(Error::Closed)));
        }
    }

    /// What came in the same read as a link's acceptance (a ZMTP peer's SUBSCRIBE right
    /// behind its READY, a Sub's snapshot behind its ACCEPT) was signalled once, and that
    /// signal went to `check_opening`: where the engine itself reads (Pub, Push), read it
    /// now, or it waits for a signal that may never come. (Other types read through the fair
    /// queue, which `activate` joined.)
    fn read_arrived_with_acceptance(&self, st: &mut State, id: PeerId) {
        let active = st.peers.get(&id).is_some_and(|p| p.phase == Phase::Active);
        if active
            && matches!(
                self.socket_type,
                SocketType::Pub | SocketType::XPub | SocketType::Push
            )
        {
            self.on_readable(st, id);
        }
    }

    /// Pub side: applies subscription messages from a subscriber (and accepts its stream
    /// once its snapshot is in). A subscriber over its subscription budget
    /// (`Options::max_subscription_bytes`) is dropped, before it is ever counted when its
    /// snapshot is what went over.
    fn read_subscriptions(&self, st: &mut State, id: PeerId) {
        self.drain(st, id, |engine, st, msg| {
            let Some(peer) = st.peers.get_mut(&id) else {
                return;
            };
            let awaiting = peer.phase == Phase::AwaitingSubscriptions;
            if awaiting {
                // A large snapshot's first part comes as subscribe messages before it.
                st.fanout.add_peer(id);
            }
            match subscription::apply(&mut st.fanout, id, &msg) {
                Err(over) => engine.drop_over_budget(st, id, over),
                Ok(true) if awaiting => {
                    if let Some(peer) = st.peers.get_mut(&id) {
                        hub::accept_stream(peer, engine);
                    }
                    engine.activate(st, id); // joins the fan-out
                }
                Ok(_) => {}
            }
        });
    }

    /// XPub side: applies what a subscriber sends (its snapshot accepts its stream, as at a
    /// Pub) and queues what the handle is to see. Reads only while that queue has room:
    /// once it is full the subscriber is held back (its link keeps the rest, pushing back
    /// on it) until the handle takes some ([`next_for_xpub`](Self::next_for_xpub)).
    fn read_xpub(&self, st: &mut State, id: PeerId) {
        let before = st.xpub.len();
        self.read_xpub_messages(st, id);
        if st.xpub.len() > before {
            self.signal.notify(); // the handle may be waiting for what was queued
        }
    }

    fn read_xpub_messages(&self, st: &mut State, id: PeerId) {
        loop {
            if st.xpub.is_full() {
                st.xpub.hold_back(id);
                return;
            }
            let Some(peer) = st.peers.get_mut(&id) else {
                return;
            };
            let msg = match peer.read(&self.signal) {
                Read::Message(msg) => msg,
                Read::Empty => return,
                Read::Gone(why) => {
                    self.remove_peer(st, id, why);
                    return;
                }
            };
            let awaiting = peer.phase == Phase::AwaitingSubscriptions;
            let origin = xpub::Origin {
                remote: peer.remote_type,
                snapshots: !matches!(peer.link, Link::Zmtp(_)),
            };
            if awaiting {
                // A large snapshot's first part comes as subscribe messages before it.
                st.fanout.add_peer(id);
            }
            let State { xpub, fanout, .. } = &mut *st;
            match xpub.apply(fanout, id, msg, origin) {
                Err(over) => {
                    self.drop_over_budget(st, id, over);
                    return;
                }
                Ok(true) if awaiting => {
                    if let Some(peer) = st.peers.get_mut(&id) {
                        hub::accept_stream(peer, self);
                    }
                    self.activate(st, id);
                }
                Ok(_) => {}
            }
        }
    }

    /// XPub: the next message for the handle; reads the subscribers that were held back
    /// once there is room again.
    fn next_for_xpub(&self, st: &mut State) -> Option<(PeerId, Message)> {
        let got = st.xpub.pop();
        if !st.xpub.is_full() {
            for id in st.xpub.take_held_back() {
                self.read_xpub(st, id);
            }
        }
        got.or_else(|| st.xpub.pop())
    }

    /// Drops a subscriber over its subscription budget, saying why: a native stream not yet
    /// accepted is rejected with the reason as text (the Sub's side reports it); an accepted
    /// one is reset, a ZMTP connection closed.
    fn drop_over_budget(&self, st: &mut State, id: PeerId, over: OverBudget) {
        let reason = over.to_string();
        if let Some(Peer {
            phase: Phase::AwaitingSubscriptions,
            link: Link::Native {
                session, stream, ..
            },
            ..
        }) = st.peers.get(&id)
        {
            let mut inner = session.lock();
            inner.core.reject(*stream, Reason::PROTOCOL_ERROR, &reason);
            inner.wake_driver();
        }
        self.remove_peer(st, id, Some(Error::Protocol(reason)));
    }

    /// Conflate: reads what peer `id` sent, keeping its newest message for `recv`; drops the
    /// peer once its link is gone and nothing it sent waits to be received.
    fn read_latest(&self, st: &mut State, id: PeerId) {
        let State {
            peers,
            subscriptions,
            fair,
            ..
        } = &mut *st;
        let Some(peer) = peers.get_mut(&id) else {
            return;
        };
        let sub = self.socket_type == SocketType::Sub;
        let gone = peer.read_latest(&self.signal, CONFLATE_READ_LIMIT, |msg| {
            !sub || subscription::wanted(subscriptions, msg)
        });
        let kept = peer.has_latest();
        if kept {
            fair.push_ready(id);
        }
        if let (Some(why), false) = (gone, kept) {
            self.remove_peer(st, id, why);
        }
    }

    /// A peer that should send us nothing (a Pull connected to our Push): read and drop,
    /// which also notices when it goes away.
    fn drain_ignored(&self, st: &mut State, id: PeerId) {
        self.drain(st, id, |_, _, _| {});
    }

    /// Reads every message peer `id` has sent into `handle`; drops the peer when its link
    /// is gone.
    fn drain(
        &self,
        st: &mut State,
        id: PeerId,
        mut handle: impl FnMut(&Self, &mut State, Message),
    ) {
        loop {
            let Some(peer) = st.peers.get_mut(&id) else {
                return;
            };
            match peer.read(&self.signal) {
                Read::Message(msg) => handle(self, st, msg),
                Read::Empty => return,
                Read::Gone(why) => {
                    self.remove_peer(st, id, why);
                    return;
                }
            }
        }
    }

    // ----- sending -----

    /// Fan-out (Pub): queues `msg` for every active peer whose subscriptions match its
    /// first frame; a peer whose queue is full misses it. Never waits, and spends no
    /// budget: the caller does ([`cooperate`]).
    pub(crate) fn send_fanout(&self, msg: Message) -> Result<()> {
        let mut st = self.lock();
        if st.closing {
            return Err(Error::Closed);
        }
        self.absorb(&mut st);
        let topic = msg.first().cloned().unwrap_or_default();
        let mut matched = std::mem::take(&mut st.matched);
        st.fanout.matching(&topic, &mut matched);
        let hwm = self.options.send_hwm;
        let conflate = self.options.conflate;
        let bytes = msg.byte_len();
        for &id in &matched {
            let Some(peer) = st.peers.get_mut(&id) else {
                continue;
            };
            if peer.phase != Phase::Active {
                continue;
            }
            if let Some(max) = peer.refuses_size(bytes) {
                // This subscriber would refuse it (and reset its link): it misses it.
                peer.drop_oversized(bytes, max);
                continue;
            }
            let queued = if conflate {
                peer.enqueue_replacing(msg.clone(), &self.signal, false)
            } else if peer.queued() >= hwm {
                // Full: this subscriber misses the message, counted (and logged now and
                // then: a subscriber that stopped reading causes one per message).
                let dropped = peer.counters.dropped();
                if dropped.is_power_of_two() {
                    debug!(peer = %peer.endpoint, dropped, "subscriber's queue is full (send_hwm): messages dropped");
                }
                continue;
            } else {
                peer.enqueue(msg.clone(), &self.signal, false)
            };
            match queued {
                Ok(()) => peer.counters.sent(bytes),
                Err((e, _)) => self.remove_peer(&mut st, id, Some(e)),
            }
        }
        st.matched = matched;
        Ok(())
    }

    /// Round-robin (Push, Dealer, Req, Pair): queues `msg` on the next active peer with
    /// room; `Pending` (with `msg` left in place) while no peer has room. `direct`: the
    /// caller waits for an answer next, so the message is written to the connection from
    /// this task at once rather than by the connection's driver.
    ///
    /// Spends one unit of the task's cooperative budget ([`cooperate`]).
    pub(crate) fn poll_send_rr(
        &self,
        cx: &mut Context<'_>,
        msg: &mut Option<Message>,
        direct: bool,
    ) -> Poll<Result<PeerId>> {
        cooperate(cx, |cx| self.poll_send_rr_now(cx, msg, direct))
    }

    /// [`poll_send_rr`](Self::poll_send_rr) without the budget.
    fn poll_send_rr_now(
        &self,
        cx: &mut Context<'_>,
        msg: &mut Option<Message>,
        direct: bool,
    ) -> Poll<Result<PeerId>> {
        let mut st = self.lock();
        if st.closing {
            return Poll::Ready(Err(Error::Closed));
        }
        self.absorb(&mut st);
        if let Poll::Ready(sent) = self.try_send_rr(&mut st, msg, direct) {
            return Poll::Ready(sent);
        }
        // No peer has room: register, then try once more (see `poll_recv`).
        self.signal.register(cx.waker());
        self.absorb(&mut st);
        self.try_send_rr(&mut st, msg, direct)
    }

    fn try_send_rr(
        &self,
        st: &mut State,
        msg: &mut Option<Message>,
        direct: bool,
    ) -> Poll<Result<PeerId>> {
        let hwm = self.options.send_hwm;
        let conflate = self.options.conflate;
        let bytes = msg.as_ref().map_or(0, Message::byte_len);
        loop {
            let State { rr, peers, .. } = &mut *st;
            // Conflate: every active peer has room (the message replaces its unsent one).
            let next = rr.next(|p| {
                peers.get(&p).is_some_and(|peer| {
                    peer.phase == Phase::Active && (conflate || peer.queued() < hwm)
                })
            });
            let Some(id) = next else { return Poll::Pending };
            let Some(m) = msg.take() else {
                return Poll::Ready(Ok(id));
            };
            let Some(peer) = st.peers.get_mut(&id) else {
                *msg = Some(m);
                st.rr.remove(id);
                continue;
            };
            if let Some(max) = peer.refuses_size(bytes) {
                // Sent, it would only be refused by the peer, which resets the stream.
                *msg = Some(m);
                return Poll::Ready(Err(too_large(bytes, max)));
            }
            let queued = if conflate {
                peer.enqueue_replacing(m, &self.signal, direct)
            } else {
                peer.enqueue(m, &self.signal, direct)
            };
            match queued {
                Ok(()) => {
                    peer.counters.sent(bytes);
                    return Poll::Ready(Ok(id));
                }
                Err((e, back)) => {
                    // Lost with the peer if part of it was written already.
                    *msg = back;
                    self.remove_peer(st, id, Some(e));
                    if msg.is_none() {
                        return Poll::Ready(Ok(id));
                    }
                }
            }
        }
    }

    /// Non-blocking round-robin send: queues `msg` as [`poll_send_rr`](Self::poll_send_rr)
    /// would, or hands it back when that would wait (no peer with room) or the socket is
    /// closed. Registers no waker and spends no budget.
    pub(crate) fn try_send_rr_now(&self, msg: Message) -> Result<PeerId, TrySendError> {
        let mut st = self.lock();
        if st.closing {
            return Err(TrySendError::Closed(msg));
        }
        self.absorb(&mut st);
        let mut slot = Some(msg);
        match self.try_send_rr(&mut st, &mut slot, false) {
            Poll::Ready(Ok(id)) => Ok(id),
            // The message stays in the slot when it is refused or would wait.
            Poll::Ready(Err(Error::MessageTooLarge { max, .. })) => Err(TrySendError::TooLarge {
                msg: slot.unwrap_or_default(),
                max,
            }),
            Poll::Ready(Err(_)) => Err(TrySendError::Closed(slot.unwrap_or_default())),
            Poll::Pending => Err(TrySendError::Full(slot.unwrap_or_default())),
        }
    }

    /// Non-blocking send to one peer (Router): like [`send_to`](Self::send_to), except that
    /// a full queue hands the message back (`Full`) instead of dropping it, and so does a
    /// peer that is not connected (`HostUnreachable`; the caller decides whether that is an
    /// error). Spends no budget.
    pub(crate) fn try_send_to(&self, id: PeerId, msg: Message) -> Result<(), TrySendError> {
        let mut st = self.lock();
        if st.closing {
            return Err(TrySendError::Closed(msg));
        }
        self.absorb(&mut st);
        let Some(peer) = st.peers.get_mut(&id) else {
            return Err(TrySendError::HostUnreachable(msg));
        };
        if let Some(max) = peer.refuses_size(msg.byte_len()) {
            return Err(TrySendError::TooLarge { msg, max });
        }
        if peer.queued() >= self.options.send_hwm {
            return Err(TrySendError::Full(msg));
        }
        if let Err((e, back)) = peer.enqueue(msg, &self.signal, false) {
            self.remove_peer(&mut st, id, Some(e));
            // Lost with the peer if part of it was written already.
            if let Some(msg) = back {
                return Err(TrySendError::HostUnreachable(msg));
            }
        }
        Ok(())
    }

    /// Whether the socket is closing (no more sends).
    pub(crate) fn is_closing(&self) -> bool {
        self.lock().closing
    }

    /// Sends to one peer (Router, Rep), never waiting: a peer whose queue is full
    /// (`send_hwm`) misses the message, which is counted
    /// ([`dropped_messages`](Self::dropped_messages)), so that one peer that does not read
    /// cannot stop the socket from serving the others. `direct` as for
    /// [`poll_send_rr`](Self::poll_send_rr). Spends no budget: the caller does
    /// ([`cooperate`]).
    pub(crate) fn send_to(&self, id: PeerId, msg: Message, direct: bool) -> Result<Delivery> {
        let mut st = self.lock();
        if st.closing {
            return Err(Error::Closed);
        }
        self.absorb(&mut st);
        let hwm = self.options.send_hwm;
        let Some(peer) = st.peers.get_mut(&id) else {
            return Ok(Delivery::NoSuchPeer);
        };
        if let Some(max) = peer.refuses_size(msg.byte_len()) {
            return Err(too_large(msg.byte_len(), max));
        }
        if peer.queued() >= hwm {
            let dropped = peer.counters.dropped();
            // Debug level: a peer that stopped reading can cause one of these per message.
            debug!(
                peer = %peer.endpoint,
                queued = peer.queued(),
                dropped_so_far = dropped,
                "peer's queue is full (send_hwm): message dropped"
            );
            return Ok(Delivery::Dropped);
        }
        let bytes = msg.byte_len();
        if let Err((e, _)) = peer.enqueue(msg, &self.signal, direct) {
            self.remove_peer(&mut st, id, Some(e));
            return Ok(Delivery::NoSuchPeer);
        }
        peer.counters.sent(bytes);
        Ok(Delivery::Queued)
    }

    /// Messages dropped because their peer's queue was full, since the socket was made
    /// (the `dropped` of its [`stats`](Self::stats)).
    #[cfg(test)]
    pub(crate) fn dropped_messages(&self) -> u64 {
        self.stats().traffic.dropped
    }

    /// The peer a Router identity names.
    pub(crate) fn peer_by_identity(&self, identity: &[u8]) -> Option<PeerId> {
        self.lock().identities.peer(identity)
    }

    // ----- receiving -----

    /// Fair-queued receive: the next whole message from any peer, with the peer's id.
    /// Spends one unit of the task's cooperative budget ([`cooperate`]).
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Result<(PeerId, Message)>> {
        cooperate(cx, |cx| self.poll_recv_now(cx, |_, _| ())).map_ok(|(id, msg, ())| (id, msg))
    }

    /// [`poll_recv`](Self::poll_recv), with who sent the message, as known when it was read
    /// (under the same lock: the peer cannot have gone in between).
    pub(crate) fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(PeerId, Message, Option<PeerInfo>)>> {
        cooperate(cx, |cx| self.poll_recv_now(cx, stats::info_of))
    }

    /// [`poll_recv`](Self::poll_recv) without the budget; `with` takes what else the caller
    /// wants to know about the sender while the lock is held.
    fn poll_recv_now<T>(
        &self,
        cx: &mut Context<'_>,
        with: impl Fn(&State, PeerId) -> T,
    ) -> Poll<Result<(PeerId, Message, T)>> {
        let mut st = self.lock();
        self.start_receiving(&mut st);
        self.absorb(&mut st);
        if let Some((id, msg)) = self.try_recv(&mut st) {
            return Poll::Ready(Ok((id, msg, with(&st, id))));
        }
        // Nothing yet: register, then look once more, so a signal that came in between
        // is not lost. (Registering only here keeps the busy path free of it.)
        self.signal.register(cx.waker());
        self.absorb(&mut st);
        if let Some((id, msg)) = self.try_recv(&mut st) {
            return Poll::Ready(Ok((id, msg, with(&st, id))));
        }
        if st.closing {
            return Poll::Ready(Err(Error::Closed));
        }
        Poll::Pending
    }

    /// The next whole message from the fair queue of readable peers.
    fn try_recv(&self, st: &mut State) -> Option<(PeerId, Message)> {
        if self.socket_type == SocketType::XPub {
            return self.next_for_xpub(st);
        }
        if self.options.conflate {
            return self.try_recv_latest(st);
        }
        // The front peer stays queued while it yields messages (rotated to the back after
        // each, so a busy peer cannot starve the others) and leaves once it has none.
        while let Some(id) = st.fair.front() {
            let Some(peer) = st.peers.get_mut(&id) else {
                st.fair.pop();
                continue;
            };
            if peer.phase != Phase::Active {
                st.fair.pop();
                continue;
            }
            match peer.read(&self.signal) {
                Read::Message(msg) => {
                    peer.counters.received(msg.byte_len());
                    st.fair.rotate();
                    if self.socket_type.is_subscriber()
                        && !subscription::wanted(&st.subscriptions, &msg)
                    {
                        continue;
                    }
                    return Some((id, msg));
                }
                Read::Empty => {
                    st.fair.pop();
                }
                Read::Gone(why) => {
                    st.fair.pop();
                    self.remove_peer(st, id, why);
                }
            }
        }
        None
    }

    /// [`try_recv`](Self::try_recv) of a conflating socket: the newest message of the next
    /// peer in the fair queue (read up to date first).
    fn try_recv_latest(&self, st: &mut State) -> Option<(PeerId, Message)> {
        let sub = self.socket_type == SocketType::Sub;
        while let Some(id) = st.fair.pop() {
            let State {
                peers,
                subscriptions,
                ..
            } = &mut *st;
            let Some(peer) = peers.get_mut(&id) else {
                continue;
            };
            if peer.phase != Phase::Active {
                continue;
            }
            // Nothing more waits from this peer once its link is read to the end (a
            // readable signal queues it again); a link found gone is dropped, after its
            // last message is taken.
            let gone = peer.read_latest(&self.signal, CONFLATE_READ_LIMIT, |msg| {
                !sub || subscription::wanted(subscriptions, msg)
            });
            let msg = peer.take_latest();
            if let Some(msg) = &msg {
                peer.counters.received(msg.byte_len());
            }
            if let Some(why) = gone {
                self.remove_peer(st, id, why);
            }
            if let Some(msg) = msg {
                return Some((id, msg));
            }
        }
        None
    }

    /// Non-blocking receive: the next whole message if one is waiting, `Empty` otherwise
    /// (registers no waker). The same fair queue as [`poll_recv`](Self::poll_recv), so the
    /// two can be mixed without loss or reordering.
    pub(crate) fn try_recv_now(&self) -> Result<(PeerId, Message), TryRecvError> {
        self.try_recv_with(|_, _| ()).map(|(id, msg, ())| (id, msg))
    }

    /// [`try_recv_now`](Self::try_recv_now), with who sent the message (looked up under
    /// the lock it was read with).
    pub(crate) fn try_recv_from(
        &self,
    ) -> Result<(PeerId, Message, Option<PeerInfo>), TryRecvError> {
        self.try_recv_with(stats::info_of)
    }

    /// The non-blocking receive; `with` takes what else the caller wants to know about the
    /// sender while the lock is held.
    fn try_recv_with<T>(
        &self,
        with: impl Fn(&State, PeerId) -> T,
    ) -> Result<(PeerId, Message, T), TryRecvError> {
        let mut st = self.lock();
        self.start_receiving(&mut st);
        self.absorb(&mut st);
        if let Some((id, msg)) = self.try_recv(&mut st) {
            return Ok((id, msg, with(&st, id)));
        }
        if st.closing {
            return Err(TryRecvError::Closed);
        }
        Err(TryRecvError::Empty)
    }

    /// The routing id of a peer (Router).
    pub(crate) fn identity_of(&self, id: PeerId) -> Option<Bytes> {
        self.lock().peers.get(&id).map(|p| p.identity.clone())
    }

    /// Whether a peer is still connected.
    pub(crate) fn is_alive(&self, id: PeerId) -> bool {
        let mut st = self.lock();
        self.absorb(&mut st);
        st.peers.get(&id).is_some_and(|p| p.phase == Phase::Active)
    }

    // ----- subscriptions (Sub) -----

    /// Subscribes to `prefix` and tells every publisher (a Sub when the prefix is new, an
    /// XSub every time, as libzmq's XSUB does). An XSub starts talking to its publishers
    /// here if it had not (see [`start_receiving`](Self::start_receiving)).
    pub(crate) fn subscribe(&self, prefix: &[u8]) {
        let mut st = self.lock();
        let xsub = self.socket_type == SocketType::XSub;
        let new = st.subscriptions.subscribe(prefix);
        st.subscribed_prefixes += usize::from(new);
        if new || xsub {
            self.broadcast(&mut st, subscription::command(true, prefix));
        }
        if xsub {
            self.start_receiving(&mut st);
        }
    }

    /// Cancels one subscription to `prefix` and tells every publisher when it was the last.
    pub(crate) fn unsubscribe(&self, prefix: &[u8]) {
        let mut st = self.lock();
        if st.subscriptions.unsubscribe(prefix) {
            st.subscribed_prefixes -= 1;
            self.broadcast(&mut st, subscription::command(false, prefix));
        }
        if self.socket_type == SocketType::XSub {
            self.start_receiving(&mut st);
        }
    }

    /// XSub: sends `msg` upstream to every publisher, after our subscriptions; a publisher
    /// whose queue is full (`send_hwm`) misses it, as libzmq's XSUB does. Never waits, and
    /// spends no budget: the caller does ([`cooperate`]).
    pub(crate) fn send_upstream(&self, msg: Message) -> Result<()> {
        let mut st = self.lock();
        if st.closing {
            return Err(Error::Closed);
        }
        self.start_receiving(&mut st);
        self.absorb(&mut st);
        let hwm = self.options.send_hwm;
        let ids: Vec<PeerId> = st.peers.keys().copied().collect();
        for id in ids {
            let Some(peer) = st.peers.get_mut(&id) else {
                continue;
            };
            if peer.phase != Phase::Active || peer.queued() >= hwm {
                continue;
            }
            if let Some(max) = peer.refuses_size(msg.byte_len()) {
                peer.drop_oversized(msg.byte_len(), max); // it would refuse it, and reset the link
                continue;
            }
            if let Err((e, _)) = peer.enqueue(msg.clone(), &self.signal, false) {
                self.remove_peer(&mut st, id, Some(e));
            }
        }
        Ok(())
    }

    /// Queues a command for every peer, opening ones included, regardless of its HWM
    /// (commands are not messages a slow peer may miss).
    ///
    /// Peers that have not had their snapshot yet get none: their snapshot, sent later,
    /// holds the state as it is then.
    ///
    /// An XSub's subscriptions may come from its peers (a forwarder passes on what its
    /// subscribers send), so what waits for one publisher is bounded: a publisher that
    /// leaves more than its snapshot plus `2 × send_hwm` messages unread loses its link
    /// (reset), and gets every subscription again, as one snapshot, when it reconnects.
    fn broadcast(&self, st: &mut State, msg: Message) {
        let limit = (self.socket_type == SocketType::XSub).then(|| {
            st.subscribed_prefixes
                .saturating_add(self.options.send_hwm.saturating_mul(2))
        });
        let ids: Vec<PeerId> = st.peers.keys().copied().collect();
        for id in ids {
            let Some(peer) = st.peers.get_mut(&id) else {
                continue;
            };
            if !peer.snapshot_sent {
                continue;
            }
            if limit.is_some_and(|limit| peer.queued() >= limit) {
                warn_limited!(
                    peer = %peer.endpoint,
                    queued = peer.queued(),
                    "publisher does not read our subscriptions: link reset, resent on reconnect"
                );
                let why = std::io::Error::other(
                    "publisher left too many subscription changes unread (more than its \
                     snapshot and 2 x send_hwm); link reset, subscriptions resent on reconnect",
                );
                self.remove_peer(st, id, Some(Error::Io(why)));
                continue;
            }
            if let Err((e, _)) = peer.enqueue(msg.clone(), &self.signal, false) {
                self.remove_peer(st, id, Some(e));
            }
        }
    }

    /// Sub: the handle started receiving (or waiting for peers). Publishers are sent our
    /// subscriptions now, as one snapshot each, and from now on as soon as they connect:
    /// the subscriptions made before this point are all applied by a publisher before it
    /// counts as a peer, so `subscribe` then `wait_for_peers` misses nothing, whatever
    /// the order in which the connection came up.
    fn start_receiving(&self, st: &mut State) {
        if !self.socket_type.is_subscriber() || st.receiving {
            return;
        }
        st.receiving = true;
        let ids: Vec<PeerId> = st.peers.keys().copied().collect();
        for id in ids {
            let Some(peer) = st.peers.get_mut(&id) else {
                continue;
            };
            if peer.snapshot_sent {
                continue;
            }
            peer.snapshot_sent = true;
            for msg in subscription::snapshot_for(&peer.link, &st.subscriptions) {
                if let Err((e, _)) = peer.enqueue(msg, &self.signal, false) {
                    self.remove_peer(st, id, Some(e));
                    break;
                }
            }
        }
    }

    // ----- peers and lifecycle -----

    /// XPub: messages waiting for the handle (tests check their bound with it).
    #[cfg(test)]
    pub(crate) fn xpub_waiting(&self) -> usize {
        let mut st = self.lock();
        self.absorb(&mut st);
        st.xpub.len()
    }

    /// Messages waiting in each peer's queue (tests check the high-water marks with it).
    #[cfg(test)]
    pub(crate) fn queue_lengths(&self) -> Vec<usize> {
        self.lock().peers.values().map(Peer::queued).collect()
    }

    /// Number of connected, usable peers.
    pub(crate) fn peer_count(&self) -> usize {
        let mut st = self.lock();
        self.absorb(&mut st);
        st.peers
            .values()
            .filter(|p| p.phase == Phase::Active)
            .count()
    }

    /// Waits until at least `n` peers are connected and usable.
    pub(crate) async fn wait_for_peers(&self, n: usize) -> Result<()> {
        poll_fn(|cx| {
            self.signal.register(cx.waker());
            let mut st = self.lock();
            if st.closing {
                return Poll::Ready(Err(Error::Closed));
            }
            self.start_receiving(&mut st);
            self.absorb(&mut st);
            let active = st
                .peers
                .values()
                .filter(|p| p.phase == Phase::Active)
                .count();
            if active >= n {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Stops binding and connecting, delivers queued messages for at most `linger`, then
    /// closes every link: gracefully where everything was delivered, else by aborting it
    /// (what is undelivered is discarded, so a peer that does not read cannot keep the
    /// connection and the data open).
    pub(crate) async fn close(&self) {
        let (binds, dialers) = {
            let mut st = self.lock();
            st.closing = true;
            (
                std::mem::take(&mut st.binds),
                std::mem::take(&mut st.dialers),
            )
        };
        drop(std::mem::take(&mut self.lock().watches));
        drop(dialers);
        for binding in binds {
            binding.close().await;
        }
        self.signal.notify();
        let flushed = poll_fn(|cx| {
            self.signal.register(cx.waker());
            let mut st = self.lock();
            self.absorb(&mut st);
            if st.peers.values().all(Peer::is_flushed) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        let lingered = match self.options.linger {
            Some(linger) => tokio::time::timeout(linger, flushed).await.is_err(),
            None => {
                flushed.await;
                false
            }
        };
        let mut st = self.lock();
        let ids: Vec<PeerId> = st.peers.keys().copied().collect();
        let mut discarded = 0;
        for id in ids {
            // Past the linger time, what a link still holds is discarded and the link
            // aborted (a native stream reset, a ZMTP connection ended): a graceful close
            // would hold the data, and the connection, as long as the peer does not read.
            let undelivered = lingered && st.peers.get(&id).is_some_and(|p| !p.is_flushed());
            discarded += usize::from(undelivered);
            self.remove_peer(&mut st, id, undelivered.then_some(Error::Timeout));
        }
        if discarded > 0 {
            warn!(
                peers = discarded,
                linger = ?self.options.linger,
                "linger time over: undelivered messages discarded, links aborted"
            );
        }
    }

    /// Closes the socket in a task of its own (lingering as [`close`](Self::close) does);
    /// without a runtime, closes every link at once.
    pub(crate) fn close_in_background(self: &Arc<Self>) {
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let engine = self.clone();
                runtime.spawn(async move { engine.close().await });
            }
            Err(_) => {
                let mut st = self.lock();
                st.closing = true;
                let ids: Vec<PeerId> = st.peers.keys().copied().collect();
                for id in ids {
                    self.remove_peer(&mut st, id, None);
                }
            }
        }
    }

    pub(crate) fn emit(&self, event: Event) {
        self.monitor.emit(event);
    }
}

/// Runs one socket operation under tokio's cooperative budget (`tokio::task::coop`), as
/// tokio's own channels do: when the task has spent its budget, returns `Pending` without
/// running `op` (the task is woken again at once, behind the other tasks of its runtime);
/// otherwise runs it, and spends one unit if it completed (a `Pending` one costs nothing).
/// So a loop over a socket whose operations are always ready (a `Pub` never waits, a full
/// receive queue is always ready) yields to the scheduler every budget's worth of
/// operations, and the connection drivers and every other task of a current_thread
/// runtime get to run. Outside a tokio runtime the budget is unlimited.
#[inline]
pub(crate) fn cooperate<T>(
    cx: &mut Context<'_>,
    op: impl FnOnce(&mut Context<'_>) -> Poll<T>,
) -> Poll<T> {
    let budget = std::task::ready!(tokio::task::coop::poll_proceed(cx));
    let polled = op(cx);
    if polled.is_ready() {
        budget.made_progress();
    }
    polled
}

/// Most messages one conflating read takes from a link before it yields (the link is
/// reported readable again), so a peer sending as fast as we read cannot hold the lock.
const CONFLATE_READ_LIMIT: usize = 4096;

/// Who made a connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The user, with `connect`.
    User,
    /// The discovery with this id (a `dns://` or `mdns://` connect).
    Discovery(u64),
}

/// The socket's background task: finishes writes the links could not take at once, reads
/// what only the engine reads (subscriptions), notices dead peers. Ends when the socket
/// starts closing (the close itself lingers in [`Engine::close`]).
async fn background(engine: Weak<Engine>) {
    poll_fn(|cx| {
        let Some(engine) = engine.upgrade() else {
            return Poll::Ready(());
        };
        engine.signal.register_background(cx.waker());
        let mut st = engine.lock();
        engine.absorb(&mut st);
        if st.closing {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

/// The error for a message of `bytes` over a peer's announced `max_message_size`.
fn too_large(bytes: usize, max: u64) -> Error {
    Error::MessageTooLarge {
        size: u64::try_from(bytes).unwrap_or(u64::MAX),
        max,
    }
}
