//! The proxy's one error type, [`ProxyError`], and the one place where errors become HTTP
//! statuses ([`ProxyError::status`]). Every failure on a request's path — a bad client message, a
//! DNS or connect failure, a timeout, a bad origin response — is one variant here; the
//! orchestration layer answers the client with the mapped status and a short text body (when no
//! response byte has been sent yet) and logs one line.

use std::io;

use crate::http1::{ParseError, ParseErrorKind};

/// Everything that can end a request before its response completes.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The client's request head or body framing is invalid.
    #[error("bad request: {0}")]
    BadRequest(ParseError),
    /// An origin-form (or asterisk-form) request: the client talks to us as if we were the origin.
    #[error("not a proxy request (origin-form target)")]
    NotProxyRequest,
    /// `https://` absolute-form: clients must use CONNECT for TLS.
    #[error("absolute-form https:// request; use CONNECT for TLS")]
    HttpsWithoutConnect,
    /// CONNECT sent inside a CONNECT tunnel or an intercepted TLS session: CONNECT is only
    /// valid directly from a proxy client (tunnels do not nest).
    #[error("CONNECT is only allowed directly from a proxy client, not inside a tunnel")]
    ConnectInTunnel,
    /// `Expect:` with something other than `100-continue`.
    #[error("unsupported expectation")]
    ExpectationFailed,
    /// The client did not finish its request head in time.
    #[error("request head timed out")]
    ClientHeadTimeout,
    /// The client stopped sending its request body (idle timeout or EOF mid-body).
    #[error("client request body incomplete: {0}")]
    ClientBody(String),
    /// Name resolution failed.
    #[error("cannot resolve {host}: {source}")]
    Resolve { host: String, source: io::Error },
    /// Every resolved address refused or was unreachable.
    #[error("cannot connect to {target}: {source}")]
    Connect { target: String, source: io::Error },
    /// No address accepted the connection in time.
    #[error("connect to {target} timed out")]
    ConnectTimeout { target: String },
    /// No certificate could be minted to intercept `host`.
    #[error("cannot make a certificate for {host}: {reason}")]
    Certificate { host: String, reason: String },
    /// The TLS connection to an intercepted origin failed (certificate rejected, handshake).
    #[error("TLS to origin {target} failed: {reason}")]
    UpstreamTls { target: String, reason: String },
    /// The origin sent no (complete) response head in time, or paused too long in the body.
    #[error("origin response timed out")]
    ResponseTimeout,
    /// The origin's response violates HTTP/1.1 framing or syntax.
    #[error("invalid response from origin: {0}")]
    BadResponse(ParseError),
    /// The origin connection failed (reset, closed early) while sending or receiving.
    #[error("origin connection failed: {0}")]
    UpstreamIo(io::Error),
    /// A mock rule's `file` could not be read (removed or unreadable since start, or it shrank
    /// while being sent).
    #[error("mock file {path}: {source}")]
    MockFile { path: String, source: io::Error },
    /// The client did not present valid proxy credentials (`--auth`).
    #[error("proxy authentication required ({})", .0.as_str())]
    ProxyAuthRequired(crate::policy::auth::Refusal),
    /// The destination policy refuses this target (a non-public address under `public`, or a
    /// CONNECT port outside `connect_ports`); nothing was dialed.
    #[error("destination {target} refused: {reason}")]
    DestRefused { target: String, reason: String },
    /// The client connection failed; nothing can be answered.
    #[error("client connection failed: {0}")]
    ClientIo(io::Error),
}

impl ProxyError {
    /// The status to answer the client with, or `None` when the client is gone.
    /// This is the one mapping from errors to statuses.
    pub fn status(&self) -> Option<u16> {
        Some(match self {
            ProxyError::BadRequest(e) => match e.kind {
                ParseErrorKind::HeadTooLarge | ParseErrorKind::TooManyHeaders => 431,
                ParseErrorKind::UnsupportedVersion => 505,
                _ => 400,
            },
            ProxyError::NotProxyRequest
            | ProxyError::HttpsWithoutConnect
            | ProxyError::ConnectInTunnel => 400,
            ProxyError::ExpectationFailed => 417,
            ProxyError::ClientHeadTimeout => 408,
            ProxyError::ClientBody(_) => 400,
            ProxyError::Resolve { .. } | ProxyError::Connect { .. } => 502,
            ProxyError::BadResponse(_)
            | ProxyError::UpstreamIo(_)
            | ProxyError::UpstreamTls { .. }
            | ProxyError::Certificate { .. } => 502,
            ProxyError::ConnectTimeout { .. } | ProxyError::ResponseTimeout => 504,
            ProxyError::MockFile { .. } => 500,
            ProxyError::ProxyAuthRequired(_) => 407,
            ProxyError::DestRefused { .. } => 403,
            ProxyError::ClientIo(_) => return None,
        })
    }

    /// Header fields an answer to this error must carry besides the usual ones.
    pub fn extra_fields(&self) -> &'static [(&'static [u8], &'static [u8])] {
        match self {
            ProxyError::ProxyAuthRequired(_) => {
                &[(b"Proxy-Authenticate", b"Basic realm=\"lynxio\"")]
            }
            _ => &[],
        }
    }

    /// The short text body sent with the status: what happened and, where it helps, what to do.
    pub fn body(&self) -> String {
        match self {
            ProxyError::NotProxyRequest => "lynxio is a proxy: send absolute-form requests \
                 (GET http://host/path), e.g. curl -x http://this-proxy http://example.com/"
                .to_owned(),
            ProxyError::ProxyAuthRequired(_) => "lynxio requires proxy credentials: \
                 Proxy-Authorization: Basic (e.g. curl -x http://user:pass@this-proxy ...)"
                .to_owned(),
            other => other.to_string(),
        }
    }
}
