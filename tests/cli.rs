//! Command line and config file: a TOML file can carry every setting, flags win over it, and a
//! bad file or flag stops startup with a clear message instead of running half-configured.

mod common;

use std::process::Command;

use common::*;

fn temp_config(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("lynxio-test-{}-{name}.toml", std::process::id()));
    std::fs::write(&path, text).expect("write config");
    path
}

/// Listen address, workers, driver and a resolve override all come from the file.
fn config_file_runs_the_proxy(driver: &str) {
    let origin = Origin::http(|req| ok(req.target.as_bytes()));
    let port = origin.addr.port();
    let path = temp_config(
        &format!("ok-{driver}"),
        &format!(
            "listen = [\"127.0.0.1:0\"]\nworkers = 1\ndriver = \"{driver}\"\n\
             resolve = [\"cfg.test:{port}:127.0.0.1\"]\nconnect_timeout = \"2s\"\n"
        ),
    );
    let proxy = Proxy::start_with_args(&["--config", path.to_str().expect("utf-8 path")]);
    let mut c = Reader::new(proxy.connect());
    let req = format!("GET http://cfg.test:{port}/c HTTP/1.1\r\nHost: cfg.test\r\n\r\n");
    let resp = roundtrip(&mut c, "GET", req.as_bytes());
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_str(), "/c");
    let _ = std::fs::remove_file(path);
}

/// Flags override the file: the file's timeout is huge, the flag's is short.
fn flags_override_file(driver: &str) {
    let origin = Origin::start(|s| {
        // Never answers: the response timeout decides.
        std::thread::sleep(std::time::Duration::from_secs(5));
        drop(s);
    });
    let path = temp_config(
        &format!("override-{driver}"),
        "response_timeout = \"1h\"\nworkers = 1\n",
    );
    let proxy = Proxy::start_with_args(&[
        "--config",
        path.to_str().expect("utf-8 path"),
        "--listen",
        "127.0.0.1:0",
        "--driver",
        driver,
        "--response-timeout",
        "200ms",
    ]);
    let started = std::time::Instant::now();
    let raw = exchange(
        proxy.addr,
        format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url("/")).as_bytes(),
    );
    assert_eq!(status_of(&raw), 504);
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    let _ = std::fs::remove_file(path);
}

drivers!(config_file_runs_the_proxy, flags_override_file);

fn run_expecting_failure(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_lynxio"))
        .args(args)
        .output()
        .expect("run lynxio");
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_settings_fail_startup_clearly() {
    let unknown = temp_config("unknown-key", "listne = [\"127.0.0.1:0\"]\n");
    let err = run_expecting_failure(&["--config", unknown.to_str().expect("utf-8 path")]);
    assert!(err.contains("listne"), "{err}");
    let _ = std::fs::remove_file(unknown);

    let err = run_expecting_failure(&["--config", "/nonexistent/lynxio.toml"]);
    assert!(err.contains("/nonexistent/lynxio.toml"), "{err}");

    let err = run_expecting_failure(&["--listen", "127.0.0.1:0", "--resolve", "nocolon"]);
    assert!(err.contains("nocolon"), "{err}");

    let err = run_expecting_failure(&["--listen", "127.0.0.1:0", "--cpus", "3-1"]);
    assert!(err.contains("3-1"), "{err}");

    let err = run_expecting_failure(&["--listen", "not-an-address"]);
    assert!(err.contains("not-an-address"), "{err}");

    let bad_rule = temp_config(
        "bad-rule",
        "[[rule]]\nname = \"zero\"\nmatch = { port = 0 }\naction = \"intercept\"\n",
    );
    let err = run_expecting_failure(&["--config", bad_rule.to_str().expect("utf-8 path")]);
    assert!(err.contains("zero") && err.contains("port 0"), "{err}");
    let _ = std::fs::remove_file(bad_rule);

    let bad_action = temp_config(
        "bad-action",
        "[[rule]]\nmatch = { host = \"a\" }\naction = \"explode\"\n",
    );
    let err = run_expecting_failure(&["--config", bad_action.to_str().expect("utf-8 path")]);
    assert!(err.contains("explode"), "{err}");
    let _ = std::fs::remove_file(bad_action);
}

/// `--log` takes tracing's filter syntax; a bare word that is not a level (`verbose`) would be
/// read as a target and silence everything, so it stops startup with the filter named and an
/// example, like a filter that does not parse.
#[test]
fn bad_log_filter_fails_startup() {
    for bad in ["verbose", "info,loud", "lynxio=loud"] {
        let err = run_expecting_failure(&["--listen", "127.0.0.1:0", "--log", bad]);
        assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        assert!(err.contains("e.g. --log debug"), "{bad}: {err}");
    }
    let file = temp_config("bad-log", "log = \"verbose\"\n");
    let err = run_expecting_failure(&[
        "--listen",
        "127.0.0.1:0",
        "--config",
        file.to_str().expect("utf-8 path"),
    ]);
    assert!(err.contains("\"verbose\""), "{err}");
    let _ = std::fs::remove_file(file);
}

/// An invalid `RUST_LOG` (without `--log`) may come from anywhere: lynxio warns on stderr and
/// logs at `info` (the access log still appears).
fn bad_rust_log_warns_and_logs_at_info(driver: &str) {
    let origin = Origin::http(|_| ok(b"fine"));
    let proxy = Proxy::start_with_env(
        &[
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--driver",
            driver,
        ],
        &[("RUST_LOG", "verbose")],
    );
    let mut c = Reader::new(proxy.connect());
    let req = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url("/r"));
    assert_eq!(roundtrip(&mut c, "GET", req.as_bytes()).status, 200);
    let wait = std::time::Duration::from_secs(5);
    let warning = proxy.wait_for_line(wait, |l| l.contains("RUST_LOG"));
    assert!(
        warning
            .as_deref()
            .is_some_and(|l| l.contains("\"verbose\"") && l.contains("info")),
        "{warning:?}\n{}",
        proxy.log()
    );
    assert!(
        proxy
            .wait_for_line(wait, |l| l.contains("lynxio::access")
                && l.contains(" status=200 "))
            .is_some(),
        "no access line at info: {}",
        proxy.log()
    );
}

