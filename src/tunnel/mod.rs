//! CONNECT tunnels: the bidirectional byte relay between a client and an origin socket, with
//! half-close, an idle timeout and per-direction byte counters; it knows nothing of HTTP. Both
//! directions run as two futures polled together in the caller's task (no spawn). Bytes move
//! socket → pipe → socket with non-blocking `splice(2)` on the worker thread, never with
//! io_uring splice ops: the kernel runs those on io-wq threads and one parked on an idle socket
//! holds a kernel thread per tunnel. Instead each burst waits for readability first (an
//! io_uring `POLL_ADD` on the uring driver; on epoll, monoio's cached readiness re-checked with
//! `poll(2)` because `relaxed = false`, which keeps our raw syscalls from spinning on a stale
//! flag — so splice is safe, and used, on both drivers), then leases a pipe from the worker's
//! [`TunnelPools`] only while bytes are in flight. A user-space copy through pooled 64 KiB
//! buffers is used when `splice` is off in the config, for a burst when no pipe can be created
//! (`EMFILE`), and for the rest of a direction when the kernel rejects splice (`EINVAL`). An
//! idle tunnel holds no pipe and no buffer. The relay sets `O_NONBLOCK` on both sockets (the
//! uring driver creates them blocking, and `SPLICE_F_NONBLOCK` does not cover the socket) and
//! consumes them: they are closed when it returns. Same-host sockets are moved off BBR
//! (`net::tcp`), which more than doubles one tunnel's throughput on loopback. A spliced
//! direction streaming fast asks to be woken per couple of milliseconds of bytes rather than per
//! segment (`pace`); bytes moving the other way end that at once.

mod halves;
mod pace;
mod pool;
mod pump;
mod sys;
mod transfer;

#[cfg(test)]
mod tests;

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::pin::pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;

pub use halves::{HALVES_BUF_SIZE, Half, Tap, relay_halves};
pub use pool::{COPY_BUF_SIZE, MAX_IDLE_BUFFERS, MAX_IDLE_PIPES, TunnelPools};

use pump::{Extent, LowWater, Peer, Pump, Side, SideError};
pub use transfer::{SPLICE_BODY_MIN, Span, TransferError, transfer};

/// Default idle timeout of a tunnel (no byte in either direction).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default pipe size asked with `F_SETPIPE_SZ` (the unprivileged `fs.pipe-max-size` default).
pub const DEFAULT_PIPE_SIZE: usize = 1024 * 1024;

/// How tunnels relay.
#[derive(Debug, Clone)]
pub struct TunnelConfig {
    /// Close both sides when no byte moved in either direction for this long.
    pub idle_timeout: Duration,
    /// Pipe size for splice, in bytes (best effort; see [`TunnelPools`]).
    pub pipe_size: usize,
    /// Zero-copy splice through pipes; false: always copy through user-space buffers.
    pub splice: bool,
}

impl Default for TunnelConfig {
    fn default() -> Self {
        TunnelConfig {
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            pipe_size: DEFAULT_PIPE_SIZE,
            splice: true,
        }
    }
}

/// Bytes delivered in each direction (the client prefix counts as client → origin).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TunnelStats {
    pub client_to_origin: u64,
    pub origin_to_client: u64,
}

/// How a tunnel ended.
#[derive(Debug)]
pub enum TunnelEnd {
    /// Both directions reached end of stream and were delivered completely.
    Done,
    /// No byte moved in either direction for the idle timeout.
    IdleTimeout,
    /// Reading from or writing to the client failed (reset, broken pipe, ...).
    ClientError(io::Error),
    /// Reading from or writing to the origin failed.
    OriginError(io::Error),
    /// A tap on the bytes of one side (`from_client`: the client's) refused them; they were not
    /// forwarded (relays over halves only).
    Refused { from_client: bool },
}

impl From<SideError> for TunnelEnd {
    fn from(e: SideError) -> Self {
        match e.side {
            Side::Client => TunnelEnd::ClientError(e.error),
            Side::Origin => TunnelEnd::OriginError(e.error),
        }
    }
}

