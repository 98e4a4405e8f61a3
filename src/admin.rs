//! The admin listener: a small HTTP/1.1 server that runs on its own threads, off the workers,
//! so a scrape never delays traffic. It owns the accept loop (stoppable, bounded to
//! [`MAX_CONNECTIONS`] connection threads), request-head parsing with size and time limits,
//! bearer-token checks, and the three endpoints: `/healthz` (the drain flag), `/metrics` (the
//! [`Registry`] rendered as OpenMetrics text) and `/events` (the [`Hub`]'s live JSON lines as
//! Server-Sent Events, framed by the `sse` submodule). Every response but the event stream closes the
//! connection; blocking std I/O is used throughout, each read and write with a timeout.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

use crate::observe::hub::{Hub, SubscribeError};
use crate::observe::metrics::Registry;

mod sse;

/// Largest request head accepted; a longer one is answered `431`.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// Most header lines accepted; more is answered `431`.
pub const MAX_HEADERS: usize = 32;
/// Time a client has to send its whole request head; then `408`.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a single write may block (a client that stops reading is dropped after this).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connection threads alive at once; a connection beyond this gets `503` and is closed.
pub const MAX_CONNECTIONS: usize = 32;
/// Event streams open at once, below [`MAX_CONNECTIONS`] so long-lived streams can never take
/// every slot from `/healthz` and `/metrics`; beyond it `/events` answers `503`.
pub const MAX_EVENT_STREAMS: usize = MAX_CONNECTIONS / 2;
/// Silence on an event stream after which a `: keep-alive` comment is sent.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);

/// How often blocked reads and event waits look at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(200);
/// The accept loop blocks in `accept` with a receive timeout of [`STOP_POLL`] (Linux applies
/// `SO_RCVTIMEO` to `accept`), so a connection is taken at once and the stop flag is still
/// seen. Should `accept` ever return "would block" sooner than [`ACCEPT_MIN_WAIT`] (a kernel
/// ignoring the timeout), the loop sleeps [`ACCEPT_IDLE`] instead of spinning.
const ACCEPT_MIN_WAIT: Duration = Duration::from_millis(5);
const ACCEPT_IDLE: Duration = Duration::from_millis(50);
/// Back-off after a failed accept (e.g. out of file descriptors), doubling up to the max.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// After a response: how long and how much unread request data is drained before closing, so
/// the close is a FIN the client can read the response before, not a reset.
const LINGER_TIMEOUT: Duration = Duration::from_secs(1);
const LINGER_MAX_BYTES: usize = 64 * 1024;

const REALM_HEADER: &str = "Bearer realm=\"lynxio-admin\"";
const TEXT: &str = "text/plain; charset=utf-8";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the admin endpoints serve.
pub struct AdminState {
    pub registry: Registry,
    pub hub: Arc<Hub>,
    /// Bearer token every request must carry, if set.
    pub token: Option<String>,
    /// `/healthz` answers 200 while true, 503 once draining.
    pub healthy: Arc<AtomicBool>,
}

/// The running admin listener. [`Admin::stop`] (or drop) stops it.
pub struct Admin {
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Admin {
    /// Stops accepting, ends open event streams and joins every admin thread. Returns within
    /// about 0.2 s, or up to [`WRITE_TIMEOUT`] when a connection is blocked writing to a client
    /// that does not read.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(accept) = self.accept.take()
            && accept.join().is_err()
        {
            tracing::error!("admin accept thread panicked");
        }
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Starts serving on `listener` (already bound by the caller) from a new thread.
pub fn start(listener: TcpListener, state: AdminState) -> io::Result<Admin> {
    let AdminState {
        registry,
        hub,
        token,
        healthy,
    } = state;
    spawn(listener, registry, hub, token, healthy)
}

/// Next event line within the timeout; `Disconnected` ends the stream.
type NextEvent<'a> = Box<dyn FnMut(Duration) -> Result<Arc<str>, RecvTimeoutError> + 'a>;

/// Where `/events` gets its lines: the [`Hub`] in production, a channel in tests.
trait EventSource: Send + Sync + 'static {
    fn open(&self, host: Option<&str>) -> Result<NextEvent<'_>, SubscribeError>;
}

impl EventSource for Hub {
    fn open(&self, host: Option<&str>) -> Result<NextEvent<'_>, SubscribeError> {
        let sub = self.subscribe(host)?;
        Ok(Box::new(move |wait| sub.recv_timeout(wait)))
    }
}