drivers!(bad_rust_log_warns_and_logs_at_info);

/// `--upstream-ca` is read at start even when nothing is intercepted: a missing file or one
/// without a certificate stops startup, naming the file.
#[test]
fn bad_upstream_ca_fails_startup() {
    let err = run_expecting_failure(&[
        "--listen",
        "127.0.0.1:0",
        "--upstream-ca",
        "/nonexistent/origin-ca.pem",
    ]);
    assert!(err.contains("/nonexistent/origin-ca.pem"), "{err}");
    let empty = temp_config("empty-ca", "no certificate here\n");
    let shown = empty.to_str().expect("utf-8 path");
    let err = run_expecting_failure(&["--listen", "127.0.0.1:0", "--upstream-ca", shown]);
    assert!(
        err.contains(shown) && err.contains("no certificate"),
        "{err}"
    );
    let _ = std::fs::remove_file(empty);
}

/// An intercept rule makes the proxy create (first run) or load the CA in `--ca-dir` at start;
/// a corrupt CA stops startup with a message naming the file.
#[test]
fn intercept_rules_load_the_ca_at_start() {
    let dir = std::env::temp_dir().join(format!("lynxio-cli-ca-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().expect("utf-8 path");
    let proxy = Proxy::start_with_args(&[
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--mitm",
        "*.example.com",
        "--ca-dir",
        d,
    ]);
    assert!(dir.join("ca.pem").is_file(), "the CA was not created");
    drop(proxy);
    std::fs::write(dir.join("ca.pem"), "not a certificate").expect("corrupt");
    let err = run_expecting_failure(&["--listen", "127.0.0.1:0", "--mitm", "*", "--ca-dir", d]);
    assert!(err.contains("ca.pem"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Passthrough-only rules are accepted and the proxy runs (and tunnels).
fn passthrough_rules_run(driver: &str) {
    let path = temp_config(
        &format!("passthrough-{driver}"),
        &format!(
            "listen = [\"127.0.0.1:0\"]\nworkers = 1\ndriver = \"{driver}\"\n\
             [[rule]]\nname = \"bank\"\nmatch = {{ host = \"*.bank.test\", port = 443 }}\n\
             action = \"passthrough\"\n"
        ),
    );
    let origin = Origin::http(|req| ok(req.target.as_bytes()));
    let proxy = Proxy::start_with_args(&["--config", path.to_str().expect("utf-8 path")]);
    let mut c = Reader::new(proxy.connect());
    let req = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url("/p"));
    assert_eq!(roundtrip(&mut c, "GET", req.as_bytes()).body_str(), "/p");
    let _ = std::fs::remove_file(path);
}

drivers!(passthrough_rules_run);

/// Runs lynxio expecting it to exit non-zero within a bound (killed, and the test failed, if
/// it keeps running instead); returns its stderr.
fn start_expecting_exit(args: &[&str]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lynxio"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn lynxio");
    let exited = eventually(std::time::Duration::from_secs(20), || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{args:?} kept running; it should have failed at startup");
    }
    let out = child.wait_with_output().expect("stderr");
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A second lynxio on the address a running one listens on fails at startup with "address in
/// use" naming the address (SO_REUSEPORT must not let the two share it, requests alternating),
/// and so does any other program listening there; the first lynxio keeps serving.
#[test]
fn an_address_in_use_fails_startup() {
    let first = Proxy::start_with_args(&["--listen", "127.0.0.1:0", "--workers", "2"]);
    let taken = first.addr.to_string();
    let err = start_expecting_exit(&["--listen", &taken, "--workers", "2"]);
    assert!(err.contains("address in use"), "{err}");
    assert!(err.contains(&taken), "{err}");
    let origin = Origin::http(|_| ok(b"still"));
    assert_still_serving(&first, &origin, "after a second lynxio tried its address");
    assert_no_panic(first);

    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind holder");
    let held = holder.local_addr().expect("addr").to_string();
    let err = start_expecting_exit(&["--listen", &held, "--workers", "1"]);
    assert!(err.contains("address in use"), "{err}");
    assert!(err.contains(&held), "{err}");
}