/// Relay bytes between `client` and `origin` until both directions have ended; the streams
/// are closed on return. `client_prefix` (bytes already read from the client, e.g. by the
/// sniffer) reaches the origin before anything else. When one side's read hits end of stream
/// the other side gets `shutdown(SHUT_WR)` and the opposite direction keeps going; an error on
/// either side ends both; so does `cfg.idle_timeout` without a byte moving either way.
pub async fn relay(
    client: TcpStream,
    client_prefix: Vec<u8>,
    origin: TcpStream,
    cfg: &TunnelConfig,
    pools: &TunnelPools,
) -> (TunnelStats, TunnelEnd) {
    if let Err(e) = sys::set_nonblocking(client.as_raw_fd()) {
        return (TunnelStats::default(), TunnelEnd::ClientError(e));
    }
    if let Err(e) = sys::set_nonblocking(origin.as_raw_fd()) {
        return (TunnelStats::default(), TunnelEnd::OriginError(e));
    }
    crate::net::tcp::tune_best_effort(&client, "client");
    crate::net::tcp::tune_best_effort(&origin, "origin");
    let up = Cell::new(0u64);
    let down = Cell::new(0u64);
    let client_mark = LowWater::new(client.as_raw_fd());
    let origin_mark = LowWater::new(origin.as_raw_fd());
    let last_activity = Cell::new(Instant::now());
    let end = {
        let mut c2o = pin!(
            Pump {
                src: &client,
                dst: &origin,
                src_side: Side::Client,
                dst_side: Side::Origin,
                pools,
                bytes: &up,
                low_water: &client_mark,
                peer: Some(Peer {
                    bytes: &down,
                    low_water: &origin_mark,
                }),
                last_activity: &last_activity,
                splice: cfg.splice,
                extent: Extent::Stream,
                idle: None,
            }
            .run(client_prefix)
        );
        let mut o2c = pin!(
            Pump {
                src: &origin,
                dst: &client,
                src_side: Side::Origin,
                dst_side: Side::Client,
                pools,
                bytes: &down,
                low_water: &origin_mark,
                peer: Some(Peer {
                    bytes: &up,
                    low_water: &client_mark,
                }),
                last_activity: &last_activity,
                splice: cfg.splice,
                extent: Extent::Stream,
                idle: None,
            }
            .run(Vec::new())
        );
        let mut idle = pin!(idle_watch(&last_activity, cfg.idle_timeout));
        let (mut c2o_done, mut o2c_done) = (false, false);
        std::future::poll_fn(|cx| {
            if !c2o_done && let Poll::Ready(r) = c2o.as_mut().poll(cx) {
                match r {
                    Ok(()) => c2o_done = true,
                    Err(e) => return Poll::Ready(TunnelEnd::from(e)),
                }
            }
            if !o2c_done && let Poll::Ready(r) = o2c.as_mut().poll(cx) {
                match r {
                    Ok(()) => o2c_done = true,
                    Err(e) => return Poll::Ready(TunnelEnd::from(e)),
                }
            }
            if c2o_done && o2c_done {
                return Poll::Ready(TunnelEnd::Done);
            }
            if idle.as_mut().poll(cx).is_ready() {
                return Poll::Ready(TunnelEnd::IdleTimeout);
            }
            Poll::Pending
        })
        .await
        // The direction futures drop here, returning any pipe or buffer they still lease.
    };
    let stats = TunnelStats {
        client_to_origin: up.get(),
        origin_to_client: down.get(),
    };
    (stats, end)
}

/// Complete once `last_activity` is `timeout` in the past.
async fn idle_watch(last_activity: &Cell<Instant>, timeout: Duration) {
    loop {
        let deadline = last_activity.get() + timeout;
        if Instant::now() >= deadline {
            return;
        }
        monoio::time::sleep_until(deadline.into()).await;
    }
}
