//! Fuzzes `lynxio::http1::parse_response` on arbitrary bytes. Besides "never panics":
//! - a complete head's length is within the input and the limit, its status is 100..=599, and
//!   every proper prefix of it is incomplete (`Ok(None)`);
//! - the limits are exact (same head at `max_head_bytes` = its length and `max_headers` = its
//!   field count; one less of either is refused with that limit's kind);
//! - `body_kind` answers for every request method without panicking, and bodiless cases
//!   (HEAD, 1xx, 204, 304, 2xx to CONNECT) are `Empty` whenever framing is valid;
//! - what the proxy would forward (`write_response`, Via and `Connection: keep-alive` added)
//!   parses again whole, with the same status, the same body framing for a GET and the reason
//!   minus control characters.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lynxio::http1::{
    BodyKind, ConnectionHeader, HeadLimits, MAX_HEADERS_CAP, Method, ParseErrorKind,
    ResponseRewrite, Version, parse_response, write_response,
};

const METHODS: [Method; 10] = [
    Method::Get,
    Method::Head,
    Method::Post,
    Method::Put,
    Method::Delete,
    Method::Options,
    Method::Patch,
    Method::Connect,
    Method::Trace,
    Method::Other,
];

fuzz_target!(|data: &[u8]| {
    let limits = HeadLimits::default();
    let Ok(Some((head, n))) = parse_response(data, &limits) else {
        return;
    };
    assert!(n <= data.len() && n <= limits.max_head_bytes);
    assert!((100..=599).contains(&head.status));
    for cut in [0, n / 2, n - 1] {
        assert!(
            matches!(parse_response(&data[..cut], &limits), Ok(None)),
            "prefix {cut} of an accepted {n}-byte head is not incomplete"
        );
    }
    let exact = HeadLimits {
        max_head_bytes: n,
        max_headers: head.headers.len(),
    };
    match parse_response(data, &exact) {
        Ok(Some((_, m))) => assert_eq!(m, n),
        other => panic!("exact limits refused the head: {other:?}"),
    }
    match parse_response(
        data,
        &HeadLimits {
            max_head_bytes: n - 1,
            ..exact
        },
    ) {
        Err(e) => assert_eq!(e.kind, ParseErrorKind::HeadTooLarge),
        other => panic!("max_head_bytes {} accepted: {other:?}", n - 1),
    }
    if let Some(fewer) = head.headers.len().checked_sub(1) {
        match parse_response(
            data,
            &HeadLimits {
                max_headers: fewer,
                ..exact
            },
        ) {
            Err(e) => assert_eq!(e.kind, ParseErrorKind::TooManyHeaders),
            other => panic!("max_headers {fewer} accepted: {other:?}"),
        }
    }

    for m in &METHODS {
        let kind = head.body_kind(m);
        let bodiless = *m == Method::Head
            || head.status < 200
            || head.status == 204
            || head.status == 304
            || (*m == Method::Connect && (200..300).contains(&head.status));
        if bodiless && let Ok(k) = kind {
            assert_eq!(k, BodyKind::Empty, "{m:?} {}", head.status);
        }
    }
    let _ = head.wants_keep_alive();
    let _ = head.accepts_websocket();

    let Ok(get_body) = head.body_kind(&Method::Get) else {
        return;
    };
    let mut out = Vec::new();
    let rw = ResponseRewrite {
        via: b"1.1 lynxio",
        connection: ConnectionHeader::KeepAlive,
        strip_transfer_encoding: false,
        keep_upgrade: false,
    };
    write_response(&mut out, &head, &rw);
    let limits = HeadLimits {
        max_head_bytes: out.len() + 1,
        max_headers: MAX_HEADERS_CAP,
    };
    let again = match parse_response(&out, &limits) {
        Ok(Some((again, m))) => {
            assert_eq!(m, out.len(), "forwarded head not consumed whole");
            again
        }
        other => panic!(
            "forwarded head refused: {other:?}\n{}",
            String::from_utf8_lossy(&out)
        ),
    };
    assert_eq!(again.status, head.status);
    assert_eq!(again.version, Version::Http11);
    assert_eq!(
        again.body_kind(&Method::Get),
        Ok(get_body),
        "framing changed when forwarded"
    );
    assert!(again.conn.keep_alive && !again.conn.close && !again.conn.upgrade);
    assert_eq!(again.conn.other_tokens().count(), 0);
    let reason: Vec<u8> = head
        .reason()
        .iter()
        .copied()
        .filter(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
        .collect();
    assert_eq!(again.reason(), &reason[..]);
});
