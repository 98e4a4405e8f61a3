//! TLS interception (MITM), black-box: a local rustls origin whose certificate is signed by a
//! test CA (trusted by lynxio through `--upstream-ca`), and a rustls client that trusts only
//! lynxio's root (`--ca-dir DIR/ca.pem`). For a `--mitm`-selected CONNECT target the client's
//! handshake completes against a leaf minted for its SNI (DNS SAN) or for the CONNECT host (IP
//! SAN when there is no SNI), ALPN falls back to http/1.1, and decrypted requests (GET, a
//! 100 KiB POST, keep-alive) get what a direct client gets plus `Via`. An origin lynxio cannot
//! verify gives a 502 naming the certificate problem (unless `--insecure-upstream`), a
//! non-selected host is tunnelled untouched (the client sees the origin's own certificate), and
//! the root CA survives a restart.

#[path = "../common/mod.rs"]
mod common;
mod fixture;
mod pinning;
mod resume;
mod rules;

use std::io::Write;

use common::*;
use fixture::*;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

// ---- tests ----

/// CONNECT localhost:PORT (resolved to 127.0.0.1), TLS with SNI localhost and ALPN h2+http/1.1:
/// lynxio's leaf for localhost, http/1.1 selected, GET then a 100 KiB POST then GET on the same
/// connection, each answered as directly plus `Via`; the origin saw SNI localhost.
fn intercept_dns_name(driver: &str) {
    let fx = MitmFixture::start("dns", driver, "localhost", Upstream::TestCa, true);
    let ca = fx.ca();
    let target = fx.localhost_target();
    let tls = fx
        .tls(&target, "localhost", roots_of(std::slice::from_ref(&ca)))
        .unwrap_or_else(|e| panic!("handshake with lynxio trusting only DIR/ca.pem: {e}"));
    assert_eq!(
        tls.conn.alpn_protocol(),
        Some(&b"http/1.1"[..]),
        "ALPN offered [h2, http/1.1]: lynxio must select http/1.1"
    );
    let leaf = presented_leaf(&tls);
    assert_ne!(
        leaf, fx.origin.leaf_der,
        "the origin's own leaf was presented"
    );
    let (dns, _) = sans(&leaf);
    assert!(
        dns.iter().any(|d| d == "localhost"),
        "the leaf's DNS SANs {dns:?} lack localhost"
    );

    let body = pseudo_random_bytes(POST_LEN, 5);
    let mut r = Reader::new(tls);
    let steps: [(&str, &str, &[u8]); 3] = [
        ("GET", "/a", b""),
        ("POST", "/b", &body),
        ("GET", "/c?x=1", b""),
    ];
    for (method, path, req_body) in steps {
        let what = format!("{method} {path}");
        let got = request(&mut r, method, path, &target, req_body);
        let want = direct(&fx.origin, method, path, req_body);
        assert_eq!(
            got.status,
            200,
            "{what}: {:?}",
            String::from_utf8_lossy(&got.raw_head)
        );
        assert_eq!(
            got.status, want.status,
            "{what}: status differs from direct"
        );
        assert!(
            got.body == want.body,
            "{what}: body differs from direct ({} vs {} bytes; starts {:?})",
            got.body.len(),
            want.body.len(),
            String::from_utf8_lossy(&got.body[..got.body.len().min(60)])
        );
        assert_eq!(
            got.header("x-sni"),
            Some("localhost"),
            "{what}: lynxio's upstream SNI must be the client's"
        );
        assert_via(&got, &what);
    }
    drop(r);

    // A second intercepted connection to the same host gets the cached leaf (one worker).
    let again = fx
        .tls(&target, "localhost", roots_of(&[ca]))
        .unwrap_or_else(|e| panic!("second handshake with lynxio: {e}"));
    assert!(
        presented_leaf(&again) == leaf,
        "a second connection to localhost got a different leaf: the leaf cache was not used"
    );
    let mut r = Reader::new(again);
    let got = get_ok(&mut r, "/second", &target);
    assert_via(&got, "GET /second");
}

