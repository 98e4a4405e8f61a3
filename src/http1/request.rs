//! Request heads: [`parse_request`] runs `httparse` over a bounded window, copies the head once,
//! then applies the request rules `httparse` does not know — one Host at most, valid Connection
//! tokens, request framing per RFC 9112 §6 (CL/TE smuggling rules, no body without CL/TE) and
//! the Expect expectation. [`RequestHead`] owns its bytes; [`Method`] classifies the token.

use super::framing::{self, Framing};
use super::head;
use super::headers::{Headers, Span};
use super::{BodyKind, ConnectionInfo, HeadLimits, ParseError, ParseErrorKind, Version};

/// The request method; `Other` is any other valid token (see [`RequestHead::method_str`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Patch,
    Connect,
    Trace,
    Other,
}

impl Method {
    /// Classifies a method token (case-sensitive, RFC 9110 §9.1).
    pub fn from_bytes(token: &[u8]) -> Method {
        match token {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"OPTIONS" => Method::Options,
            b"PATCH" => Method::Patch,
            b"CONNECT" => Method::Connect,
            b"TRACE" => Method::Trace,
            _ => Method::Other,
        }
    }

    /// The canonical token, or `None` for `Other`.
    pub fn as_static_str(&self) -> Option<&'static str> {
        Some(match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Patch => "PATCH",
            Method::Connect => "CONNECT",
            Method::Trace => "TRACE",
            Method::Other => return None,
        })
    }

    /// GET HEAD PUT DELETE OPTIONS TRACE (RFC 9110 §9.2.2).
    pub fn is_idempotent(&self) -> bool {
        matches!(
            self,
            Method::Get
                | Method::Head
                | Method::Put
                | Method::Delete
                | Method::Options
                | Method::Trace
        )
    }
}

/// A parsed request head; owns its bytes.
#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: Method,
    pub version: Version,
    pub headers: Headers,
    pub conn: ConnectionInfo,
    /// Request framing per RFC 9112 §6 (no CL/TE → `Empty`).
    pub body: BodyKind,
    /// `Expect: 100-continue` (ignored → false for HTTP/1.0).
    pub expect_continue: bool,
    expect_unsupported: bool,
    /// Set when several identical Content-Length values were folded into this one; the writer
    /// then sends it as a single field.
    pub(super) content_length_fold: Option<u64>,
    method_span: Span,
    target_span: Span,
}

impl RequestHead {
    /// The method token exactly as received.
    pub fn method_str(&self) -> &str {
        match self.method.as_static_str() {
            Some(s) => s,
            None => std::str::from_utf8(self.headers.slice(self.method_span)).unwrap_or_default(),
        }
    }

    /// The raw request-target bytes, byte-exact.
    pub fn target(&self) -> &[u8] {
        self.headers.slice(self.target_span)
    }

    /// An `Expect` expectation other than `100-continue` was sent: answer 417.
    pub fn expect_unsupported(&self) -> bool {
        self.expect_unsupported
    }

    /// Whether the client wants the connection kept open after this exchange
    /// (HTTP/1.1 unless `close`; HTTP/1.0 only with `keep-alive`).
    pub fn wants_keep_alive(&self) -> bool {
        !self.conn.close && (self.version == Version::Http11 || self.conn.keep_alive)
    }

    /// A WebSocket opening handshake (RFC 6455 §4.1): an HTTP/1.1 `GET` without a body,
    /// `Connection: upgrade` and an `Upgrade` field naming `websocket`. Other upgrades (h2c, …)
    /// are not forwarded as upgrades.
    pub fn is_websocket_upgrade(&self) -> bool {
        self.method == Method::Get
            && self.version == Version::Http11
            && self.conn.upgrade
            && self.body == BodyKind::Empty
            && names_websocket(&self.headers)
    }
}

/// Whether an `Upgrade` field lists the `websocket` protocol (case-insensitive, any version).
pub(super) fn names_websocket(headers: &super::Headers) -> bool {
    headers.get_all("upgrade").any(|v| {
        v.split(|&b| b == b',').any(|token| {
            let token = token.trim_ascii();
            let name = token.split(|&b| b == b'/').next().unwrap_or_default();
            name.eq_ignore_ascii_case(b"websocket")
        })
    })
}

/// Parse a request head from the start of `buf`. `Ok(None)` = incomplete (need more bytes; but
/// if `buf.len() >= limits.max_head_bytes` with no complete head → `HeadTooLarge`).
/// `Ok(Some((head, n)))` where `n` = head length in bytes (`buf[n..]` is body / next request).
pub fn parse_request(
    buf: &[u8],
    limits: &HeadLimits,
) -> Result<Option<(RequestHead, usize)>, ParseError> {
    let window = head::window(buf, limits);
    let mut storage = head::new_slots();
    let mut req = httparse::Request::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut req,
        window,
        head::slots(&mut storage, limits),
    );
    let n = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return head::incomplete(buf, limits),
        Err(e) => return Err(head::map_error(e, window, true)),
    };
    let bytes = window.get(..n).unwrap_or(window);
    let version = head::version(req.version)?;
    let method = req.method.unwrap_or_default().as_bytes();
    let method_span = head::span(bytes, method)?;
    let target_span = head::span(bytes, req.path.unwrap_or_default().as_bytes())?;
    let headers = head::collect(bytes, req.headers)?;
    let scan = framing::scan(req.headers.iter().map(|h| (h.name.as_bytes(), h.value)));

    if let Some(e) = scan.conn_error {
        return Err(e);
    }
    if scan.hosts > 1 {
        return Err(ParseError::new(
            ParseErrorKind::Malformed,
            "more than one Host field",
        ));
    }
    let body = match scan.framing(version)? {
        Framing::None => BodyKind::Empty,
        Framing::Length(n) => BodyKind::Length(n),
        Framing::Chunked => BodyKind::Chunked,
    };
    let http11 = version == Version::Http11;
    let content_length_fold = scan.folded_length();
    let head = RequestHead {
        content_length_fold,
        method: Method::from_bytes(method),
        version,
        conn: scan.conn,
        body,
        expect_continue: http11 && scan.expect_continue && !scan.expect_other,
        expect_unsupported: http11 && scan.expect_other,
        headers,
        method_span,
        target_span,
    };
    Ok(Some((head, n)))
}

#[cfg(test)]
mod tests;
