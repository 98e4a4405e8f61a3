//! The hub owns everything between a worker's finished flow and its readers: one bounded queue
//! per worker, the `lynxio-events` writer thread, the `--capture` target and the live `/events`
//! subscribers. Workers only ever do non-blocking work here: [`Tap::active`] is one relaxed load
//! of a reader count (capture on = bit 0, live subscribers above it), and [`Tap::emit`] pushes an
//! owned [`Event`] into the worker's queue or, when that queue already holds
//! `queue_capacity` events, drops it and counts it in the worker's `events_dropped`, with one
//! warning per episode of drops (and at most one per [`WARN_INTERVAL`]). A queue is an
//! unbounded `std::sync::mpsc` channel bounded by two single-writer counters (events sent by the
//! tap, events taken by the writer): std's bounded channel would allocate and touch all its slots
//! up front (~4 MiB per worker at the default capacity) even when nobody ever reads events, while
//! this one only holds memory for the backlog. The writer thread serialises each event once,
//! appends it to a 64 KiB capture buffer that is written out when full, whenever the queues run
//! dry, at least every [`FLUSH_EVERY`] and at shutdown (stdout is locked per write, so lines never
//! interleave with other output), and offers the same `Arc<str>` line to every matching
//! subscriber's bounded channel; a subscriber whose channel is full is disconnected, and a
//! capture write error is logged once and ends the capture while subscribers keep being served.
//! Wakeups: while events flow the writer drains the queues round-robin (per-worker order is
//! kept) and, once they run dry, polls every [`POLL`] for [`DRY_POLLS`] rounds so a steady
//! stream never needs a wakeup from a worker; after that it raises a `sleeping` flag (re-checking
//! the queues after a fence, so no event is missed) and parks for up to [`IDLE_PARK`]: a tap
//! that sees the flag after its send unparks it. Idle, that is four wakeups a second; an event
//! reaches the file and subscribers within one poll interval, or one unpark when asleep.

use std::cell::Cell;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use wildmatch::WildMatch;

use super::event::Event;
use super::metrics::WorkerMetrics;

/// How long shutdown waits for the writer to write out what is queued.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);
/// How often shutdown checks whether the writer has finished.
const SHUTDOWN_POLL: Duration = Duration::from_millis(5);
/// Events each worker may have queued for the writer thread before new ones are dropped.
pub const DEFAULT_QUEUE_CAPACITY: usize = 16 * 1024;

/// JSON lines a live subscriber may have unread before it is disconnected.
pub const SUBSCRIBER_BUFFER: usize = 4096;

/// Live subscribers at once; more are refused with [`SubscribeError::TooMany`].
pub const MAX_SUBSCRIBERS: usize = 64;

/// The capture buffer is written out when it holds this much.
const FLUSH_BYTES: usize = 64 * 1024;

/// The capture buffer is written out at least this often while events keep coming.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// How long the writer sleeps between polls once the queues ran dry.
pub const POLL: Duration = Duration::from_millis(5);

/// Dry polls (≈ 100 ms) before the writer parks until a tap wakes it.
pub const DRY_POLLS: u32 = 20;

/// Longest park when idle (a safety net; taps unpark the writer).
pub const IDLE_PARK: Duration = Duration::from_millis(250);

/// Events taken from one queue per round, so a busy worker cannot starve the others.
const PER_ROUND: usize = 256;

/// Minimum time between two "dropping events" warnings of one worker.
pub const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Bit 0 of `Shared::readers`: the capture target is being written.
const CAPTURE_BIT: usize = 1;
/// Each live subscriber adds this to `Shared::readers`.
const SUBSCRIBER_UNIT: usize = 2;

/// Where `--capture` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureTarget {
    Stdout,
    File(PathBuf),
}

/// What the hub does.
#[derive(Debug, Clone)]
pub struct HubOptions {
    pub capture: Option<CaptureTarget>,
    /// Per worker; 0 is treated as 1.
    pub queue_capacity: usize,
}

/// Keeps a value on its own cache line(s), so counters written by different threads do not
/// invalidate each other.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

