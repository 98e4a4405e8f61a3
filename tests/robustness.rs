//! Robustness: peers that vanish mid-message, origins that reset or talk garbage, garbage on
//! the proxy port, and many concurrent clients. After each abuse the proxy keeps serving, is
//! still running, and never logged a panic.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use socket2::SockRef;

const WAIT: Duration = Duration::from_secs(5);

/// Close `s` with a TCP RST instead of a FIN.
fn reset(s: TcpStream) {
    let _ = SockRef::from(&s).set_linger(Some(Duration::ZERO));
    drop(s);
}

/// An origin that reads a request head and then its body until EOF, and records that it saw
/// EOF (the proxy closed the upstream connection) before the body was complete.
fn abandoned_body_origin(expected: usize) -> (Origin, Arc<AtomicBool>) {
    let closed_early = Arc::new(AtomicBool::new(false));
    let flag = closed_early.clone();
    let origin = Origin::start(move |mut s| {
        let mut total = 0usize;
        let mut head_seen = false;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 64 * 1024];
        for _ in 0..100_000 {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) if head_seen => total += n,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = find(&buf, b"\r\n\r\n") {
                        head_seen = true;
                        total = buf.len() - end - 4;
                    }
                }
            }
        }
        if total < expected {
            flag.store(true, Ordering::SeqCst);
        }
    });
    (origin, closed_early)
}

fn client_disconnects_mid_request_body(driver: &str) {
    let good = Origin::http(|req| ok(format!("{} bytes", req.body.len()).as_bytes()));
    let proxy = Proxy::start(driver, &[]);
    for rst in [false, true] {
        let (origin, closed_early) = abandoned_body_origin(1 << 20);
        let mut c = proxy.connect();
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
            origin.url("/upload"),
            origin.addr,
            1 << 20
        );
        c.write_all(head.as_bytes()).expect("write head");
        c.write_all(&[b'x'; 1000]).expect("write body start");
        // Let the head and the first bytes reach the origin before vanishing.
        assert!(
            eventually(Duration::from_secs(3), || origin.accepted() == 1),
            "the request never reached the origin"
        );
        thread::sleep(Duration::from_millis(50));
        if rst {
            reset(c);
        } else {
            drop(c);
        }
        assert!(
            eventually(Duration::from_secs(5), || closed_early
                .load(Ordering::SeqCst)),
            "rst={rst}: the proxy kept the upstream connection open after the client vanished"
        );
        assert_still_serving(&proxy, &good, "after a client vanished mid-body");
    }
    assert_no_panic(proxy);
}

fn client_disconnects_mid_response(driver: &str) {
    const CHUNK: usize = 64 * 1024;
    const TOTAL: usize = 32 * 1024 * 1024;
    let write_failed = Arc::new(AtomicBool::new(false));
    let flag = write_failed.clone();
    let slow = Origin::start(move |mut s| {
        let mut r = Reader::new(s.try_clone().expect("clone"));
        if r.request().is_none() {
            return;
        }
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {TOTAL}\r\n\r\n");
        if s.write_all(head.as_bytes()).is_err() {
            flag.store(true, Ordering::SeqCst);
            return;
        }
        let chunk = vec![b'z'; CHUNK];
        for _ in 0..TOTAL / CHUNK {
            if s.write_all(&chunk).is_err() {
                flag.store(true, Ordering::SeqCst);
                return;
            }
            thread::sleep(Duration::from_millis(2));
        }
    });
    let good = Origin::http(|_| ok(b"fine"));
    let proxy = Proxy::start(driver, &[]);
    for rst in [false, true] {
        write_failed.store(false, Ordering::SeqCst);
        let mut c = proxy.connect();
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\n\r\n",
            slow.url("/huge"),
            slow.addr
        );
        c.write_all(req.as_bytes()).expect("write");
        // Read a few hundred KiB of the response, then vanish.
        let mut got = 0usize;
        let mut buf = [0u8; 64 * 1024];
        while got < 256 * 1024 {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => panic!("rst={rst}: response ended after {got} bytes"),
                Ok(n) => got += n,
            }
        }
        if rst {
            reset(c);
        } else {
            drop(c);
        }
        assert!(
            eventually(Duration::from_secs(8), || write_failed
                .load(Ordering::SeqCst)),
            "rst={rst}: the proxy kept pulling the response after the client vanished"
        );
        assert_still_serving(&proxy, &good, "after a client vanished mid-response");
    }
    assert_no_panic(proxy);
}

