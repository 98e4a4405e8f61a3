//! Message bodies through the proxy: Content-Length (small, zero, 8 MiB), chunked requests and
//! responses with trailers, de-chunking for HTTP/1.0 clients, close-delimited responses, a
//! 32 MiB response, bodiless responses (HEAD, 204, 304) followed by reuse, and
//! `Expect: 100-continue` including an origin that answers before reading the body.

mod common;

use std::io::Write;
use std::net::Shutdown;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use common::*;

fn post(url: &str, body: &[u8], extra: &str) -> Vec<u8> {
    let mut r = format!(
        "POST {url} HTTP/1.1\r\nHost: x\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// Small Content-Length bodies (text and binary with CRLFs inside) arrive byte-exact, with
/// their Content-Length, and the echoed body comes back on the same connection.
fn post_small_content_length(driver: &str) {
    let (origin, rx) = recording_origin(|req| ok(&req.body));
    let proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    let bodies: [&[u8]; 3] = [
        b"hello=world&x=1",
        b"\r\n\r\nGET / HTTP/1.1\r\n\r\n\x00\xff",
        &pseudo_random_bytes(16 * 1024 + 1, 7),
    ];
    for body in bodies {
        let resp = roundtrip(&mut c, "POST", &post(&origin.url("/echo"), body, ""));
        assert_eq!(resp.status, 200);
        assert!(
            resp.body == body,
            "echoed body differs ({} bytes)",
            body.len()
        );
        let got = next_request(&rx);
        assert_eq!(got.method, "POST");
        assert_eq!(
            got.header("content-length"),
            Some(body.len().to_string().as_str())
        );
        assert_eq!(got.header("transfer-encoding"), None);
        assert!(
            got.body == body,
            "origin body differs ({} bytes)",
            body.len()
        );
    }
    assert_eq!(origin.accepted(), 1);
}

/// An 8 MiB pseudo-random body is streamed to the origin byte-exact.
fn post_8mib(driver: &str) {
    let (origin, rx) = recording_origin(|req| ok(req.body.len().to_string().as_bytes()));
    let proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    let body = pseudo_random_bytes(8 * 1024 * 1024, 42);
    let resp = roundtrip(&mut c, "POST", &post(&origin.url("/big"), &body, ""));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_str(), body.len().to_string());
    let got = next_request(&rx);
    assert_eq!(got.body.len(), body.len());
    assert!(got.body == body, "8 MiB body corrupted on the way");
    // The connection still works afterwards.
    let resp = roundtrip(&mut c, "POST", &post(&origin.url("/after"), b"x", ""));
    assert_eq!(resp.body_str(), "1");
}

/// `Content-Length: 0` POST: the origin sees CL 0 and no body; the connection stays usable.
fn post_content_length_zero(driver: &str) {
    let (origin, rx) =
        recording_origin(|req| ok(format!("{}:{}", req.method, req.body.len()).as_bytes()));
    let proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    let resp = roundtrip(&mut c, "POST", &post(&origin.url("/zero"), b"", ""));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_str(), "POST:0");
    let got = next_request(&rx);
    assert_eq!(got.header("content-length"), Some("0"));
    assert!(got.body.is_empty());
    let req = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url("/next"));
    let resp = roundtrip(&mut c, "GET", req.as_bytes());
    assert_eq!(resp.body_str(), "GET:0");
    assert_eq!(next_request(&rx).target, "/next");
}