/// CONNECT 127.0.0.1:PORT with a client that sends no SNI (IP server name): the leaf carries
/// the IP SAN 127.0.0.1 and a request works.
fn intercept_ip_without_sni(driver: &str) {
    let fx = MitmFixture::start("ip", driver, "127.0.0.1", Upstream::TestCa, false);
    let target = fx.origin.origin.addr.to_string();
    let tls = fx
        .tls(&target, "127.0.0.1", roots_of(&[fx.ca()]))
        .unwrap_or_else(|e| panic!("handshake (no SNI) with lynxio: {e}"));
    let leaf = presented_leaf(&tls);
    let (dns, ips) = sans(&leaf);
    assert!(
        ips.iter().any(|ip| ip == &[127, 0, 0, 1]),
        "the leaf's IP SANs {ips:?} lack 127.0.0.1 (DNS SANs: {dns:?})"
    );
    let mut r = Reader::new(tls);
    let got = get_ok(&mut r, "/ip", &target);
    assert_eq!(
        got.body,
        direct(&fx.origin, "GET", "/ip", b"").body,
        "body differs from direct"
    );
    assert_via(&got, "GET /ip");
}

/// Without `--upstream-ca` the origin's certificate cannot be verified: the client's handshake
/// with lynxio still completes and its request gets a 502 naming the certificate problem; the
/// origin never sees a request.
fn untrusted_upstream_is_502(driver: &str) {
    let fx = MitmFixture::start("untrusted", driver, "localhost", Upstream::Unverified, true);
    let target = fx.localhost_target();
    let mut tls = fx
        .tls(&target, "localhost", roots_of(&[fx.ca()]))
        .unwrap_or_else(|e| panic!("the client's handshake with lynxio must succeed: {e}"));
    // lynxio may answer before reading the request: a failed write is fine, the read decides.
    let _ = tls
        .write_all(format!("GET /x HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .and_then(|()| tls.flush());
    let mut r = Reader::new(tls);
    let (_, got) = r
        .final_response("GET")
        .expect("a response to the request over an unverifiable origin");
    let body = got.body_str();
    assert_eq!(
        got.status,
        502,
        "{:?} {body:?}",
        String::from_utf8_lossy(&got.raw_head)
    );
    let lower = body.to_ascii_lowercase();
    assert!(
        lower.contains("certificate")
            || lower.contains("unknownissuer")
            || lower.contains("issuer"),
        "the 502 body should name the certificate problem: {body:?}"
    );
    assert!(body.len() < 1024, "the 502 body should be short: {body:?}");
    assert!(
        got.header("content-type")
            .is_some_and(|v| v.starts_with("text/plain")),
        "the 502 should be text/plain: {:?}",
        String::from_utf8_lossy(&got.raw_head)
    );
    assert!(
        got.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close")),
        "the 502 should close the connection: {:?}",
        String::from_utf8_lossy(&got.raw_head)
    );
    assert_eq!(
        fx.origin.requests(),
        0,
        "the origin must not receive the request"
    );
}

/// `--insecure-upstream` (no `--upstream-ca`): the same origin is reached, with a warning.
fn insecure_upstream_works(driver: &str) {
    let mut fx = MitmFixture::start("insecure", driver, "localhost", Upstream::Insecure, true);
    let target = fx.localhost_target();
    let tls = fx
        .tls(&target, "localhost", roots_of(&[fx.ca()]))
        .unwrap_or_else(|e| panic!("handshake with lynxio: {e}"));
    let mut r = Reader::new(tls);
    let got = get_ok(&mut r, "/insecure", &target);
    assert_via(&got, "GET /insecure");
    drop(r);
    let log = fx.stop_and_log();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.to_ascii_lowercase().contains("insecure")),
        "--insecure-upstream must be warned about; log:\n{log}"
    );
}

/// `--mitm "*.example.test"` does not select localhost: the tunnel is untouched, so the client
/// needs the TEST CA and sees the origin's own leaf, and the response carries no `Via`.
fn unselected_host_is_tunnelled(driver: &str) {
    let fx = MitmFixture::start(
        "unselected",
        driver,
        "*.example.test",
        Upstream::TestCa,
        true,
    );
    let target = fx.localhost_target();
    let tls = fx
        .tls(
            &target,
            "localhost",
            roots_of(std::slice::from_ref(&fx.origin.ca_der)),
        )
        .unwrap_or_else(|e| panic!("a tunnelled handshake trusting only the test CA: {e}"));
    assert!(
        presented_leaf(&tls) == fx.origin.leaf_der,
        "the client must see the origin's own certificate"
    );
    let mut r = Reader::new(tls);
    let got = get_ok(&mut r, "/plain", &target);
    assert!(
        got.header("via").is_none(),
        "a tunnelled TLS response must be untouched: {:?}",
        String::from_utf8_lossy(&got.raw_head)
    );
}