/// The two counters bounding one worker's queue.
#[derive(Debug, Default)]
struct QueueCounters {
    /// Events accepted into the queue; written only by the queue's tap.
    sent: Padded<AtomicU64>,
    /// Events taken out by the writer; written only by the writer thread.
    taken: Padded<AtomicU64>,
    /// A tap for this queue exists (there must be at most one: the counters are single-writer).
    tapped: AtomicBool,
}

/// State shared by the hub handle, the taps, the subscriptions and the writer thread.
#[derive(Debug)]
struct Shared {
    /// [`CAPTURE_BIT`] while capturing, plus [`SUBSCRIBER_UNIT`] per live subscriber.
    readers: AtomicUsize,
    /// The writer is (about to be) parked: a tap that queued an event must unpark it.
    sleeping: AtomicBool,
    /// Shutdown was requested: drain, flush and exit.
    stop: AtomicBool,
    queues: Box<[QueueCounters]>,
    /// Writer loop iterations, to test that an idle writer does not spin.
    #[cfg(test)]
    loops: AtomicU64,
}

/// Shared by all workers and the admin thread.
pub struct Hub {
    shared: Arc<Shared>,
    queues: Vec<Sender<Event>>,
    metrics: Vec<Arc<WorkerMetrics>>,
    capacity: u64,
    register: Sender<Sub>,
    writer: Thread,
    handle: Mutex<Option<JoinHandle<()>>>,
}

/// Why a live subscription was refused.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    #[error("too many live subscribers")]
    TooMany,
}

impl Hub {
    /// Opens the capture target and starts the writer thread. `metrics[i]` is worker i's.
    pub fn start(opts: HubOptions, metrics: &[Arc<WorkerMetrics>]) -> io::Result<Arc<Hub>> {
        let capture = opts.capture.as_ref().map(Capture::open).transpose()?;
        let shared = Arc::new(Shared {
            readers: AtomicUsize::new(if capture.is_some() { CAPTURE_BIT } else { 0 }),
            sleeping: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            queues: metrics.iter().map(|_| QueueCounters::default()).collect(),
            #[cfg(test)]
            loops: AtomicU64::new(0),
        });
        let (queues, receivers): (Vec<_>, Vec<_>) = metrics.iter().map(|_| mpsc::channel()).unzip();
        let (register, new_subs) = mpsc::channel();
        let writer = Writer {
            shared: Arc::clone(&shared),
            queues: receivers,
            batch: Vec::new(),
            capture,
            subs: Vec::new(),
            new_subs,
        };
        let handle = thread::Builder::new()
            .name("lynxio-events".into())
            .spawn(move || writer.run())
            .map_err(|e| io::Error::new(e.kind(), format!("starting the event writer: {e}")))?;
        Ok(Arc::new(Hub {
            shared,
            queues,
            metrics: metrics.to_vec(),
            capacity: opts.queue_capacity.max(1) as u64,
            register,
            writer: handle.thread().clone(),
            handle: Mutex::new(Some(handle)),
        }))
    }

    /// Worker `index`'s sending end: one per worker, used only on that worker's thread (it is
    /// the single writer of the worker's `events_dropped` and of the queue's counters).
    ///
    /// # Panics
    /// If `index` is not below the number of workers `start` was given metrics for.
    pub fn tap(&self, index: usize) -> Tap {
        assert!(
            index < self.queues.len(),
            "tap({index}) but the hub has {} worker queues",
            self.queues.len()
        );
        let was_tapped = self.shared.queues[index]
            .tapped
            .swap(true, Ordering::Relaxed);
        debug_assert!(!was_tapped, "worker {index} already has a live tap");
        Tap {
            index,
            tx: self.queues[index].clone(),
            shared: Arc::clone(&self.shared),
            metrics: Arc::clone(&self.metrics[index]),
            writer: self.writer.clone(),
            capacity: self.capacity,
            drops: Cell::new(DropLog::default()),
        }
    }

