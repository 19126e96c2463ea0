//! The state of one stream: its send and receive halves.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

use super::flow_control::{cost, RecvWindow, SendCredit, DATA_FRAME_COST};
use super::frame::{DataFlags, MAX_DATA_PAYLOAD};
use super::Reason;
use crate::proto::limits::{held_cost, MessageBudget, MessageLimits, OverLimit};

/// Counts a DATA chunk of `len` payload bytes of the message `budget` tracks against
/// `limits`: its bytes, and a frame when it ends one (no CONTINUED) or is empty (an empty
/// CONTINUED chunk carries nothing, but costs as much as a frame; zocket never sends one);
/// the chunk that ends the message starts the next count. The session holds a stream to the
/// connection's limits with it, the engine a socket to its own.
///
/// # Errors
/// When the message is now over a limit.
pub(crate) fn count_chunk(
    budget: &mut MessageBudget,
    len: usize,
    flags: DataFlags,
    limits: MessageLimits,
) -> Result<(), OverLimit> {
    budget.add_bytes(len, limits)?;
    if !flags.contains(DataFlags::CONTINUED) || len == 0 {
        budget.add_frame(limits)?;
    }
    if flags.ends_message() {
        budget.reset();
    }
    Ok(())
}

/// Where a stream is in its opening handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Phase {
    /// We sent OPEN; no answer yet (data may already flow).
    Opening,
    /// The peer opened it; our owner has not accepted it yet.
    Incoming,
    /// Both sides agreed.
    Open,
}

/// How a stream ended, as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StreamError {
    /// The peer (or we) reset the stream.
    Reset(Reason),
    /// The peer refused to open it.
    Rejected { reason: Reason, text: String },
    /// We reset the stream because the peer's message on it broke `max_message_size` or
    /// `max_message_frames` (the peer got RESET with reason 6).
    TooLarge(OverLimit),
    /// The connection is gone; the text says why.
    ConnectionLost(String),
    /// Writing after `finish`.
    Finished,
    /// No such stream (released, or never opened).
    Unknown,
}

/// One chunk received on a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chunk {
    /// The bytes (received: copied or sliced out of the read buffer).
    pub(crate) data: Bytes,
    /// MORE / CONTINUED.
    pub(crate) flags: DataFlags,
}

/// The unsent payload bytes one stream may queue, whatever credit the peer grants.
///
/// Credit says how much the peer will take, not how fast: a peer may announce a window of
/// up to 4 GiB and then not read its TCP connection, and without this limit everything
/// our application sends on the stream would pile up in the session. Past it a writer
/// waits as it waits for credit (`Writable` once transmitting has made room), so the
/// socket's `send_hwm` applies again. 4 MiB is several of the driver's write batches.
pub(crate) const SEND_QUEUE_LIMIT: usize = 4 * 1024 * 1024;

/// The sending half.
#[derive(Debug)]
pub(crate) struct SendHalf {
    pub(crate) credit: SendCredit,
    /// Chunks ready to go, in order.
    queue: VecDeque<Chunk>,
    /// An open chunk that byte writes are appended to, sent after `queue`.
    tail: BytesMut,
    /// Bytes (payload) in `queue` and `tail`.
    queued: usize,
    /// `finish` was called; CLOSE goes out after the queue drains.
    pub(crate) fin_queued: bool,
    /// CLOSE went out.
    pub(crate) fin_sent: bool,
    /// Writer saw no credit and waits for a Writable event.
    pub(crate) blocked: bool,
    /// Someone waits (with a Writable event) for the queue to drain.
    pub(crate) flush_wanted: bool,
}

impl SendHalf {
    pub(crate) fn new(initial_credit: u32) -> Self {
        SendHalf {
            credit: SendCredit::new(initial_credit),
            queue: VecDeque::new(),
            tail: BytesMut::new(),
            queued: 0,
            fin_queued: false,
            fin_sent: false,
            blocked: false,
            flush_wanted: false,
        }
    }

    /// Whether chunks (or a pending CLOSE) wait to be transmitted.
    pub(crate) fn has_pending(&self) -> bool {
        !self.queue.is_empty() || !self.tail.is_empty() || (self.fin_queued && !self.fin_sent)
    }

