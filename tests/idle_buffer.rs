//! An idle keep-alive client connection gives its read buffer back after `--idle-buffer-hold`
//! and waits for its next request on readiness alone (io_uring: the pending read is cancelled;
//! epoll: dropped). Nothing may be lost on the way: a request after a long idle period, several
//! pipelined in one write after it, a request whose bytes straddle the moment the buffer is given
//! back, and the idle timeout still closing the connection. The hold is 50 ms here so the idle
//! periods stay short.

mod common;

use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// The buffer hold the tests run with.
const HOLD: &str = "50ms";
/// Longer than [`HOLD`]: the connection has given its buffer back by then.
const PAST_HOLD: Duration = Duration::from_millis(200);

fn get(url: &str) -> Vec<u8> {
    format!("GET {url} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()
}

/// Echoes `METHOD target body`.
fn describe(req: &Message) -> Vec<u8> {
    let body = String::from_utf8_lossy(&req.body).into_owned();
    ok(format!("{} {} {body}", req.method, req.target).as_bytes())
}

/// Requests separated by idle periods longer than the hold are all answered, on one client
/// connection and one upstream connection.
fn request_after_long_idle(driver: &str) {
    let origin = Origin::http(describe);
    let proxy = Proxy::start(driver, &["--idle-buffer-hold", HOLD]);
    let mut c = Reader::new(proxy.connect());
    for i in 0..4 {
        let path = format!("/idle/{i}");
        let resp = roundtrip(&mut c, "GET", &get(&origin.url(&path)));
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body_str(), format!("GET {path} "));
        thread::sleep(PAST_HOLD);
    }
    assert_eq!(origin.accepted(), 1);
}

/// After an idle period, requests written in one write (one with a body) are answered in order.
fn pipelined_after_idle(driver: &str) {
    let origin = Origin::http(describe);
    let proxy = Proxy::start(driver, &["--idle-buffer-hold", HOLD]);
    let mut c = Reader::new(proxy.connect());
    assert_eq!(
        roundtrip(&mut c, "GET", &get(&origin.url("/first"))).status,
        200
    );
    thread::sleep(PAST_HOLD);
    let mut batch = get(&origin.url("/p1"));
    batch.extend_from_slice(
        format!(
            "POST {} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
            origin.url("/p2")
        )
        .as_bytes(),
    );
    batch.extend_from_slice(&get(&origin.url("/p3")));
    c.get_mut().write_all(&batch).unwrap();
    for want in ["GET /p1 ", "POST /p2 hello", "GET /p3 "] {
        let (_, resp) = c.final_response("GET").expect("pipelined response");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body_str(), want);
    }
}

/// A request whose first bytes arrive just before, at or after the moment the connection gives
/// its buffer back (and whose rest follows a little later) is read whole, whatever the timing.
fn request_split_across_the_hold(driver: &str) {
    let origin = Origin::http(describe);
    let proxy = Proxy::start(driver, &["--idle-buffer-hold", HOLD]);
    let mut c = Reader::new(proxy.connect());
    assert_eq!(
        roundtrip(&mut c, "GET", &get(&origin.url("/start"))).status,
        200
    );
    // Around the 50 ms hold, and well past it.
    for (i, wait_ms) in [30u64, 45, 50, 55, 70, 150].into_iter().enumerate() {
        let path = format!("/split/{i}");
        let request = format!(
            "POST {} HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody",
            origin.url(&path)
        );
        let (head, rest) = request.as_bytes().split_at(7);
        thread::sleep(Duration::from_millis(wait_ms));
        c.get_mut().write_all(head).unwrap();
        thread::sleep(Duration::from_millis(20));
        c.get_mut().write_all(rest).unwrap();
        let (_, resp) = c
            .final_response("POST")
            .expect("response to the split request");
        assert_eq!(resp.status, 200, "after {wait_ms} ms");
        assert_eq!(
            resp.body_str(),
            format!("POST {path} body"),
            "after {wait_ms} ms"
        );
    }
}

/// With the buffer given back, the idle timeout still closes the connection on time.
fn idle_timeout_after_the_hold(driver: &str) {
    let origin = Origin::http(describe);
    let proxy = Proxy::start(
        driver,
        &["--idle-buffer-hold", HOLD, "--client-idle-timeout", "300ms"],
    );
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

/// A client that closes while its connection waits without a buffer is let go quietly, and
/// the proxy keeps serving others.
fn close_while_idle(driver: &str) {
    let origin = Origin::http(describe);
    let proxy = Proxy::start(driver, &["--idle-buffer-hold", HOLD]);
    let mut c = Reader::new(proxy.connect());
    assert_eq!(
        roundtrip(&mut c, "GET", &get(&origin.url("/a"))).status,
        200
    );
    thread::sleep(PAST_HOLD);
    drop(c);
    let mut d = Reader::new(proxy.connect());
    assert_eq!(
        roundtrip(&mut d, "GET", &get(&origin.url("/b"))).body_str(),
        "GET /b "
    );
}

drivers!(
    request_after_long_idle,
    pipelined_after_idle,
    request_split_across_the_hold,
    idle_timeout_after_the_hold,
    close_while_idle,
);
