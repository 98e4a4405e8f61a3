//! Connection management: client keep-alive and pipelining, `Connection: close` on either side,
//! the upstream pool (reuse across clients, HTTP/1.0 origins, idle expiry, stale connections)
//! and the client idle timeout.

mod common;

use std::io::Write;
use std::net::Shutdown;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

fn get(url: &str) -> Vec<u8> {
    format!("GET {url} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()
}

fn with_body(method: &str, url: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "{method} {url} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// Echoes `METHOD target body-length`.
fn describe(req: &Message) -> Vec<u8> {
    ok(format!("{} {} {}", req.method, req.target, req.body.len()).as_bytes())
}

/// Many sequential requests on one client connection, over one upstream connection.
fn sequential_requests(driver: &str) {
    let (origin, rx) = recording_origin(describe);
    let proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    for i in 0..8 {
        let path = format!("/seq/{i}");
        let resp = if i % 3 == 2 {
            roundtrip(
                &mut c,
                "POST",
                &with_body("POST", &origin.url(&path), b"abc"),
            )
        } else {
            roundtrip(&mut c, "GET", &get(&origin.url(&path)))
        };
        assert_eq!(resp.status, 200);
        let method = if i % 3 == 2 { "POST" } else { "GET" };
        let len = if i % 3 == 2 { 3 } else { 0 };
        assert_eq!(resp.body_str(), format!("{method} {path} {len}"));
        assert_eq!(resp.header("connection"), None);
        assert_eq!(next_request(&rx).target, path);
    }
    assert_eq!(origin.accepted(), 1);
}

/// Requests written in one write are answered in order, each with its own body; the last one
/// asks to close and the proxy closes after answering it.
fn pipelined_requests(driver: &str) {
    let (origin, rx) = recording_origin(describe);
    let proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    let mut batch = get(&origin.url("/p1"));
    batch.extend_from_slice(&with_body("POST", &origin.url("/p2"), b"body-of-p2"));
    batch.extend_from_slice(
        format!(
            "PUT {} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
             3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            origin.url("/p2b")
        )
        .as_bytes(),
    );
    batch.extend_from_slice(&get(&origin.url("/p3")));
    batch.extend_from_slice(
        format!(
            "GET {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            origin.url("/p4")
        )
        .as_bytes(),
    );
    c.get_mut().write_all(&batch).unwrap();
    let expected = [
        "GET /p1 0",
        "POST /p2 10",
        "PUT /p2b 5",
        "GET /p3 0",
        "GET /p4 0",
    ];
    for (i, want) in expected.iter().enumerate() {
        let (_, resp) = c.final_response("GET").expect("pipelined response");
        assert_eq!(resp.status, 200, "response {i}");
        assert_eq!(resp.body_str(), *want, "response {i} out of order");
    }
    for want in ["/p1", "/p2", "/p2b", "/p3", "/p4"] {
        let got = next_request(&rx);
        assert_eq!(got.target, want);
        if want == "/p2b" {
            assert_eq!(got.body, b"abcde");
            assert!(got.chunked);
        }
        if want == "/p2" {
            assert_eq!(got.body, b"body-of-p2");
        }
    }
    assert!(
        c.closed(),
        "Connection: close on the last pipelined request"
    );
    assert_eq!(origin.accepted(), 1);
}

/// Two successive client connections reach the origin over one pooled upstream connection.
fn pool_reuse_across_clients(driver: &str) {
    let origin = Origin::http(describe);
    let proxy = Proxy::start(driver, &[]);
    for path in ["/a", "/b", "/c"] {
        let mut c = Reader::new(proxy.connect());
        let resp = roundtrip(&mut c, "GET", &get(&origin.url(path)));
        assert_eq!(resp.body_str(), format!("GET {path} 0"));
        drop(c);
    }
    assert_eq!(origin.accepted(), 1);
}

/// `Connection: close` from the client: the proxy answers with `Connection: close` and closes
/// the client connection; the close is not forwarded, so the upstream stays pooled.
fn client_connection_close(driver: &str) {
    let (origin, rx) = recording_origin(describe);
    let proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        origin.url("/bye")
    );
    let resp = roundtrip(&mut c, "GET", req.as_bytes());
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_str(), "GET /bye 0");
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(c.closed(), "the proxy must close after Connection: close");
    assert_eq!(next_request(&rx).header("connection"), None);

    let mut c = Reader::new(proxy.connect());
    let resp = roundtrip(&mut c, "GET", &get(&origin.url("/next")));
    assert_eq!(resp.status, 200);
    assert_eq!(origin.accepted(), 1);
}

