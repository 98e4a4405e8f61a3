//! Request smuggling and response splitting, as wire-byte tables. Requests whose head carries a
//! smuggling pattern are answered 400 and never reach the origin; requests whose body framing
//! turns out bad after the head was forwarded get 400 and none of the bad body bytes are
//! forwarded; responses with a smuggling pattern in the head become 502, and a response whose
//! body framing breaks after its head was relayed is cut off (connection closed, message
//! incomplete) — never turned into a second response.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::*;

/// How long a test waits for one answer (all of them come well before this).
const WAIT: Duration = Duration::from_secs(5);

/// Marker carried by every smuggled message; it must never reach the client or the origin.
const SMUGGLED: &str = "SMUGGLED";

/// A request to `o` with `fields` (each ending in CRLF) and `body` after the empty line.
fn req(o: SocketAddr, fields: &str, body: &str) -> Vec<u8> {
    format!("POST http://{o}/upload HTTP/1.1\r\nHost: {o}\r\n{fields}\r\n{body}").into_bytes()
}

/// A GET to `o` with extra `fields`.
fn get(o: SocketAddr, fields: &str) -> Vec<u8> {
    format!("GET http://{o}/ HTTP/1.1\r\nHost: {o}\r\n{fields}\r\n").into_bytes()
}

/// A request smuggled behind the first one, if the framing were misread.
fn smuggled_get(o: SocketAddr) -> String {
    format!("GET http://{o}/{SMUGGLED} HTTP/1.1\r\nHost: {o}\r\n\r\n")
}

