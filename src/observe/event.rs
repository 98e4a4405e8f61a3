//! The flow event schema: what the capture file (`--capture`, JSON Lines), the live stream
//! (`/events`, Server-Sent Events) and `lynxio har` read. One JSON object per event, tagged by
//! `ev`. This is a user-facing format: field names say what they hold, durations are
//! milliseconds (`*_ms`, fractional), timestamps are RFC 3339 UTC with milliseconds, header
//! lists keep order, case and repeats as `[name, value]` pairs. Add fields, never rename them.
//!
//! Workers build events from their finished flow records (owned data, no references into the
//! connection) and hand them to the hub; serialisation happens on the hub's writer thread.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};

/// One event, and the host it concerns (for `/events?host=GLOB`; not serialised).
#[derive(Debug, Clone)]
pub struct Event {
    /// Lowercased host of the flow's URL or tunnel target.
    pub host: Arc<str>,
    pub kind: EventKind,
}

impl Event {
    /// The event as one JSON line (without the newline).
    pub fn to_json(&self) -> String {
        // Serialising these types cannot fail: every map key is a string.
        serde_json::to_string(&self.kind).unwrap_or_default()
    }

    /// Append the event as one JSON line (without the newline) to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        serde_json::to_writer(out, &self.kind)
    }

    /// The event's `ev` tag.
    pub fn name(&self) -> &'static str {
        match &self.kind {
            EventKind::Request(_) => "request",
            EventKind::Response(_) => "response",
            EventKind::End(_) => "end",
            EventKind::TunnelOpen(_) => "tunnel_open",
            EventKind::TunnelClose(_) => "tunnel_close",
            EventKind::Error(_) => "error",
            EventKind::WsOpen(_) => "ws_open",
            EventKind::WsMessage(_) => "ws_message",
            EventKind::WsClose(_) => "ws_close",
            EventKind::WsError(_) => "ws_error",
        }
    }
}

/// The event kinds, serialised with an `ev` tag.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum EventKind {
    /// A request head was read (also a CONNECT: its tunnel events carry the same id).
    Request(Request),
    /// The final response head was sent to the client (from the origin or from lynxio).
    Response(Response),
    /// An exchange finished, one way or another.
    End(End),
    /// A CONNECT tunnel was established and its first bytes sniffed.
    TunnelOpen(TunnelOpen),
    /// A tunnel ended.
    TunnelClose(TunnelClose),
    /// Something failed outside an exchange: an unreadable request head, a client TLS handshake.
    Error(ErrorEvent),
    /// A WebSocket session started (the origin's `101` reached the client); its id is the
    /// handshake exchange's.
    WsOpen(WsOpen),
    /// A WebSocket message (data, ping or pong) passed, in either direction.
    WsMessage(WsMessage),
    /// A WebSocket close frame passed.
    WsClose(WsClose),
    /// A WebSocket protocol error: both sides were sent a close frame with `code`.
    WsError(WsError),
}

