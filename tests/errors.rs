//! Error answers: every request the proxy cannot forward gets the status `ProxyError::status`
//! maps it to (400/408/417/431/502/504/505), a short text body framed by Content-Length,
//! `Connection: close`, and the connection closed — and, for client-side errors, the origin
//! never sees a byte.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// How long a test waits for an error answer (all of them come well before this).
const WAIT: Duration = Duration::from_secs(5);

fn get(url: &str, host: &str) -> Vec<u8> {
    format!("GET {url} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes()
}

/// Sends `bytes`, expects the error `status`, and checks the origin was never contacted.
fn expect_error(proxy: &Proxy, origin: &Origin, bytes: &[u8], status: u16, what: &str) -> Message {
    let reply = send_raw(proxy.addr, bytes, WAIT);
    let m = assert_error_reply(&reply, status, what);
    assert_eq!(origin.accepted(), 0, "{what}: the origin was contacted");
    m
}

/// Runs every `(name, bytes, status)` case on a fresh connection; returns one line per case
/// that did not get exactly the expected error answer (or that reached the origin).
fn run_table<'a>(
    proxy: &Proxy,
    origin: &Origin,
    cases: impl Iterator<Item = (&'a str, &'a [u8], u16)>,
) -> Vec<String> {
    let mut failures = Vec::new();
    for (what, bytes, status) in cases {
        let reply = send_raw(proxy.addr, bytes, WAIT);
        if let Err(e) = check_error_reply(&reply, status) {
            failures.push(format!(
                "{what} ({:?}): {e}",
                String::from_utf8_lossy(bytes)
            ));
        }
        if origin.accepted() != 0 {
            failures.push(format!("{what}: the origin was contacted"));
        }
    }
    failures
}

fn malformed_request_line(driver: &str) {
    let origin = Origin::http(|_| ok(b"should not be reached"));
    let proxy = Proxy::start(driver, &[]);
    let o = origin.addr;
    let cases: Vec<(&str, String)> = vec![
        ("not HTTP at all", "GARBAGE\r\n\r\n".to_owned()),
        (
            "no version",
            format!("GET http://{o}/\r\nHost: {o}\r\n\r\n"),
        ),
        ("no target", "GET HTTP/1.1\r\n\r\n".to_owned()),
        (
            "extra token after the version",
            format!("GET http://{o}/ HTTP/1.1 extra\r\nHost: {o}\r\n\r\n"),
        ),
        (
            "double space",
            format!("GET  http://{o}/ HTTP/1.1\r\nHost: {o}\r\n\r\n"),
        ),
        (
            "space inside the target",
            format!("GET http://{o}/a b HTTP/1.1\r\nHost: {o}\r\n\r\n"),
        ),
        (
            "bad method byte",
            format!("G(T http://{o}/ HTTP/1.1\r\nHost: {o}\r\n\r\n"),
        ),
        (
            "not an HTTP version",
            format!("GET http://{o}/ FTP/1.1\r\nHost: {o}\r\n\r\n"),
        ),
        (
            "lowercase protocol name",
            format!("GET http://{o}/ http/1.1\r\nHost: {o}\r\n\r\n"),
        ),
        (
            "userinfo in the target",
            format!("GET http://user:pw@{o}/ HTTP/1.1\r\nHost: {o}\r\n\r\n"),
        ),
        (
            "empty host",
            "GET http:///path HTTP/1.1\r\nHost: x\r\n\r\n".to_owned(),
        ),
        (
            "port out of range",
            "GET http://127.0.0.1:99999/ HTTP/1.1\r\nHost: x\r\n\r\n".to_owned(),
        ),
        (
            "port zero",
            "GET http://127.0.0.1:0/ HTTP/1.1\r\nHost: x\r\n\r\n".to_owned(),
        ),
        (
            "unknown scheme",
            format!("GET ftp://{o}/ HTTP/1.1\r\nHost: {o}\r\n\r\n"),
        ),
        (
            "two Host fields",
            format!("GET http://{o}/ HTTP/1.1\r\nHost: {o}\r\nHost: {o}\r\n\r\n"),
        ),
        (
            "asterisk-form for GET",
            format!("GET * HTTP/1.1\r\nHost: {o}\r\n\r\n"),
        ),
    ];
    let failures = run_table(
        &proxy,
        &origin,
        cases.iter().map(|(w, b)| (*w, b.as_bytes(), 400)),
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_still_serving(&proxy, &origin, "after malformed request lines");
    assert_no_panic(proxy);
}

fn head_too_large_default(driver: &str) {
    let origin = Origin::http(|_| ok(b"should not be reached"));
    let proxy = Proxy::start(driver, &[]);
    // 70 KiB of one header value: over the default 64 KiB head limit.
    let big = "a".repeat(70 * 1024);
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nX-Big: {big}\r\n\r\n",
        origin.url("/"),
        origin.addr
    );
    expect_error(&proxy, &origin, req.as_bytes(), 431, "70 KiB head");
    // Many medium fields adding up past 64 KiB.
    let mut req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\n",
        origin.url("/"),
        origin.addr
    );
    for i in 0..90 {
        req.push_str(&format!("X-F{i}: {}\r\n", "b".repeat(1000)));
    }
    req.push_str("\r\n");
    expect_error(&proxy, &origin, req.as_bytes(), 431, "90 fields of 1 KB");
    assert_still_serving(&proxy, &origin, "after an oversized head");
    assert_no_panic(proxy);
}

