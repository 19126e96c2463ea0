//! The loop every connection's driver task runs, whatever the protocol.
//!
//! It reads into one buffer and feeds the core, which slices frames out as zero-copy
//! `Bytes`; it runs the core's timers; it writes what the core queued with vectored writes
//! (up to [`MAX_IOV`] segments per syscall); after each round it lets the protocol turn the
//! core's events into wakeups; it closes the transport once the core is done.
//!
//! What differs between protocols stays behind two traits: [`SessionCore`], what the loop
//! needs of a sans-IO core, and [`Connection`], the state the task shares with the
//! connection's handles (a core and a [`Wire`] behind one mutex), which knows who waits
//! for what. No lock is held across an `.await`.

use std::fmt;
use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::BytesMut;
use tokio::time::{Instant, Sleep};
use tracing::debug;

use super::transport::Transport;
use crate::proto::native::Transmit;
use crate::transport::shared::DirectWrite;

/// Reads at most this many times per round before doing anything else.
const READS_PER_POLL: usize = 16;
/// Rounds (read, timers, write, dispatch) per poll before letting other tasks run.
const ROUNDS_PER_POLL: usize = 8;
/// Bytes read and fed to the core per poll before letting other tasks run, so one busy
/// connection holds a runtime thread only briefly: 256 KiB is one full read, which a bulk
/// transfer fills with four 64 KiB chunks (microseconds of work), and which even the
/// costliest input (1-byte DATA chunks, 11-byte frames, ~100 ns each) turns into a few
/// milliseconds at most.
pub(crate) const INPUT_BUDGET_PER_POLL: usize = 256 * 1024;
/// Most segments per vectored write.
const MAX_IOV: usize = 256;
/// Bytes the driver gathers for one write before it writes.
const WRITE_BATCH: usize = 512 * 1024;
/// How long the last frames of an ended session (a GOAWAY, a ZMTP ERROR) may wait for a
/// peer that does not read them.
pub(crate) const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// A sans-IO protocol core as the loop drives it: bytes and time in, bytes out.
pub(crate) trait SessionCore: Send + 'static {
    /// Why input was refused (the session has then ended; logged).
    type Error: fmt::Display;

    /// Called before every read: makes room in `buf` for it (the protocol's read buffer
    /// policy) and says whether to read at all: `false` while the core holds input back
    /// until its owner takes what it buffered (TCP backpressure).
    fn prepare_read(&mut self, now: std::time::Instant, buf: &mut BytesMut) -> bool;
    /// Consumes what it can of `buf`.
    ///
    /// # Errors
    /// When the input breaks the protocol; the session has then ended.
    fn handle_input(
        &mut self,
        now: std::time::Instant,
        buf: &mut BytesMut,
    ) -> Result<(), Self::Error>;
    /// The transport reached end-of-file or failed (`reason`, empty at end-of-file).
    fn handle_eof(&mut self, reason: &str);
    /// Runs the timers that are due.
    fn handle_timeout(&mut self, now: std::time::Instant);
    /// Encodes what is due into `out`; returns whether anything was added.
    fn poll_transmit(&mut self, now: std::time::Instant, out: &mut Transmit) -> bool;
    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    fn poll_timeout(&self) -> Option<std::time::Instant>;
    /// Whether the session has ended (its last frames may still wait to be written).
    fn has_ended(&self) -> bool;
    /// Whether the session has ended and has nothing more to transmit.
    fn is_closed(&self) -> bool;
}

/// A connection's state as its driver task and its handles share it.
pub(crate) trait Connection: Send + Sync + 'static {
    /// The protocol core.
    type Core: SessionCore;

    /// Runs `f` on the core and the wire, under the lock.
    fn with<R>(&self, f: impl FnOnce(&mut Self::Core, &mut Wire) -> R) -> R;

    /// Tells everyone waiting what the core's events say, without holding the lock while
    /// waking them; once the core has ended, or the wire is finished, everyone learns it.
    /// Returns whether the connection is over (see [`Wire::finish_if_closed`]).
    fn dispatch(&self) -> bool;
}

/// The connection itself, beside the core, as the driver task and the handles share it:
/// the bytes on their way out, a way to write them from a handle's task, and the driver to
/// wake.
#[derive(Debug)]
pub(crate) struct Wire {
    /// Encoded frames not yet written, shared by the driver and direct writers: both only
    /// touch it under the lock, so their frames never interleave.
    transmit: Transmit,
    /// Lets a handle write to the connection itself (byte-stream transports only).
    direct: Option<Arc<dyn DirectWrite>>,
    /// The driver task.
    driver: Option<Waker>,
    /// The driver has exited, or is about to: the transport is gone.
    finished: bool,
    /// The driver is writing a batch it took out of `transmit` (without the lock): no one
    /// else writes meanwhile, and the wire is not flushed.
    writing: bool,
    /// The driver was woken and has not started its next poll yet.
    woken: std::cell::Cell<bool>,
}