/// A chunked request body (with extensions and trailers) reaches the origin chunked, with the
/// same data and trailers; a larger one written in odd pieces arrives byte-exact too.
fn chunked_request_with_trailers(driver: &str) {
    let (origin, rx) = recording_origin(|req| ok(&req.body));
    let proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        origin.url("/chunked")
    );
    let mut req = head.clone().into_bytes();
    req.extend_from_slice(
        b"4;ext=v\r\nabcd\r\n10\r\n0123456789abcdef\r\n0\r\nX-Sum: 42\r\nX-Other: y\r\n\r\n",
    );
    let resp = roundtrip(&mut c, "POST", &req);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_str(), "abcd0123456789abcdef");
    let got = next_request(&rx);
    assert!(got.chunked, "origin must receive a chunked body");
    assert_eq!(got.header("transfer-encoding"), Some("chunked"));
    assert_eq!(got.header("content-length"), None);
    assert_eq!(got.body_str(), "abcd0123456789abcdef");
    assert_eq!(
        got.trailers,
        [
            ("X-Sum".to_owned(), "42".to_owned()),
            ("X-Other".to_owned(), "y".to_owned())
        ]
    );

    // 1 MiB in chunks of varying size, written in pieces that split size lines and CRLFs.
    let data = pseudo_random_bytes(1024 * 1024, 3);
    let mut wire = Vec::new();
    let mut off = 0;
    let mut size = 1;
    while off < data.len() {
        let n = size.min(data.len() - off);
        wire.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        wire.extend_from_slice(&data[off..off + n]);
        wire.extend_from_slice(b"\r\n");
        off += n;
        size = size * 3 + 7;
    }
    wire.extend_from_slice(b"0\r\nX-Done: 1\r\n\r\n");
    c.get_mut().write_all(head.as_bytes()).unwrap();
    for piece in wire.chunks(40_001) {
        c.get_mut().write_all(piece).unwrap();
    }
    let resp = c.final_response("POST").expect("response").1;
    assert_eq!(resp.status, 200);
    assert!(resp.body == data, "echo of the chunked body differs");
    let got = next_request(&rx);
    assert!(got.chunked);
    assert!(got.body == data, "origin got a different chunked body");
    assert_eq!(got.trailers, [("X-Done".to_owned(), "1".to_owned())]);
    assert_eq!(origin.accepted(), 1);
}

fn chunked_response(_req: &Message) -> Vec<u8> {
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n\
      6;name=val\r\nhello \r\n5\r\nworld\r\n0\r\nX-Checksum: abc123\r\nX-Late: 2\r\n\r\n"
        .to_vec()
}

/// A chunked response with trailers reaches an HTTP/1.1 client chunked, trailers included, and
/// the connection is reused for a second request.
fn chunked_response_trailers_to_http11(driver: &str) {
    let origin = Origin::http(chunked_response);
    let proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    for path in ["/t1", "/t2"] {
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n",
            origin.url(path)
        );
        let resp = roundtrip(&mut c, "GET", req.as_bytes());
        assert_eq!(resp.status, 200);
        assert!(resp.chunked);
        assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
        assert_eq!(resp.body_str(), "hello world");
        assert_eq!(
            resp.trailers,
            [
                ("X-Checksum".to_owned(), "abc123".to_owned()),
                ("X-Late".to_owned(), "2".to_owned())
            ]
        );
        assert_eq!(resp.header("connection"), None);
    }
    assert_eq!(origin.accepted(), 1);
}

/// A large chunked response is relayed chunked (verbatim) to an HTTP/1.1 client and
/// de-chunked byte-exact for an HTTP/1.0 client, delimited by the proxy closing the connection.
fn chunked_response_dechunked_for_http10(driver: &str) {
    let data = Arc::new(pseudo_random_bytes(300 * 1024 + 5, 9));
    let d = data.clone();
    let origin = Origin::http(move |_| {
        let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for chunk in d.chunks(7000) {
            r.extend_from_slice(format!("{:X};e\r\n", chunk.len()).as_bytes());
            r.extend_from_slice(chunk);
            r.extend_from_slice(b"\r\n");
        }
        r.extend_from_slice(b"0\r\nX-T: 1\r\n\r\n");
        r
    });
    let proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    let req = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url("/eleven"));
    let resp = roundtrip(&mut c, "GET", req.as_bytes());
    assert!(resp.chunked);
    assert!(resp.body == *data, "chunked body differs");
    assert_eq!(resp.trailers, [("X-T".to_owned(), "1".to_owned())]);

    let mut c = Reader::new(proxy.connect());
    let req = format!("GET {} HTTP/1.0\r\n\r\n", origin.url("/ten"));
    c.get_mut().write_all(req.as_bytes()).unwrap();
    let resp = c.response("GET").expect("response");
    assert_eq!(resp.status, 200);
    assert!(!resp.chunked);
    assert_eq!(resp.header("transfer-encoding"), None);
    assert_eq!(resp.header("connection"), Some("close"));
    assert_eq!(resp.body.len(), data.len());
    assert!(resp.body == *data, "de-chunked body differs");
    assert!(c.closed());
}

