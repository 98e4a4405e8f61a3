//! Wire-byte tables for request heads: what `httparse` accepts and where we tighten it, bare
//! LF, limits, Expect and Connection handling (the smuggling table is in `framing/tests.rs`).

use super::super::{BodyKind, HeadLimits, MAX_HEADERS_CAP, ParseErrorKind, Version};
use super::*;
use ParseErrorKind::*;

fn parse(wire: &[u8]) -> Result<Option<(RequestHead, usize)>, ParseError> {
    parse_request(wire, &HeadLimits::default())
}

/// Parses a complete head that must span all of `wire`.
fn head(wire: &[u8]) -> RequestHead {
    match parse(wire) {
        Ok(Some((h, n))) => {
            assert_eq!(
                n,
                wire.len(),
                "head length for {:?}",
                String::from_utf8_lossy(wire)
            );
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
fn basic_request() {
    let wire = b"GET http://example.com/a?b HTTP/1.1\r\nHost: example.com\r\nX-A: 1\r\n\r\nBODY";
    let (h, n) = parse(wire).unwrap().unwrap();
    assert_eq!(&wire[n..], b"BODY");
    assert_eq!(h.method, Method::Get);
    assert_eq!(h.method_str(), "GET");
    assert_eq!(h.target(), b"http://example.com/a?b");
    assert_eq!(h.version, Version::Http11);
    assert_eq!(h.body, BodyKind::Empty);
    assert_eq!(h.headers.len(), 2);
    assert_eq!(h.headers.get("x-a"), Some(&b"1"[..]));
    assert!(h.wants_keep_alive());
    assert!(!h.expect_continue && !h.expect_unsupported());
}

#[test]
fn methods() {
    let table: &[(&str, Method, bool)] = &[
        ("GET", Method::Get, true),
        ("HEAD", Method::Head, true),
        ("POST", Method::Post, false),
        ("PUT", Method::Put, true),
        ("DELETE", Method::Delete, true),
        ("OPTIONS", Method::Options, true),
        ("PATCH", Method::Patch, false),
        ("CONNECT", Method::Connect, false),
        ("TRACE", Method::Trace, true),
        ("PROPFIND", Method::Other, false),
        ("get", Method::Other, false),
        ("M-SEARCH", Method::Other, false),
    ];
    for (m, expected, idempotent) in table {
        let wire = format!("{m} / HTTP/1.1\r\n\r\n");
        let h = head(wire.as_bytes());
        assert_eq!(&h.method, expected, "{m}");
        assert_eq!(h.method_str(), *m);
        assert_eq!(h.method.is_idempotent(), *idempotent, "{m}");
    }
}

#[test]
fn incomplete_prefixes_are_none() {
    let wire = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n";
    for i in 0..wire.len() {
        assert!(matches!(parse(&wire[..i]), Ok(None)), "prefix {i}");
    }
    assert!(parse(wire).unwrap().is_some());
}

/// Bare LF line endings are accepted (RFC 9112 §2.2 lets a recipient recognise LF alone).
/// This is safe because heads are never forwarded as received: they are re-serialized with
/// CRLF, so no downstream parser ever sees our interpretation disagree with its own.
#[test]
fn bare_lf_line_endings_are_accepted() {
    for wire in [
        &b"GET / HTTP/1.1\nHost: a\n\n"[..],
        b"GET / HTTP/1.1\r\nHost: a\n\r\n",
        b"GET / HTTP/1.1\nHost: a\r\n\n",
    ] {
        let h = head(wire);
        assert_eq!(h.headers.get("host"), Some(&b"a"[..]));
    }
}

#[test]
fn leading_empty_lines_are_skipped_and_counted() {
    let wire = b"\r\n\r\nGET / HTTP/1.1\r\n\r\n";
    let h = head(wire);
    assert_eq!(h.target(), b"/");
}

/// Syntax `httparse` must reject (or we must): every row is a complete head.
#[test]
fn malformed_heads() {
    let table: &[(&str, &[u8], ParseErrorKind)] = &[
        (
            "obs-fold SP",
            b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
            Malformed,
        ),
        (
            "obs-fold HTAB",
            b"GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n",
            Malformed,
        ),
        (
            "space first line",
            b"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
            Malformed,
        ),
        (
            "bare CR in value",
            b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
            Malformed,
        ),
        ("CR CR LF", b"GET / HTTP/1.1\r\nX: a\r\r\n\r\n", Malformed),
        (
            "bare CR ends head",
            b"GET / HTTP/1.1\r\nX: a\r\n\rX\r\n",
            Malformed,
        ),
        (
            "bare CR line end",
            b"GET / HTTP/1.1\rX: a\r\n\r\n",
            Malformed,
        ),
        (
            "NUL in value",
            b"GET / HTTP/1.1\r\nX: a\0b\r\n\r\n",
            Malformed,
        ),
        (
            "SOH in value",
            b"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n",
            Malformed,
        ),
        (
            "DEL in value",
            b"GET / HTTP/1.1\r\nX: a\x7fb\r\n\r\n",
            Malformed,
        ),
        (
            "VT in value",
            b"GET / HTTP/1.1\r\nX: \x0b\r\n\r\n",
            Malformed,
        ),
        (
            "space before colon",
            b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            Malformed,
        ),
        (
            "tab before colon",
            b"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n",
            Malformed,
        ),
        (
            "paren in name",
            b"GET / HTTP/1.1\r\nX(: a\r\n\r\n",
            Malformed,
        ),
        ("at in name", b"GET / HTTP/1.1\r\nX@Y: a\r\n\r\n", Malformed),
        (
            "slash in name",
            b"GET / HTTP/1.1\r\nX/Y: a\r\n\r\n",
            Malformed,
        ),
        (
            "obs-text in name",
            b"GET / HTTP/1.1\r\nX\x80: a\r\n\r\n",
            Malformed,
        ),
        ("empty name", b"GET / HTTP/1.1\r\n: a\r\n\r\n", Malformed),
        ("no colon", b"GET / HTTP/1.1\r\nFoo\r\n\r\n", Malformed),
        ("double SP", b"GET  / HTTP/1.1\r\n\r\n", Malformed),
        ("trailing SP", b"GET / HTTP/1.1 \r\n\r\n", Malformed),
        ("tab delimiter", b"GET\t/ HTTP/1.1\r\n\r\n", Malformed),
        ("CTL in target", b"GET /\x01 HTTP/1.1\r\n\r\n", Malformed),
        ("bad utf-8 target", b"GET /\xff HTTP/1.1\r\n\r\n", Malformed),
        ("no version", b"GET /\r\n\r\n", Malformed),
        ("bad method", b"G(T / HTTP/1.1\r\n\r\n", Malformed),
        ("lowercase version", b"GET / http/1.1\r\n\r\n", Malformed),
        ("garbage version", b"GET / FOO/1.1\r\n\r\n", Malformed),
        ("short version", b"GET / HTTP/1\r\n\r\n", Malformed),
        ("HTTP/1.2", b"GET / HTTP/1.2\r\n\r\n", UnsupportedVersion),
        ("HTTP/2.0", b"GET / HTTP/2.0\r\n\r\n", UnsupportedVersion),
        ("HTTP/0.9", b"GET / HTTP/0.9\r\n\r\n", UnsupportedVersion),
        ("space in target", b"GET /a b HTTP/1.1\r\n\r\n", Malformed),
        (
            "space in target, 1.0",
            b"GET /a b HTTP/1.0\r\n\r\n",
            Malformed,
        ),
        (
            "space in target, 2.0",
            b"GET /a b HTTP/2.0\r\n\r\n",
            Malformed,
        ),
        (
            "two Host",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
            Malformed,
        ),
        (
            "two Host cased",
            b"GET / HTTP/1.1\r\nHost: a\r\nhOST: b\r\n\r\n",
            Malformed,
        ),
        (
            "bad Connection",
            b"GET / HTTP/1.1\r\nConnection: close;x\r\n\r\n",
            Malformed,
        ),
        (
            "Connection quote",
            b"GET / HTTP/1.1\r\nConnection: \"close\"\r\n\r\n",
            Malformed,
        ),
    ];
    for (name, wire, expected) in table {
        assert_eq!(kind(wire), *expected, "{name}");
    }
}

#[test]
fn control_bytes_in_long_values_are_rejected() {
    // Long enough for httparse's SIMD value scanner.
    for bad in [0u8, 0x01, 0x08, 0x0b, 0x1f, 0x7f] {
        let mut wire = b"GET / HTTP/1.1\r\nX: ".to_vec();
        wire.extend(std::iter::repeat_n(b'a', 70));
        wire.push(bad);
        wire.extend(std::iter::repeat_n(b'b', 70));
        wire.extend_from_slice(b"\r\n\r\n");
        assert_eq!(kind(&wire), Malformed, "byte {bad:#x}");
    }
    let mut ok = b"GET / HTTP/1.1\r\nX: ".to_vec();
    ok.extend(std::iter::repeat_n(b'a', 70));
    ok.extend_from_slice("\té\u{80} ~".as_bytes());
    ok.extend_from_slice(b"\r\n\r\n");
    assert_eq!(head(&ok).headers.len(), 1);
}

#[test]
fn values_are_ows_trimmed_and_byte_exact() {
    let h = head(b"GET / HTTP/1.1\r\nX-A:   a  b \t\r\nX-Empty:\r\nX-Sp: \r\n\r\n");
    let all: Vec<_> = h.headers.iter().collect();
    assert_eq!(
        all,
        vec![
            (&b"X-A"[..], &b"a  b"[..]),
            (&b"X-Empty"[..], &b""[..]),
            (&b"X-Sp"[..], &b""[..])
        ]
    );
}

#[test]
fn http10_framing() {
    let h = head(b"POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\n");
    assert_eq!((h.version, h.body), (Version::Http10, BodyKind::Length(2)));
    assert_eq!(
        kind(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
        BadFraming
    );
    assert!(!h.wants_keep_alive());
    assert!(head(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").wants_keep_alive());
}

#[test]
fn expect() {
    let table: &[(&[u8], bool, bool)] = &[
        (b"GET / HTTP/1.1\r\n\r\n", false, false),
        (
            b"PUT / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            true,
            false,
        ),
        (
            b"PUT / HTTP/1.1\r\nExpect: 100-Continue\r\n\r\n",
            true,
            false,
        ),
        (b"PUT / HTTP/1.1\r\nExpect: gzip\r\n\r\n", false, true),
        (
            b"PUT / HTTP/1.1\r\nExpect: 100-continue, x\r\n\r\n",
            false,
            true,
        ),
        (b"PUT / HTTP/1.1\r\nExpect:\r\n\r\n", false, false),
        (
            b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n",
            false,
            false,
        ),
        (b"PUT / HTTP/1.0\r\nExpect: other\r\n\r\n", false, false),
    ];
    for (wire, cont, unsupported) in table {
        let h = head(wire);
        assert_eq!(
            (h.expect_continue, h.expect_unsupported()),
            (*cont, *unsupported)
        );
    }
}

#[test]
fn connection_tokens() {
    let h = head(
        b"GET / HTTP/1.1\r\nConnection: Keep-Alive , Upgrade,,X-Foo\r\nConnection: close\r\n\r\n",
    );
    assert!(h.conn.close && h.conn.keep_alive && h.conn.upgrade);
    assert_eq!(
        h.conn.other_tokens().collect::<Vec<_>>(),
        vec![&b"x-foo"[..]]
    );
    assert!(h.conn.names(b"X-FOO") && h.conn.names(b"upgrade") && !h.conn.names(b"x-bar"));
    assert!(!h.wants_keep_alive());
    // Tokens naming always-stripped fields are not stored.
    let h = head(b"GET / HTTP/1.1\r\nConnection: TE, Proxy-Connection\r\n\r\n");
    assert_eq!(h.conn.other_tokens().count(), 0);
}

#[test]
fn limits() {
    let wire = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    let tight = |max_head_bytes, max_headers| {
        parse_request(
            wire,
            &HeadLimits {
                max_head_bytes,
                max_headers,
            },
        )
        .map_err(|e| e.kind)
    };
    assert!(tight(wire.len(), 3).unwrap().is_some());
    assert_eq!(tight(wire.len(), 2).unwrap_err(), TooManyHeaders);
    assert_eq!(tight(wire.len() - 1, 3).unwrap_err(), HeadTooLarge);
    assert_eq!(tight(wire.len(), 0).unwrap_err(), TooManyHeaders);
    // Partial below the limit is None; at the limit it is HeadTooLarge.
    let partial = &wire[..20];
    let lim = |m| HeadLimits {
        max_head_bytes: m,
        max_headers: 10,
    };
    assert!(matches!(parse_request(partial, &lim(21)), Ok(None)));
    assert_eq!(
        parse_request(partial, &lim(20)).unwrap_err().kind,
        HeadTooLarge
    );
    // max_headers above the cap is clamped, not a panic.
    let huge = HeadLimits {
        max_head_bytes: 1 << 20,
        max_headers: usize::MAX,
    };
    assert!(parse_request(wire, &huge).unwrap().is_some());
    let mut many = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..=MAX_HEADERS_CAP {
        many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(
        parse_request(&many, &huge).unwrap_err().kind,
        TooManyHeaders
    );
}

#[test]
fn garbage_never_panics() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let alphabet = b"GET / HTTP/1.1\r\n:;, \tHost\x00\x7f\x80chunkedContent-Length0123456789";
    for _ in 0..20_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 64) as usize;
        let wire: Vec<u8> = (0..len)
            .map(|i| alphabet[((seed >> (i % 50)) as usize + i * 7) % alphabet.len()])
            .collect();
        let _ = parse(&wire);
    }
}
