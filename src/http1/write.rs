//! Serialization of heads the proxy sends: forwarded requests (origin-form target, replaced
//! Host, appended Via), forwarded responses and interim responses, all without hop-by-hop
//! fields (Connection and every field it names, Proxy-Connection, Keep-Alive, TE, Trailer,
//! Upgrade unless kept for a protocol switch, Proxy-Authorization), plus the proxy's own small
//! text responses. Names and values are copied byte-exact; the output is always HTTP/1.1.
//! Nothing here allocates except growing the caller's reused `out` buffer.

use super::framing::is_static_hop_by_hop;
use super::{ConnectionInfo, Headers, RequestHead, ResponseHead};

/// How a forwarded request head is rewritten.
pub struct RequestRewrite<'a> {
    /// origin-form target to send.
    pub path: &'a [u8],
    /// Host header value to send (replaces any received Host, RFC 9112 §3.2.2).
    pub host: &'a [u8],
    /// e.g. `b"1.1 lynxio"` — appended as a new `Via` field (skipped when empty).
    pub via: &'a [u8],
    /// Keep Upgrade + `Connection: upgrade` (websocket) instead of stripping.
    pub keep_upgrade: bool,
}

/// The `Connection` field the proxy puts on a forwarded response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionHeader {
    None,
    Close,
    KeepAlive,
}

/// How a forwarded response head is rewritten.
pub struct ResponseRewrite<'a> {
    /// Appended as a new `Via` field (skipped when empty).
    pub via: &'a [u8],
    pub connection: ConnectionHeader,
    /// True when the proxy de-chunks for an HTTP/1.0 client.
    pub strip_transfer_encoding: bool,
    /// 101 Switching Protocols: keep Upgrade and send `Connection: upgrade`.
    pub keep_upgrade: bool,
}

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn is_hop_by_hop(name: &[u8], conn: &ConnectionInfo, keep_upgrade: bool) -> bool {
    if keep_upgrade && name.eq_ignore_ascii_case(b"upgrade") {
        return false;
    }
    is_static_hop_by_hop(name) || conn.names_other(name)
}

fn is_host(name: &[u8]) -> bool {
    name.len() == 4 && name.eq_ignore_ascii_case(b"host")
}

fn is_content_length(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"content-length")
}

/// Identical Content-Length values received as a list or as several fields go out as one
/// plain field (RFC 9110 §8.6: never forward a value that is not `1*DIGIT`).
fn write_folded_length(out: &mut Vec<u8>, fold: Option<u64>) {
    if let Some(n) = fold {
        out.extend_from_slice(b"Content-Length: ");
        push_decimal(out, n);
        out.extend_from_slice(b"\r\n");
    }
}

fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        if let Some(slot) = buf.get_mut(i) {
            *slot = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    out.extend_from_slice(buf.get(i..).unwrap_or_default());
}

