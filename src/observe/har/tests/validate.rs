//! The HAR 1.2 validator every converted document goes through: every required field, its JSON
//! type, and the documented value rules.

use serde_json::{Map, Value};

/// Checks `har` against HAR 1.2: all required fields with their types, optional ones typed when
/// present, no unknown fields except `_custom` ones, timings that are -1 or non-negative and
/// add up to the entry's `time`.
pub(crate) fn assert_har_1_2(har: &Value) {
    let root = object(har, "$");
    only_keys(root, &["log"], "$");
    let log = object(req(root, "log", "$"), "log");
    only_keys(
        log,
        &[
            "version", "creator", "browser", "pages", "entries", "comment",
        ],
        "log",
    );
    assert_eq!(string(log, "version", "log"), "1.2", "log.version");
    for key in ["creator", "browser"] {
        if let Some(who) = log.get(key) {
            let path = format!("log.{key}");
            let who = object(who, &path);
            only_keys(who, &["name", "version", "comment"], &path);
            string(who, "name", &path);
            string(who, "version", &path);
        }
    }
    assert!(log.contains_key("creator"), "log.creator is required");
    if let Some(pages) = log.get("pages") {
        for (i, page) in array(pages, "log.pages").iter().enumerate() {
            let path = format!("log.pages[{i}]");
            let page = object(page, &path);
            iso_date(string(page, "startedDateTime", &path), &path);
            string(page, "id", &path);
            string(page, "title", &path);
            object(req(page, "pageTimings", &path), &path);
        }
    }
    let entries = array(req(log, "entries", "log"), "log.entries");
    for (i, entry) in entries.iter().enumerate() {
        assert_entry(entry, &format!("log.entries[{i}]"));
    }
}

fn assert_entry(entry: &Value, path: &str) {
    let e = object(entry, path);
    only_keys(
        e,
        &[
            "pageref",
            "startedDateTime",
            "time",
            "request",
            "response",
            "cache",
            "timings",
            "serverIPAddress",
            "connection",
            "comment",
        ],
        path,
    );
    opt_string(e, "pageref", path);
    iso_date(string(e, "startedDateTime", path), path);
    let time = number(e, "time", path);
    assert!(time >= 0.0, "{path}.time negative: {time}");
    assert_request(req(e, "request", path), &format!("{path}.request"));
    assert_response(req(e, "response", path), &format!("{path}.response"));
    let cache = object(req(e, "cache", path), &format!("{path}.cache"));
    only_keys(cache, &["beforeRequest", "afterRequest", "comment"], path);
    for key in ["beforeRequest", "afterRequest"] {
        if let Some(c) = cache.get(key).filter(|c| !c.is_null()) {
            let p = format!("{path}.cache.{key}");
            let c = object(c, &p);
            string(c, "lastAccess", &p);
            string(c, "eTag", &p);
            integer(c, "hitCount", &p);
        }
    }
    assert_timings(req(e, "timings", path), time, &format!("{path}.timings"));
    opt_string(e, "serverIPAddress", path);
    opt_string(e, "connection", path);
    opt_string(e, "comment", path);
}

fn assert_request(request: &Value, path: &str) {
    let r = object(request, path);
    only_keys(
        r,
        &[
            "method",
            "url",
            "httpVersion",
            "cookies",
            "headers",
            "queryString",
            "postData",
            "headersSize",
            "bodySize",
            "comment",
        ],
        path,
    );
    assert!(!string(r, "method", path).is_empty(), "{path}.method empty");
    let url = string(r, "url", path);
    assert!(
        url.starts_with("http://") || url.starts_with("https://"),
        "{path}.url not absolute: {url}"
    );
    assert!(!url.contains('#'), "{path}.url keeps a fragment: {url}");
    string(r, "httpVersion", path);
    assert_cookies(req(r, "cookies", path), &format!("{path}.cookies"));
    assert_pairs(req(r, "headers", path), &format!("{path}.headers"));
    assert_pairs(req(r, "queryString", path), &format!("{path}.queryString"));
    if let Some(post) = r.get("postData") {
        let p = format!("{path}.postData");
        let post = object(post, &p);
        only_keys(post, &["mimeType", "params", "text", "comment"], &p);
        string(post, "mimeType", &p);
        opt_string(post, "text", &p);
        opt_string(post, "comment", &p);
        if let Some(params) = post.get("params") {
            for (i, param) in array(params, &p).iter().enumerate() {
                let pp = format!("{p}.params[{i}]");
                let param = object(param, &pp);
                only_keys(
                    param,
                    &["name", "value", "fileName", "contentType", "comment"],
                    &pp,
                );
                string(param, "name", &pp);
                for key in ["value", "fileName", "contentType", "comment"] {
                    opt_string(param, key, &pp);
                }
            }
        }
    }
    size(r, "headersSize", path);
    size(r, "bodySize", path);
}