/// An origin response without Content-Length or Transfer-Encoding ends when the origin closes;
/// the client gets all of it, `Connection: close`, and then the proxy closes the client.
fn close_delimited_response(driver: &str) {
    let data = Arc::new(pseudo_random_bytes(200 * 1024 + 3, 11));
    let d = data.clone();
    let origin = Origin::start(move |mut s| {
        let mut r = Reader::new(s.try_clone().unwrap());
        if r.request().is_none() {
            return;
        }
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nX-Kind: close-delimited\r\n\r\n");
        for piece in d.chunks(50_000) {
            let _ = s.write_all(piece);
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = s.shutdown(Shutdown::Both);
    });
    let proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    let req = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url("/cd"));
    let resp = roundtrip(&mut c, "GET", req.as_bytes());
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-kind"), Some("close-delimited"));
    assert_eq!(resp.header("connection"), Some("close"));
    assert_eq!(resp.header("content-length"), None);
    assert_eq!(resp.header("transfer-encoding"), None);
    assert_eq!(resp.body.len(), data.len());
    assert!(resp.body == *data, "close-delimited body differs");
    // `Reader::response` read until the proxy closed: nothing more can arrive.
    assert!(c.closed());
}

/// A 32 MiB Content-Length response arrives byte-exact.
fn response_32mib(driver: &str) {
    let data = Arc::new(pseudo_random_bytes(32 * 1024 * 1024, 5));
    let d = data.clone();
    let origin = Origin::http(move |_| ok(&d));
    let proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    let req = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url("/huge"));
    let resp = roundtrip(&mut c, "GET", req.as_bytes());
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("content-length"),
        Some(data.len().to_string().as_str())
    );
    assert_eq!(resp.body.len(), data.len());
    assert!(resp.body == *data, "32 MiB body corrupted");
    assert!(c.buffered().is_empty(), "bytes after the body");
}

/// A HEAD response carries Content-Length (or chunked) but no body; the proxy must not wait
/// for one, and the next request on the connection works.
fn head_response_has_no_body(driver: &str) {
    let origin = Origin::http(|req| match (req.method.as_str(), req.target.as_str()) {
        ("HEAD", "/cl") => b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n".to_vec(),
        ("HEAD", _) => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
        _ => ok(b"after head"),
    });
    let proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    let req = format!("HEAD {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url("/cl"));
    let resp = roundtrip(&mut c, "HEAD", req.as_bytes());
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-length"), Some("1234"));
    assert!(resp.body.is_empty());

    let req = format!("HEAD {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url("/te"));
    let resp = roundtrip(&mut c, "HEAD", req.as_bytes());
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("transfer-encoding"), Some("chunked"));

    let req = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url("/get"));
    let resp = roundtrip(&mut c, "GET", req.as_bytes());
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_str(), "after head");
    assert!(c.buffered().is_empty());
    assert_eq!(
        origin.accepted(),
        1,
        "bodiless responses keep the upstream reusable"
    );
}

/// 204 and 304 responses end at their head (even a 304 with a Content-Length); the
/// connection is then reused.
fn no_body_204_304(driver: &str) {
    let origin = Origin::http(|req| match req.target.as_str() {
        "/204" => b"HTTP/1.1 204 No Content\r\nX-S: 204\r\n\r\n".to_vec(),
        "/304" => {
            b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 10\r\n\r\n".to_vec()
        }
        _ => ok(req.target.as_bytes()),
    });
    let proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    for (path, status) in [("/204", 204), ("/304", 304)] {
        let req = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url(path));
        let resp = roundtrip(&mut c, "GET", req.as_bytes());
        assert_eq!(resp.status, status);
        assert!(resp.body.is_empty());
        let req = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url("/next"));
        let resp = roundtrip(&mut c, "GET", req.as_bytes());
        assert_eq!(resp.status, 200, "request after {status}");
        assert_eq!(resp.body_str(), "/next");
    }
    let resp304_etag = {
        let req = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url("/304"));
        roundtrip(&mut c, "GET", req.as_bytes())
    };
    assert_eq!(resp304_etag.header("etag"), Some("\"v1\""));
    assert_eq!(resp304_etag.header("content-length"), Some("10"));
    assert_eq!(origin.accepted(), 1);
}

