//! Streaming a message body from one connection to another without buffering it whole. The
//! framing decides how much to move: exactly `Content-Length` bytes (never reading past them, so
//! a pipelined request behind the body stays put), a chunked body validated chunk by chunk and
//! forwarded verbatim (or de-chunked for an HTTP/1.0 client), or everything until the source
//! closes. Each read waits at most `idle` for bytes, and each write at most `idle` for the
//! receiver to take them. Errors say which side failed, because the
//! caller answers differently for a dead client and a dead origin. A `Content-Length` body with
//! at least [`tunnel::SPLICE_BODY_MIN`] bytes (configurable) still to come, or a close-delimited
//! one past that many bytes, between two plain
//! TCP sockets, whose bytes nobody needs to see (not captured, or its kept prefix already
//! full), moves in the kernel ([`tunnel::transfer`]: splice through the worker's pipe pool)
//! with the same timeouts and errors; chunked bodies are always validated in user space.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRent};

use crate::http1::{BodyKind, ChunkedDecoder, ParseError};
use crate::net::ReadBuf;
use crate::tunnel::{self, Span, TransferError, TunnelPools};

use super::ctx::flow::Tally;

/// Buffer size used while streaming a large body (fewer, larger reads and writes).
pub const BODY_BUF_SIZE: usize = 64 * 1024;

/// Two plain TCP sockets a body may be spliced between, and the worker's pipes to do it with.
#[derive(Clone, Copy)]
pub struct SpliceLink<'a> {
    pub src: RawFd,
    pub dst: RawFd,
    pub pools: &'a TunnelPools,
    /// Bytes still to come from which a body is spliced (`--splice-body-min`, default
    /// [`tunnel::SPLICE_BODY_MIN`]).
    pub min: u64,
}

/// How chunked framing is passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkMode {
    /// Forward the validated chunked bytes unchanged (size lines, extensions, trailers).
    Verbatim,
    /// Forward only the data (the receiver is HTTP/1.0; the message ends by closing).
    Dechunk,
}

/// Why a body relay stopped early.
#[derive(Debug)]
pub enum RelayError {
    /// Reading the source failed.
    Read(io::Error),
    /// The source closed before the body was complete.
    Eof,
    /// The source was silent for longer than the idle timeout.
    Timeout,
    /// The source's chunked framing is invalid.
    Framing(ParseError),
    /// Writing to the destination failed.
    Write(io::Error),
}

impl std::fmt::Display for RelayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RelayError::Read(e) => write!(f, "read failed: {e}"),
            RelayError::Eof => f.write_str("connection closed mid-body"),
            RelayError::Timeout => f.write_str("timed out mid-body"),
            RelayError::Framing(e) => write!(f, "bad chunked framing: {e}"),
            RelayError::Write(e) => write!(f, "write failed: {e}"),
        }
    }
}

/// Read more bytes (at most `limit`) into `buf`, waiting at most `idle`. Ok(0) means EOF.
async fn read_more<R: AsyncReadRent>(
    src: &mut R,
    buf: &mut ReadBuf,
    limit: usize,
    idle: Duration,
) -> Result<usize, RelayError> {
    match monoio::time::timeout(idle, buf.fill(src, limit)).await {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(RelayError::Read(e)),
        Err(_) => Err(RelayError::Timeout),
    }
}

/// Make sure `buf` holds at least one byte; EOF is an error (the body is incomplete).
async fn need_bytes<R: AsyncReadRent>(
    src: &mut R,
    buf: &mut ReadBuf,
    limit: usize,
    idle: Duration,
) -> Result<(), RelayError> {
    if buf.is_empty() && read_more(src, buf, limit, idle).await? == 0 {
        return Err(RelayError::Eof);
    }
    Ok(())
}

/// Write the first `n` buffered bytes to `dst` and count them.
async fn forward<W: AsyncWriteRent>(
    buf: &mut ReadBuf,
    dst: &mut W,
    n: usize,
    idle: Duration,
    tally: &mut Tally,
) -> Result<(), RelayError> {
    write_within(idle, buf.write_to(dst, n))
        .await
        .map_err(RelayError::Write)?;
    tally.count(n);
    Ok(())
}

/// Keep the first `n` buffered bytes as body content, when bodies are captured.
fn keep_raw(buf: &ReadBuf, n: usize, tally: &mut Tally) {
    if tally.keeping_bytes() {
        tally.keep(buf.bytes().get(..n).unwrap_or_default());
    }
}

/// Run a write, failing with `TimedOut` if the peer accepts no bytes for `limit`: a receiver
/// that stops reading must not hold a connection (and its origin) forever. The write is
/// abandoned on timeout, so only use this where the connection is closed on failure.
pub async fn write_within<F>(limit: Duration, write: F) -> io::Result<()>
where
    F: Future<Output = io::Result<()>>,
{
    match monoio::time::timeout(limit, write).await {
        Ok(res) => res,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "peer stopped reading",
        )),
    }
}

