//! Forwarding: absolute-form to origin-form, byte-exact targets, bodies, keep-alive, pooling.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::sync::mpsc;
use std::thread;

use common::*;

fn get_through_proxy(driver: &str) {
    let origin = Origin::http(|req| ok(format!("you asked for {}", req.target).as_bytes()));
    let proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\n\r\n",
        origin.url("/a%2Fb?q=1&x=%zz"),
        origin.addr
    );
    let resp = roundtrip(&mut c, "GET", req.as_bytes());
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_str(), "you asked for /a%2Fb?q=1&x=%zz");
    assert_eq!(resp.header("via"), Some("1.1 lynxio"));
}

/// Targets with percent-encodings, reserved and unusual (but valid for httparse) characters
/// reach the origin byte-exact, in origin-form, on one kept-alive client connection.
fn target_preserved_byte_exact(driver: &str) {
    let (origin, rx) = recording_origin(|req| ok(req.target.as_bytes()));
    let proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    let targets = [
        "/a%2Fb/%E2%82%AC;p=1,2?q=a%2Bb&x=%zz&y=|^{}[]`\"<>&e=&&=~!$'()*,;:@/?%00",
        "/path//double/./dot/../seg/",
        "/%7e%7E%2f%2F?a=b=c&a=d&%26=%3D",
        "/?",
        "/x?",
        "/UPPER/Case?Mixed=Case",
    ];
    for target in targets {
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\n\r\n",
            origin.url(target),
            origin.addr
        );
        let resp = roundtrip(&mut c, "GET", req.as_bytes());
        assert_eq!(resp.status, 200, "{target}");
        assert_eq!(resp.body_str(), target);
        let got = next_request(&rx);
        assert_eq!(got.method, "GET");
        assert_eq!(got.target, target);
        let line = format!("GET {target} HTTP/1.1\r\n");
        assert!(
            got.raw_head.starts_with(line.as_bytes()),
            "request line: {:?}",
            String::from_utf8_lossy(&got.raw_head)
        );
    }
    assert_eq!(origin.accepted(), 1);
}

/// `http://host:port` with no path and `http://host:port?q` become `/` and `/?q`.
fn empty_path_becomes_slash(driver: &str) {
    let (origin, rx) = recording_origin(|req| ok(req.target.as_bytes()));
    let proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    for (sent, expected) in [("", "/"), ("?q=1", "/?q=1")] {
        let req = format!(
            "GET http://{}{sent} HTTP/1.1\r\nHost: {}\r\n\r\n",
            origin.addr, origin.addr
        );
        let resp = roundtrip(&mut c, "GET", req.as_bytes());
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body_str(), expected);
        assert_eq!(next_request(&rx).target, expected);
    }
}

/// The origin gets exactly one Host: the authority of the URL, even when the client sent a
/// different one (or none).
fn host_is_url_authority(driver: &str) {
    let (origin, rx) = recording_origin(|_| ok(b"ok"));
    let proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    let authority = origin.addr.to_string();

    let req = format!(
        "GET {} HTTP/1.1\r\nHost: wrong.example:1234\r\nX-A: 1\r\n\r\n",
        origin.url("/h1")
    );
    assert_eq!(roundtrip(&mut c, "GET", req.as_bytes()).status, 200);
    let got = next_request(&rx);
    assert_eq!(got.header_count("host"), 1);
    assert_eq!(got.header("host"), Some(authority.as_str()));
    assert_eq!(got.header("x-a"), Some("1"));

    // Lowercase field name on the client side; still replaced.
    let req = format!("GET {} HTTP/1.1\r\nhost: other\r\n\r\n", origin.url("/h2"));
    assert_eq!(roundtrip(&mut c, "GET", req.as_bytes()).status, 200);
    let got = next_request(&rx);
    assert_eq!(got.header_count("host"), 1);
    assert_eq!(got.header("host"), Some(authority.as_str()));
}

