//! Shared harness for the black-box integration tests: start the real `lynxio` binary on an
//! ephemeral loopback port (one driver per test), run origin servers on std threads inside the
//! test, and speak raw wire bytes to both. Every read has a timeout and every loop a bound, so a
//! proxy bug fails a test instead of hanging CI.

#![allow(dead_code)] // each test file uses a different part of the harness

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Upper bound for any single socket read in the tests.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound for the proxy to print its `listening on` line.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Largest response or request the harness will read (bounds every read loop).
pub const MAX_MESSAGE: usize = 256 * 1024 * 1024;

/// Generates one `#[test]` per driver for a test function taking the driver name:
/// `drivers!(keep_alive);` gives `keep_alive::uring` and `keep_alive::epoll`.
#[macro_export]
macro_rules! drivers {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn uring() {
                super::$name("uring")
            }
            #[test]
            fn epoll() {
                super::$name("epoll")
            }
        }
    )*};
}

/// A running `lynxio` process; killed on drop.
pub struct Proxy {
    child: Child,
    pub addr: SocketAddr,
    /// The admin listener's address, when started with `--admin`.
    pub admin: Option<SocketAddr>,
    stderr: Option<thread::JoinHandle<String>>,
    /// Everything logged so far (filled line by line as the proxy writes).
    log: Arc<std::sync::Mutex<String>>,
}

impl Proxy {
    /// Starts lynxio with one worker on `driver` plus `extra` flags.
    pub fn start(driver: &str, extra: &[&str]) -> Proxy {
        let mut args = vec![
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--driver",
            driver,
            "--log",
            "debug",
        ];
        args.extend_from_slice(extra);
        Proxy::start_with_args(&args)
    }

    /// Starts lynxio with exactly these arguments (must include a `--listen` on port 0).
    pub fn start_with_args(args: &[&str]) -> Proxy {
        Proxy::start_with_env(args, &[])
    }

