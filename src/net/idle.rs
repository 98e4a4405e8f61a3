//! Waiting for a keep-alive client's next request without paying memory for its silence. A
//! read handed to io_uring owns its buffer until it completes, so a connection that waits
//! minutes for its next request would hold a read buffer all that time. The wait has two
//! phases instead. For [`IdleWait::hold`], [`read_held`] reads with the buffer (a busy
//! connection never leaves this phase, and its timer existed before as the idle timeout, so it
//! costs nothing extra); then it cancels the read — one that completed meanwhile still hands
//! back its bytes, nothing is lost. [`wait_ready`] then frees the buffer and the caller's
//! scratch vector and waits for readability alone (an io_uring `POLL_ADD`, or epoll
//! readiness), allocating a buffer again only once bytes are there. On epoll the first phase's
//! read makes its syscall only once the socket is ready, inside a poll, so it is simply
//! dropped: no canceller bookkeeping on the hot path there.

use std::future::{Future, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::{Duration, Instant};

use monoio::io::Canceller;
use monoio::net::tcp::TcpOwnedReadHalf;
use monoio::time::Sleep;

use super::buf::ReadBuf;
use super::runtime::ActiveDriver;
use super::sys;

/// Default time an idle client connection keeps its read buffer before giving it back.
pub const DEFAULT_IDLE_BUFFER_HOLD: Duration = Duration::from_secs(1);

/// One connection's state for [`read_next`], kept across its requests so a busy connection
/// builds its canceller once.
pub struct IdleWait {
    /// How long a wait reads with a buffer before freeing it and waiting on readiness alone.
    pub hold: Duration,
    /// Capacity the buffer gets back when bytes arrive after it was freed.
    pub refill: usize,
    /// Whether the first phase's read must be cancelled to end it (io_uring: the kernel owns
    /// an in-flight read); false on epoll, where dropping it loses nothing.
    cancel_reads: bool,
    canceller: Option<Canceller>,
    /// When the current wait gives up (set by [`read_held`], read by [`wait_ready`]).
    pub deadline: Instant,
}

impl IdleWait {
    pub fn new(hold: Duration, refill: usize, driver: ActiveDriver) -> Self {
        IdleWait {
            hold,
            refill,
            cancel_reads: driver == ActiveDriver::Uring,
            canceller: None,
            deadline: Instant::now(),
        }
    }
}

/// How the first phase of a wait ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Held {
    /// Bytes were appended (0: end of stream).
    Read(usize),
    /// The hold passed with nothing read (the read was cancelled or dropped, nothing lost):
    /// go on with [`wait_ready`] until [`IdleWait::deadline`].
    HoldOver,
    /// The whole wait's `limit` passed.
    TimedOut,
}

/// Phase one: read into `buf` for at most `wait.hold` (and `limit`). Records the wait's
/// deadline (`limit` from now) in `wait` for [`wait_ready`].
pub async fn read_held(
    r: &mut TcpOwnedReadHalf,
    buf: &mut ReadBuf,
    wait: &mut IdleWait,
    limit: Duration,
) -> io::Result<Held> {
    let now = Instant::now();
    wait.deadline = now + limit;
    let mut hold = pin!(monoio::time::sleep_until(
        (now + wait.hold.min(limit)).into()
    ));
    let first = if wait.cancel_reads {
        let canceller = wait.canceller.get_or_insert_with(Canceller::new);
        let mut read = pin!(buf.fill_cancelable(r, usize::MAX, canceller.handle()));
        match race(read.as_mut(), hold.as_mut()).await {
            Some(res) => res,
            None => {
                // A read that completed before the cancel arrives still returns its bytes.
                *canceller = std::mem::take(canceller).cancel();
                read.await
            }
        }
    } else {
        // epoll: the read makes its syscall only inside a poll, once the socket is ready, so
        // dropping it between polls cannot lose a byte (and costs no canceller bookkeeping).
        let mut read = pin!(buf.fill(r, usize::MAX));
        race(read.as_mut(), hold.as_mut())
            .await
            .unwrap_or_else(|| Err(io::Error::from_raw_os_error(libc::ECANCELED)))
    };
    match first {
        Ok(n) => Ok(Held::Read(n)),
        Err(e) if e.raw_os_error() == Some(libc::ECANCELED) => {
            // Going quiet: the canceller (an `Rc` and a small table) is made again when
            // requests flow again.
            wait.canceller = None;
            if Instant::now() >= wait.deadline {
                Ok(Held::TimedOut)
            } else {
                Ok(Held::HoldOver)
            }
        }
        Err(e) => Err(e),
    }
}

