//! Rules that change traffic, black-box through real sockets: block, mock (inline and a file
//! larger than the socket buffers, byte-exact), redirect (Host kept or rewritten), rewrite
//! (request and response headers, path prefix, chained in file order) and delay (a timer: other
//! connections are served meanwhile); every match key; first match wins in both orders; rules
//! inside CONNECT tunnels and on CONNECT itself; SIGHUP reloads with a good and a bad file while
//! a request is in flight and a keep-alive connection idles; startup errors name the file and
//! the line. The access log names the rule that acted.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

/// How long a test waits for a log line.
const LOG_WAIT: Duration = Duration::from_secs(5);

/// A config file in a fresh temp directory, removed on drop.
struct ConfigDir(PathBuf);

impl ConfigDir {
    fn new(name: &str, driver: &str, toml: &str) -> ConfigDir {
        let dir = std::env::temp_dir().join(format!(
            "lynxio-rules-{}-{name}-{driver}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let d = ConfigDir(dir);
        d.write(toml);
        d
    }

    fn file(&self) -> PathBuf {
        self.0.join("lynxio.toml")
    }

    fn write(&self, toml: &str) {
        std::fs::write(self.file(), toml).expect("write config");
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn arg(&self) -> String {
        self.file().to_str().expect("utf-8 path").to_owned()
    }
}

impl Drop for ConfigDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A proxy with `toml` as its config file (plus `extra` flags).
fn proxy_with(dir: &ConfigDir, driver: &str, extra: &[&str]) -> Proxy {
    let arg = dir.arg();
    let mut args = vec!["--config", arg.as_str()];
    args.extend_from_slice(extra);
    Proxy::start(driver, &args)
}

/// An origin that answers `200` with body `METHOD TARGET` and echoes `X-Seen-*` request
/// headers as `x-echo-*` response headers; records every request.
fn echo_origin() -> (Origin, std::sync::mpsc::Receiver<Message>) {
    recording_origin(|req| {
        let body = format!("{} {}", req.method, req.target);
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Origin: yes\r\nServer: test\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    })
}

fn get(url: &str, host: &str, extra: &str) -> Vec<u8> {
    format!("GET {url} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n").into_bytes()
}

/// The `rule=` of the access line for `url`.
fn rule_logged(proxy: &Proxy, url: &str) -> String {
    let needle = format!("url={url} ");
    let line = proxy
        .wait_for_line(LOG_WAIT, |l| {
            l.contains("lynxio::access") && l.contains(&needle)
        })
        .unwrap_or_else(|| panic!("no access line for {url}; log:\n{}", proxy.log()));
    line.split(" rule=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default()
        .to_owned()
}

/// block answers without dialing (403 by default, the body naming the rule; a custom status and
/// body); mock answers inline with its headers on a keep-alive connection, HEAD gets the head.
fn block_and_mock(driver: &str) {
    let (origin, rx) = echo_origin();
    let host = origin.addr.to_string();
    let dir = ConfigDir::new(
        "block-mock",
        driver,
        &format!(
            r#"
[[rule]]
name = "no-ads"
match = {{ host = "127.0.0.1", path = "/ads/*" }}
action = "block"

[[rule]]
name = "gone"
match = {{ path = "/gone" }}
action = "block"
status = 410
body = "gone for good\n"

[[rule]]
name = "stub-user"
match = {{ port = {port}, method = ["GET", "HEAD"], path = "/api/user" }}
action = "mock"
status = 201
headers = {{ "content-type" = "application/json", "x-mock" = "1" }}
body = '{{"id":1}}'
"#,
            port = origin.addr.port()
        ),
    );
    let proxy = proxy_with(&dir, driver, &[]);
    let mut c = Reader::new(proxy.connect());
    let blocked = roundtrip(
        &mut c,
        "GET",
        &get(&origin.url("/ads/banner.js"), &host, ""),
    );
    assert_eq!(blocked.status, 403);
    assert!(
        blocked.body_str().contains("no-ads"),
        "{}",
        blocked.body_str()
    );
    let gone = roundtrip(&mut c, "GET", &get(&origin.url("/gone"), &host, ""));
    assert_eq!(
        (gone.status, gone.body_str().as_str()),
        (410, "gone for good\n")
    );
    let mock = roundtrip(&mut c, "GET", &get(&origin.url("/api/user"), &host, ""));
    assert_eq!(mock.status, 201);
    assert_eq!(mock.body_str(), r#"{"id":1}"#);
    assert_eq!(mock.header("content-type"), Some("application/json"));
    assert_eq!(mock.header("x-mock"), Some("1"));
    assert_eq!(mock.header("content-length"), Some("8"));
    let head = roundtrip(
        &mut c,
        "HEAD",
        format!(
            "HEAD {} HTTP/1.1\r\nHost: {host}\r\n\r\n",
            origin.url("/api/user")
        )
        .as_bytes(),
    );
    assert_eq!((head.status, head.body.len()), (201, 0));
    // Not matched: POST is neither GET nor HEAD, so it goes to the origin.
    let post = roundtrip(
        &mut c,
        "POST",
        format!(
            "POST {} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 2\r\n\r\nhi",
            origin.url("/api/user")
        )
        .as_bytes(),
    );
    assert_eq!(
        (post.status, post.body_str().as_str()),
        (200, "POST /api/user")
    );
    assert_eq!(
        next_request(&rx).method,
        "POST",
        "only the unmatched request reached the origin"
    );
    assert!(rx.try_recv().is_err());
    assert_eq!(rule_logged(&proxy, &origin.url("/ads/banner.js")), "no-ads");
    assert_eq!(rule_logged(&proxy, &origin.url("/api/user")), "stub-user");
}

/// A mock `file` (relative to the config file's folder) bigger than the socket buffers arrives
/// byte-exact with its Content-Length, twice on one connection.
fn mock_file_streams_large_body(driver: &str) {
    let dir = ConfigDir::new(
        "mock-file",
        driver,
        r#"
[[rule]]
name = "big"
match = { host = "files.test" }
action = "mock"
headers = { "content-type" = "application/octet-stream" }
file = "fixtures/big.bin"
"#,
    );
    let body = pseudo_random_bytes(5 * 1024 * 1024 + 17, 7);
    std::fs::create_dir_all(dir.path().join("fixtures")).expect("fixtures dir");
    std::fs::write(dir.path().join("fixtures/big.bin"), &body).expect("fixture");
    let proxy = proxy_with(&dir, driver, &[]);
    let mut c = Reader::new(proxy.connect());
    for _ in 0..2 {
        let m = roundtrip(&mut c, "GET", &get("http://files.test/x", "files.test", ""));
        assert_eq!(m.status, 200);
        assert_eq!(
            m.header("content-length"),
            Some(body.len().to_string().as_str())
        );
        assert!(m.body == body, "mock file body differs");
    }
}

/// redirect sends requests for one origin to another; the Host is kept unless rewrite_host.
fn redirect_keeps_or_rewrites_host(driver: &str) {
    let (origin, rx) = echo_origin();
    let to = origin.url("");
    let dir = ConfigDir::new(
        "redirect",
        driver,
        &format!(
            r#"
[[rule]]
name = "to-staging"
match = {{ host = "api.prod.test" }}
action = "redirect"
to = "{to}"

[[rule]]
name = "to-staging-host"
match = {{ host = "www.prod.test" }}
action = "redirect"
to = "{to}"
rewrite_host = true
"#
        ),
    );
    let proxy = proxy_with(&dir, driver, &[]);
    let mut c = Reader::new(proxy.connect());
    let r = roundtrip(
        &mut c,
        "GET",
        &get("http://api.prod.test/v1/x?q=1", "api.prod.test", ""),
    );
    assert_eq!((r.status, r.body_str().as_str()), (200, "GET /v1/x?q=1"));
    assert_eq!(next_request(&rx).header("host"), Some("api.prod.test"));
    let r = roundtrip(
        &mut c,
        "GET",
        &get("http://www.prod.test/", "www.prod.test", ""),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        next_request(&rx).header("host"),
        Some(origin.addr.to_string().as_str())
    );
    assert_eq!(
        rule_logged(&proxy, "http://api.prod.test/v1/x?q=1"),
        "to-staging"
    );
}

/// Every matching rewrite applies in file order (a later set of the same header wins), with the
/// path prefix swapped and response headers edited; the access log names both rules.
fn rewrites_chain_in_file_order(driver: &str) {
    let (origin, rx) = echo_origin();
    let host = origin.addr.to_string();
    let dir = ConfigDir::new(
        "rewrite",
        driver,
        r#"
[[rule]]
name = "hdrs"
match = { path = "/v1/*" }
action = "rewrite"
set_request_headers = { "x-env" = "first", "x-added" = "yes" }
remove_request_headers = ["x-secret"]
set_response_headers = { "x-proxy" = "lynxio" }
remove_response_headers = ["server"]

[[rule]]
name = "v2"
match = { path = "~^/v1/" }
action = "rewrite"
set_request_headers = { "x-env" = "second" }
path_prefix = { from = "/v1/", to = "/v2/" }
"#,
    );
    let proxy = proxy_with(&dir, driver, &[]);
    let mut c = Reader::new(proxy.connect());
    let url = origin.url("/v1/items?page=2");
    let r = roundtrip(
        &mut c,
        "GET",
        &get(&url, &host, "X-Secret: s3cret\r\nX-Env: client\r\n"),
    );
    assert_eq!(
        (r.status, r.body_str().as_str()),
        (200, "GET /v2/items?page=2")
    );
    assert_eq!(r.header("x-proxy"), Some("lynxio"));
    assert_eq!(r.header("server"), None);
    assert_eq!(r.header("x-origin"), Some("yes"));
    let seen = next_request(&rx);
    assert_eq!(seen.header("x-env"), Some("second"));
    assert_eq!(seen.header_count("x-env"), 1);
    assert_eq!(seen.header("x-added"), Some("yes"));
    assert_eq!(seen.header("x-secret"), None);
    assert_eq!(rule_logged(&proxy, &url), "hdrs+v2");
    // Not under /v1/: untouched.
    let r = roundtrip(
        &mut c,
        "GET",
        &get(&origin.url("/other"), &host, "X-Secret: s\r\n"),
    );
    assert_eq!(r.header("server"), Some("test"));
    assert_eq!(next_request(&rx).header("x-secret"), Some("s"));
}

/// Match keys: header (name case-insensitive, glob and regex values), `not`, method lists,
/// scheme; first match wins whether the narrow rule comes before or after the broad one.
fn match_keys_and_first_match_wins(driver: &str) {
    let (origin, _rx) = echo_origin();
    let host = origin.addr.to_string();
    let dir = ConfigDir::new(
        "keys",
        driver,
        r#"
[[rule]]
name = "narrow-first"
match = { path = "/a/special", header = { "X-Env" = "dev*" }, not = { header = { "x-real" = "1" } } }
action = "block"
status = 451

[[rule]]
name = "broad"
match = { path = "/a/*", method = ["GET", "HEAD"] }
action = "block"
status = 404

[[rule]]
name = "broad-first"
match = { path = "/b/*", scheme = "http" }
action = "block"
status = 409

[[rule]]
name = "narrow-shadowed"
match = { path = "/b/special" }
action = "block"
status = 418

[[rule]]
name = "regex-header"
match = { path = "/c", header = { "user-agent" = "~^curl/[0-9]+" } }
action = "block"
status = 429

[[rule]]
name = "https-only"
match = { path = "/d", scheme = "https" }
action = "block"
"#,
    );
    let proxy = proxy_with(&dir, driver, &[]);
    let mut c = Reader::new(proxy.connect());
    let mut status = |path: &str, extra: &str| {
        roundtrip(&mut c, "GET", &get(&origin.url(path), &host, extra)).status
    };
    assert_eq!(status("/a/special", "x-env: development\r\n"), 451);
    assert_eq!(
        status("/a/special", "X-ENV: dev\r\nX-Real: 1\r\n"),
        404,
        "not excludes"
    );
    assert_eq!(status("/a/special", "x-env: prod\r\n"), 404);
    assert_eq!(status("/a/other", ""), 404);
    assert_eq!(status("/b/special", ""), 409, "the broad rule comes first");
    assert_eq!(status("/c", "User-Agent: curl/8.5\r\n"), 429);
    assert_eq!(status("/c", "User-Agent: Mozilla/5.0\r\n"), 200);
    assert_eq!(status("/d", ""), 200, "plain http is not https");
}

/// delay holds a request on a timer: it takes at least the delay while another connection is
/// served meanwhile.
fn delay_is_a_timer(driver: &str) {
    let (origin, _rx) = echo_origin();
    let host = origin.addr.to_string();
    let dir = ConfigDir::new(
        "delay",
        driver,
        r#"
[[rule]]
name = "slow"
match = { path = "/slow" }
action = "delay"
ms = 600
"#,
    );
    let proxy = proxy_with(&dir, driver, &[]);
    let started = Instant::now();
    let mut slow = proxy.connect();
    slow.write_all(&get(&origin.url("/slow"), &host, ""))
        .expect("write");
    let mut fast = Reader::new(proxy.connect());
    let r = roundtrip(&mut fast, "GET", &get(&origin.url("/fast"), &host, ""));
    assert_eq!(r.status, 200);
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "the worker was blocked by the delay"
    );
    let r = Reader::new(slow).response("GET").expect("delayed response");
    assert_eq!((r.status, r.body_str().as_str()), (200, "GET /slow"));
    assert!(started.elapsed() >= Duration::from_millis(600));
}

/// Rules act on HTTP inside a CONNECT tunnel, and a block rule refuses a CONNECT itself
/// without dialing.
fn rules_in_tunnels_and_on_connect(driver: &str) {
    let (origin, rx) = echo_origin();
    let dir = ConfigDir::new(
        "tunnel",
        driver,
        r#"
[[rule]]
name = "stub"
match = { path = "/stub" }
action = "mock"
body = "stubbed"

[[rule]]
name = "no-tracker"
match = { host = "tracker.test" }
action = "block"
"#,
    );
    let proxy = proxy_with(&dir, driver, &[]);
    let raw = exchange(
        proxy.addr,
        b"CONNECT tracker.test:443 HTTP/1.1\r\nHost: tracker.test:443\r\n\r\n",
    );
    assert_eq!(status_of(&raw), 403, "{}", String::from_utf8_lossy(&raw));
    let mut c = Reader::new(proxy.connect());
    let connect = format!("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\n", origin.addr);
    c.get_mut().write_all(connect.as_bytes()).expect("CONNECT");
    let established = c.response_head().expect("200");
    assert_eq!(established.status, 200);
    let host = origin.addr.to_string();
    let stub = roundtrip(&mut c, "GET", &get("/stub", &host, ""));
    assert_eq!(stub.body_str(), "stubbed");
    let real = roundtrip(&mut c, "GET", &get("/real", &host, ""));
    assert_eq!(real.body_str(), "GET /real");
    assert_eq!(next_request(&rx).target, "/real");
}

const BEFORE: &str = r#"
[[rule]]
name = "old"
match = { path = "/x" }
action = "mock"
body = "old rules"

[[rule]]
name = "hold"
match = { path = "/held" }
action = "delay"
ms = 800
"#;

const AFTER: &str = r#"
[[rule]]
name = "new"
match = { path = "/x" }
action = "mock"
body = "new rules"
"#;

/// SIGHUP puts the file's new rules in force for new requests; a request in flight (held by a
/// delay) and an idle keep-alive connection survive it; a bad file is refused with a log line
/// naming it and the problem, and the rules before it stay.
fn sighup_reloads_rules(driver: &str) {
    let (origin, _rx) = echo_origin();
    let host = origin.addr.to_string();
    let dir = ConfigDir::new("reload", driver, BEFORE);
    let proxy = proxy_with(&dir, driver, &[]);
    let mut idle = Reader::new(proxy.connect());
    let body = |c: &mut Reader<std::net::TcpStream>| {
        roundtrip(c, "GET", &get(&origin.url("/x"), &host, "")).body_str()
    };
    assert_eq!(body(&mut idle), "old rules");
    let mut held = proxy.connect();
    held.write_all(&get(&origin.url("/held"), &host, ""))
        .expect("write");
    std::thread::sleep(Duration::from_millis(100));

    dir.write(AFTER);
    proxy.signal(SIGHUP);
    proxy
        .wait_for_line(LOG_WAIT, |l| l.contains("rules reloaded"))
        .unwrap_or_else(|| panic!("no reload line; log:\n{}", proxy.log()));
    let r = Reader::new(held)
        .response("GET")
        .expect("in-flight request");
    assert_eq!((r.status, r.body_str().as_str()), (200, "GET /held"));
    assert_eq!(
        body(&mut idle),
        "new rules",
        "the idle connection sees the new rules"
    );

    dir.write("[[rule]]\nname = \"broken\"\nmatch = { path = \"~(\" }\naction = \"block\"\n");
    proxy.signal(SIGHUP);
    let line = proxy
        .wait_for_line(LOG_WAIT, |l| l.contains("config rejected"))
        .unwrap_or_else(|| panic!("no rejection line; log:\n{}", proxy.log()));
    assert!(line.contains("lynxio.toml"), "{line}");
    assert_eq!(
        body(&mut idle),
        "new rules",
        "a bad file leaves the rules in force"
    );
    let mut fresh = Reader::new(proxy.connect());
    assert_eq!(body(&mut fresh), "new rules");
}

/// SIGHUP on Linux.
const SIGHUP: i32 = 1;

/// A bad rule at startup is an error naming the file, the rule, the line of the bad key and the
/// problem, and lynxio exits with a failure status.
fn startup_error_names_file_and_line(driver: &str) {
    let dir = ConfigDir::new(
        "bad",
        driver,
        "[[rule]]\nname = \"ok\"\nmatch = { path = \"/a\" }\naction = \"block\"\n\n\
         [[rule]]\nname = \"bad-regex\"\nmatch = { host = \"~[\" }\naction = \"block\"\n",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lynxio"))
        .args(["--listen", "127.0.0.1:0", "--driver", driver, "--config"])
        .arg(dir.file())
        .output()
        .expect("run lynxio");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lynxio.toml"), "{err}");
    assert!(err.contains("bad-regex"), "{err}");
    assert!(err.contains("line 8"), "{err}");
}

drivers!(
    block_and_mock,
    mock_file_streams_large_body,
    redirect_keeps_or_rewrites_host,
    rewrites_chain_in_file_order,
    match_keys_and_first_match_wins,
    delay_is_a_timer,
    rules_in_tunnels_and_on_connect,
    sighup_reloads_rules,
    startup_error_names_file_and_line,
);