    /// [`Proxy::start_with_args`] with extra environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Proxy {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lynxio"))
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn lynxio");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(std::sync::Mutex::new(String::new()));
        let sink = log.clone();
        let stderr = Some(thread::spawn(move || drain(stderr, &sink)));
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
                panic!("lynxio did not report listening; stderr:\n{log}");
            }
        };
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split([' ', ',']).next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line: {line}"));
        let admin = line
            .split("admin: ")
            .nth(1)
            .and_then(|rest| rest.split([')', ',']).next())
            .and_then(|a| a.parse().ok());
        Proxy {
            child,
            addr,
            admin,
            stderr,
            log,
        }
    }

    /// Everything the proxy has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Waits up to `limit` for a logged line satisfying `pred`; returns it.
    pub fn wait_for_line(&self, limit: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(line) = self.log().lines().find(|l| pred(l)) {
                return Some(line.to_owned());
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn connect(&self) -> TcpStream {
        connect(self.addr)
    }

    /// Sends a signal (libc number) to the proxy process.
    pub fn signal(&self, sig: i32) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} failed");
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops the proxy and returns everything it logged to stderr.
    pub fn stop_and_log(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking()
            && let Some(h) = self.stderr.take()
            && let Ok(log) = h.join()
        {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- lynxio stderr (last lines) ---");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

fn drain(r: ChildStderr, sink: &std::sync::Mutex<String>) -> String {
    let mut lines = BufReader::new(r);
    let mut line = Vec::new();
    loop {
        line.clear();
        match lines.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if let Ok(mut log) = sink.lock() {
                    log.push_str(&String::from_utf8_lossy(&line));
                }
            }
        }
    }
    sink.lock().map(|l| l.clone()).unwrap_or_default()
}

/// Connects with read/write timeouts set.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// A test origin: accepts on 127.0.0.1:0 and runs `handler` on a thread per connection.
pub struct Origin {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Origin {
    pub fn start<F>(handler: F) -> Origin
    where
        F: Fn(TcpStream) + Send + Sync + 'static,
    {
        Origin::start_on("127.0.0.1:0", handler).expect("bind origin on 127.0.0.1")
    }

    /// An origin that answers every request on a connection with `respond(&request)`, keeping
    /// the connection open while the request allows it.
    pub fn http<F>(respond: F) -> Origin
    where
        F: Fn(&Message) -> Vec<u8> + Send + Sync + 'static,
    {
        Origin::start(move |mut s| {
            let mut r = Reader::new(s.try_clone().expect("clone"));
            for _ in 0..10_000 {
                let Some(req) = r.request() else { return };
                let resp = respond(&req);
                if s.write_all(&resp).is_err() {
                    return;
                }
                let close = req
                    .header("connection")
                    .is_some_and(|v| v.eq_ignore_ascii_case("close"))
                    || req.version == 0;
                if close {
                    let _ = s.shutdown(Shutdown::Both);
                    return;
                }
            }
        })
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// `http://127.0.0.1:PORT` + path.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// A parsed HTTP/1 message (request or response) as the harness saw it on the wire.
#[derive(Debug, Clone, Default)]
pub struct Message {
    /// Request method (empty for responses).
    pub method: String,
    /// Request target, byte-exact (empty for responses).
    pub target: String,
    /// Response status (0 for requests).
    pub status: u16,
    /// Minor version: 0 or 1.
    pub version: u8,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Trailer fields of a chunked body.
    pub trailers: Vec<(String, String)>,
    /// Whether the body was chunked on the wire.
    pub chunked: bool,
    /// The head bytes exactly as received.
    pub raw_head: Vec<u8>,
}

impl Message {
    /// First value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Buffered reader of HTTP/1 messages over a stream, for both test clients and test origins.
pub struct Reader<S> {
    s: S,
    buf: Vec<u8>,
}

enum HeadKind {
    Request,
    Response,
}

impl<S: Read> Reader<S> {
    pub fn new(s: S) -> Self {
        Reader { s, buf: Vec::new() }
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.s
    }

    /// Bytes read but not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Reads more bytes; false on EOF or error (including timeout).
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 64 * 1024];
        match self.s.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => true,
            Err(_) => false,
        }
    }

    /// Reads everything until EOF (or a timeout), returning it with whatever was buffered.
    pub fn read_to_close(&mut self) -> Vec<u8> {
        while self.buf.len() < MAX_MESSAGE && self.fill() {}
        std::mem::take(&mut self.buf)
    }

    /// Whether the peer closed the connection (EOF) within the read timeout, with nothing
    /// more buffered.
    pub fn closed(&mut self) -> bool {
        self.buf.is_empty() && !self.fill()
    }

    /// Reads a request (head and body); `None` on clean EOF before any byte or bad bytes.
    pub fn request(&mut self) -> Option<Message> {
        let mut m = self.head(HeadKind::Request)?;
        self.body(&mut m, false)?;
        Some(m)
    }

    /// Reads a response to a request with method `method`.
    pub fn response(&mut self, method: &str) -> Option<Message> {
        let mut m = self.head(HeadKind::Response)?;
        let no_body = method == "HEAD"
            || (100..200).contains(&m.status)
            || m.status == 204
            || m.status == 304;
        if no_body {
            return Some(m);
        }
        self.body(&mut m, true)?;
        Some(m)
    }

    /// Reads the body `m`'s head announces: chunked, Content-Length, else (responses only)
    /// everything until the peer closes.
    fn body(&mut self, m: &mut Message, until_close: bool) -> Option<()> {
        let len: Option<usize> = m
            .header("content-length")
            .and_then(|v| v.trim().parse().ok());
        if m.header("transfer-encoding").is_some() {
            self.chunked(m)?;
        } else if let Some(n) = len {
            m.body = self.exact(n)?;
        } else if until_close {
            m.body = self.read_to_close();
        }
        Some(())
    }

    /// Reads a final response, skipping (and returning) any 1xx interim responses before it.
    pub fn final_response(&mut self, method: &str) -> Option<(Vec<Message>, Message)> {
        let mut interim = Vec::new();
        for _ in 0..16 {
            let m = self.response(method)?;
            if (100..200).contains(&m.status) && m.status != 101 {
                interim.push(m);
            } else {
                return Some((interim, m));
            }
        }
        None
    }

    fn head(&mut self, kind: HeadKind) -> Option<Message> {
        for _ in 0..100_000 {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let raw: Vec<u8> = self.buf.drain(..end + 4).collect();
                return parse_head(&raw, kind);
            }
            if self.buf.len() > 1024 * 1024 || !self.fill() {
                return None;
            }
        }
        None
    }

    fn exact(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buf.len() < n {
            if n > MAX_MESSAGE || !self.fill() {
                return None;
            }
        }
        Some(self.buf.drain(..n).collect())
    }

    fn line(&mut self) -> Option<Vec<u8>> {
        for _ in 0..100_000 {
            if let Some(end) = find(&self.buf, b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..end + 2).collect();
                return Some(line[..end].to_vec());
            }
            if self.buf.len() > 64 * 1024 || !self.fill() {
                return None;
            }
        }
        None
    }

    fn chunked(&mut self, m: &mut Message) -> Option<()> {
        m.chunked = true;
        for _ in 0..10_000_000 {
            let line = self.line()?;
            let size_hex = line.split(|&b| b == b';').next()?;
            let size =
                usize::from_str_radix(std::str::from_utf8(size_hex).ok()?.trim(), 16).ok()?;
            if size == 0 {
                for _ in 0..1000 {
                    let t = self.line()?;
                    if t.is_empty() {
                        return Some(());
                    }
                    let t = String::from_utf8_lossy(&t).into_owned();
                    let (n, v) = t.split_once(':')?;
                    m.trailers.push((n.trim().to_owned(), v.trim().to_owned()));
                }
                return None;
            }
            let data = self.exact(size)?;
            m.body.extend_from_slice(&data);
            if self.line()? != b"" {
                return None;
            }
        }
        None
    }
}

