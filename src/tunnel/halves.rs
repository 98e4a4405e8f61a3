//! The byte relay between two connections of any kind given as read and write halves — TLS on
//! either side, or TCP split for an HTTP exchange — for what an upgraded HTTP connection
//! (WebSocket) becomes. Same contract as the socket relay: both directions at once, bytes
//! buffered before the switch go first, EOF on one side half-closes the other, no byte in
//! either direction for the idle timeout ends both, and per-direction counters. Bytes are
//! copied through one buffer per direction (the halves may be TLS, so splice is not an option).

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};

use super::{TunnelEnd, TunnelStats};

/// Buffer per direction.
pub const HALVES_BUF_SIZE: usize = 16 * 1024;

/// Sees every chunk read from a side before it is forwarded; `false` refuses it (the chunk is
/// not forwarded and the relay ends).
pub type Tap<'a> = &'a mut dyn FnMut(&[u8]) -> bool;

/// One side of the relay: its halves and the bytes already read from it (sent on first).
pub struct Half<'a, R, W> {
    pub r: &'a mut R,
    pub w: &'a mut W,
    /// Bytes read from this side before the switch, to go to the other side first.
    pub pending: Vec<u8>,
    /// Optional tap on the bytes read from this side.
    pub tap: Option<Tap<'a>>,
}

/// Why one direction stopped.
enum Stop {
    Read(io::Error),
    Write(io::Error),
    Refused,
}

/// Relay between `client` and `origin` until both directions end, one fails, or nothing moves
/// for `idle`.
pub async fn relay_halves<CR, CW, OR, OW>(
    client: Half<'_, CR, CW>,
    origin: Half<'_, OR, OW>,
    idle: Duration,
) -> (TunnelStats, TunnelEnd)
where
    CR: AsyncReadRent,
    CW: AsyncWriteRent,
    OR: AsyncReadRent,
    OW: AsyncWriteRent,
{
    let last = Cell::new(Instant::now());
    let up = Cell::new(0u64);
    let down = Cell::new(0u64);
    let Half {
        r: cr,
        w: cw,
        pending: from_client,
        tap: client_tap,
    } = client;
    let Half {
        r: or,
        w: ow,
        pending: from_origin,
        tap: origin_tap,
    } = origin;
    let mut c2o = Some(pin!(copy(cr, ow, from_client, client_tap, &up, &last)));
    let mut o2c = Some(pin!(copy(or, cw, from_origin, origin_tap, &down, &last)));
    let mut watchdog = pin!(idle_watch(&last, idle));
    let end = std::future::poll_fn(|cx| {
        if let Some(f) = c2o.as_mut()
            && let Poll::Ready(res) = f.as_mut().poll(cx)
        {
            c2o = None;
            match res {
                Ok(()) => {}
                Err(Stop::Read(e)) => return Poll::Ready(TunnelEnd::ClientError(e)),
                Err(Stop::Write(e)) => return Poll::Ready(TunnelEnd::OriginError(e)),
                Err(Stop::Refused) => {
                    return Poll::Ready(TunnelEnd::Refused { from_client: true });
                }
            }
        }
        if let Some(f) = o2c.as_mut()
            && let Poll::Ready(res) = f.as_mut().poll(cx)
        {
            o2c = None;
            match res {
                Ok(()) => {}
                Err(Stop::Read(e)) => return Poll::Ready(TunnelEnd::OriginError(e)),
                Err(Stop::Write(e)) => return Poll::Ready(TunnelEnd::ClientError(e)),
                Err(Stop::Refused) => {
                    return Poll::Ready(TunnelEnd::Refused { from_client: false });
                }
            }
        }
        if c2o.is_none() && o2c.is_none() {
            return Poll::Ready(TunnelEnd::Done);
        }
        watchdog.as_mut().poll(cx).map(|()| TunnelEnd::IdleTimeout)
    })
    .await;
    let stats = TunnelStats {
        client_to_origin: up.get(),
        origin_to_client: down.get(),
    };
    (stats, end)
}

/// One direction: `pending` first, then everything read until EOF, which shuts `w`; each
/// chunk passes `tap` first.
async fn copy<R: AsyncReadRent, W: AsyncWriteRent>(
    r: &mut R,
    w: &mut W,
    pending: Vec<u8>,
    mut tap: Option<Tap<'_>>,
    moved: &Cell<u64>,
    last: &Cell<Instant>,
) -> Result<(), Stop> {
    let mut buf = pending;
    if !buf.is_empty() {
        if let Some(tap) = tap.as_mut()
            && !tap(&buf)
        {
            return Err(Stop::Refused);
        }
        let n = buf.len() as u64;
        let (res, b) = w.write_all(buf).await;
        res.map_err(Stop::Write)?;
        moved.set(moved.get() + n);
        last.set(Instant::now());
        buf = b;
    }
    buf.clear();
    buf.reserve(HALVES_BUF_SIZE);
    loop {
        let (res, b) = r.read(buf).await;
        let n = res.map_err(Stop::Read)?;
        if n == 0 {
            // Half-close: the other side may still send.
            let _ = w.shutdown().await;
            return Ok(());
        }
        last.set(Instant::now());
        if let Some(tap) = tap.as_mut()
            && !tap(b.get(..n).unwrap_or_default())
        {
            return Err(Stop::Refused);
        }
        let (res, mut b) = w.write_all(b).await;
        res.map_err(Stop::Write)?;
        moved.set(moved.get() + n as u64);
        last.set(Instant::now());
        b.clear();
        buf = b;
    }
}

/// Resolves once nothing has moved for `idle`.
async fn idle_watch(last: &Cell<Instant>, idle: Duration) {
    loop {
        let deadline = last.get() + idle;
        if Instant::now() >= deadline {
            return;
        }
        monoio::time::sleep_until(deadline.into()).await;
    }
}