/// The origin answers with `Connection: close` and closes: the next request opens a new
/// upstream connection, while the client connection stays usable (and never sees the close).
fn origin_connection_close(driver: &str) {
    let origin = Origin::start(|mut s| {
        let mut r = Reader::new(s.try_clone().unwrap());
        if let Some(req) = r.request() {
            let body = format!("closing after {}", req.target);
            let _ = s.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
        let _ = s.shutdown(Shutdown::Both);
    });
    let proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    for (i, path) in ["/x1", "/x2", "/x3"].into_iter().enumerate() {
        let resp = roundtrip(&mut c, "GET", &get(&origin.url(path)));
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body_str(), format!("closing after {path}"));
        assert_eq!(
            resp.header("connection"),
            None,
            "origin's close is hop-by-hop"
        );
        assert_eq!(origin.accepted(), i + 1);
    }
}

/// An HTTP/1.0 origin response without keep-alive is never reused (even if the origin leaves
/// the connection open); with `Connection: keep-alive` it is.
fn origin_http10_reuse(driver: &str) {
    let plain = Origin::http(|_| b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec());
    let kept = Origin::http(|_| {
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok".to_vec()
    });
    let proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    for _ in 0..3 {
        let resp = roundtrip(&mut c, "GET", &get(&plain.url("/")));
        assert_eq!(resp.body_str(), "ok");
        let resp = roundtrip(&mut c, "GET", &get(&kept.url("/")));
        assert_eq!(resp.body_str(), "ok");
        assert_eq!(resp.header("connection"), None);
    }
    assert_eq!(
        plain.accepted(),
        3,
        "HTTP/1.0 without keep-alive must not be pooled"
    );
    assert_eq!(kept.accepted(), 1, "HTTP/1.0 with keep-alive may be pooled");
}

/// An origin that serves requests until its connection ends, and reports that end.
fn origin_reporting_close() -> (Origin, mpsc::Receiver<Instant>) {
    let (tx, rx) = mpsc::channel();
    let origin = Origin::start(move |mut s| {
        let mut r = Reader::new(s.try_clone().unwrap());
        for _ in 0..1000 {
            let Some(req) = r.request() else { break };
            if s.write_all(&describe(&req)).is_err() {
                break;
            }
        }
        let _ = tx.send(Instant::now());
    });
    (origin, rx)
}

/// `--upstream-idle-timeout 300ms`: an idle pooled connection is closed by the proxy and not
/// reused after 1 s; a quick follow-up request still reuses it.
fn upstream_idle_timeout(driver: &str) {
    let (origin, closed) = origin_reporting_close();
    let proxy = Proxy::start(driver, &["--upstream-idle-timeout", "300ms"]);
    let mut c = Reader::new(proxy.connect());
    assert_eq!(
        roundtrip(&mut c, "GET", &get(&origin.url("/1"))).status,
        200
    );
    assert_eq!(
        roundtrip(&mut c, "GET", &get(&origin.url("/2"))).status,
        200
    );
    assert_eq!(origin.accepted(), 1);
    let idle_since = Instant::now();
    // The pool sweeper closes the expired connection: the origin sees it end.
    let when = closed
        .recv_timeout(Duration::from_secs(3))
        .expect("the proxy should close an expired idle upstream connection");
    assert!(
        when.duration_since(idle_since) >= Duration::from_millis(250),
        "closed before the idle timeout"
    );
    thread::sleep(Duration::from_millis(1000).saturating_sub(idle_since.elapsed()));
    assert_eq!(
        roundtrip(&mut c, "GET", &get(&origin.url("/3"))).status,
        200
    );
    assert_eq!(origin.accepted(), 2);
}