fn parse_head(raw: &[u8], kind: HeadKind) -> Option<Message> {
    let mut headers = [httparse::EMPTY_HEADER; 256];
    let mut m = Message {
        raw_head: raw.to_vec(),
        ..Message::default()
    };
    let fields: &[httparse::Header] = match kind {
        HeadKind::Request => {
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(raw) {
                Ok(httparse::Status::Complete(_)) => {}
                _ => return None,
            }
            m.method = req.method?.to_owned();
            m.target = req.path?.to_owned();
            m.version = req.version?;
            let n = req.headers.len();
            return Some(fill_headers(m, &headers[..n]));
        }
        HeadKind::Response => {
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(raw) {
                Ok(httparse::Status::Complete(_)) => {}
                _ => return None,
            }
            m.status = resp.code?;
            m.version = resp.version?;
            let n = resp.headers.len();
            &headers[..n]
        }
    };
    let fields = fields.to_vec();
    Some(fill_headers(m, &fields))
}

fn fill_headers(mut m: Message, fields: &[httparse::Header]) -> Message {
    for h in fields {
        m.headers.push((
            h.name.to_owned(),
            String::from_utf8_lossy(h.value).into_owned(),
        ));
    }
    m
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Sends `bytes` to the proxy on a fresh connection, half-closes, and returns everything the
/// proxy wrote back until it closed (or the read timeout).
pub fn exchange(proxy: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = connect(proxy);
    s.write_all(bytes).expect("write");
    let _ = s.shutdown(Shutdown::Write);
    Reader::new(s).read_to_close()
}

/// The status code at the start of a raw response, or 0.
pub fn status_of(raw: &[u8]) -> u16 {
    let s = String::from_utf8_lossy(raw);
    s.strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// A complete `200 OK` response with a Content-Length body.
pub fn ok(body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    r.extend_from_slice(body);
    r
}

/// Sends one request through the proxy on an existing connection and reads the final response.
pub fn roundtrip(s: &mut Reader<TcpStream>, method: &str, request: &[u8]) -> Message {
    s.get_mut().write_all(request).expect("write request");
    s.final_response(method).expect("response").1
}

/// Waits until `cond` holds, polling every 10 ms, for at most `limit`.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    cond()
}

/// An [`Origin::http`] that also reports every request it reads, in order, on the returned
/// channel (receive them with [`next_request`]).
pub fn recording_origin<F>(respond: F) -> (Origin, mpsc::Receiver<Message>)
where
    F: Fn(&Message) -> Vec<u8> + Send + Sync + 'static,
{
    let (tx, rx) = mpsc::channel();
    let origin = Origin::http(move |req| {
        let _ = tx.send(req.clone());
        respond(req)
    });
    (origin, rx)
}

/// The next request a [`recording_origin`] received (panics after [`IO_TIMEOUT`]).
pub fn next_request(rx: &mpsc::Receiver<Message>) -> Message {
    rx.recv_timeout(IO_TIMEOUT)
        .expect("the origin did not receive the request")
}

/// `len` deterministic pseudo-random bytes (xorshift64*), different for each `seed`.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Lowercased names of a message's header fields, in wire order.
pub fn header_names(m: &Message) -> Vec<String> {
    m.headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect()
}

// ---- Helpers for the error-path suites (errors.rs, smuggling.rs, robustness.rs) ----

/// What the proxy answered on one connection: every byte until it closed (or `wait` passed),
/// and whether it closed (EOF or reset) rather than going quiet.
pub struct Reply {
    pub raw: Vec<u8>,
    pub closed: bool,
    pub elapsed: Duration,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }
}

