//! Capture, black-box: `--capture FILE` holds one JSON object per line for every event kind
//! (request, response, end, tunnel_open, tunnel_close, error) with the documented fields,
//! everything written before a SIGTERM is in the file; `--capture-bodies N` keeps the first N
//! bytes of each body (text as UTF-8, else base64, decoded from chunked, with a truncated
//! flag); a writer that cannot keep up (a FIFO nobody reads) costs dropped, counted events —
//! never stalled traffic; and `lynxio har` turns a real capture into HAR 1.2.

mod common;

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// The single event of kind `ev` for flow `id`.
fn event<'a>(events: &'a [Value], ev: &str, id: &Value) -> &'a Value {
    let found: Vec<&Value> = events
        .iter()
        .filter(|e| e["ev"] == ev && &e["id"] == id)
        .collect();
    assert_eq!(found.len(), 1, "{ev} events for {id}: {found:?}");
    found[0]
}

/// The `request` event for `url`.
fn request_for<'a>(events: &'a [Value], url: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["ev"] == "request" && e["url"] == url)
        .unwrap_or_else(|| panic!("no request event for {url} in {events:#?}"))
}

fn has_header(headers: &Value, name: &str, value: &str) -> bool {
    headers.as_array().is_some_and(|hs| {
        hs.iter()
            .any(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)) && h[1] == value)
    })
}

/// Every event kind with its fields, from a keep-alive pair of requests, a failed request, an
/// unreadable request head and an opaque tunnel.
fn capture_events(driver: &str) {
    let origin = Origin::http(|_| ok(b"hello"));
    let echo = echo_once_origin();
    let path = capture_path("events", driver);
    let proxy = Proxy::start(driver, &["--capture", path.to_str().expect("utf-8")]);

    let post = origin.url("/post?q=1");
    let get = origin.url("/get");
    let mut c = Reader::new(proxy.connect());
    let req = format!(
        "POST {post} HTTP/1.1\r\nHost: {}\r\nContent-Length: 11\r\nX-Test: a\r\n\r\nhello world",
        origin.addr
    );
    assert_eq!(roundtrip(&mut c, "POST", req.as_bytes()).status, 200);
    let req = format!("GET {get} HTTP/1.1\r\nHost: {}\r\n\r\n", origin.addr);
    assert_eq!(roundtrip(&mut c, "GET", req.as_bytes()).status, 200);
    let client = c.get_mut().local_addr().expect("addr").to_string();
    drop(c);

    let bad_url = "http://nonexistent.invalid/x";
    let reply = send_raw(
        proxy.addr,
        format!("GET {bad_url} HTTP/1.1\r\nHost: nonexistent.invalid\r\n\r\n").as_bytes(),
        Duration::from_secs(5),
    );
    assert_eq!(status_of(&reply.raw), 502);
    let garbage = send_raw(proxy.addr, b"GARBAGE\r\n\r\n", Duration::from_secs(5));
    assert_eq!(status_of(&garbage.raw), 400);

    let target = echo.addr.to_string();
    ping_through_tunnel(&proxy, &target);
    // The tunnel's end is reported right after its relay ends.
    proxy
        .wait_for_line(Duration::from_secs(5), |l| {
            l.contains("lynxio::access: tunnel")
        })
        .expect("tunnel finished");

    let events = stop_and_read_capture(proxy, &path);
    let mut ids: Vec<&Value> = events
        .iter()
        .filter(|e| e["ev"] == "request")
        .map(|e| &e["id"])
        .collect();
    let n = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), n, "request ids are unique");

    // POST: request, response, end.
    let r = request_for(&events, &post);
    let id = &r["id"];
    assert!(id.as_str().is_some_and(|s| s.starts_with("0-")), "{r}");
    assert_eq!(r["method"], "POST");
    assert_eq!(r["version"], "HTTP/1.1");
    assert_eq!(r["client"], client.as_str());
    assert!(
        r["listener"]
            .as_str()
            .is_some_and(|l| l.starts_with("127.0.0.1:"))
    );
    let ts = r["ts"].as_str().expect("ts");
    assert!(
        ts.contains('T') && ts.ends_with('Z') && ts.len() == 24,
        "{ts}"
    );
    assert!(has_header(&r["headers"], "X-Test", "a"), "{r}");
    assert!(has_header(&r["headers"], "Content-Length", "11"), "{r}");
    let resp = event(&events, "response", id);
    assert_eq!(resp["status"], 200);
    assert_eq!(resp["from"], "origin");
    assert!(
        has_header(&resp["headers"], "Content-Length", "5"),
        "{resp}"
    );
    assert!(resp["ttfb_ms"].as_f64().is_some_and(|t| t >= 0.0), "{resp}");
    let end = event(&events, "end", id);
    assert_eq!(end["status"], 200);
    assert_eq!(end["request_body_bytes"], 11);
    assert_eq!(end["response_body_bytes"], 5);
    assert_eq!(end["outcome"], "completed");
    assert!(end["duration_ms"].as_f64().is_some(), "{end}");
    assert_eq!(end["upstream"]["target"], origin.addr.to_string().as_str());
    assert_eq!(end["upstream"]["reused"], false);
    assert!(
        end.get("request_body").is_none(),
        "bodies are not captured by default"
    );

    // GET on the same connection reused the pooled origin connection.
    let get_id = &request_for(&events, &get)["id"];
    assert_eq!(event(&events, "end", get_id)["upstream"]["reused"], true);

    // Failed: answered by lynxio.
    let failed_id = &request_for(&events, bad_url)["id"];
    let resp = event(&events, "response", failed_id);
    assert_eq!(
        (resp["status"].clone(), resp["from"].clone()),
        (502.into(), "lynxio".into())
    );
    let end = event(&events, "end", failed_id);
    assert_eq!(end["outcome"], "answered");
    assert!(
        end["reason"]
            .as_str()
            .is_some_and(|r| r.contains("nonexistent.invalid")),
        "{end}"
    );

    // Unreadable head: an error event.
    let err = events
        .iter()
        .find(|e| e["ev"] == "error")
        .unwrap_or_else(|| panic!("no error event: {events:#?}"));
    assert_eq!(err["stage"], "request_head");
    assert_eq!(err["status"], 400);

    // The tunnel: CONNECT request, tunnel_open, tunnel_close with the same id.
    let tid = &request_for(&events, &target)["id"];
    let open = event(&events, "tunnel_open", tid);
    assert_eq!(open["kind"], "opaque");
    assert_eq!(open["target"], target.as_str());
    let close = event(&events, "tunnel_close", tid);
    assert_eq!(close["bytes_up"], 5);
    assert_eq!(close["bytes_down"], 5);
    assert_eq!(close["end"], "done");
    assert!(close["duration_ms"].as_f64().is_some());
}