#[derive(Debug, Clone, Serialize)]
pub struct WsOpen {
    pub id: FlowId,
    pub ts: Timestamp,
    pub url: String,
    /// `Sec-WebSocket-Protocol` the origin chose.
    pub subprotocol: Option<String>,
    /// `Sec-WebSocket-Extensions` the origin accepted (e.g. permessage-deflate).
    pub extensions: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WsMessage {
    pub id: FlowId,
    /// Who sent it: `client` or `server`.
    pub from: &'static str,
    /// `text`, `binary`, `ping` or `pong`.
    pub opcode: &'static str,
    /// Payload bytes (all fragments; compressed size when `compressed`).
    pub length: u64,
    pub fragments: u32,
    /// Sent with permessage-deflate: `data` is the compressed bytes.
    pub compressed: bool,
    /// The first bytes of the payload (unmasked), up to the capture body cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Body>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WsClose {
    pub id: FlowId,
    /// Who sent the close frame: `client` or `server`.
    pub from: &'static str,
    pub code: Option<u16>,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct WsError {
    pub id: FlowId,
    /// Whose frames broke the protocol: `client` or `server`.
    pub from: &'static str,
    /// The close code both sides were sent (1002 protocol error, 1007 invalid payload).
    pub code: u16,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Request {
    pub id: FlowId,
    pub ts: Timestamp,
    #[serde(serialize_with = "addr")]
    pub client: SocketAddr,
    #[serde(serialize_with = "addr")]
    pub listener: SocketAddr,
    pub method: Cow<'static, str>,
    pub url: String,
    pub version: &'static str,
    pub headers: Fields,
}

#[derive(Debug, Clone, Serialize)]
pub struct Response {
    pub id: FlowId,
    pub status: u16,
    pub version: &'static str,
    pub headers: Fields,
    #[serde(serialize_with = "ms")]
    pub ttfb_ms: Duration,
    /// `origin` (forwarded) or `lynxio` (answered by the proxy itself).
    pub from: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct End {
    pub id: FlowId,
    /// Final status the client received, if a response head reached it.
    pub status: Option<u16>,
    pub request_body_bytes: u64,
    pub response_body_bytes: u64,
    #[serde(serialize_with = "ms")]
    pub duration_ms: Duration,
    /// `completed`, `answered` (lynxio answered: local page or error) or `aborted`.
    pub outcome: &'static str,
    /// Who ended an aborted exchange: `client`, `origin` or `timeout`.
    pub aborted_by: Option<&'static str>,
    /// Why lynxio answered or the exchange aborted.
    pub reason: Option<String>,
    pub upstream: Option<UpstreamInfo>,
    /// Name of the rule that acted on this exchange.
    pub rule: Option<Arc<str>>,
    /// The connection switched protocols (`101`): what was relayed after the switch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<UpgradeInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body: Option<Body>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body: Option<Body>,
}

/// What an upgraded exchange relayed after its `101`.
#[derive(Debug, Clone, Serialize)]
pub struct UpgradeInfo {
    /// `websocket`.
    pub protocol: &'static str,
    /// Client → origin bytes after the switch.
    pub bytes_up: u64,
    /// Origin → client bytes after the switch.
    pub bytes_down: u64,
    /// `done`, `idle timeout`, `client failed`, `origin failed`, or `client protocol error` /
    /// `origin protocol error` (inspected sessions).
    pub end: &'static str,
    pub error: Option<String>,
    /// Messages each way (data, ping and pong), when the session was inspected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages_up: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages_down: Option<u64>,
}

/// The origin connection an exchange used.
#[derive(Debug, Clone, Serialize)]
pub struct UpstreamInfo {
    /// `host:port` as dialed.
    pub target: String,
    /// Taken from the idle pool rather than dialed for this exchange.
    pub reused: bool,
    /// Time to resolve and connect (and TLS, when intercepting); 0 when reused.
    #[serde(serialize_with = "ms")]
    pub connect_ms: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct TunnelOpen {
    pub id: FlowId,
    pub ts: Timestamp,
    #[serde(serialize_with = "addr")]
    pub client: SocketAddr,
    pub target: String,
    pub sni: Option<String>,
    pub alpn: Option<String>,
    /// What the first bytes were: `tls`, `intercepted`, `http`, `http-upgrade` or `opaque`.
    pub kind: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct TunnelClose {
    pub id: FlowId,
    pub target: String,
    pub sni: Option<String>,
    pub alpn: Option<String>,
    pub kind: &'static str,
    /// Client → origin bytes (for `http` and `intercepted` tunnels: body bytes of the
    /// exchanges inside; their heads are in their own events).
    pub bytes_up: u64,
    pub bytes_down: u64,
    #[serde(serialize_with = "ms")]
    pub duration_ms: Duration,
    /// `done`, `idle timeout`, `client failed` or `origin failed`.
    pub end: &'static str,
    pub error: Option<String>,
    /// Name of the rule that decided this tunnel (intercept or passthrough).
    pub rule: Option<Arc<str>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorEvent {
    pub id: FlowId,
    pub ts: Timestamp,
    #[serde(serialize_with = "addr")]
    pub client: SocketAddr,
    /// Where it failed: `request_head`, `tls_handshake`, `certificate`.
    pub stage: &'static str,
    /// Status answered to the client, if any.
    pub status: Option<u16>,
    pub message: String,
}

/// A process-unique flow id: worker index and that worker's flow sequence number, shown as
/// `W-HEX` (`0-1f`). Also the `id` field of every log line about the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowId {
    pub worker: u32,
    pub seq: u64,
}

impl std::fmt::Display for FlowId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{:x}", self.worker, self.seq)
    }
}

impl Serialize for FlowId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Three ids per exchange: formatted by hand rather than through `core::fmt`.
        let mut out = [0u8; 40];
        let mut n = 0;
        for &b in itoa::Buffer::new().format(self.worker).as_bytes() {
            out[n] = b;
            n += 1;
        }
        out[n] = b'-';
        n += 1;
        let digits = ((64 - self.seq.leading_zeros()).max(1)).div_ceil(4) as usize;
        for i in (0..digits).rev() {
            let nibble = ((self.seq >> (i * 4)) & 0xf) as u8;
            out[n] = b"0123456789abcdef"[nibble as usize];
            n += 1;
        }
        s.serialize_str(std::str::from_utf8(&out[..n]).unwrap_or_default())
    }
}

/// A socket address as `a.b.c.d:port` / `[v6]:port`, IPv4 formatted by hand (two per
/// exchange).
fn addr<S: Serializer>(a: &SocketAddr, s: S) -> Result<S::Ok, S::Error> {
    let SocketAddr::V4(v4) = a else {
        return s.collect_str(a);
    };
    let mut out = [0u8; 21];
    let mut n = 0;
    let mut digits = itoa::Buffer::new();
    for (i, octet) in v4.ip().octets().iter().enumerate() {
        if i > 0 {
            out[n] = b'.';
            n += 1;
        }
        for &b in digits.format(*octet).as_bytes() {
            out[n] = b;
            n += 1;
        }
    }
    out[n] = b':';
    n += 1;
    for &b in digits.format(v4.port()).as_bytes() {
        out[n] = b;
        n += 1;
    }
    s.serialize_str(std::str::from_utf8(&out[..n]).unwrap_or_default())
}

/// Wall-clock time, serialised as RFC 3339 UTC with milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Timestamp(pub SystemTime);

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(self.0))
    }
}