    /// A live subscriber, optionally filtered by a host glob (`*`, `?`; case-insensitive).
    /// After [`Hub::shutdown`] the subscription is already disconnected.
    pub fn subscribe(&self, host: Option<&str>) -> Result<Subscription, SubscribeError> {
        let (tx, rx) = mpsc::sync_channel(SUBSCRIBER_BUFFER);
        if self.shared.stop.load(Ordering::Acquire) {
            let link = Arc::new(Link {
                gone: AtomicBool::new(true),
                shared: Arc::clone(&self.shared),
            });
            return Ok(Subscription { rx, link });
        }
        self.shared
            .readers
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |r| {
                (r / SUBSCRIBER_UNIT < MAX_SUBSCRIBERS).then_some(r + SUBSCRIBER_UNIT)
            })
            .map_err(|_| SubscribeError::TooMany)?;
        let link = Arc::new(Link {
            gone: AtomicBool::new(false),
            shared: Arc::clone(&self.shared),
        });
        let sub = Sub {
            tx,
            filter: host.map(WildMatch::new_case_insensitive),
            link: Arc::clone(&link),
        };
        // The writer adopts it before dispatching the next events it takes. If the writer has
        // already exited, the returned `Sub` is dropped here and the receiver sees Disconnected.
        let _ = self.register.send(sub);
        Ok(Subscription { rx, link })
    }

    /// Writes out everything queued, flushes, and stops the writer thread. Call it after the
    /// workers have stopped; idempotent (a second call waits for the first to finish).
    pub fn shutdown(&self) {
        let mut handle = self.handle.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(h) = handle.take() else { return };
        self.shared.stop.store(true, Ordering::Release);
        self.writer.unpark();
        // A capture target that stopped accepting writes (a FIFO or pipe nobody reads) must
        // not keep the process from exiting: wait a bounded time, then leave the thread.
        let deadline = Instant::now() + SHUTDOWN_WAIT;
        while !h.is_finished() {
            if Instant::now() >= deadline {
                tracing::error!(
                    waited = ?SHUTDOWN_WAIT,
                    "the capture target is not accepting writes; events still queued are lost"
                );
                return;
            }
            std::thread::sleep(SHUTDOWN_POLL);
        }
        if h.join().is_err() {
            tracing::error!("the event writer thread panicked; queued events are lost");
        }
    }
}

impl Drop for Hub {
    /// The last handle going away without a `shutdown` still drains and flushes (best effort).
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// When a worker's drops start an episode that deserves a warning.
#[derive(Debug, Clone, Copy, Default)]
struct DropLog {
    /// The last emit was dropped.
    dropping: bool,
    /// Drops since the last warning.
    unreported: u64,
    last_warn: Option<Instant>,
}

impl DropLog {
    /// Records a drop; returns the number of earlier drops not yet reported when this one
    /// starts an episode that should be logged (the first drop after events flowed again, at
    /// most once per [`WARN_INTERVAL`]).
    fn dropped(&mut self, now: impl FnOnce() -> Instant) -> Option<u64> {
        let starts = !self.dropping;
        self.dropping = true;
        let mut warn = None;
        if starts {
            let now = now();
            if self
                .last_warn
                .is_none_or(|t| now.saturating_duration_since(t) >= WARN_INTERVAL)
            {
                warn = Some(self.unreported);
                self.unreported = 0;
                self.last_warn = Some(now);
            }
        }
        self.unreported += 1;
        warn
    }
}

/// A worker's sending end. Never blocks.
pub struct Tap {
    index: usize,
    tx: Sender<Event>,
    shared: Arc<Shared>,
    metrics: Arc<WorkerMetrics>,
    writer: Thread,
    capacity: u64,
    drops: Cell<DropLog>,
}

impl Tap {
    /// Whether anyone reads events now (capture on, or live subscribers).
    #[inline]
    pub fn active(&self) -> bool {
        self.shared.readers.load(Ordering::Relaxed) != 0
    }

    /// Queue `ev`; when the queue is full it is dropped and counted.
    pub fn emit(&self, ev: Event) {
        let counters = &self.shared.queues[self.index];
        let sent = counters.sent.0.load(Ordering::Relaxed);
        // `taken` may be stale, which only overestimates the backlog.
        if sent.wrapping_sub(counters.taken.0.load(Ordering::Relaxed)) >= self.capacity {
            return self.dropped();
        }
        if self.tx.send(ev).is_err() {
            // The writer has exited (after shutdown).
            return self.dropped();
        }
        // Single writer: a plain store is enough.
        counters.sent.0.store(sent + 1, Ordering::Relaxed);
        let mut log = self.drops.get();
        if log.dropping {
            log.dropping = false;
            self.drops.set(log);
        }
        // Pairs with the fence between the writer raising `sleeping` and its last look at the
        // queues: either it sees this event, or this load sees the flag.
        fence(Ordering::SeqCst);
        if self.shared.sleeping.load(Ordering::Relaxed) {
            self.writer.unpark();
        }
    }

