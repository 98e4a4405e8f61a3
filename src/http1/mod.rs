//! HTTP/1.x codec: parses request and response heads (on top of `httparse`), decides body
//! framing under the smuggling rules of RFC 9112, classifies request-targets, decodes chunked
//! bodies, and serializes forwarded heads without hop-by-hop fields. Pure functions over byte
//! slices: no sockets, no async, no configuration lookups, no logging. This file owns the shared
//! vocabulary (limits, versions, errors, body framing); each submodule owns one concern and the
//! public items are re-exported here so callers write `http1::parse_request` and friends.

mod chunked;
mod framing;
mod head;
mod headers;
mod request;
mod response;
mod target;
mod write;

pub use chunked::{ChunkStep, ChunkedDecoder};
pub use framing::ConnectionInfo;
pub use headers::Headers;
pub use request::{Method, RequestHead, parse_request};
pub use response::{ResponseHead, parse_response};
pub use target::{Scheme, Target, parse_host, parse_target};
pub use write::{
    ConnectionHeader, LocalResponse, RequestRewrite, ResponseRewrite, reason_phrase,
    write_answer_head, write_interim, write_local_response, write_request, write_response,
};

/// Default bound on a whole head (start line + fields + final CRLF).
pub const DEFAULT_MAX_HEAD_BYTES: usize = 64 * 1024;
/// Default bound on the number of header fields in one head.
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// Hard cap on the configurable header count (size of the parser's stack array).
pub const MAX_HEADERS_CAP: usize = 1024;
/// Bound on one chunk-size line, extensions included, CRLF excluded.
pub const MAX_CHUNK_LINE_BYTES: usize = 4096;
/// Bound on the whole trailer section of a chunked body (final CRLF included).
pub const MAX_TRAILER_BYTES: usize = 64 * 1024;

/// Limits applied while parsing one head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// Largest head accepted, in bytes; a longer one is `HeadTooLarge`.
    pub max_head_bytes: usize,
    /// Most header fields accepted (clamped to [`MAX_HEADERS_CAP`]); more is `TooManyHeaders`.
    pub max_headers: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
        }
    }
}

/// The protocol versions this codec speaks; anything else is `UnsupportedVersion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    /// The version as it appears on the wire, e.g. `b"HTTP/1.1"`.
    pub fn as_bytes(self) -> &'static [u8] {
        self.as_str().as_bytes()
    }

    /// The version token as text (`HTTP/1.1`).
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// What went wrong with a peer's message. The proxy maps kinds to statuses (request:
/// TooLarge/TooManyHeaders→431, others→400; response: all→502).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseErrorKind {
    HeadTooLarge,
    TooManyHeaders,
    Malformed,
    BadFraming,
    BadChunk,
    BadTarget,
    UnsupportedVersion,
}

/// A rejected message: a kind for the status code and a short human-readable detail. `Display`
/// is the detail alone (lower-case words, no internal names), so it can be shown to users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct ParseError {
    pub kind: ParseErrorKind,
    pub detail: &'static str,
}

impl ParseError {
    const fn new(kind: ParseErrorKind, detail: &'static str) -> Self {
        ParseError { kind, detail }
    }
}

/// How the body of a message is delimited (RFC 9112 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body at all.
    Empty,
    /// Exactly this many bytes (may be 0: `Content-Length: 0` is kept as `Length(0)`).
    Length(u64),
    /// Chunked transfer coding; decode with [`ChunkedDecoder`].
    Chunked,
    /// Response body delimited by the server closing the connection.
    UntilClose,
}
