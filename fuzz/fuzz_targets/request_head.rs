//! Fuzzes `lynxio::http1::parse_request` on arbitrary bytes. Besides "never panics":
//! - a complete head's length is within the input and the size limit, and every proper prefix
//!   of it is incomplete (`Ok(None)`), not an error;
//! - the limits are exact: the same head parses with `max_head_bytes` equal to its length and
//!   `max_headers` equal to its field count, and one less of either is refused with the limit's
//!   error kind;
//! - what the proxy would forward (`write_request`, origin-form target, Host replaced, Via
//!   added) parses again as one whole head with the same method and body framing, no
//!   connection options and exactly one Host: the proxy never emits a head it would refuse or
//!   one an origin could frame differently.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lynxio::http1::{
    ConnectionInfo, HeadLimits, MAX_HEADERS_CAP, ParseErrorKind, RequestRewrite, Target, Version,
    parse_request, parse_target, write_request,
};

fuzz_target!(|data: &[u8]| {
    let limits = HeadLimits::default();
    let (head, n) = match parse_request(data, &limits) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => {
            assert!(
                data.len() < limits.max_head_bytes,
                "oversized head incomplete"
            );
            return;
        }
        Err(_) => return,
    };
    assert!(n <= data.len() && n <= limits.max_head_bytes);
    assert!(head.headers.len() <= limits.max_headers);
    assert!(!head.target().is_empty());
    for cut in [0, n / 2, n - 1] {
        let prefix = &data[..cut];
        assert!(
            matches!(parse_request(prefix, &limits), Ok(None)),
            "prefix {cut} of an accepted {n}-byte head is not incomplete"
        );
    }

    let exact = HeadLimits {
        max_head_bytes: n,
        max_headers: head.headers.len(),
    };
    match parse_request(data, &exact) {
        Ok(Some((_, m))) => assert_eq!(m, n),
        other => panic!("exact limits refused the head: {other:?}"),
    }
    let shorter = HeadLimits {
        max_head_bytes: n - 1,
        ..exact
    };
    match parse_request(data, &shorter) {
        Err(e) => assert_eq!(e.kind, ParseErrorKind::HeadTooLarge),
        other => panic!("max_head_bytes {} accepted: {other:?}", n - 1),
    }
    if let Some(fewer) = head.headers.len().checked_sub(1) {
        let fewer = HeadLimits {
            max_headers: fewer,
            ..exact
        };
        match parse_request(data, &fewer) {
            Err(e) => assert_eq!(e.kind, ParseErrorKind::TooManyHeaders),
            other => panic!("max_headers {} accepted: {other:?}", head.headers.len() - 1),
        }
    }

    // Round trip through the forwarding writer, as the proxy forwards origin- and
    // absolute-form requests.
    let mut out = Vec::new();
    match parse_target(&head.method, head.target()) {
        Ok(Target::Origin(path)) => forward(&head, b"origin.test", path, &mut out),
        Ok(Target::Absolute {
            authority, path, ..
        }) => forward(&head, authority, &path, &mut out),
        _ => {}
    }
});

fn forward(head: &lynxio::http1::RequestHead, host: &[u8], path: &[u8], out: &mut Vec<u8>) {
    let rw = RequestRewrite {
        path,
        host,
        via: b"1.1 lynxio",
        keep_upgrade: false,
    };
    write_request(out, head, &rw);
    let limits = HeadLimits {
        max_head_bytes: out.len() + 1,
        max_headers: MAX_HEADERS_CAP,
    };
    let again = match parse_request(out, &limits) {
        Ok(Some((again, m))) => {
            assert_eq!(m, out.len(), "forwarded head not consumed whole");
            again
        }
        other => panic!(
            "forwarded head refused: {other:?}\n{}",
            String::from_utf8_lossy(out)
        ),
    };
    assert_eq!(again.method, head.method);
    assert_eq!(again.method_str(), head.method_str());
    assert_eq!(again.target(), path);
    assert_eq!(again.version, Version::Http11);
    assert_eq!(again.body, head.body, "framing changed when forwarded");
    assert_eq!(again.conn, ConnectionInfo::default());
    assert_eq!(again.headers.get_all("host").count(), 1);
    assert_eq!(again.headers.get("host"), Some(host));
}
