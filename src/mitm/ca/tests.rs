use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// A unique scratch directory, removed on drop.
pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("lynxio-ca-test-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn expect_err(dir: &Path) -> CaError {
    match load_or_create(dir) {
        Ok(ca) => panic!("expected an error, loaded {ca:?}"),
        Err(e) => e,
    }
}

#[test]
fn create_then_reload_gives_the_same_ca() {
    let tmp = TempDir::new("reload");
    let dir = tmp.0.join("nested/ca");
    let first = load_or_create(&dir).unwrap();
    assert!(first.created());
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(CA_KEY_FILE)), 0o600);
    assert!(first.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(first.cert_path(), dir.join(CA_CERT_FILE));
    // No temporary files left behind.
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, [CA_KEY_FILE, CA_CERT_FILE]);

    let second = load_or_create(&dir).unwrap();
    assert!(!second.created());
    assert_eq!(first.cert_der(), second.cert_der());
    assert_eq!(first.cert_pem(), second.cert_pem());
    let key = std::fs::read(dir.join(CA_KEY_FILE)).unwrap();
    let third = load(&dir).unwrap();
    assert_eq!(third.cert_der(), first.cert_der());
    assert_eq!(std::fs::read(dir.join(CA_KEY_FILE)).unwrap(), key);
}

#[test]
fn debug_does_not_print_the_key() {
    let tmp = TempDir::new("debug");
    let ca = load_or_create(&tmp.0).unwrap();
    let text = format!("{ca:?}");
    assert!(!text.contains("PRIVATE"), "{text}");
    assert!(text.contains("CertificateAuthority"));
}

/// Corrupting `file` makes loading fail with an error naming it, and nothing is overwritten.
fn corrupt_file_is_an_error(file: &str, contents: &[u8]) -> String {
    let tmp = TempDir::new("corrupt");
    load_or_create(&tmp.0).unwrap();
    let path = tmp.0.join(file);
    std::fs::write(&path, contents).unwrap();
    let other = tmp.0.join(if file == CA_CERT_FILE {
        CA_KEY_FILE
    } else {
        CA_CERT_FILE
    });
    let other_before = std::fs::read(&other).unwrap();
    let err = expect_err(&tmp.0);
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert_eq!(std::fs::read(&path).unwrap(), contents);
    assert_eq!(std::fs::read(&other).unwrap(), other_before);
    msg
}