fn ms<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    // Microsecond resolution is plenty and keeps the numbers short.
    s.serialize_f64((d.as_micros() as f64) / 1000.0)
}

/// Header fields in received order, stored in one buffer; serialised as `[[name, value], …]`
/// (bytes that are not UTF-8 become U+FFFD).
#[derive(Debug, Clone, Default)]
pub struct Fields {
    bytes: Vec<u8>,
    /// (name end, value end) offsets into `bytes`; each field starts where the previous ends.
    ends: Vec<(u32, u32)>,
}

impl Fields {
    pub fn with_capacity(fields: usize, bytes: usize) -> Fields {
        Fields {
            bytes: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(fields),
        }
    }

    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        self.bytes.extend_from_slice(name);
        let name_end = self.bytes.len() as u32;
        self.bytes.extend_from_slice(value);
        self.ends.push((name_end, self.bytes.len() as u32));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let mut start = 0usize;
        self.ends.iter().map(move |&(n, v)| {
            let (n, v) = (n as usize, v as usize);
            let field = (
                self.bytes.get(start..n).unwrap_or_default(),
                self.bytes.get(n..v).unwrap_or_default(),
            );
            start = v;
            field
        })
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.len()))?;
        for (name, value) in self.iter() {
            seq.serialize_element(&[lossy(name), lossy(value)])?;
        }
        seq.end()
    }
}

