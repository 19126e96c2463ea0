//! Request/reply: one request in flight, checked by the borrow checker.

use std::future::poll_fn;
use std::hash::RandomState;
use std::task::Poll;

use bytes::Bytes;
use tracing::debug;

use super::{socket_type, spend_budget, Socket};
use crate::curve::PublicKey;
use crate::pattern::request::{
    check_reply, join_envelope, split_envelope, wrap_request, ReplyCheck, RequestIds,
};
use crate::pattern::PeerId;
use crate::{Error, Message, PeerInfo, Result, SocketType, TryRecvError};

/// Requester: sends a request to one [`Rep`] (or `Router`), round-robin, and waits for its
/// reply. [`request`](Req::request) borrows the socket mutably until the reply arrives, so a
/// second request cannot start before the first is answered:
///
/// ```compile_fail
/// # async fn f(req: &mut zocket::Req) {
/// let first = req.request("a");
/// let second = req.request("b"); // error: `req` is already borrowed by `first`
/// # drop((first, second)); }
/// ```
///
/// Unlike libzmq's REQ, a request whose peer disconnects is sent again to another peer at
/// once, [`Options::request_timeout`](crate::Options::request_timeout) bounds the wait, and
/// a cancelled request leaves the socket usable: its late reply is recognised by its id and
/// dropped.
///
/// The reply is taken only from the peer that holds the request (anything another peer
/// sends meanwhile is dropped), and must carry the request's id, which is unpredictable (a
/// keyed hash with a random key per socket): a peer cannot answer a request it was not
/// given.
pub struct Req {
    socket: Socket,
    ids: RequestIds<RandomState>,
}

impl Req {
    fn from_socket(socket: Socket) -> Self {
        Req {
            socket,
            // A random SipHash key per socket: its request ids cannot be guessed.
            ids: RequestIds::new(RandomState::new()),
        }
    }

    /// Sends `msg` as a request and returns the reply.
    ///
    /// # Errors
    /// `Error::Timeout` after `request_timeout`; `Error::Closed` once the socket is closed.
    ///
    /// # Cancel safety
    /// Cancel safe in the sense that the socket stays usable: the cancelled request may
    /// still reach a peer, and its reply is discarded.
    pub async fn request(&mut self, msg: impl Into<Message>) -> Result<Message> {
        let id = self.ids.next();
        let request = wrap_request(id, msg.into());
        let engine = &self.socket.engine;
        let exchange = async {
            loop {
                // We wait for the answer next: the request goes out from this task at once.
                let peer = self.socket.send_rr(request.clone(), true).await?;
                let reply = poll_fn(|cx| loop {
                    match engine.poll_recv(cx) {
                        Poll::Ready(Ok((from, _))) if from != peer => {
                            // Only the peer holding the request may answer it.
                            debug!("dropping a message from a peer that does not hold the request");
                        }
                        Poll::Ready(Ok((_, reply))) => match check_reply(id, reply) {
                            ReplyCheck::Matched(body) => return Poll::Ready(Some(Ok(body))),
                            ReplyCheck::Stale => debug!("dropping a stale reply"),
                            ReplyCheck::Malformed => debug!("dropping a malformed reply"),
                        },
                        Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e))),
                        Poll::Pending if engine.is_alive(peer) => return Poll::Pending,
                        Poll::Pending => return Poll::Ready(None),
                    }
                })
                .await;
                match reply {
                    Some(reply) => return reply,
                    None => debug!("the peer holding the request left; sending it again"),
                }
            }
        };
        match self.socket.engine.options.request_timeout {
            Some(limit) => tokio::time::timeout(limit, exchange)
                .await
                .map_err(|_| Error::Timeout)?,
            None => exchange.await,
        }
    }
}

socket_type!(Req, SocketType::Req, "request");

/// Replier: receives requests fair-queued from every [`Req`] (or `Dealer`) and answers each
/// one. [`recv`](Rep::recv) gives a [`Request`] that borrows the socket until it is answered
/// (or dropped, which sends nothing), so one request is served at a time:
///
/// ```compile_fail
/// # async fn f(rep: &mut zocket::Rep) -> zocket::Result<()> {
/// let first = rep.recv().await?;
/// let second = rep.recv().await?; // error: `rep` is still borrowed by `first`
/// # drop((first, second)); Ok(()) }
/// ```
pub struct Rep {
    socket: Socket,
}

