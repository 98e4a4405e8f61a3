//! TLS over a monoio `TcpStream`, driving rustls' sans-IO [`Connection`] directly (not
//! monoio-rustls, which panics when a future is dropped mid-operation and writes only the first
//! slice of a vectored write). [`accept`] and [`connect`] run the handshake in one task under a
//! deadline (bytes a sniffer already read are fed first), then split the socket into monoio's
//! owned halves and share the rustls connection as `Rc<RefCell<Connection>>` between a
//! [`TlsReader`] and a [`TlsWriter`], which may be used concurrently (the two halves of a
//! `Client`). No `RefCell` borrow is ever held across an `.await`: socket I/O goes through
//! half-local vectors and the connection is borrowed only for the synchronous rustls steps. The
//! socket has exactly ONE writer, the `TlsWriter`: records that reading produces (a KeyUpdate
//! reply, a `no_renegotiation` warning) stay queued, in order, inside rustls and go out ahead of
//! the next `write`/`writev`/`flush`/`shutdown`; so records never interleave, at the price that
//! such a reply waits for the application's next write (harmless for HTTP/1, where every request
//! is answered, and for KeyUpdate, which RFC 8446 §4.6.3 lets the peer not wait for). A write
//! encrypts at most rustls' buffer limit (64 KiB) of plaintext and writes ALL resulting records
//! before returning; if a write future is dropped mid-flight the record stream is cut at an
//! unknown point, so the writer turns broken: later writes fail and `shutdown` skips
//! `close_notify` (dropping the `TlsWriter` shuts the TCP write side without it). `shutdown`
//! gives `close_notify` at most [`CLOSE_NOTIFY_TIMEOUT`]: a peer that stops reading (its window
//! and our send buffer full) cannot hold the task and its socket past that; the TCP write side is
//! shut whether or not `close_notify` went out. Reads return
//! plaintext, 0 at a clean `close_notify` or at a TCP EOF (then [`TlsReader::truncated`] is
//! true). Ciphertext already read from the socket survives a dropped read future; a dropped
//! socket read op itself may lose the bytes the kernel had taken (monoio owns its buffer), which
//! is acceptable only because lynxio closes a connection whenever it drops a read — and even then
//! AEAD turns the gap into an error on the next record, never into wrong plaintext. Errors are
//! `io::Error`s; rustls failures (certificate verification included) carry the `rustls::Error`
//! as source and its text as message, e.g. `invalid peer certificate: UnknownIssuer`.

use std::cell::RefCell;
use std::io::{self, BufRead, IoSlice, Write};
use std::mem;
use std::ptr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable,
};
use monoio::net::TcpStream;
use rustls::pki_types::ServerName;
use rustls::{
    ClientConfig, ClientConnection, Connection, HandshakeKind, ServerConfig, ServerConnection,
};

#[cfg(test)]
mod tests;

/// Bytes asked of the socket per read: a full TLS record (16 KiB + overhead) and then some.
const READ_CHUNK: usize = 32 * 1024;
/// How long `shutdown` waits for the socket to take `close_notify` (and records queued ahead of
/// it). Generous for a peer that reads at all (the alert is 24 bytes), short enough that a peer
/// that never reads again releases the task and its file descriptor promptly.
pub const CLOSE_NOTIFY_TIMEOUT: Duration = Duration::from_millis(CLOSE_NOTIFY_MS as u64);
const CLOSE_NOTIFY_MS: u32 = 5_000;

/// What the client asked for and got during [`accept`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandshakeInfo {
    /// The negotiated ALPN protocol, if any.
    pub alpn: Option<Vec<u8>>,
    /// The SNI host name the client sent, if any.
    pub sni: Option<String>,
    /// The client resumed an earlier session (ticket or session ID): no certificate was sent.
    pub resumed: bool,
}

/// Terminate TLS from a client: `prefix` holds bytes already read from `stream` (the sniffed
/// ClientHello) and is processed before anything else is read. Fails with `TimedOut` when the
/// handshake is not complete within `timeout`.
pub async fn accept(
    mut stream: TcpStream,
    prefix: Vec<u8>,
    config: Arc<ServerConfig>,
    timeout: Duration,
) -> io::Result<(TlsReader, TlsWriter, HandshakeInfo)> {
    let mut conn = Connection::Server(ServerConnection::new(config).map_err(tls_error)?);
    let mut inbox = Inbox {
        buf: prefix,
        pos: 0,
    };
    handshake_within(timeout, &mut stream, &mut conn, &mut inbox).await?;
    let info = match &conn {
        Connection::Server(server) => HandshakeInfo {
            alpn: server.alpn_protocol().map(<[u8]>::to_vec),
            sni: server.server_name().map(str::to_owned),
            resumed: server.handshake_kind() == Some(HandshakeKind::Resumed),
        },
        Connection::Client(_) => HandshakeInfo::default(),
    };
    let (reader, writer) = split(stream, conn, inbox);
    Ok((reader, writer, info))
}