/// Shared by the accept thread and every connection thread.
struct Shared {
    registry: Registry,
    events: Arc<dyn EventSource>,
    token: Option<String>,
    healthy: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    /// Event streams open now (see [`MAX_EVENT_STREAMS`]).
    streams: AtomicUsize,
}

fn spawn(
    listener: TcpListener,
    registry: Registry,
    events: Arc<dyn EventSource>,
    token: Option<String>,
    healthy: Arc<AtomicBool>,
) -> io::Result<Admin> {
    listener.set_nonblocking(false)?;
    socket2::SockRef::from(&listener).set_read_timeout(Some(STOP_POLL))?;
    let stop = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Shared {
        registry,
        events,
        token,
        healthy,
        stop: stop.clone(),
        streams: AtomicUsize::new(0),
    });
    let accept = thread::Builder::new()
        .name("lynxio-admin".into())
        .spawn(move || accept_loop(&listener, &shared))?;
    Ok(Admin {
        stop,
        accept: Some(accept),
    })
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    let mut conns: Vec<JoinHandle<()>> = Vec::with_capacity(MAX_CONNECTIONS);
    let mut backoff = ACCEPT_BACKOFF_MIN;
    while !shared.stop.load(Ordering::Acquire) {
        let waited = Instant::now();
        match listener.accept() {
            Ok((stream, peer)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                reap(&mut conns);
                if conns.len() >= MAX_CONNECTIONS {
                    refuse(stream, peer);
                    continue;
                }
                let conn_shared = Arc::clone(shared);
                let spawned = thread::Builder::new()
                    .name("lynxio-admin-conn".into())
                    .spawn(move || serve(stream, peer, &conn_shared));
                match spawned {
                    Ok(handle) => conns.push(handle),
                    Err(e) => {
                        tracing::warn!(%peer, error = %e, "cannot start an admin connection thread")
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if waited.elapsed() < ACCEPT_MIN_WAIT {
                    thread::sleep(ACCEPT_IDLE);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                ) => {}
            Err(e) => {
                tracing::warn!(error = %e, backoff = ?backoff, "admin accept failed");
                thread::sleep(backoff);
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
            }
        }
    }
    for conn in conns {
        if conn.join().is_err() {
            tracing::warn!("admin connection thread panicked");
        }
    }
}

/// Joins finished connection threads so `conns` counts only live ones.
fn reap(conns: &mut Vec<JoinHandle<()>>) {
    let mut i = 0;
    while i < conns.len() {
        if conns[i].is_finished() {
            if conns.swap_remove(i).join().is_err() {
                tracing::warn!("admin connection thread panicked");
            }
        } else {
            i += 1;
        }
    }
}

/// Over the connection limit: a `503` written from the accept thread, without reading.
fn refuse(mut stream: TcpStream, peer: SocketAddr) {
    tracing::debug!(%peer, status = 503, "admin connection limit reached");
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(STOP_POLL));
    let reply = Reply::text(503, "too many admin connections\n");
    let _ = reply.write(&mut stream, false);
    let _ = stream.shutdown(Shutdown::Write);
}

/// One connection: one request, one response (or an event stream), then close.
fn serve(mut stream: TcpStream, peer: SocketAddr, shared: &Shared) {
    // Set what we rely on; every read below sets its own timeout (an accepted socket inherits
    // the listener's receive timeout).
    if let Err(e) = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_write_timeout(Some(WRITE_TIMEOUT)))
    {
        tracing::debug!(%peer, error = %e, "admin connection setup failed");
        return;
    }
    let _ = stream.set_nodelay(true);

    let mut buf = vec![0u8; MAX_HEAD_BYTES];
    let head = match read_head(&mut stream, &mut buf, &shared.stop) {
        Ok(len) => &buf[..len],
        Err(HeadError::Closed | HeadError::Stopped) => return,
        Err(HeadError::Io(e)) => {
            tracing::debug!(%peer, error = %e, "admin connection failed");
            return;
        }
        Err(e) => {
            let reply = e.reply();
            tracing::debug!(%peer, status = reply.status, "admin request");
            finish(&mut stream, &reply, false);
            return;
        }
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    if !matches!(req.parse(head), Ok(httparse::Status::Complete(_))) {
        // read_head already parsed it; treat a change of mind as malformed.
        finish(&mut stream, &Reply::text(400, "bad request\n"), false);
        return;
    }
    let method = req.method.unwrap_or("");
    let target = req.path.unwrap_or("");
    let path = target.split_once('?').map_or(target, |(p, _)| p);

    match route(&req, shared) {
        Action::Reply(reply, head_only) => {
            tracing::debug!(%peer, method, path, status = reply.status, "admin request");
            finish(&mut stream, &reply, head_only);
        }
        Action::Events(host) => events(&mut stream, peer, shared, host.as_deref()),
    }
}

/// What a parsed request gets.
enum Action {
    /// A complete response; `true` for HEAD (headers only).
    Reply(Reply, bool),
    /// An event stream filtered by this host glob.
    Events(Option<String>),
}

fn route(req: &httparse::Request<'_, '_>, shared: &Shared) -> Action {
    let method = req.method.unwrap_or("");
    let target = req.path.unwrap_or("");
    if !target.starts_with('/') {
        return Action::Reply(Reply::text(400, "bad request target\n"), false);
    }
    if let Some(token) = &shared.token
        && !authorized(req.headers, token)
    {
        let reply = Reply::text(401, "unauthorized\n").header("WWW-Authenticate", REALM_HEADER);
        return Action::Reply(reply, method == "HEAD");
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let allow = match path {
        "/healthz" | "/metrics" => "GET, HEAD",
        "/events" => "GET",
        _ => return Action::Reply(Reply::text(404, "not found\n"), method == "HEAD"),
    };
    let head_only = match method {
        "GET" => false,
        "HEAD" if allow.contains("HEAD") => true,
        _ => {
            let reply = Reply::text(405, "method not allowed\n").header("Allow", allow);
            return Action::Reply(reply, method == "HEAD");
        }
    };
    match path {
        "/healthz" if shared.healthy.load(Ordering::Acquire) => {
            Action::Reply(Reply::text(200, "ok\n"), head_only)
        }
        "/healthz" => Action::Reply(Reply::text(503, "draining\n"), head_only),
        "/metrics" => {
            let body = shared.registry.render().into_bytes();
            Action::Reply(Reply::new(200, OPENMETRICS, body), head_only)
        }
        _ => match host_filter(query) {
            Ok(host) => Action::Events(host),
            Err(why) => Action::Reply(Reply::text(400, why), false),
        },
    }
}

/// `GET /events`: subscribe, send the stream head, then stream until the end.
fn events(stream: &mut TcpStream, peer: SocketAddr, shared: &Shared, host: Option<&str>) {
    let Some(_slot) = StreamSlot::take(&shared.streams) else {
        tracing::debug!(%peer, method = "GET", path = "/events", status = 503, "admin request");
        finish(stream, &Reply::text(503, "too many event streams\n"), false);
        return;
    };
    let mut next = match shared.events.open(host) {
        Ok(next) => next,
        Err(e) => {
            let status = match e {
                SubscribeError::TooMany => 503,
            };
            tracing::debug!(%peer, method = "GET", path = "/events", status, error = %e, "admin request");
            finish(
                stream,
                &Reply::text(status, "too many live subscribers\n"),
                false,
            );
            return;
        }
    };
    let (events, end) = match stream.write_all(sse::HEAD) {
        Ok(()) => sse::stream(stream, &mut next, &shared.stop, sse::Timing::DEFAULT),
        Err(e) => (0, sse::End::ClientGone(e)),
    };
    drop(next);
    tracing::debug!(%peer, method = "GET", path = "/events", host, status = 200, events, end = %end, "admin request");
}

/// One of the [`MAX_EVENT_STREAMS`] slots, given back on drop.
struct StreamSlot<'a>(&'a AtomicUsize);

impl<'a> StreamSlot<'a> {
    fn take(open: &'a AtomicUsize) -> Option<StreamSlot<'a>> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_EVENT_STREAMS).then_some(n + 1)
        })
        .ok()
        .map(|_| StreamSlot(open))
    }
}

