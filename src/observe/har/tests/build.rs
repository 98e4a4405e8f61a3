//! Builders of capture lines for the HAR tests, and runners that convert them.

use serde_json::{Value, json};

use super::super::convert;
use super::validate::assert_har_1_2;

pub(super) const TS: &str = "2026-12-01T18:00:00.123Z";

pub(super) fn line(mut base: Value, changes: Value) -> String {
    if let (Some(base), Some(changes)) = (base.as_object_mut(), changes.as_object()) {
        for (k, v) in changes {
            base.insert(k.clone(), v.clone());
        }
    }
    base.to_string()
}

pub(super) fn request(id: &str, url: &str, changes: Value) -> String {
    let base = json!({
        "ev": "request", "id": id, "ts": TS, "client": "127.0.0.1:50000",
        "listener": "127.0.0.1:8080", "method": "GET", "url": url, "version": "HTTP/1.1",
        "headers": [["Host", "a.test"], ["Accept", "*/*"]],
    });
    line(base, changes)
}

pub(super) fn response(id: &str, status: u16, changes: Value) -> String {
    let base = json!({
        "ev": "response", "id": id, "status": status, "version": "HTTP/1.1",
        "headers": [["Content-Type", "text/plain"], ["Content-Length", "5"]],
        "ttfb_ms": 12.5, "from": "origin",
    });
    line(base, changes)
}

pub(super) fn end(id: &str, changes: Value) -> String {
    let base = json!({
        "ev": "end", "id": id, "status": 200, "request_body_bytes": 0,
        "response_body_bytes": 5, "duration_ms": 20.25, "outcome": "completed",
        "aborted_by": null, "reason": null,
        "upstream": { "target": "93.184.216.34:80", "reused": false, "connect_ms": 4.5 },
        "rule": null,
    });
    line(base, changes)
}

/// Converts `lines`, validating the result; returns the HAR and the warnings.
pub(super) fn run(lines: &[String]) -> (Value, Vec<(usize, String)>) {
    run_text(&lines.join("\n"))
}

pub(super) fn run_text(text: &str) -> (Value, Vec<(usize, String)>) {
    let mut warnings = Vec::new();
    let har = convert(text.as_bytes(), &mut |line, why| {
        warnings.push((line, why.to_owned()))
    })
    .expect("reading from memory cannot fail");
    assert_har_1_2(&har);
    (har, warnings)
}

/// Converts `lines`, which must not produce warnings; returns the entries.
pub(super) fn entries(lines: &[String]) -> Vec<Value> {
    let (har, warnings) = run(lines);
    assert!(warnings.is_empty(), "unexpected warnings: {warnings:?}");
    har["log"]["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

pub(super) fn pairs(list: &Value) -> Vec<(String, String)> {
    list.as_array()
        .map(|l| {
            l.iter()
                .map(|p| {
                    let s = |k: &str| p[k].as_str().unwrap_or("?").to_owned();
                    (s("name"), s("value"))
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn owned(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tests.
