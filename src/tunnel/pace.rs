//! How often one spliced direction lets itself be woken: the receive low-water mark
//! (`SO_RCVLOWAT`) its next readiness wait asks for. A direction "in bulk" asks for about a
//! [`WAKE_INTERVAL`]'s worth of bytes at its measured rate (a power of two, from
//! [`BULK_MIN_MARK`] to [`BULK_MAX_MARK`]) instead of being woken by every arriving segment;
//! the rest wait for one byte. A message body (its remaining length known, so the mark never
//! asks for bytes that will not come) starts in bulk; a tunnel direction enters it when a
//! window of [`PACE_WINDOW`] shows the rate. A window with a slow rate ends it, and so do
//! bytes moving the other way: a request/response exchange, whose answer's last bytes must not
//! wait on a mark while the asker waits for them. Pure arithmetic on byte counts and instants,
//! so the policy is tested without sockets; `pump` applies the mark and bounds each bulk wait
//! by [`BULK_WAIT`]. Raising the mark can also lower the socket's window clamp (the kernel
//! sizes the receive buffer to fit the mark); receive autotuning lifts it again as the
//! connection needs.

use std::time::{Duration, Instant};

/// The wake-up interval a bulk stream's mark aims at: bytes per interval at the stream's
/// measured rate, rounded down to a power of two, so a wait lasts between half of this and all
/// of it. Each wake-up costs the proxy a completion and a splice pair, and costs the *sender* a
/// wake-up of this thread (a cross-core IPI, a VM exit on a KVM guest); at 2 ms a 600 MB/s TLS
/// stream wakes the proxy ~600 times a second instead of ~17,000 (one per 32 KiB). At 1 ms the
/// marks were half as big and a 1 GiB HTTPS transfer woke lynxio about twice as often (2,000
/// `io_uring_enter` per GB, against 1,000-1,300 with 1 MiB marks).
pub(super) const WAKE_INTERVAL: Duration = Duration::from_millis(2);

/// Longest bulk wait; then whatever is queued moves. This bounds what pacing adds to the last
/// bytes of a one-way stream (a tunnel cannot know where a response ends; in an exchange the
/// asker's next bytes end the wait, see `Peer`): at most this, and only for a stream that was
/// just moving at bulk rate. Twice [`WAKE_INTERVAL`], so a mark sized from the measured rate
/// fills before it unless the stream slows down or stops.
pub(super) const BULK_WAIT: Duration = Duration::from_millis(4);

/// The smallest mark worth asking for: below it (a stream under ~64 MB/s) the sender paces
/// the proxy anyway, and each wait for one byte costs little.
pub(super) const BULK_MIN_MARK: usize = 128 * 1024;

/// The largest mark: 1 MiB at a time (the pipe pool's pipes hold that much). Beyond it a wait
/// saves little and the socket needs a bigger receive buffer (the kernel grows it to fit).
pub(super) const BULK_MAX_MARK: usize = 1024 * 1024;

/// The stretch over which the rate is measured. A direction that starts streaming after an
/// idle spell waits for single bytes through its first window, then paces itself.
pub(super) const PACE_WINDOW: Duration = Duration::from_millis(4);

/// One direction's measured pace and the low-water mark it asks for.
#[derive(Debug, Clone)]
pub(super) struct Pace {
    /// When the current measuring window started, and the bytes moved since.
    since: Instant,
    bytes: usize,
    /// The mark the next readiness wait asks for; 1 when not in bulk.
    mark: usize,
}

impl Pace {
    /// A direction starting at `now`: in bulk from its first wait if `bounded` (a body whose
    /// remaining length is known, so the mark never asks for bytes that will not come; a
    /// slow sender takes it out after one window), else waking for any byte until a window
    /// shows a bulk rate.
    pub fn new(now: Instant, bounded: bool) -> Self {
        Pace {
            since: now,
            bytes: 0,
            mark: if bounded { BULK_MAX_MARK } else { 1 },
        }
    }

    /// The low-water mark for the next wait (1: wake for any byte).
    pub fn mark(&self) -> usize {
        self.mark
    }

    /// Whether the next wait is a bulk one (bounded by [`BULK_WAIT`]).
    pub fn bulk(&self) -> bool {
        self.mark > 1
    }

    /// The opposite direction of the tunnel moved bytes: an exchange, not a one-way stream.
    /// Wake for any byte, and measure afresh from `now`.
    pub fn peer_spoke(&mut self, now: Instant) {
        self.since = now;
        self.bytes = 0;
        self.mark = 1;
    }

    /// Account for a burst that moved `moved` bytes and ended at `now`; once a window has
    /// passed, set the mark from the window's rate and start the next window.
    pub fn after_burst(&mut self, moved: usize, now: Instant) {
        self.bytes = self.bytes.saturating_add(moved);
        let elapsed = now.saturating_duration_since(self.since);
        if elapsed >= PACE_WINDOW {
            self.mark = mark_for(self.bytes, elapsed);
            self.since = now;
            self.bytes = 0;
        }
    }
}

