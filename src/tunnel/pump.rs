//! One direction of a tunnel: bytes from `src` to `dst` until `src` ends, then FIN to `dst` —
//! or, for a message body, exactly a given number of bytes (or until `src` ends) and no FIN,
//! with every wait bounded by an idle timeout. Every burst (but a body's first, whose bytes are
//! usually queued already) starts by waiting for `src` to be readable while holding nothing;
//! only then is a pipe (splice) or buffer (copy) leased, filled with non-blocking syscalls until
//! the socket is
//! empty, the pipe full or the stream ended, emptied into `dst` (waiting for `dst` to be
//! writable whenever it pushes back), and given back empty. All waits are monoio readiness
//! futures with `relaxed = false`: on io_uring that is a one-shot `POLL_ADD` (no io-wq thread,
//! unlike a splice op parked on an idle socket); on epoll it re-checks the driver's cached
//! readiness with `poll(2)`, which the raw syscalls here need because they bypass monoio and
//! would otherwise leave a stale "readable" flag behind and spin. A direction that keeps finding
//! bytes yields to the worker's other tasks every [`BURST_BUDGET`] bytes. A spliced direction
//! streaming in bulk asks to be woken once per about two milliseconds' worth of bytes
//! (`SO_RCVLOWAT`, sized by [`Pace`], each wait bounded by [`BULK_WAIT`]) rather than by every
//! arriving segment, and leaves the mark at one byte.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::task::Poll;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;

use super::pace::{BULK_WAIT, Pace};
use super::pool::TunnelPools;
use super::sys;

/// Bytes one direction moves in one go before letting the worker's other tasks run (a readiness
/// wait on a socket that stays readable need not yield on the epoll driver).
const BURST_BUDGET: usize = 4 * 1024 * 1024;

/// Which peer an error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Client,
    Origin,
}

/// An I/O error and the side whose socket reported it.
#[derive(Debug)]
pub(super) struct SideError {
    pub side: Side,
    pub error: io::Error,
}

/// How much one direction moves, and what it does at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Extent {
    /// Until `src` ends, then FIN to `dst` (a tunnel direction).
    Stream,
    /// Exactly this many bytes; `src` ending sooner is an `UnexpectedEof` error on its side.
    Exactly(u64),
    /// Until `src` ends; `dst` is left open (a close-delimited body).
    UntilEof,
}

/// What one burst ended with.
enum Burst {
    /// `src` has nothing more for now; wait for it again.
    Drained,
    /// `src` reached end of stream, or the extent is complete; everything read has been
    /// delivered.
    Eof,
    /// [`BURST_BUDGET`] bytes moved and `src` may have more: yield, then go on.
    Budget,
    /// splice(2) refused these fds (`EINVAL`) before moving anything: copy from now on.
    SpliceUnsupported,
}

/// What a tunnel direction knows of the opposite one. Bytes moving the other way mean a
/// request/response exchange: the end that spoke may now wait for an answer, so the answering
/// direction must not sit on a bulk mark — its mark drops to one byte at once (the kernel wakes
/// a pending wait if bytes are queued) and its pacing starts over.
pub(super) struct Peer<'a> {
    /// Bytes the opposite direction has delivered.
    pub bytes: &'a Cell<u64>,
    /// The low-water mark on the opposite direction's source.
    pub low_water: &'a LowWater,
}

/// One direction's sockets and the counters it shares with the relay.
pub(super) struct Pump<'a> {
    pub src: &'a TcpStream,
    pub dst: &'a TcpStream,
    pub src_side: Side,
    pub dst_side: Side,
    pub pools: &'a TunnelPools,
    /// Bytes delivered to `dst`.
    pub bytes: &'a Cell<u64>,
    /// The receive low-water mark on `src` (set and reset only through this).
    pub low_water: &'a LowWater,
    /// The tunnel's opposite direction; `None` for a message body.
    pub peer: Option<Peer<'a>>,
    /// When a byte last moved in either direction (the idle timer reads it).
    pub last_activity: &'a Cell<Instant>,
    /// Zero-copy through a pipe; false: copy through a pooled buffer.
    pub splice: bool,
    /// How much to move.
    pub extent: Extent,
    /// Longest wait for `src` to have bytes or `dst` to take them (`TimedOut` on the side that
    /// stalled); `None`: wait as long as it takes (the tunnel has its own idle watch).
    pub idle: Option<Duration>,
}

