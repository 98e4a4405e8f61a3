//! HTTP/1 request-line tables: requests that must be recognised (and the exact byte where they
//! are), prefixes that need more, and other protocols and malformed lines that must not be.

use super::*;

const FOUND: [&[u8]; 14] = [
    b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    b"GET http://example.com/a?b=c HTTP/1.1\r\n",
    b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    b"CONNECT [::1]:443 HTTP/1.1\r\n",
    b"CONNECT 127.0.0.1:22 HTTP/1.1\r\n",
    b"OPTIONS * HTTP/1.1\r\n",
    b"POST /upload HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
    b"PROPFIND /dav/ HTTP/1.1\r\n",
    b"M-SEARCH * HTTP/1.1\r\n",
    // Methods are case-sensitive tokens: `get` is a valid (unknown) method, not GET.
    b"get / HTTP/1.1\r\n",
    b"\r\nGET / HTTP/1.1\r\n",
    b"\n\r\n\nGET / HTTP/1.1\r\n",
    b"GET /caf\xc3\xa9 HTTP/1.1\r\n",
    b"GET /chat HTTP/1.1\r\nHost: ws.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
      Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
];

const NOT_THIS: [&[u8]; 22] = [
    // The h2c connection preface is HTTP/2, not HTTP/1.
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"SSH-2.0-OpenSSH_9.6\r\n",
    b"\x16\x03\x01\x02\x00",
    b"\x00\xff\x13\x37",
    b"EHLO mail.example\r\n",
    b"GET /\r\n",
    b"GET / HTTP/2\r\n",
    b"GET / HTTP/1,1",
    b"GET / http/1.1",
    b"GET / FOO/1.1",
    b"GET  / HTTP/1.1",
    b"GET /a b HTTP/1.1",
    b"GET /\tx HTTP/1.1",
    b"GET /\x7f HTTP/1.1",
    b"GET \"/\" HTTP/1.1",
    b" GET / HTTP/1.1",
    b"\rGET / HTTP/1.1",
    b"\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1",
    b"G(T / HTTP/1.1",
    b"GET\t/ HTTP/1.1",
    b"GET:/ HTTP/1.1",
    b"{\"jsonrpc\": \"2.0\"}",
];

#[test]
fn requests_are_found() {
    for input in FOUND {
        assert_eq!(
            request(input),
            Detect::Found(()),
            "{}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn found_exactly_at_the_version_prefix() {
    for input in FOUND {
        let at = input
            .windows(VERSION_PREFIX.len())
            .position(|w| w == VERSION_PREFIX)
            .expect("version in request")
            + VERSION_PREFIX.len();
        for cut in 0..at {
            assert_eq!(request(&input[..cut]), Detect::NeedMore, "{cut}");
        }
        for cut in at..=input.len() {
            assert_eq!(request(&input[..cut]), Detect::Found(()), "{cut}");
        }
    }
}

#[test]
fn others_are_not_this() {
    for input in NOT_THIS {
        assert_eq!(
            request(input),
            Detect::NotThis,
            "{}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn not_this_never_turns_back() {
    for input in NOT_THIS {
        let mut decided = false;
        for cut in 0..=input.len() {
            let got = request(&input[..cut]);
            assert_ne!(got, Detect::Found(()));
            decided |= got == Detect::NotThis;
            assert!(!decided || got == Detect::NotThis, "{cut}");
        }
    }
}

#[test]
fn method_length_bound() {
    let longest = "A".repeat(MAX_METHOD_BYTES);
    let line = format!("{longest} / HTTP/1.1\r\n");
    assert_eq!(request(line.as_bytes()), Detect::Found(()));
    assert_eq!(request(longest.as_bytes()), Detect::NeedMore);
    let too_long = "A".repeat(MAX_METHOD_BYTES + 1);
    assert_eq!(request(too_long.as_bytes()), Detect::NotThis);
    assert_eq!(
        request(format!("{too_long} / HTTP/1.1").as_bytes()),
        Detect::NotThis
    );
}

#[test]
fn long_targets_decide_without_the_version() {
    let path = "a".repeat(HTTP_DECIDE_TARGET_BYTES - 1);
    assert_eq!(
        request(format!("GET /{path}").as_bytes()),
        Detect::Found(())
    );
    assert_eq!(
        request(format!("GET /{}", &path[1..]).as_bytes()),
        Detect::NeedMore
    );
    assert_eq!(request(format!("x /{path}").as_bytes()), Detect::Found(()));
}

#[test]
fn leading_empty_lines_are_bounded() {
    let ok = format!(
        "{}GET / HTTP/1.1",
        "\r\n".repeat(MAX_LEADING_NEWLINE_BYTES / 2)
    );
    assert_eq!(request(ok.as_bytes()), Detect::Found(()));
    let ok = format!("{}GET / HTTP/1.1", "\n".repeat(MAX_LEADING_NEWLINE_BYTES));
    assert_eq!(request(ok.as_bytes()), Detect::Found(()));
    let too_many = "\n".repeat(MAX_LEADING_NEWLINE_BYTES + 1);
    assert_eq!(request(too_many.as_bytes()), Detect::NotThis);
    assert_eq!(request(b"\r"), Detect::NeedMore);
    assert_eq!(request(b"\r\n\r"), Detect::NeedMore);
}

#[test]
fn short_prefixes() {
    for input in [
        &b""[..],
        b"G",
        b"GET",
        b"GET ",
        b"GET /",
        b"GET / ",
        b"GET / HTTP/1",
    ] {
        assert_eq!(
            request(input),
            Detect::NeedMore,
            "{}",
            String::from_utf8_lossy(input)
        );
    }
}