/// The root CA is created once in `--ca-dir` and reused by the next run: same `ca.pem`, key
/// mode 0600, and the second run's leaves chain to the first run's certificate.
fn ca_persists_across_restarts(driver: &str) {
    use std::os::unix::fs::PermissionsExt;
    let mut fx = MitmFixture::start("persist", driver, "*", Upstream::TestCa, true);
    let dir = fx.dir.path().to_owned();
    let pem1 =
        std::fs::read_to_string(dir.join("ca.pem")).expect("DIR/ca.pem after the first start");
    assert!(pem1.contains("BEGIN CERTIFICATE"), "{pem1}");
    let mode = std::fs::metadata(dir.join("ca-key.pem"))
        .expect("DIR/ca-key.pem")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "ca-key.pem mode {mode:o}");

    fx.restart();
    let pem2 = std::fs::read_to_string(dir.join("ca.pem")).expect("DIR/ca.pem after the restart");
    assert_eq!(pem1, pem2, "the CA changed across a restart");
    let ca1 = CertificateDer::from_pem_slice(pem1.as_bytes()).expect("PEM");
    let target = fx.localhost_target();
    let tls = fx
        .tls(&target, "localhost", roots_of(&[ca1]))
        .unwrap_or_else(|e| panic!("the restarted proxy's leaf must chain to the first CA: {e}"));
    let mut r = Reader::new(tls);
    get_ok(&mut r, "/again", &target);
}

/// `http://lynxio.ca/` is answered by lynxio itself: a page on trusting the CA, the CA PEM at
/// `/cert` (byte-identical to DIR/ca.pem), 404 for other paths, 405 for other methods, all on
/// one keep-alive connection. Without interception the CA is created on first use of the page.
fn lynxio_ca_page(driver: &str) {
    let dir = TempDir::new("ca-page", driver);
    let proxy = Proxy::start(
        driver,
        &["--mitm", "*.example.test", "--ca-dir", dir.as_str()],
    );
    let pem = std::fs::read_to_string(dir.path().join("ca.pem")).expect("DIR/ca.pem");
    let mut c = Reader::new(proxy.connect());
    let get =
        |path: &str| format!("GET http://lynxio.ca{path} HTTP/1.1\r\nHost: lynxio.ca\r\n\r\n");
    let page = roundtrip(&mut c, "GET", get("/").as_bytes());
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap_or_default()
            .starts_with("text/html")
    );
    assert!(page.body_str().contains("/cert") && page.body_str().contains("Firefox"));
    let cert = roundtrip(&mut c, "GET", get("/cert").as_bytes());
    assert_eq!(cert.status, 200);
    assert_eq!(cert.body_str(), pem);
    assert_eq!(cert.header("content-type"), Some("application/x-pem-file"));
    let head = roundtrip(
        &mut c,
        "HEAD",
        b"HEAD http://lynxio.ca/cert HTTP/1.1\r\nHost: lynxio.ca\r\n\r\n",
    );
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        roundtrip(&mut c, "GET", get("/nope").as_bytes()).status,
        404
    );
    let post = roundtrip(
        &mut c,
        "POST",
        b"POST http://lynxio.ca/ HTTP/1.1\r\nHost: lynxio.ca\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(post.status, 405);
    drop(c);
    drop(proxy);
    drop(dir);

    // Without any interception the page still hands out the CA, created on first use: users
    // install it before they turn rules on.
    let dir = TempDir::new("ca-page-plain", driver);
    let plain = Proxy::start(driver, &["--ca-dir", dir.as_str()]);
    assert!(
        !dir.path().join("ca.pem").exists(),
        "a proxy that intercepts nothing must not create the CA at start"
    );
    let mut c = Reader::new(plain.connect());
    let page = roundtrip(&mut c, "GET", get("/").as_bytes());
    assert!(page.body_str().contains("/cert"), "{}", page.body_str());
    let cert = roundtrip(&mut c, "GET", get("/cert").as_bytes());
    assert_eq!(cert.status, 200);
    let pem = std::fs::read_to_string(dir.path().join("ca.pem")).expect("created DIR/ca.pem");
    assert_eq!(cert.body_str(), pem);
    drop(c);
    drop(plain);

    // A CA directory lynxio cannot create: the page says so, /cert is a 503, nothing breaks.
    let blocked = dir.path().join("file");
    std::fs::write(&blocked, b"not a directory").expect("write a file");
    let ca_dir = blocked.join("ca");
    let broken = Proxy::start(driver, &["--ca-dir", ca_dir.to_str().expect("utf-8 path")]);
    let mut c = Reader::new(broken.connect());
    assert_eq!(
        roundtrip(&mut c, "GET", get("/cert").as_bytes()).status,
        503
    );
    let page = roundtrip(&mut c, "GET", get("/").as_bytes());
    assert!(page.body_str().contains("could not"), "{}", page.body_str());
}