impl Pump<'_> {
    /// Deliver `prefix`, then relay the extent (a stream: until `src` ends, then FIN to
    /// `dst`) or until an error.
    pub async fn run(mut self, prefix: Vec<u8>) -> Result<(), SideError> {
        self.send_all(self.dst.as_raw_fd(), &prefix).await?;
        drop(prefix);
        // A body's bytes are usually already queued when its transfer starts: try them at once
        // (an empty socket costs one EAGAIN) instead of a readiness round trip first. A tunnel
        // direction starts idle, so it waits.
        let mut wait_first = self.extent == Extent::Stream;
        let bounded = matches!(self.extent, Extent::Exactly(_));
        let mut pace = Pace::new(Instant::now(), bounded);
        // The opposite direction's byte count when this one last looked.
        let mut peer_seen = self.peer.as_ref().map_or(0, |p| p.bytes.get());
        while self.wanted() > 0 {
            if let Some(peer) = &self.peer
                && peer.bytes.get() != peer_seen
            {
                peer_seen = peer.bytes.get();
                pace.peer_spoke(Instant::now());
            }
            if wait_first {
                self.wait_readable(&pace).await?;
            }
            wait_first = true;
            let before = self.bytes.get();
            // Boxed while bytes flow: an idle tunnel (most of them) then holds only the
            // readiness wait, not the bursts' state, for as long as it lives.
            let burst = if self.splice {
                Box::pin(self.splice_burst()).await?
            } else {
                Box::pin(self.copy_burst()).await?
            };
            let moved = usize::try_from(self.bytes.get() - before).unwrap_or(usize::MAX);
            if moved > 0
                && let Some(peer) = &self.peer
            {
                peer.low_water.set(1);
            }
            if self.splice {
                pace.after_burst(moved, Instant::now());
            }
            match burst {
                Burst::Drained => {}
                Burst::Budget => yield_now().await,
                Burst::Eof => break,
                Burst::SpliceUnsupported => {
                    tracing::debug!("splice not supported on this stream; copying instead");
                    self.splice = false;
                }
            }
        }
        match self.extent {
            Extent::Stream => {
                // The other side may already be gone; its own direction reports that.
                if let Err(e) = sys::shutdown_write(self.dst.as_raw_fd()) {
                    tracing::debug!(error = %e, "shutdown(SHUT_WR) after end of stream failed");
                }
            }
            Extent::Exactly(len) if self.bytes.get() < len => {
                let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "closed mid-body");
                return Err(self.err(self.src_side, eof));
            }
            Extent::Exactly(_) | Extent::UntilEof => {}
        }
        Ok(())
    }

    /// Bytes still to read from `src` (`usize::MAX`: no limit but the end of the stream).
    fn wanted(&self) -> usize {
        match self.extent {
            Extent::Exactly(len) => {
                usize::try_from(len.saturating_sub(self.bytes.get())).unwrap_or(usize::MAX)
            }
            Extent::Stream | Extent::UntilEof => usize::MAX,
        }
    }

    /// Wait until `src` is readable. In bulk, first for the `pace`'s mark of bytes (fewer,
    /// larger bursts), for at most [`BULK_WAIT`]; otherwise, and after that, for any byte, at
    /// most `self.idle`.
    async fn wait_readable(&self, pace: &Pace) -> Result<(), SideError> {
        if pace.bulk() {
            let mark = pace.mark().min(self.pools.pipe_size()).min(self.wanted());
            self.low_water.set(mark.max(1));
            let readable = self.src.readable(false);
            let limit = self.idle.map_or(BULK_WAIT, |idle| idle.min(BULK_WAIT));
            if let Ok(res) = monoio::time::timeout(limit, readable).await {
                return res.map_err(|e| self.err(self.src_side, e));
            }
        }
        self.low_water.set(1);
        let readable = self.src.readable(false);
        self.wait(self.src_side, readable).await
    }

    /// Wait for a readiness future of `side`'s socket, at most `self.idle`.
    async fn wait<F>(&self, side: Side, ready: F) -> Result<(), SideError>
    where
        F: Future<Output = io::Result<()>>,
    {
        let res = match self.idle {
            None => ready.await,
            Some(limit) => match monoio::time::timeout(limit, ready).await {
                Ok(res) => res,
                Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "no progress")),
            },
        };
        res.map_err(|e| self.err(side, e))
    }

    fn err(&self, side: Side, error: io::Error) -> SideError {
        SideError { side, error }
    }

    fn delivered(&self, n: usize) {
        self.bytes.set(self.bytes.get() + n as u64);
        self.last_activity.set(Instant::now());
    }

    /// Splice `src` → pipe → `dst` until `src` is drained or ends.
    async fn splice_burst(&self) -> Result<Burst, SideError> {
        let mut pipe = match self.pools.take_pipe() {
            Ok(p) => p,
            Err(e) => {
                // Out of fds (EMFILE/ENFILE) or pipe memory: copy this burst instead.
                tracing::debug!(error = %e, "no pipe for splice; copying this burst");
                return self.copy_burst().await;
            }
        };
        let (src, pipe_in) = (self.src.as_raw_fd(), pipe.pipe().write_fd());
        let capacity = pipe.pipe().capacity();
        let mut moved = 0;
        loop {
            let mut eof = false;
            let mut src_empty = false;
            // Bytes still to read once the pipe's current contents are delivered.
            let left = self.wanted().saturating_sub(pipe.len);
            let room = capacity.min(pipe.len + left);
            while pipe.len < room {
                let want = room - pipe.len;
                match sys::splice(src, pipe_in, want) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => {
                        pipe.len += n;
                        moved += n;
                        // One splice takes everything queued on a non-blocking socket, so a
                        // short one means it is empty (or the pipe ran out of slots): skip
                        // the EAGAIN probe.
                        if n < want {
                            src_empty = true;
                            break;
                        }
                    }
                    // The socket is empty, or the pipe ran out of slots before bytes.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        src_empty = true;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) && moved == 0 => {
                        return Ok(Burst::SpliceUnsupported);
                    }
                    Err(e) => return Err(self.err(self.src_side, e)),
                }
            }
            if pipe.len > 0 {
                self.last_activity.set(Instant::now());
            }
            while pipe.len > 0 {
                match sys::splice(pipe.pipe().read_fd(), self.dst.as_raw_fd(), pipe.len) {
                    Ok(n) => {
                        pipe.len -= n;
                        self.delivered(n);
                        // A short splice means the send buffer filled up: wait for room
                        // instead of probing for EAGAIN.
                        if pipe.len > 0 {
                            self.dst_writable().await?;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.dst_writable().await?,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(self.err(self.dst_side, e)),
                }
            }
            if eof || self.wanted() == 0 {
                return Ok(Burst::Eof);
            }
            if src_empty {
                // Possibly only the pipe was full; the readiness wait answers at once if so.
                return Ok(Burst::Drained);
            }
            if moved >= BURST_BUDGET {
                return Ok(Burst::Budget);
            }
        }
    }

    /// Copy `src` → buffer → `dst` until `src` is drained or ends.
    async fn copy_burst(&self) -> Result<Burst, SideError> {
        let mut lease = self.pools.take_buffer();
        let src = self.src.as_raw_fd();
        let mut moved = 0;
        loop {
            let want = self.wanted();
            let buf = lease.buf();
            let len = buf.len().min(want);
            let buf = &mut buf[..len];
            let n = match sys::recv(src, buf) {
                Ok(0) => return Ok(Burst::Eof),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(Burst::Drained);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.err(self.src_side, e)),
            };
            let full = n == buf.len();
            self.last_activity.set(Instant::now());
            self.send_all(self.dst.as_raw_fd(), &lease.buf()[..n])
                .await?;
            if self.wanted() == 0 {
                return Ok(Burst::Eof);
            }
            moved += n;
            if !full {
                // A short read almost always means the socket is empty: wait for it again.
                return Ok(Burst::Drained);
            }
            if moved >= BURST_BUDGET {
                return Ok(Burst::Budget);
            }
        }
    }

    async fn send_all(&self, dst: RawFd, mut bytes: &[u8]) -> Result<(), SideError> {
        while !bytes.is_empty() {
            match sys::send(dst, bytes) {
                Ok(n) => {
                    bytes = &bytes[n..];
                    self.delivered(n);
                    if !bytes.is_empty() {
                        self.dst_writable().await?;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.dst_writable().await?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.err(self.dst_side, e)),
            }
        }
        Ok(())
    }

    async fn dst_writable(&self) -> Result<(), SideError> {
        self.wait(self.dst_side, self.dst.writable(false)).await
    }
}

/// The receive low-water mark (`SO_RCVLOWAT`) lynxio has set on one socket. Dropped (at the
/// end of the relay or transfer that owns it, on every path) it puts the mark back to one
/// byte: the socket outlives it — a body's source goes on to carry the next message, read by
/// the runtime.
pub(super) struct LowWater {
    fd: RawFd,
    bytes: Cell<usize>,
}

impl LowWater {
    /// The mark of socket `fd`, which starts at the kernel's default of one byte.
    pub fn new(fd: RawFd) -> Self {
        LowWater {
            fd,
            bytes: Cell::new(1),
        }
    }

    /// Set the mark to `bytes` (a syscall only when it changes).
    pub fn set(&self, bytes: usize) {
        if bytes == self.bytes.get() {
            return;
        }
        match sys::set_rcvlowat(self.fd, bytes) {
            Ok(()) => self.bytes.set(bytes),
            Err(e) => tracing::debug!(error = %e, bytes, "setting SO_RCVLOWAT failed"),
        }
    }
}

impl Drop for LowWater {
    fn drop(&mut self) {
        self.set(1);
    }
}

/// Let the worker's other ready tasks run once (monoio 0.2 has no `yield_now`).
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}