/// Open TLS to an origin as `server_name` (SNI and certificate name). A certificate that fails
/// verification is an `InvalidData` error whose message is rustls' reason.
pub async fn connect(
    mut stream: TcpStream,
    server_name: ServerName<'static>,
    config: Arc<ClientConfig>,
    timeout: Duration,
) -> io::Result<(TlsReader, TlsWriter)> {
    let client = ClientConnection::new(config, server_name).map_err(tls_error)?;
    let mut conn = Connection::Client(client);
    let mut inbox = Inbox::default();
    handshake_within(timeout, &mut stream, &mut conn, &mut inbox).await?;
    Ok(split(stream, conn, inbox))
}

/// The rustls error behind an `io::Error` from this module, if it was one (e.g. to tell an
/// origin certificate rejected, `rustls::Error::InvalidCertificate`, from a network failure).
pub fn rustls_error(error: &io::Error) -> Option<&rustls::Error> {
    error.get_ref()?.downcast_ref::<rustls::Error>()
}

/// A rustls failure as an `io::Error` (message = rustls' text, source = the `rustls::Error`).
fn tls_error(error: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

async fn handshake_within(
    timeout: Duration,
    stream: &mut TcpStream,
    conn: &mut Connection,
    inbox: &mut Inbox,
) -> io::Result<()> {
    match monoio::time::timeout(timeout, handshake(stream, conn, inbox)).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "TLS handshake timed out",
        )),
    }
}

/// Drive the handshake to completion. Ciphertext that arrives after the last handshake message
/// (a client's first request, sent together with its Finished) stays in `inbox` for the reader.
async fn handshake(
    stream: &mut TcpStream,
    conn: &mut Connection,
    inbox: &mut Inbox,
) -> io::Result<()> {
    let mut out = Vec::new();
    loop {
        while conn.is_handshaking() && !inbox.is_empty() {
            if let Err(error) = inbox.feed(conn) {
                // Best effort: tell the peer why (rustls queued an alert), then fail.
                let _ = send_pending(stream, conn, &mut out).await;
                return Err(error);
            }
        }
        send_pending(stream, conn, &mut out).await?;
        if !conn.is_handshaking() {
            return Ok(());
        }
        if inbox.fill(stream).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "peer closed the connection during the TLS handshake",
            ));
        }
    }
}

/// Move every record rustls has queued into `out` (a `Vec` never fails as a writer).
fn drain_tls(conn: &mut Connection, out: &mut Vec<u8>) -> io::Result<()> {
    while conn.wants_write() {
        conn.write_tls(out)?;
    }
    Ok(())
}

/// Write everything in `out` to `io`, keeping the vector for reuse.
async fn write_out<W: AsyncWriteRent>(io: &mut W, out: &mut Vec<u8>) -> io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    let (res, mut buf) = io.write_all(mem::take(out)).await;
    buf.clear();
    *out = buf;
    res.map(|_| ())
}

/// Queue and write whatever rustls wants to send (handshake only: the connection is owned here).
async fn send_pending(
    stream: &mut TcpStream,
    conn: &mut Connection,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    drain_tls(conn, out)?;
    write_out(stream, out).await
}

fn split(stream: TcpStream, conn: Connection, inbox: Inbox) -> (TlsReader, TlsWriter) {
    let conn = Rc::new(RefCell::new(conn));
    let (r, w) = stream.into_split();
    let reader = TlsReader {
        conn: Rc::clone(&conn),
        io: r,
        inbox,
        eof: false,
        truncated: false,
    };
    let writer = TlsWriter {
        conn,
        io: w,
        out: Vec::new(),
        broken: false,
        closed: false,
        close_timeout_ms: CLOSE_NOTIFY_MS,
    };
    (reader, writer)
}

/// Ciphertext read from the socket and not yet handed to rustls: `buf[pos..]`.
#[derive(Debug, Default)]
struct Inbox {
    buf: Vec<u8>,
    pos: usize,
}

impl Inbox {
    fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Hand buffered ciphertext to rustls (as much as it takes) and process it.
    fn feed(&mut self, conn: &mut Connection) -> io::Result<()> {
        let mut rest = &self.buf[self.pos..];
        let taken = conn.read_tls(&mut rest)?;
        // 0 with bytes left: a close_notify came first; nothing after it is ever read.
        self.pos = if taken == 0 {
            self.buf.len()
        } else {
            self.pos + taken
        };
        if self.is_empty() {
            self.buf.clear();
            self.pos = 0;
        }
        conn.process_new_packets().map_err(tls_error)?;
        Ok(())
    }

