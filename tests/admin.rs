//! The admin listener, black-box: `/healthz`, `/metrics` parsed as Prometheus text with
//! counters moving as traffic flows, `/events` streaming (as Server-Sent Events) an event for a
//! request made after subscribing, filtered by `?host=`, and the Bearer token enforced.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;

/// One admin request; returns the response.
fn admin_get(admin: SocketAddr, path: &str, token: Option<&str>) -> Message {
    let mut s = connect(admin);
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: admin\r\n{auth}\r\n").as_bytes())
        .expect("write");
    Reader::new(s)
        .response("GET")
        .unwrap_or_else(|| panic!("no response to GET {path}"))
}

/// `name{labels} value` samples of a Prometheus/OpenMetrics text body.
fn samples(body: &str) -> Vec<(String, f64)> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {l}"));
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {l}"));
            (series.to_owned(), value)
        })
        .collect()
}

fn sample(body: &str, series: &str) -> f64 {
    samples(body)
        .into_iter()
        .find(|(s, _)| s == series)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no sample {series} in:\n{body}"))
}

/// One GET through the proxy to `url`, expecting 200.
fn get_through(proxy: &Proxy, origin: &Origin, path: &str) {
    let mut c = Reader::new(proxy.connect());
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\n\r\n",
        origin.url(path),
        origin.addr
    );
    assert_eq!(roundtrip(&mut c, "GET", req.as_bytes()).status, 200);
}

