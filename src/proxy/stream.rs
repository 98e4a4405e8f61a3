//! The two kinds of origin connection the pipeline sends requests over — plain TCP halves, or
//! TLS halves when a CONNECT is intercepted — behind one read type and one write type, so the
//! request pipeline stays a single static function chain for both. Each method forwards to the
//! variant's own implementation.

use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::tcp::{TcpOwnedReadHalf, TcpOwnedWriteHalf};

use crate::mitm::tls::{TlsReader, TlsWriter};

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
