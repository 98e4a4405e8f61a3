//! Serialization tables: exact output bytes for forwarded requests/responses, hop-by-hop
//! stripping (static list and Connection-named fields), upgrades, simple and interim responses.

use super::super::{HeadLimits, parse_request, parse_response};
use super::*;

fn req(wire: &[u8]) -> RequestHead {
    parse_request(wire, &HeadLimits::default())
        .unwrap()
        .unwrap()
        .0
}

fn res(wire: &[u8]) -> ResponseHead {
    parse_response(wire, &HeadLimits::default())
        .unwrap()
        .unwrap()
        .0
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

#[test]
fn request_rewrite() {
    let head = req(b"POST http://Ex.com:8080/p?q HTTP/1.1\r\n\
        host: wrong\r\n\
        User-Agent: t\r\n\
        Connection: keep-alive, X-Hop\r\n\
        X-Hop: 1\r\n\
        Keep-Alive: 300\r\n\
        Proxy-Connection: keep-alive\r\n\
        Proxy-Authorization: Basic eA==\r\n\
        TE: trailers\r\n\
        Trailer: X-T\r\n\
        Upgrade: h2c\r\n\
        Transfer-Encoding: gzip, chunked\r\n\
        Via: 1.0 other\r\n\
        x-CASE:  Exact Value\r\n\r\n");
    let rw = RequestRewrite {
        path: b"/p?q",
        host: b"Ex.com:8080",
        via: b"1.1 lynxio",
        keep_upgrade: false,
    };
    let mut out = b"PREFIX".to_vec();
    write_request(&mut out, &head, &rw);
    let expected = "PREFIXPOST /p?q HTTP/1.1\r\n\
        Host: Ex.com:8080\r\n\
        User-Agent: t\r\n\
        Transfer-Encoding: gzip, chunked\r\n\
        Via: 1.0 other\r\n\
        x-CASE:  Exact Value\r\n\
        Via: 1.1 lynxio\r\n\r\n";
    assert_eq!(text(&out), expected);
    // The output is itself a valid head with the same framing.
    let again = req(&out[6..]);
    assert_eq!(again.body, head.body);
}

/// Lines received as `name:` OWS `value` CRLF are copied verbatim (OWS kept); anything else
/// (bare LF, trailing whitespace, pushed fields, empty values) is rebuilt as `name: value` CRLF.
#[test]
fn field_lines_verbatim_or_rebuilt() {
    let mut head = req(b"GET / HTTP/1.1\n\
        A:1\r\n\
        B:\t2\n\
        C: 3 \t\r\n\
        D:\r\n\
        E:  5\r\n\
        Connection: x-gone\r\n\
        X-Gone: 1\r\n\
        F: 6\r\n\r\n");
    head.headers.push(b"G", b"7");
    head.headers.push(b"H", b": 8");
    head.headers.remove("e");
    let mut out = Vec::new();
    let rw = RequestRewrite {
        path: b"/",
        host: b"h",
        via: b"v",
        keep_upgrade: false,
    };
    write_request(&mut out, &head, &rw);
    let expected = "GET / HTTP/1.1\r\nHost: h\r\nA:1\r\nB: 2\r\nC: 3\r\nD: \r\nF: 6\r\n\
        G: 7\r\nH: : 8\r\nVia: v\r\n\r\n";
    assert_eq!(text(&out), expected);
}

#[test]
fn request_http10_becomes_http11_without_keep_alive() {
    let head =
        req(b"GET http://a/ HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n");
    let mut out = Vec::new();
    let rw = RequestRewrite {
        path: b"/",
        host: b"a",
        via: b"",
        keep_upgrade: false,
    };
    write_request(&mut out, &head, &rw);
    assert_eq!(
        text(&out),
        "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"
    );
}

#[test]
fn request_websocket_upgrade_kept() {
    let head = req(
        b"GET /chat HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n\
        Upgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n",
    );
    let mut out = Vec::new();
    let rw = RequestRewrite {
        path: b"/chat",
        host: b"h",
        via: b"1.1 lynxio",
        keep_upgrade: true,
    };
    write_request(&mut out, &head, &rw);
    let expected = "GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\
        Via: 1.1 lynxio\r\nConnection: upgrade\r\n\r\n";
    assert_eq!(text(&out), expected);
    // Without keep_upgrade both go.
    out.clear();
    let rw = RequestRewrite {
        keep_upgrade: false,
        ..rw
    };
    write_request(&mut out, &head, &rw);
    assert!(!text(&out).contains("pgrade"));
}

#[test]
fn request_other_method_bytes_exact() {
    let head = req(b"PROPFIND /x HTTP/1.1\r\nHost: h\r\n\r\n");
    let mut out = Vec::new();
    let rw = RequestRewrite {
        path: b"/x",
        host: b"h",
        via: b"",
        keep_upgrade: false,
    };
    write_request(&mut out, &head, &rw);
    assert_eq!(text(&out), "PROPFIND /x HTTP/1.1\r\nHost: h\r\n\r\n");
}

#[test]
fn response_rewrite_table() {
    let wire = b"HTTP/1.1 200 Fine\r\nContent-Type: text/html\r\nConnection: close, X-Secret\r\n\
        X-Secret: s\r\nKeep-Alive: timeout=1\r\nTransfer-Encoding: chunked\r\nUpgrade: x\r\n\r\n";
    let head = res(wire);
    let table: &[(ConnectionHeader, bool, &str)] = &[
        (
            ConnectionHeader::None,
            false,
            "HTTP/1.1 200 Fine\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\
             Via: 1.1 lynxio\r\n\r\n",
        ),
        (
            ConnectionHeader::KeepAlive,
            false,
            "HTTP/1.1 200 Fine\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\
             Via: 1.1 lynxio\r\nConnection: keep-alive\r\n\r\n",
        ),
        (
            ConnectionHeader::Close,
            true,
            "HTTP/1.1 200 Fine\r\nContent-Type: text/html\r\n\
             Via: 1.1 lynxio\r\nConnection: close\r\n\r\n",
        ),
    ];
    for (connection, strip_te, expected) in table {
        let mut out = Vec::new();
        let rw = ResponseRewrite {
            via: b"1.1 lynxio",
            connection: *connection,
            strip_transfer_encoding: *strip_te,
            keep_upgrade: false,
        };
        write_response(&mut out, &head, &rw);
        assert_eq!(text(&out), *expected, "{connection:?}");
    }
}

#[test]
fn response_http10_and_empty_reason() {
    let head = res(b"HTTP/1.0 204\r\nX: y\r\n\r\n");
    let mut out = Vec::new();
    let rw = ResponseRewrite {
        via: b"",
        connection: ConnectionHeader::Close,
        strip_transfer_encoding: false,
        keep_upgrade: false,
    };
    write_response(&mut out, &head, &rw);
    assert_eq!(
        text(&out),
        "HTTP/1.1 204 \r\nX: y\r\nConnection: close\r\n\r\n"
    );
}

#[test]
fn response_switching_protocols() {
    let head = res(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\
        Upgrade: websocket\r\nSec-WebSocket-Accept: a\r\n\r\n",
    );
    let mut out = Vec::new();
    let rw = ResponseRewrite {
        via: b"1.1 lynxio",
        connection: ConnectionHeader::None,
        strip_transfer_encoding: false,
        keep_upgrade: true,
    };
    write_response(&mut out, &head, &rw);
    let expected = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
        Sec-WebSocket-Accept: a\r\nVia: 1.1 lynxio\r\nConnection: upgrade\r\n\r\n";
    assert_eq!(text(&out), expected);
}

#[test]
fn response_reason_with_obs_text_is_byte_exact() {
    let head = res(b"HTTP/1.1 200 \xe9t\xe9\r\n\r\n");
    let mut out = Vec::new();
    write_interim(&mut out, &head);
    assert_eq!(out, b"HTTP/1.1 200 \xe9t\xe9\r\n\r\n");
}

#[test]
fn interim() {
    let head = res(
        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\
        Connection: keep-alive\r\nKeep-Alive: 5\r\n\r\n",
    );
    let mut out = Vec::new();
    write_interim(&mut out, &head);
    assert_eq!(
        text(&out),
        "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
    );
    out.clear();
    write_interim(&mut out, &res(b"HTTP/1.1 100 Continue\r\n\r\n"));
    assert_eq!(text(&out), "HTTP/1.1 100 Continue\r\n\r\n");
}

/// lynxio's plain-text answers (errors): the reason is sanitised, the body framed exactly.
#[test]
fn simple_responses() {
    let table: &[(u16, &str, &str, bool, &str)] = &[
        (
            502,
            "Bad Gateway",
            "upstream refused",
            true,
            "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 17\r\nConnection: close\r\n\r\nupstream refused\n",
        ),
        (
            417,
            "Expectation Failed",
            "",
            false,
            "HTTP/1.1 417 Expectation Failed\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 1\r\n\r\n\n",
        ),
        (
            400,
            "Bad\r\nX: y",
            "é",
            false,
            "HTTP/1.1 400 BadX: y\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 3\r\n\r\né\n",
        ),
    ];
    for (status, reason, body, close, expected) in table {
        let mut out = Vec::new();
        let text_body = format!("{body}\n");
        write_local_response(
            &mut out,
            &LocalResponse {
                status: *status,
                reason,
                content_type: b"text/plain; charset=utf-8",
                extra: &[],
                body: text_body.as_bytes(),
                close: *close,
                head_only: false,
            },
        );
        assert_eq!(text(&out), *expected);
        let parsed = res(&out);
        assert_eq!(parsed.status, *status);
    }
}

#[test]
fn reason_phrases() {
    let table: &[(u16, &str)] = &[
        (400, "Bad Request"),
        (403, "Forbidden"),
        (404, "Not Found"),
        (405, "Method Not Allowed"),
        (408, "Request Timeout"),
        (411, "Length Required"),
        (413, "Content Too Large"),
        (417, "Expectation Failed"),
        (431, "Request Header Fields Too Large"),
        (500, "Internal Server Error"),
        (501, "Not Implemented"),
        (502, "Bad Gateway"),
        (503, "Service Unavailable"),
        (504, "Gateway Timeout"),
        (505, "HTTP Version Not Supported"),
        (200, "OK"),
        (299, ""),
    ];
    for (status, phrase) in table {
        assert_eq!(reason_phrase(*status), *phrase, "{status}");
    }
}

#[test]
fn decimal() {
    for n in [0u64, 7, 10, 65535, u64::MAX] {
        let mut out = Vec::new();
        push_decimal(&mut out, n);
        assert_eq!(text(&out), n.to_string());
    }
}

#[test]
fn identical_content_lengths_are_folded_into_one_field() {
    let rw = RequestRewrite {
        path: b"/",
        host: b"h",
        via: b"",
        keep_upgrade: false,
    };
    for wire in [
        &b"POST http://h/ HTTP/1.1\r\nContent-Length: 5, 5\r\nX: y\r\n\r\n"[..],
        &b"POST http://h/ HTTP/1.1\r\nContent-Length: 5\r\nX: y\r\ncontent-length: 5\r\n\r\n"[..],
    ] {
        let mut out = Vec::new();
        write_request(&mut out, &req(wire), &rw);
        assert_eq!(
            text(&out),
            "POST / HTTP/1.1\r\nHost: h\r\nX: y\r\nContent-Length: 5\r\n\r\n"
        );
    }
    // A single plain field is forwarded untouched, in place.
    let mut out = Vec::new();
    write_request(
        &mut out,
        &req(b"POST http://h/ HTTP/1.1\r\ncontent-length: 5\r\nX: y\r\n\r\n"),
        &rw,
    );
    assert_eq!(
        text(&out),
        "POST / HTTP/1.1\r\nHost: h\r\ncontent-length: 5\r\nX: y\r\n\r\n"
    );

    let mut out = Vec::new();
    let rrw = ResponseRewrite {
        via: b"",
        connection: ConnectionHeader::None,
        strip_transfer_encoding: false,
        keep_upgrade: false,
    };
    write_response(
        &mut out,
        &res(b"HTTP/1.1 200 OK\r\nContent-Length: 7,7\r\n\r\n"),
        &rrw,
    );
    assert_eq!(text(&out), "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n");
}