/// `--client-idle-timeout 300ms`: after a response, an idle client connection is closed by
/// the proxy well within 2 s (and not much before the timeout).
fn client_idle_timeout(driver: &str) {
    let origin = Origin::http(describe);
    let proxy = Proxy::start(driver, &["--client-idle-timeout", "300ms"]);
    let mut c = Reader::new(proxy.connect());
    c.get_mut()
        .set_read_timeout(Some(Duration::from_secs(4)))
        .unwrap();
    assert_eq!(
        roundtrip(&mut c, "GET", &get(&origin.url("/i"))).status,
        200
    );
    let start = Instant::now();
    assert!(c.closed(), "idle client connection not closed");
    let took = start.elapsed();
    assert!(took < Duration::from_secs(2), "closed after {took:?}");
    assert!(
        took >= Duration::from_millis(250),
        "closed too early: {took:?}"
    );
}

/// An origin that answers one request per connection (without `Connection: close`), then
/// closes the connection (with a reset when `reset`) while it sits idle in the proxy's pool.
/// Reports each request.
fn origin_closing_idle(reset: bool) -> (Origin, mpsc::Receiver<Message>, mpsc::Receiver<()>) {
    let (req_tx, req_rx) = mpsc::channel();
    let (close_tx, close_rx) = mpsc::channel();
    let origin = Origin::start(move |mut s| {
        let mut r = Reader::new(s.try_clone().unwrap());
        if let Some(req) = r.request() {
            let _ = s.write_all(&describe(&req));
            let _ = req_tx.send(req);
        }
        drop(r);
        if reset {
            // SO_LINGER 0: close() sends RST instead of FIN.
            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
        }
        drop(s);
        let _ = close_tx.send(());
    });
    (origin, req_rx, close_rx)
}

/// A pooled connection the origin closed while idle: the next request (idempotent or not,
/// with or without a body, small or streamed) still succeeds, on a new connection, and
/// reaches the origin exactly once.
fn stale_pooled_connection(driver: &str) {
    stale_pooled_connection_with(driver, false);
}

/// Same as [`stale_pooled_connection`], with the origin resetting the idle connection.
fn stale_pooled_connection_reset(driver: &str) {
    stale_pooled_connection_with(driver, true);
}

fn stale_pooled_connection_with(driver: &str, reset: bool) {
    let (origin, reqs, closes) = origin_closing_idle(reset);
    let proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    let big = pseudo_random_bytes(100 * 1024, 1);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("GET", Vec::new()),
        ("HEAD", Vec::new()),
        ("PUT", b"small put".to_vec()),
        ("POST", b"small post".to_vec()),
        ("POST", big.clone()),
        ("PUT", big),
        ("GET", Vec::new()),
    ];
    // Prime the pool with a connection that the origin then closes.
    assert_eq!(
        roundtrip(&mut c, "GET", &get(&origin.url("/prime"))).status,
        200
    );
    assert_eq!(next_request(&reqs).target, "/prime");
    closes.recv_timeout(IO_TIMEOUT).expect("origin closed");
    for (i, (method, body)) in cases.iter().enumerate() {
        // Let the origin's FIN reach the proxy's socket (loopback: immediate in practice).
        thread::sleep(Duration::from_millis(50));
        let path = format!("/after-close/{i}");
        let req = if body.is_empty() {
            format!("{method} {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url(&path)).into_bytes()
        } else {
            with_body(method, &origin.url(&path), body)
        };
        let resp = roundtrip(&mut c, method, &req);
        assert_eq!(resp.status, 200, "{method} with {} body bytes", body.len());
        if *method != "HEAD" {
            assert_eq!(resp.body_str(), format!("{method} {path} {}", body.len()));
        }
        let got = next_request(&reqs);
        assert_eq!(got.target, path);
        assert!(got.body == *body, "{method} body");
        closes.recv_timeout(IO_TIMEOUT).expect("origin closed");
        assert_eq!(origin.accepted(), i + 2, "{method}: one new connection");
    }
    assert!(
        reqs.try_recv().is_err(),
        "a request reached the origin twice"
    );
}

