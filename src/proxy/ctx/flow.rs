//! The record of one exchange (or one tunnel), filled in phase by phase by the pipeline and read
//! when it ends by the access log, capture, live events and metrics. Its named fields replace
//! state that would otherwise be implied by which futures are alive: `response_started` (has
//! any byte of the final response reached the client?) decides what a late failure may do —
//! before it, answer with the error's status; after it, only close the connection — and
//! `request_complete` whether the connection may carry another request.

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::error::ProxyError;
use crate::observe::event::{Body, FlowId, UpgradeInfo};

use super::Peer;

/// One exchange or tunnel.
#[derive(Debug)]
pub struct Flow {
    pub id: FlowId,
    pub started: Instant,
    pub peer: Peer,
    /// The full URL (`http://…`, `https://host[:port]/…` when intercepted), or the CONNECT
    /// target; empty until the request head is read.
    pub url: String,
    /// Lowercased host the flow is about (URL host or tunnel target), for event filters; set
    /// only when someone reads events.
    pub host: Option<Arc<str>>,
    /// The origin connection used, once there is one.
    pub upstream: Option<UpstreamUse>,
    /// Request body bytes moved to the origin (and the kept prefix when capturing bodies).
    pub request_body: Tally,
    /// The request body reached its end (nothing of it is left on the client connection).
    pub request_complete: Cell<bool>,
    /// Why the request body stopped early, when it did.
    pub request_error: Option<ProxyError>,
    pub response: ResponseSide,
    /// Whether any byte of the final response head has been written to the client.
    pub response_started: Cell<bool>,
    /// Name of the rule that acted on this flow.
    pub rule: Option<Arc<str>>,
    /// What was relayed after a `101` (WebSocket), once the relay ended.
    pub upgrade: Option<UpgradeInfo>,
    pub outcome: Outcome,
}

/// What the flow knows about the response.
#[derive(Debug, Default)]
pub struct ResponseSide {
    /// Final status sent to the client.
    pub status: Option<u16>,
    /// Time from the flow's start to the final response head being sent.
    pub ttfb: Option<Duration>,
    /// Interim (1xx) responses relayed to the client.
    pub interim_sent: u16,
    /// Response body bytes moved to the client.
    pub body: Tally,
}

/// The origin connection an exchange used.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamUse {
    /// From the idle pool rather than dialed for this exchange.
    pub reused: bool,
    /// Time to resolve + connect (+ TLS); zero when reused.
    pub connect: Duration,
}

/// How a flow ended.
#[derive(Debug, Default)]
pub enum Outcome {
    /// Still running (or ended without anyone recording why: a bug, logged as such).
    #[default]
    Pending,
    /// The response (or tunnel) ran to its end.
    Completed,
    /// lynxio answered itself: an error status, or one of its own pages.
    Answered { status: u16, reason: String },
    /// Cut short after the response started (or the client went away): `by` ended it.
    Aborted { by: Side, reason: String },
}

impl ResponseSide {
    /// The final response head (`status`) is about to be written: sets `started` (from now on
    /// a failure can only close) and records the time to first byte since `since`, returned.
    pub fn begin(&mut self, status: u16, started: &Cell<bool>, since: Instant) -> Duration {
        started.set(true);
        self.status = Some(status);
        let ttfb = since.elapsed();
        self.ttfb = Some(ttfb);
        ttfb
    }
}

/// Who ended an aborted flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Origin,
    Timeout,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Origin => "origin",
            Side::Timeout => "timeout",
        }
    }

    /// Which side an error points at.
    pub fn of(error: &ProxyError) -> Side {
        match error {
            ProxyError::ResponseTimeout
            | ProxyError::ConnectTimeout { .. }
            | ProxyError::OriginBusy { .. }
            | ProxyError::ClientHeadTimeout => Side::Timeout,
            ProxyError::Resolve { .. }
            | ProxyError::Connect { .. }
            | ProxyError::Certificate { .. }
            | ProxyError::UpstreamTls { .. }
            | ProxyError::BadResponse(_)
            | ProxyError::UpstreamIo(_)
            // The mock file stands in for the origin.
            | ProxyError::MockFile { .. } => Side::Origin,
            ProxyError::BadRequest(_)
            | ProxyError::NotProxyRequest
            | ProxyError::HttpsWithoutConnect
            | ProxyError::ConnectInTunnel
            | ProxyError::ExpectationFailed
            | ProxyError::ClientBody(_)
            | ProxyError::ClientIo(_)
            | ProxyError::ProxyAuthRequired(_)
            | ProxyError::DestRefused { .. } => Side::Client,
        }
    }
}

/// Bytes of one body that moved, and the first `cap` of them when bodies are captured.
#[derive(Debug, Default)]
pub struct Tally {
    pub bytes: u64,
    /// The kept prefix; `None` when bodies are not captured.
    pub kept: Option<Body>,
    cap: usize,
}

impl Tally {
    /// A tally that keeps up to `cap` bytes (0: counts only).
    pub fn keeping(cap: usize) -> Tally {
        Tally {
            bytes: 0,
            kept: (cap > 0).then(Body::default),
            cap,
        }
    }