fn request_head_table(o: SocketAddr) -> Vec<(&'static str, Vec<u8>)> {
    let s = smuggled_get(o);
    vec![
        (
            "CL then TE",
            req(
                o,
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                &format!("0\r\n\r\n{s}"),
            ),
        ),
        (
            "TE then CL",
            req(
                o,
                "Transfer-Encoding: chunked\r\nContent-Length: 40\r\n",
                &format!("0\r\n\r\n{s}"),
            ),
        ),
        (
            "CL and TE: identity",
            req(
                o,
                "Content-Length: 3\r\nTransfer-Encoding: identity\r\n",
                "abc",
            ),
        ),
        (
            "two differing Content-Length fields",
            req(o, "Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"),
        ),
        (
            "Content-Length list 1, 2",
            req(o, "Content-Length: 1, 2\r\n", "ab"),
        ),
        (
            "Content-Length list 5, 5, 6",
            req(o, "Content-Length: 5, 5, 6\r\n", "hello!"),
        ),
        (
            "Content-Length with empty list element",
            req(o, "Content-Length: 5,\r\n", "hello"),
        ),
        (
            "negative Content-Length",
            req(o, "Content-Length: -5\r\n", "hello"),
        ),
        (
            "signed Content-Length",
            req(o, "Content-Length: +5\r\n", "hello"),
        ),
        (
            "non-numeric Content-Length",
            req(o, "Content-Length: abc\r\n", "hello"),
        ),
        (
            "hex Content-Length",
            req(o, "Content-Length: 0x5\r\n", "hello"),
        ),
        (
            "Content-Length with inner space",
            req(o, "Content-Length: 5 5\r\n", "hello"),
        ),
        (
            "empty Content-Length",
            req(o, "Content-Length: \r\n", "hello"),
        ),
        (
            "decimal point in Content-Length",
            req(o, "Content-Length: 5.0\r\n", "hello"),
        ),
        (
            "overflowing Content-Length",
            req(o, "Content-Length: 99999999999999999999999\r\n", "hello"),
        ),
        (
            "TE gzip only",
            req(o, "Transfer-Encoding: gzip\r\n", "hello"),
        ),
        (
            "TE chunked, gzip (chunked not final)",
            req(
                o,
                "Transfer-Encoding: chunked, gzip\r\n",
                &format!("0\r\n\r\n{s}"),
            ),
        ),
        (
            "TE chunked twice in two fields",
            req(
                o,
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                "0\r\n\r\n",
            ),
        ),
        (
            "TE chunked, chunked in one field",
            req(o, "Transfer-Encoding: chunked, chunked\r\n", "0\r\n\r\n"),
        ),
        (
            "TE xchunked",
            req(o, "Transfer-Encoding: xchunked\r\n", "0\r\n\r\n"),
        ),
        (
            "TE chunked with parameters",
            req(o, "Transfer-Encoding: chunked;q=1\r\n", "0\r\n\r\n"),
        ),
        (
            "TE quoted chunked",
            req(o, "Transfer-Encoding: \"chunked\"\r\n", "0\r\n\r\n"),
        ),
        (
            "TE in HTTP/1.0",
            format!(
                "POST http://{o}/ HTTP/1.0\r\nHost: {o}\r\nTransfer-Encoding: chunked\r\n\r\n\
                 0\r\n\r\n"
            )
            .into_bytes(),
        ),
        (
            "TE with vertical tab",
            req(o, "Transfer-Encoding:\x0bchunked\r\n", "0\r\n\r\n"),
        ),
        (
            "underscore Transfer_Encoding",
            req(
                o,
                "Content-Length: 5\r\nTransfer_Encoding: chunked\r\n",
                "0\r\n\r\n",
            ),
        ),
        (
            "underscore Content_Length",
            req(o, "Content_Length: 5\r\n", "hello"),
        ),
        (
            "Connection names Content-Length",
            req(
                o,
                "Content-Length: 5\r\nConnection: content-length\r\n",
                "hello",
            ),
        ),
        (
            "Connection names Transfer-Encoding",
            req(
                o,
                "Transfer-Encoding: chunked\r\nConnection: transfer-encoding\r\n",
                "0\r\n\r\n",
            ),
        ),
        (
            "obs-fold (space)",
            req(o, "X-Folded: a\r\n b\r\nContent-Length: 0\r\n", ""),
        ),
        (
            "obs-fold (tab)",
            req(o, "X-Folded: a\r\n\tb\r\nContent-Length: 0\r\n", ""),
        ),
        (
            "obs-fold continuing Transfer-Encoding",
            req(o, "Transfer-Encoding: gzip\r\n , chunked\r\n", "0\r\n\r\n"),
        ),
        (
            "whitespace before the first field",
            format!("GET http://{o}/ HTTP/1.1\r\n Host: {o}\r\n\r\n").into_bytes(),
        ),
        (
            "space before colon (Content-Length)",
            req(o, "Content-Length : 5\r\n", "hello"),
        ),
        (
            "space before colon (Transfer-Encoding)",
            req(o, "Transfer-Encoding : chunked\r\n", "0\r\n\r\n"),
        ),
        (
            "tab before colon",
            req(o, "Content-Length\t: 5\r\n", "hello"),
        ),
        ("control byte in a field name", get(o, "X\x01A: v\r\n")),
        ("non-token byte in a field name", get(o, "X@A: v\r\n")),
        ("empty field name", get(o, ": v\r\n")),
        ("field line without colon", get(o, "NoColonHere\r\n")),
        ("NUL in a field value", get(o, "X-A: a\x00b\r\n")),
        ("bare CR in a field value", get(o, "X-A: a\rb\r\n")),
        ("control byte in a field value", get(o, "X-A: a\x01b\r\n")),
        (
            "bare CR ending the request line",
            format!("GET http://{o}/ HTTP/1.1\rHost: {o}\r\n\r\n").into_bytes(),
        ),
        (
            "NUL in the request target",
            format!("GET http://{o}/a\x00b HTTP/1.1\r\nHost: {o}\r\n\r\n").into_bytes(),
        ),
    ]
}