/// Move a body of framing `kind` from `src` (with the bytes already in `buf`) to `dst`,
/// counting the wire bytes written (and keeping the content's first bytes) in `tally`.
/// `link`: the sockets under `src` and `dst` when both are plain TCP and splice is on.
/// On success the body has been written completely and `buf` holds only what follows it.
#[allow(clippy::too_many_arguments)]
pub async fn relay<R: AsyncReadRent, W: AsyncWriteRent>(
    src: &mut R,
    buf: &mut ReadBuf,
    dst: &mut W,
    kind: BodyKind,
    mode: ChunkMode,
    idle: Duration,
    tally: &mut Tally,
    link: Option<SpliceLink<'_>>,
) -> Result<(), RelayError> {
    match kind {
        BodyKind::Empty => Ok(()),
        BodyKind::Length(len) => relay_length(src, buf, dst, len, idle, tally, link).await,
        BodyKind::Chunked => {
            buf.reserve_total(BODY_BUF_SIZE);
            match mode {
                ChunkMode::Verbatim => relay_chunked(src, buf, dst, idle, tally).await,
                ChunkMode::Dechunk => relay_dechunked(src, buf, dst, idle, tally).await,
            }
        }
        BodyKind::UntilClose => {
            let mut link = link;
            // A close-delimited body has no known size: its first `min` bytes are copied (so
            // through a full-size buffer), the rest (if any) spliced.
            buf.reserve_total(BODY_BUF_SIZE);
            loop {
                if buf.is_empty()
                    && !tally.needs_bytes()
                    && let Some(l) = link
                    && tally.bytes >= l.min
                {
                    match splice_rest(l, Span::UntilEof, idle, tally).await {
                        Ok(()) => return Ok(()),
                        Err(None) => link = None,
                        Err(Some(e)) => return Err(e),
                    }
                }
                if buf.is_empty() && read_more(src, buf, usize::MAX, idle).await? == 0 {
                    return Ok(());
                }
                let n = buf.len();
                keep_raw(buf, n, tally);
                forward(buf, dst, n, idle, tally).await?;
            }
        }
    }
}

/// Move the rest of a body (nothing of it buffered) from `link.src` to `link.dst` in the kernel,
/// counting it. `Err(None)`: the transfer could not start and nothing moved (copy instead).
async fn splice_rest(
    link: SpliceLink<'_>,
    span: Span,
    idle: Duration,
    tally: &mut Tally,
) -> Result<(), Option<RelayError>> {
    let moved = Cell::new(0);
    let res = tunnel::transfer(link.src, link.dst, span, idle, true, link.pools, &moved).await;
    tally.count_unseen(moved.get());
    res.map_err(|e| match e {
        TransferError::Setup(e) => {
            tracing::debug!(error = %e, "cannot splice this body; copying it");
            None
        }
        TransferError::Source(e) => Some(match e.kind() {
            io::ErrorKind::TimedOut => RelayError::Timeout,
            io::ErrorKind::UnexpectedEof => RelayError::Eof,
            _ => RelayError::Read(e),
        }),
        TransferError::Destination(e) => Some(RelayError::Write(e)),
    })
}

async fn relay_length<R: AsyncReadRent, W: AsyncWriteRent>(
    src: &mut R,
    buf: &mut ReadBuf,
    dst: &mut W,
    len: u64,
    idle: Duration,
    tally: &mut Tally,
    link: Option<SpliceLink<'_>>,
) -> Result<(), RelayError> {
    let mut remaining = len;
    // Splice only what is worth it: the part not yet buffered must reach the threshold.
    let mut link = link.filter(|l| len.saturating_sub(buf.len() as u64) >= l.min);
    if remaining > buf.capacity() as u64 && (link.is_none() || tally.needs_bytes()) {
        buf.reserve_total(BODY_BUF_SIZE);
    }
    while remaining > 0 {
        if buf.is_empty()
            && !tally.needs_bytes()
            && let Some(l) = link
            && remaining >= l.min
        {
            match splice_rest(l, Span::Exactly(remaining), idle, tally).await {
                Ok(()) => return Ok(()),
                Err(None) => {
                    link = None;
                    buf.reserve_total(BODY_BUF_SIZE);
                }
                Err(Some(e)) => return Err(e),
            }
        }
        let want = usize::try_from(remaining).unwrap_or(usize::MAX);
        need_bytes(src, buf, want, idle).await?;
        let n = buf.len().min(want);
        keep_raw(buf, n, tally);
        forward(buf, dst, n, idle, tally).await?;
        remaining -= n as u64;
    }
    Ok(())
}

async fn relay_chunked<R: AsyncReadRent, W: AsyncWriteRent>(
    src: &mut R,
    buf: &mut ReadBuf,
    dst: &mut W,
    idle: Duration,
    tally: &mut Tally,
) -> Result<(), RelayError> {
    let mut decoder = ChunkedDecoder::new();
    loop {
        need_bytes(src, buf, usize::MAX, idle).await?;
        // Validate everything buffered (or up to the end of the body), then forward it at once.
        let bytes = buf.bytes();
        let mut validated = 0;
        while validated < bytes.len() && !decoder.is_done() {
            let rest = bytes.get(validated..).unwrap_or_default();
            let step = decoder.decode(rest).map_err(RelayError::Framing)?;
            if tally.keeping_bytes() {
                tally.keep(rest.get(step.data.clone()).unwrap_or_default());
            }
            validated += step.consumed;
        }
        forward(buf, dst, validated, idle, tally).await?;
        if decoder.is_done() {
            return Ok(());
        }
    }
}

async fn relay_dechunked<R: AsyncReadRent, W: AsyncWriteRent>(
    src: &mut R,
    buf: &mut ReadBuf,
    dst: &mut W,
    idle: Duration,
    tally: &mut Tally,
) -> Result<(), RelayError> {
    let mut decoder = ChunkedDecoder::new();
    while !decoder.is_done() {
        need_bytes(src, buf, usize::MAX, idle).await?;
        let step = decoder.decode(buf.bytes()).map_err(RelayError::Framing)?;
        buf.consume(step.data.start);
        keep_raw(buf, step.data.len(), tally);
        forward(buf, dst, step.data.len(), idle, tally).await?;
        buf.consume(step.consumed - step.data.end);
    }
    Ok(())
}