/// `--capture-bodies 8`: text kept as UTF-8 and truncated, binary as base64, chunked bodies
/// decoded; the byte counts stay the full wire sizes.
fn capture_bodies(driver: &str) {
    let origin = Origin::http(|req| {
        match req.target.as_str() {
        "/binary" => {
            let mut r = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n".to_vec();
            r.extend_from_slice(&[0xff, 0xfe, 0x00, 0x01]);
            r
        }
        _ => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            .to_vec(),
    }
    });
    let path = capture_path("bodies", driver);
    let proxy = Proxy::start(
        driver,
        &[
            "--capture",
            path.to_str().expect("utf-8"),
            "--capture-bodies",
            "8",
        ],
    );
    let mut c = Reader::new(proxy.connect());
    let text = origin.url("/text");
    let req = format!(
        "POST {text} HTTP/1.1\r\nHost: {}\r\nContent-Length: 16\r\n\r\n0123456789abcdef",
        origin.addr
    );
    let got = roundtrip(&mut c, "POST", req.as_bytes());
    assert_eq!(got.body_str(), "hello world");
    let binary = origin.url("/binary");
    let req = format!("GET {binary} HTTP/1.1\r\nHost: {}\r\n\r\n", origin.addr);
    assert_eq!(
        roundtrip(&mut c, "GET", req.as_bytes()).body,
        [0xff, 0xfe, 0, 1]
    );
    drop(c);
    let events = stop_and_read_capture(proxy, &path);

    let end = event(&events, "end", &request_for(&events, &text)["id"]);
    assert_eq!(end["request_body"]["encoding"], "utf8");
    assert_eq!(end["request_body"]["data"], "01234567");
    assert_eq!(end["request_body"]["truncated"], true);
    assert_eq!(end["request_body_bytes"], 16);
    assert_eq!(
        end["response_body"]["data"], "hello wo",
        "decoded from chunked: {end}"
    );
    assert_eq!(end["response_body"]["truncated"], true);
    let wire = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n".len();
    assert_eq!(end["response_body_bytes"], wire);

    let end = event(&events, "end", &request_for(&events, &binary)["id"]);
    assert_eq!(end["response_body"]["encoding"], "base64");
    assert_eq!(end["response_body"]["data"], "//4AAQ==");
    assert_eq!(end["response_body"]["truncated"], false);
}

