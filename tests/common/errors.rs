//! Helpers for the error-path suites (errors.rs, smuggling.rs, robustness.rs): raw replies,
//! the shape every lynxio error answer must have, and origins that misbehave.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

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
    "OriginBusy",
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
