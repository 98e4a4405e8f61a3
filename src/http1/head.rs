//! Plumbing shared by request and response head parsing: the bounded window handed to
//! `httparse` (so a flood of bytes is never re-scanned past `max_head_bytes`), the stack array of
//! uninitialised header slots, the mapping of `httparse` errors to [`ParseError`] kinds, and the
//! single copy of a complete head into an owned [`Headers`] buffer.

use std::mem::MaybeUninit;

use super::headers::{Headers, Span};
use super::{HeadLimits, MAX_HEADERS_CAP, ParseError, ParseErrorKind, Version};

/// Uninitialised header slots; `httparse` writes only the ones it fills.
pub(super) type Slots<'b> = [MaybeUninit<httparse::Header<'b>>; MAX_HEADERS_CAP];

pub(super) const fn new_slots<'b>() -> Slots<'b> {
    [const { MaybeUninit::uninit() }; MAX_HEADERS_CAP]
}

/// The prefix of `buf` a head must fit in.
pub(super) fn window<'b>(buf: &'b [u8], limits: &HeadLimits) -> &'b [u8] {
    buf.get(..limits.max_head_bytes).unwrap_or(buf)
}

/// The configured number of slots (at most [`MAX_HEADERS_CAP`]).
pub(super) fn slots<'s, 'b>(
    slots: &'s mut Slots<'b>,
    limits: &HeadLimits,
) -> &'s mut [MaybeUninit<httparse::Header<'b>>] {
    let n = limits.max_headers.min(MAX_HEADERS_CAP);
    let (head, _) = slots.split_at_mut(n);
    head
}

/// `Ok(None)` when more bytes may complete the head, `HeadTooLarge` when they cannot.
pub(super) fn incomplete<T>(buf: &[u8], limits: &HeadLimits) -> Result<Option<T>, ParseError> {
    if buf.len() >= limits.max_head_bytes {
        Err(ParseError::new(
            ParseErrorKind::HeadTooLarge,
            "head exceeds the size limit",
        ))
    } else {
        Ok(None)
    }
}

pub(super) fn version(minor: Option<u8>) -> Result<Version, ParseError> {
    match minor {
        Some(0) => Ok(Version::Http10),
        Some(1) => Ok(Version::Http11),
        _ => Err(ParseError::new(
            ParseErrorKind::UnsupportedVersion,
            "unsupported HTTP version",
        )),
    }
}

/// The first line of a head, after any leading empty lines, without its line ending.
pub(super) fn first_line(buf: &[u8]) -> &[u8] {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let line = buf.get(start..).unwrap_or_default();
    let line = match memchr::memchr(b'\n', line) {
        Some(i) => line.get(..i).unwrap_or_default(),
        None => line,
    };
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Maps an `httparse` error. `version_token` is where the HTTP-version sits in the start line
/// (or would): a well-formed `HTTP/x.y` other than 1.0/1.1 is `UnsupportedVersion`.
pub(super) fn map_error(e: httparse::Error, window: &[u8], request: bool) -> ParseError {
    use ParseErrorKind::{Malformed, TooManyHeaders, UnsupportedVersion};
    let (kind, detail) = match e {
        httparse::Error::TooManyHeaders => (TooManyHeaders, "too many header fields"),
        httparse::Error::Version => {
            let line = first_line(window);
            // Only a well-formed line whose version token is a real `HTTP/d.d` is a version
            // problem; `GET /a b HTTP/1.1` (a space in the target) is a malformed line.
            let token = if request {
                let mut parts = line.split(|&b| b == b' ');
                match (parts.next(), parts.next(), parts.next(), parts.next()) {
                    (Some(_), Some(_), Some(v), None) => v,
                    _ => &[][..],
                }
            } else {
                line.split(|&b| b == b' ').next().unwrap_or_default()
            };
            match token {
                [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
                    if major.is_ascii_digit()
                        && minor.is_ascii_digit()
                        && !(*major == b'1' && matches!(minor, b'0' | b'1')) =>
                {
                    (UnsupportedVersion, "unsupported HTTP version")
                }
                _ => (Malformed, "invalid HTTP version"),
            }
        }
        httparse::Error::HeaderName if has_obs_fold(window) => (Malformed, "obsolete line folding"),
        httparse::Error::HeaderName => (Malformed, "invalid header field name"),
        httparse::Error::HeaderValue => (Malformed, "invalid header field value"),
        httparse::Error::NewLine => (Malformed, "invalid line ending"),
        httparse::Error::Status => (Malformed, "invalid status line"),
        httparse::Error::Token => (Malformed, "invalid request line"),
    };
    ParseError::new(kind, detail)
}

fn has_obs_fold(buf: &[u8]) -> bool {
    memchr::memmem::find(buf, b"\n ").is_some() || memchr::memmem::find(buf, b"\n\t").is_some()
}

/// Copies the complete head `head` (a prefix of the parsed window) into an owned [`Headers`]
/// with one field per `httparse` header.
pub(super) fn collect(head: &[u8], fields: &[httparse::Header<'_>]) -> Result<Headers, ParseError> {
    let mut headers = Headers::with_raw(head.to_vec(), fields.len());
    for f in fields {
        let value = if f.value.is_empty() {
            Some(Span::default())
        } else {
            Span::of(head, f.value)
        };
        match (Span::of(head, f.name.as_bytes()), value) {
            (Some(name), Some(value)) => headers.push_span(name, value),
            _ => return Err(too_large()),
        }
    }
    Ok(headers)
}

/// The span of a start-line piece inside the head (only fails for heads over 4 GiB).
pub(super) fn span(head: &[u8], part: &[u8]) -> Result<Span, ParseError> {
    Span::of(head, part).ok_or_else(too_large)
}

fn too_large() -> ParseError {
    ParseError::new(ParseErrorKind::HeadTooLarge, "head exceeds the size limit")
}