/// The mark for a stream that moved `bytes` in `elapsed`: a [`WAKE_INTERVAL`]'s worth, rounded
/// down to a power of two and capped at [`BULK_MAX_MARK`]; 1 below [`BULK_MIN_MARK`].
fn mark_for(bytes: usize, elapsed: Duration) -> usize {
    let per_interval =
        (bytes as u128).saturating_mul(WAKE_INTERVAL.as_nanos()) / elapsed.as_nanos().max(1);
    let per_interval = usize::try_from(per_interval).unwrap_or(usize::MAX);
    if per_interval < BULK_MIN_MARK {
        return 1;
    }
    // Round down to a power of two: the mark changes (one setsockopt) only when the rate
    // halves or doubles, not on every window's jitter.
    let pow2 = 1usize << (usize::BITS - 1 - per_interval.leading_zeros());
    pow2.min(BULK_MAX_MARK)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Feed `bursts` of `size` bytes spaced `gap` apart, starting at `t0`; the time after.
    fn feed(pace: &mut Pace, t0: Instant, bursts: usize, size: usize, gap: Duration) -> Instant {
        let mut t = t0;
        for _ in 0..bursts {
            t += gap;
            pace.after_burst(size, t);
        }
        t
    }

    #[test]
    fn a_fast_trickle_of_small_bursts_becomes_bulk_after_one_window() {
        // 16 KiB every 55 µs (~300 MB/s, a TLS stream the proxy outruns): no burst is big,
        // the rate is.
        let t0 = Instant::now();
        let mut pace = Pace::new(t0, false);
        let t = feed(&mut pace, t0, 10, 16 * 1024, Duration::from_micros(55));
        assert!(!pace.bulk(), "no window has closed yet");
        feed(&mut pace, t, 80, 16 * 1024, Duration::from_micros(55));
        // ~298 KiB per ms, ~596 KiB per 2 ms, rounded down to a power of two.
        assert_eq!(pace.mark(), 512 * 1024);
        assert!(pace.bulk());
    }

    #[test]
    fn a_slow_stream_waits_for_single_bytes() {
        // 16 KiB every 500 µs: 32 MB/s.
        let t0 = Instant::now();
        let mut pace = Pace::new(t0, false);
        feed(&mut pace, t0, 40, 16 * 1024, Duration::from_micros(500));
        assert_eq!(pace.mark(), 1);
    }

    #[test]
    fn the_first_burst_after_an_idle_spell_is_not_bulk() {
        // A tunnel idle for ten seconds, then 128 KiB: the window holds the idle time.
        let t0 = Instant::now();
        let mut pace = Pace::new(t0, false);
        pace.after_burst(128 * 1024, t0 + 10_000 * MS);
        assert_eq!(pace.mark(), 1);
    }

    #[test]
    fn a_bounded_body_starts_in_bulk_and_a_slow_sender_takes_it_out() {
        let t0 = Instant::now();
        let mut pace = Pace::new(t0, true);
        assert_eq!(pace.mark(), BULK_MAX_MARK);
        // 8 KiB every 2 ms: 4 MB/s, a sender far slower than the mark.
        feed(&mut pace, t0, 3, 8 * 1024, 2 * MS);
        assert_eq!(pace.mark(), 1);
    }

    #[test]
    fn the_other_way_speaking_ends_bulk_and_restarts_the_window() {
        let t0 = Instant::now();
        let mut pace = Pace::new(t0, false);
        let t = feed(&mut pace, t0, 100, 64 * 1024, Duration::from_micros(50));
        assert!(pace.bulk());
        pace.peer_spoke(t);
        assert_eq!(pace.mark(), 1);
        // The answer streams at the same rate; bulk again only once a window has passed.
        let t = feed(&mut pace, t, 70, 64 * 1024, Duration::from_micros(50));
        assert!(!pace.bulk());
        feed(&mut pace, t, 20, 64 * 1024, Duration::from_micros(50));
        assert!(pace.bulk());
    }

    #[test]
    fn marks_are_powers_of_two_between_the_bounds() {
        const W: Duration = WAKE_INTERVAL;
        assert_eq!(mark_for(BULK_MIN_MARK - 1, W), 1);
        assert_eq!(mark_for(BULK_MIN_MARK, W), BULK_MIN_MARK);
        assert_eq!(mark_for(300 * 1024, W), 256 * 1024);
        assert_eq!(mark_for(3 * BULK_MAX_MARK, W), BULK_MAX_MARK);
        assert_eq!(mark_for(usize::MAX, Duration::ZERO), BULK_MAX_MARK);
        assert_eq!(mark_for(0, Duration::ZERO), 1);
    }
}