/// Sends `bytes` on a fresh connection WITHOUT half-closing, then reads until the proxy closes
/// or `wait` passes. Write errors are ignored (the proxy may close early on a bad head).
pub fn send_raw(proxy: SocketAddr, bytes: &[u8], wait: Duration) -> Reply {
    let start = Instant::now();
    let mut s = connect(proxy);
    let _ = s.write_all(bytes);
    read_reply(s, start, wait)
}

/// Reads from `s` until EOF/reset (closed) or until `wait` after `start` passes (not closed).
pub fn read_reply(mut s: TcpStream, start: Instant, wait: Duration) -> Reply {
    let deadline = start + wait;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let closed = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || raw.len() > MAX_MESSAGE {
            break false;
        }
        let _ = s.set_read_timeout(Some(left.max(Duration::from_millis(1))));
        match s.read(&mut chunk) {
            Ok(0) => break true,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break false;
            }
            Err(_) => break true, // reset: closed too
        }
    };
    Reply {
        raw,
        closed,
        elapsed: start.elapsed(),
    }
}

/// Asserts `reply` is exactly one proxy-generated error response with `status` (see
/// [`check_error_reply`]) and returns the parsed response.
pub fn assert_error_reply(reply: &Reply, status: u16, what: &str) -> Message {
    check_error_reply(reply, status).unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Rust names of lynxio's error types and kinds: an error body must say what was wrong in words,
/// never show one of these.
pub const INTERNAL_ERROR_NAMES: &[&str] = &[
    "HeadTooLarge",
    "TooManyHeaders",
    "Malformed",
    "BadFraming",
    "BadChunk",
    "BadTarget",
    "UnsupportedVersion",
    "BadRequest",
    "BadResponse",
    "NotProxyRequest",
    "HttpsWithoutConnect",
    "ConnectInTunnel",
    "ExpectationFailed",
    "ClientHeadTimeout",
    "ResponseTimeout",
    "ConnectTimeout",
    "UpstreamTls",
    "UpstreamIo",
    "ParseError",
    "CertificateError",
    "UnknownIssuer",
    "NotValidForName",
    "OtherError",
    "CaUsedAsEndEntity",
];

/// The first of [`INTERNAL_ERROR_NAMES`] that `body` contains, if any.
pub fn internal_name_in(body: &str) -> Option<&'static str> {
    INTERNAL_ERROR_NAMES
        .iter()
        .copied()
        .find(|name| body.contains(name))
}

