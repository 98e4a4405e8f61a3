//! The access log's writer: one line per finished exchange and per finished tunnel, in the same
//! shape as the rest of the log (`--log-format text|json`) and under the same filter (target
//! `lynxio::access`), but formatted without the generic event machinery into a per-worker
//! buffer that goes to the log writer thread in batches — when it passes
//! [`ACCESS_BATCH_BYTES`], every [`ACCESS_FLUSH_EVERY`], and when the worker stops. Measured on
//! small requests, a line through the generic path cost about a quarter of the request's CPU
//! (formatting, a channel send and a writer wake-up per line); batched, it is a few hundred
//! nanoseconds.

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config::LogFormat;
use crate::observe::event::FlowId;

/// The log target of access lines (`--log lynxio::access=off` silences them).
pub const ACCESS_TARGET: &str = "lynxio::access";
/// A worker's buffered access lines are handed to the log writer beyond this size.
pub const ACCESS_BATCH_BYTES: usize = 32 * 1024;
/// … and at least this often.
pub const ACCESS_FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Where log bytes go (the log writer thread's queue); each worker gets its own handle.
pub type LogSink = Box<dyn std::io::Write + Send>;

/// How the process writes logs: the format, and a maker of sink handles for the workers.
#[derive(Clone)]
pub struct LogOutput {
    pub format: LogFormat,
    pub make_sink: Arc<dyn Fn() -> LogSink + Send + Sync>,
}

/// Severity of an access line: completed exchanges are `INFO`, failed or cut-short ones `WARN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
}

