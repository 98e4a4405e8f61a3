//! Bodies moved by splice (Content-Length and close-delimited bodies of more than 128 KiB between
//! plain sockets), black-box: byte-exact in both directions, never a byte past the body (a
//! pipelined request behind an upload, the next exchange on a reused origin connection), the
//! same answers as the copying path (`--no-splice`) when an origin dies or stalls mid-body or a
//! client stalls mid-upload, and a captured body keeps its prefix and its full size.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

/// Bigger than the splice threshold with room to spare, and not a multiple of a page.
const BIG: usize = 3 * 1024 * 1024 + 17;

/// Both relay modes: the kernel path, and the copying path as the reference.
const MODES: [&[&str]; 2] = [&[], &["--no-splice"]];

fn get(url: &str) -> String {
    format!("GET {url} HTTP/1.1\r\nHost: x\r\n\r\n")
}

/// Two big responses on one client connection and one origin connection, then a small one:
/// each byte-exact, nothing left over, the origin connection reused throughout.
fn big_responses_reuse_both_connections(driver: &str) {
    let data = Arc::new(pseudo_random_bytes(BIG, 3));
    let d = data.clone();
    let origin = Origin::http(move |req| {
        if req.target.ends_with("/small") {
            ok(b"small")
        } else {
            ok(&d)
        }
    });
    let proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    for path in ["/a", "/b"] {
        let resp = roundtrip(&mut c, "GET", get(&origin.url(path)).as_bytes());
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body.len(), data.len());
        assert!(resp.body == *data, "spliced response {path} differs");
        assert!(c.buffered().is_empty(), "bytes after the body");
    }
    let resp = roundtrip(&mut c, "GET", get(&origin.url("/small")).as_bytes());
    assert_eq!(resp.body_str(), "small");
    assert_eq!(origin.accepted(), 1, "the origin connection was not reused");
}

/// A big upload with a request pipelined right behind it in the same write: the origin gets
/// the body byte-exact and then the second request, each answered in order.
fn big_upload_then_pipelined_request(driver: &str) {
    let (origin, rx) = recording_origin(|req| ok(req.body.len().to_string().as_bytes()));
    let proxy = Proxy::start(driver, &[]);
    let body = pseudo_random_bytes(BIG, 9);
    let mut wire = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        origin.url("/up"),
        body.len()
    )
    .into_bytes();
    wire.extend_from_slice(&body);
    wire.extend_from_slice(get(&origin.url("/next")).as_bytes());
    let s = proxy.connect();
    let mut writer = s.try_clone().expect("clone");
    let sender = std::thread::spawn(move || writer.write_all(&wire));
    let mut c = Reader::new(s.try_clone().expect("clone"));
    let first = c.response("POST").expect("first response");
    assert_eq!(first.body_str(), BIG.to_string());
    let second = c.response("GET").expect("second response");
    assert_eq!(second.body_str(), "0");
    sender.join().expect("sender").expect("write");
    let up = next_request(&rx);
    assert!(up.body == body, "spliced upload differs");
    let next = next_request(&rx);
    assert_eq!(next.method, "GET");
    assert!(next.target.ends_with("/next"), "{}", next.target);
    let _ = s.shutdown(Shutdown::Both);
}

/// What a client sees of a response: its head, then every byte until the proxy closes or
/// `limit` passes; and how long that took.
fn read_until_closed(s: &mut std::net::TcpStream, limit: Duration) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    s.set_read_timeout(Some(limit)).expect("timeout");
    let mut all = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    for _ in 0..100_000 {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => all.extend_from_slice(&chunk[..n]),
        }
        if started.elapsed() > limit {
            break;
        }
    }
    (all, started.elapsed())
}

/// The body bytes after the head in `raw`.
fn body_of(raw: &[u8]) -> &[u8] {
    let end = find(raw, b"\r\n\r\n").expect("a response head") + 4;
    &raw[end..]
}

/// GET `url` through a proxy in each mode: a 200 whose body is exactly `body`, then the proxy
/// closes the connection (within a bound).
fn body_then_close_in_both_modes(driver: &str, url: &str, body: &[u8]) {
    for mode in MODES {
        let proxy = Proxy::start(driver, mode);
        let mut s = proxy.connect();
        s.write_all(get(url).as_bytes()).expect("send");
        let (raw, took) = read_until_closed(&mut s, Duration::from_secs(10));
        assert!(
            took < Duration::from_secs(8),
            "{mode:?}: no close ({took:?})"
        );
        assert_eq!(status_of(&raw), 200, "{mode:?}");
        assert!(body_of(&raw) == body, "{mode:?}: body bytes differ");
    }
}

/// An origin that promises a big body, sends part of it, then closes (`stall`: keeps the
/// connection open, silent, for that long instead).
fn cut_short_origin(sent: Arc<Vec<u8>>, stall: Option<Duration>) -> Origin {
    Origin::start(move |mut s| {
        let mut r = Reader::new(s.try_clone().expect("clone"));
        if r.request().is_none() {
            return;
        }
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {BIG}\r\n\r\n");
        let _ = s.write_all(head.as_bytes());
        let _ = s.write_all(&sent);
        if let Some(stall) = stall {
            std::thread::sleep(stall);
        }
        let _ = s.shutdown(Shutdown::Both);
    })
}