/// A pooled connection that relays an interim response and then dies before the final one must
/// not be retried (the client already holds the `103`; a retry would repeat it): the client gets
/// the `103`, then a 502, and the request reached the origin once, on the one connection.
fn pooled_connection_dying_after_interim_is_not_retried(driver: &str) {
    let (req_tx, req_rx) = mpsc::channel();
    let origin = Origin::start(move |mut s| {
        let mut r = Reader::new(s.try_clone().unwrap());
        while let Some(req) = r.request() {
            let _ = req_tx.send(req.target.clone());
            if req.target == "/prime" {
                if s.write_all(&ok(b"primed")).is_err() {
                    return;
                }
                continue;
            }
            let _ = s.write_all(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n");
            let _ = s.shutdown(Shutdown::Both);
            return;
        }
    });
    let proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    assert_eq!(
        roundtrip(&mut c, "GET", &get(&origin.url("/prime"))).status,
        200
    );
    c.get_mut()
        .write_all(&get(&origin.url("/hints-then-gone")))
        .unwrap();
    let (interim, last) = c.final_response("GET").expect("a final response");
    assert_eq!(interim.len(), 1, "the 103 reached the client exactly once");
    assert_eq!(interim[0].status, 103);
    assert_eq!(last.status, 502, "{}", last.body_str());
    let seen: Vec<String> = req_rx.try_iter().collect();
    assert_eq!(seen, ["/prime", "/hints-then-gone"], "no retry");
    assert_eq!(origin.accepted(), 1, "no second connection for a retry");
}

/// An idle pooled connection on which the origin sent unsolicited bytes (here a whole stray
/// response) must be discarded: the next request — from another client — gets the origin's
/// real answer, not the stray bytes.
fn stray_bytes_on_idle_pooled_connection(driver: &str, method: &str) {
    let (sent_tx, sent_rx) = mpsc::channel();
    let origin = Origin::start(move |mut s| {
        let mut r = Reader::new(s.try_clone().unwrap());
        let mut first = true;
        for _ in 0..10 {
            let Some(req) = r.request() else { return };
            if s.write_all(&describe(&req)).is_err() {
                return;
            }
            if first {
                first = false;
                thread::sleep(Duration::from_millis(50));
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray");
                let _ = sent_tx.send(());
            }
        }
    });
    let proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    let resp = roundtrip(&mut c, "GET", &get(&origin.url("/one")));
    assert_eq!(resp.body_str(), "GET /one 0");
    drop(c);
    sent_rx.recv_timeout(IO_TIMEOUT).expect("stray bytes sent");
    // Let the stray bytes reach the proxy's socket (loopback: immediate in practice).
    thread::sleep(Duration::from_millis(50));
    let mut c = Reader::new(proxy.connect());
    let req = if method == "GET" {
        get(&origin.url("/two"))
    } else {
        with_body(method, &origin.url("/two"), b"b")
    };
    let resp = roundtrip(&mut c, method, &req);
    assert_eq!(resp.status, 200);
    let len = usize::from(method != "GET");
    assert_eq!(
        resp.body_str(),
        format!("{method} /two {len}"),
        "{method} got the stray bytes of an idle pooled connection"
    );
}

fn stray_bytes_before_get(driver: &str) {
    stray_bytes_on_idle_pooled_connection(driver, "GET");
}

fn stray_bytes_before_post(driver: &str) {
    stray_bytes_on_idle_pooled_connection(driver, "POST");
}

drivers!(
    sequential_requests,
    pipelined_requests,
    pool_reuse_across_clients,
    client_connection_close,
    origin_connection_close,
    origin_http10_reuse,
    upstream_idle_timeout,
    client_idle_timeout,
    stale_pooled_connection,
    stale_pooled_connection_reset,
    pooled_connection_dying_after_interim_is_not_retried,
    stray_bytes_before_get,
    stray_bytes_before_post,
);