/// A capture FIFO that nobody reads: once its pipe buffer and the (tiny) queue are full,
/// events are dropped and counted — every request is still answered promptly.
fn blocked_writer_drops_events(driver: &str) {
    let path = capture_path("fifo", driver);
    let cpath = std::ffi::CString::new(path.to_str().expect("utf-8")).expect("path");
    // SAFETY: `cpath` is a valid NUL-terminated path for the duration of the calls.
    let reader = unsafe {
        assert_eq!(libc::mkfifo(cpath.as_ptr(), 0o600), 0, "mkfifo");
        // Open the read end first (non-blocking), so lynxio's open for writing succeeds; then
        // never read from it.
        libc::open(cpath.as_ptr(), libc::O_RDONLY | libc::O_NONBLOCK)
    };
    assert!(reader >= 0, "open FIFO read end");
    let origin = Origin::http(|_| ok(b"x"));
    let proxy = Proxy::start(
        driver,
        &[
            "--capture",
            path.to_str().expect("utf-8"),
            "--capture-queue",
            "16",
            "--admin",
            "127.0.0.1:0",
        ],
    );
    let mut c = Reader::new(proxy.connect());
    let filler = "f".repeat(2000);
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nX-Filler: {filler}\r\n\r\n",
        origin.url("/"),
        origin.addr
    );
    let started = Instant::now();
    const REQUESTS: usize = 600;
    for i in 0..REQUESTS {
        let got = roundtrip(&mut c, "GET", req.as_bytes());
        assert_eq!(got.status, 200, "request {i}");
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(60),
        "{REQUESTS} requests took {took:?}: traffic waited on the capture writer"
    );
    let admin = proxy.admin.expect("admin address");
    let mut s = connect(admin);
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n")
        .expect("write");
    let metrics = Reader::new(s).response("GET").expect("metrics").body_str();
    let dropped: f64 = metrics
        .lines()
        .find(|l| l.starts_with(r#"lynxio_events_dropped_total{worker="0"}"#))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no dropped counter:\n{metrics}"));
    // Each request is 3 events of > 2 KB: far more than a 64 KiB pipe and 16 queued events.
    assert!(dropped > 100.0, "dropped {dropped} events");
    assert!(
        proxy
            .wait_for_line(Duration::from_secs(5), |l| l.contains("WARN")
                && l.contains("dropp"))
            .is_some(),
        "no log line about dropped events:\n{}",
        proxy.log()
    );
    // SAFETY: `reader` is the fd opened above and not used after this.
    unsafe { libc::close(reader) };
    drop(proxy);
}

/// `lynxio har` on a real capture: HAR 1.2 with the required fields and types, the tunnel
/// left out, a malformed line skipped with a warning naming its line.
fn har_from_capture(driver: &str) {
    let origin = Origin::http(|_| {
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nSet-Cookie: s=1; Path=/\r\nContent-Length: 5\r\n\r\nhello"
            .to_vec()
    });
    let path = capture_path("har", driver);
    let proxy = Proxy::start(
        driver,
        &[
            "--capture",
            path.to_str().expect("utf-8"),
            "--capture-bodies",
            "1024",
        ],
    );
    let mut c = Reader::new(proxy.connect());
    let url = origin.url("/page?a=1&b=two%20words");
    let req = format!(
        "GET {url} HTTP/1.1\r\nHost: {}\r\nCookie: c=3; d=4\r\n\r\n",
        origin.addr
    );
    assert_eq!(roundtrip(&mut c, "GET", req.as_bytes()).status, 200);
    let post = origin.url("/form");
    let req = format!(
        "POST {post} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\nx=1&y=2",
        origin.addr
    );
    assert_eq!(roundtrip(&mut c, "POST", req.as_bytes()).status, 200);
    drop(c);
    let events = stop_and_read_capture(proxy, &path);
    assert!(events.len() >= 6, "{events:#?}");
    // The capture as lynxio wrote it (one event per line), then a line that is not JSON.
    let mut text = String::new();
    for e in &events {
        text.push_str(&e.to_string());
        text.push('\n');
    }
    text.push_str("{not json\n");
    std::fs::write(&path, text).expect("write the capture back");

    let out = Command::new(env!("CARGO_BIN_EXE_lynxio"))
        .arg("har")
        .arg(&path)
        .output()
        .expect("run lynxio har");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let bad_line = events.len() + 1;
    assert!(stderr.contains(&format!("line {bad_line}")), "{stderr}");
    let har: Value = serde_json::from_slice(&out.stdout).expect("HAR is JSON");
    check_har(&har);
    let entries = har["log"]["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 2, "{har:#}");
    let first = &entries[0];
    assert_eq!(first["request"]["url"], url.as_str());
    assert_eq!(first["request"]["method"], "GET");
    let qs = first["request"]["queryString"]
        .as_array()
        .expect("queryString");
    assert!(
        qs.iter()
            .any(|q| q["name"] == "b" && q["value"] == "two words"),
        "{qs:?}"
    );
    let cookies = first["request"]["cookies"].as_array().expect("cookies");
    assert!(
        cookies
            .iter()
            .any(|k| k["name"] == "c" && k["value"] == "3"),
        "{cookies:?}"
    );
    assert_eq!(first["response"]["status"], 200);
    assert_eq!(first["response"]["content"]["size"], 5);
    assert_eq!(first["response"]["content"]["mimeType"], "text/plain");
    assert_eq!(first["response"]["content"]["text"], "hello");
    let set = first["response"]["cookies"]
        .as_array()
        .expect("response cookies");
    assert!(
        set.iter().any(|k| k["name"] == "s" && k["value"] == "1"),
        "{set:?}"
    );
    assert_eq!(entries[1]["request"]["postData"]["text"], "x=1&y=2");
    let _ = std::fs::remove_file(&path);
}

/// The HAR 1.2 required fields and their JSON types.
fn check_har(har: &Value) {
    let log = &har["log"];
    assert_eq!(log["version"], "1.2");
    assert!(log["creator"]["name"].is_string() && log["creator"]["version"].is_string());
    for e in log["entries"].as_array().expect("log.entries") {
        assert!(e["startedDateTime"].is_string(), "{e}");
        assert!(e["time"].is_number(), "{e}");
        assert!(e["cache"].is_object(), "{e}");
        let req = &e["request"];
        for k in ["method", "url", "httpVersion"] {
            assert!(req[k].is_string(), "request.{k}: {req}");
        }
        for k in ["cookies", "headers", "queryString"] {
            assert!(req[k].is_array(), "request.{k}: {req}");
        }
        for k in ["headersSize", "bodySize"] {
            assert!(req[k].is_i64(), "request.{k}: {req}");
        }
        let resp = &e["response"];
        assert!(resp["status"].is_u64(), "{resp}");
        for k in ["statusText", "httpVersion", "redirectURL"] {
            assert!(resp[k].is_string(), "response.{k}: {resp}");
        }
        for k in ["cookies", "headers"] {
            assert!(resp[k].is_array(), "response.{k}: {resp}");
        }
        for k in ["headersSize", "bodySize"] {
            assert!(resp[k].is_i64(), "response.{k}: {resp}");
        }
        assert!(resp["content"]["size"].is_i64() && resp["content"]["mimeType"].is_string());
        for h in req["headers"].as_array().into_iter().flatten() {
            assert!(h["name"].is_string() && h["value"].is_string(), "{h}");
        }
        let t = &e["timings"];
        for k in ["send", "wait", "receive"] {
            assert!(t[k].as_f64().is_some_and(|v| v >= 0.0), "timings.{k}: {t}");
        }
    }
}

drivers!(
    capture_events,
    capture_bodies,
    blocked_writer_drops_events,
    har_from_capture
);