fn head_too_large_configured(driver: &str) {
    let origin = Origin::http(|_| ok(b"fits"));
    let proxy = Proxy::start(driver, &["--max-head-bytes", "1024"]);
    let base = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\n",
        origin.url("/"),
        origin.addr
    );
    // A 2 KiB head → 431, and the origin is never contacted.
    let req = format!(
        "{base}X-Pad: {}\r\n\r\n",
        "p".repeat(2048 - base.len() - 11)
    );
    assert!(req.len() >= 2048);
    expect_error(
        &proxy,
        &origin,
        req.as_bytes(),
        431,
        "2 KiB head, 1 KiB limit",
    );
    // A head just under the limit still goes through.
    let req = format!("{base}X-Pad: {}\r\n\r\n", "p".repeat(900 - base.len()));
    assert!(req.len() < 1024);
    let mut c = Reader::new(proxy.connect());
    let resp = roundtrip(&mut c, "GET", req.as_bytes());
    assert_eq!(resp.status, 200, "a head under the limit must pass");
    assert_eq!(resp.body_str(), "fits");
    assert_no_panic(proxy);
}

fn too_many_headers(driver: &str) {
    let origin = Origin::http(|_| ok(b"ten is fine"));
    let proxy = Proxy::start(driver, &["--max-headers", "10"]);
    let head_with = |fields: usize| {
        let mut req = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\n",
            origin.url("/"),
            origin.addr
        );
        for i in 1..fields {
            req.push_str(&format!("X-H{i}: v\r\n"));
        }
        req.push_str("\r\n");
        req
    };
    expect_error(&proxy, &origin, head_with(11).as_bytes(), 431, "11 fields");
    expect_error(&proxy, &origin, head_with(50).as_bytes(), 431, "50 fields");
    let mut c = Reader::new(proxy.connect());
    let resp = roundtrip(&mut c, "GET", head_with(10).as_bytes());
    assert_eq!(resp.status, 200, "exactly --max-headers fields must pass");
    assert_eq!(resp.body_str(), "ten is fine");
    assert_no_panic(proxy);
}

fn unknown_host(driver: &str) {
    let proxy = Proxy::start(driver, &[]);
    let reply = send_raw(
        proxy.addr,
        &get("http://nonexistent.invalid/", "nonexistent.invalid"),
        WAIT,
    );
    let m = assert_error_reply(&reply, 502, "unknown host");
    assert!(
        m.body_str().contains("nonexistent.invalid"),
        "the body should name the host: {:?}",
        m.body_str()
    );
    assert_no_panic(proxy);
}

