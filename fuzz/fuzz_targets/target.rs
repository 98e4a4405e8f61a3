//! Fuzzes request-target and Host parsing (`lynxio::http1::parse_target`, `parse_host`). The
//! first input byte picks the method, the rest is the target. Besides "never panics":
//! - hosts are non-empty, ASCII without uppercase letters (but in `%HH`), ports are never 0, origin-form and
//!   absolute-form paths start with `/`, asterisk-form only for OPTIONS;
//! - normalising is idempotent: the host and port an answer names, written back as
//!   `host:port` (bracketed when IPv6) and parsed again, give the same host and port; the
//!   authority an absolute-form target names parses as a Host value to the same host and port;
//! - `parse_host` on the same bytes agrees with a CONNECT target's parse where both succeed.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lynxio::http1::{Method, Target, parse_host, parse_target};

const METHODS: [Method; 6] = [
    Method::Get,
    Method::Connect,
    Method::Options,
    Method::Head,
    Method::Post,
    Method::Other,
];

fn check_host(host: &str) {
    assert!(!host.is_empty(), "empty host");
    assert!(host.is_ascii(), "non-ASCII host {host:?}");
    // Uppercase letters only as the hex digits of a `%HH` escape (kept as written).
    let bytes = host.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            i += 3;
            continue;
        }
        assert!(!b.is_ascii_uppercase(), "host not lowercased: {host:?}");
        i += 1;
    }
}

/// `host:port` as a CONNECT target or Host value would carry it.
fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn reparse(host: &str, port: u16) {
    let text = authority(host, port);
    match parse_target(&Method::Connect, text.as_bytes()) {
        Ok(Target::Authority { host: h, port: p }) => {
            assert_eq!((&*h, p), (host, port), "{text:?} not stable")
        }
        other => panic!("{text:?} refused on re-parse: {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&m, target)) = data.split_first() else {
        return;
    };
    let method = &METHODS[m as usize % METHODS.len()];
    let parsed = parse_target(method, target);
    match &parsed {
        Ok(Target::Origin(p)) => {
            assert!(p.starts_with(b"/"));
            assert_ne!(*method, Method::Connect);
        }
        Ok(Target::Asterisk) => assert_eq!(*method, Method::Options),
        Ok(Target::Authority { host, port }) => {
            assert_eq!(*method, Method::Connect);
            assert_ne!(*port, 0);
            check_host(host);
            reparse(host, *port);
        }
        Ok(Target::Absolute {
            scheme,
            authority: auth,
            host,
            port,
            path,
        }) => {
            assert_ne!(*method, Method::Connect);
            assert_ne!(*port, 0);
            assert!(path.starts_with(b"/"), "path {path:?}");
            check_host(host);
            reparse(host, *port);
            // The authority as a Host value: same host, and the same port once defaulted.
            match parse_host(auth) {
                Ok((h, p)) => {
                    assert_eq!(&*h, &**host);
                    assert_eq!(p.unwrap_or(scheme.default_port()), *port);
                }
                Err(e) => panic!("authority {auth:?} refused as a Host value: {e:?}"),
            }
        }
        Err(_) => {}
    }

    let host = parse_host(target);
    if let Ok((h, p)) = &host {
        check_host(h);
        assert_ne!(*p, Some(0));
        if let Some(p) = p {
            reparse(h, *p);
        }
    }
    if *method == Method::Connect
        && let (Ok(Target::Authority { host: th, port: tp }), Ok((hh, hp))) = (&parsed, &host)
    {
        assert_eq!((&**th, Some(*tp)), (&**hh, *hp));
    }
});