fn assert_response(response: &Value, path: &str) {
    let r = object(response, path);
    only_keys(
        r,
        &[
            "status",
            "statusText",
            "httpVersion",
            "cookies",
            "headers",
            "content",
            "redirectURL",
            "headersSize",
            "bodySize",
            "comment",
        ],
        path,
    );
    let status = integer(r, "status", path);
    assert!((0..=999).contains(&status), "{path}.status {status}");
    string(r, "statusText", path);
    string(r, "httpVersion", path);
    assert_cookies(req(r, "cookies", path), &format!("{path}.cookies"));
    assert_pairs(req(r, "headers", path), &format!("{path}.headers"));
    let p = format!("{path}.content");
    let content = object(req(r, "content", path), &p);
    only_keys(
        content,
        &[
            "size",
            "compression",
            "mimeType",
            "text",
            "encoding",
            "comment",
        ],
        &p,
    );
    assert!(integer(content, "size", &p) >= 0, "{p}.size negative");
    if content.contains_key("compression") {
        integer(content, "compression", &p);
    }
    string(content, "mimeType", &p);
    opt_string(content, "text", &p);
    opt_string(content, "comment", &p);
    if let Some(encoding) = opt_string(content, "encoding", &p) {
        assert!(content.contains_key("text"), "{p}.encoding without text");
        if encoding == "base64" {
            let text = string(content, "text", &p);
            use base64::Engine;
            assert!(
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .is_ok(),
                "{p}.text is not base64"
            );
        }
    }
    string(r, "redirectURL", path);
    size(r, "headersSize", path);
    size(r, "bodySize", path);
}

fn assert_cookies(cookies: &Value, path: &str) {
    for (i, cookie) in array(cookies, path).iter().enumerate() {
        let p = format!("{path}[{i}]");
        let c = object(cookie, &p);
        only_keys(
            c,
            &[
                "name", "value", "path", "domain", "expires", "httpOnly", "secure", "comment",
            ],
            &p,
        );
        string(c, "name", &p);
        string(c, "value", &p);
        opt_string(c, "path", &p);
        opt_string(c, "domain", &p);
        opt_string(c, "comment", &p);
        if let Some(expires) = opt_string(c, "expires", &p) {
            iso_date(expires, &p);
        }
        for key in ["httpOnly", "secure"] {
            if let Some(v) = c.get(key) {
                assert!(v.is_boolean(), "{p}.{key} not a boolean");
            }
        }
    }
}

fn assert_pairs(pairs: &Value, path: &str) {
    for (i, pair) in array(pairs, path).iter().enumerate() {
        let p = format!("{path}[{i}]");
        let pair = object(pair, &p);
        only_keys(pair, &["name", "value", "comment"], &p);
        string(pair, "name", &p);
        string(pair, "value", &p);
    }
}

fn assert_timings(timings: &Value, time: f64, path: &str) {
    let t = object(timings, path);
    only_keys(
        t,
        &[
            "blocked", "dns", "connect", "send", "wait", "receive", "ssl", "comment",
        ],
        path,
    );
    let mut sum = 0.0;
    for key in ["send", "wait", "receive"] {
        let v = number(t, key, path);
        assert!(v >= 0.0, "{path}.{key} negative: {v}");
        sum += v;
    }
    for key in ["blocked", "dns", "connect", "ssl"] {
        if t.contains_key(key) {
            let v = number(t, key, path);
            assert!(v == -1.0 || v >= 0.0, "{path}.{key} is {v}");
            // ssl is included in connect, so not added again.
            if v > 0.0 && key != "ssl" {
                sum += v;
            }
        }
    }
    if let (Some(ssl), Some(connect)) = (t.get("ssl"), t.get("connect"))
        && ssl.as_f64().is_some_and(|s| s >= 0.0)
    {
        assert!(ssl.as_f64() <= connect.as_f64(), "{path}.ssl > connect");
    }
    assert!(
        (sum - time).abs() < 0.002,
        "{path} add up to {sum}, entry time is {time}"
    );
}

// Typed field access for the validator; each panics naming the path.

fn req<'a>(o: &'a Map<String, Value>, key: &str, path: &str) -> &'a Value {
    o.get(key)
        .unwrap_or_else(|| panic!("{path}.{key} is required"))
}

fn object<'a>(v: &'a Value, path: &str) -> &'a Map<String, Value> {
    v.as_object()
        .unwrap_or_else(|| panic!("{path} is not an object: {v}"))
}

fn array<'a>(v: &'a Value, path: &str) -> &'a Vec<Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("{path} is not an array: {v}"))
}

fn string<'a>(o: &'a Map<String, Value>, key: &str, path: &str) -> &'a str {
    let v = req(o, key, path);
    v.as_str()
        .unwrap_or_else(|| panic!("{path}.{key} is not a string: {v}"))
}

fn opt_string<'a>(o: &'a Map<String, Value>, key: &str, path: &str) -> Option<&'a str> {
    o.get(key).map(|v| {
        v.as_str()
            .unwrap_or_else(|| panic!("{path}.{key} is not a string: {v}"))
    })
}

fn number(o: &Map<String, Value>, key: &str, path: &str) -> f64 {
    let v = req(o, key, path);
    v.as_f64()
        .unwrap_or_else(|| panic!("{path}.{key} is not a number: {v}"))
}

fn integer(o: &Map<String, Value>, key: &str, path: &str) -> i64 {
    let v = req(o, key, path);
    v.as_i64()
        .unwrap_or_else(|| panic!("{path}.{key} is not an integer: {v}"))
}

/// `headersSize`/`bodySize`: an integer, -1 when unknown.
fn size(o: &Map<String, Value>, key: &str, path: &str) {
    let n = integer(o, key, path);
    assert!(n >= -1, "{path}.{key} is {n}");
}

fn iso_date(s: &str, path: &str) {
    assert!(
        humantime::parse_rfc3339_weak(s).is_ok() && s.contains('T') && s.ends_with('Z'),
        "{path}: not an ISO 8601 date-time: {s}"
    );
}

/// Fields outside the HAR 1.2 set must be custom (`_name`).
fn only_keys(o: &Map<String, Value>, allowed: &[&str], path: &str) {
    for key in o.keys() {
        assert!(
            allowed.contains(&key.as_str()) || key.starts_with('_'),
            "{path}: unexpected field {key}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Capture builders.