fn connection_refused(driver: &str) {
    // A port that was just bound and released: nothing listens on it.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let proxy = Proxy::start(driver, &[]);
    let url = format!("http://127.0.0.1:{port}/");
    let start = Instant::now();
    let reply = send_raw(proxy.addr, &get(&url, &format!("127.0.0.1:{port}")), WAIT);
    assert_error_reply(&reply, 502, "connection refused");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "a refused connect must fail fast, took {:?}",
        start.elapsed()
    );
    assert_no_panic(proxy);
}

fn connect_timeout(driver: &str) {
    let (addr, _listener, _held) =
        full_backlog_listener().expect("could not fill a listener's accept queue");
    let proxy = Proxy::start(driver, &["--connect-timeout", "300ms"]);
    let url = format!("http://{addr}/");
    let start = Instant::now();
    let reply = send_raw(proxy.addr, &get(&url, &addr.to_string()), WAIT);
    let elapsed = start.elapsed();
    assert_error_reply(&reply, 504, "connect timeout");
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(3),
        "504 should come after ~300ms, took {elapsed:?}"
    );
    assert_no_panic(proxy);
}

fn response_timeout(driver: &str) {
    // Accepts, reads the request, never answers (holds the connection for a bounded time).
    let origin = Origin::start(|mut s| {
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        thread::sleep(Duration::from_secs(4));
    });
    let proxy = Proxy::start(driver, &["--response-timeout", "300ms"]);
    let start = Instant::now();
    let reply = send_raw(
        proxy.addr,
        &get(&origin.url("/slow"), &origin.addr.to_string()),
        WAIT,
    );
    let elapsed = start.elapsed();
    assert_error_reply(&reply, 504, "response timeout");
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(2),
        "504 should come after ~300ms, took {elapsed:?}"
    );
    assert_eq!(origin.accepted(), 1);
    assert_no_panic(proxy);
}

fn origin_form_request(driver: &str) {
    let origin = Origin::http(|_| ok(b"should not be reached"));
    let proxy = Proxy::start(driver, &[]);
    let host = origin.addr.to_string();
    let m = expect_error(
        &proxy,
        &origin,
        format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
        400,
        "origin-form GET",
    );
    let body = m.body_str();
    assert!(
        body.contains("proxy") && body.contains("absolute-form"),
        "the 400 should explain lynxio is a proxy: {body:?}"
    );
    expect_error(
        &proxy,
        &origin,
        format!("OPTIONS * HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
        400,
        "asterisk-form OPTIONS",
    );
    assert_no_panic(proxy);
}

fn https_without_connect(driver: &str) {
    let origin = Origin::http(|_| ok(b"should not be reached"));
    let proxy = Proxy::start(driver, &[]);
    let url = format!("https://{}/secret", origin.addr);
    let m = expect_error(
        &proxy,
        &origin,
        &get(&url, &origin.addr.to_string()),
        400,
        "https:// absolute-form",
    );
    assert!(
        m.body_str().contains("CONNECT"),
        "the 400 should point at CONNECT: {:?}",
        m.body_str()
    );
    assert_no_panic(proxy);
}

/// CONNECT targets that are not `host:port`, and a CONNECT carrying a body, are 400 and no
/// connection is opened anywhere.
fn connect_bad_targets(driver: &str) {
    let origin = Origin::http(|_| ok(b"should not be reached"));
    let proxy = Proxy::start(driver, &[]);
    let o = origin.addr;
    let ip = o.ip();
    for (what, target) in [
        ("no port", format!("{ip}")),
        ("port 0", format!("{ip}:0")),
        ("origin-form", "/".to_owned()),
        ("absolute-form", format!("http://{o}/")),
        ("port too large", format!("{ip}:65536")),
        ("empty host", format!(":{}", o.port())),
    ] {
        expect_error(
            &proxy,
            &origin,
            format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes(),
            400,
            what,
        );
    }
    expect_error(
        &proxy,
        &origin,
        format!("CONNECT {o} HTTP/1.1\r\nHost: {o}\r\nContent-Length: 5\r\n\r\nhello").as_bytes(),
        400,
        "CONNECT with a body",
    );
    assert_no_panic(proxy);
}

fn unsupported_expect(driver: &str) {
    let origin = Origin::http(|_| ok(b"should not be reached"));
    let proxy = Proxy::start(driver, &[]);
    let o = origin.addr;
    let url = origin.url("/upload");
    expect_error(
        &proxy,
        &origin,
        format!("GET {url} HTTP/1.1\r\nHost: {o}\r\nExpect: the-unexpected\r\n\r\n").as_bytes(),
        417,
        "Expect: the-unexpected",
    );
    expect_error(
        &proxy,
        &origin,
        format!(
            "POST {url} HTTP/1.1\r\nHost: {o}\r\nContent-Length: 5\r\n\
             Expect: 100-continue, x-other\r\n\r\n"
        )
        .as_bytes(),
        417,
        "Expect: 100-continue plus another expectation",
    );
    assert_no_panic(proxy);
}

fn unsupported_version(driver: &str) {
    let origin = Origin::http(|_| ok(b"should not be reached"));
    let proxy = Proxy::start(driver, &[]);
    let o = origin.addr;
    let url = origin.url("/");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "HTTP/2 connection preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
        ),
        (
            "HTTP/2.0 request line",
            format!("GET {url} HTTP/2.0\r\nHost: {o}\r\n\r\n").into_bytes(),
        ),
        (
            "HTTP/1.2",
            format!("GET {url} HTTP/1.2\r\nHost: {o}\r\n\r\n").into_bytes(),
        ),
        (
            "HTTP/3.0",
            format!("GET {url} HTTP/3.0\r\nHost: {o}\r\n\r\n").into_bytes(),
        ),
    ];
    let failures = run_table(
        &proxy,
        &origin,
        cases.iter().map(|(w, b)| (*w, &b[..], 505)),
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_no_panic(proxy);
}