/// Whether `reply` is exactly one proxy-generated error response with `status`: a short,
/// non-empty text body framed by a matching Content-Length, `Connection: close`, nothing after
/// it, and the connection closed. `Err` says what is wrong.
pub fn check_error_reply(reply: &Reply, status: u16) -> Result<Message, String> {
    let mut r = Reader::new(&reply.raw[..]);
    let Some(m) = r.response("GET") else {
        return Err(format!(
            "expected a {status} response, got {:?} (closed: {})",
            reply.text(),
            reply.closed
        ));
    };
    let head = String::from_utf8_lossy(&m.raw_head).into_owned();
    if m.status != status {
        return Err(format!(
            "expected {status}, got {}: {:?}",
            m.status,
            reply.text()
        ));
    }
    let cl: Option<usize> = m
        .header("content-length")
        .and_then(|v| v.trim().parse().ok());
    if cl != Some(m.body.len()) {
        return Err(format!("Content-Length missing or wrong: {head:?}"));
    }
    if m.body.is_empty() || m.body.len() >= 1024 {
        return Err(format!("body should be short text, got {:?}", m.body_str()));
    }
    if let Some(name) = internal_name_in(&m.body_str()) {
        return Err(format!(
            "the body names an internal type ({name}) instead of saying what was wrong: {:?}",
            m.body_str()
        ));
    }
    if !m
        .header("content-type")
        .is_some_and(|v| v.starts_with("text/plain"))
    {
        return Err(format!("expected a text/plain body: {head:?}"));
    }
    if !m
        .header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    {
        return Err(format!(
            "error response without Connection: close: {head:?}"
        ));
    }
    if !r.buffered().is_empty() {
        return Err(format!(
            "bytes after the error response: {:?}",
            String::from_utf8_lossy(r.buffered())
        ));
    }
    if !reply.closed {
        return Err("connection not closed after the error".to_owned());
    }
    Ok(m)
}

/// A test origin that records every byte it receives (all connections, appended) and never
/// answers; it reads until the proxy closes the connection.
pub fn byte_sink_origin() -> (Origin, Arc<std::sync::Mutex<Vec<u8>>>) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let origin = Origin::start(move |mut s| {
        let mut chunk = [0u8; 16 * 1024];
        for _ in 0..100_000 {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => sink
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&chunk[..n]),
            }
        }
    });
    (origin, seen)
}

/// One plain GET through `proxy` to `origin` (an `Origin::http` answering 200) on a fresh
/// connection must succeed: the proxy is still serving.
pub fn assert_still_serving(proxy: &Proxy, origin: &Origin, what: &str) {
    let mut c = Reader::new(proxy.connect());
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\n\r\n",
        origin.url("/still-alive"),
        origin.addr
    );
    c.get_mut().write_all(req.as_bytes()).expect("write");
    let resp = c.final_response("GET").map(|(_, m)| m);
    assert_eq!(
        resp.as_ref().map(|m| m.status),
        Some(200),
        "{what}: the proxy no longer serves a normal request"
    );
}

/// The proxy process is still running, then stop it: its log must show no panic.
pub fn assert_no_panic(mut proxy: Proxy) {
    assert!(proxy.is_running(), "the proxy process exited");
    let log = proxy.stop_and_log();
    assert!(
        !log.contains("panicked"),
        "the proxy panicked:\n{}",
        log.lines()
            .filter(|l| l.contains("panicked"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

impl<S: Read> Reader<S> {
    /// The stream and the bytes read from it but not consumed.
    pub fn into_parts(self) -> (S, Vec<u8>) {
        (self.s, self.buf)
    }

    /// Reads only a response head (no body).
    pub fn response_head(&mut self) -> Option<Message> {
        self.head(HeadKind::Response)
    }

    /// Reads only a request head (no body), e.g. for an origin that answers `100 Continue`.
    pub fn request_head(&mut self) -> Option<Message> {
        self.head(HeadKind::Request)
    }

    /// Reads exactly `n` more bytes (buffered ones first); `None` on EOF or timeout.
    pub fn take_exact(&mut self, n: usize) -> Option<Vec<u8>> {
        self.exact(n)
    }
}

/// An origin that answers a request for `/…/N` with `responses[N]` verbatim (any bytes, valid
/// HTTP or not), serving at most `per_connection` requests per connection before closing it.
/// An index out of range closes the connection without an answer.
pub fn scripted_origin(responses: Vec<Vec<u8>>, per_connection: usize) -> Origin {
    let responses = Arc::new(responses);
    Origin::start(move |mut s| {
        let mut r = Reader::new(s.try_clone().expect("clone"));
        for _ in 0..per_connection {
            let Some(req) = r.request() else { return };
            let idx: usize = req
                .target
                .rsplit('/')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(usize::MAX);
            let Some(resp) = responses.get(idx) else {
                return;
            };
            if s.write_all(resp).is_err() {
                return;
            }
        }
    })
}

// ---- Helpers for the CONNECT suite (connect.rs) ----

impl Origin {
    /// Like [`Origin::start`], but listening on `bind` (e.g. `[::1]:0`); `None` when that
    /// address cannot be bound here (no IPv6 loopback, say).
    pub fn start_on<F>(bind: &str, handler: F) -> Option<Origin>
    where
        F: Fn(TcpStream) + Send + Sync + 'static,
    {
        let listener = TcpListener::bind(bind).ok()?;
        let addr = listener.local_addr().ok()?;
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let handler = Arc::new(handler);
        let (acc, stp) = (accepted.clone(), stop.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                acc.fetch_add(1, Ordering::SeqCst);
                let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
                let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
                let h = handler.clone();
                thread::spawn(move || h(stream));
            }
        });
        Some(Origin {
            addr,
            accepted,
            stop,
        })
    }
}

impl Proxy {
    /// The proxy's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// How many file descriptors process `pid` has open (Linux `/proc`), `None` if unreadable.
pub fn open_fds(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count())
}

/// A listener whose accept queue is full: further SYNs are dropped, so a connect hangs (how
/// connect timeouts are tested on loopback). Returns the address, the listener and the held
/// connections (keep them alive); `None` if the queue never filled.
pub fn full_backlog_listener() -> Option<(SocketAddr, socket2::Socket, Vec<TcpStream>)> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    sock.bind(&any.into()).expect("bind");
    sock.listen(0).expect("listen");
    let addr = sock.local_addr().ok()?.as_socket()?;
    let mut held = Vec::new();
    for _ in 0..16 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => held.push(s),
            Err(_) => return Some((addr, sock, held)),
        }
    }
    None
}

