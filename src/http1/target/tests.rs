//! Request-target table: each form, host/port validation and the `BadTarget` cases.

use super::*;
use std::borrow::Cow;

fn abs<'a>(
    scheme: Scheme,
    authority: &'a [u8],
    host: &'a str,
    port: u16,
    path: &'a [u8],
) -> Target<'a> {
    Target::Absolute {
        scheme,
        authority,
        host: Cow::Borrowed(host),
        port,
        path: Cow::Borrowed(path),
    }
}

fn auth(host: &str, port: u16) -> Target<'_> {
    Target::Authority {
        host: Cow::Borrowed(host),
        port,
    }
}

#[test]
fn accepted_targets() {
    use Scheme::*;
    let table: &[(Method, &[u8], Target<'static>)] = &[
        (Method::Get, b"/", Target::Origin(b"/")),
        (Method::Get, b"/a/b?c=d&e", Target::Origin(b"/a/b?c=d&e")),
        (Method::Get, b"//x", Target::Origin(b"//x")),
        (Method::Options, b"*", Target::Asterisk),
        (
            Method::Get,
            b"http://example.com",
            abs(Http, b"example.com", "example.com", 80, b"/"),
        ),
        (
            Method::Get,
            b"http://example.com/",
            abs(Http, b"example.com", "example.com", 80, b"/"),
        ),
        (
            Method::Get,
            b"HTTP://Example.COM:8080/P?Q",
            abs(Http, b"Example.COM:8080", "example.com", 8080, b"/P?Q"),
        ),
        (
            Method::Get,
            b"https://a.b/x",
            abs(Https, b"a.b", "a.b", 443, b"/x"),
        ),
        (
            Method::Get,
            b"hTTpS://a.b:443",
            abs(Https, b"a.b:443", "a.b", 443, b"/"),
        ),
        (
            Method::Get,
            b"http://10.0.0.1:1/",
            abs(Http, b"10.0.0.1:1", "10.0.0.1", 1, b"/"),
        ),
        (
            Method::Get,
            b"http://[::1]/x",
            abs(Http, b"[::1]", "::1", 80, b"/x"),
        ),
        (
            Method::Get,
            b"http://[2001:DB8::1]:65535/",
            abs(Http, b"[2001:DB8::1]:65535", "2001:db8::1", 65535, b"/"),
        ),
        (
            Method::Get,
            b"http://a-b_c~d.%41!$&'()*+,;=/",
            abs(
                Http,
                b"a-b_c~d.%41!$&'()*+,;=",
                "a-b_c~d.%41!$&'()*+,;=",
                80,
                b"/",
            ),
        ),
        (
            Method::Get,
            b"http://x:00080/",
            abs(Http, b"x:00080", "x", 80, b"/"),
        ),
        (
            Method::Post,
            b"http://x/a:b@c",
            abs(Http, b"x", "x", 80, b"/a:b@c"),
        ),
        (
            Method::Connect,
            b"example.com:443",
            auth("example.com", 443),
        ),
        (Method::Connect, b"EXAMPLE.com:1", auth("example.com", 1)),
        (Method::Connect, b"[::1]:8443", auth("::1", 8443)),
        (Method::Connect, b"1.2.3.4:22", auth("1.2.3.4", 22)),
    ];
    for (method, target, expected) in table {
        let got = parse_target(method, target);
        assert_eq!(
            got.as_ref(),
            Ok(expected),
            "{:?}",
            String::from_utf8_lossy(target)
        );
    }
}

#[test]
fn query_without_path_gets_a_slash() {
    let t = parse_target(&Method::Get, b"http://h?q=1").unwrap();
    let Target::Absolute { path, host, .. } = t else {
        panic!("not absolute")
    };
    assert_eq!(&*path, b"/?q=1");
    assert!(matches!(path, Cow::Owned(_)));
    assert!(matches!(host, Cow::Borrowed(_)));
}

#[test]
fn lowercasing_allocates_only_when_needed() {
    let Ok(Target::Authority { host, .. }) = parse_target(&Method::Connect, b"a.B:1") else {
        panic!()
    };
    assert!(matches!(host, Cow::Owned(ref h) if h == "a.b"));
    let Ok(Target::Authority { host, .. }) = parse_target(&Method::Connect, b"a.b:1") else {
        panic!()
    };
    assert!(matches!(host, Cow::Borrowed("a.b")));
}

#[test]
fn rejected_targets() {
    let table: &[(&str, Method, &[u8])] = &[
        ("userinfo", Method::Get, b"http://user@host/"),
        ("userinfo pass", Method::Get, b"http://u:p@host/"),
        ("userinfo CONNECT", Method::Connect, b"u@host:443"),
        ("empty host", Method::Get, b"http:///x"),
        ("empty host port", Method::Get, b"http://:80/"),
        ("empty target", Method::Get, b""),
        ("port 0", Method::Get, b"http://h:0/"),
        ("port too big", Method::Get, b"http://h:65536/"),
        ("port 6 digits", Method::Get, b"http://h:000080/"),
        ("port empty", Method::Get, b"http://h:/"),
        ("port sign", Method::Get, b"http://h:+80/"),
        ("port alpha", Method::Get, b"http://h:8o/"),
        ("bad host char", Method::Get, b"http://h\"x/"),
        ("bad host pct", Method::Get, b"http://h%4/"),
        ("bad host pct2", Method::Get, b"http://h%zz/"),
        ("bad host utf8", Method::Get, "http://hé/".as_bytes()),
        ("bad v6", Method::Get, b"http://[::g]/"),
        ("v6 zone", Method::Get, b"http://[fe80::1%25eth0]/"),
        ("v6 unterminated", Method::Get, b"http://[::1/"),
        ("v6 junk after", Method::Get, b"http://[::1]x/"),
        ("v4 in brackets", Method::Get, b"http://[1.2.3.4]/"),
        ("ftp", Method::Get, b"ftp://h/"),
        ("ws", Method::Get, b"ws://h/"),
        ("no slashes", Method::Get, b"http:h/"),
        ("authority for GET", Method::Get, b"h:80"),
        ("relative", Method::Get, b"a/b"),
        ("fragment origin", Method::Get, b"/a#b"),
        ("fragment absolute", Method::Get, b"http://h/a#b"),
        ("fragment host", Method::Get, b"http://h#/"),
        ("asterisk GET", Method::Get, b"*"),
        ("CONNECT no port", Method::Connect, b"example.com"),
        ("CONNECT empty port", Method::Connect, b"example.com:"),
        ("CONNECT v6 no port", Method::Connect, b"[::1]"),
        ("CONNECT absolute", Method::Connect, b"http://h:80/"),
        ("CONNECT origin", Method::Connect, b"/x"),
        ("CONNECT empty host", Method::Connect, b":443"),
        ("CONNECT asterisk", Method::Connect, b"*"),
    ];
    for (name, method, target) in table {
        let got = parse_target(method, target);
        assert_eq!(
            got.map_err(|e| e.kind),
            Err(ParseErrorKind::BadTarget),
            "{name}"
        );
    }
}

#[test]
fn scheme_helpers() {
    assert_eq!(Scheme::Http.default_port(), 80);
    assert_eq!(Scheme::Https.default_port(), 443);
    assert_eq!(Scheme::Https.as_str(), "https");
}

#[test]
fn host_header_values() {
    let ok: &[(&[u8], &str, Option<u16>)] = &[
        (b"example.com", "example.com", None),
        (b"Example.COM:8080", "example.com", Some(8080)),
        (b"[::1]:443", "::1", Some(443)),
        (b"127.0.0.1", "127.0.0.1", None),
    ];
    for (value, host, port) in ok {
        let (h, p) = parse_host(value).unwrap();
        assert_eq!((&*h, p), (*host, *port));
    }
    for bad in [
        &b""[..],
        b":80",
        b"a b",
        b"u@h",
        b"h:0",
        b"h/x",
        b"h:80:80",
        b"[::1",
    ] {
        assert!(
            parse_host(bad).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}