fn slowloris_half_head(driver: &str) {
    let origin = Origin::http(|_| ok(b"should not be reached"));
    let proxy = Proxy::start(driver, &["--client-head-timeout", "500ms"]);
    let half = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nX-Sl",
        origin.url("/"),
        origin.addr
    );
    let start = Instant::now();
    let reply = send_raw(proxy.addr, half.as_bytes(), WAIT);
    assert_error_reply(&reply, 408, "half a head then silence");
    assert!(
        reply.elapsed >= Duration::from_millis(400) && reply.elapsed < Duration::from_secs(3),
        "408 should come after ~500ms, took {:?}",
        start.elapsed()
    );
    assert_eq!(origin.accepted(), 0);
    assert_no_panic(proxy);
}

fn slowloris_trickle(driver: &str) {
    // One byte every 50 ms keeps every single read short, but the head deadline is for the
    // whole head: 408 after ~500ms anyway.
    let origin = Origin::http(|_| ok(b"should not be reached"));
    let proxy = Proxy::start(driver, &["--client-head-timeout", "500ms"]);
    let mut s = proxy.connect();
    let start = Instant::now();
    let head = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nX-Slow: {}",
        origin.url("/"),
        origin.addr,
        "z".repeat(200)
    );
    for &b in head.as_bytes().iter().take(60) {
        if s.write_all(&[b]).is_err() || start.elapsed() > Duration::from_secs(3) {
            break;
        }
        thread::sleep(Duration::from_millis(50));
        // Stop once the proxy has answered (writing on would only provoke a reset).
        s.set_nonblocking(true).expect("nonblocking");
        let answered = s.peek(&mut [0u8; 1]).is_ok();
        s.set_nonblocking(false).expect("blocking");
        if answered {
            break;
        }
    }
    let reply = read_reply(s, start, WAIT);
    assert_error_reply(&reply, 408, "trickled head");
    assert!(
        reply.elapsed < Duration::from_secs(4),
        "trickling must not extend the head deadline: {:?}",
        reply.elapsed
    );
    assert_eq!(origin.accepted(), 0);
    assert_no_panic(proxy);
}

