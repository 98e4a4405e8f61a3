//! Response heads from origins: [`parse_response`] (same `httparse` window and tightening as
//! requests, status restricted to 100..=599, reason bytes kept byte-exact even with obs-text)
//! and [`ResponseHead::body_kind`], which combines the framing fields with the request method
//! and status (RFC 9112 §6.3). Framing errors are found while parsing but reported by
//! `body_kind`, so a caller can still see the status of a mis-framed response.

use super::framing::{self, Framing};
use super::head;
use super::headers::{Headers, Span};
use super::{BodyKind, ConnectionInfo, HeadLimits, Method, ParseError, ParseErrorKind, Version};

/// A parsed response head; owns its bytes.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    pub version: Version,
    pub status: u16,
    pub headers: Headers,
    pub conn: ConnectionInfo,
    reason_span: Span,
    framing: Result<Framing, ParseError>,
    /// See `RequestHead::content_length_fold`.
    pub(super) content_length_fold: Option<u64>,
}

impl ResponseHead {
    /// The reason phrase exactly as received (may be empty).
    pub fn reason(&self) -> &[u8] {
        self.headers.slice(self.reason_span)
    }

    /// Body framing of this response to a request with `request_method` (RFC 9112 §6.3):
    /// HEAD request, 1xx, 204, 304 → `Empty`; 2xx to CONNECT → `Empty`; TE final chunked →
    /// `Chunked`; Content-Length → `Length`; else `UntilClose`. Errors (`BadFraming`) on CL+TE,
    /// differing CLs, TE not ending in chunked, TE in HTTP/1.0 — for every status, since the
    /// head itself is forwarded and a mis-framed head must not reach the client.
    pub fn body_kind(&self, request_method: &Method) -> Result<BodyKind, ParseError> {
        let framing = self.framing?;
        let bodiless = *request_method == Method::Head
            || self.is_informational()
            || self.status == 204
            || self.status == 304
            || (*request_method == Method::Connect && (200..300).contains(&self.status));
        Ok(match framing {
            _ if bodiless => BodyKind::Empty,
            Framing::Chunked => BodyKind::Chunked,
            Framing::Length(n) => BodyKind::Length(n),
            Framing::None => BodyKind::UntilClose,
        })
    }

    /// A `101 Switching Protocols` that accepts a WebSocket upgrade (`Connection: upgrade`,
    /// `Upgrade: websocket`).
    pub fn accepts_websocket(&self) -> bool {
        self.status == 101 && self.conn.upgrade && super::request::names_websocket(&self.headers)
    }

    /// A 1xx interim response (another head follows on the same connection).
    pub fn is_informational(&self) -> bool {
        (100..200).contains(&self.status)
    }

    /// Whether the origin lets the connection be reused after this response (HTTP/1.1 unless
    /// `close`; HTTP/1.0 only with `keep-alive`). A close-delimited body still forbids reuse.
    pub fn wants_keep_alive(&self) -> bool {
        !self.conn.close && (self.version == Version::Http11 || self.conn.keep_alive)
    }
}

/// Parse a response head from the start of `buf`; same contract as [`super::parse_request`].
pub fn parse_response(
    buf: &[u8],
    limits: &HeadLimits,
) -> Result<Option<(ResponseHead, usize)>, ParseError> {
    let window = head::window(buf, limits);
    let mut storage = head::new_slots();
    let mut res = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut res,
        window,
        head::slots(&mut storage, limits),
    );
    let n = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return head::incomplete(buf, limits),
        Err(e) => return Err(head::map_error(e, window, false)),
    };
    let bytes = window.get(..n).unwrap_or(window);
    let version = head::version(res.version)?;
    let status = res.code.unwrap_or_default();
    if !(100..=599).contains(&status) {
        return Err(ParseError::new(
            ParseErrorKind::Malformed,
            "status code out of range",
        ));
    }
    // httparse replaces a reason containing obs-text with "", so take it from the line itself:
    // "HTTP/1.1 200 OK" — the reason starts after the 13 bytes of version, SP, code, SP.
    let line = head::first_line(bytes);
    let reason = line.get(13..).unwrap_or_default();
    let reason_span = if reason.is_empty() {
        Span::default()
    } else {
        head::span(bytes, reason)?
    };
    let headers = head::collect(bytes, res.headers)?;
    let scan = framing::scan(res.headers.iter().map(|h| (h.name.as_bytes(), h.value)));
    if let Some(e) = scan.conn_error {
        return Err(e);
    }
    let content_length_fold = scan.folded_length();
    let head = ResponseHead {
        version,
        status,
        framing: scan.framing(version),
        content_length_fold,
        conn: scan.conn,
        headers,
        reason_span,
    };
    Ok(Some((head, n)))
}

#[cfg(test)]
mod tests;
