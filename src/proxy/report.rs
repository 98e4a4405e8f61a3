//! Where flows are read: the pipeline calls these at a flow's milestones (request head read,
//! response head sent, exchange or tunnel finished) and they feed the access log (exactly one
//! line per finished exchange and per finished tunnel, with the flow id), the worker's
//! counters, and — only when someone reads them (capture file, live subscribers) — owned
//! events for the hub. Nothing here waits: events go into a bounded queue, log lines to the
//! non-blocking log writer.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::error::ProxyError;
use crate::http1::{Headers, Method, RequestHead, ResponseHead};
use crate::observe::event::{
    self, ErrorEvent, Event, EventKind, Fields, FlowId, Timestamp, UpstreamInfo,
};
use crate::observe::metrics::{ErrorKind, MethodClass, TunnelKind};
use crate::ws::{DataOpcode, Observed, ProtocolError};

use super::access::{AccessLog, Level, Value};
use super::ctx::flow::{Flow, Outcome};
use super::ctx::{Worker, WsHandshake};

/// What a tunnel turned out to be, for its log line and events.
#[derive(Debug, Clone)]
pub struct Tunnel {
    /// `host:port` as dialed.
    pub target: String,
    pub sni: Option<String>,
    pub alpn: Option<String>,
    pub kind: TunnelKind,
}

/// How a tunnel ended.
pub struct TunnelEnded<'a> {
    pub up: u64,
    pub down: u64,
    /// `done`, `idle timeout`, `client failed`, `origin failed`.
    pub end: &'static str,
    pub error: Option<&'a dyn fmt::Display>,
}

fn method_class(m: &Method) -> MethodClass {
    match m {
        Method::Get => MethodClass::Get,
        Method::Head => MethodClass::Head,
        Method::Post => MethodClass::Post,
        Method::Put => MethodClass::Put,
        Method::Delete => MethodClass::Delete,
        Method::Patch => MethodClass::Patch,
        Method::Options => MethodClass::Options,
        Method::Connect => MethodClass::Connect,
        _ => MethodClass::Other,
    }
}

/// The metrics kind of an error.
fn error_kind(e: &ProxyError) -> ErrorKind {
    match e {
        ProxyError::BadRequest(_) | ProxyError::ExpectationFailed => ErrorKind::BadRequest,
        ProxyError::NotProxyRequest | ProxyError::HttpsWithoutConnect => ErrorKind::NotProxyRequest,
        ProxyError::ConnectInTunnel => ErrorKind::Refused,
        ProxyError::ClientHeadTimeout => ErrorKind::HeadTimeout,
        ProxyError::ClientBody(_) => ErrorKind::ClientBody,
        ProxyError::Resolve { .. } => ErrorKind::Resolve,
        ProxyError::Connect { .. } => ErrorKind::Connect,
        ProxyError::ConnectTimeout { .. } => ErrorKind::ConnectTimeout,
        ProxyError::OriginBusy { .. } => ErrorKind::OriginBusy,
        ProxyError::Certificate { .. } => ErrorKind::Certificate,
        ProxyError::UpstreamTls { .. } => ErrorKind::UpstreamTls,
        ProxyError::ResponseTimeout => ErrorKind::ResponseTimeout,
        ProxyError::BadResponse(_) => ErrorKind::BadResponse,
        ProxyError::UpstreamIo(_) => ErrorKind::UpstreamIo,
        ProxyError::ClientIo(_) => ErrorKind::ClientIo,
        ProxyError::MockFile { .. } => ErrorKind::MockFile,
        ProxyError::ProxyAuthRequired(_) => ErrorKind::Auth,
        ProxyError::DestRefused { .. } => ErrorKind::DestPolicy,
    }
}

/// What captured events show instead of a `Proxy-Authorization` value: those credentials are
/// for lynxio, never forwarded, and never written anywhere.
const REDACTED: &[u8] = b"[redacted]";

fn fields_of(headers: &Headers) -> Fields {
    let mut fields = Fields::with_capacity(headers.len(), 512);
    for (name, value) in headers.iter() {
        if name.eq_ignore_ascii_case(b"proxy-authorization") {
            fields.push(name, REDACTED);
        } else {
            fields.push(name, value);
        }
    }
    fields
}