/// An origin that echoes the first read of each connection back, then closes.
pub fn echo_once_origin() -> Origin {
    Origin::start(|mut s| {
        let mut buf = [0u8; 64];
        if let Ok(n) = s.read(&mut buf) {
            let _ = s.write_all(&buf[..n]);
        }
    })
}

/// An opaque tunnel through `proxy` to `target` (an [`echo_once_origin`]): CONNECT, `200`,
/// 5 bytes up (not TLS, not HTTP), the same 5 back, then the client half-closes and reads to
/// the end.
pub fn ping_through_tunnel(proxy: &Proxy, target: &str) {
    let mut t = proxy.connect();
    t.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .expect("write CONNECT");
    let mut est = [0u8; 39];
    t.read_exact(&mut est).expect("200 Connection established");
    t.write_all(b"\x00ping").expect("write");
    let mut back = [0u8; 5];
    t.read_exact(&mut back).expect("echo");
    assert_eq!(&back, b"\x00ping");
    t.shutdown(Shutdown::Write).expect("shutdown");
    let _ = Reader::new(t).read_to_close();
}

/// Sends a WebSocket close (`code`, when given) and reads until the peer's close and the end
/// of the connection; returns the close code the peer answered with.
pub fn ws_close<S: Read + Write>(
    ws: &mut tungstenite::WebSocket<S>,
    code: Option<u16>,
) -> Option<u16> {
    let frame = code.map(|c| tungstenite::protocol::CloseFrame {
        code: c.into(),
        reason: "bye".into(),
    });
    ws.close(frame).expect("send close");
    let mut answered = None;
    for _ in 0..10 {
        match ws.read() {
            Ok(tungstenite::Message::Close(frame)) => answered = frame.map(|f| u16::from(f.code)),
            Ok(other) => panic!("after close: {other:?}"),
            Err(tungstenite::Error::ConnectionClosed) => return answered,
            Err(e) => panic!("closing: {e}"),
        }
    }
    panic!("the close handshake did not complete");
}

/// A capture file path under the temp dir unique to this process, test and driver (removed
/// first).
pub fn capture_path(name: &str, driver: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!(
        "lynxio-capture-{}-{name}-{driver}",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&p);
    p
}

/// SIGTERMs the proxy, waits for it to exit, and parses its capture file (every line must be
/// a JSON object); the file is removed.
pub fn stop_and_read_capture(mut proxy: Proxy, path: &std::path::Path) -> Vec<serde_json::Value> {
    proxy.signal(15);
    assert!(
        proxy.wait_exit(Duration::from_secs(15)).is_some(),
        "lynxio did not exit on SIGTERM"
    );
    let text = std::fs::read_to_string(path).expect("read capture");
    let _ = std::fs::remove_file(path);
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}