/// Every smuggling pattern in a request head: 400, and the origin is never contacted.
fn request_head_smuggling(driver: &str) {
    let (origin, seen) = byte_sink_origin();
    let proxy = Proxy::start(driver, &[]);
    let mut failures = Vec::new();
    for (what, bytes) in request_head_table(origin.addr) {
        let reply = send_raw(proxy.addr, &bytes, WAIT);
        if let Err(e) = check_error_reply(&reply, 400) {
            failures.push(format!(
                "{what} ({:?}): {e}",
                String::from_utf8_lossy(&bytes)
            ));
        }
        if origin.accepted() != 0 {
            failures.push(format!("{what}: the origin was contacted"));
        }
    }
    thread::sleep(Duration::from_millis(50));
    assert_eq!(origin.accepted(), 0, "the origin was contacted");
    assert!(
        seen.lock().unwrap_or_else(|e| e.into_inner()).is_empty(),
        "the origin received bytes"
    );
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert_no_panic(proxy);
}

/// Chunked bodies that go bad after a valid head. The head has been forwarded by the time the
/// body is validated, so the origin MAY see the head; what is asserted: the client gets 400
/// (`BadRequest(BadChunk)`) and the connection is closed, and the origin receives not one byte
/// of the invalid body (the proxy validates what it buffered before forwarding it), so in
/// particular never a complete chunked body nor the request smuggled behind it.
fn request_body_smuggling(driver: &str) {
    let proxy = Proxy::start(driver, &[]);
    let cases: &[(&str, &str)] = &[
        ("non-hex chunk size", "zz\r\nhello\r\n0\r\n\r\n"),
        ("negative chunk size", "-1\r\nhello\r\n0\r\n\r\n"),
        (
            "overflowing chunk size",
            "ffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        ),
        ("0x prefix", "0x5\r\nhello\r\n0\r\n\r\n"),
        ("empty chunk size", "\r\nhello\r\n0\r\n\r\n"),
        ("no CRLF after chunk data", "5\r\nhelloXX0\r\n\r\n"),
        ("chunk data longer than its size", "3\r\nhello\r\n0\r\n\r\n"),
        (
            "whitespace before CRLF of the size",
            "5 \r\nhello\r\n0\r\n\r\n",
        ),
        ("bare LF after the size", "5\nhello\r\n0\r\n\r\n"),
        ("bare LF after the data", "5\r\nhello\n0\r\n\r\n"),
        (
            "control byte in a chunk extension",
            "5;a\x01b\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "space in a trailer name",
            "5\r\nhello\r\n0\r\nBad Name: x\r\n\r\n",
        ),
        (
            "obs-fold in the trailers",
            "5\r\nhello\r\n0\r\nT: a\r\n b\r\n\r\n",
        ),
        ("bare LF ending the body", "5\r\nhello\r\n0\r\n\n"),
    ];
    let mut failures = Vec::new();
    for (what, body) in cases {
        let (origin, seen) = byte_sink_origin();
        let o = origin.addr;
        let body = format!("{body}{}", smuggled_get(o));
        let bytes = req(o, "Transfer-Encoding: chunked\r\n", &body);
        let reply = send_raw(proxy.addr, &bytes, WAIT);
        if let Err(e) = check_error_reply(&reply, 400) {
            failures.push(format!("{what}: {e}"));
        }
        // The proxy closes the upstream connection on the error; give the recorder a moment.
        eventually(Duration::from_secs(2), || {
            find(&seen.lock().unwrap_or_else(|e| e.into_inner()), b"\r\n\r\n").is_some()
        });
        thread::sleep(Duration::from_millis(30));
        let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let after_head = match find(&seen, b"\r\n\r\n") {
            Some(end) => seen[end + 4..].to_vec(),
            None => Vec::new(),
        };
        if !after_head.is_empty() {
            failures.push(format!(
                "{what}: the origin received body bytes: {:?}",
                String::from_utf8_lossy(&after_head)
            ));
        }
        if find(&seen, SMUGGLED.as_bytes()).is_some() {
            failures.push(format!("{what}: the smuggled request reached the origin"));
        }
        if origin.accepted() > 1 {
            failures.push(format!(
                "{what}: the origin got {} connections",
                origin.accepted()
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert_no_panic(proxy);
}

/// Reads one head (through CRLF CRLF) and then exactly `n` body bytes, at the byte level (so a
/// framing field the harness `Reader` would not parse cannot confuse the test).
fn read_head_and_body(s: &mut TcpStream, n: usize) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    for _ in 0..10_000 {
        if let Some(end) = find(&buf, b"\r\n\r\n")
            && buf.len() >= end + 4 + n
        {
            let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
            return Some((head, buf[end + 4..end + 4 + n].to_vec()));
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
        }
    }
    None
}

/// The `Content-Length` field values of a raw head.
fn content_lengths(head: &str) -> Vec<String> {
    head.split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.trim().to_owned())
        .collect()
}

/// Forwarded Content-Length fields: at least one, each exactly `5` (1*DIGIT). Repeating the
/// identical valid field is tolerated; a `5, 5` list value is not valid `Content-Length`.
fn valid_identical_lengths(values: &[String]) -> bool {
    !values.is_empty() && values.iter().all(|v| v == "5")
}

/// Identical Content-Length values (repeated field, or a list in one field) are accepted and
/// the message is framed by that one value (RFC 9112 §6.3 item 5). RFC 9110 §8.6: a sender
/// MUST NOT forward a Content-Length that does not match `1*DIGIT`; the recipient may reject
/// or replace the list by the single value. Asserted: 200, the origin receives the 5 bytes, and
/// every forwarded Content-Length field is exactly `5` (a repeated identical field is
/// tolerated, a `5, 5` list is not) — an origin that ignores an unparsable `5, 5` would
/// otherwise read the body as the start of the next request.
fn identical_duplicate_content_length_request(driver: &str) {
    let (tx, rx) = mpsc::channel();
    let origin = Origin::start(move |mut s| {
        for _ in 0..10 {
            let Some((head, body)) = read_head_and_body(&mut s, 5) else {
                return;
            };
            let answer = ok(format!("got {}", String::from_utf8_lossy(&body)).as_bytes());
            let _ = tx.send((head, body));
            if s.write_all(&answer).is_err() {
                return;
            }
        }
    });
    let proxy = Proxy::start(driver, &[]);
    let o = origin.addr;
    let mut c = Reader::new(proxy.connect());
    let mut failures = Vec::new();
    for fields in [
        "Content-Length: 5\r\nContent-Length: 5\r\n",
        "Content-Length: 5, 5\r\n",
    ] {
        let resp = roundtrip(&mut c, "POST", &req(o, fields, "hello"));
        assert_eq!(resp.status, 200, "{fields:?}");
        assert_eq!(resp.body_str(), "got hello", "{fields:?}");
        let (head, body) = rx.recv_timeout(IO_TIMEOUT).expect("origin got the request");
        assert_eq!(body, b"hello", "{fields:?}");
        let cls = content_lengths(&head);
        if !valid_identical_lengths(&cls) {
            failures.push(format!(
                "{fields:?}: forwarded as Content-Length {cls:?}, not `5` (RFC 9110 §8.6 \
                 forbids forwarding a list value): {head:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert_no_panic(proxy);
}

/// Whether `raw` contains an LF not preceded by CR.
fn has_bare_lf(raw: &[u8]) -> bool {
    raw.iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || raw[i - 1] != b'\r'))
}

/// Bare LF line endings are accepted by the parser in both directions (httparse is lenient,
/// RFC 9112 §2.2 allows it); what matters is that the forwarded heads are re-serialized with
/// CRLF only, so the next hop cannot split lines differently from the proxy.
fn bare_lf_is_normalized(driver: &str) {
    let (origin, rx) = recording_origin(|_| ok(b"unused"));
    let lf_origin = Origin::start(|mut s| {
        let mut r = Reader::new(s.try_clone().expect("clone"));
        if r.request().is_some() {
            let _ = s.write_all(b"HTTP/1.1 200 OK\nContent-Length: 5\nX-Lf: yes\n\nlf ok");
        }
    });
    let proxy = Proxy::start(driver, &[]);
    // Request with bare LF: forwarded with CRLF.
    let o = origin.addr;
    let bytes = format!("GET http://{o}/lf HTTP/1.1\nHost: {o}\nX-Lf: yes\n\n");
    let mut c = proxy.connect();
    c.write_all(bytes.as_bytes()).expect("write");
    let seen = next_request(&rx);
    assert_eq!(seen.target, "/lf");
    assert_eq!(seen.header("x-lf"), Some("yes"));
    assert!(
        !has_bare_lf(&seen.raw_head),
        "bare LF forwarded to the origin: {:?}",
        String::from_utf8_lossy(&seen.raw_head)
    );
    // Response with bare LF: relayed with CRLF.
    let o = lf_origin.addr;
    let bytes = format!("GET http://{o}/ HTTP/1.1\r\nHost: {o}\r\n\r\n");
    let mut c = Reader::new(proxy.connect());
    let resp = roundtrip(&mut c, "GET", bytes.as_bytes());
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-lf"), Some("yes"));
    assert_eq!(resp.body_str(), "lf ok");
    assert!(
        !has_bare_lf(&resp.raw_head),
        "bare LF relayed to the client: {:?}",
        String::from_utf8_lossy(&resp.raw_head)
    );
    assert_no_panic(proxy);
}

fn smuggled_response() -> String {
    format!("HTTP/1.1 200 OK\r\nX-{SMUGGLED}: yes\r\nContent-Length: 8\r\n\r\n{SMUGGLED}")
}

fn response_head_table() -> Vec<(&'static str, String)> {
    let s = smuggled_response();
    let resp = |fields: &str, body: &str| format!("HTTP/1.1 200 OK\r\n{fields}\r\n{body}");
    vec![
        (
            "CL then TE",
            resp(
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                &format!("0\r\n\r\n{s}"),
            ),
        ),
        (
            "TE then CL",
            resp(
                "Transfer-Encoding: chunked\r\nContent-Length: 60\r\n",
                &format!("0\r\n\r\n{s}"),
            ),
        ),
        (
            "two differing Content-Length fields",
            resp(
                "Content-Length: 5\r\nContent-Length: 6\r\n",
                &format!("hello{s}"),
            ),
        ),
        (
            "Content-Length list 1, 2",
            resp("Content-Length: 1, 2\r\n", &format!("ab{s}")),
        ),
        (
            "negative Content-Length",
            resp("Content-Length: -1\r\n", &format!("a{s}")),
        ),
        (
            "non-numeric Content-Length",
            resp("Content-Length: five\r\n", &format!("hello{s}")),
        ),
        (
            "TE gzip only",
            resp("Transfer-Encoding: gzip\r\n", &format!("hello{s}")),
        ),
        (
            "TE chunked, gzip",
            resp(
                "Transfer-Encoding: chunked, gzip\r\n",
                &format!("0\r\n\r\n{s}"),
            ),
        ),
        (
            "TE chunked twice",
            resp(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                &format!("0\r\n\r\n{s}"),
            ),
        ),
        (
            "TE xchunked",
            resp("Transfer-Encoding: xchunked\r\n", &format!("0\r\n\r\n{s}")),
        ),
        (
            "TE in an HTTP/1.0 response",
            format!("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{s}"),
        ),
        (
            "underscore Transfer_Encoding",
            resp(
                "Content-Length: 5\r\nTransfer_Encoding: chunked\r\n",
                &format!("0\r\n\r\n{s}"),
            ),
        ),
        (
            "Connection names Content-Length",
            resp(
                "Content-Length: 5\r\nConnection: content-length\r\n",
                &format!("hello{s}"),
            ),
        ),
        (
            "obs-fold",
            resp(
                "Content-Length: 5\r\nX-Folded: a\r\n b\r\n",
                &format!("hello{s}"),
            ),
        ),
        (
            "obs-fold continuing Transfer-Encoding",
            resp(
                "Transfer-Encoding: gzip\r\n , chunked\r\n",
                &format!("0\r\n\r\n{s}"),
            ),
        ),
        (
            "space before colon",
            resp("Content-Length : 5\r\n", &format!("hello{s}")),
        ),
        (
            "control byte in a field name",
            resp("Content-Length: 5\r\nX\x01A: v\r\n", &format!("hello{s}")),
        ),
        (
            "NUL in a field value",
            resp("Content-Length: 5\r\nX-A: a\x00b\r\n", &format!("hello{s}")),
        ),
        (
            "bare CR in a field value",
            resp("Content-Length: 5\r\nX-A: a\rb\r\n", &format!("hello{s}")),
        ),
        (
            "status code 600",
            format!("HTTP/1.1 600 Nope\r\nContent-Length: 5\r\n\r\nhello{s}"),
        ),
        (
            "two-digit status code",
            format!("HTTP/1.1 20 OK\r\nContent-Length: 5\r\n\r\nhello{s}"),
        ),
        (
            "non-numeric status code",
            format!("HTTP/1.1 2OO OK\r\nContent-Length: 5\r\n\r\nhello{s}"),
        ),
        (
            "HTTP/2.0 status line",
            format!("HTTP/2.0 200 OK\r\nContent-Length: 5\r\n\r\nhello{s}"),
        ),
    ]
}

/// Smuggling patterns in a response head: 502 to the client, and the bytes behind them never
/// reach the client.
fn response_head_smuggling(driver: &str) {
    let cases = response_head_table();
    let origin = scripted_origin(
        cases.iter().map(|(_, r)| r.clone().into_bytes()).collect(),
        100,
    );
    let proxy = Proxy::start(driver, &[]);
    let o = origin.addr;
    let mut failures = Vec::new();
    for (i, (what, _)) in cases.iter().enumerate() {
        let bytes = format!("GET http://{o}/case/{i} HTTP/1.1\r\nHost: {o}\r\n\r\n");
        let reply = send_raw(proxy.addr, bytes.as_bytes(), WAIT);
        if let Err(e) = check_error_reply(&reply, 502) {
            failures.push(format!("{what}: {e}"));
        }
        if find(&reply.raw, SMUGGLED.as_bytes()).is_some() {
            failures.push(format!(
                "{what}: smuggled bytes reached the client: {:?}",
                reply.text()
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert_no_panic(proxy);
}

/// A chunked response whose body framing breaks after the head was relayed: the client has
/// the 200 head already, so the proxy can only cut the connection. Asserted: the connection is
/// closed, the message is not complete (a client cannot mistake it for a whole response), and
/// the bytes behind the bad chunk (a smuggled response) never reach the client.
fn response_body_smuggling(driver: &str) {
    let s = smuggled_response();
    let bodies = [
        ("non-hex chunk size", format!("5\r\nhello\r\nzz\r\n{s}")),
        ("negative chunk size", format!("-1\r\n{s}")),
        (
            "overflowing chunk size",
            format!("ffffffffffffffffff\r\n{s}"),
        ),
        (
            "no CRLF after chunk data",
            format!("5\r\nhelloXX0\r\n\r\n{s}"),
        ),
        (
            "chunk data longer than its size",
            format!("3\r\nhello\r\n0\r\n\r\n{s}"),
        ),
        (
            "bare LF after the size",
            format!("5\nhello\r\n0\r\n\r\n{s}"),
        ),
        ("bad trailer", format!("0\r\nBad Trailer: x\r\n\r\n{s}")),
    ];
    let origin = scripted_origin(
        bodies
            .iter()
            .map(|(_, b)| {
                format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{b}").into_bytes()
            })
            .collect(),
        100,
    );
    let proxy = Proxy::start(driver, &[]);
    let o = origin.addr;
    let mut failures = Vec::new();
    for (i, (what, _)) in bodies.iter().enumerate() {
        let bytes = format!("GET http://{o}/case/{i} HTTP/1.1\r\nHost: {o}\r\n\r\n");
        let reply = send_raw(proxy.addr, bytes.as_bytes(), WAIT);
        let status = status_of(&reply.raw);
        if status != 200 && status != 502 {
            failures.push(format!("{what}: unexpected answer {:?}", reply.text()));
        }
        if !reply.closed {
            failures.push(format!("{what}: connection not closed: {:?}", reply.text()));
        }
        if status == 200 && Reader::new(&reply.raw[..]).response("GET").is_some() {
            failures.push(format!(
                "{what}: the client got a complete response: {:?}",
                reply.text()
            ));
        }
        if find(&reply.raw, SMUGGLED.as_bytes()).is_some() {
            failures.push(format!(
                "{what}: smuggled bytes reached the client: {:?}",
                reply.text()
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert_no_panic(proxy);
}

/// Identical duplicate Content-Length in a response (repeated field or list) is folded: the
/// client gets exactly the 5-byte body on a connection that stays in step, and — RFC 9110
/// §8.6, as for requests — every relayed Content-Length field is exactly `5`, never the list.
fn identical_duplicate_content_length_response(driver: &str) {
    let origin = scripted_origin(
        vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nworld".to_vec(),
        ],
        100,
    );
    let proxy = Proxy::start(driver, &[]);
    let o = origin.addr;
    let mut c = proxy.connect();
    let mut failures = Vec::new();
    for (i, want) in ["hello", "world"].iter().enumerate() {
        let bytes = format!("GET http://{o}/case/{i} HTTP/1.1\r\nHost: {o}\r\n\r\n");
        c.write_all(bytes.as_bytes()).expect("write");
        let (head, body) = read_head_and_body(&mut c, 5).expect("a response");
        assert_eq!(status_of(head.as_bytes()), 200, "case {i}: {head:?}");
        assert_eq!(body, want.as_bytes(), "case {i}");
        let cls = content_lengths(&head);
        if !valid_identical_lengths(&cls) {
            failures.push(format!(
                "case {i}: relayed as Content-Length {cls:?}, not `5` (RFC 9110 §8.6 \
                 forbids forwarding a list value): {head:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert_no_panic(proxy);
}

/// An origin that sends more bytes than its Content-Length says (a whole extra response): the
/// extra bytes must not become the response to the client's next request, whether they arrive
/// with the body or a moment later while the upstream connection sits idle in the pool.
fn extra_bytes_after_response_are_not_a_response(driver: &str) {
    for delay_ms in [0u64, 50] {
        let origin = Origin::start(move |mut s| {
            let mut r = Reader::new(s.try_clone().expect("clone"));
            for _ in 0..10 {
                let Some(req) = r.request() else { return };
                if req.target == "/first" {
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
                    if delay_ms > 0 {
                        thread::sleep(Duration::from_millis(delay_ms));
                    }
                    let _ = s.write_all(smuggled_response().as_bytes());
                } else {
                    let _ = s.write_all(&ok(format!("fresh {}", req.target).as_bytes()));
                }
            }
        });
        let proxy = Proxy::start(driver, &[]);
        let o = origin.addr;
        let mut c = Reader::new(proxy.connect());
        let first = format!("GET http://{o}/first HTTP/1.1\r\nHost: {o}\r\n\r\n");
        let resp = roundtrip(&mut c, "GET", first.as_bytes());
        assert_eq!(resp.body_str(), "hello");
        thread::sleep(Duration::from_millis(delay_ms + 150));
        let second = format!("GET http://{o}/second HTTP/1.1\r\nHost: {o}\r\n\r\n");
        c.get_mut().write_all(second.as_bytes()).expect("write");
        let resp = c.final_response("GET").map(|(_, m)| m);
        let resp = resp.unwrap_or_else(|| {
            panic!(
                "delay {delay_ms}ms: no response to the second request; buffered {:?}",
                String::from_utf8_lossy(c.buffered())
            )
        });
        assert_eq!(
            resp.body_str(),
            "fresh /second",
            "delay {delay_ms}ms: the extra bytes the origin sent after a response were served \
             as the response to the next request (response queue desync); head {:?}",
            String::from_utf8_lossy(&resp.raw_head)
        );
        assert_no_panic(proxy);
    }
}

drivers!(
    request_head_smuggling,
    request_body_smuggling,
    identical_duplicate_content_length_request,
    bare_lf_is_normalized,
    response_head_smuggling,
    response_body_smuggling,
    identical_duplicate_content_length_response,
    extra_bytes_after_response_are_not_a_response,
);