/// A request head was read: count it and, for readers, emit `request`.
pub fn request(worker: &Worker, flow: &mut Flow, head: &RequestHead, host: &str) {
    worker.metrics.request(method_class(&head.method));
    let Some(tap) = worker.events() else {
        return;
    };
    let host: Arc<str> = Arc::from(host);
    flow.host = Some(host.clone());
    tap.emit(Event {
        host,
        kind: EventKind::Request(event::Request {
            id: flow.id,
            ts: Timestamp(flow.started_at()),
            client: flow.peer.client,
            listener: flow.peer.listener,
            method: match head.method.as_static_str() {
                Some(m) => m.into(),
                None => head.method_str().to_owned().into(),
            },
            url: flow.url.clone(),
            version: head.version.as_str(),
            headers: fields_of(&head.headers),
        }),
    });
}

/// The origin's final response head is being sent to the client.
pub fn response_from_origin(
    worker: &Worker,
    id: FlowId,
    host: &Option<Arc<str>>,
    resp: &ResponseHead,
    ttfb: Duration,
) {
    if let Some(tap) = worker.events() {
        tap.emit(Event {
            host: host.clone().unwrap_or_else(|| Arc::from("")),
            kind: EventKind::Response(event::Response {
                id,
                status: resp.status,
                version: resp.version.as_str(),
                headers: fields_of(&resp.headers),
                ttfb_ms: ttfb,
                from: "origin",
            }),
        });
    }
}

/// lynxio itself is answering with `status` and these header fields.
pub fn response_from_lynxio(
    worker: &Worker,
    flow: &mut Flow,
    status: u16,
    headers: &[(&[u8], &[u8])],
) {
    let ttfb = flow.response_begins(status);
    if let Some(tap) = worker.events() {
        let mut fields = Fields::with_capacity(headers.len(), 128);
        for (name, value) in headers {
            fields.push(name, value);
        }
        tap.emit(Event {
            host: flow.event_host(),
            kind: EventKind::Response(event::Response {
                id: flow.id,
                status,
                version: "HTTP/1.1",
                headers: fields,
                ttfb_ms: ttfb,
                from: "lynxio",
            }),
        });
    }
}

/// An exchange ended: one access line, counters, and `end` for readers.
pub fn finish(worker: &Worker, flow: &mut Flow, head: &RequestHead, port: u16) {
    let m = &worker.metrics;
    if let Some(status) = flow.response.status {
        m.response(status);
    }
    m.bytes_in.add(flow.request_body.bytes);
    m.bytes_out.add(flow.response.body.bytes);
    let duration = flow.started.elapsed();
    let (outcome, by, reason) = match &flow.outcome {
        Outcome::Completed => ("completed", None, None),
        Outcome::Answered { reason, .. } => ("answered", None, Some(reason.as_str())),
        Outcome::Aborted { by, reason } => ("aborted", Some(by.as_str()), Some(reason.as_str())),
        Outcome::Pending => ("aborted", None, Some("ended without an outcome")),
    };
    let (bytes_in, bytes_out) = (flow.request_body.bytes, flow.response.body.bytes);
    let level = if outcome == "completed" {
        Level::Info
    } else {
        Level::Warn
    };
    if AccessLog::enabled(level) {
        let upgrade = flow.upgrade.as_ref();
        worker.access.line(
            level,
            "exchange",
            &[
                ("id", Some(Value::Id(flow.id))),
                ("client", Some(Value::Addr(flow.peer.client))),
                ("method", Some(Value::Str(head.method_str()))),
                ("url", Some(Value::Str(&flow.url))),
                // No `status` when no response head reached the client.
                ("status", flow.response.status.map(|s| Value::Num(s.into()))),
                ("bytes_in", Some(Value::Num(bytes_in))),
                ("bytes_out", Some(Value::Num(bytes_out))),
                ("ms", Some(Value::Millis(duration))),
                ("outcome", Some(Value::Str(outcome))),
                ("by", by.map(Value::Str)),
                ("reason", reason.map(Value::Text)),
                ("rule", flow.rule.as_deref().map(Value::Text)),
                ("upgrade", upgrade.map(|u| Value::Str(u.protocol))),
                ("up", upgrade.map(|u| Value::Num(u.bytes_up))),
                ("down", upgrade.map(|u| Value::Num(u.bytes_down))),
                (
                    "messages_up",
                    upgrade.and_then(|u| u.messages_up).map(Value::Num),
                ),
                (
                    "messages_down",
                    upgrade.and_then(|u| u.messages_down).map(Value::Num),
                ),
                ("end", upgrade.map(|u| Value::Text(u.end))),
                (
                    "error",
                    upgrade.and_then(|u| u.error.as_deref()).map(Value::Text),
                ),
            ],
        );
    }
    if let Some(u) = &flow.upgrade {
        m.bytes_in.add(u.bytes_up);
        m.bytes_out.add(u.bytes_down);
    }
    let Some(tap) = worker.events() else {
        return;
    };
    let upstream = flow.upstream.map(|u| UpstreamInfo {
        target: format!("{}:{port}", flow.host.as_deref().unwrap_or_default()),
        reused: u.reused,
        connect_ms: u.connect,
    });
    tap.emit(Event {
        host: flow.event_host(),
        kind: EventKind::End(event::End {
            id: flow.id,
            status: flow.response.status,
            request_body_bytes: bytes_in,
            response_body_bytes: bytes_out,
            duration_ms: duration,
            outcome,
            aborted_by: by,
            reason: reason.map(str::to_owned),
            upstream,
            rule: flow.rule.clone(),
            upgrade: flow.upgrade.take(),
            request_body: flow.request_body.kept.take(),
            response_body: flow.response.body.kept.take(),
        }),
    });
}

