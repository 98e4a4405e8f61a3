//! Wire-byte tables for response heads: status line, reason bytes, the same head tightening as
//! requests, and the response framing table (method × status × CL/TE).

use super::super::{BodyKind, HeadLimits, Method, ParseErrorKind, Version};
use super::*;
use ParseErrorKind::*;

fn parse(wire: &[u8]) -> Result<Option<(ResponseHead, usize)>, ParseError> {
    parse_response(wire, &HeadLimits::default())
}

fn head(wire: &[u8]) -> ResponseHead {
    match parse(wire) {
        Ok(Some((h, n))) => {
            assert_eq!(n, wire.len());
            h
        }
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(wire)),
    }
}

fn kind(wire: &[u8]) -> ParseErrorKind {
    match parse(wire) {
        Err(e) => e.kind,
        other => panic!("{:?} accepted: {other:?}", String::from_utf8_lossy(wire)),
    }
}

#[test]
fn status_line_and_reason() {
    let table: &[(&[u8], Version, u16, &[u8])] = &[
        (b"HTTP/1.1 200 OK\r\n\r\n", Version::Http11, 200, b"OK"),
        (
            b"HTTP/1.0 404 Not Found\r\n\r\n",
            Version::Http10,
            404,
            b"Not Found",
        ),
        (b"HTTP/1.1 204\r\n\r\n", Version::Http11, 204, b""),
        (b"HTTP/1.1 204 \r\n\r\n", Version::Http11, 204, b""),
        (
            b"HTTP/1.1 200 \xc3\xa9t\xe9\r\n\r\n",
            Version::Http11,
            200,
            b"\xc3\xa9t\xe9",
        ),
        (
            b"HTTP/1.1 599 Custom\tReason \r\n\r\n",
            Version::Http11,
            599,
            b"Custom\tReason ",
        ),
        (
            b"HTTP/1.1 100 Continue\n\n",
            Version::Http11,
            100,
            b"Continue",
        ),
        (b"\r\nHTTP/1.1 200 OK\r\n\r\n", Version::Http11, 200, b"OK"),
    ];
    for (wire, version, status, reason) in table {
        let h = head(wire);
        assert_eq!(
            (h.version, h.status, h.reason()),
            (*version, *status, *reason)
        );
    }
}

#[test]
fn malformed_responses() {
    let table: &[(&str, &[u8], ParseErrorKind)] = &[
        ("HTTP/2.0", b"HTTP/2.0 200 OK\r\n\r\n", UnsupportedVersion),
        ("HTTP/1.2", b"HTTP/1.2 200 OK\r\n\r\n", UnsupportedVersion),
        ("lowercase", b"http/1.1 200 OK\r\n\r\n", Malformed),
        ("ICY", b"ICY 200 OK\r\n\r\n", Malformed),
        ("2-digit status", b"HTTP/1.1 20 OK\r\n\r\n", Malformed),
        ("4-digit status", b"HTTP/1.1 2000 OK\r\n\r\n", Malformed),
        ("status 099", b"HTTP/1.1 099 X\r\n\r\n", Malformed),
        ("status 600", b"HTTP/1.1 600 X\r\n\r\n", Malformed),
        ("double SP", b"HTTP/1.1  200 OK\r\n\r\n", Malformed),
        ("CTL reason", b"HTTP/1.1 200 O\x01K\r\n\r\n", Malformed),
        ("bare CR reason", b"HTTP/1.1 200 O\rK\r\n\r\n", Malformed),
        (
            "obs-fold",
            b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
            Malformed,
        ),
        (
            "space before colon",
            b"HTTP/1.1 200 OK\r\nX : a\r\n\r\n",
            Malformed,
        ),
        ("NUL value", b"HTTP/1.1 200 OK\r\nX: \0\r\n\r\n", Malformed),
        ("bad name", b"HTTP/1.1 200 OK\r\nX{: a\r\n\r\n", Malformed),
        (
            "bad Connection",
            b"HTTP/1.1 200 OK\r\nConnection: a b\r\n\r\n",
            Malformed,
        ),
    ];
    for (name, wire, expected) in table {
        assert_eq!(kind(wire), *expected, "{name}");
    }
}