    /// Payload bytes a chunk written now may carry; `None` when not even an empty chunk fits.
    pub(crate) fn capacity(&self) -> Option<usize> {
        if self.queued >= SEND_QUEUE_LIMIT {
            return None;
        }
        let avail = self.credit.available().checked_sub(DATA_FRAME_COST)?;
        Some(
            usize::try_from(avail)
                .unwrap_or(usize::MAX)
                .min(MAX_DATA_PAYLOAD),
        )
    }

    /// Copies as much of `data` as credit allows, packing small writes into one chunk.
    pub(crate) fn write_bytes(&mut self, mut data: &[u8]) -> usize {
        let mut written = 0;
        while !data.is_empty() && self.queued < SEND_QUEUE_LIMIT {
            let room_in_tail = if self.tail.is_empty() {
                // Opening a new chunk costs its frame overhead.
                if self.credit.available() <= DATA_FRAME_COST {
                    break;
                }
                self.credit.spend(DATA_FRAME_COST);
                MAX_DATA_PAYLOAD
            } else {
                MAX_DATA_PAYLOAD - self.tail.len()
            };
            let avail = usize::try_from(self.credit.available()).unwrap_or(usize::MAX);
            let n = data.len().min(room_in_tail).min(avail);
            if n == 0 {
                break;
            }
            if self.tail.capacity() - self.tail.len() < n {
                self.tail
                    .reserve(n.max(self.tail.len().min(MAX_DATA_PAYLOAD / 2)));
            }
            self.tail.extend_from_slice(&data[..n]);
            self.credit.spend(n as u64);
            self.queued += n;
            written += n;
            data = &data[n..];
            if self.tail.len() == MAX_DATA_PAYLOAD {
                self.seal_tail();
            }
        }
        written
    }

    /// Queues one chunk without copying; the caller checked [`capacity`](Self::capacity).
    pub(crate) fn write_chunk(&mut self, data: Bytes, flags: DataFlags) {
        self.seal_tail();
        self.credit.spend(cost(data.len()));
        self.queued += data.len();
        self.queue.push_back(Chunk { data, flags });
    }

    fn seal_tail(&mut self) {
        if !self.tail.is_empty() {
            let data = self.tail.split().freeze();
            self.queue.push_back(Chunk {
                data,
                flags: DataFlags::default(),
            });
        }
    }

    /// Whether a writer waiting on this stream can go on: credit for a chunk, and room in
    /// the queue (see [`SEND_QUEUE_LIMIT`]; half of it, so a writer is not woken per chunk).
    pub(crate) fn has_room(&self) -> bool {
        self.queued < SEND_QUEUE_LIMIT / 2 && self.credit.available() > DATA_FRAME_COST
    }

    /// Takes the next chunk to transmit.
    pub(crate) fn pop_chunk(&mut self) -> Option<Chunk> {
        if self.queue.is_empty() {
            self.seal_tail();
        }
        let chunk = self.queue.pop_front()?;
        self.queued -= chunk.data.len();
        Some(chunk)
    }

    /// Throws away everything queued (on reset or rejection).
    pub(crate) fn discard(&mut self) {
        self.queue.clear();
        self.tail.clear();
        self.queued = 0;
    }
}

/// The receiving half.
#[derive(Debug)]
pub(crate) struct RecvHalf {
    pub(crate) window: RecvWindow,
    /// Received chunks not yet read, each with what it holds ([`held_cost`]).
    queue: VecDeque<(Chunk, u64)>,
    /// What the chunks in `queue` hold, all together.
    held: u64,
    /// Size of the message being received (message streams only).
    message: MessageBudget,
    /// The peer sent CLOSE.
    pub(crate) fin: bool,
    /// A Readable event is outstanding; cleared when a read finds nothing.
    pub(crate) signalled: bool,
}

/// What a byte read produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadBytes {
    /// This many bytes were copied.
    Data(usize),
    /// Nothing buffered yet.
    Blocked,
    /// The peer finished and everything was read.
    Finished,
}

/// What a read took out of a receiving half: the credit to give back to the peer and the
/// held bytes it freed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Consumed {
    /// Credit consumed (payload bytes read, plus the frame cost of every finished chunk).
    pub(crate) credit: u64,
    /// Held bytes freed (the [`held_cost`] of every finished chunk).
    pub(crate) held: u64,
}

