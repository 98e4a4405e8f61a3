//! The proxy's one error type, [`ProxyError`], and the one place where errors become HTTP
//! statuses ([`ProxyError::status`]). Every failure on a request's path — a bad client message, a
//! DNS or connect failure, a timeout, a bad origin response — is one variant here; the
//! orchestration layer answers the client with the mapped status and a short text body (when no
//! response byte has been sent yet) and logs one line.

use std::io;
use std::time::Duration;

use crate::config::Config;
use crate::http1::{HeadLimits, ParseError, ParseErrorKind};

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
    /// Every connection this worker may open to the origin (`--pool-max-open-per-host`) stayed
    /// busy for the connect timeout, and none was handed over.
    #[error("all {open} connections to {target} stayed busy")]
    OriginBusy { target: String, open: usize },
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
            ProxyError::ConnectTimeout { .. }
            | ProxyError::OriginBusy { .. }
            | ProxyError::ResponseTimeout => 504,
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

    /// The short text body sent with the status: a plain sentence saying what was wrong and,
    /// where it helps, what to do — never an internal name. `cfg` supplies the limits a body
    /// quotes (with the flag that sets them). Log lines use `Display`, which keeps the detail.
    pub fn body(&self, cfg: &Config) -> String {
        let secs = |d: Duration| humantime::format_duration(d).to_string();
        match self {
            ProxyError::BadRequest(e) => message_problem(e, Side::Request, &cfg.head_limits),
            ProxyError::BadResponse(e) => message_problem(e, Side::Response, &cfg.head_limits),
            ProxyError::NotProxyRequest => "lynxio is a proxy: send absolute-form requests \
                 (GET http://host/path), e.g. curl -x http://this-proxy http://example.com/"
                .to_owned(),
            ProxyError::HttpsWithoutConnect => "https:// URLs must go through a CONNECT \
                 tunnel: set lynxio as the HTTPS proxy too (e.g. curl -x http://this-proxy \
                 https://example.com/)"
                .to_owned(),
            ProxyError::ConnectInTunnel => "CONNECT is only allowed directly from a proxy \
                 client, not inside a tunnel or an intercepted TLS session"
                .to_owned(),
            ProxyError::ExpectationFailed => {
                "the Expect header asks for something lynxio does not support (only \
                 100-continue is)"
                    .to_owned()
            }
            ProxyError::ClientHeadTimeout => format!(
                "the request head did not arrive within {} (--client-head-timeout)",
                secs(cfg.timeouts.client_head)
            ),
            ProxyError::ClientBody(why) => format!("the request body was cut short: {why}"),
            ProxyError::Resolve { host, source } => {
                format!("cannot find the address of {host}: {source}")
            }
            ProxyError::Connect { target, source } => {
                format!("cannot connect to {target}: {source}")
            }
            ProxyError::ConnectTimeout { target } => format!(
                "connecting to {target} took longer than {} (--connect-timeout)",
                secs(cfg.timeouts.connect)
            ),
            ProxyError::OriginBusy { target, open } => format!(
                "all {open} connections lynxio may open to {target} (--pool-max-open-per-host) \
                 stayed busy for {} (--connect-timeout)",
                secs(cfg.timeouts.connect)
            ),
            ProxyError::Certificate { host, reason } => {
                format!("cannot make a certificate to intercept {host}: {reason}")
            }
            ProxyError::UpstreamTls { target, reason } => {
                format!("cannot connect securely to {target}: {reason}")
            }
            ProxyError::ResponseTimeout => format!(
                "the origin did not answer within {} (--response-timeout)",
                secs(cfg.timeouts.response)
            ),
            ProxyError::UpstreamIo(e) => format!("the connection to the origin failed: {e}"),
            ProxyError::MockFile { path, source } => {
                format!("the mock file {path} of a rule cannot be read: {source}")
            }
            ProxyError::ProxyAuthRequired(_) => "lynxio requires proxy credentials: \
                 Proxy-Authorization: Basic (e.g. curl -x http://user:pass@this-proxy ...)"
                .to_owned(),
            ProxyError::DestRefused { target, reason } => {
                format!("lynxio does not forward to {target}: {reason}")
            }
            ProxyError::ClientIo(e) => format!("the client connection failed: {e}"),
        }
    }
}

/// Whose message a parse error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Request,
    Response,
}