/// An HTTP/1.0 client: the origin gets an HTTP/1.1 request (with Host and `Via: 1.0 lynxio`);
/// a chunked origin response reaches the client de-chunked, close-delimited, and the proxy
/// closes the connection.
fn http10_request_gets_dechunked_close_delimited(driver: &str) {
    let (origin, rx) = recording_origin(|_| {
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-O: 1\r\n\r\n\
          5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n"
            .to_vec()
    });
    let proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    let req = format!(
        "GET {} HTTP/1.0\r\nUser-Agent: old\r\n\r\n",
        origin.url("/ten")
    );
    c.get_mut().write_all(req.as_bytes()).unwrap();
    let resp = c.response("GET").expect("response");

    let got = next_request(&rx);
    assert_eq!(got.version, 1, "the proxy speaks HTTP/1.1 upstream");
    assert_eq!(got.target, "/ten");
    assert_eq!(got.header("host"), Some(origin.addr.to_string().as_str()));
    assert_eq!(got.header("via"), Some("1.0 lynxio"));
    assert_eq!(got.header("user-agent"), Some("old"));

    assert_eq!(resp.status, 200);
    assert!(!resp.chunked, "no chunked framing for an HTTP/1.0 client");
    assert_eq!(resp.header("transfer-encoding"), None);
    assert_eq!(resp.header("content-length"), None);
    assert_eq!(resp.header("x-o"), Some("1"));
    assert_eq!(resp.header("connection"), Some("close"));
    assert_eq!(
        resp.body_str(),
        "hello, world",
        "body ends at close, trailers dropped"
    );
    assert!(
        c.closed(),
        "the proxy must close after a close-delimited response"
    );
}

/// An HTTP/1.0 client asking for keep-alive gets `Connection: keep-alive` on a
/// Content-Length response and can send a second request; the origin never sees the
/// client's `Connection: keep-alive`.
fn http10_keep_alive(driver: &str) {
    let (origin, rx) = recording_origin(|req| ok(req.target.as_bytes()));
    let proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    for path in ["/k1", "/k2"] {
        let req = format!(
            "GET {} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            origin.url(path)
        );
        let resp = roundtrip(&mut c, "GET", req.as_bytes());
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body_str(), path);
        assert_eq!(resp.header("connection"), Some("keep-alive"));
        let got = next_request(&rx);
        assert_eq!(got.header("connection"), None);
        assert_eq!(got.header("keep-alive"), None);
    }
    // Without keep-alive the proxy answers and closes.
    let req = format!("GET {} HTTP/1.0\r\n\r\n", origin.url("/k3"));
    let resp = roundtrip(&mut c, "GET", req.as_bytes());
    assert_eq!(resp.body_str(), "/k3");
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(c.closed());
}

/// `--resolve name.test:PORT:127.0.0.1` sends a made-up name to the origin; Host is the
/// authority exactly as written, and the name is matched case-insensitively.
fn resolve_override(driver: &str) {
    let (origin, rx) = recording_origin(|req| ok(req.target.as_bytes()));
    let port = origin.addr.port();
    let spec = format!("name.test:{port}:127.0.0.1");
    let proxy = Proxy::start(driver, &["--resolve", &spec]);
    let mut c = Reader::new(proxy.connect());
    for authority in [format!("name.test:{port}"), format!("Name.TEST:{port}")] {
        let req = format!("GET http://{authority}/r?x=1 HTTP/1.1\r\nHost: {authority}\r\n\r\n");
        let resp = roundtrip(&mut c, "GET", req.as_bytes());
        assert_eq!(resp.status, 200, "{authority}");
        assert_eq!(resp.body_str(), "/r?x=1");
        let got = next_request(&rx);
        assert_eq!(got.header("host"), Some(authority.as_str()));
    }
    // Both spellings are the same origin: one pooled upstream connection.
    assert_eq!(origin.accepted(), 1);
}