impl Wire {
    /// A wire with nothing to write, writable directly through `direct` when given.
    pub(crate) fn new(direct: Option<Arc<dyn DirectWrite>>) -> Self {
        Wire {
            transmit: Transmit::new(),
            direct,
            driver: None,
            finished: false,
            writing: false,
            woken: std::cell::Cell::new(false),
        }
    }

    /// Wakes the driver so it transmits what was queued. Once woken, it is not woken again
    /// until it has started its next poll (which sees everything queued until then): a burst
    /// of sends costs one wakeup, not one atomic operation on the driver task per message
    /// (on a multi-threaded runtime, a cache line taken from the driver's thread each time).
    pub(crate) fn wake_driver(&self) {
        if self.woken.replace(true) {
            return;
        }
        if let Some(w) = &self.driver {
            w.wake_by_ref();
        }
    }

    /// The driver starts a poll: registers its waker; the next command wakes it again.
    fn register_driver(&mut self, waker: &Waker) {
        self.woken.set(false);
        if !self.driver.as_ref().is_some_and(|w| w.will_wake(waker)) {
            self.driver = Some(waker.clone());
        }
    }

    /// Whether the driver has exited (or is about to) and the transport is closed.
    pub(crate) fn is_finished(&self) -> bool {
        self.finished
    }

    /// Whether nothing taken from the core waits to be written.
    pub(crate) fn is_flushed(&self) -> bool {
        self.transmit.is_empty() && !self.writing
    }

    /// Marks the connection finished (its driver is exiting).
    pub(crate) fn finish(&mut self) {
        self.finished = true;
    }

    /// Marks the connection finished once `core` is closed and everything it transmitted
    /// was written; returns whether it is. The driver then closes the transport.
    pub(crate) fn finish_if_closed(&mut self, core: &impl SessionCore) -> bool {
        let over = core.is_closed() && self.is_flushed();
        if over {
            self.finished = true;
            self.direct = None; // the connection closes with the driver's handle
        }
        over
    }

    /// Writes what `core` has to transmit straight to the connection from the calling
    /// task, as far as the kernel takes it now; the driver writes the rest. Returns whether
    /// everything was written (`false` too when the transport allows no direct writes).
    ///
    /// For a handle about to wait for an answer: it saves waking the driver and waiting for
    /// it to run. A burst of sends should not use it: the driver batches them into fewer
    /// syscalls.
    pub(crate) fn write_now(&mut self, core: &mut impl SessionCore) -> bool {
        let Some(direct) = &self.direct else {
            return false;
        };
        if self.writing {
            return false; // the driver is writing a batch: it writes the rest after it
        }
        let now = Instant::now().into_std();
        loop {
            if self.transmit.is_empty() && !core.poll_transmit(now, &mut self.transmit) {
                return true;
            }
            match with_io_slices(&self.transmit, |slices| direct.try_write_vectored(slices)) {
                Ok(n) if n > 0 => self.transmit.advance(n),
                // Full, or failed: the driver takes over (and sees any error itself).
                _ => return false,
            }
        }
    }
}

