//! Pinning and the words of origin certificate failures: an origin serving a self-signed
//! CA:TRUE certificate (what `openssl req -x509` makes) is reached when that very certificate
//! is given with `--upstream-ca`, still only under the names it is for; origins lynxio cannot
//! verify get a 502 whose body says why in a plain sentence.

use std::io::Write;

use crate::common::*;
use crate::fixture::*;

/// CONNECT `target`, TLS as `name` trusting lynxio's root, one GET: the response.
fn first_response(fx: &MitmFixture, target: &str, name: &str) -> Message {
    let mut tls = fx
        .tls(target, name, roots_of(&[fx.ca()]))
        .unwrap_or_else(|e| panic!("the client's handshake with lynxio must succeed: {e}"));
    // lynxio may answer before reading the request: a failed write is fine, the read decides.
    let _ = tls
        .write_all(format!("GET /x HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .and_then(|()| tls.flush());
    Reader::new(tls)
        .final_response("GET")
        .expect("a response to the request")
        .1
}

/// A 502 whose body holds `words` and no internal name; the origin saw no request.
fn assert_502_saying(fx: &MitmFixture, got: &Message, words: &str) {
    let body = got.body_str();
    assert_eq!(got.status, 502, "{body:?}");
    assert!(
        body.contains(words),
        "the 502 body should say {words:?}: {body:?}"
    );
    assert_eq!(internal_name_in(&body), None, "{body:?}");
    assert_eq!(
        fx.origin.requests(),
        0,
        "the origin must not receive the request"
    );
}

/// The self-signed CA:TRUE origin certificate passed as `--upstream-ca` is pinned: decrypted
/// requests on one connection reach the origin and come back with `Via`.
pub fn pinned_self_signed_origin_works(driver: &str) {
    let origin = TlsOrigin::start_with("pinned", driver, OriginCert::SelfSignedCa);
    let fx = MitmFixture::with_origin(
        origin,
        "pinned",
        driver,
        "localhost",
        Upstream::TestCa,
        true,
    );
    let target = fx.localhost_target();
    let tls = fx
        .tls(&target, "localhost", roots_of(&[fx.ca()]))
        .unwrap_or_else(|e| panic!("handshake with lynxio: {e}"));
    let mut r = Reader::new(tls);
    for path in ["/pinned", "/again?x=1"] {
        let got = get_ok(&mut r, path, &target);
        assert_via(&got, path);
    }
    let body = pseudo_random_bytes(POST_LEN, 9);
    let got = request(&mut r, "POST", "/upload", &target, &body);
    // The origin echoes `METHOD TARGET`, a newline and the body (a direct rustls client
    // cannot check: it refuses the CA:TRUE certificate, which is the point of pinning).
    let mut want = b"POST /upload\n".to_vec();
    want.extend_from_slice(&body);
    assert_eq!((got.status, got.body == want), (200, true), "POST /upload");
    assert_via(&got, "POST /upload");
}

/// A pinned certificate is trusted only for the names it is for: the same origin reached as
/// `other.test` gets a 502 naming the certificate's names.
pub fn pinned_certificate_checks_the_name(driver: &str) {
    let origin = TlsOrigin::start_with("pinned-name", driver, OriginCert::SelfSignedCa);
    let port = origin.port();
    let mut fx = MitmFixture::with_origin(
        origin,
        "pinned-name",
        driver,
        "other.test",
        Upstream::TestCa,
        false,
    );
    fx.flags.extend([
        "--resolve".to_owned(),
        format!("other.test:{port}:127.0.0.1"),
    ]);
    fx.restart();
    let got = first_response(&fx, &format!("other.test:{port}"), "other.test");
    assert_502_saying(
        &fx,
        &got,
        "the origin's certificate is for other names (localhost, 127.0.0.1), not other.test",
    );
}

/// Without `--upstream-ca`: an origin whose certificate chains to an unknown CA, and one with
/// a self-signed CA:TRUE certificate, each get a 502 saying what to do.
pub fn unverifiable_origins_are_502_in_words(driver: &str) {
    let fx = MitmFixture::start(
        "unknown-ca",
        driver,
        "localhost",
        Upstream::Unverified,
        true,
    );
    let got = first_response(&fx, &fx.localhost_target(), "localhost");
    assert_502_saying(
        &fx,
        &got,
        "the origin's certificate is not trusted (unknown issuer); pass its CA with --upstream-ca",
    );
    drop(fx);

    let origin = TlsOrigin::start_with("unknown-self", driver, OriginCert::SelfSignedCa);
    let fx = MitmFixture::with_origin(
        origin,
        "unknown-self",
        driver,
        "localhost",
        Upstream::Unverified,
        true,
    );
    let got = first_response(&fx, &fx.localhost_target(), "localhost");
    assert_502_saying(&fx, &got, "is a CA certificate");
    assert_502_saying(&fx, &got, "pass it with --upstream-ca");
}