/// `bytes` as text, with U+FFFD for bytes that are not UTF-8 (the valid case checked first: it
/// is by far the common one, and the faster check).
fn lossy(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// The first bytes of a body, kept when `--capture-bodies N` is set.
#[derive(Debug, Clone, Default)]
pub struct Body {
    pub bytes: Vec<u8>,
    /// The body was longer than what was kept.
    pub truncated: bool,
}

impl Serialize for Body {
    /// `{"encoding":"utf8","data":"…","truncated":false}`, or `"encoding":"base64"` when the
    /// kept bytes are not valid UTF-8 (a multi-byte character cut at the cap still counts as
    /// text).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(3))?;
        match text_prefix(&self.bytes, self.truncated) {
            Some(text) => {
                map.serialize_entry("encoding", "utf8")?;
                map.serialize_entry("data", text)?;
            }
            None => {
                map.serialize_entry("encoding", "base64")?;
                map.serialize_entry(
                    "data",
                    &base64::engine::general_purpose::STANDARD.encode(&self.bytes),
                )?;
            }
        }
        map.serialize_entry("truncated", &self.truncated)?;
        map.end()
    }
}

/// `bytes` as text when it is UTF-8, allowing an incomplete character at the end of a
/// truncated capture (dropped).
fn text_prefix(bytes: &[u8], truncated: bool) -> Option<&str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Some(s),
        Err(e) if truncated && e.error_len().is_none() => {
            std::str::from_utf8(bytes.get(..e.valid_up_to())?).ok()
        }
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_order_and_repeats() {
        let mut f = Fields::default();
        f.push(b"Host", b"a.test");
        f.push(b"Set-Cookie", b"x=1");
        f.push(b"Set-Cookie", b"");
        let v: Vec<_> = f.iter().collect();
        assert_eq!(
            v,
            vec![
                (&b"Host"[..], &b"a.test"[..]),
                (&b"Set-Cookie"[..], &b"x=1"[..]),
                (&b"Set-Cookie"[..], &b""[..])
            ]
        );
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"[["Host","a.test"],["Set-Cookie","x=1"],["Set-Cookie",""]]"#
        );
    }

    #[test]
    fn bodies_as_text_or_base64() {
        let text = Body {
            bytes: "héllo".as_bytes().to_vec(),
            truncated: false,
        };
        assert_eq!(
            serde_json::to_string(&text).unwrap(),
            r#"{"encoding":"utf8","data":"héllo","truncated":false}"#
        );
        // A character cut by the cap is still text.
        let cut = Body {
            bytes: "hé".as_bytes()[..2].to_vec(),
            truncated: true,
        };
        assert!(
            serde_json::to_string(&cut)
                .unwrap()
                .contains(r#""data":"h""#)
        );
        let binary = Body {
            bytes: vec![0xff, 0x00, 0x10],
            truncated: false,
        };
        assert_eq!(
            serde_json::to_string(&binary).unwrap(),
            r#"{"encoding":"base64","data":"/wAQ","truncated":false}"#
        );
    }

    #[test]
    fn events_are_tagged_objects() {
        let ev = Event {
            host: Arc::from("a.test"),
            kind: EventKind::End(End {
                id: FlowId { worker: 0, seq: 31 },
                status: Some(200),
                request_body_bytes: 5,
                response_body_bytes: 12,
                duration_ms: Duration::from_micros(3400),
                outcome: "completed",
                aborted_by: None,
                reason: None,
                upstream: None,
                rule: None,
                upgrade: None,
                request_body: None,
                response_body: None,
            }),
        };
        let v: serde_json::Value = serde_json::from_str(&ev.to_json()).unwrap();
        assert_eq!(v["ev"], "end");
        assert_eq!(v["id"], "0-1f");
        for (seq, want) in [
            (0, "\"3-0\""),
            (0xabc, "\"3-abc\""),
            (u64::MAX, "\"3-ffffffffffffffff\""),
        ] {
            let id = FlowId { worker: 3, seq };
            assert_eq!(serde_json::to_string(&id).unwrap(), want);
            assert_eq!(format!("\"{id}\""), want);
        }
        assert_eq!(v["duration_ms"], 3.4);
        assert_eq!(v["outcome"], "completed");
        assert_eq!(ev.name(), "end");
    }
}