/// Runs `write` over `transmit`'s segments as `IoSlice`s (at most [`MAX_IOV`]). The array
/// is sized to the segments: a round trip's few segments do not pay for clearing 256 slots
/// (4 KiB of stores, a twentieth of a request's instructions in a callgrind profile).
fn with_io_slices<R>(transmit: &Transmit, write: impl FnOnce(&[IoSlice<'_>]) -> R) -> R {
    const FEW: usize = 8;
    if transmit.segment_count() <= FEW {
        let mut slices = [IoSlice::new(&[]); FEW];
        let n = transmit.io_slices(&mut slices);
        write(&slices[..n])
    } else {
        let mut slices = [IoSlice::new(&[]); MAX_IOV];
        let n = transmit.io_slices(&mut slices);
        write(&slices[..n])
    }
}

/// What one [`Driver::poll_read`] came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadOutcome {
    /// Nothing was read.
    Nothing,
    /// Input was read and handled; more needs a wake-up first (the transport is drained or
    /// closed, or the core holds input back).
    Done,
    /// Input was read and handled, and more may be waiting (a read or byte limit stopped us).
    More,
}

/// The driver task of one connection: runs `C`'s core over `T` until the core is done.
pub(crate) struct Driver<T, C> {
    io: T,
    conn: Arc<C>,
    read_buf: BytesMut,
    read_closed: bool,
    /// The core's last [`prepare_read`](SessionCore::prepare_read) said "read" and nothing
    /// was read since: the next read needs no lock. (Only this task reads or feeds the
    /// core, so neither the buffer nor the core's wish to read can change meanwhile.)
    read_prepared: bool,
    wrote_since_flush: bool,
    timer: Pin<Box<Sleep>>,
    timer_deadline: Option<std::time::Instant>,
    /// How long the last frames of an ended session may wait for a peer that does not
    /// read them; `None`: as long as the transport lives.
    close_linger: Option<Duration>,
    close_linger_timer: Option<Pin<Box<Sleep>>>,
}

impl<T: Transport, C: Connection> Driver<T, C> {
    /// A driver of `conn` over `io`. `close_linger` bounds how long the last frames of an
    /// ended session may wait for a peer that does not read them (`None`: no bound).
    pub(crate) fn new(io: T, conn: Arc<C>, close_linger: Option<Duration>) -> Self {
        Driver {
            io,
            conn,
            read_buf: BytesMut::new(),
            read_closed: false,
            read_prepared: false,
            wrote_since_flush: false,
            timer: Box::pin(tokio::time::sleep_until(Instant::now())),
            timer_deadline: None,
            close_linger,
            close_linger_timer: None,
        }
    }

    /// Reads what is available and feeds it to the core, until `budget` bytes are spent
    /// (what is read is taken off it).
    fn poll_read(&mut self, cx: &mut Context<'_>, budget: &mut usize) -> ReadOutcome {
        if self.read_closed {
            return ReadOutcome::Nothing;
        }
        let Self {
            io,
            conn,
            read_buf,
            read_closed,
            read_prepared,
            ..
        } = self;
        let mut ready = *read_prepared || {
            let now = Instant::now().into_std();
            conn.with(|core, _| core.prepare_read(now, read_buf))
        };
        let mut progressed = false;
        // Whether the reads stopped because there is nothing more to do until a wake-up: the
        // transport said Pending (our waker is registered), or the core holds input back
        // (its owner wakes us when it takes what was buffered).
        let mut waiting = false;
        for _ in 0..READS_PER_POLL {
            if !ready {
                waiting = true;
                break;
            }
            if *budget == 0 {
                break;
            }
            match Pin::new(&mut *io).poll_read_into(cx, read_buf) {
                Poll::Pending => {
                    waiting = true;
                    break;
                }
                Poll::Ready(Ok(0)) => {
                    *read_closed = true;
                    conn.with(|core, _| core.handle_eof(""));
                    return ReadOutcome::Done;
                }
                Poll::Ready(Ok(n)) => {
                    progressed = true;
                    *budget = budget.saturating_sub(n);
                    let now = Instant::now().into_std();
                    ready = conn.with(|core, _| {
                        if let Err(e) = core.handle_input(now, read_buf) {
                            debug!(error = %e, "closing connection");
                        }
                        core.prepare_read(now, read_buf)
                    });
                }
                Poll::Ready(Err(e)) => {
                    *read_closed = true;
                    conn.with(|core, _| core.handle_eof(&e.to_string()));
                    return ReadOutcome::Done;
                }
            }
        }
        *read_prepared = ready;
        match (progressed, waiting) {
            (false, _) => ReadOutcome::Nothing,
            (true, true) => ReadOutcome::Done,
            (true, false) => ReadOutcome::More,
        }
    }

    /// Writes what the core has queued, until it is all written or the transport says
    /// Pending.
    ///
    /// The lock is taken to gather a batch and to put back what the kernel did not take,
    /// never across the write itself: a handle queuing its next messages meanwhile does
    /// not wait for the syscall (on a multi-threaded runtime it would block its thread).
    /// While the batch is out, [`Wire::write_now`] leaves writing to us, so frames never
    /// interleave.
    fn poll_write(&mut self, cx: &mut Context<'_>) {
        loop {
            let batch = self.conn.with(|core, wire| {
                // Top the batch up before every write, so that one syscall carries as much
                // as the kernel takes (each write may wake the peer's thread).
                if wire.transmit.len() < WRITE_BATCH && wire.transmit.segment_count() < MAX_IOV {
                    let now = Instant::now().into_std();
                    core.poll_transmit(now, &mut wire.transmit);
                }
                if wire.transmit.is_empty() {
                    return None;
                }
                wire.writing = true;
                Some(std::mem::take(&mut wire.transmit))
            });
            let Some(mut batch) = batch else {
                break;
            };
            let res = if self.io.is_write_vectored() {
                let io = &mut self.io;
                with_io_slices(&batch, |slices| {
                    Pin::new(io).poll_write_vectored(cx, slices)
                })
            } else {
                Pin::new(&mut self.io).poll_write(cx, batch.first())
            };
            let written = match res {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                    // The transport is gone; nothing more can be sent.
                    self.read_closed = true;
                    self.conn.with(|core, wire| {
                        wire.transmit = Transmit::new();
                        wire.writing = false;
                        core.handle_eof("write failed");
                    });
                    return;
                }
                Poll::Ready(Ok(n)) => {
                    batch.advance(n);
                    self.wrote_since_flush = true;
                    true
                }
                Poll::Pending => false,
            };
            // Nobody added to the wire while the batch was out: what is left goes back as is.
            self.conn.with(|_, wire| {
                wire.transmit = batch;
                wire.writing = false;
            });
            if !written {
                break;
            }
        }
        if self.wrote_since_flush
            && self.conn.with(|_, wire| wire.transmit.is_empty())
            && Pin::new(&mut self.io).poll_flush(cx).is_ready()
        {
            self.wrote_since_flush = false;
        }
    }

    /// Runs due timers and arms the sleep for the next one. Returns whether a timer fired.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = self.conn.with(|core, _| core.poll_timeout());
        match (deadline, self.timer_deadline) {
            (None, _) => self.timer_deadline = None,
            // A later deadline keeps the sleep armed for the earlier one: it fires early,
            // the core finds nothing due (both cores check every deadline against `now`),
            // and the sleep is armed again then. The idle and keepalive deadlines move on
            // every frame received, and re-arming a tokio sleep on each costs a timer-wheel
            // removal and insertion per message.
            (Some(d), Some(armed)) if d >= armed => {}
            (Some(d), _) => {
                self.timer_deadline = Some(d);
                self.timer.as_mut().reset(Instant::from_std(d));
            }
        }
        if self.timer_deadline.is_some() && self.timer.as_mut().poll(cx).is_ready() {
            let now = Instant::now().into_std();
            self.conn.with(|core, _| core.handle_timeout(now));
            self.timer_deadline = None;
            return true;
        }
        false
    }

    /// Once the session has ended, bounds how long its last frames (a GOAWAY) may wait for
    /// a peer that does not read. Returns whether that time is up; the connection is then
    /// marked finished and everyone waiting is told.
    fn poll_close_linger(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(linger) = self.close_linger else {
            return false;
        };
        if self.close_linger_timer.is_none() {
            if !self.conn.with(|core, _| core.has_ended()) {
                return false;
            }
            self.close_linger_timer = Some(Box::pin(tokio::time::sleep(linger)));
        }
        let Some(timer) = self.close_linger_timer.as_mut() else {
            return false;
        };
        if timer.as_mut().poll(cx).is_pending() {
            return false;
        }
        self.conn.with(|_, wire| wire.finish());
        self.conn.dispatch(); // the core has ended: everyone waiting learns it
        true
    }
}