    /// Read once from `io` into the (empty) inbox. If the future is dropped, the inbox stays
    /// empty and consistent; only the bytes the pending socket read took are lost.
    async fn fill<R: AsyncReadRent>(&mut self, io: &mut R) -> io::Result<usize> {
        let mut buf = mem::take(&mut self.buf);
        buf.clear();
        self.pos = 0;
        buf.reserve(READ_CHUNK);
        let (res, buf) = io.read(buf).await;
        self.buf = buf;
        res
    }
}

/// The reading half: decrypted bytes from the peer.
pub struct TlsReader {
    conn: Rc<RefCell<Connection>>,
    io: OwnedReadHalf<TcpStream>,
    inbox: Inbox,
    /// The socket reported EOF (and rustls was told).
    eof: bool,
    /// The peer closed TCP without `close_notify`.
    truncated: bool,
}

impl TlsReader {
    /// Whether the handshake resumed an earlier session (an abbreviated handshake).
    pub fn resumed(&self) -> bool {
        self.conn.borrow().handshake_kind() == Some(HandshakeKind::Resumed)
    }

    /// True once a read returned EOF because TCP closed without a TLS `close_notify` (worth a
    /// log line: the data may have been cut short).
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Read plaintext, handing each available chunk to `copy` (which returns how much it took).
    async fn read_with(&mut self, mut copy: impl FnMut(&[u8]) -> usize) -> io::Result<usize> {
        loop {
            {
                let mut conn = self.conn.borrow_mut();
                let mut reader = conn.reader();
                match reader.fill_buf() {
                    Ok([]) => return Ok(0),
                    Ok(chunk) => {
                        let n = copy(chunk);
                        reader.consume(n);
                        return Ok(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        self.truncated = true;
                        return Ok(0);
                    }
                    Err(e) => return Err(e),
                }
                if !self.inbox.is_empty() {
                    self.inbox.feed(&mut conn)?;
                    continue;
                }
                if self.eof {
                    // rustls was told about EOF yet still wants data: cannot happen, but never
                    // spin on it.
                    self.truncated = true;
                    return Ok(0);
                }
            }
            if self.inbox.fill(&mut self.io).await? == 0 {
                self.eof = true;
                let mut conn = self.conn.borrow_mut();
                conn.read_tls(&mut &[][..])?;
                conn.process_new_packets().map_err(tls_error)?;
            }
        }
    }
}

/// Copy `src` into the writable part of `buf`; returns the count.
fn copy_to_buf<T: IoBufMut>(buf: &mut T, src: &[u8]) -> usize {
    let n = src.len().min(buf.bytes_total());
    if n > 0 {
        // SAFETY: `IoBufMut` (an unsafe trait) guarantees `write_ptr()` is valid for writes of
        // `bytes_total()` bytes while we hold `&mut buf`; `n <= bytes_total()`, `src` is a
        // separate allocation (rustls' buffer), and `set_init(n)` only declares the `n` bytes we
        // just wrote as initialized.
        unsafe {
            ptr::copy_nonoverlapping(src.as_ptr(), buf.write_ptr(), n);
            buf.set_init(n);
        }
    }
    n
}

/// Copy `src` across the iovecs of `buf`, in order; returns the count.
fn copy_to_iovecs<T: IoVecBufMut>(buf: &mut T, src: &[u8]) -> usize {
    let (iovecs, count) = (buf.write_iovec_ptr(), buf.write_iovec_len());
    let mut done = 0;
    for i in 0..count {
        if done == src.len() {
            break;
        }
        // SAFETY: `IoVecBufMut` guarantees `write_iovec_ptr()` points to `write_iovec_len()`
        // iovecs, each valid for writes of `iov_len` bytes while we hold `&mut buf`; we copy at
        // most `iov_len` bytes from `src` (rustls' buffer, a separate allocation).
        unsafe {
            let iov = *iovecs.add(i);
            let n = (src.len() - done).min(iov.iov_len);
            if n > 0 {
                ptr::copy_nonoverlapping(src.as_ptr().add(done), iov.iov_base.cast::<u8>(), n);
            }
            done += n;
        }
    }
    if done > 0 {
        // SAFETY: exactly the first `done` bytes across the iovecs were written just above.
        unsafe { buf.set_init(done) };
    }
    done
}

impl AsyncReadRent for TlsReader {
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        if buf.bytes_total() == 0 {
            return (Ok(0), buf);
        }
        let res = self.read_with(|chunk| copy_to_buf(&mut buf, chunk)).await;
        (res, buf)
    }

    async fn readv<T: IoVecBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        let (iovecs, count) = (buf.write_iovec_ptr(), buf.write_iovec_len());
        // SAFETY: see `copy_to_iovecs`; only the lengths are read here.
        let total: usize = (0..count)
            .map(|i| unsafe { (*iovecs.add(i)).iov_len })
            .sum();
        if total == 0 {
            return (Ok(0), buf);
        }
        let res = self
            .read_with(|chunk| copy_to_iovecs(&mut buf, chunk))
            .await;
        (res, buf)
    }
}