impl Drop for StreamSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Writes `reply`, then closes politely (see [`LINGER_TIMEOUT`]).
fn finish(stream: &mut TcpStream, reply: &Reply, head_only: bool) {
    if reply.write(stream, head_only).is_err() {
        return;
    }
    if stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER_TIMEOUT;
    let mut scratch = [0u8; 2048];
    let mut drained = 0;
    while drained < LINGER_MAX_BYTES {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match stream.read(&mut scratch) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

/// Why no request head could be read.
#[derive(Debug)]
enum HeadError {
    /// The client closed before sending anything.
    Closed,
    /// The admin listener is stopping.
    Stopped,
    /// The client closed in the middle of the head.
    Truncated,
    TimedOut,
    TooLarge,
    Malformed,
    Io(io::Error),
}

impl HeadError {
    fn reply(&self) -> Reply {
        match self {
            HeadError::TimedOut => Reply::text(408, "request timeout\n"),
            HeadError::TooLarge => Reply::text(431, "request header too large\n"),
            HeadError::Truncated | HeadError::Malformed => Reply::text(400, "bad request\n"),
            HeadError::Closed | HeadError::Stopped | HeadError::Io(_) => {
                Reply::text(500, "internal error\n")
            }
        }
    }
}

/// Reads into `buf` (capacity [`MAX_HEAD_BYTES`]) until it holds a complete request head;
/// returns the number of bytes read. Waits at most [`HEAD_TIMEOUT`] in total.
fn read_head(
    stream: &mut TcpStream,
    buf: &mut [u8],
    stop: &AtomicBool,
) -> Result<usize, HeadError> {
    let deadline = Instant::now() + HEAD_TIMEOUT;
    let mut filled = 0;
    loop {
        if stop.load(Ordering::Acquire) {
            return Err(HeadError::Stopped);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HeadError::TimedOut);
        }
        stream
            .set_read_timeout(Some(left.min(STOP_POLL)))
            .map_err(HeadError::Io)?;
        match stream.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Err(HeadError::Closed),
            Ok(0) => return Err(HeadError::Truncated),
            Ok(n) => filled += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => return Err(HeadError::Io(e)),
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match httparse::Request::new(&mut headers).parse(&buf[..filled]) {
            Ok(httparse::Status::Complete(_)) => return Ok(filled),
            Ok(httparse::Status::Partial) if filled == buf.len() => {
                return Err(HeadError::TooLarge);
            }
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
            Err(_) => return Err(HeadError::Malformed),
        }
    }
}

/// Whether the request carries exactly one `Authorization: Bearer <token>`. The token bytes
/// are compared in constant time (only a length mismatch returns early).
fn authorized(headers: &[httparse::Header<'_>], token: &str) -> bool {
    let mut found = None;
    for header in headers {
        if header.name.eq_ignore_ascii_case("authorization") {
            if found.is_some() {
                return false;
            }
            found = Some(header.value);
        }
    }
    found
        .and_then(bearer)
        .is_some_and(|presented| bool::from(presented.ct_eq(token.as_bytes())))
}

/// The credentials of a `Bearer` authorization value (scheme case-insensitive).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let value = value.trim_ascii();
    let (scheme, rest) = value.split_at_checked(b"bearer".len())?;
    if !scheme.eq_ignore_ascii_case(b"bearer") || !rest.starts_with(b" ") {
        return None;
    }
    Some(rest.trim_ascii_start())
}

/// The `host` parameter of the `/events` query, percent-decoded. Other parameters are ignored;
/// `+` is taken literally.
fn host_filter(query: &str) -> Result<Option<String>, &'static str> {
    let mut host = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != "host" {
            continue;
        }
        if host.is_some() {
            return Err("host given more than once\n");
        }
        let decoded = percent_decode(value).ok_or("host is not valid percent-encoded UTF-8\n")?;
        if decoded.is_empty() {
            return Err("host is empty\n");
        }
        host = Some(decoded);
    }
    Ok(host)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = hex(*bytes.get(i + 1)?)?;
            let lo = hex(*bytes.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A complete, non-streaming response, always with `Connection: close`.
#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
}

impl Reply {
    fn new(status: u16, content_type: &'static str, body: Vec<u8>) -> Reply {
        Reply {
            status,
            content_type,
            headers: Vec::new(),
            body,
        }
    }

    fn text(status: u16, body: &str) -> Reply {
        Reply::new(status, TEXT, body.as_bytes().to_vec())
    }

    fn header(mut self, name: &'static str, value: &'static str) -> Reply {
        self.headers.push((name, value));
        self
    }

    /// Head and (unless `head_only`) body in one write.
    fn write(&self, out: &mut impl Write, head_only: bool) -> io::Result<()> {
        let mut msg = Vec::with_capacity(256 + self.body.len());
        write!(
            msg,
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        )?;
        for (name, value) in &self.headers {
            write!(msg, "{name}: {value}\r\n")?;
        }
        msg.extend_from_slice(b"\r\n");
        if !head_only {
            msg.extend_from_slice(&self.body);
        }
        out.write_all(&msg)?;
        out.flush()
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

#[cfg(test)]
mod tests;