impl<T: Transport, C: Connection> Future for Driver<T, C> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // Registered first, so a command issued while we run wakes us again.
        this.conn.with(|_, wire| wire.register_driver(cx.waker()));
        let mut budget = INPUT_BUDGET_PER_POLL;
        for _ in 0..ROUNDS_PER_POLL {
            let read = this.poll_read(cx, &mut budget);
            let fired = this.poll_timer(cx);
            this.poll_write(cx);
            if this.conn.dispatch() {
                let _ = Pin::new(&mut this.io).poll_shutdown(cx);
                debug!("connection closed");
                return Poll::Ready(());
            }
            if this.poll_close_linger(cx) {
                debug!("peer did not read our last frames in time; dropping the connection");
                return Poll::Ready(());
            }
            // Another round only when input may be waiting unread or a timer fired (its
            // sleep is armed again next round). What this round read was handled, what the
            // core had to send was written until the transport said Pending (its waker is
            // registered), and anything queued meanwhile wakes us again: a second round
            // would only take every lock once more (a request's leg, measured: five locks).
            if !(read == ReadOutcome::More || fired) {
                return Poll::Pending;
            }
            if budget == 0 {
                break; // a peer's input has had its share of this thread
            }
        }
        // Plenty of work: yield to other tasks, then go on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
