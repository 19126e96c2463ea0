//! Socket monitoring: a stream of [`Event`]s about listeners, dials and connections.
//!
//! Every socket owns one event channel. [`Monitor`] is a subscription to it: a
//! [`futures::Stream`] of [`Event`]s that starts with the events emitted after it was created.
//! Emitting never blocks and never fails: events nobody listens for are dropped, and a monitor
//! that falls more than 1024 events behind skips the oldest ones (logged with `tracing`)
//! instead of slowing the socket down.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::sync::broadcast;
use tokio_util::sync::ReusableBoxFuture;

/// How many events a [`Monitor`] may fall behind before it starts skipping the oldest ones.
pub(crate) const CAPACITY: usize = 1024;

/// Something that happened to a socket's listeners, dialers or connections.
///
/// Endpoints and peer addresses are given as text (`tcp://127.0.0.1:5555`,
/// `127.0.0.1:40312`), ready to log.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A listener is bound and accepting on `endpoint` (with the real port when bound to `:0`).
    Listening {
        /// The bound endpoint.
        endpoint: String,
    },
    /// A listener accepted a connection from `peer`.
    Accepted {
        /// The listener's endpoint.
        endpoint: String,
        /// The remote address.
        peer: String,
    },
    /// A dialer connected to `endpoint` and completed the handshake with `peer`.
    Connected {
        /// The endpoint being dialed.
        endpoint: String,
        /// The remote address or name the handshake reported.
        peer: String,
    },
    /// An established connection to `endpoint` ended; the dialer will redial.
    Disconnected {
        /// The endpoint the connection was dialed to.
        endpoint: String,
        /// Why the connection ended.
        reason: String,
    },
    /// A dial of `endpoint` failed (or a connection was lost) and the dialer waits `delay`
    /// before attempt number `attempt` (counted from 1 since the last successful handshake).
    Retrying {
        /// The endpoint being dialed.
        endpoint: String,
        /// Number of consecutive retries since the last successful handshake, from 1.
        attempt: u32,
        /// How long the dialer waits before the next attempt.
        delay: Duration,
    },
    /// A transport connection to `endpoint` was made but the handshake failed; the dialer
    /// backs off without resetting its delay, so an incompatible peer is not hammered.
    HandshakeFailed {
        /// The endpoint being dialed.
        endpoint: String,
        /// The handshake error, as text.
        reason: String,
    },
    /// Discovery (dns://, mdns://) found a new peer address.
    Discovered {
        /// The discovered address.
        addr: String,
    },
    /// Discovery saw a peer address disappear.
    Lost {
        /// The vanished address.
        addr: String,
    },
}

/// The sending side of a socket's event channel, or a relay to several sockets' channels.
///
/// Cheap to clone; every listener and dialer of the socket holds one.
#[derive(Clone)]
pub(crate) struct MonitorSender {
    to: Target,
}

#[derive(Clone)]
enum Target {
    /// One socket's channel, made by the first [`subscribe`](MonitorSender::subscribe): a
    /// channel holds [`CAPACITY`] slots (about 80 KiB), which a socket nobody monitors (the
    /// usual case) should not pay for. Until then there is no one to give an event to.
    Channel(Arc<OnceLock<broadcast::Sender<Event>>>),
    /// A function that passes each event on (to the sockets sharing a listener).
    Relay(Arc<dyn Fn(Event) + Send + Sync>),
}

impl fmt::Debug for MonitorSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let to = match self.to {
            Target::Channel(_) => "channel",
            Target::Relay(_) => "relay",
        };
        f.debug_struct("MonitorSender").field("to", &to).finish()
    }
}

impl MonitorSender {
    /// A new event channel with no subscribers.
    pub(crate) fn new() -> Self {
        MonitorSender {
            to: Target::Channel(Arc::new(OnceLock::new())),
        }
    }

    /// A sender that hands every event to `relay`, which passes it on to other senders.
    pub(crate) fn relay(relay: impl Fn(Event) + Send + Sync + 'static) -> Self {
        MonitorSender {
            to: Target::Relay(Arc::new(relay)),
        }
    }

    /// Emits `event` to every current [`Monitor`]. Never blocks; without subscribers the event
    /// is simply dropped.
    pub(crate) fn emit(&self, event: Event) {
        tracing::trace!(?event, "monitor event");
        match &self.to {
            // No channel yet, or an error: nobody is subscribed, which is fine.
            Target::Channel(tx) => {
                if let Some(tx) = tx.get() {
                    let _ = tx.send(event);
                }
            }
            Target::Relay(relay) => relay(event),
        }
    }