    /// Count `n` wire bytes moved.
    #[inline]
    pub fn count(&mut self, n: usize) {
        self.bytes += n as u64;
    }

    /// Whether `keep` wants bytes (so callers can skip finding them).
    #[inline]
    pub fn keeping_bytes(&self) -> bool {
        self.kept.is_some()
    }

    /// Whether the body's bytes must pass through lynxio: it is captured and the kept prefix
    /// is not full yet (the rest of a body may move without being seen).
    #[inline]
    pub fn needs_bytes(&self) -> bool {
        self.kept
            .as_ref()
            .is_some_and(|body| body.bytes.len() < self.cap)
    }

    /// Count `n` wire bytes moved without being seen (spliced); a captured body beyond its kept
    /// prefix is marked truncated.
    pub fn count_unseen(&mut self, n: u64) {
        self.bytes += n;
        if n > 0
            && let Some(body) = self.kept.as_mut()
        {
            body.truncated = true;
        }
    }

    /// Keep (a prefix of) `data`, body content in order, up to the cap.
    pub fn keep(&mut self, data: &[u8]) {
        let Some(body) = self.kept.as_mut() else {
            return;
        };
        let room = self.cap.saturating_sub(body.bytes.len());
        if data.len() > room {
            body.truncated = true;
        }
        body.bytes
            .extend_from_slice(data.get(..room.min(data.len())).unwrap_or_default());
    }
}

impl Flow {
    /// A flow starting now on a connection from `peer`.
    pub fn start(id: FlowId, peer: Peer, capture_bodies: usize) -> Flow {
        Flow {
            id,
            started: Instant::now(),
            peer,
            url: String::new(),
            host: None,
            upstream: None,
            request_body: Tally::keeping(capture_bodies),
            request_complete: Cell::new(false),
            request_error: None,
            response: ResponseSide {
                body: Tally::keeping(capture_bodies),
                ..ResponseSide::default()
            },
            response_started: Cell::new(false),
            rule: None,
            upgrade: None,
            outcome: Outcome::Pending,
        }
    }

    /// Wall-clock time the flow started (for events; derived, so starting a flow reads one
    /// clock).
    pub fn started_at(&self) -> SystemTime {
        SystemTime::now()
            .checked_sub(self.started.elapsed())
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }

    /// The host events about this flow are filed under.
    pub fn event_host(&self) -> Arc<str> {
        self.host.clone().unwrap_or_else(|| Arc::from(""))
    }

    /// The final response head is about to be written: from now on a failure can only close.
    /// Returns the time to first byte.
    pub fn response_begins(&mut self, status: u16) -> Duration {
        self.response
            .begin(status, &self.response_started, self.started)
    }

    /// The exchange ended with `error`: an answer with its status if the client can still get
    /// one (returned), else an abort.
    pub fn fail(&mut self, error: &ProxyError) -> Option<u16> {
        let status = if self.response_started.get() {
            None
        } else {
            error.status()
        };
        self.outcome = match status {
            Some(status) => Outcome::Answered {
                status,
                reason: error.to_string(),
            },
            None => Outcome::Aborted {
                by: Side::of(error),
                reason: error.to_string(),
            },
        };
        status
    }

    /// The exchange ran to its end — unless the request body was cut short on the way. An
    /// outcome already recorded (lynxio answered, a WebSocket peer broke the protocol) stays.
    pub fn complete(&mut self) {
        if !matches!(self.outcome, Outcome::Pending) {
            return;
        }
        self.outcome = match &self.request_error {
            Some(e) => Outcome::Aborted {
                by: Side::Client,
                reason: e.to_string(),
            },
            None => Outcome::Completed,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow() -> Flow {
        let addr = "127.0.0.1:1".parse().unwrap();
        Flow::start(
            FlowId { worker: 0, seq: 1 },
            Peer {
                client: addr,
                listener: addr,
            },
            4,
        )
    }

    #[test]
    fn late_failures_only_abort() {
        let mut f = flow();
        assert_eq!(f.fail(&ProxyError::ResponseTimeout), Some(504));
        assert!(matches!(f.outcome, Outcome::Answered { status: 504, .. }));
        let mut f = flow();
        f.response_begins(200);
        assert_eq!(f.fail(&ProxyError::ResponseTimeout), None);
        assert!(matches!(
            f.outcome,
            Outcome::Aborted {
                by: Side::Timeout,
                ..
            }
        ));
    }

    #[test]
    fn tally_keeps_a_prefix() {
        let mut t = Tally::keeping(4);
        t.keep(b"ab");
        t.keep(b"cdef");
        t.count(6);
        let kept = t.kept.as_ref().unwrap();
        assert_eq!(kept.bytes, b"abcd");
        assert!(kept.truncated);
        assert_eq!(t.bytes, 6);
        let mut off = Tally::keeping(0);
        off.keep(b"x");
        assert!(off.kept.is_none());
    }

    #[test]
    fn a_cut_upload_is_a_client_abort() {
        let mut f = flow();
        f.request_error = Some(ProxyError::ClientBody("closed".into()));
        f.complete();
        assert!(matches!(
            f.outcome,
            Outcome::Aborted {
                by: Side::Client,
                ..
            }
        ));
    }
}