/// A rejected request or origin response in words: what was wrong, the parser's detail, and
/// for a size limit the limit and its flag.
fn message_problem(e: &ParseError, side: Side, limits: &HeadLimits) -> String {
    let (head, message) = match side {
        Side::Request => ("request head", "the request"),
        Side::Response => ("origin's response head", "the origin's response"),
    };
    let detail = e.detail;
    match e.kind {
        ParseErrorKind::HeadTooLarge => format!(
            "{head} too large (limit {} bytes: --max-head-bytes)",
            limits.max_head_bytes
        ),
        ParseErrorKind::TooManyHeaders => format!(
            "too many header fields in the {head} (limit {}: --max-headers)",
            limits.max_headers
        ),
        ParseErrorKind::UnsupportedVersion => format!(
            "{message} uses an HTTP version lynxio does not speak (only HTTP/1.1 and HTTP/1.0)"
        ),
        ParseErrorKind::Malformed => format!("{message} is not valid HTTP/1.1: {detail}"),
        ParseErrorKind::BadFraming => format!(
            "the body length of {message} is ambiguous or invalid (a request smuggling \
             risk): {detail}"
        ),
        ParseErrorKind::BadChunk => format!("{message} has an invalid chunked body: {detail}"),
        ParseErrorKind::BadTarget => format!("the request's target URL is not valid: {detail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    /// Internal names that must never reach a user: the parse error kinds and the variants.
    const INTERNAL_NAMES: &[&str] = &[
        "HeadTooLarge",
        "TooManyHeaders",
        "Malformed",
        "BadFraming",
        "BadChunk",
        "BadTarget",
        "UnsupportedVersion",
        "BadRequest",
        "BadResponse",
        "UpstreamTls",
        "OriginBusy",
        "ParseError",
    ];

    fn parse_error(kind: ParseErrorKind, detail: &'static str) -> ParseError {
        ParseError { kind, detail }
    }

    #[test]
    fn bodies_are_plain_sentences() {
        let cfg = Config::from_settings(Settings::default()).expect("default config");
        let kinds = [
            ParseErrorKind::HeadTooLarge,
            ParseErrorKind::TooManyHeaders,
            ParseErrorKind::Malformed,
            ParseErrorKind::BadFraming,
            ParseErrorKind::BadChunk,
            ParseErrorKind::BadTarget,
            ParseErrorKind::UnsupportedVersion,
        ];
        let mut errors: Vec<ProxyError> = Vec::new();
        for kind in kinds {
            errors.push(ProxyError::BadRequest(parse_error(kind, "some detail")));
            errors.push(ProxyError::BadResponse(parse_error(kind, "some detail")));
        }
        errors.extend([
            ProxyError::ClientHeadTimeout,
            ProxyError::ResponseTimeout,
            ProxyError::ConnectTimeout {
                target: "a.test:80".into(),
            },
            ProxyError::OriginBusy {
                target: "a.test:80".into(),
                open: 256,
            },
        ]);
        for e in &errors {
            let body = e.body(&cfg);
            for name in INTERNAL_NAMES {
                assert!(!body.contains(name), "{e:?}: {body:?} names {name}");
            }
            assert!(body.len() < 300, "{e:?}: body too long: {body:?}");
            assert!(
                body.starts_with(|c: char| c.is_ascii_lowercase()),
                "{e:?}: {body:?}"
            );
        }
    }

    #[test]
    fn bodies_quote_the_limit_and_its_flag() {
        let cfg = Config::from_settings(Settings::default()).expect("default config");
        let too_large = ProxyError::BadRequest(parse_error(ParseErrorKind::HeadTooLarge, "x"));
        assert_eq!(
            too_large.body(&cfg),
            "request head too large (limit 65536 bytes: --max-head-bytes)"
        );
        let fields = ProxyError::BadRequest(parse_error(ParseErrorKind::TooManyHeaders, "x"));
        assert_eq!(
            fields.body(&cfg),
            "too many header fields in the request head (limit 100: --max-headers)"
        );
        let bad_line = ProxyError::BadRequest(parse_error(
            ParseErrorKind::Malformed,
            "invalid request line",
        ));
        assert_eq!(
            bad_line.body(&cfg),
            "the request is not valid HTTP/1.1: invalid request line"
        );
        let bad_response = ProxyError::BadResponse(parse_error(
            ParseErrorKind::Malformed,
            "invalid status line",
        ));
        assert_eq!(
            bad_response.body(&cfg),
            "the origin's response is not valid HTTP/1.1: invalid status line"
        );
        assert_eq!(
            ProxyError::ResponseTimeout.body(&cfg),
            "the origin did not answer within 1m (--response-timeout)"
        );
    }

    #[test]
    fn log_text_keeps_the_detail_without_internal_names() {
        let e = ProxyError::BadRequest(parse_error(
            ParseErrorKind::HeadTooLarge,
            "head exceeds the size limit",
        ));
        assert_eq!(e.to_string(), "bad request: head exceeds the size limit");
    }
}