impl RecvHalf {
    pub(crate) fn new(window: u32) -> Self {
        RecvHalf {
            window: RecvWindow::new(window),
            queue: VecDeque::new(),
            held: 0,
            message: MessageBudget::default(),
            fin: false,
            signalled: false,
        }
    }

    /// Counts a chunk of the message being received against `limits` ([`count_chunk`]).
    ///
    /// # Errors
    /// When the message is now over a limit.
    pub(crate) fn count_message(
        &mut self,
        len: usize,
        flags: DataFlags,
        limits: MessageLimits,
    ) -> Result<(), OverLimit> {
        count_chunk(&mut self.message, len, flags, limits)
    }

    /// Queues a received chunk; returns what it holds.
    pub(crate) fn push(&mut self, chunk: Chunk) -> u64 {
        let held = held_cost(chunk.data.len());
        self.held += held;
        self.queue.push_back((chunk, held));
        held
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Copies buffered bytes into `buf`; returns what happened and what it consumed.
    pub(crate) fn read_bytes(&mut self, buf: &mut [u8]) -> (ReadBytes, Consumed) {
        let mut n = 0;
        let mut consumed = Consumed::default();
        while n < buf.len() {
            let Some((front, _)) = self.queue.front_mut() else {
                break;
            };
            let take = front.data.len().min(buf.len() - n);
            buf[n..n + take].copy_from_slice(&front.data[..take]);
            front.data.advance(take);
            n += take;
            consumed.credit += take as u64;
            if front.data.is_empty() {
                self.pop_front(&mut consumed);
            }
        }
        // Drop empty chunks (zero-length frames) at the front so they are credited.
        while self.queue.front().is_some_and(|(c, _)| c.data.is_empty()) {
            self.pop_front(&mut consumed);
        }
        let outcome = if n > 0 || buf.is_empty() {
            ReadBytes::Data(n)
        } else if self.fin {
            ReadBytes::Finished
        } else {
            ReadBytes::Blocked
        };
        (outcome, consumed)
    }

    /// Removes the (read) front chunk, adding its frame cost and what it held to `consumed`.
    fn pop_front(&mut self, consumed: &mut Consumed) {
        if let Some((_, held)) = self.queue.pop_front() {
            consumed.credit += DATA_FRAME_COST;
            consumed.held += held;
            self.held -= held;
        }
    }

    /// Takes one whole chunk; returns it and what it consumed.
    pub(crate) fn read_chunk(&mut self) -> Option<(Chunk, Consumed)> {
        let (chunk, held) = self.queue.pop_front()?;
        self.held -= held;
        let credit = cost(chunk.data.len());
        Some((chunk, Consumed { credit, held }))
    }

    /// Throws away everything buffered (nobody will read it); returns the held bytes freed.
    pub(crate) fn discard(&mut self) -> u64 {
        self.queue.clear();
        std::mem::take(&mut self.held)
    }
}

/// A stream: both halves plus where it is in its life.
#[derive(Debug)]
pub(crate) struct Stream {
    pub(crate) phase: Phase,
    /// Socket type the stream was opened with (`RAW_STREAM` for byte streams).
    pub(crate) socket_type: u8,
    pub(crate) send: SendHalf,
    pub(crate) recv: RecvHalf,
    /// Set when the stream failed; reads and writes return it (reads after the buffer drains).
    pub(crate) error: Option<StreamError>,
    /// The owner dropped its handle.
    pub(crate) released: bool,
    /// Whether this stream is in the data scheduler's queue.
    pub(crate) scheduled: bool,
    /// The peer's socket type and routing id, once known (from its OPEN or ACCEPT).
    pub(crate) peer: Option<(u8, bytes::Bytes)>,
}

impl Stream {
    pub(crate) fn new(phase: Phase, socket_type: u8, send_credit: u32, recv_window: u32) -> Self {
        Stream {
            phase,
            socket_type,
            send: SendHalf::new(send_credit),
            recv: RecvHalf::new(recv_window),
            error: None,
            released: false,
            scheduled: false,
            peer: None,
        }
    }

    /// Whether nothing more will happen on this stream.
    pub(crate) fn is_done(&self) -> bool {
        self.error.is_some() || (self.send.fin_sent && self.recv.fin)
    }
}