/// Count an error lynxio answered or ended a flow with.
pub fn error(worker: &Worker, e: &ProxyError) {
    worker.metrics.error(error_kind(e));
}

/// A client's bytes were not a request lynxio could read (no request head): answered with
/// `status` if any (else the client went away mid-head). One access line and an `error` event.
pub fn head_failed(worker: &Worker, flow: &Flow, e: &ProxyError, status: Option<u16>) {
    error(worker, e);
    if let Some(status) = status {
        worker.metrics.response(status);
    }
    if AccessLog::enabled(Level::Warn) {
        let reason = e.to_string();
        worker.access.line(
            Level::Warn,
            "exchange",
            &[
                ("id", Some(Value::Id(flow.id))),
                ("client", Some(Value::Addr(flow.peer.client))),
                ("method", Some(Value::Str("-"))),
                ("url", Some(Value::Str("-"))),
                ("status", status.map(|s| Value::Num(s.into()))),
                ("ms", Some(Value::Millis(flow.started.elapsed()))),
                (
                    "outcome",
                    Some(Value::Str(if status.is_some() {
                        "answered"
                    } else {
                        "aborted"
                    })),
                ),
                ("by", status.is_none().then_some(Value::Str("client"))),
                ("reason", Some(Value::Text(&reason))),
            ],
        );
    }
    failed(worker, flow, "request_head", status, e);
}

/// Something failed outside an exchange (`stage`): an `error` event for readers.
pub fn failed(
    worker: &Worker,
    flow: &Flow,
    stage: &'static str,
    status: Option<u16>,
    e: &dyn fmt::Display,
) {
    if let Some(tap) = worker.events() {
        tap.emit(Event {
            host: flow.event_host(),
            kind: EventKind::Error(ErrorEvent {
                id: flow.id,
                ts: Timestamp(SystemTime::now()),
                client: flow.peer.client,
                stage,
                status,
                message: e.to_string(),
            }),
        });
    }
}

/// A client's TLS handshake with lynxio (intercepting) failed, or no certificate could be
/// made for it: counted, and an `error` event for readers.
pub fn intercept_failed(worker: &Worker, flow: &Flow, stage: &'static str, e: &dyn fmt::Display) {
    worker.metrics.error(match stage {
        "certificate" => ErrorKind::Certificate,
        _ => ErrorKind::ClientTls,
    });
    failed(worker, flow, stage, None, e);
}

/// A tunnel was established and sniffed.
pub fn tunnel_open(worker: &Worker, flow: &mut Flow, tunnel: &Tunnel) {
    worker.metrics.tunnel(tunnel.kind).inc();
    let Some(tap) = worker.events() else {
        return;
    };
    tap.emit(Event {
        host: flow.event_host(),
        kind: EventKind::TunnelOpen(event::TunnelOpen {
            id: flow.id,
            ts: Timestamp(flow.started_at()),
            client: flow.peer.client,
            target: tunnel.target.clone(),
            sni: tunnel.sni.clone(),
            alpn: tunnel.alpn.clone(),
            kind: tunnel.kind.label(),
        }),
    });
}