/// Phase two, after [`Held::HoldOver`]: free `buf` (it is empty) and `scratch`, wait for
/// readability alone until the wait's deadline, then read into a buffer of `wait.refill`
/// bytes. `Ok(None)` at the deadline, `Ok(Some(0))` at end of stream.
pub async fn wait_ready(
    r: &mut TcpOwnedReadHalf,
    buf: &mut ReadBuf,
    scratch: &mut Vec<u8>,
    wait: &IdleWait,
) -> io::Result<Option<usize>> {
    buf.release();
    *scratch = Vec::new();
    // One timer for both steps (a monoio timer is a few hundred bytes of this future).
    let mut timer = pin!(monoio::time::sleep_until(wait.deadline.into()));
    match race(pin!(sys::read_half_readable(r)), timer.as_mut()).await {
        None => return Ok(None),
        Some(ready) => ready?,
    }
    buf.reserve_total(wait.refill);
    // Readable: this read completes at once. Dropped only at the deadline, when the caller
    // closes the connection anyway.
    race(pin!(buf.fill(r, usize::MAX)), timer).await.transpose()
}

/// `Some(output)` of `op` if it completes before `timer` fires, else `None` (`op` is left as
/// it is, for the caller to cancel or drop).
async fn race<T>(
    mut op: Pin<&mut impl Future<Output = T>>,
    mut timer: Pin<&mut Sleep>,
) -> Option<T> {
    poll_fn(|cx| match op.as_mut().poll(cx) {
        Poll::Ready(out) => Poll::Ready(Some(out)),
        Poll::Pending => timer.as_mut().poll(cx).map(|()| None),
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::time::Duration;

    use monoio::io::Splitable;
    use monoio::net::TcpStream;

    use super::*;
    use crate::net::testutil::on_both_drivers;

    /// Both phases, as the connection loop runs them.
    async fn read_next(
        r: &mut TcpOwnedReadHalf,
        buf: &mut ReadBuf,
        scratch: &mut Vec<u8>,
        wait: &mut IdleWait,
        limit: Duration,
    ) -> io::Result<Option<usize>> {
        match read_held(r, buf, wait, limit).await? {
            Held::Read(n) => Ok(Some(n)),
            Held::TimedOut => Ok(None),
            Held::HoldOver => wait_ready(r, buf, scratch, wait).await,
        }
    }

    /// Rounds of the race below: bytes written as the hold ends, around the cancel.
    const ROUNDS: usize = 60;

    /// Bytes sent just before, at and after the end of a 2 ms hold all arrive, in order: a
    /// read completed concurrently with the cancel hands back its bytes, and the buffer-free
    /// wait picks up the rest.
    #[test]
    fn no_byte_lost_around_the_hold() {
        on_both_drivers(|driver| async move {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let writer = std::thread::spawn(move || {
                let (mut peer, _) = listener.accept().unwrap();
                for round in 0..ROUNDS {
                    // 0-3.5 ms after the previous byte, which the reader waits for again at
                    // once: both sides of the 2 ms hold, and right at it.
                    std::thread::sleep(Duration::from_micros(500 * (round % 8) as u64));
                    peer.write_all(&[round as u8]).unwrap();
                }
            });
            let stream = TcpStream::connect(addr).await.unwrap();
            let (mut r, _w) = stream.into_split();
            let kind = if driver == "epoll" {
                ActiveDriver::Epoll
            } else {
                ActiveDriver::Uring
            };
            let mut wait = IdleWait::new(Duration::from_millis(2), 64, kind);
            let (mut buf, mut scratch) = (ReadBuf::default(), Vec::new());
            let mut got = Vec::new();
            while got.len() < ROUNDS {
                let limit = Duration::from_secs(5);
                let read = read_next(&mut r, &mut buf, &mut scratch, &mut wait, limit).await;
                match read {
                    Ok(Some(n)) if n > 0 => {}
                    other => panic!("{driver}: {other:?} after {} bytes", got.len()),
                }
                got.extend_from_slice(buf.bytes());
                buf.consume(buf.len());
            }
            let want: Vec<u8> = (0..ROUNDS as u8).collect();
            assert_eq!(got, want, "{driver}");
            writer.join().unwrap();
        });
    }

    /// No bytes within the limit: `None`, with the buffer given back.
    #[test]
    fn silence_times_out_without_a_buffer() {
        on_both_drivers(|driver| async move {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let stream = TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let _peer = listener.accept().unwrap();
            let (mut r, _w) = stream.into_split();
            let kind = if driver == "epoll" {
                ActiveDriver::Epoll
            } else {
                ActiveDriver::Uring
            };
            let mut wait = IdleWait::new(Duration::from_millis(5), 64, kind);
            let (mut buf, mut scratch) = (ReadBuf::with_capacity(4096), vec![0u8; 100]);
            let limit = Duration::from_millis(50);
            let read = read_next(&mut r, &mut buf, &mut scratch, &mut wait, limit).await;
            assert!(matches!(read, Ok(None)), "{driver}: {read:?}");
            assert_eq!(buf.capacity(), 0, "{driver}");
            assert_eq!(scratch.capacity(), 0, "{driver}");
        });
    }
}