/// Every resolved address is tried in order: a name whose first addresses refuse (IPv6 and
/// IPv4) still reaches the origin on its last one; when all refuse, the client gets 502.
fn every_resolved_address_is_tried(driver: &str) {
    let origin = Origin::http(|req| ok(req.target.as_bytes()));
    let port = origin.addr.port();
    // A port on 127.0.0.1 that refuses: bound, then closed.
    let dead = TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_port = dead.local_addr().expect("addr").port();
    drop(dead);
    let multi = format!("multi.test:{port}:[::1],127.0.0.1");
    let none = format!("none.test:{dead_port}:[::1],127.0.0.1");
    let proxy = Proxy::start(driver, &["--resolve", &multi, "--resolve", &none]);

    let mut c = Reader::new(proxy.connect());
    let req = format!("GET http://multi.test:{port}/m HTTP/1.1\r\nHost: multi.test:{port}\r\n\r\n");
    let resp = roundtrip(&mut c, "GET", req.as_bytes());
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_str(), "/m");

    let req = format!("GET http://none.test:{dead_port}/ HTTP/1.1\r\nHost: x\r\n\r\n");
    let raw = exchange(proxy.addr, req.as_bytes());
    assert_eq!(status_of(&raw), 502, "{}", String::from_utf8_lossy(&raw));
}

/// A name the system resolver knows (`localhost`, from /etc/hosts) goes through the blocking
/// resolver pool; its addresses are tried in turn until the IPv4 origin answers.
fn system_resolver(driver: &str) {
    let origin = Origin::http(|req| ok(req.target.as_bytes()));
    let port = origin.addr.port();
    let proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    for i in 0..2 {
        let req = format!("GET http://localhost:{port}/l{i} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let resp = roundtrip(&mut c, "GET", req.as_bytes());
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body_str(), format!("/l{i}"));
    }
}

/// An origin on `[::1]` is reached through an IPv6-literal URL (skipped without IPv6).
fn ipv6_origin(driver: &str) {
    let listener = match TcpListener::bind("[::1]:0") {
        Ok(l) => l,
        Err(e) => {
            eprintln!("skipping ipv6_origin: cannot bind [::1]: {e}");
            return;
        }
    };
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let Ok((s, _)) = listener.accept() else {
            return;
        };
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut r = Reader::new(s.try_clone().unwrap());
        if let Some(req) = r.request() {
            let mut s = s;
            let _ = s.write_all(&ok(req.target.as_bytes()));
            let _ = tx.send(req);
        }
    });
    let proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    let req = format!(
        "GET http://[::1]:{}/six?v=6 HTTP/1.1\r\nHost: x\r\n\r\n",
        addr.port()
    );
    let resp = roundtrip(&mut c, "GET", req.as_bytes());
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_str(), "/six?v=6");
    let got = rx.recv_timeout(IO_TIMEOUT).expect("origin request");
    assert_eq!(got.target, "/six?v=6");
    assert_eq!(
        got.header("host"),
        Some(format!("[::1]:{}", addr.port()).as_str())
    );
}

/// Hop-by-hop request fields (static list and those named by Connection) never reach the
/// origin; end-to-end fields do, in order and byte-exact; Via is appended after any existing
/// Via.
fn request_hop_by_hop_removed(driver: &str) {
    let (origin, rx) = recording_origin(|_| ok(b"ok"));
    let proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    let req = format!(
        "GET {} HTTP/1.1\r\n\
         Host: {}\r\n\
         Connection: X-Foo, keep-alive\r\n\
         X-Foo: 1\r\n\
         Proxy-Connection: keep-alive\r\n\
         Keep-Alive: timeout=5\r\n\
         TE: trailers\r\n\
         Trailer: X-Whatever\r\n\
         Upgrade: websocket\r\n\
         Proxy-Authorization: Basic dXNlcjpwYXNz\r\n\
         connection: x-baz\r\n\
         X-Baz: 2\r\n\
         X-End: yes, really\r\n\
         Accept: */*\r\n\
         Via: 1.1 upstream-proxy\r\n\
         Cookie: a=b; c=d\r\n\
         X-Empty:\r\n\
         \r\n",
        origin.url("/hop"),
        origin.addr
    );
    let resp = roundtrip(&mut c, "GET", req.as_bytes());
    assert_eq!(resp.status, 200);
    let got = next_request(&rx);
    assert_eq!(
        header_names(&got),
        ["host", "x-end", "accept", "via", "cookie", "x-empty", "via"],
        "origin head: {}",
        String::from_utf8_lossy(&got.raw_head)
    );
    assert_eq!(got.header("x-end"), Some("yes, really"));
    assert_eq!(got.header("cookie"), Some("a=b; c=d"));
    assert_eq!(got.header("x-empty"), Some(""));
    let vias: Vec<&str> = got
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("via"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(vias, ["1.1 upstream-proxy", "1.1 lynxio"]);
    // The client connection is still usable (keep-alive was honoured, not forwarded).
    let again = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url("/again"));
    assert_eq!(roundtrip(&mut c, "GET", again.as_bytes()).status, 200);
}

