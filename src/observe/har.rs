//! The capture → HAR 1.2 converter behind `lynxio har`: it reads the JSON Lines flow events of
//! a capture (schema in [`super::event`]), joins each exchange's `request`, `response` and `end`
//! events by flow id, and renders every HTTP exchange as a HAR 1.2 entry (request and response
//! heads, cookies, query string, captured bodies, timings) in request order. It owns the
//! tolerance rules for imperfect captures: malformed lines are skipped and reported, unknown
//! event kinds and tunnels are left out, and exchanges cut short (no response, no `end`) still
//! become entries with what is known.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{self, BufRead};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde_json::{Map, Value, json};

mod decode;
#[cfg(test)]
mod tests;

use decode::{form_pairs, set_cookie, split_pair, status_text};

/// Converts a capture (JSON Lines of flow events) to a HAR 1.2 document. `warn(line, why)` is
/// called for each line that is skipped.
pub fn convert<R: BufRead>(
    mut input: R,
    warn: &mut dyn FnMut(usize, &str),
) -> io::Result<serde_json::Value> {
    let mut capture = Capture::default();
    let mut buf = Vec::new();
    let mut line = 0usize;
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        line += 1;
        let result = match std::str::from_utf8(&buf) {
            // Without its line end JSON errors point into the line; a byte order mark (at the
            // start of the file) is not part of the event.
            Ok(text) => capture.add_line(
                text.trim_start_matches('\u{feff}')
                    .trim_end_matches(['\n', '\r']),
            ),
            Err(_) => Err("not UTF-8".to_owned()),
        };
        if let Err(why) = result {
            warn(line, &why);
        }
        if buf.capacity() > LINE_BUFFER_KEEP {
            buf = Vec::new();
        }
    }
    Ok(capture.into_har())
}

/// A line buffer grown beyond this by one huge line is released rather than kept.
const LINE_BUFFER_KEEP: usize = 1 << 20;

/// Durations beyond this (about 31 years, in microseconds) are clamped.
const MAX_MICROS: f64 = 1e15;

// ---------------------------------------------------------------------------------------------
// Reading: events joined into flows.

/// The exchanges read so far.
#[derive(Default)]
struct Capture {
    flows: Vec<Flow>,
    /// Flow id → index in `flows` of the latest request with that id (ids restart when a
    /// capture file is appended to by a new lynxio process).
    by_id: HashMap<String, usize>,
    /// Ids of CONNECT requests: their `response`/`end` events are ignored.
    tunnels: HashSet<String>,
}

struct Flow {
    id: String,
    started: SystemTime,
    client: Option<String>,
    method: String,
    url: String,
    version: String,
    headers: Vec<(String, String)>,
    response: Option<Response>,
    end: Option<End>,
}

struct Response {
    status: u16,
    version: String,
    headers: Vec<(String, String)>,
    ttfb_us: u64,
    from: String,
}

struct End {
    status: Option<u16>,
    request_body_bytes: u64,
    response_body_bytes: u64,
    duration_us: u64,
    outcome: String,
    aborted_by: Option<String>,
    reason: Option<String>,
    upstream: Option<Upstream>,
    rule: Option<String>,
    request_body: Option<CapturedBody>,
    response_body: Option<CapturedBody>,
}

struct Upstream {
    target: String,
    reused: bool,
    connect_us: u64,
}

/// A body prefix as the capture holds it.
struct CapturedBody {
    /// `data` is base64 (the bytes were not UTF-8); otherwise it is the text itself.
    base64: bool,
    data: String,
    truncated: bool,
    /// Bytes kept (decoded length).
    kept: usize,
}

impl Capture {
    /// Reads one line; `Err(why)` when it is skipped as malformed.
    fn add_line(&mut self, text: &str) -> Result<(), String> {
        if text.trim().is_empty() {
            return Ok(());
        }
        let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let Value::Object(map) = value else {
            return Err("not a JSON object".to_owned());
        };
        let obj = Obj(&map);
        let ev = match map.get("ev") {
            None => return Err("missing `ev`".to_owned()),
            Some(Value::String(ev)) => ev.as_str(),
            Some(_) => return Err("`ev` is not a string".to_owned()),
        };
        if !matches!(
            ev,
            "request" | "response" | "end" | "tunnel_open" | "tunnel_close" | "error"
        ) {
            // A newer event kind: not ours to judge.
            return Ok(());
        }
        let id = obj.str("id")?;
        if id.is_empty() {
            return Err("empty `id`".to_owned());
        }
        let result = match ev {
            "request" => self.request(id, obj),
            "response" => self.response(id, obj),
            "end" => self.end(id, obj),
            _ => Ok(()),
        };
        result.map_err(|why| format!("{ev} {id}: {why}"))
    }