/// `Expect: 100-continue`: the origin answers `100 Continue` after the head; the proxy relays
/// it; only then does the client send the body, and the final response echoes it.
fn expect_100_continue(driver: &str) {
    let (tx, rx) = mpsc::channel();
    let origin = Origin::start(move |mut s| {
        let mut r = Reader::new(s.try_clone().unwrap());
        for _ in 0..4 {
            let Some(head) = r.request_head() else { return };
            let n: usize = head
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let _ = tx.send(head.clone());
            if head.header("expect").is_some() {
                let _ = s.write_all(b"HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n");
            }
            let Some(body) = r.take_exact(n) else { return };
            let mut resp = b"echo:".to_vec();
            resp.extend_from_slice(&body);
            let _ = s.write_all(&ok(&resp));
        }
    });
    let proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    let body = b"the body, sent only after 100";
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        origin.url("/upload"),
        body.len()
    );
    c.get_mut().write_all(head.as_bytes()).unwrap();
    let interim = c.response("POST").expect("interim response");
    assert_eq!(
        interim.status, 100,
        "client must see 100 Continue before sending"
    );
    assert_eq!(interim.header("x-interim"), Some("1"));
    let got = rx.recv_timeout(IO_TIMEOUT).expect("origin head");
    assert_eq!(got.header("expect"), Some("100-continue"));
    c.get_mut().write_all(body).unwrap();
    let (more, resp) = c.final_response("POST").expect("final response");
    assert!(more.is_empty());
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, [&b"echo:"[..], body].concat());

    // Same connection, no Expect this time.
    let resp = roundtrip(&mut c, "POST", &post(&origin.url("/again"), b"plain", ""));
    assert_eq!(resp.body_str(), "echo:plain");
    assert_eq!(origin.accepted(), 1);
}

/// An origin that answers with a final 413 without reading the body: the client gets the 413
/// (with `Connection: close`) and the proxy closes the connection. With and without
/// `Expect: 100-continue`.
fn final_response_before_body(driver: &str) {
    let origin = Origin::start(|mut s| {
        let mut r = Reader::new(s.try_clone().unwrap());
        if r.request_head().is_none() {
            return;
        }
        let _ = s.write_all(
            b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big!",
        );
        let _ = s.shutdown(Shutdown::Write);
        // Lingering close: drain what the proxy still sends, bounded.
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = r.read_to_close();
    });
    let proxy = Proxy::start(driver, &[]);
    for expect in ["Expect: 100-continue\r\n", ""] {
        let mut c = Reader::new(proxy.connect());
        let mut req = format!(
            "POST {} HTTP/1.1\r\nHost: x\r\n{expect}Content-Length: 10000000\r\n\r\n",
            origin.url("/upload")
        )
        .into_bytes();
        if expect.is_empty() {
            req.extend_from_slice(&[b'x'; 1000]);
        }
        c.get_mut().write_all(&req).unwrap();
        let (interim, resp) = c.final_response("POST").expect("final response");
        assert!(interim.is_empty(), "{expect:?}");
        assert_eq!(resp.status, 413, "{expect:?}");
        assert_eq!(resp.body_str(), "too big!");
        assert_eq!(resp.header("connection"), Some("close"));
        assert!(
            c.closed(),
            "proxy must close a connection whose body was not sent"
        );
    }
}