    /// A new [`Monitor`] that yields every event emitted from now on (for a relay, which
    /// has no channel of its own, one that has ended: subscribe to the sockets instead).
    #[allow(dead_code)] // used by the socket engine
    pub(crate) fn subscribe(&self) -> Monitor {
        let rx = match &self.to {
            Target::Channel(tx) => tx
                .get_or_init(|| broadcast::channel(CAPACITY).0)
                .subscribe(),
            Target::Relay(_) => broadcast::channel(1).1,
        };
        Monitor {
            inner: ReusableBoxFuture::new(recv(rx)),
        }
    }
}

impl Default for MonitorSender {
    fn default() -> Self {
        Self::new()
    }
}

type Recv = (
    Result<Event, broadcast::error::RecvError>,
    broadcast::Receiver<Event>,
);

async fn recv(mut rx: broadcast::Receiver<Event>) -> Recv {
    let result = rx.recv().await;
    (result, rx)
}

/// A subscription to a socket's [`Event`]s, as a [`futures::Stream`].
///
/// It yields the events emitted after it was created, in order, and ends when the socket is
/// gone. A monitor that is not polled keeps up to 1024 events; beyond that the oldest are
/// skipped (and a warning is logged) so that a forgotten monitor never slows the socket.
///
/// Like tokio's own channels, a monitor spends the task's cooperative budget
/// (`tokio::task::coop`): once the task has spent it, `next()` answers `Pending` even when
/// events wait, until the task yields. To take what is there without waiting, poll it
/// outside the budget, e.g. `tokio::task::unconstrained(monitor.next()).now_or_never()`.
///
/// # Cancel safety
///
/// Dropping a pending `next()` loses no event: the pending receive is kept inside the monitor
/// and resumed by the next poll.
pub struct Monitor {
    inner: ReusableBoxFuture<'static, Recv>,
}

impl Stream for Monitor {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        loop {
            let (result, rx) = ready!(self.inner.poll(cx));
            self.inner.set(recv(rx));
            match result {
                Ok(event) => return Poll::Ready(Some(event)),
                Err(broadcast::error::RecvError::Closed) => return Poll::Ready(None),
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    tracing::warn!(skipped, "monitor fell behind; skipped the oldest events");
                }
            }
        }
    }
}

impl fmt::Debug for Monitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Monitor").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use tokio::time::timeout;

    const WAIT: Duration = Duration::from_secs(5);

    fn listening(i: usize) -> Event {
        Event::Listening {
            endpoint: format!("inproc://{i}"),
        }
    }

    #[tokio::test]
    async fn emit_without_subscribers_is_fine_and_later_subscribers_see_later_events() {
        let sender = MonitorSender::new();
        sender.emit(listening(0));
        let mut monitor = sender.subscribe();
        sender.emit(listening(1));
        assert_eq!(
            timeout(WAIT, monitor.next()).await.unwrap(),
            Some(listening(1))
        );
    }

    #[tokio::test]
    async fn clones_made_before_the_first_subscription_share_the_channel_it_creates() {
        let sender = MonitorSender::new();
        let listener_copy = sender.clone();
        // Nobody subscribed yet: no channel and its 1024 slots were allocated.
        assert!(matches!(&sender.to, Target::Channel(c) if c.get().is_none()));
        let mut monitor = sender.subscribe();
        listener_copy.emit(listening(7));
        assert_eq!(
            timeout(WAIT, monitor.next()).await.unwrap(),
            Some(listening(7))
        );
        drop(sender);
        drop(listener_copy);
        assert_eq!(timeout(WAIT, monitor.next()).await.unwrap(), None);
    }

    #[tokio::test]
    async fn lagging_monitor_skips_the_oldest_events() {
        let sender = MonitorSender::new();
        let mut monitor = sender.subscribe();
        for i in 0..CAPACITY + 10 {
            sender.emit(listening(i));
        }
        assert_eq!(
            timeout(WAIT, monitor.next()).await.unwrap(),
            Some(listening(10))
        );
    }

    #[tokio::test]
    async fn monitor_ends_when_every_sender_is_gone() {
        let sender = MonitorSender::new();
        let mut monitor = sender.subscribe();
        sender.emit(listening(0));
        drop(sender);
        assert_eq!(
            timeout(WAIT, monitor.next()).await.unwrap(),
            Some(listening(0))
        );
        assert_eq!(timeout(WAIT, monitor.next()).await.unwrap(), None);
    }
}