    fn request(&mut self, id: &str, obj: Obj) -> Result<(), String> {
        let ts = obj.str("ts")?;
        let started = humantime::parse_rfc3339_weak(ts)
            .map_err(|e| format!("`ts` is not an RFC 3339 timestamp ({e})"))?;
        let method = obj.str("method")?;
        let url = obj.str("url")?;
        let version = obj.str("version")?;
        let headers = obj.headers("headers")?;
        let client = obj.opt_string("client")?;
        // The id now names this request, whatever it named before.
        self.by_id.remove(id);
        self.tunnels.remove(id);
        if method == "CONNECT" {
            self.tunnels.insert(id.to_owned());
            return Ok(());
        }
        self.by_id.insert(id.to_owned(), self.flows.len());
        self.flows.push(Flow {
            id: id.to_owned(),
            started,
            client,
            method: method.to_owned(),
            url: url.to_owned(),
            version: version.to_owned(),
            headers,
            response: None,
            end: None,
        });
        Ok(())
    }

    fn response(&mut self, id: &str, obj: Obj) -> Result<(), String> {
        let response = Response {
            status: obj.req("status", STATUS, as_status)?,
            version: obj.str("version")?.to_owned(),
            headers: obj.headers("headers")?,
            ttfb_us: obj.req("ttfb_ms", NUMBER, as_micros)?,
            from: obj.str("from")?.to_owned(),
        };
        let Some(flow) = self.flow(id)? else {
            return Ok(());
        };
        if flow.response.is_some() {
            return Err("second response for this flow".to_owned());
        }
        flow.response = Some(response);
        Ok(())
    }

    fn end(&mut self, id: &str, obj: Obj) -> Result<(), String> {
        let upstream = match obj.opt("upstream", "an object", Value::as_object)? {
            None => None,
            Some(up) => Some(Upstream {
                target: Obj(up).str("target")?.to_owned(),
                reused: Obj(up).req("reused", "a boolean", Value::as_bool)?,
                connect_us: Obj(up).req("connect_ms", NUMBER, as_micros)?,
            }),
        };
        let end = End {
            status: obj.opt("status", STATUS, as_status)?,
            request_body_bytes: obj.req("request_body_bytes", COUNT, Value::as_u64)?,
            response_body_bytes: obj.req("response_body_bytes", COUNT, Value::as_u64)?,
            duration_us: obj.req("duration_ms", NUMBER, as_micros)?,
            outcome: obj.str("outcome")?.to_owned(),
            aborted_by: obj.opt_string("aborted_by")?,
            reason: obj.opt_string("reason")?,
            upstream,
            rule: obj.opt_string("rule")?,
            request_body: obj.body("request_body")?,
            response_body: obj.body("response_body")?,
        };
        let Some(flow) = self.flow(id)? else {
            return Ok(());
        };
        if flow.end.is_some() {
            return Err("second end for this flow".to_owned());
        }
        flow.end = Some(end);
        Ok(())
    }

    /// The flow a `response`/`end` belongs to; `None` for a tunnel's (ignored), `Err` when
    /// there was no request with this id.
    fn flow(&mut self, id: &str) -> Result<Option<&mut Flow>, String> {
        if self.tunnels.contains(id) {
            return Ok(None);
        }
        match self.by_id.get(id).and_then(|&i| self.flows.get_mut(i)) {
            Some(flow) => Ok(Some(flow)),
            None => Err("no request event with this id before it".to_owned()),
        }
    }

    fn into_har(mut self) -> Value {
        // Stable: exchanges started in the same millisecond keep capture order.
        self.flows.sort_by_key(|f| f.started);
        let entries: Vec<Value> = self.flows.iter().map(entry).collect();
        json!({
            "log": {
                "version": "1.2",
                "creator": { "name": "lynxio", "version": env!("CARGO_PKG_VERSION") },
                "pages": [],
                "entries": entries,
            }
        })
    }
}

/// Typed access to an event's fields; errors name the field.
#[derive(Clone, Copy)]
struct Obj<'a>(&'a Map<String, Value>);

impl<'a> Obj<'a> {
    /// A required field, read by `get`; `what` names the expected type in errors.
    fn req<T>(
        &self,
        key: &str,
        what: &str,
        get: impl FnOnce(&'a Value) -> Option<T>,
    ) -> Result<T, String> {
        let value = self.0.get(key).ok_or_else(|| format!("missing `{key}`"))?;
        get(value).ok_or_else(|| format!("`{key}` is not {what}"))
    }

    /// An optional field: absent or null is `None`.
    fn opt<T>(
        &self,
        key: &str,
        what: &str,
        get: impl FnOnce(&'a Value) -> Option<T>,
    ) -> Result<Option<T>, String> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => get(value)
                .map(Some)
                .ok_or_else(|| format!("`{key}` is not {what}")),
        }
    }