    #[cold]
    fn dropped(&self) {
        self.metrics.events_dropped.inc();
        if self.shared.stop.load(Ordering::Relaxed) {
            return; // shut down: expected, not worth a warning
        }
        let mut log = self.drops.get();
        let warn = log.dropped(Instant::now);
        self.drops.set(log);
        if let Some(earlier) = warn {
            tracing::warn!(
                worker = self.index,
                dropped_since_last_warning = earlier,
                "flow event queue full: dropping events (capture or live readers too slow)"
            );
        }
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.shared.queues[self.index]
            .tapped
            .store(false, Ordering::Relaxed);
    }
}

/// Ties a subscription's two ends: whichever goes first unregisters it from the reader count.
#[derive(Debug)]
struct Link {
    gone: AtomicBool,
    shared: Arc<Shared>,
}

impl Link {
    fn release(&self) {
        if !self.gone.swap(true, Ordering::AcqRel) {
            self.shared
                .readers
                .fetch_sub(SUBSCRIBER_UNIT, Ordering::AcqRel);
        }
    }

    fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Relaxed)
    }
}

/// A live subscriber's receiving end: JSON lines of matching events. Dropping it unsubscribes.
pub struct Subscription {
    rx: Receiver<Arc<str>>,
    link: Arc<Link>,
}

impl Subscription {
    /// The next line; `Disconnected` once the subscriber fell [`SUBSCRIBER_BUFFER`] lines
    /// behind (and read what was buffered), or the hub shut down.
    pub fn recv_timeout(&self, d: Duration) -> Result<Arc<str>, RecvTimeoutError> {
        self.rx.recv_timeout(d)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.link.release();
    }
}

/// The writer's end of a subscription.
struct Sub {
    tx: SyncSender<Arc<str>>,
    filter: Option<WildMatch>,
    link: Arc<Link>,
}

impl Sub {
    fn wants(&self, host: &str) -> bool {
        self.filter.as_ref().is_none_or(|f| f.matches(host))
    }

    /// Offers `line`; false when the subscriber must go (full or gone).
    fn offer(&self, line: &Arc<str>) -> bool {
        match self.tx.try_send(Arc::clone(line)) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                tracing::info!(
                    buffered = SUBSCRIBER_BUFFER,
                    "live event subscriber not reading; disconnected"
                );
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        self.link.release();
    }
}

/// The capture target and its line buffer.
struct Capture {
    out: Option<File>,
    /// The path, or `stdout`, for messages.
    name: String,
    buf: Vec<u8>,
    last_flush: Instant,
}

impl Capture {
    fn open(target: &CaptureTarget) -> io::Result<Capture> {
        let (out, name) = match target {
            CaptureTarget::Stdout => (None, "stdout".to_owned()),
            CaptureTarget::File(path) => {
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| {
                        io::Error::new(
                            e.kind(),
                            format!("cannot open capture file {}: {e}", path.display()),
                        )
                    })?;
                (Some(file), path.display().to_string())
            }
        };
        Ok(Capture {
            out,
            name,
            buf: Vec::with_capacity(FLUSH_BYTES + 4096),
            last_flush: Instant::now(),
        })
    }

    /// Writes the buffered lines out (whole lines only: the buffer always ends with one).
    fn write_out(&mut self) -> io::Result<()> {
        self.last_flush = Instant::now();
        if self.buf.is_empty() {
            return Ok(());
        }
        match &mut self.out {
            Some(file) => file.write_all(&self.buf)?,
            None => {
                let mut out = io::stdout().lock();
                out.write_all(&self.buf)?;
                out.flush()?;
            }
        }
        self.buf.clear();
        Ok(())
    }
}

/// The `lynxio-events` thread's state.
struct Writer {
    shared: Arc<Shared>,
    queues: Vec<Receiver<Event>>,
    /// Events taken in the current round (reused).
    batch: Vec<Event>,
    capture: Option<Capture>,
    subs: Vec<Sub>,
    new_subs: Receiver<Sub>,
}