fn origin_resets_mid_body(driver: &str) {
    let origin = Origin::start(|mut s| {
        let mut r = Reader::new(s.try_clone().expect("clone"));
        if r.request().is_none() {
            return;
        }
        let mut resp =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 1 << 20).into_bytes();
        resp.extend_from_slice(&[b'r'; 1000]);
        let _ = s.write_all(&resp);
        thread::sleep(Duration::from_millis(100));
        reset(s);
    });
    let good = Origin::http(|_| ok(b"fine"));
    let proxy = Proxy::start(driver, &[]);
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\n\r\n",
        origin.url("/reset"),
        origin.addr
    );
    let reply = send_raw(proxy.addr, req.as_bytes(), WAIT);
    assert_eq!(status_of(&reply.raw), 200, "{:?}", reply.text());
    assert!(
        reply.closed,
        "the client connection must end when the origin resets"
    );
    let head_end = find(&reply.raw, b"\r\n\r\n").expect("a response head") + 4;
    let body = reply.raw.len() - head_end;
    assert!(
        body < 1 << 20,
        "the client got {body} body bytes: more than the origin sent"
    );
    assert!(
        Reader::new(&reply.raw[..]).response("GET").is_none(),
        "the truncated response must not parse as complete"
    );
    assert_still_serving(&proxy, &good, "after an origin reset mid-body");
    assert_no_panic(proxy);
}

