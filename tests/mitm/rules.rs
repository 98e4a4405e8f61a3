//! Rules and credentials with interception: request rules act on decrypted requests
//! (`scheme = "https"` matches only those), an intercept rule written for a name matches a
//! CONNECT by IP address whose SNI carries that name, a redirect to `https://` reaches a TLS
//! origin over lynxio's own verified TLS, and `--auth` guards the CONNECT of an intercepted
//! tunnel.

use crate::common::*;
use crate::fixture::*;

/// Writes `toml` next to the fixture's CA dir and restarts the proxy with `--config` on it.
fn with_rules(fx: &mut MitmFixture, toml: &str) {
    let file = fx.dir.path().with_extension("toml");
    std::fs::write(&file, toml).expect("write config");
    fx.flags.extend([
        "--config".to_owned(),
        file.to_str().expect("utf-8 path").to_owned(),
    ]);
    fx.restart();
}

/// Decrypted requests meet the rules: a mock answers over TLS without the origin, a rewrite
/// swaps the path prefix and adds a response header, and an `http`-only rule does not match.
pub fn rules_act_on_decrypted_requests(driver: &str) {
    let mut fx = MitmFixture::start("rules-https", driver, "localhost", Upstream::TestCa, true);
    with_rules(
        &mut fx,
        r#"
[[rule]]
name = "stub"
match = { scheme = "https", path = "/mocked" }
action = "mock"
headers = { "content-type" = "text/plain" }
body = "from a rule"

[[rule]]
name = "plain-only"
match = { scheme = "http", path = "/v1/*" }
action = "block"

[[rule]]
name = "v2"
match = { host = "localhost", path = "/v1/*" }
action = "rewrite"
path_prefix = { from = "/v1/", to = "/v2/" }
set_response_headers = { "x-rule" = "v2" }
"#,
    );
    let target = fx.localhost_target();
    let tls = fx
        .tls(&target, "localhost", roots_of(&[fx.ca()]))
        .unwrap_or_else(|e| panic!("handshake: {e}"));
    let mut r = Reader::new(tls);
    let before = fx.origin.requests();
    let mocked = request(&mut r, "GET", "/mocked", &target, b"");
    assert_eq!(
        (mocked.status, mocked.body_str().as_str()),
        (200, "from a rule")
    );
    assert_eq!(
        fx.origin.requests(),
        before,
        "a mock never reaches the origin"
    );
    let rewritten = request(&mut r, "GET", "/v1/items", &target, b"");
    assert_eq!(
        rewritten.status, 200,
        "the http-only block must not match https"
    );
    assert_eq!(rewritten.body_str(), "GET /v2/items");
    assert_eq!(rewritten.header("x-rule"), Some("v2"));
}

/// A rule's host pattern matches the CONNECT host or the SNI: `--mitm 127.0.0.1` intercepts
/// `CONNECT 127.0.0.1:PORT` whose ClientHello says SNI `localhost` (the leaf is minted for the
/// SNI), and so does `--mitm localhost`. The client, trusting only lynxio's CA, completes its
/// handshake and reaches the origin through lynxio.
pub fn intercept_matches_sni(driver: &str) {
    for rule in ["127.0.0.1", "localhost"] {
        intercept_by(driver, rule);
    }
}

fn intercept_by(driver: &str, rule: &str) {
    let fx = MitmFixture::start("sni-rule", driver, rule, Upstream::TestCa, false);
    let target = format!("127.0.0.1:{}", fx.origin.port());
    let tls = fx
        .tls(&target, "localhost", roots_of(&[fx.ca()]))
        .unwrap_or_else(|e| panic!("a CONNECT by IP with SNI localhost was not intercepted: {e}"));
    assert_ne!(presented_leaf(&tls), fx.origin.leaf_der);
    let mut r = Reader::new(tls);
    get_ok(&mut r, "/by-sni", &target);
}

/// A redirect rule sends a plain `http://` request to an `https://` origin: lynxio opens its own
/// TLS (verified with `--upstream-ca`, SNI from the redirect) and pools it for the next request.
pub fn redirect_to_https_origin(driver: &str) {
    let mut fx = MitmFixture::start("redirect-tls", driver, "none.test", Upstream::TestCa, true);
    let to = format!("https://localhost:{}", fx.origin.port());
    with_rules(
        &mut fx,
        &format!(
            r#"
[[rule]]
name = "to-tls"
match = {{ host = "api.plain.test" }}
action = "redirect"
to = "{to}"
"#
        ),
    );
    let mut c = Reader::new(fx.proxy().connect());
    for path in ["/one", "/two"] {
        let req =
            format!("GET http://api.plain.test{path} HTTP/1.1\r\nHost: api.plain.test\r\n\r\n");
        let m = roundtrip(&mut c, "GET", req.as_bytes());
        assert_eq!((m.status, m.body_str()), (200, format!("GET {path}")));
        assert_eq!(m.header("x-sni"), Some("localhost"));
    }
}

/// With `--auth`, an intercepted tunnel needs credentials on its CONNECT (407 without, nothing
/// dialed), and the decrypted requests inside it need none; the origin never sees them.
pub fn auth_with_interception(driver: &str) {
    let mut fx = MitmFixture::start("auth-mitm", driver, "localhost", Upstream::TestCa, true);
    fx.flags
        .extend(["--auth".to_owned(), "alice:s3cret".to_owned()]);
    fx.restart();
    let target = fx.localhost_target();
    let connect = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    let reply = send_raw(
        fx.proxy().addr,
        connect.as_bytes(),
        std::time::Duration::from_secs(5),
    );
    assert_error_reply(&reply, 407, "CONNECT without credentials");
    let before = fx.origin.requests();
    let mut sock = fx.proxy().connect();
    let creds = "YWxpY2U6czNjcmV0"; // alice:s3cret
    std::io::Write::write_all(
        &mut sock,
        format!(
            "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: Basic {creds}\r\n\r\n"
        )
        .as_bytes(),
    )
    .expect("CONNECT");
    read_established(&mut sock);
    let tls = tls_over(sock, "localhost", roots_of(&[fx.ca()])).expect("handshake");
    let mut r = Reader::new(tls);
    get_ok(&mut r, "/inside", &target);
    assert_eq!(fx.origin.requests(), before + 1);
    let log = fx.stop_and_log();
    assert!(
        !log.contains("s3cret") && !log.contains(creds),
        "credentials logged:\n{log}"
    );
}