/// Hop-by-hop response fields from the origin never reach the client; end-to-end ones do.
fn response_hop_by_hop_removed(driver: &str) {
    let origin = Origin::http(|_| {
        b"HTTP/1.1 200 OK\r\n\
          Connection: X-Bar\r\n\
          X-Bar: secret\r\n\
          Keep-Alive: timeout=5, max=100\r\n\
          Proxy-Connection: keep-alive\r\n\
          Upgrade: h2c\r\n\
          Trailer: X-T\r\n\
          TE: trailers\r\n\
          X-Kept: 1\r\n\
          Set-Cookie: s=1\r\n\
          Content-Length: 2\r\n\
          \r\nok"
            .to_vec()
    });
    let proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    for path in ["/r1", "/r2"] {
        let req = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url(path));
        let resp = roundtrip(&mut c, "GET", req.as_bytes());
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body_str(), "ok");
        assert_eq!(
            header_names(&resp),
            ["x-kept", "set-cookie", "content-length", "via"],
            "client head: {}",
            String::from_utf8_lossy(&resp.raw_head)
        );
        assert_eq!(resp.header("via"), Some("1.1 lynxio"));
    }
    // `Connection: X-Bar` is not `close`: the upstream connection was reused.
    assert_eq!(origin.accepted(), 1);
}

/// Via's received-protocol is the version of the message the proxy received (RFC 9110
/// §7.6.3): an HTTP/1.0 response gets `Via: 1.0 lynxio`, an HTTP/1.1 one `1.1 lynxio`.
fn response_via_reflects_origin_version(driver: &str) {
    let origin = Origin::http(|req| {
        if req.target == "/old" {
            b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()
        } else {
            ok(b"ok")
        }
    });
    let proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    let req = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url("/new"));
    let resp = roundtrip(&mut c, "GET", req.as_bytes());
    assert_eq!(resp.header("via"), Some("1.1 lynxio"));
    let req = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url("/old"));
    let resp = roundtrip(&mut c, "GET", req.as_bytes());
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_str(), "ok");
    assert_eq!(resp.header("via"), Some("1.0 lynxio"));
}

/// A client that half-closes right after its request still gets the whole response; the
/// proxy then closes.
fn client_half_close_still_answered(driver: &str) {
    let origin = Origin::http(|req| ok(format!("half {}", req.target).as_bytes()));
    let proxy = Proxy::start(driver, &[]);
    let req = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url("/hc"));
    let raw = exchange(proxy.addr, req.as_bytes());
    assert_eq!(status_of(&raw), 200);
    assert!(
        raw.ends_with(b"\r\n\r\nhalf /hc"),
        "{:?}",
        String::from_utf8_lossy(&raw)
    );
    let post = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody",
        origin.url("/hp")
    );
    let raw = exchange(proxy.addr, post.as_bytes());
    assert_eq!(status_of(&raw), 200);
    assert!(
        raw.ends_with(b"half /hp"),
        "{:?}",
        String::from_utf8_lossy(&raw)
    );
}

drivers!(
    get_through_proxy,
    client_half_close_still_answered,
    target_preserved_byte_exact,
    empty_path_becomes_slash,
    host_is_url_authority,
    http10_request_gets_dechunked_close_delimited,
    http10_keep_alive,
    resolve_override,
    every_resolved_address_is_tried,
    system_resolver,
    ipv6_origin,
    request_hop_by_hop_removed,
    response_hop_by_hop_removed,
    response_via_reflects_origin_version,
);