/// A tunnel ended: one access line, counters, and `tunnel_close` for readers.
pub fn tunnel_close(worker: &Worker, flow: &Flow, tunnel: &Tunnel, ended: &TunnelEnded<'_>) {
    let m = &worker.metrics;
    m.tunnel(tunnel.kind).dec();
    m.bytes_in.add(ended.up);
    m.bytes_out.add(ended.down);
    let duration = flow.started.elapsed();
    if AccessLog::enabled(Level::Info) {
        let error = ended.error.map(|e| e.to_string());
        worker.access.line(
            Level::Info,
            "tunnel",
            &[
                ("id", Some(Value::Id(flow.id))),
                ("client", Some(Value::Addr(flow.peer.client))),
                ("method", Some(Value::Str("CONNECT"))),
                ("target", Some(Value::Str(&tunnel.target))),
                ("sni", tunnel.sni.as_deref().map(Value::Text)),
                ("alpn", tunnel.alpn.as_deref().map(Value::Text)),
                ("kind", Some(Value::Str(tunnel.kind.label()))),
                ("up", Some(Value::Num(ended.up))),
                ("down", Some(Value::Num(ended.down))),
                ("ms", Some(Value::Millis(duration))),
                ("end", Some(Value::Text(ended.end))),
                ("rule", flow.rule.as_deref().map(Value::Text)),
                ("error", error.as_deref().map(Value::Text)),
            ],
        );
    }
    let Some(tap) = worker.events() else {
        return;
    };
    tap.emit(Event {
        host: flow.event_host(),
        kind: EventKind::TunnelClose(event::TunnelClose {
            id: flow.id,
            target: tunnel.target.clone(),
            sni: tunnel.sni.clone(),
            alpn: tunnel.alpn.clone(),
            kind: tunnel.kind.label(),
            bytes_up: ended.up,
            bytes_down: ended.down,
            duration_ms: duration,
            end: ended.end,
            error: ended.error.map(|e| e.to_string()),
            rule: flow.rule.clone(),
        }),
    });
}

/// A WebSocket session started: `ws_open` for readers.
pub fn ws_open(worker: &Worker, flow: &Flow, handshake: &WsHandshake) {
    if let Some(tap) = worker.events() {
        tap.emit(Event {
            host: flow.event_host(),
            kind: EventKind::WsOpen(event::WsOpen {
                id: flow.id,
                ts: Timestamp(SystemTime::now()),
                url: flow.url.clone(),
                subprotocol: handshake.subprotocol.clone(),
                extensions: handshake.extensions.clone(),
            }),
        });
    }
}

/// Something a frame inspector saw pass (`from`: `client` or `server`).
pub fn ws_observed(worker: &Worker, flow: &Flow, from: &'static str, seen: Observed) {
    let Some(tap) = worker.events() else {
        return;
    };
    let kept = |first: Vec<u8>, truncated: bool| {
        (worker.cfg.capture_bodies > 0).then_some(event::Body {
            bytes: first,
            truncated,
        })
    };
    let is_ping = matches!(seen, Observed::Ping { .. });
    let kind = match seen {
        Observed::Message {
            opcode,
            length,
            fragments,
            compressed,
            first,
            truncated,
        } => EventKind::WsMessage(event::WsMessage {
            id: flow.id,
            from,
            opcode: match opcode {
                DataOpcode::Text => "text",
                DataOpcode::Binary => "binary",
            },
            length,
            fragments,
            compressed,
            data: kept(first, truncated),
        }),
        Observed::Ping { length, first } | Observed::Pong { length, first } => {
            let opcode = if is_ping { "ping" } else { "pong" };
            EventKind::WsMessage(event::WsMessage {
                id: flow.id,
                from,
                opcode,
                length,
                fragments: 1,
                compressed: false,
                data: kept(first, false),
            })
        }
        Observed::Close { code, reason } => EventKind::WsClose(event::WsClose {
            id: flow.id,
            from,
            code,
            reason,
        }),
    };
    tap.emit(Event {
        host: flow.event_host(),
        kind,
    });
}

/// A WebSocket peer broke the protocol: `ws_error` for readers.
pub fn ws_error(worker: &Worker, flow: &Flow, from: &'static str, e: &ProtocolError) {
    if let Some(tap) = worker.events() {
        tap.emit(Event {
            host: flow.event_host(),
            kind: EventKind::WsError(event::WsError {
                id: flow.id,
                from,
                code: e.code,
                reason: e.reason.to_owned(),
            }),
        });
    }
}