impl Writer {
    fn run(mut self) {
        let mut dry_polls = 0;
        loop {
            #[cfg(test)]
            self.shared.loops.fetch_add(1, Ordering::Relaxed);
            // Read before the round: when set, everything queued before shutdown() is visible,
            // so an empty round means every queue is drained.
            let stopping = self.shared.stop.load(Ordering::Acquire);
            if self.round() > 0 {
                dry_polls = 0;
                if self
                    .capture
                    .as_ref()
                    .is_some_and(|c| c.last_flush.elapsed() >= FLUSH_EVERY)
                {
                    self.flush();
                }
                continue;
            }
            self.flush();
            if stopping {
                break;
            }
            self.adopt();
            if dry_polls < DRY_POLLS {
                dry_polls += 1;
                thread::park_timeout(POLL);
                continue;
            }
            self.shared.sleeping.store(true, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            if self.round() == 0 {
                thread::park_timeout(IDLE_PARK);
            } else {
                dry_polls = 0;
            }
            self.shared.sleeping.store(false, Ordering::Relaxed);
        }
        if self.capture.take().is_some() {
            self.shared
                .readers
                .fetch_and(!CAPTURE_BIT, Ordering::AcqRel);
        }
        // Dropping the subscribers (and, with `self`, the registrations not yet adopted)
        // disconnects their receivers.
    }

    /// Takes up to [`PER_ROUND`] events from each queue, in queue order, and dispatches them.
    /// Returns how many it took.
    fn round(&mut self) -> usize {
        let mut batch = std::mem::take(&mut self.batch);
        for (rx, counters) in self.queues.iter().zip(self.shared.queues.iter()) {
            let before = batch.len();
            while batch.len() - before < PER_ROUND {
                match rx.try_recv() {
                    Ok(ev) => batch.push(ev),
                    Err(_) => break,
                }
            }
            let n = (batch.len() - before) as u64;
            if n > 0 {
                // Single writer: a plain store is enough.
                let taken = counters.taken.0.load(Ordering::Relaxed);
                counters.taken.0.store(taken + n, Ordering::Relaxed);
            }
        }
        let n = batch.len();
        if n > 0 {
            // After taking the events: a subscription registered before an event was emitted
            // is visible now, so it gets that event.
            self.adopt();
            for ev in batch.drain(..) {
                self.dispatch(&ev);
            }
        }
        self.batch = batch;
        n
    }

    fn dispatch(&mut self, ev: &Event) {
        let wanted = self
            .subs
            .iter()
            .any(|s| !s.link.is_gone() && s.wants(&ev.host));
        // Serialised once: straight into the capture buffer when there is one, and the
        // subscribers share that line.
        let mut line: Option<Arc<str>> = None;
        let mut full = false;
        if let Some(c) = self.capture.as_mut() {
            let start = c.buf.len();
            if ev.write_json(&mut c.buf).is_err() {
                c.buf.truncate(start);
                return;
            }
            if wanted {
                line = std::str::from_utf8(&c.buf[start..]).ok().map(Arc::from);
            }
            c.buf.push(b'\n');
            full = c.buf.len() >= FLUSH_BYTES;
        } else if wanted {
            line = Some(Arc::from(ev.to_json()));
        }
        if full {
            self.flush();
        }
        let Some(line) = line else {
            return;
        };
        self.subs.retain(|s| {
            if s.link.is_gone() {
                return false;
            }
            if !s.wants(&ev.host) {
                return true;
            }
            s.offer(&line)
        });
    }

    /// Registers new subscriptions and forgets the ones whose receiver was dropped.
    fn adopt(&mut self) {
        self.subs.retain(|s| !s.link.is_gone());
        while let Ok(sub) = self.new_subs.try_recv() {
            if !sub.link.is_gone() {
                self.subs.push(sub);
            }
        }
    }

    /// Writes the capture buffer out; on failure, stops capturing.
    fn flush(&mut self) {
        let Some(c) = &mut self.capture else { return };
        if let Err(e) = c.write_out() {
            tracing::warn!(
                capture = %c.name,
                error = %e,
                "writing the capture failed; no more events will be written there \
                 (live subscribers are still served)"
            );
            self.capture = None;
            self.shared
                .readers
                .fetch_and(!CAPTURE_BIT, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests;