/// `/healthz` answers `ok`; `/metrics` is Prometheus text whose request, response, byte,
/// pool and connection counters move with a request.
fn health_and_metrics(driver: &str) {
    let origin = Origin::http(|_| ok(b"hello"));
    let proxy = Proxy::start(driver, &["--admin", "127.0.0.1:0"]);
    let admin = proxy.admin.expect("the ready line names the admin address");
    let health = admin_get(admin, "/healthz", None);
    assert_eq!((health.status, health.body_str().trim()), (200, "ok"));

    let before = admin_get(admin, "/metrics", None);
    assert_eq!(before.status, 200);
    assert!(
        before
            .header("content-type")
            .is_some_and(|v| v.contains("text")),
        "{:?}",
        before.headers
    );
    let body = before.body_str();
    assert!(body.contains("# TYPE lynxio_requests counter"), "{body}");
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
    let get = r#"lynxio_requests_total{worker="0",method="GET"}"#;
    let ok2xx = r#"lynxio_responses_total{worker="0",class="2xx"}"#;
    let sent = r#"lynxio_sent_body_bytes_total{worker="0"}"#;
    let misses = r#"lynxio_upstream_pool_misses_total{worker="0"}"#;
    let hits = r#"lynxio_upstream_pool_hits_total{worker="0"}"#;
    assert_eq!(sample(&body, get), 0.0);

    get_through(&proxy, &origin, "/one");
    get_through(&proxy, &origin, "/two");
    // An exchange is counted when it is reported, just after its last byte went out.
    let mut after = String::new();
    assert!(
        eventually(Duration::from_secs(5), || {
            after = admin_get(admin, "/metrics", None).body_str();
            sample(&after, ok2xx) == 2.0
        }),
        "{after}"
    );
    assert_eq!(sample(&after, get), 2.0, "{after}");
    assert_eq!(sample(&after, ok2xx), 2.0, "{after}");
    assert_eq!(sample(&after, sent), 10.0, "{after}");
    assert_eq!(
        sample(&after, misses) + sample(&after, hits),
        2.0,
        "{after}"
    );
    assert!(
        sample(&after, hits) >= 1.0,
        "the second GET reused the pooled connection: {after}"
    );

    // A failure is counted by kind.
    let reply = send_raw(
        proxy.addr,
        b"GET http://nonexistent.invalid/ HTTP/1.1\r\nHost: nonexistent.invalid\r\n\r\n",
        Duration::from_secs(5),
    );
    assert_eq!(status_of(&reply.raw), 502);
    let five = r#"lynxio_responses_total{worker="0",class="5xx"}"#;
    assert!(
        eventually(Duration::from_secs(5), || {
            after = admin_get(admin, "/metrics", None).body_str();
            sample(&after, five) == 1.0
        }),
        "{after}"
    );
    assert_eq!(
        sample(&after, r#"lynxio_errors_total{worker="0",kind="resolve"}"#),
        1.0
    );
    assert_eq!(
        sample(&after, r#"lynxio_responses_total{worker="0",class="5xx"}"#),
        1.0
    );
    assert_eq!(admin_get(admin, "/nope", None).status, 404);
}

/// Reads SSE `data:` lines from an `/events` stream until one satisfies `want` (bounded).
fn next_event(
    lines: &mut BufReader<TcpStream>,
    want: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut line = String::new();
    while Instant::now() < deadline {
        line.clear();
        match lines.read_line(&mut line) {
            Ok(0) => panic!("the event stream ended"),
            Ok(_) => {}
            Err(e) => panic!("reading the event stream: {e}"),
        }
        if let Some(data) = line.trim_end().strip_prefix("data: ") {
            let v: serde_json::Value = serde_json::from_str(data).expect("event data is JSON");
            if want(&v) {
                return v;
            }
        }
    }
    panic!("no matching event within 10 s");
}

/// A subscriber to `/events?host=127.0.0.1` gets the events of a request made after it
/// subscribed — and not those of a request to another host.
fn live_events(driver: &str) {
    let origin = Origin::http(|_| ok(b"hello"));
    let proxy = Proxy::start(driver, &["--admin", "127.0.0.1:0"]);
    let admin = proxy.admin.expect("admin address");
    let mut s = connect(admin);
    s.write_all(b"GET /events?host=127.0.0.1 HTTP/1.1\r\nHost: admin\r\n\r\n")
        .expect("write");
    let mut lines = BufReader::new(s);
    let mut head = String::new();
    for _ in 0..32 {
        let mut l = String::new();
        lines.read_line(&mut l).expect("SSE head");
        head.push_str(&l);
        if l == "\r\n" || l.is_empty() {
            break;
        }
    }
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("text/event-stream"),
        "{head}"
    );

    // Another host first: filtered out.
    let mut c = Reader::new(proxy.connect());
    let page = roundtrip(
        &mut c,
        "GET",
        b"GET http://lynxio.ca/ HTTP/1.1\r\nHost: lynxio.ca\r\n\r\n",
    );
    assert_eq!(page.status, 200);
    get_through(&proxy, &origin, "/live");
    let url = origin.url("/live");
    let req = next_event(&mut lines, |v| v["ev"] == "request");
    assert_eq!(
        req["url"],
        url.as_str(),
        "the lynxio.ca request was not filtered: {req}"
    );
    let id = req["id"].clone();
    let resp = next_event(&mut lines, |v| v["ev"] == "response" && v["id"] == id);
    assert_eq!(resp["status"], 200);
    let end = next_event(&mut lines, |v| v["ev"] == "end" && v["id"] == id);
    assert_eq!(end["status"], 200);
    assert_eq!(end["outcome"], "completed");
}

/// With `--admin-token`, every admin request needs `Authorization: Bearer TOKEN`.
fn token_enforced(driver: &str) {
    let proxy = Proxy::start(
        driver,
        &["--admin", "127.0.0.1:0", "--admin-token", "s3cret"],
    );
    let admin = proxy.admin.expect("admin address");
    for path in ["/metrics", "/healthz", "/events"] {
        let none = admin_get(admin, path, None);
        assert_eq!(none.status, 401, "{path} without a token");
        assert!(
            none.header("www-authenticate")
                .is_some_and(|v| v.starts_with("Bearer")),
            "{:?}",
            none.headers
        );
        assert_eq!(admin_get(admin, path, Some("wrong")).status, 401, "{path}");
    }
    assert_eq!(admin_get(admin, "/metrics", Some("s3cret")).status, 200);
    assert_eq!(admin_get(admin, "/healthz", Some("s3cret")).status, 200);
    assert!(!proxy.log().contains("s3cret"), "the token was logged");
}

/// `--pool-max-idle` caps the worker's idle upstream connections over all origins: returning
/// one past the cap closes the least recently used idle one (another origin's), counted in
/// `lynxio_upstream_pool_evictions`.
fn pool_total_cap_evicts_across_origins(driver: &str) {
    let a = Origin::http(|_| ok(b"a"));
    let b = Origin::http(|_| ok(b"b"));
    let proxy = Proxy::start(driver, &["--admin", "127.0.0.1:0", "--pool-max-idle", "1"]);
    let admin = proxy.admin.expect("the ready line names the admin address");
    let evictions = r#"lynxio_upstream_pool_evictions_total{worker="0"}"#;
    get_through(&proxy, &a, "/1"); // pool: a
    get_through(&proxy, &b, "/1"); // pool: b (a evicted)
    get_through(&proxy, &a, "/2"); // a dialed again; pool: a (b evicted)
    assert_eq!(a.accepted(), 2, "a's idle connection was evicted for b's");
    get_through(&proxy, &a, "/3"); // the one idle connection is reused
    assert_eq!((a.accepted(), b.accepted()), (2, 1));
    let mut body = String::new();
    assert!(
        eventually(Duration::from_secs(5), || {
            body = admin_get(admin, "/metrics", None).body_str();
            sample(&body, evictions) == 2.0
        }),
        "{body}"
    );
    assert_no_panic(proxy);
}

drivers!(
    health_and_metrics,
    live_events,
    token_enforced,
    pool_total_cap_evicts_across_origins
);
