//! Flows, black-box: the state each exchange records decides what a late failure may do (an
//! origin that answered early keeps its answer when the client's upload is cut short — the
//! client gets exactly the origin's bytes, never a second response), and every finished
//! exchange and tunnel is one access-log line carrying its flow id, client, method, URL,
//! status, body bytes and duration — in text and in JSON — with failures naming their URL and
//! credentials never logged.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use common::*;

/// How long a test waits for a log line to appear.
const LOG_WAIT: Duration = Duration::from_secs(5);

/// The value of `key=` in a text log line (quotes stripped).
fn field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[start..];
    let value = if let Some(quoted) = rest.strip_prefix('"') {
        &quoted[..quoted.find('"')?]
    } else {
        rest.split(' ').next()?
    };
    Some(value.to_owned())
}

/// The access line (text format) of the exchange whose `url=` is `url`.
fn access_line(proxy: &Proxy, url: &str) -> String {
    proxy
        .wait_for_line(LOG_WAIT, |l| {
            l.contains("lynxio::access") && field(l, "url").as_deref() == Some(url)
        })
        .unwrap_or_else(|| panic!("no access line for {url}; log:\n{}", proxy.log()))
}

/// The origin answers `200` with `Content-Length: 100` and 10 body bytes as soon as it has the
/// request head, then reads until the proxy closes its side. The client sends 20 of 1000
/// announced body bytes, reads the 10, and shuts its write side: it must get exactly the
/// origin's bytes and then the end of the connection — never a `400` inside the body.
fn early_answer_survives_cut_upload(driver: &str) {
    const EARLY: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789";
    let origin = Origin::start(|s| {
        let mut r = Reader::new(s);
        if r.request_head().is_none() {
            return;
        }
        if r.get_mut().write_all(EARLY).is_err() {
            return;
        }
        // Read (and drop) whatever comes until the proxy half-closes or closes.
        let mut chunk = [0u8; 4096];
        for _ in 0..10_000 {
            match r.get_mut().read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    let proxy = Proxy::start(driver, &[]);
    let mut c = proxy.connect();
    let url = origin.url("/upload");
    let head = format!(
        "POST {url} HTTP/1.1\r\nHost: {}\r\nContent-Length: 1000\r\n\r\n",
        origin.addr
    );
    c.write_all(head.as_bytes()).expect("write head");
    c.write_all(&[b'x'; 20]).expect("write body start");
    let mut r = Reader::new(c);
    let head = r.response_head().expect("response head");
    assert_eq!(head.status, 200);
    let first = r.take_exact(10).expect("the 10 body bytes the origin sent");
    assert_eq!(first, b"0123456789");
    r.get_mut().shutdown(Shutdown::Write).expect("shutdown");
    let rest = r.read_to_close();
    assert!(
        rest.is_empty(),
        "after the origin's 10 bytes the client got {} more: {:?}",
        rest.len(),
        String::from_utf8_lossy(&rest)
    );
    let line = access_line(&proxy, &url);
    assert_eq!(field(&line, "status").as_deref(), Some("200"), "{line}");
    assert_eq!(
        field(&line, "outcome").as_deref(),
        Some("aborted"),
        "{line}"
    );
    assert_eq!(field(&line, "bytes_out").as_deref(), Some("10"), "{line}");
    let normal = Origin::http(|_| ok(b"fine"));
    assert_still_serving(&proxy, &normal, "after a cut upload");
    assert_no_panic(proxy);
}

/// A plain GET, a failed request and a CONNECT tunnel each leave exactly one access line with
/// the flow id, client, method, URL or target, status, bytes and duration; ids differ.
fn access_lines(driver: &str) {
    let origin = Origin::http(|_| ok(b"hello"));
    let proxy = Proxy::start(driver, &[]);
    let url = origin.url("/a?b=c");
    let mut c = Reader::new(proxy.connect());
    let got = roundtrip(
        &mut c,
        "GET",
        format!("GET {url} HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic c2VjcmV0OnB3\r\nProxy-Authorization: Basic cHJveHk6cHc=\r\n\r\n", origin.addr)
            .as_bytes(),
    );
    assert_eq!(got.status, 200);
    let line = access_line(&proxy, &url);
    assert!(line.contains("INFO"), "{line}");
    assert_eq!(field(&line, "method").as_deref(), Some("GET"), "{line}");
    assert_eq!(field(&line, "status").as_deref(), Some("200"), "{line}");
    assert_eq!(field(&line, "bytes_in").as_deref(), Some("0"), "{line}");
    assert_eq!(field(&line, "bytes_out").as_deref(), Some("5"), "{line}");
    assert_eq!(
        field(&line, "outcome").as_deref(),
        Some("completed"),
        "{line}"
    );
    let client = c.get_mut().local_addr().expect("local addr").to_string();
    assert_eq!(field(&line, "client"), Some(client), "{line}");
    assert!(
        field(&line, "ms")
            .and_then(|v| v.parse::<f64>().ok())
            .is_some(),
        "{line}"
    );
    let first_id = field(&line, "id").expect("id");
    assert!(first_id.starts_with("0-"), "{line}");

    // A failure names its URL and says why.
    let bad = "http://nonexistent.invalid/x";
    let reply = send_raw(
        proxy.addr,
        format!("GET {bad} HTTP/1.1\r\nHost: nonexistent.invalid\r\n\r\n").as_bytes(),
        Duration::from_secs(5),
    );
    assert_eq!(status_of(&reply.raw), 502);
    let line = access_line(&proxy, bad);
    assert!(line.contains("WARN"), "{line}");
    assert_eq!(field(&line, "status").as_deref(), Some("502"), "{line}");
    assert_eq!(
        field(&line, "outcome").as_deref(),
        Some("answered"),
        "{line}"
    );
    assert!(line.contains("nonexistent.invalid"), "{line}");
    assert_ne!(field(&line, "id"), Some(first_id.clone()));

    // A tunnel: one line with its target, kind and bytes.
    let echo = echo_once_origin();
    let target = echo.addr.to_string();
    ping_through_tunnel(&proxy, &target);
    let line = proxy
        .wait_for_line(LOG_WAIT, |l| {
            l.contains("lynxio::access: tunnel") && field(l, "target").as_deref() == Some(&target)
        })
        .unwrap_or_else(|| panic!("no tunnel line; log:\n{}", proxy.log()));
    assert_eq!(field(&line, "kind").as_deref(), Some("opaque"), "{line}");
    assert_eq!(field(&line, "up").as_deref(), Some("5"), "{line}");
    assert_eq!(field(&line, "down").as_deref(), Some("5"), "{line}");
    assert_eq!(field(&line, "method").as_deref(), Some("CONNECT"), "{line}");

    let log = proxy.log();
    assert_eq!(
        log.lines()
            .filter(|l| l.contains(&format!(" url={url}")))
            .count(),
        1,
        "one line per exchange:\n{log}"
    );
    for secret in ["c2VjcmV0OnB3", "cHJveHk6cHc="] {
        assert!(!log.contains(secret), "credentials in the log:\n{log}");
    }
}

/// `--log-format json`: every line is a JSON object; the access line carries the same fields
/// with numbers as numbers.
fn json_log_lines(driver: &str) {
    let origin = Origin::http(|_| ok(b"hello"));
    let proxy = Proxy::start(driver, &["--log-format", "json"]);
    let url = origin.url("/json");
    let mut c = Reader::new(proxy.connect());
    let got = roundtrip(
        &mut c,
        "GET",
        format!("GET {url} HTTP/1.1\r\nHost: {}\r\n\r\n", origin.addr).as_bytes(),
    );
    assert_eq!(got.status, 200);
    let line = proxy
        .wait_for_line(LOG_WAIT, |l| l.contains("\"message\":\"exchange\""))
        .unwrap_or_else(|| panic!("no JSON access line; log:\n{}", proxy.log()));
    let v: serde_json::Value = serde_json::from_str(&line).expect("access line is JSON");
    assert_eq!(v["target"], "lynxio::access");
    assert_eq!(v["url"], url.as_str());
    assert_eq!(v["method"], "GET");
    assert_eq!(v["status"], 200);
    assert_eq!(v["bytes_out"], 5);
    assert!(v["ms"].is_f64(), "{line}");
    assert!(
        v["id"].as_str().is_some_and(|id| id.starts_with("0-")),
        "{line}"
    );
    for l in proxy.log().lines() {
        serde_json::from_str::<serde_json::Value>(l)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"));
    }
}

drivers!(
    early_answer_survives_cut_upload,
    access_lines,
    json_log_lines
);
