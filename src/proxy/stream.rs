//! The two kinds of origin connection the pipeline sends requests over — plain TCP halves, or
//! TLS halves when a CONNECT is intercepted — behind one read type and one write type, so the
//! request pipeline stays a single static function chain for both. Each method forwards to the
//! variant's own implementation. [`ClientRead`]: how a client's read half waits for its next
//! request.

use std::future::Future;
use std::io;
use std::time::Duration;

use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::tcp::{TcpOwnedReadHalf, TcpOwnedWriteHalf};

use crate::mitm::tls::{TlsReader, TlsWriter};
use crate::net::ReadBuf;
use crate::net::idle::{self, Held, IdleWait};

/// Read half of an origin connection.
pub enum UpRead {
    Tcp(TcpOwnedReadHalf),
    Tls(TlsReader),
}

/// Write half of an origin connection.
pub enum UpWrite {
    Tcp(TcpOwnedWriteHalf),
    Tls(TlsWriter),
}

impl AsyncReadRent for UpRead {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpRead::Tcp(r) => r.read(buf).await,
            UpRead::Tls(r) => r.read(buf).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpRead::Tcp(r) => r.readv(buf).await,
            UpRead::Tls(r) => r.readv(buf).await,
        }
    }
}

impl AsyncWriteRent for UpWrite {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpWrite::Tcp(w) => w.write(buf).await,
            UpWrite::Tls(w) => w.write(buf).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpWrite::Tcp(w) => w.writev(buf).await,
            UpWrite::Tls(w) => w.writev(buf).await,
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        match self {
            UpWrite::Tcp(w) => w.flush().await,
            UpWrite::Tls(w) => w.flush().await,
        }
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        match self {
            UpWrite::Tcp(w) => w.shutdown().await,
            UpWrite::Tls(w) => w.shutdown().await,
        }
    }
}

/// A client connection's read half as the connection loop waits for its next request, in the
/// two phases of [`crate::net::idle`]: plain TCP gives its read buffer back while it waits
/// long; decrypted TLS keeps reading with it (rustls may hold decrypted bytes no socket
/// readiness would announce), so its first phase never ends in [`Held::HoldOver`].
pub trait ClientRead: AsyncReadRent {
    /// Phase one: read into `buf` for at most the hold (TLS: `limit`).
    fn read_held(
        &mut self,
        buf: &mut ReadBuf,
        wait: &mut IdleWait,
        limit: Duration,
    ) -> impl Future<Output = io::Result<Held>>;

    /// Phase two, after [`Held::HoldOver`]: wait without a buffer (freeing `buf` and
    /// `scratch`), then read. `Ok(None)` at the wait's deadline.
    fn wait_ready(
        &mut self,
        buf: &mut ReadBuf,
        scratch: &mut Vec<u8>,
        wait: &IdleWait,
    ) -> impl Future<Output = io::Result<Option<usize>>>;
}

impl ClientRead for TcpOwnedReadHalf {
    fn read_held(
        &mut self,
        buf: &mut ReadBuf,
        wait: &mut IdleWait,
        limit: Duration,
    ) -> impl Future<Output = io::Result<Held>> {
        idle::read_held(self, buf, wait, limit)
    }

    fn wait_ready(
        &mut self,
        buf: &mut ReadBuf,
        scratch: &mut Vec<u8>,
        wait: &IdleWait,
    ) -> impl Future<Output = io::Result<Option<usize>>> {
        idle::wait_ready(self, buf, scratch, wait)
    }
}

impl ClientRead for TlsReader {
    async fn read_held(
        &mut self,
        buf: &mut ReadBuf,
        _wait: &mut IdleWait,
        limit: Duration,
    ) -> io::Result<Held> {
        match monoio::time::timeout(limit, buf.fill(self, usize::MAX)).await {
            Ok(read) => read.map(Held::Read),
            Err(_) => Ok(Held::TimedOut),
        }
    }

    async fn wait_ready(
        &mut self,
        buf: &mut ReadBuf,
        _scratch: &mut Vec<u8>,
        wait: &IdleWait,
    ) -> io::Result<Option<usize>> {
        // Not reached (`read_held` never answers `HoldOver` here); reads until the deadline.
        let read = buf.fill(self, usize::MAX);
        match monoio::time::timeout_at(wait.deadline.into(), read).await {
            Ok(read) => read.map(Some),
            Err(_) => Ok(None),
        }
    }
}
