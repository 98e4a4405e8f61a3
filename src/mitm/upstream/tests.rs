//! The wording of origin TLS failures, and pinning: a self-signed CA:TRUE certificate is
//! accepted as-is when pinned (its names still checked), refused otherwise.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use super::*;

/// A self-signed certificate for `names` (none: CN only), CA:TRUE like `openssl req -x509`.
fn self_signed(names: &[&str], cn: &str) -> CertificateDer<'static> {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(names).expect("params");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().expect("key");
    params.self_signed(&key).expect("self-signed").der().clone()
}

/// The verifier `client_config` builds, with `roots` trusted and `pinned` pinned.
fn verifier(
    roots: &[&CertificateDer<'static>],
    pinned: &[&CertificateDer<'static>],
) -> PinningVerifier {
    let mut store = RootCertStore::empty();
    for r in roots {
        store.add((*r).clone()).expect("root");
    }
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(store), ca::provider())
        .build()
        .expect("verifier");
    let pins = pinned
        .iter()
        .map(|c| Pin::new((*c).clone()).expect("pin"))
        .collect();
    PinningVerifier::new(pins, webpki)
}

fn verify(v: &PinningVerifier, cert: &CertificateDer<'_>, name: &str) -> Result<(), String> {
    let name = ServerName::try_from(name.to_owned()).expect("server name");
    v.verify_server_cert(cert, &[], &name, &[], UnixTime::now())
        .map(drop)
        .map_err(|e| explain(&e))
}

#[test]
fn a_pinned_self_signed_ca_certificate_is_accepted_for_its_names() {
    let cert = self_signed(&["localhost", "127.0.0.1"], "localhost");
    let v = verifier(&[&cert], &[&cert]);
    assert_eq!(verify(&v, &cert, "localhost"), Ok(()));
    assert_eq!(verify(&v, &cert, "127.0.0.1"), Ok(()));
    assert_eq!(
        verify(&v, &cert, "other.test"),
        Err(
            "the origin's certificate is for other names (localhost, 127.0.0.1), not other.test"
                .to_owned()
        )
    );
}

#[test]
fn a_pinned_certificate_without_san_is_checked_against_its_common_name() {
    let cert = self_signed(&[], "Pinned.Test");
    let v = verifier(&[&cert], &[&cert]);
    assert_eq!(verify(&v, &cert, "pinned.test"), Ok(()));
    let err = verify(&v, &cert, "localhost").expect_err("another name");
    assert!(err.contains("for other names (Pinned.Test)"), "{err}");
}

#[test]
fn without_the_pin_a_ca_certificate_is_refused_in_words() {
    let cert = self_signed(&["localhost"], "localhost");
    let as_root_only = verifier(&[&cert], &[]);
    let err = verify(&as_root_only, &cert, "localhost").expect_err("CA as end entity");
    assert!(
        err.contains("is a CA certificate") && err.contains("--upstream-ca"),
        "{err}"
    );
    // A plain (CA:FALSE) certificate nobody vouched for: unknown issuer.
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params.is_ca = IsCa::ExplicitNoCa;
    let key = KeyPair::generate().expect("key");
    let leaf = params.self_signed(&key).expect("leaf").der().clone();
    let pinned_other = verifier(&[&cert], &[&cert]);
    assert_eq!(
        verify(&pinned_other, &leaf, "localhost"),
        Err(
            "the origin's certificate is not trusted (unknown issuer); pass its CA with \
             --upstream-ca (or the certificate itself, to pin it)"
                .to_owned()
        )
    );
}

#[test]
fn certificate_errors_in_plain_words() {
    let cases: Vec<(rustls::Error, &str)> = vec![
        (
            CertificateError::Expired.into(),
            "the origin's certificate has expired",
        ),
        (
            CertificateError::ExpiredContext {
                time: UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_800_000_000)),
                not_after: UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                    1_700_000_000,
                )),
            }
            .into(),
            "the origin's certificate expired on 2023-11-14T22:13:20Z",
        ),
        (
            CertificateError::NotValidYet.into(),
            "the origin's certificate is not valid yet",
        ),
        (
            CertificateError::NotValidForName.into(),
            "the origin's certificate is for other names",
        ),
        (
            CertificateError::Revoked.into(),
            "the origin's certificate has been revoked",
        ),
        (
            CertificateError::BadSignature.into(),
            "the origin's certificate has an invalid signature",
        ),
        (
            rustls::Error::General("boom".into()),
            "the TLS handshake with the origin failed: unexpected error: boom",
        ),
    ];
    for (error, want) in cases {
        assert_eq!(explain(&error), want, "{error:?}");
    }
}

#[test]
fn presented_names_lose_their_webpki_wrapping() {
    assert_eq!(plain_name("DnsName(\"a.test\")"), "a.test");
    assert_eq!(plain_name("IpAddress(127.0.0.1)"), "127.0.0.1");
    assert_eq!(plain_name("plain"), "plain");
}