    fn str(&self, key: &str) -> Result<&'a str, String> {
        self.req(key, "a string", Value::as_str)
    }

    fn opt_string(&self, key: &str) -> Result<Option<String>, String> {
        Ok(self.opt(key, "a string", Value::as_str)?.map(str::to_owned))
    }

    fn headers(&self, key: &str) -> Result<Vec<(String, String)>, String> {
        let pairs = |list: &'a Value| {
            list.as_array()?
                .iter()
                .map(|pair| match pair.as_array()?.as_slice() {
                    [Value::String(name), Value::String(value)] => {
                        Some((name.clone(), value.clone()))
                    }
                    _ => None,
                })
                .collect()
        };
        self.req(key, "a list of [name, value] string pairs", pairs)
    }

    fn body(&self, key: &str) -> Result<Option<CapturedBody>, String> {
        let Some(body) = self.opt(key, "an object", Value::as_object)? else {
            return Ok(None);
        };
        let body = Obj(body);
        let in_body = |e: String| format!("{key}: {e}");
        let data = body.str("data").map_err(in_body)?;
        let truncated = body
            .req("truncated", "a boolean", Value::as_bool)
            .map_err(in_body)?;
        let (base64, kept) = match body.str("encoding").map_err(in_body)? {
            "utf8" => (false, data.len()),
            "base64" => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .map_err(|e| format!("{key}: `data` is not base64 ({e})"))?;
                (true, bytes.len())
            }
            other => return Err(format!("{key}: unknown `encoding` {other:?}")),
        };
        let data = data.to_owned();
        Ok(Some(CapturedBody {
            base64,
            data,
            truncated,
            kept,
        }))
    }
}

const STATUS: &str = "an HTTP status code";
const NUMBER: &str = "a number";
const COUNT: &str = "a non-negative integer";

fn as_status(v: &Value) -> Option<u16> {
    v.as_u64()
        .filter(|&s| s <= 999)
        .and_then(|s| u16::try_from(s).ok())
}

/// A `*_ms` duration in whole microseconds (negative values count as 0).
fn as_micros(v: &Value) -> Option<u64> {
    // `as` saturates; NaN cannot come out of JSON.
    v.as_f64()
        .map(|ms| (ms * 1000.0).round().clamp(0.0, MAX_MICROS) as u64)
}

// ---------------------------------------------------------------------------------------------
// Writing: one HAR entry per flow.

fn entry(flow: &Flow) -> Value {
    let timings = Timings::of(flow);
    let mut entry = Map::new();
    entry.insert(
        "startedDateTime".into(),
        iso(flow.started, Precision::Millis).map_or(Value::Null, Value::String),
    );
    entry.insert("time".into(), json!(ms(timings.total)));
    entry.insert("request".into(), request(flow));
    entry.insert("response".into(), response(flow));
    entry.insert("cache".into(), json!({}));
    entry.insert("timings".into(), timings.to_json());
    if let Some(ip) = flow
        .end
        .as_ref()
        .and_then(|e| e.upstream.as_ref())
        .and_then(|u| u.target.parse::<SocketAddr>().ok())
    {
        entry.insert("serverIPAddress".into(), json!(ip.ip().to_string()));
    }
    entry.insert("connection".into(), json!(flow.id));
    let failed = match &flow.end {
        Some(end) if end.outcome == "aborted" || response_status(flow) == 0 => {
            Some(end.reason.clone().unwrap_or_else(|| end.outcome.clone()))
        }
        _ => None,
    };
    if let Some(comment) = outcome_comment(flow) {
        entry.insert("comment".into(), json!(comment));
    }
    if let Some(error) = failed {
        entry.insert("_error".into(), json!(error));
    }
    entry.insert("_lynxio".into(), lynxio_fields(flow));
    Value::Object(entry)
}

/// What happened to an exchange that did not simply complete, in words.
fn outcome_comment(flow: &Flow) -> Option<String> {
    let Some(end) = &flow.end else {
        return Some("the capture ends before this exchange finished".to_owned());
    };
    let what = match end.outcome.as_str() {
        "completed" => return None,
        "answered" => "answered by lynxio".to_owned(),
        "aborted" => match &end.aborted_by {
            Some(by) => format!("aborted by {by}"),
            None => "aborted".to_owned(),
        },
        other => other.to_owned(),
    };
    Some(match &end.reason {
        Some(reason) => format!("{what}: {reason}"),
        None => what,
    })
}

