//! First-byte protocol detection for CONNECT tunnels: pure functions over the bytes a client has
//! sent so far that answer one of three things — recognised ([`Detect::Found`]), a valid prefix
//! that needs more bytes ([`Detect::NeedMore`]) or not this protocol ([`Detect::NotThis`]).
//! [`client_hello`] parses TLS records itself (several records reassembled into one handshake
//! message), validates the whole ClientHello structure and extracts the SNI host name and the
//! ALPN list; [`http1_request`] recognises an HTTP/1 request line as early as it safely can; and
//! [`detect`] combines both, answering [`Protocol::Unknown`] when neither fits or when
//! [`MAX_SNIFF_BYTES`] have been seen without a decision. Every decision depends only on the
//! bytes up to the point where it is made, so a prefix of a recognised input is never
//! [`Detect::NotThis`]. No sockets, no configuration, no panics on any input (allocation only
//! for the result and for joining a hello split over records); the caller owns buffering, the
//! deadline and replaying the bytes.

mod http;
mod tls;

pub use http::{HTTP_DECIDE_TARGET_BYTES, MAX_LEADING_NEWLINE_BYTES, MAX_METHOD_BYTES};
pub use tls::{MAX_CLIENT_HELLO_BYTES, MAX_HOST_NAME_BYTES, MAX_RECORD_PAYLOAD_BYTES};

/// The most bytes a caller should buffer while sniffing (65,860). It covers the largest
/// ClientHello accepted ([`MAX_CLIENT_HELLO_BYTES`] plus its 4-byte handshake header) carried
/// in up to 64 records; a hello whose records cannot end within this many bytes is rejected.
/// At this length [`detect`] always decides.
pub const MAX_SNIFF_BYTES: usize = MAX_CLIENT_HELLO_BYTES
    + tls::HANDSHAKE_HEADER_LEN
    + tls::HELLO_RECORD_SLACK * tls::RECORD_HEADER_LEN;

/// Three outcomes of looking at a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detect<T> {
    /// The prefix is (the start of) this protocol; the value is what was learned from it.
    Found(T),
    /// The bytes so far are a valid prefix; more are needed to decide.
    NeedMore,
    /// The bytes so far are not this protocol (or are malformed).
    NotThis,
}

/// What a TLS ClientHello says about where the client wants to go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHello {
    /// The `server_name` extension's host name, lowercased; `None` when the client sent none.
    pub sni: Option<String>,
    /// The ALPN protocol names offered, in the client's order; empty when not offered.
    pub alpn: Vec<Vec<u8>>,
    /// The ClientHello's `legacy_version` (0x0303 for TLS 1.2 and 1.3 clients).
    pub legacy_version: u16,
}

/// The protocol a tunnel's client speaks first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protocol {
    /// A TLS handshake starting with this ClientHello.
    Tls(ClientHello),
    /// An HTTP/1 request (plain HTTP inside the tunnel; includes WebSocket upgrades).
    Http1,
    /// Anything else: relay it as opaque bytes.
    Unknown,
}

/// Parses a TLS ClientHello from the first bytes of a stream. `Found` once the whole handshake
/// message has arrived (bytes after it are ignored), `NeedMore` while the bytes so far are a
/// valid prefix, `NotThis` when it is not TLS or is malformed: a record that is not handshake
/// (22), a record version outside 0x0301..=0x0304, an empty or over-long record, a first message
/// that is not a ClientHello, any length that overruns its container, duplicate extensions, or
/// a `server_name` that is not a plausible DNS host name.
pub fn client_hello(prefix: &[u8]) -> Detect<ClientHello> {
    tls::client_hello(prefix)
}

/// Recognises the start of an HTTP/1 request: optional empty lines (RFC 9112 §2.2), a method
/// token (RFC 9110 tchar, at most [`MAX_METHOD_BYTES`]), SP, a request-target of visible ASCII
/// or obs-text, then SP and `HTTP/1.`. `Found` as soon as `HTTP/1.` is seen, or once the target alone reaches
/// [`HTTP_DECIDE_TARGET_BYTES`]; `NeedMore` for a valid prefix; `NotThis` otherwise (so
/// `PRI * HTTP/2.0`, the h2c preface, is not HTTP/1). Methods are case-sensitive tokens, so a
/// lowercase `get` is accepted as an (unknown) token method, as RFC 9110 allows.
pub fn http1_request(prefix: &[u8]) -> Detect<()> {
    http::request(prefix)
}

/// Decides what a tunnel's client speaks: TLS when [`client_hello`] finds one, HTTP/1 when
/// [`http1_request`] does, `Found(Unknown)` when both say `NotThis` or when the prefix reaches
/// [`MAX_SNIFF_BYTES`] undecided, `NeedMore` otherwise. An empty prefix needs more.
pub fn detect(prefix: &[u8]) -> Detect<Protocol> {
    let tls = client_hello(prefix);
    if let Detect::Found(hello) = tls {
        return Detect::Found(Protocol::Tls(hello));
    }
    let http = http1_request(prefix);
    match (tls, http) {
        (_, Detect::Found(())) => Detect::Found(Protocol::Http1),
        (Detect::NotThis, Detect::NotThis) => Detect::Found(Protocol::Unknown),
        _ if prefix.len() >= MAX_SNIFF_BYTES => Detect::Found(Protocol::Unknown),
        _ => Detect::NeedMore,
    }
}

#[cfg(test)]
mod tests;
