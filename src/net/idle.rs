//! Waiting for a keep-alive client's next request without paying memory for its silence. A
//! read handed to io_uring owns its buffer until it completes, so a connection that waits
//! minutes for its next request would hold a read buffer all that time. [`read_next`] waits in
//! two phases instead: for [`IdleWait::hold`] it reads with the buffer (a busy connection never
//! leaves this phase, and its timer existed before as the idle timeout, so it costs nothing
//! extra); then it cancels the read — a read that completed meanwhile still hands back its bytes,
//! nothing is lost — frees the buffer and the caller's scratch vector, and waits for readability
//! alone (an io_uring `POLL_ADD`, or epoll readiness), allocating a buffer again only once bytes
//! are there. On epoll the first phase's read only reads when the socket is ready, so cancelling
//! it is just as safe.

use std::future::{Future, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::{Duration, Instant};

use monoio::io::Canceller;
use monoio::net::tcp::TcpOwnedReadHalf;
use monoio::time::Sleep;

use super::buf::ReadBuf;
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
    canceller: Option<Canceller>,
}

impl IdleWait {
    pub fn new(hold: Duration, refill: usize) -> Self {
        IdleWait {
            hold,
            refill,
            canceller: None,
        }
    }
}

/// Append the client's next bytes to `buf`; `Ok(None)` when none came within `limit`,
/// `Ok(Some(0))` at end of stream. Past `wait.hold`, `buf` (when empty) and `scratch` are freed
/// while the wait goes on without a buffer.
pub async fn read_next(
    r: &mut TcpOwnedReadHalf,
    buf: &mut ReadBuf,
    scratch: &mut Vec<u8>,
    wait: &mut IdleWait,
    limit: Duration,
) -> io::Result<Option<usize>> {
    let now = Instant::now();
    let deadline = now + limit;
    // One timer for both phases (a monoio timer is a few hundred bytes of this future): it
    // fires at the end of the hold, then is moved to the deadline.
    let mut timer = pin!(monoio::time::sleep_until(
        (now + wait.hold.min(limit)).into()
    ));
    let canceller = wait.canceller.get_or_insert_with(Canceller::new);
    let first = {
        let mut read = pin!(buf.fill_cancelable(r, usize::MAX, canceller.handle()));
        match race(read.as_mut(), timer.as_mut()).await {
            Some(res) => res,
            None => {
                // A read that completed before the cancel arrives still returns its bytes.
                *canceller = std::mem::take(canceller).cancel();
                read.await
            }
        }
    };
    match first {
        Ok(n) => return Ok(Some(n)),
        Err(e) if e.raw_os_error() == Some(libc::ECANCELED) => {}
        Err(e) => return Err(e),
    }
    if Instant::now() >= deadline {
        return Ok(None);
    }
    buf.release();
    *scratch = Vec::new();
    timer.as_mut().reset(deadline.into());
    match race(pin!(sys::read_half_readable(r)), timer.as_mut()).await {
        None => return Ok(None),
        Some(ready) => ready?,
    }
    buf.reserve_total(wait.refill);
    // Readable: this read completes at once. Dropped only at the deadline, when the caller
    // closes the connection anyway.
    Ok(race(pin!(buf.fill(r, usize::MAX)), timer)
        .await
        .transpose()?)
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
