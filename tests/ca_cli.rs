//! `lynxio ca export` and `lynxio ca path`: export creates the CA once and then prints the same
//! certificate every time; path prints where the certificate lives; a corrupt CA file is a
//! non-zero exit with a message naming the file, and is never overwritten.

use std::path::PathBuf;
use std::process::{Command, Output};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lynxio-ca-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn lynxio(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lynxio"))
        .args(args)
        .output()
        .expect("run lynxio")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8 stdout")
}

#[test]
fn export_twice_prints_the_same_certificate() {
    let dir = temp_dir("export");
    let d = dir.to_str().expect("utf-8 path");
    let first = stdout(&lynxio(&["ca", "export", "--ca-dir", d]));
    assert!(first.starts_with("-----BEGIN CERTIFICATE-----"), "{first}");
    assert!(
        first.trim_end().ends_with("-----END CERTIFICATE-----"),
        "{first}"
    );
    assert!(dir.join("ca-key.pem").exists());
    let second = stdout(&lynxio(&["ca", "export", "--ca-dir", d]));
    assert_eq!(first, second);
    assert_eq!(
        std::fs::read_to_string(dir.join("ca.pem")).expect("ca.pem"),
        first
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn path_prints_the_certificate_path() {
    let dir = temp_dir("path");
    let d = dir.to_str().expect("utf-8 path");
    let out = stdout(&lynxio(&["ca", "path", "--ca-dir", d]));
    assert_eq!(out.trim_end(), dir.join("ca.pem").display().to_string());
    assert!(!dir.exists(), "path must not create the CA");
}

#[test]
fn ca_dir_comes_from_the_config_file() {
    let dir = temp_dir("cfg-ca");
    let cfg = temp_dir("cfg").with_extension("toml");
    std::fs::write(
        &cfg,
        format!("ca_dir = {:?}\n", dir.to_str().expect("utf-8")),
    )
    .expect("cfg");
    let out = stdout(&lynxio(&[
        "ca",
        "path",
        "--config",
        cfg.to_str().expect("utf-8"),
    ]));
    assert_eq!(out.trim_end(), dir.join("ca.pem").display().to_string());
    let _ = std::fs::remove_file(&cfg);
}

#[test]
fn corrupt_ca_is_a_clear_failure() {
    let dir = temp_dir("corrupt");
    let d = dir.to_str().expect("utf-8 path");
    stdout(&lynxio(&["ca", "export", "--ca-dir", d]));
    let cert = dir.join("ca.pem");
    std::fs::write(&cert, "garbage\n").expect("corrupt");
    let out = lynxio(&["ca", "export", "--ca-dir", d]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&cert.display().to_string()), "{err}");
    assert_eq!(std::fs::read_to_string(&cert).expect("ca.pem"), "garbage\n");
    let _ = std::fs::remove_dir_all(&dir);
}