/// The writing half: plaintext in, TLS records out. The socket's only writer.
pub struct TlsWriter {
    conn: Rc<RefCell<Connection>>,
    io: OwnedWriteHalf<TcpStream>,
    /// Ciphertext waiting to be written (always empty between calls).
    out: Vec<u8>,
    /// A write future was dropped (or failed) after rustls took plaintext: the record stream on
    /// the wire is cut at an unknown point, so nothing more may be sent on it.
    broken: bool,
    /// `close_notify` was queued.
    closed: bool,
    /// The deadline `shutdown` gives `close_notify`, in milliseconds ([`CLOSE_NOTIFY_TIMEOUT`];
    /// shorter in tests). A `u32` fits beside the flags without growing the writer.
    close_timeout_ms: u32,
}

impl TlsWriter {
    fn check(&self) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "TLS stream broken by an interrupted or failed write",
            ));
        }
        Ok(())
    }

    /// Encrypt with `encrypt`, then write every queued record (the read side's first).
    async fn send_with(
        &mut self,
        encrypt: impl FnOnce(&mut rustls::Writer<'_>) -> io::Result<usize>,
    ) -> io::Result<usize> {
        self.check()?;
        let n = {
            let mut conn = self.conn.borrow_mut();
            let n = encrypt(&mut conn.writer())?;
            drain_tls(&mut conn, &mut self.out)?;
            n
        };
        self.broken = true;
        write_out(&mut self.io, &mut self.out).await?;
        self.broken = false;
        Ok(n)
    }
}

/// The initialized bytes of `buf`.
fn buf_bytes<T: IoBuf>(buf: &T) -> &[u8] {
    let len = buf.bytes_init();
    if len == 0 {
        return &[];
    }
    // SAFETY: `IoBuf` (an unsafe trait) guarantees `read_ptr()` points to `bytes_init()`
    // initialized bytes that stay valid and unchanged while `buf` is borrowed.
    unsafe { std::slice::from_raw_parts(buf.read_ptr(), len) }
}

/// The slices of `buf`, in order (empty ones included).
fn iovec_slices<T: IoVecBuf>(buf: &T) -> Vec<IoSlice<'_>> {
    let (iovecs, count) = (buf.read_iovec_ptr(), buf.read_iovec_len());
    (0..count)
        .map(|i| {
            // SAFETY: `IoVecBuf` (an unsafe trait) guarantees `read_iovec_ptr()` points to
            // `read_iovec_len()` iovecs, each describing `iov_len` initialized bytes, all valid
            // while `buf` is borrowed. Zero-length iovecs may have a null base, so skip them.
            unsafe {
                let iov = *iovecs.add(i);
                if iov.iov_len == 0 {
                    IoSlice::new(&[])
                } else {
                    IoSlice::new(std::slice::from_raw_parts(
                        iov.iov_base.cast::<u8>(),
                        iov.iov_len,
                    ))
                }
            }
        })
        .collect()
}

impl AsyncWriteRent for TlsWriter {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        if buf.bytes_init() == 0 {
            return (Ok(0), buf);
        }
        let res = self.send_with(|w| w.write(buf_bytes(&buf))).await;
        (res, buf)
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let res = {
            let slices = iovec_slices(&buf);
            if slices.iter().all(|s| s.is_empty()) {
                Ok(0)
            } else {
                // rustls packs all slices into records (up to its buffer limit), not only the first.
                self.send_with(|w| w.write_vectored(&slices)).await
            }
        };
        (res, buf)
    }

    /// Write records the read side left queued. The socket itself needs no flush.
    async fn flush(&mut self) -> io::Result<()> {
        self.send_with(|_| Ok(0)).await.map(|_| ())
    }

    /// Send `close_notify` (unless the stream is broken) within [`CLOSE_NOTIFY_TIMEOUT`], then
    /// shut down the socket's write side in any case. A `close_notify` the peer did not take in
    /// time leaves the writer broken and is reported as `TimedOut`.
    async fn shutdown(&mut self) -> io::Result<()> {
        let mut sent = Ok(());
        if !self.broken && !self.closed {
            self.closed = true;
            self.conn.borrow_mut().send_close_notify();
            let limit = Duration::from_millis(u64::from(self.close_timeout_ms));
            sent = match monoio::time::timeout(limit, self.send_with(|_| Ok(0))).await {
                Ok(res) => res.map(|_| ()),
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "peer did not take the TLS close_notify in time",
                )),
            };
        }
        let down = self.io.shutdown().await;
        sent.and(down)
    }
}
