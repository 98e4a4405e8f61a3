//! One-way transfers of a span of bytes between two sockets that stay open afterwards: the
//! message bodies nobody needs to see, moved socket → pipe → socket by the same [`Pump`] as a
//! tunnel direction (a readiness wait between bursts, a pooled pipe leased only while bytes are
//! in flight, copying when splice is off or refused), but bounded: exactly `n` bytes (never
//! reading past them, so the next message on the connection stays put) or until the source
//! ends, no FIN afterwards, and every wait limited by an idle timeout. The caller's sockets belong to monoio
//! and keep being used by it after the transfer, so the waits run on private duplicates of
//! their fds (`dup(2)`: the same socket, its own registration with the runtime), and the
//! sockets are left `O_NONBLOCK` (see [`sys::set_nonblocking`]; monoio's io_uring recv/send
//! ops arm a poll on `EAGAIN` whatever the flag, and its epoll driver sets it itself). As for
//! tunnels, a same-host receiving socket is moved off BBR (`net::tcp`): on loopback BBR's tiny
//! window kept spliced bodies slower than copies.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use super::pool::TunnelPools;
use super::pump::{Extent, LowWater, Pump, Side};
use super::sys;

/// Default smallest body remainder (bytes not yet read when a relay would start its kernel path)
/// moved by splice rather than copied. Measured with every body forced through splice, against
/// copying, from an nginx origin on loopback (BENCHMARKS.md, "Bodies by splice"): since a body
/// waits for the rest of itself in one go (`tunnel::pace`), splice wins from 64 KiB up in two
/// sweeps (1.1–1.9× the requests/s at 10–45 % less CPU per GB) and loses at 32 KiB, where
/// copying moves the body in one 64 KiB read that finds it queued and a transfer pays its setup
/// (two `dup`s, flag checks, closes) for little. 128 KiB keeps a margin from that edge.
pub const SPLICE_BODY_MIN: u64 = 128 * 1024;

/// How much a transfer moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// Exactly this many bytes; the source ending sooner is an error.
    Exactly(u64),
    /// Everything until the source ends.
    UntilEof,
}

/// Why a transfer stopped early.
#[derive(Debug)]
pub enum TransferError {
    /// Waiting on or reading the source failed: `TimedOut` when it was silent for the idle
    /// timeout, `UnexpectedEof` when it closed before the span was complete.
    Source(io::Error),
    /// Waiting on or writing to the destination failed (`TimedOut`: it took no bytes for the
    /// idle timeout).
    Destination(io::Error),
    /// The transfer could not start (no fd for the duplicate, say); nothing moved, so the
    /// caller can copy instead.
    Setup(io::Error),
}

/// The source's side label inside the pump (the labels only tell the two sockets apart here).
const SOURCE: Side = Side::Origin;
const DESTINATION: Side = Side::Client;

/// Move `span` bytes from socket `src` to socket `dst`, adding each delivered byte to `moved`
/// (also when it fails, so the caller can count what went out). `splice`: through a pipe (else
/// copied through a pooled buffer). Both fds must stay open for the call.
pub async fn transfer(
    src: RawFd,
    dst: RawFd,
    span: Span,
    idle: Duration,
    splice: bool,
    pools: &TunnelPools,
    moved: &Cell<u64>,
) -> Result<(), TransferError> {
    let src = sys::watch(src).map_err(TransferError::Setup)?;
    let dst = sys::watch(dst).map_err(TransferError::Setup)?;
    // The sending socket's window decides how big each burst is (see `net::tcp`).
    crate::net::tcp::tune_best_effort(&dst, "body receiver");
    let last_activity = Cell::new(Instant::now());
    let low_water = LowWater::new(src.as_raw_fd());
    let pump = Pump {
        src: &src,
        dst: &dst,
        src_side: SOURCE,
        dst_side: DESTINATION,
        pools,
        bytes: moved,
        low_water: &low_water,
        peer: None,
        last_activity: &last_activity,
        splice,
        extent: match span {
            Span::Exactly(n) => Extent::Exactly(n),
            Span::UntilEof => Extent::UntilEof,
        },
        idle: Some(idle),
    };
    pump.run(Vec::new()).await.map_err(|e| {
        if e.side == SOURCE {
            TransferError::Source(e.error)
        } else {
            TransferError::Destination(e.error)
        }
    })
}
