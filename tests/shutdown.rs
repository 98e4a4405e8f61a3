//! Graceful shutdown on SIGTERM/SIGINT: exit 0 promptly when idle, finish requests in flight
//! (with `Connection: close`), stop accepting at once, bound the drain by `--drain-timeout`,
//! and exit immediately on a second signal.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

/// An origin that reports each request it reads, then holds its response until the test
/// releases it (or `hold` passes), then answers 200 with `body`.
fn held_origin(
    body: &'static [u8],
    hold: Duration,
) -> (Origin, mpsc::Receiver<Message>, mpsc::Sender<()>) {
    let (req_tx, req_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let go_rx = Arc::new(Mutex::new(go_rx));
    let origin = Origin::start(move |mut s| {
        let mut r = Reader::new(s.try_clone().unwrap());
        let Some(req) = r.request() else { return };
        let _ = req_tx.send(req);
        let released = go_rx.lock().unwrap().recv_timeout(hold).is_ok();
        if released {
            let _ = s.write_all(&ok(body));
        }
    });
    (origin, req_rx, go_tx)
}

/// Whether a new connection to `addr` is refused, or accepted and then closed without a byte.
fn new_connection_rejected(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return true;
    };
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut byte = [0u8; 1];
    match s.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

fn idle_signal_exits_zero(driver: &str, sig: i32) {
    let mut proxy = Proxy::start(driver, &[]);
    let start = Instant::now();
    proxy.signal(sig);
    let status = proxy
        .wait_exit(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no exit within 5 s of signal {sig}"));
    assert!(
        status.success(),
        "exit status after signal {sig}: {status:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
}

/// SIGTERM with no traffic: exit status 0 within 5 s.
fn sigterm_idle_exits_zero(driver: &str) {
    idle_signal_exits_zero(driver, SIGTERM);
}

/// SIGINT with no traffic: exit status 0 within 5 s.
fn sigint_idle_exits_zero(driver: &str) {
    idle_signal_exits_zero(driver, SIGINT);
}

/// An idle keep-alive client connection (and a pooled upstream) do not hold up shutdown; the
/// idle client sees its connection closed.
fn idle_keepalive_connection_does_not_delay_exit(driver: &str) {
    let origin = Origin::http(|_| ok(b"ok"));
    let mut proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    let req = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url("/"));
    assert_eq!(roundtrip(&mut c, "GET", req.as_bytes()).status, 200);
    let start = Instant::now();
    proxy.signal(SIGTERM);
    let status = proxy
        .wait_exit(Duration::from_secs(5))
        .expect("no exit within 5 s");
    assert!(status.success(), "{status:?}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "an idle connection delayed exit: {:?}",
        start.elapsed()
    );
    assert!(c.closed(), "idle client connection left open");
}

/// SIGTERM while a request is in flight (the origin answers 500 ms later): the client still
/// gets its complete response, marked `Connection: close`, then the connection closes and the
/// process exits 0.
fn sigterm_finishes_in_flight_request(driver: &str) {
    let body: &'static [u8] = b"the response that was in flight";
    let (origin, reqs, go) = held_origin(body, Duration::from_secs(8));
    let mut proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    let req = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url("/slow"));
    c.get_mut().write_all(req.as_bytes()).unwrap();
    assert_eq!(next_request(&reqs).target, "/slow");

    proxy.signal(SIGTERM);
    std::thread::sleep(Duration::from_millis(500));
    assert!(proxy.is_running(), "exited with a request in flight");
    go.send(()).unwrap();
    let (_, resp) = c.final_response("GET").expect("in-flight response");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, body);
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(
        c.closed(),
        "client connection should close after the drained response"
    );

    let status = proxy
        .wait_exit(Duration::from_secs(5))
        .expect("no exit within 5 s after the in-flight request finished");
    assert!(status.success(), "{status:?}");
}

/// After SIGTERM, while a request is still draining, new connections are refused (or closed
/// at once) instead of being accepted by the kernel and left hanging.
fn sigterm_stops_accepting_during_drain(driver: &str) {
    let (origin, reqs, go) = held_origin(b"late", Duration::from_secs(8));
    let mut proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    let req = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url("/slow"));
    c.get_mut().write_all(req.as_bytes()).unwrap();
    assert_eq!(next_request(&reqs).target, "/slow");

    proxy.signal(SIGTERM);
    let rejected = eventually(Duration::from_secs(3), || {
        new_connection_rejected(proxy.addr)
    });
    let still_draining = proxy.is_running();
    // Let the drain finish either way, so the process does not linger.
    let _ = go.send(());
    let (_, resp) = c.final_response("GET").expect("in-flight response");
    assert_eq!(resp.body_str(), "late");
    assert!(still_draining, "exited with a request in flight");
    assert!(
        rejected,
        "new connections are still accepted (and left hanging) after SIGTERM"
    );
    assert!(proxy.wait_exit(Duration::from_secs(5)).is_some());
}

/// `--drain-timeout 300ms` with an origin that never answers: the process still exits (0)
/// within ~3 s, and the stuck client's connection is closed.
fn drain_timeout_bounds_shutdown(driver: &str) {
    let (origin, reqs, _go) = held_origin(b"never", Duration::from_secs(10));
    let mut proxy = Proxy::start(driver, &["--drain-timeout", "300ms"]);
    let mut c = Reader::new(proxy.connect());
    let req = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url("/stuck"));
    c.get_mut().write_all(req.as_bytes()).unwrap();
    assert_eq!(next_request(&reqs).target, "/stuck");
    let start = Instant::now();
    proxy.signal(SIGTERM);
    let status = proxy
        .wait_exit(Duration::from_secs(3))
        .expect("no exit within 3 s despite --drain-timeout 300ms");
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "exited before the drain timeout: {:?}",
        start.elapsed()
    );
    assert!(status.success(), "{status:?}");
    let rest = c.read_to_close();
    assert_eq!(
        status_of(&rest),
        0,
        "no response expected for the abandoned request: {:?}",
        String::from_utf8_lossy(&rest)
    );
}

/// A second signal during the drain exits at once (non-zero: forced).
fn second_signal_forces_exit(driver: &str) {
    let (origin, reqs, _go) = held_origin(b"never", Duration::from_secs(10));
    let mut proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    let req = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url("/stuck"));
    c.get_mut().write_all(req.as_bytes()).unwrap();
    assert_eq!(next_request(&reqs).target, "/stuck");
    proxy.signal(SIGTERM);
    // The first signal starts a drain that would last 10 s (the default). Nothing observable
    // tells when the proxy has taken it, so give it a moment.
    std::thread::sleep(Duration::from_millis(300));
    assert!(proxy.is_running(), "exited with a request in flight");
    let start = Instant::now();
    proxy.signal(SIGINT);
    let status = proxy
        .wait_exit(Duration::from_secs(2))
        .expect("second signal did not exit at once");
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(!status.success(), "a forced exit should not report success");
}

drivers!(
    sigterm_idle_exits_zero,
    sigint_idle_exits_zero,
    idle_keepalive_connection_does_not_delay_exit,
    sigterm_finishes_in_flight_request,
    sigterm_stops_accepting_during_drain,
    drain_timeout_bounds_shutdown,
    second_signal_forces_exit,
);