/// A log field value.
pub enum Value<'a> {
    /// Written bare in text, as a JSON string.
    Str(&'a str),
    /// Written quoted (Debug-escaped) in text, as a JSON string: free text with spaces.
    Text(&'a str),
    Num(u64),
    /// A duration in milliseconds with three decimals (microseconds).
    Millis(Duration),
    /// A value written with `Display`, bare in text, a JSON string.
    Addr(SocketAddr),
    Id(FlowId),
}

/// One worker's access log.
pub struct AccessLog {
    format: LogFormat,
    sink: RefCell<LogSink>,
    buf: RefCell<String>,
    /// The `YYYY-MM-DDTHH:MM:SS` of the last line's second, so most lines format only the
    /// microseconds.
    clock: Cell<(u64, [u8; 19])>,
}

impl AccessLog {
    pub fn new(out: &LogOutput) -> AccessLog {
        AccessLog {
            format: out.format,
            sink: RefCell::new((out.make_sink)()),
            buf: RefCell::new(String::with_capacity(ACCESS_BATCH_BYTES + 1024)),
            clock: Cell::new((u64::MAX, [b'0'; 19])),
        }
    }

    /// Whether lines at `level` pass the log filter (a cached per-callsite check).
    pub fn enabled(level: Level) -> bool {
        match level {
            Level::Info => tracing::enabled!(target: ACCESS_TARGET, tracing::Level::INFO),
            Level::Warn => tracing::enabled!(target: ACCESS_TARGET, tracing::Level::WARN),
        }
    }

    /// Append one line: `message` and the fields (a `None` value is left out).
    pub fn line(&self, level: Level, message: &str, fields: &[(&str, Option<Value<'_>>)]) {
        let mut buf = self.buf.borrow_mut();
        let ts = self.timestamp(SystemTime::now());
        let ts = std::str::from_utf8(&ts).unwrap_or("1970-01-01T00:00:00.000000Z");
        // Writing into a String cannot fail.
        let _ = match self.format {
            LogFormat::Text => text_line(&mut buf, ts, level, message, fields),
            LogFormat::Json => json_line(&mut buf, ts, level, message, fields),
        };
        if buf.len() >= ACCESS_BATCH_BYTES {
            self.flush_locked(&mut buf);
        }
    }

    /// `now` as RFC 3339 UTC with microseconds, like the rest of the log.
    fn timestamp(&self, now: SystemTime) -> [u8; 27] {
        let since = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let (secs, micros) = (since.as_secs(), since.subsec_micros());
        let (cached, mut prefix) = self.clock.get();
        if cached != secs {
            let whole = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
            let text = humantime::format_rfc3339_seconds(whole).to_string();
            if let Some(p) = text.as_bytes().get(..19) {
                prefix.copy_from_slice(p);
            }
            self.clock.set((secs, prefix));
        }
        let mut ts = [0u8; 27];
        ts[..19].copy_from_slice(&prefix);
        ts[19] = b'.';
        let mut m = micros;
        for i in (20..26).rev() {
            ts[i] = b'0' + (m % 10) as u8;
            m /= 10;
        }
        ts[26] = b'Z';
        ts
    }

    /// Hand the buffered lines to the log writer.
    pub fn flush(&self) {
        let mut buf = self.buf.borrow_mut();
        self.flush_locked(&mut buf);
    }

    fn flush_locked(&self, buf: &mut String) {
        if buf.is_empty() {
            return;
        }
        let mut sink = self.sink.borrow_mut();
        // The log writer's queue never blocks; a failed write loses these lines only.
        let _ = sink.write_all(buf.as_bytes());
        let _ = sink.flush();
        buf.clear();
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.flush();
    }
}

/// `TIMESTAMP  LEVEL lynxio::access: MESSAGE key=value …`, like the text log's other lines.
fn text_line(
    buf: &mut String,
    ts: &str,
    level: Level,
    message: &str,
    fields: &[(&str, Option<Value<'_>>)],
) -> std::fmt::Result {
    buf.push_str(ts);
    buf.push_str(match level {
        Level::Info => "  INFO ",
        Level::Warn => "  WARN ",
    });
    buf.push_str(ACCESS_TARGET);
    buf.push_str(": ");
    buf.push_str(message);
    for (key, value) in fields {
        let Some(value) = value else { continue };
        buf.push(' ');
        buf.push_str(key);
        buf.push('=');
        match value {
            Value::Str(s) => buf.push_str(s),
            Value::Text(s) => write!(buf, "{s:?}")?,
            other => bare(buf, other),
        }
    }
    buf.push('\n');
    Ok(())
}

/// One JSON object, with the keys the JSON log's other lines use.
fn json_line(
    buf: &mut String,
    ts: &str,
    level: Level,
    message: &str,
    fields: &[(&str, Option<Value<'_>>)],
) -> std::fmt::Result {
    buf.push_str("{\"timestamp\":\"");
    buf.push_str(ts);
    buf.push_str(match level {
        Level::Info => "\",\"level\":\"INFO\",\"message\":",
        Level::Warn => "\",\"level\":\"WARN\",\"message\":",
    });
    json_str(buf, message);
    for (key, value) in fields {
        let Some(value) = value else { continue };
        buf.push(',');
        json_str(buf, key);
        buf.push(':');
        match value {
            Value::Str(s) | Value::Text(s) => json_str(buf, s),
            Value::Num(_) | Value::Millis(_) => bare(buf, value),
            Value::Addr(_) | Value::Id(_) => {
                buf.push('"');
                bare(buf, value);
                buf.push('"');
            }
        }
    }
    buf.push_str(",\"target\":\"");
    buf.push_str(ACCESS_TARGET);
    buf.push_str("\"}\n");
    Ok(())
}

/// A number, duration, address or id, without going through `core::fmt` for the common
/// cases (this runs once per request).
fn bare(buf: &mut String, value: &Value<'_>) {
    let mut digits = itoa::Buffer::new();
    match value {
        Value::Str(s) | Value::Text(s) => buf.push_str(s),
        Value::Num(n) => buf.push_str(digits.format(*n)),
        Value::Millis(d) => {
            let micros = d.as_micros();
            buf.push_str(digits.format(micros / 1000));
            buf.push('.');
            let frac = (micros % 1000) as u16;
            buf.push(char::from(b'0' + (frac / 100) as u8));
            buf.push(char::from(b'0' + (frac / 10 % 10) as u8));
            buf.push(char::from(b'0' + (frac % 10) as u8));
        }
        Value::Addr(SocketAddr::V4(a)) => {
            for (i, octet) in a.ip().octets().iter().enumerate() {
                if i > 0 {
                    buf.push('.');
                }
                buf.push_str(digits.format(*octet));
            }
            buf.push(':');
            buf.push_str(digits.format(a.port()));
        }
        Value::Addr(a) => {
            let _ = write!(buf, "{a}");
        }
        Value::Id(id) => {
            buf.push_str(digits.format(id.worker));
            buf.push('-');
            let _ = write!(buf, "{:x}", id.seq);
        }
    }
}

/// `s` as a JSON string literal.
fn json_str(buf: &mut String, s: &str) {
    buf.push('"');
    for c in s.chars() {
        match c {
            '"' => buf.push_str("\\\""),
            '\\' => buf.push_str("\\\\"),
            '\n' => buf.push_str("\\n"),
            '\r' => buf.push_str("\\r"),
            '\t' => buf.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(buf, "\\u{:04x}", c as u32);
            }
            c => buf.push(c),
        }
    }
    buf.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Vec<(&'static str, Option<Value<'static>>)> {
        vec![
            ("id", Some(Value::Id(FlowId { worker: 1, seq: 31 }))),
            ("url", Some(Value::Str("http://a.test/\"x\""))),
            ("status", Some(Value::Num(200))),
            ("ms", Some(Value::Millis(Duration::from_micros(1250)))),
            ("rule", None),
            ("reason", Some(Value::Text("cannot \"resolve\"\n"))),
        ]
    }

    #[test]
    fn text_lines() {
        let log = AccessLog {
            format: LogFormat::Text,
            sink: RefCell::new(Box::new(std::io::sink())),
            buf: RefCell::new(String::new()),
            clock: Cell::new((u64::MAX, [b'0'; 19])),
        };
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(86_401_000_042);
        let ts = log.timestamp(t);
        assert_eq!(&ts[..], b"1970-01-02T00:00:01.000042Z");
        let mut buf = String::new();
        text_line(&mut buf, "TS", Level::Warn, "exchange", &fields()).unwrap();
        assert_eq!(
            buf,
            "TS  WARN lynxio::access: exchange id=1-1f \
             url=http://a.test/\"x\" status=200 ms=1.250 reason=\"cannot \\\"resolve\\\"\\n\"\n"
        );
        let mut addr = String::new();
        bare(&mut addr, &Value::Addr("10.0.0.255:8080".parse().unwrap()));
        bare(&mut addr, &Value::Millis(Duration::from_micros(12)));
        assert_eq!(addr, "10.0.0.255:80800.012");
    }

    #[test]
    fn json_lines_parse() {
        let mut buf = String::new();
        json_line(
            &mut buf,
            "2026-12-01T00:00:00.000001Z",
            Level::Info,
            "exchange",
            &fields(),
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(buf.trim_end()).unwrap();
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["message"], "exchange");
        assert_eq!(v["id"], "1-1f");
        assert_eq!(v["url"], "http://a.test/\"x\"");
        assert_eq!(v["status"], 200);
        assert_eq!(v["ms"], 1.25);
        assert_eq!(v["reason"], "cannot \"resolve\"\n");
        assert!(v.get("rule").is_none());
        assert_eq!(v["target"], ACCESS_TARGET);
    }
}