#[test]
fn incomplete_and_too_large() {
    let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
    for i in 0..wire.len() - 3 {
        assert!(matches!(parse(&wire[..i]), Ok(None)), "prefix {i}");
    }
    let lim = HeadLimits {
        max_head_bytes: 10,
        max_headers: 4,
    };
    assert_eq!(parse_response(wire, &lim).unwrap_err().kind, HeadTooLarge);
}

/// The response framing table (RFC 9112 §6.3).
#[test]
fn response_framing() {
    use BodyKind::*;
    type Row = (
        &'static str,
        Method,
        u16,
        &'static [u8],
        Result<BodyKind, ParseErrorKind>,
    );
    let cl = b"Content-Length: 10\r\n";
    let te = b"Transfer-Encoding: chunked\r\n";
    let table: &[Row] = &[
        ("200 plain", Method::Get, 200, b"", Ok(UntilClose)),
        ("200 CL", Method::Get, 200, cl, Ok(Length(10))),
        ("200 TE", Method::Get, 200, te, Ok(Chunked)),
        ("HEAD CL", Method::Head, 200, cl, Ok(Empty)),
        ("HEAD TE", Method::Head, 200, te, Ok(Empty)),
        ("HEAD none", Method::Head, 200, b"", Ok(Empty)),
        ("100", Method::Get, 100, b"", Ok(Empty)),
        ("101", Method::Get, 101, b"", Ok(Empty)),
        ("103", Method::Get, 103, b"", Ok(Empty)),
        ("204 CL", Method::Get, 204, cl, Ok(Empty)),
        ("304 CL", Method::Get, 304, cl, Ok(Empty)),
        ("304 TE", Method::Get, 304, te, Ok(Empty)),
        ("CONNECT 200", Method::Connect, 200, b"", Ok(Empty)),
        ("CONNECT 200 CL", Method::Connect, 200, cl, Ok(Empty)),
        ("CONNECT 407", Method::Connect, 407, cl, Ok(Length(10))),
        ("POST 201", Method::Post, 201, b"", Ok(UntilClose)),
        (
            "CL+TE",
            Method::Get,
            200,
            b"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n",
            Err(BadFraming),
        ),
        (
            "CL+TE HEAD",
            Method::Head,
            200,
            b"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n",
            Err(BadFraming),
        ),
        (
            "CL+TE 304",
            Method::Get,
            304,
            b"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n",
            Err(BadFraming),
        ),
        (
            "CL differ",
            Method::Get,
            200,
            b"Content-Length: 1\r\nContent-Length: 2\r\n",
            Err(BadFraming),
        ),
        (
            "CL same",
            Method::Get,
            200,
            b"Content-Length: 2\r\nContent-Length: 2\r\n",
            Ok(Length(2)),
        ),
        (
            "CL bad",
            Method::Get,
            200,
            b"Content-Length: 1.0\r\n",
            Err(BadFraming),
        ),
        (
            "TE gzip",
            Method::Get,
            200,
            b"Transfer-Encoding: gzip\r\n",
            Err(BadFraming),
        ),
        (
            "TE chunked,gzip",
            Method::Get,
            200,
            b"Transfer-Encoding: chunked, gzip\r\n",
            Err(BadFraming),
        ),
        (
            "TE gzip,chunked",
            Method::Get,
            200,
            b"Transfer-Encoding: gzip, chunked\r\n",
            Ok(Chunked),
        ),
        (
            "Conn names CL",
            Method::Get,
            200,
            b"Connection: content-length\r\n",
            Err(BadFraming),
        ),
    ];
    for (name, method, status, fields, expected) in table {
        let mut wire = format!("HTTP/1.1 {status} X\r\n").into_bytes();
        wire.extend_from_slice(fields);
        wire.extend_from_slice(b"\r\n");
        let got = head(&wire).body_kind(method).map_err(|e| e.kind);
        assert_eq!(got, *expected, "{name}");
    }
    let h10 = head(b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(h10.body_kind(&Method::Get).unwrap_err().kind, BadFraming);
    let h10 = head(b"HTTP/1.0 200 OK\r\n\r\n");
    assert_eq!(h10.body_kind(&Method::Get), Ok(UntilClose));
    assert!(!h10.wants_keep_alive());
}

#[test]
fn connection_and_keep_alive() {
    let h = head(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
    assert!(h.conn.close && !h.wants_keep_alive());
    let h = head(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n");
    assert!(h.conn.keep_alive && h.wants_keep_alive());
    let h = head(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    );
    assert!(h.conn.upgrade && h.is_informational());
}