/// A big close-delimited response (no Content-Length): copied up to the threshold, spliced
/// after it, byte-exact to the origin's close, then the proxy closes the client — in both modes.
fn big_close_delimited_response(driver: &str) {
    let data = Arc::new(pseudo_random_bytes(BIG, 12));
    let d = data.clone();
    let origin = Origin::start(move |mut s| {
        let mut r = Reader::new(s.try_clone().expect("clone"));
        if r.request().is_none() {
            return;
        }
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\n");
        let _ = s.write_all(&d);
        let _ = s.shutdown(Shutdown::Both);
    });
    body_then_close_in_both_modes(driver, &origin.url("/cd"), &data);
}

/// The origin closes mid-body: the client gets exactly the bytes sent, then the proxy closes
/// its connection — in both modes.
fn origin_closes_mid_body(driver: &str) {
    let sent = Arc::new(pseudo_random_bytes(BIG / 3, 5));
    let origin = cut_short_origin(sent.clone(), None);
    body_then_close_in_both_modes(driver, &origin.url("/cut"), &sent);
}

/// The origin goes silent mid-body: after the response timeout the proxy closes the client,
/// which has the bytes sent so far — in both modes.
fn origin_stalls_mid_body(driver: &str) {
    let sent = Arc::new(pseudo_random_bytes(BIG / 3, 6));
    let origin = cut_short_origin(sent.clone(), Some(Duration::from_secs(6)));
    for mode in MODES {
        let mut args = vec!["--response-timeout", "500ms"];
        args.extend_from_slice(mode);
        let proxy = Proxy::start(driver, &args);
        let mut s = proxy.connect();
        s.write_all(get(&origin.url("/stall")).as_bytes())
            .expect("send");
        let (raw, took) = read_until_closed(&mut s, Duration::from_secs(5));
        assert!(
            took < Duration::from_secs(4),
            "{mode:?}: the stall was not cut ({took:?})"
        );
        assert!(body_of(&raw) == *sent, "{mode:?}: body bytes differ");
    }
}

/// A client that stalls mid-upload gets the same answer from both modes once the client idle
/// timeout passes, and the origin's connection is closed (it never gets a whole request).
fn client_stalls_mid_upload(driver: &str) {
    let (origin, rx) = recording_origin(|req| ok(req.body.len().to_string().as_bytes()));
    let mut answers = Vec::new();
    for mode in MODES {
        let mut args = vec!["--client-idle-timeout", "500ms"];
        args.extend_from_slice(mode);
        let proxy = Proxy::start(driver, &args);
        let mut s = proxy.connect();
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: x\r\nContent-Length: {BIG}\r\n\r\n",
            origin.url("/slow")
        );
        s.write_all(head.as_bytes()).expect("head");
        s.write_all(&pseudo_random_bytes(BIG / 2, 8))
            .expect("half the body");
        let (raw, took) = read_until_closed(&mut s, Duration::from_secs(5));
        assert!(
            took < Duration::from_secs(4),
            "{mode:?}: no answer ({took:?})"
        );
        answers.push(status_of(&raw));
    }
    assert_eq!(answers[0], answers[1], "splice and copy answer differently");
    assert_eq!(answers[0], 400, "a cut-short upload is the client's fault");
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "the origin got a whole request"
    );
}

/// `--capture-bodies`: the first bytes of a spliced body are kept, marked truncated, and the
/// body's full size is recorded.
fn capture_keeps_prefix(driver: &str) {
    let data = Arc::new(pseudo_random_bytes(BIG, 4));
    let d = data.clone();
    let origin = Origin::http(move |_| ok(&d));
    let path = capture_path("splice", driver);
    let proxy = Proxy::start(
        driver,
        &[
            "--capture",
            path.to_str().expect("utf-8"),
            "--capture-bodies",
            "64",
        ],
    );
    let mut c = Reader::new(proxy.connect());
    let resp = roundtrip(&mut c, "GET", get(&origin.url("/cap")).as_bytes());
    assert!(resp.body == *data, "captured response differs on the wire");
    drop(c);
    let events = stop_and_read_capture(proxy, &path);
    let end = events
        .iter()
        .find(|e| e["ev"] == "end")
        .expect("an end event");
    assert_eq!(end["response_body_bytes"], BIG as u64, "{end}");
    let body = &end["response_body"];
    assert_eq!(body["truncated"], true, "{end}");
    assert_eq!(body["encoding"], "base64", "{end}");
}

drivers!(
    big_responses_reuse_both_connections,
    big_upload_then_pipelined_request,
    big_close_delimited_response,
    origin_closes_mid_body,
    origin_stalls_mid_body,
    client_stalls_mid_upload,
    capture_keeps_prefix,
);
