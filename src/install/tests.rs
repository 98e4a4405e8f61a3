//! The pieces of `ca install` that need no tool: the sudo hint, shell quoting, the CA's name.

use super::*;

fn opts(root: &str) -> Options {
    Options {
        mode: Mode::Install,
        dry_run: false,
        system: true,
        nss: true,
        system_root: PathBuf::from(root),
        home: None,
        ca_dir: PathBuf::from("/home/ann/.local/share/lynxio"),
    }
}

#[test]
fn sudo_hint_names_the_ca_dir() {
    let hint = sudo_hint(&opts("/"));
    assert!(hint.starts_with("sudo "), "{hint}");
    assert!(
        hint.ends_with(" ca install --only system --ca-dir /home/ann/.local/share/lynxio"),
        "{hint}"
    );
    let hint = sudo_hint(&opts("/tmp/my root"));
    assert!(hint.ends_with(" --system-root '/tmp/my root'"), "{hint}");
}

#[test]
fn shell_words() {
    assert_eq!(shell_word("/usr/bin/lynxio"), "/usr/bin/lynxio");
    assert_eq!(shell_word("a b"), "'a b'");
    assert_eq!(shell_word("it's"), r"'it'\''s'");
    assert_eq!(shell_word(""), "''");
}

#[test]
fn nickname_is_the_common_name() {
    let dir = std::env::temp_dir().join(format!("lynxio-install-cn-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ca = crate::mitm::ca::load_or_create(&dir).unwrap();
    let cert = CaCert::new(ca.cert_pem().to_owned(), ca.cert_path());
    let name = cert.nickname.unwrap();
    assert!(name.starts_with("lynxio CA "), "{name}");
    let _ = std::fs::remove_dir_all(&dir);
}