/// Origins that answer with something that is not an HTTP/1 response: 502 every time.
fn origin_garbage_is_502(driver: &str) {
    let mut too_big = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..80 {
        too_big.extend_from_slice(format!("X-Big-{i}: {}\r\n", "v".repeat(1000)).as_bytes());
    }
    too_big.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    let mut tls_alert = vec![0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28];
    tls_alert.extend_from_slice(&pseudo_random_bytes(100, 3));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("SSH banner", b"SSH-2.0-OpenSSH_9.6\r\n".to_vec()),
        ("random binary", pseudo_random_bytes(4096, 7)),
        ("TLS alert", tls_alert),
        ("HTTP/0.9-style bare body", b"hello world\n".to_vec()),
        ("head cut off", b"HTTP/1.1 200 OK\r\nContent-Len".to_vec()),
        ("nothing at all", Vec::new()),
        ("response head over 64 KiB", too_big),
        ("status line only, no CRLF", b"HTTP/1.1 200 OK".to_vec()),
        (
            "101 without an upgrade request",
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n"
                .to_vec(),
        ),
    ];
    // One answer per connection, then close: the proxy must not wait for more.
    let origin = scripted_origin(cases.iter().map(|(_, b)| b.clone()).collect(), 1);
    let good = Origin::http(|_| ok(b"fine"));
    let proxy = Proxy::start(driver, &[]);
    let o = origin.addr;
    let mut failures = Vec::new();
    for (i, (what, _)) in cases.iter().enumerate() {
        let req = format!("GET http://{o}/case/{i} HTTP/1.1\r\nHost: {o}\r\n\r\n");
        let reply = send_raw(proxy.addr, req.as_bytes(), WAIT);
        if let Err(e) = check_error_reply(&reply, 502) {
            failures.push(format!("{what}: {e}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert_still_serving(&proxy, &good, "after garbage from origins");
    assert_no_panic(proxy);
}

/// A TLS 1.2/1.3 ClientHello record (SNI example.com), as a browser would send to an HTTP port.
fn client_hello() -> Vec<u8> {
    let sni = b"example.com";
    let mut ext = Vec::new();
    // server_name extension
    let name_list_len = 3 + sni.len();
    ext.extend_from_slice(&[0x00, 0x00]);
    ext.extend_from_slice(&((name_list_len + 2) as u16).to_be_bytes());
    ext.extend_from_slice(&(name_list_len as u16).to_be_bytes());
    ext.push(0x00);
    ext.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    ext.extend_from_slice(sni);
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&pseudo_random_bytes(32, 11)); // random
    body.push(0x00); // session id
    body.extend_from_slice(&[0x00, 0x04, 0x13, 0x01, 0xc0, 0x2f]); // cipher suites
    body.extend_from_slice(&[0x01, 0x00]); // compression
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![0x01];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 0x03, 0x01];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

/// Garbage on the proxy port: an error answer (4xx, well-formed) or a plain close — never a
/// hang, never a panic — and the proxy keeps serving. (Empty lines before a request line are
/// legitimately skipped, RFC 9112 §2.2, so a CRLF flood is a head still to come: it ends with
/// the head timeout, shortened here to 1s.)
fn garbage_on_proxy_port(driver: &str) {
    let good = Origin::http(|_| ok(b"fine"));
    let proxy = Proxy::start(driver, &["--client-head-timeout", "1s"]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("random 4 KiB", pseudo_random_bytes(4096, 42)),
        ("random 4 KiB, other seed", pseudo_random_bytes(4096, 4242)),
        ("TLS ClientHello", client_hello()),
        ("NUL bytes", vec![0u8; 4096]),
        ("CRLF flood", b"\r\n".repeat(2048)),
        ("256 KiB without a newline", vec![b'A'; 256 * 1024]),
        ("high bytes", vec![0xff; 4096]),
    ];
    let mut failures = Vec::new();
    for (what, bytes) in &cases {
        let reply = send_raw(proxy.addr, bytes, WAIT);
        let status = status_of(&reply.raw);
        if reply.raw.is_empty() {
            if !reply.closed {
                failures.push(format!("{what}: no answer and no close within {WAIT:?}"));
            }
        } else if !(400..500).contains(&status) {
            failures.push(format!("{what}: unexpected answer {:?}", reply.text()));
        } else if let Err(e) = check_error_reply(&reply, status) {
            failures.push(format!("{what}: {e}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert_still_serving(&proxy, &good, "after garbage on the proxy port");
    assert_no_panic(proxy);
}

/// 200 client connections open at once, each doing 5 keep-alive requests, driven by 20 threads
/// (10 connections each, round-robin): every response is the right one.
fn many_concurrent_clients(driver: &str) {
    const THREADS: usize = 20;
    const CONNS_PER_THREAD: usize = 10;
    const REQUESTS: usize = 5;
    let origin = Origin::http(|req| ok(format!("echo {}", req.target).as_bytes()));
    let proxy = Proxy::start(driver, &[]);
    let addr = proxy.addr;
    let o = origin.addr;
    let done = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let done = done.clone();
            thread::spawn(move || -> Result<(), String> {
                let mut conns: Vec<Reader<TcpStream>> = (0..CONNS_PER_THREAD)
                    .map(|_| Reader::new(connect(addr)))
                    .collect();
                for r in 0..REQUESTS {
                    for (i, c) in conns.iter_mut().enumerate() {
                        let path = format!("/t{t}/c{i}/r{r}");
                        let req = format!("GET http://{o}{path} HTTP/1.1\r\nHost: {o}\r\n\r\n");
                        c.get_mut()
                            .write_all(req.as_bytes())
                            .map_err(|e| format!("{path}: write: {e}"))?;
                        let resp = c
                            .final_response("GET")
                            .map(|(_, m)| m)
                            .ok_or_else(|| format!("{path}: no response"))?;
                        if resp.status != 200 || resp.body_str() != format!("echo {path}") {
                            return Err(format!(
                                "{path}: got {} {:?}",
                                resp.status,
                                resp.body_str()
                            ));
                        }
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                }
                Ok(())
            })
        })
        .collect();
    let errors: Vec<String> = handles
        .into_iter()
        .filter_map(|h| match h.join() {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some("client thread panicked".to_owned()),
        })
        .collect();
    assert!(errors.is_empty(), "{} failures: {:?}", errors.len(), errors);
    assert_eq!(
        done.load(Ordering::SeqCst),
        THREADS * CONNS_PER_THREAD * REQUESTS
    );
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "1000 requests took {:?}",
        start.elapsed()
    );
    assert_no_panic(proxy);
}

/// A client that asks for a large response and then never reads: once the socket buffers are
/// full, the proxy's write stalls; after the response timeout it gives up, closes both sides
/// (the origin's writes fail) and keeps serving others.
fn client_that_stops_reading_is_dropped(driver: &str) {
    const BODY: usize = 256 * 1024 * 1024;
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let origin = Origin::start(move |mut s| {
        let mut r = Reader::new(s.try_clone().expect("clone"));
        if r.request().is_none() {
            return;
        }
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {BODY}\r\n\r\n");
        if s.write_all(head.as_bytes()).is_err() {
            return;
        }
        let chunk = vec![b'z'; 64 * 1024];
        let mut sent = 0;
        while sent < BODY {
            if s.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len();
        }
        let _ = tx.lock().map(|t| t.send(sent));
    });
    let good = Origin::http(|_| ok(b"fine"));
    let proxy = Proxy::start(driver, &["--response-timeout", "500ms"]);
    let mut c = proxy.connect();
    // A small receive buffer so the stall comes early.
    let _ = SockRef::from(&c).set_recv_buffer_size(64 * 1024);
    let req = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url("/big"));
    c.write_all(req.as_bytes()).expect("write");
    let sent = rx
        .recv_timeout(Duration::from_secs(15))
        .expect("the origin's writes should fail once the proxy gives up");
    assert!(sent < BODY, "the whole body went somewhere: {sent}");
    assert_still_serving(&proxy, &good, "after a client that stopped reading");
    drop(c);
}

drivers!(
    client_that_stops_reading_is_dropped,
    client_disconnects_mid_request_body,
    client_disconnects_mid_response,
    origin_resets_mid_body,
    origin_garbage_is_502,
    garbage_on_proxy_port,
    many_concurrent_clients,
);