/// lynxio's own view of the exchange (custom fields start with `_` in HAR).
fn lynxio_fields(flow: &Flow) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(flow.id));
    if let Some(client) = &flow.client {
        m.insert("client".into(), json!(client));
    }
    if let Some(resp) = &flow.response {
        m.insert("from".into(), json!(resp.from));
    }
    if let Some(end) = &flow.end {
        m.insert("outcome".into(), json!(end.outcome));
        let optional = [
            ("abortedBy", &end.aborted_by),
            ("reason", &end.reason),
            ("rule", &end.rule),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                m.insert(key.into(), json!(value));
            }
        }
        if let Some(up) = &end.upstream {
            m.insert(
                "upstream".into(),
                json!({ "target": up.target, "reused": up.reused, "connectMs": ms(up.connect_us) }),
            );
        }
    }
    Value::Object(m)
}

fn request(flow: &Flow) -> Value {
    let url = flow.url.split('#').next().unwrap_or_default();
    let cookies: Vec<Value> = header_values(&flow.headers, "cookie")
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (name, value) = split_pair(pair)?;
            Some(json!({ "name": name, "value": value }))
        })
        .collect();
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let mut req = Map::new();
    req.insert("method".into(), json!(flow.method));
    req.insert("url".into(), json!(url));
    req.insert("httpVersion".into(), json!(flow.version));
    req.insert("cookies".into(), Value::Array(cookies));
    req.insert("headers".into(), headers_json(&flow.headers));
    req.insert("queryString".into(), Value::Array(form_pairs(query)));
    let target_len = request_target_len(url);
    let line_len = flow.method.len() + 1 + target_len + 1 + flow.version.len() + 2;
    req.insert(
        "headersSize".into(),
        json!(line_len + fields_len(&flow.headers)),
    );
    let end = flow.end.as_ref();
    req.insert(
        "bodySize".into(),
        end.map_or(json!(-1), |e| json!(e.request_body_bytes)),
    );
    if let Some((end, body)) = end.and_then(|e| Some((e, e.request_body.as_ref()?))) {
        let mime = header(&flow.headers, "content-type").unwrap_or("");
        let mut post = Map::new();
        post.insert("mimeType".into(), json!(mime));
        if !body.base64 && is_mime(mime, "application/x-www-form-urlencoded") {
            post.insert("params".into(), Value::Array(form_pairs(&body.data)));
        }
        post.insert("text".into(), json!(body.data));
        let mut notes = Vec::new();
        if body.base64 {
            post.insert("_encoding".into(), json!("base64"));
            notes.push("text is base64: the body is not UTF-8".to_owned());
        }
        if body.truncated {
            notes.push(truncation_note(body, end.request_body_bytes));
        }
        if !notes.is_empty() {
            post.insert("comment".into(), json!(notes.join("; ")));
        }
        req.insert("postData".into(), Value::Object(post));
    }
    Value::Object(req)
}

/// The status the client got: the response event's, else the `end`'s, else 0.
fn response_status(flow: &Flow) -> u16 {
    match (&flow.response, &flow.end) {
        (Some(resp), _) => resp.status,
        (None, Some(end)) => end.status.unwrap_or(0),
        (None, None) => 0,
    }
}

fn response(flow: &Flow) -> Value {
    let status = response_status(flow);
    let end = flow.end.as_ref();
    let no_headers = Vec::new();
    let headers = flow.response.as_ref().map_or(&no_headers, |r| &r.headers);
    let ttfb = Duration::from_micros(flow.response.as_ref().map_or(0, |r| r.ttfb_us));
    let base_time = flow.started.checked_add(ttfb).unwrap_or(flow.started);
    let cookies: Vec<Value> = header_values(headers, "set-cookie")
        .filter_map(|v| set_cookie(v, base_time))
        .collect();

    let mut content = Map::new();
    content.insert(
        "size".into(),
        json!(end.map_or(0, |e| e.response_body_bytes)),
    );
    content.insert(
        "mimeType".into(),
        json!(header(headers, "content-type").unwrap_or("x-unknown")),
    );
    if let Some((end, body)) = end.and_then(|e| Some((e, e.response_body.as_ref()?))) {
        content.insert("text".into(), json!(body.data));
        if body.base64 {
            content.insert("encoding".into(), json!("base64"));
        }
        let mut notes = Vec::new();
        if body.truncated {
            notes.push(truncation_note(body, end.response_body_bytes));
        }
        if let Some(coding) =
            header(headers, "content-encoding").filter(|c| !c.eq_ignore_ascii_case("identity"))
        {
            notes.push(format!(
                "text is the body as sent, still in Content-Encoding {coding}"
            ));
        }
        if !notes.is_empty() {
            content.insert("comment".into(), json!(notes.join("; ")));
        }
    }

    let head_size = match &flow.response {
        Some(resp) => {
            let code_len = resp.status.to_string().len();
            let line = resp.version.len() + 1 + code_len + 1 + status_text(resp.status).len() + 2;
            json!(line + fields_len(headers))
        }
        None => json!(-1),
    };
    json!({
        "status": status,
        "statusText": status_text(status),
        "httpVersion": flow.response.as_ref().map_or("", |r| r.version.as_str()),
        "cookies": cookies,
        "headers": headers_json(headers),
        "content": content,
        "redirectURL": header(headers, "location").unwrap_or(""),
        "headersSize": head_size,
        "bodySize": end.map_or(json!(-1), |e| json!(e.response_body_bytes)),
    })
}