impl Rep {
    fn from_socket(socket: Socket) -> Self {
        Rep { socket }
    }

    /// Waits for the next request. A request without a ZeroMQ envelope is dropped.
    ///
    /// # Errors
    /// `Error::Closed` once the socket is closed.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn recv(&mut self) -> Result<Request<'_>> {
        loop {
            let (peer, from, msg) = self.socket.recv_with_peer().await?;
            match split_envelope(msg) {
                Some((envelope, message)) => {
                    return Ok(Request {
                        rep: self,
                        peer,
                        from,
                        envelope,
                        message,
                    })
                }
                None => debug!("dropping a request without an envelope"),
            }
        }
    }

    /// The next request if one is waiting; otherwise returns at once. Takes from the same
    /// queue as [`recv`](Self::recv). The [`Request`] is answered as one from `recv` is
    /// ([`Request::reply`] never waits on the requester either).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> zocket::Result<()> {
    /// let mut rep = zocket::Rep::bind("inproc://doc-rep-try-recv").await?;
    /// assert!(matches!(rep.try_recv(), Err(zocket::TryRecvError::Empty)));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `TryRecvError::Empty` when no request is waiting now; `TryRecvError::Closed` once
    /// the socket is closed.
    pub fn try_recv(&mut self) -> std::result::Result<Request<'_>, TryRecvError> {
        loop {
            let (peer, from, msg) = self.socket.try_recv_with_peer()?;
            match split_envelope(msg) {
                Some((envelope, message)) => {
                    return Ok(Request {
                        rep: self,
                        peer,
                        from,
                        envelope,
                        message,
                    })
                }
                None => debug!("dropping a request without an envelope"),
            }
        }
    }
}

socket_type!(Rep, SocketType::Rep, "reply");

/// A request being served by a [`Rep`]; answer it with [`reply`](Request::reply).
pub struct Request<'a> {
    rep: &'a mut Rep,
    peer: PeerId,
    from: PeerInfo,
    envelope: Vec<Bytes>,
    message: Message,
}

impl Request<'_> {
    /// The request's body.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// Who sent the request: its address, wire, routing id and, on a CURVE link, the public
    /// key it proved it holds (see [`peer_key`](Self::peer_key)).
    pub fn peer(&self) -> &PeerInfo {
        &self.from
    }

    /// The CURVE public key of the client that sent the request (`None` on a NULL link):
    /// the key its handshake proved it holds, which the socket's authorizer accepted. A
    /// service decides per request with it, beyond the socket-wide allow-list:
    ///
    /// ```no_run
    /// # async fn f(rep: &mut zocket::Rep, writers: &[zocket::curve::PublicKey]) -> zocket::Result<()> {
    /// let request = rep.recv().await?;
    /// if request.peer_key().is_some_and(|key| writers.contains(&key)) {
    ///     request.reply("stored").await?;
    /// } else {
    ///     request.reply("read-only key").await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn peer_key(&self) -> Option<PublicKey> {
        self.from.curve_key()
    }

    /// Sends `reply` to the requester. Never waits on it: if it has gone away, the reply
    /// is dropped (its request will be, or was, resent to another replier); if its queue is
    /// full (`send_hwm`: it does not read its replies), the reply is dropped and counted, as
    /// libzmq's REP does, so one client that stops reading cannot stop the socket from
    /// serving the others.
    ///
    /// # Errors
    /// `Error::Closed` once the socket is closed.
    ///
    /// # Cancel safety
    /// Waits only for the task's cooperative budget (`tokio::task::coop`); if cancelled
    /// before it completes, the reply was not sent.
    pub async fn reply(self, reply: impl Into<Message>) -> Result<()> {
        let msg = join_envelope(self.envelope, reply.into());
        spend_budget().await;
        // The next request is what we wait for now: the reply goes out from this task.
        let _ = self.rep.socket.engine.send_to(self.peer, msg, true)?;
        Ok(())
    }
}

impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("peer", &self.from)
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}