/// Interim 1xx responses (103 Early Hints) are relayed to an HTTP/1.1 client before the final
/// response, and withheld from an HTTP/1.0 client (which cannot understand them).
fn interim_103_relayed_to_http11_only(driver: &str) {
    let origin = Origin::http(|_| {
        let mut r = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n".to_vec();
        r.extend_from_slice(&ok(b"final"));
        r
    });
    let proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    let req = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url("/hints"));
    c.get_mut().write_all(req.as_bytes()).unwrap();
    let (interim, resp) = c.final_response("GET").expect("response");
    assert_eq!(interim.len(), 1);
    assert_eq!(interim[0].status, 103);
    assert_eq!(interim[0].header("link"), Some("</a.css>; rel=preload"));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_str(), "final");

    let mut c = Reader::new(proxy.connect());
    let req = format!("GET {} HTTP/1.0\r\n\r\n", origin.url("/hints"));
    c.get_mut().write_all(req.as_bytes()).unwrap();
    let (interim, resp) = c.final_response("GET").expect("response");
    assert!(interim.is_empty(), "no 1xx for an HTTP/1.0 client");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_str(), "final");
}

/// Interim responses are bounded per request: an origin sending 100 × `103 Early Hints` gets
/// the first 32 relayed, then the client a 502 saying why (never the origin's final response).
fn too_many_interim_responses_are_a_502(driver: &str) {
    const SENT: usize = 100;
    const RELAYED: usize = 32; // lynxio's MAX_INTERIM_RESPONSES
    let origin = Origin::http(|_| {
        let mut r = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n".repeat(SENT);
        r.extend_from_slice(&ok(b"final"));
        r
    });
    let proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    let req = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url("/hints"));
    c.get_mut().write_all(req.as_bytes()).unwrap();
    let mut interim = 0;
    let last = loop {
        let m = c.response("GET").expect("a response");
        if m.status != 103 {
            break m;
        }
        interim += 1;
        assert!(
            interim <= RELAYED,
            "more than {RELAYED} interim responses relayed"
        );
    };
    assert_eq!(interim, RELAYED);
    assert_eq!(last.status, 502);
    assert!(
        last.body_str().contains("too many interim responses"),
        "{:?}",
        last.body_str()
    );
    let fine = Origin::http(|_| ok(b"fine"));
    assert_still_serving(&proxy, &fine, "after an endless interim stream");
}

/// An origin that closes in the middle of a body: the client must be able to tell the response
/// is incomplete — the proxy closes the client connection, never completes the framing (no
/// last chunk), and sends nothing more.
fn truncated_response_closes_client(driver: &str) {
    let origin = Origin::start(|mut s| {
        let mut r = Reader::new(s.try_clone().unwrap());
        let Some(req) = r.request() else { return };
        let partial: &[u8] = if req.target == "/cl" {
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"
        } else {
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
        };
        let _ = s.write_all(partial);
        let _ = s.shutdown(Shutdown::Both);
    });
    let proxy = Proxy::start(driver, &[]);
    for path in ["/cl", "/chunked"] {
        let mut c = Reader::new(proxy.connect());
        let req = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url(path));
        c.get_mut().write_all(req.as_bytes()).unwrap();
        let raw = c.read_to_close();
        let text = String::from_utf8_lossy(&raw);
        assert_eq!(status_of(&raw), 200, "{path}: {text:?}");
        let head_end = find(&raw, b"\r\n\r\n").expect("head") + 4;
        let body = &raw[head_end..];
        if path == "/cl" {
            assert_eq!(body, b"0123456789", "{path}: {text:?}");
        } else {
            assert_eq!(body, b"5\r\nhello\r\n", "{path}: {text:?}");
        }
    }
}

drivers!(
    post_small_content_length,
    truncated_response_closes_client,
    interim_103_relayed_to_http11_only,
    too_many_interim_responses_are_a_502,
    post_8mib,
    post_content_length_zero,
    chunked_request_with_trailers,
    chunked_response_trailers_to_http11,
    chunked_response_dechunked_for_http10,
    close_delimited_response,
    response_32mib,
    head_response_has_no_body,
    no_body_204_304,
    expect_100_continue,
    final_response_before_body,
);