fn truncation_note(body: &CapturedBody, total: u64) -> String {
    format!(
        "truncated: only the first {} of {total} bytes were captured",
        body.kept
    )
}

/// Entry timings in microseconds; `connect` is `None` when no connection was opened for the
/// exchange (reused, answered locally, or unknown).
struct Timings {
    connect: Option<u64>,
    wait: u64,
    receive: u64,
    total: u64,
}

impl Timings {
    /// Splits the exchange's duration at the connect time and the first response byte; the
    /// parts always add up to the total, also when the capture's numbers disagree.
    fn of(flow: &Flow) -> Timings {
        let ttfb = flow.response.as_ref().map(|r| r.ttfb_us);
        let Some(end) = &flow.end else {
            // Cut off: all that is known is how long the response head took, if it came.
            let wait = ttfb.unwrap_or(0);
            return Timings {
                connect: None,
                wait,
                receive: 0,
                total: wait,
            };
        };
        let total = end.duration_us;
        let connect = end
            .upstream
            .as_ref()
            .filter(|u| !u.reused)
            .map(|u| u.connect_us.min(total));
        let connected = connect.unwrap_or(0);
        // No response head: the whole remainder was spent waiting for one.
        let first_byte = ttfb.map_or(total, |t| t.clamp(connected, total));
        Timings {
            connect,
            wait: first_byte - connected,
            receive: total - first_byte,
            total,
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "blocked": -1,
            "dns": -1,
            "connect": self.connect.map_or(json!(-1), |c| json!(ms(c))),
            "send": 0,
            "wait": ms(self.wait),
            "receive": ms(self.receive),
            "ssl": -1,
        })
    }
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

// ---------------------------------------------------------------------------------------------
// Heads, cookies, query strings.

fn headers_json(headers: &[(String, String)]) -> Value {
    Value::Array(
        headers
            .iter()
            .map(|(name, value)| json!({ "name": name, "value": value }))
            .collect(),
    )
}

fn header_values<'a, 'n>(
    headers: &'a [(String, String)],
    name: &'n str,
) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    header_values(headers, name).next()
}

/// `Name: value\r\n` for each field, and the blank line that ends the head.
fn fields_len(headers: &[(String, String)]) -> usize {
    headers
        .iter()
        .map(|(n, v)| n.len() + 2 + v.len() + 2)
        .sum::<usize>()
        + 2
}

/// Length of the request target as the client sent it: absolute-form to the proxy for
/// `http://`, origin-form (`/path?query`) inside the intercepted TLS connection for `https://`.
fn request_target_len(url: &str) -> usize {
    match url.strip_prefix("https://") {
        Some(rest) => match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes().get(i) == Some(&b'/') => rest.len() - i,
            Some(i) => rest.len() - i + 1,
            None => 1,
        },
        None => url.len(),
    }
}

fn is_mime(value: &str, mime: &str) -> bool {
    value
        .split(';')
        .next()
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(mime))
}

#[derive(Clone, Copy)]
enum Precision {
    Seconds,
    Millis,
}

/// RFC 3339 UTC (ISO 8601); `None` outside 1970–9999, which the formatter cannot show.
fn iso(t: SystemTime, precision: Precision) -> Option<String> {
    t.duration_since(UNIX_EPOCH).ok()?;
    let mut out = String::new();
    match precision {
        Precision::Seconds => write!(out, "{}", humantime::format_rfc3339_seconds(t)),
        Precision::Millis => write!(out, "{}", humantime::format_rfc3339_millis(t)),
    }
    .ok()?;
    Some(out)
}