/// A host the rules intercept but no certificate can be made for (not a DNS name) gets a 502
/// with the reason, before any tunnel is opened; the proxy keeps serving.
fn certificate_failure_is_502(driver: &str) {
    let dir = TempDir::new("mint-fail", driver);
    let proxy = Proxy::start(driver, &["--mitm", "*", "--ca-dir", dir.as_str()]);
    let raw = exchange(
        proxy.addr,
        b"CONNECT a!b.test:443 HTTP/1.1\r\nHost: a!b.test:443\r\n\r\n",
    );
    assert_eq!(status_of(&raw), 502, "{}", String::from_utf8_lossy(&raw));
    assert!(
        String::from_utf8_lossy(&raw).contains("certificate"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    let mut c = Reader::new(proxy.connect());
    let ok_page = roundtrip(
        &mut c,
        "GET",
        b"GET http://lynxio.ca/ HTTP/1.1\r\nHost: lynxio.ca\r\n\r\n",
    );
    assert_eq!(ok_page.status, 200);
}

/// A CONNECT inside an intercepted session is refused with a 4xx before anything is dialed
/// (CONNECT is only valid directly from a proxy client), and the session's requests and the
/// tunnel itself appear in the access log with https URLs, kind=intercepted and the ALPN.
fn intercepted_connect_refused_and_logged(driver: &str) {
    let fx = MitmFixture::start("inner-connect", driver, "localhost", Upstream::TestCa, true);
    let target = fx.localhost_target();
    let tls = fx
        .tls(&target, "localhost", roots_of(&[fx.ca()]))
        .unwrap_or_else(|e| panic!("handshake: {e}"));
    let mut r = Reader::new(tls);
    get_ok(&mut r, "/logged", &target);
    let (sink, seen) = byte_sink_origin();
    let inner = sink.addr.to_string();
    let s = r.get_mut();
    s.write_all(format!("CONNECT {inner} HTTP/1.1\r\nHost: {inner}\r\n\r\n").as_bytes())
        .and_then(|()| s.flush())
        .expect("write inner CONNECT");
    let answer = r
        .response("CONNECT")
        .expect("an answer to the inner CONNECT");
    assert!(
        (400..500).contains(&answer.status),
        "inner CONNECT answered {}: {:?}",
        answer.status,
        answer.body_str()
    );
    assert!(
        answer.body_str().contains("CONNECT"),
        "{}",
        answer.body_str()
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(sink.accepted(), 0, "the inner CONNECT target was dialed");
    assert!(seen.lock().map(|b| b.is_empty()).unwrap_or(false));
    drop(r);

    let proxy = fx.proxy();
    let url = format!("https://{target}/logged");
    let wait = std::time::Duration::from_secs(5);
    let line = proxy
        .wait_for_line(wait, |l| {
            l.contains("lynxio::access") && l.contains(&format!(" url={url} "))
        })
        .unwrap_or_else(|| panic!("no access line for {url}:\n{}", proxy.log()));
    assert!(line.contains(" status=200 "), "{line}");
    let tunnel = proxy
        .wait_for_line(wait, |l| l.contains("lynxio::access: tunnel"))
        .unwrap_or_else(|| panic!("no tunnel line:\n{}", proxy.log()));
    assert!(tunnel.contains(" kind=intercepted "), "{tunnel}");
    assert!(tunnel.contains("alpn=\"http/1.1\""), "{tunnel}");
    assert!(tunnel.contains(&format!("target={target}")), "{tunnel}");
}

/// wss through interception: the decrypted handshake is forwarded to the origin over
/// lynxio's own TLS, its 101 comes back, and messages (one of 1 MiB) echo through both TLS
/// sessions until the close handshake.
fn wss_through_interception(driver: &str) {
    use tungstenite::{Bytes, Message as Ws};
    let mut fx = MitmFixture::start("wss", driver, "localhost", Upstream::TestCa, true);
    // With a capture the session is inspected as well: events for the decrypted frames.
    let capture = temp_path("wss-capture.jsonl", driver);
    fx.flags
        .extend(["--capture".to_owned(), path_str(&capture).to_owned()]);
    fx.restart();
    let target = fx.localhost_target();
    let tls = fx
        .tls(&target, "localhost", roots_of(&[fx.ca()]))
        .unwrap_or_else(|e| panic!("handshake: {e}"));
    let mut r = Reader::new(tls);
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    let handshake = format!(
        "GET /chat HTTP/1.1\r\nHost: {target}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    let s = r.get_mut();
    s.write_all(handshake.as_bytes())
        .and_then(|()| s.flush())
        .expect("write handshake");
    let switch = r.response_head().expect("an answer to the handshake");
    assert_eq!(
        switch.status,
        101,
        "{:?}",
        String::from_utf8_lossy(&switch.raw_head)
    );
    assert_eq!(
        switch.header("sec-websocket-accept"),
        Some(tungstenite::handshake::derive_accept_key(key.as_bytes()).as_str())
    );
    let (stream, rest) = r.into_parts();
    let mut ws = tungstenite::WebSocket::from_partially_read(
        stream,
        rest,
        tungstenite::protocol::Role::Client,
        None,
    );
    ws.send(Ws::text("over tls")).expect("send");
    assert_eq!(ws.read().expect("echo"), Ws::text("over tls"));
    let big = Bytes::from(pseudo_random_bytes(1024 * 1024, 4));
    ws.send(Ws::Binary(big.clone())).expect("send 1 MiB");
    assert_eq!(ws.read().expect("echo"), Ws::Binary(big));
    ws_close(&mut ws, None);
    drop(ws);
    let proxy = fx.proxy.take().expect("the proxy is running");
    proxy
        .wait_for_line(std::time::Duration::from_secs(5), |l| {
            l.contains(" upgrade=websocket ")
        })
        .unwrap_or_else(|| panic!("the session did not end:\n{}", proxy.log()));
    let mut proxy = proxy;
    proxy.signal(15);
    assert!(
        proxy
            .wait_exit(std::time::Duration::from_secs(15))
            .is_some()
    );
    let text = std::fs::read_to_string(&capture).expect("capture");
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let open = events
        .iter()
        .find(|e| e["ev"] == "ws_open")
        .expect("ws_open");
    assert_eq!(open["url"], format!("https://{target}/chat").as_str());
    assert!(
        events.iter().any(|e| e["ev"] == "ws_message"
            && e["from"] == "server"
            && e["opcode"] == "binary"
            && e["length"] == 1024 * 1024),
        "{events:#?}"
    );
    let _ = std::fs::remove_file(&capture);
}

use pinning::{
    pinned_certificate_checks_the_name, pinned_self_signed_origin_works,
    unverifiable_origins_are_502_in_words,
};
use resume::{
    client_resumes_with_session_id, client_resumes_with_ticket, client_sessions_never_cross_hosts,
    origin_reconnect_is_resumed, origin_sessions_never_cross_hosts,
};
use rules::{
    auth_with_interception, intercept_matches_sni, redirect_to_https_origin,
    rules_act_on_decrypted_requests,
};

drivers!(
    client_resumes_with_ticket,
    client_resumes_with_session_id,
    origin_reconnect_is_resumed,
    client_sessions_never_cross_hosts,
    origin_sessions_never_cross_hosts,
    auth_with_interception,
    pinned_self_signed_origin_works,
    pinned_certificate_checks_the_name,
    unverifiable_origins_are_502_in_words,
    rules_act_on_decrypted_requests,
    intercept_matches_sni,
    redirect_to_https_origin,
    wss_through_interception,
    intercepted_connect_refused_and_logged,
    certificate_failure_is_502,
    lynxio_ca_page,
    intercept_dns_name,
    intercept_ip_without_sni,
    untrusted_upstream_is_502,
    insecure_upstream_works,
    unselected_host_is_tunnelled,
    ca_persists_across_restarts,
);
