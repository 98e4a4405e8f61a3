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
use crate::net::idle::{self, IdleWait};

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

/// A client connection's read half as the connection loop waits for its next request: plain
/// TCP gives its read buffer back while it waits long ([`crate::net::idle`]); decrypted TLS
/// keeps reading with it (rustls may hold decrypted bytes no socket readiness would announce).
pub trait ClientRead: AsyncReadRent {
    /// Append the client's next bytes to `buf`: `Ok(None)` when none came within `limit`,
    /// `Ok(Some(0))` at end of stream. `scratch` (the connection's write scratch) may be freed
    /// while the wait lasts.
    fn next_bytes(
        &mut self,
        buf: &mut ReadBuf,
        scratch: &mut Vec<u8>,
        wait: &mut IdleWait,
        limit: Duration,
    ) -> impl Future<Output = io::Result<Option<usize>>>;
}

impl ClientRead for TcpOwnedReadHalf {
    fn next_bytes(
        &mut self,
        buf: &mut ReadBuf,
        scratch: &mut Vec<u8>,
        wait: &mut IdleWait,
        limit: Duration,
    ) -> impl Future<Output = io::Result<Option<usize>>> {
        idle::read_next(self, buf, scratch, wait, limit)
    }
}

impl ClientRead for TlsReader {
    async fn next_bytes(
        &mut self,
        buf: &mut ReadBuf,
        _scratch: &mut Vec<u8>,
        _wait: &mut IdleWait,
        limit: Duration,
    ) -> io::Result<Option<usize>> {
        match monoio::time::timeout(limit, buf.fill(self, usize::MAX)).await {
            Ok(read) => read.map(Some),
            Err(_) => Ok(None),
        }
    }
}