fn status_line(out: &mut Vec<u8>, status: u16, reason: &[u8]) {
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(status));
    out.push(b' ');
    // Reasons are validated on parse; proxy-given ones are filtered so no CR/LF can slip in.
    if reason
        .iter()
        .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
    {
        out.extend_from_slice(reason);
    } else {
        out.extend(
            reason
                .iter()
                .filter(|&&b| b == b'\t' || (b >= 0x20 && b != 0x7f)),
        );
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes `METHOD SP path SP HTTP/1.1 CRLF`, `Host`, then every field except hop-by-hop ones
/// and any received Host, then `Via`, `Connection: upgrade` when `keep_upgrade`, CRLF.
/// Transfer-Encoding and Content-Length are kept as received (framing is forwarded verbatim),
/// except that identical Content-Length values sent as a list or repeated become one field.
/// Never adds `Connection: keep-alive` (HTTP/1.1 upstream is persistent by default).
pub fn write_request(out: &mut Vec<u8>, head: &RequestHead, rw: &RequestRewrite) {
    out.reserve(head.headers.raw_len() + rw.path.len() + rw.host.len() + rw.via.len() + 64);
    out.extend_from_slice(head.method_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(rw.path);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    field(out, b"Host", rw.host);
    let fold = head.content_length_fold;
    head.headers.write_fields(out, |name| {
        let folded_cl = fold.is_some() && is_content_length(name);
        !(is_host(name) || is_hop_by_hop(name, &head.conn, rw.keep_upgrade) || folded_cl)
    });
    write_folded_length(out, fold);
    if !rw.via.is_empty() {
        field(out, b"Via", rw.via);
    }
    if rw.keep_upgrade {
        field(out, b"Connection", b"upgrade");
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes `HTTP/1.1 SP status SP reason CRLF`, every field except hop-by-hop ones (Upgrade kept
/// when `keep_upgrade`; Transfer-Encoding dropped when `strip_transfer_encoding`), `Via`, one
/// `Connection` field combining the chosen token and `upgrade`, CRLF.
pub fn write_response(out: &mut Vec<u8>, head: &ResponseHead, rw: &ResponseRewrite) {
    out.reserve(head.headers.raw_len() + rw.via.len() + 64);
    status_line(out, head.status, head.reason());
    let fold = head.content_length_fold;
    head.headers.write_fields(out, |name| {
        let stripped_te =
            rw.strip_transfer_encoding && name.eq_ignore_ascii_case(b"transfer-encoding");
        let folded_cl = fold.is_some() && is_content_length(name);
        !(stripped_te || is_hop_by_hop(name, &head.conn, rw.keep_upgrade) || folded_cl)
    });
    write_folded_length(out, fold);
    if !rw.via.is_empty() {
        field(out, b"Via", rw.via);
    }
    let connection: &[u8] = match (rw.connection, rw.keep_upgrade) {
        (ConnectionHeader::None, false) => b"",
        (ConnectionHeader::None, true) => b"upgrade",
        (ConnectionHeader::Close, false) => b"close",
        (ConnectionHeader::Close, true) => b"close, upgrade",
        (ConnectionHeader::KeepAlive, false) => b"keep-alive",
        (ConnectionHeader::KeepAlive, true) => b"keep-alive, upgrade",
    };
    if !connection.is_empty() {
        field(out, b"Connection", connection);
    }
    out.extend_from_slice(b"\r\n");
}

/// A complete response lynxio makes itself (errors, its own pages).
#[derive(Debug)]
pub struct LocalResponse<'a> {
    pub status: u16,
    pub reason: &'a str,
    pub content_type: &'a [u8],
    /// More header fields, written as given (names and values must be valid).
    pub extra: &'a [(&'a [u8], &'a [u8])],
    pub body: &'a [u8],
    /// Add `Connection: close`.
    pub close: bool,
    /// HEAD: the head only (Content-Length still that of the body).
    pub head_only: bool,
}

/// Writes a [`LocalResponse`]: status line, Content-Type, Content-Length, the extra fields,
/// `Connection: close` if asked, then the body unless `head_only`.
pub fn write_local_response(out: &mut Vec<u8>, r: &LocalResponse) {
    out.reserve(160 + r.reason.len() + r.body.len());
    status_line(out, r.status, r.reason.as_bytes());
    field(out, b"Content-Type", r.content_type);
    out.extend_from_slice(b"Content-Length: ");
    push_decimal(out, r.body.len() as u64);
    out.extend_from_slice(b"\r\n");
    for (name, value) in r.extra {
        field(out, name, value);
    }
    if r.close {
        field(out, b"Connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    if !r.head_only {
        out.extend_from_slice(r.body);
    }
}

/// The head of a response a rule answers with: status line, `fields` as given (never framing
/// or connection fields: the caller keeps those out), `Content-Length`, `Connection: close` if
/// `close`, CRLF. The body follows separately.
pub fn write_answer_head(
    out: &mut Vec<u8>,
    status: u16,
    fields: &Headers,
    content_length: u64,
    close: bool,
) {
    out.reserve(fields.raw_len() + 96);
    status_line(out, status, reason_phrase(status).as_bytes());
    fields.write_fields(out, |_| true);
    out.extend_from_slice(b"Content-Length: ");
    push_decimal(out, content_length);
    out.extend_from_slice(b"\r\n");
    if close {
        field(out, b"Connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
}

/// A 1xx interim response to forward (e.g. 100 Continue, 103 Early Hints): status line and
/// fields minus hop-by-hop ones, CRLF.
pub fn write_interim(out: &mut Vec<u8>, head: &ResponseHead) {
    out.reserve(head.headers.raw_len() + 16);
    status_line(out, head.status, head.reason());
    head.headers
        .write_fields(out, |name| !is_hop_by_hop(name, &head.conn, false));
    out.extend_from_slice(b"\r\n");
}

/// Canonical reason phrases (RFC 9110 §15) for the statuses the proxy generates and the common
/// others; `""` for unknown codes (an empty reason is valid on the wire).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests;