/// Every error body is a plain sentence saying what was wrong (and, for a limit, which flag
/// sets it): a table of bad requests, each answered with its status and a body holding the
/// expected words and no internal type name (`Malformed`, `HeadTooLarge`, …).
fn error_bodies_are_plain_sentences(driver: &str) {
    let origin = Origin::http(|_| ok(b"should not be reached"));
    let proxy = Proxy::start(driver, &["--max-head-bytes", "1024", "--max-headers", "10"]);
    let o = origin.addr;
    let url = origin.url("/");
    let mut many_fields = format!("GET {url} HTTP/1.1\r\nHost: {o}\r\n");
    for i in 0..12 {
        many_fields.push_str(&format!("X-H{i}: v\r\n"));
    }
    many_fields.push_str("\r\n");
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "not HTTP at all",
            "GARBAGE\r\n\r\n".to_owned(),
            400,
            "the request is not valid HTTP/1.1",
        ),
        (
            "head over --max-head-bytes",
            format!(
                "GET {url} HTTP/1.1\r\nHost: {o}\r\nX-Big: {}\r\n\r\n",
                "a".repeat(2048)
            ),
            431,
            "request head too large (limit 1024 bytes: --max-head-bytes)",
        ),
        (
            "more fields than --max-headers",
            many_fields,
            431,
            "too many header fields in the request head (limit 10: --max-headers)",
        ),
        (
            "HTTP/2.0",
            format!("GET {url} HTTP/2.0\r\nHost: {o}\r\n\r\n"),
            505,
            "HTTP version",
        ),
        (
            "Content-Length and Transfer-Encoding",
            format!(
                "POST {url} HTTP/1.1\r\nHost: {o}\r\nContent-Length: 3\r\n\
                 Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            ),
            400,
            "body length",
        ),
        (
            "userinfo in the target",
            format!("GET http://user:pw@{o}/ HTTP/1.1\r\nHost: {o}\r\n\r\n"),
            400,
            "target URL is not valid",
        ),
        (
            "obs-fold",
            format!("GET {url} HTTP/1.1\r\nHost: {o}\r\nX-A: 1\r\n  2\r\n\r\n"),
            400,
            "not valid HTTP/1.1",
        ),
        (
            "origin-form",
            format!("GET / HTTP/1.1\r\nHost: {o}\r\n\r\n"),
            400,
            "lynxio is a proxy",
        ),
        (
            "unsupported Expect",
            format!("GET {url} HTTP/1.1\r\nHost: {o}\r\nExpect: magic\r\n\r\n"),
            417,
            "Expect",
        ),
    ];
    let mut failures = Vec::new();
    for (what, bytes, status, words) in &cases {
        let reply = send_raw(proxy.addr, bytes.as_bytes(), WAIT);
        match check_error_reply(&reply, *status) {
            Err(e) => failures.push(format!("{what}: {e}")),
            Ok(m) if !m.body_str().contains(words) => {
                failures.push(format!("{what}: body {:?} lacks {words:?}", m.body_str()));
            }
            Ok(m) => {
                if let Some(name) = internal_name_in(&m.body_str()) {
                    failures.push(format!("{what}: body names {name}: {:?}", m.body_str()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(origin.accepted(), 0, "a bad request reached the origin");

    // An origin whose response is not HTTP: 502 saying so, in words.
    let bad_origin = Origin::start(|mut s| {
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        let _ = s.write_all(b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n");
        thread::sleep(Duration::from_millis(200));
    });
    let reply = send_raw(
        proxy.addr,
        &get(&bad_origin.url("/"), &bad_origin.addr.to_string()),
        WAIT,
    );
    let m = assert_error_reply(&reply, 502, "a response that is not HTTP");
    assert!(
        m.body_str()
            .starts_with("the origin's response is not valid HTTP/1.1"),
        "{:?}",
        m.body_str()
    );
    assert_no_panic(proxy);
}

drivers!(
    error_bodies_are_plain_sentences,
    malformed_request_line,
    head_too_large_default,
    head_too_large_configured,
    too_many_headers,
    unknown_host,
    connection_refused,
    connect_timeout,
    response_timeout,
    origin_form_request,
    https_without_connect,
    connect_bad_targets,
    unsupported_expect,
    unsupported_version,
    slowloris_half_head,
    slowloris_trickle,
);