#[test]
fn corrupt_cert_is_an_error() {
    let msg = corrupt_file_is_an_error(CA_CERT_FILE, b"not a certificate\n");
    assert!(msg.contains("not a valid CA certificate"), "{msg}");
    // Valid PEM framing around garbage DER.
    let msg = corrupt_file_is_an_error(
        CA_CERT_FILE,
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    assert!(msg.contains("not a valid CA certificate"), "{msg}");
}

#[test]
fn corrupt_key_is_an_error() {
    let msg = corrupt_file_is_an_error(CA_KEY_FILE, b"");
    assert!(msg.contains("not a valid private key"), "{msg}");
    let msg = corrupt_file_is_an_error(
        CA_KEY_FILE,
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    );
    assert!(msg.contains("not a valid private key"), "{msg}");
}

#[test]
fn mismatched_pair_is_an_error() {
    let a = TempDir::new("mismatch-a");
    let b = TempDir::new("mismatch-b");
    load_or_create(&a.0).unwrap();
    load_or_create(&b.0).unwrap();
    let foreign_key = std::fs::read(b.0.join(CA_KEY_FILE)).unwrap();
    std::fs::write(a.0.join(CA_KEY_FILE), &foreign_key).unwrap();
    let cert_before = std::fs::read(a.0.join(CA_CERT_FILE)).unwrap();
    let err = expect_err(&a.0);
    assert!(matches!(err, CaError::Mismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(CA_KEY_FILE) && msg.contains(CA_CERT_FILE),
        "{msg}"
    );
    assert_eq!(std::fs::read(a.0.join(CA_CERT_FILE)).unwrap(), cert_before);
    assert_eq!(std::fs::read(a.0.join(CA_KEY_FILE)).unwrap(), foreign_key);
}

#[test]
fn missing_half_is_an_error_not_a_regeneration() {
    let tmp = TempDir::new("half");
    load_or_create(&tmp.0).unwrap();
    let key = std::fs::read(tmp.0.join(CA_KEY_FILE)).unwrap();
    std::fs::remove_file(tmp.0.join(CA_CERT_FILE)).unwrap();
    let err = expect_err(&tmp.0);
    assert!(matches!(err, CaError::Incomplete { .. }), "{err}");
    assert!(err.to_string().contains(CA_CERT_FILE), "{err}");
    assert!(!tmp.0.join(CA_CERT_FILE).exists());
    assert_eq!(std::fs::read(tmp.0.join(CA_KEY_FILE)).unwrap(), key);
}

#[test]
fn unreadable_file_is_an_error() {
    let tmp = TempDir::new("unreadable");
    load_or_create(&tmp.0).unwrap();
    // A directory where the certificate should be: reading fails even as root.
    std::fs::remove_file(tmp.0.join(CA_CERT_FILE)).unwrap();
    std::fs::create_dir(tmp.0.join(CA_CERT_FILE)).unwrap();
    let err = expect_err(&tmp.0);
    assert!(matches!(err, CaError::Read { .. }), "{err}");
    assert!(err.to_string().contains(CA_CERT_FILE), "{err}");
}

#[test]
fn a_certificate_that_is_not_a_ca_is_rejected() {
    let tmp = TempDir::new("not-ca");
    std::fs::create_dir_all(&tmp.0).unwrap();
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let params = CertificateParams::new(vec!["example.test".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(tmp.0.join(CA_CERT_FILE), cert.pem()).unwrap();
    std::fs::write(tmp.0.join(CA_KEY_FILE), key.serialize_pem()).unwrap();
    let err = expect_err(&tmp.0);
    assert!(matches!(err, CaError::BadCert { .. }), "{err}");
    assert!(err.to_string().contains("not a CA"), "{err}");
}

#[test]
fn an_expired_ca_is_rejected() {
    let tmp = TempDir::new("expired");
    std::fs::create_dir_all(&tmp.0).unwrap();
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    params.not_before = rcgen::date_time_ymd(2000, 1, 1);
    params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(tmp.0.join(CA_CERT_FILE), cert.pem()).unwrap();
    std::fs::write(tmp.0.join(CA_KEY_FILE), key.serialize_pem()).unwrap();
    let err = expect_err(&tmp.0);
    assert!(err.to_string().contains("valid only from"), "{err}");
}

#[test]
fn new_ca_has_the_documented_shape() {
    let tmp = TempDir::new("shape");
    let ca = load_or_create(&tmp.0).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(ca.cert_der()).unwrap();
    assert!(cert.is_ca());
    let cn = cert.subject().iter_common_name().next().unwrap();
    assert!(cn.as_str().unwrap().starts_with("lynxio CA "), "{cn:?}");
    let o = cert.subject().iter_organization().next().unwrap();
    assert_eq!(o.as_str().unwrap(), "lynxio");
    let ku = cert.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign());
    let v = cert.validity();
    let now = x509_parser::time::ASN1Time::now().timestamp();
    let day = 24 * 3600;
    assert!((now - v.not_before.timestamp() - day).abs() < 120);
    assert_eq!(
        v.not_after.timestamp() - v.not_before.timestamp(),
        CA_VALIDITY.as_secs() as i64
    );
}

#[test]
fn uncreatable_dir_is_an_error() {
    let tmp = TempDir::new("uncreatable");
    std::fs::create_dir_all(&tmp.0).unwrap();
    let file = tmp.0.join("file");
    std::fs::write(&file, b"x").unwrap();
    let err = expect_err(&file.join("ca"));
    assert!(matches!(err, CaError::CreateDir { .. }), "{err}");
}

#[test]
fn default_dir_ends_in_lynxio() {
    let dir = default_dir();
    assert!(
        dir.ends_with("lynxio") || dir.ends_with(".lynxio"),
        "{dir:?}"
    );
}
