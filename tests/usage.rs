//! The command line as people expect it, run on the real binary: `--help` shows every flag's
//! default and the duration and address forms; `--listen` errors say the expected form and
//! `localhost:PORT` works; `completions` and `man` produce output from the same definition;
//! `check-config` prints the effective settings and exits 0, or names the problem and exits 1;
//! usage errors exit 2.

mod common;

use std::process::{Command, Output};

use common::*;

fn lynxio(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lynxio"))
        .args(args)
        .output()
        .expect("run lynxio")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn temp_file(name: &str, contents: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("lynxio-usage-{}-{name}", std::process::id()));
    std::fs::write(&path, contents).expect("write temp file");
    path
}

#[test]
fn help_shows_defaults_and_formats() {
    for args in [&["--help"][..], &["run", "--help"]] {
        let out = lynxio(args);
        assert!(out.status.success());
        let help = text(&out.stdout);
        for expected in [
            "[default: 127.0.0.1:8080]",
            "[default: 30s]",   // --client-head-timeout
            "[default: 10s]",   // --connect-timeout
            "[default: 1m]",    // --response-timeout
            "[default: 65536]", // --max-head-bytes
            "[default: auto]",  // --driver
            "250ms, 5s",
            "[IPv6]:PORT",
            "Exit status: 0",
        ] {
            assert!(
                help.contains(expected),
                "{args:?}: {expected:?} missing:\n{help}"
            );
        }
    }
    let out = lynxio(&["check-config", "--help"]);
    assert!(text(&out.stdout).contains("[default: 10s]"));
}

#[test]
fn listen_errors_say_the_expected_form() {
    for bad in ["not-an-address", "127.0.0.1", "localhost:http", "[::1]"] {
        let out = lynxio(&["--listen", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = text(&out.stderr);
        assert!(err.contains(bad), "{bad}: {err}");
        assert!(
            err.contains("IP:PORT, [IPv6]:PORT or localhost:PORT"),
            "{bad}: {err}"
        );
    }
    let out = lynxio(&["--connect-timeout", "5"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("250ms, 5s"),
        "{}",
        text(&out.stderr)
    );
}

/// `--listen localhost:0` binds 127.0.0.1 and serves.
fn listen_on_localhost(driver: &str) {
    let origin = Origin::http(|_| ok(b"via localhost"));
    let proxy = Proxy::start_with_args(&[
        "--listen",
        "localhost:0",
        "--workers",
        "1",
        "--driver",
        driver,
    ]);
    assert_eq!(proxy.addr.ip().to_string(), "127.0.0.1");
    let raw = exchange(
        proxy.addr,
        format!(
            "GET {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            origin.url("/")
        )
        .as_bytes(),
    );
    assert_eq!(status_of(&raw), 200);
}

drivers!(listen_on_localhost);

#[test]
fn completions_for_every_shell() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef lynxio"),
        ("fish", "complete -c lynxio"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = lynxio(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(script.contains(marker), "{shell}: no {marker:?}");
        assert!(script.contains("connect-timeout"), "{shell}: flags missing");
        assert!(
            script.contains("check-config"),
            "{shell}: subcommands missing"
        );
    }
    let out = lynxio(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn man_page_from_the_same_definition() {
    let out = lynxio(&["man"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let page = text(&out.stdout);
    assert!(page.contains(".TH lynxio 1"), "{page}");
    assert!(page.contains("connect\\-timeout"), "flags missing");
    assert!(page.contains("[default: 10s]"), "defaults missing");
    assert!(page.contains("check\\-config"), "subcommands missing");
}

#[test]
fn check_config_valid_prints_effective_settings() {
    let file = temp_file(
        "ok.toml",
        "listen = [\"localhost:9000\", \"[::1]:9000\"]\nworkers = 2\nconnect_timeout = \"5s\"\n\
         [[rule]]\nname = \"stub\"\nmatch = { host = \"api.test\" }\naction = \"block\"\n",
    );
    let f = file.to_str().expect("utf-8 path");
    let out = lynxio(&["check-config", f]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let summary = text(&out.stdout);
    for line in [
        "listen = [\"127.0.0.1:9000\", \"[::1]:9000\"]",
        "workers = 2",
        "connect_timeout = \"5s\"",
        "response_timeout = \"1m\"",
        "rules = 1",
    ] {
        assert!(summary.contains(line), "{line:?} missing:\n{summary}");
    }
    // Flags count, as for `run`: they win over the file.
    let out = lynxio(&[
        "check-config",
        f,
        "--workers",
        "3",
        "--admin-token",
        "s3cret",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let summary = text(&out.stdout);
    assert!(summary.contains("workers = 3"), "{summary}");
    assert!(!summary.contains("s3cret"), "a secret was printed");
    let _ = std::fs::remove_file(file);
}

#[test]
fn check_config_invalid_exits_1_with_the_reason() {
    let cases = [
        ("bad-key.toml", "listne = []\n", "listne"),
        (
            "bad-dur.toml",
            "connect_timeout = \"5\"\n",
            "connect_timeout",
        ),
        ("bad-listen.toml", "listen = [\"nope\"]\n", "IP:PORT"),
        (
            "bad-rule.toml",
            "[[rule]]\nname = \"r\"\nmatch = { path = \"~(\" }\naction = \"block\"\n",
            "regex",
        ),
        (
            "bad-mock.toml",
            "[[rule]]\nmatch = { host = \"a\" }\naction = \"mock\"\nfile = \"/nonexistent/x\"\n",
            "/nonexistent/x",
        ),
        (
            "bad-ca.toml",
            "upstream_ca = \"/nonexistent/ca.pem\"\n",
            "/nonexistent/ca.pem",
        ),
    ];
    for (name, contents, expected) in cases {
        let file = temp_file(name, contents);
        let out = lynxio(&["check-config", file.to_str().expect("utf-8 path")]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", text(&out.stdout));
        let err = text(&out.stderr);
        assert!(
            err.contains("is not valid") && err.contains(expected),
            "{name}: {err}"
        );
        let _ = std::fs::remove_file(file);
    }
    let out = lynxio(&["check-config", "/nonexistent/lynxio.toml"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn exit_statuses() {
    // Usage error: 2.
    assert_eq!(lynxio(&["--no-such-flag"]).status.code(), Some(2));
    // Configuration error at start: 2.
    assert_eq!(
        lynxio(&["--listen", "127.0.0.1:0", "--workers", "0"])
            .status
            .code(),
        Some(2)
    );
    // Runtime failure (the address is taken): 1.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let out = lynxio(&["--listen", &addr, "--workers", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
}
