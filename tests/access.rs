//! Who may use the proxy and where it may go, black-box: `--auth` (and `--auth-file`) answers
//! every request and CONNECT without valid Basic credentials with 407 and `Proxy-Authenticate`
//! (but for a browser's direct fetch of the PAC file from the listener), dials nothing, never
//! forwards `Proxy-Authorization` and never logs the credentials;
//! `--dest-policy public` refuses loopback, private, link-local and IPv4-mapped destinations —
//! by address and by a name resolving to one — and CONNECT ports outside `--connect-ports`, with
//! a 403 naming the reason and nothing dialed; `--allow-dest` re-allows a range; the default is
//! `open` on loopback listeners and `public` otherwise, said on the startup line, with a loud
//! warning for a non-loopback listener without `--auth`.

mod common;

use std::time::Duration;

use base64::Engine;
use common::*;

/// How long to wait for a reply that should come at once.
const WAIT: Duration = Duration::from_secs(5);

fn basic(user_pass: &str) -> String {
    format!(
        "Proxy-Authorization: Basic {}\r\n",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
}

fn get_via(origin: &Origin, extra: &str) -> Vec<u8> {
    format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\n{extra}\r\n",
        origin.url("/x"),
        origin.addr
    )
    .into_bytes()
}

/// Requests and CONNECTs without valid credentials get 407 and nothing is dialed; valid ones go
/// through, `Proxy-Authorization` is not forwarded, and the password appears nowhere in the log.
fn auth_required(driver: &str) {
    let (origin, rx) = recording_origin(|_| ok(b"hello"));
    let dir = std::env::temp_dir().join(format!("lynxio-auth-{}-{driver}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("users.txt");
    std::fs::write(&file, "# team\nbob:hunter2\n").expect("users");
    let proxy = Proxy::start(
        driver,
        &[
            "--auth",
            "alice:s3cret",
            "--auth-file",
            file.to_str().expect("path"),
        ],
    );
    for (what, extra) in [
        ("no credentials", String::new()),
        ("wrong password", basic("alice:nope")),
        ("unknown user", basic("eve:s3cret")),
        ("bearer", "Proxy-Authorization: Bearer abc\r\n".to_owned()),
        (
            "not base64",
            "Proxy-Authorization: Basic %%%\r\n".to_owned(),
        ),
    ] {
        let reply = send_raw(proxy.addr, &get_via(&origin, &extra), WAIT);
        let m = assert_error_reply(&reply, 407, what);
        assert_eq!(
            m.header("proxy-authenticate"),
            Some("Basic realm=\"lynxio\""),
            "{what}"
        );
    }
    let connect = format!("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\n", origin.addr);
    assert_error_reply(
        &send_raw(proxy.addr, connect.as_bytes(), WAIT),
        407,
        "CONNECT",
    );
    assert_eq!(
        origin.accepted(),
        0,
        "nothing may be dialed without credentials"
    );

    for user in ["alice:s3cret", "bob:hunter2"] {
        let mut c = Reader::new(proxy.connect());
        let m = roundtrip(&mut c, "GET", &get_via(&origin, &basic(user)));
        assert_eq!((m.status, m.body_str().as_str()), (200, "hello"));
        let seen = next_request(&rx);
        assert_eq!(
            seen.header("proxy-authorization"),
            None,
            "credentials forwarded"
        );
    }
    let mut c = Reader::new(proxy.connect());
    let connect = format!(
        "CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n{1}\r\n",
        origin.addr,
        basic("alice:s3cret")
    );
    std::io::Write::write_all(c.get_mut(), connect.as_bytes()).expect("CONNECT");
    assert_eq!(c.response_head().expect("200").status, 200);
    // Inside the tunnel requests go to the origin without credentials.
    let m = roundtrip(
        &mut c,
        "GET",
        format!("GET /in HTTP/1.1\r\nHost: {}\r\n\r\n", origin.addr).as_bytes(),
    );
    assert_eq!(m.status, 200);
    // A browser fetches its PAC file from the listener itself, without credentials: served.
    // The same file asked for through the proxy still needs them.
    let pac = roundtrip(
        &mut Reader::new(proxy.connect()),
        "GET",
        format!("GET /proxy.pac HTTP/1.1\r\nHost: {}\r\n\r\n", proxy.addr).as_bytes(),
    );
    assert_eq!(pac.status, 200);
    assert!(pac.body_str().contains("FindProxyForURL"));
    let proxied = b"GET http://lynxio.ca/proxy.pac HTTP/1.1\r\nHost: lynxio.ca\r\n\r\n";
    assert_error_reply(&send_raw(proxy.addr, proxied, WAIT), 407, "proxied PAC");
    let log = proxy.stop_and_log();
    for secret in ["s3cret", "hunter2", "YWxpY2U6czNjcmV0"] {
        assert!(!log.contains(secret), "{secret} appears in the log:\n{log}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `public` refuses every non-public destination class, whether named by address or by a name
/// that resolves to one, and CONNECT ports outside the list — 403 with the reason, nothing dialed.
fn public_policy_refuses_private_destinations(driver: &str) {
    let (origin, _rx) = recording_origin(|_| ok(b"hello"));
    let port = origin.addr.port();
    let resolve_private = format!("internal.test:{port}:10.0.0.1");
    let resolve_loop = format!("loop.test:{port}:127.0.0.1");
    let proxy = Proxy::start(
        driver,
        &[
            "--dest-policy",
            "public",
            "--resolve",
            &resolve_private,
            "--resolve",
            &resolve_loop,
        ],
    );
    for (url, class) in [
        (format!("http://127.0.0.1:{port}/"), "loopback"),
        (format!("http://loop.test:{port}/"), "loopback"),
        (format!("http://internal.test:{port}/"), "private"),
        (format!("http://[::1]:{port}/"), "loopback"),
        (format!("http://[::ffff:127.0.0.1]:{port}/"), "loopback"),
        (
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "link-local",
        ),
        ("http://192.168.1.1/".to_owned(), "private"),
        ("http://0.0.0.0/".to_owned(), "unspecified"),
    ] {
        let req = format!("GET {url} HTTP/1.1\r\nHost: x\r\n\r\n");
        let reply = send_raw(proxy.addr, req.as_bytes(), WAIT);
        let m = assert_error_reply(&reply, 403, &url);
        assert!(m.body_str().contains(class), "{url}: {}", m.body_str());
    }
    let connect = format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: x\r\n\r\n");
    let m = assert_error_reply(&send_raw(proxy.addr, connect.as_bytes(), WAIT), 403, "port");
    assert!(m.body_str().contains("port"), "{}", m.body_str());
    let connect = "CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: x\r\n\r\n";
    let m = assert_error_reply(&send_raw(proxy.addr, connect.as_bytes(), WAIT), 403, "addr");
    assert!(m.body_str().contains("loopback"), "{}", m.body_str());
    assert_eq!(origin.accepted(), 0, "a refused destination was dialed");
    proxy
        .wait_for_line(WAIT, |l| {
            l.contains("lynxio::access") && l.contains("refused")
        })
        .unwrap_or_else(|| panic!("refusals are logged:\n{}", proxy.log()));
}

/// `--allow-dest` re-allows a range and `--connect-ports` widens CONNECT under `public`.
fn allow_dest_and_connect_ports(driver: &str) {
    let (origin, _rx) = recording_origin(|_| ok(b"hello"));
    let port = origin.addr.port().to_string();
    let ports = format!("443,{port}");
    let proxy = Proxy::start(
        driver,
        &[
            "--dest-policy",
            "public",
            "--allow-dest",
            "127.0.0.0/8",
            "--connect-ports",
            &ports,
        ],
    );
    let mut c = Reader::new(proxy.connect());
    let m = roundtrip(&mut c, "GET", &get_via(&origin, ""));
    assert_eq!(m.status, 200);
    let connect = format!("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\n", origin.addr);
    std::io::Write::write_all(c.get_mut(), connect.as_bytes()).expect("CONNECT");
    assert_eq!(c.response_head().expect("200").status, 200);
    // Still refused: loopback IPv6 is outside 127.0.0.0/8.
    let req = format!("GET http://[::1]:{port}/ HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_error_reply(&send_raw(proxy.addr, req.as_bytes(), WAIT), 403, "::1");
}

/// The default: `open` on loopback listeners (said on the startup line); `public` with a loud
/// warning on a listener others can reach, unless `--auth` is set.
fn default_policy_and_open_proxy_warning(driver: &str) {
    let local = Proxy::start(driver, &[]);
    local
        .wait_for_line(WAIT, |l| {
            l.contains("destination policy") && l.contains("open")
        })
        .unwrap_or_else(|| panic!("no policy line:\n{}", local.log()));
    assert!(!local.log().contains("OPEN PROXY"));
    drop(local);
    let wide = Proxy::start_with_args(&[
        "--listen",
        "0.0.0.0:0",
        "--workers",
        "1",
        "--driver",
        driver,
        "--log",
        "info",
    ]);
    let line = wide
        .wait_for_line(WAIT, |l| l.contains("OPEN PROXY"))
        .unwrap_or_else(|| panic!("no open-proxy warning:\n{}", wide.log()));
    assert!(line.contains("WARN"), "{line}");
    wide.wait_for_line(WAIT, |l| {
        l.contains("destination policy") && l.contains("public")
    })
    .unwrap_or_else(|| panic!("no policy line:\n{}", wide.log()));
    let req = b"GET http://127.0.0.1:9/ HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_error_reply(&send_raw(wide.addr, req, WAIT), 403, "public by default");
    drop(wide);
    let authed = Proxy::start_with_args(&[
        "--listen",
        "0.0.0.0:0",
        "--workers",
        "1",
        "--driver",
        driver,
        "--auth",
        "a:b",
    ]);
    std::thread::sleep(Duration::from_millis(200));
    assert!(!authed.log().contains("OPEN PROXY"), "{}", authed.log());
}

drivers!(
    auth_required,
    public_policy_refuses_private_destinations,
    allow_dest_and_connect_ports,
    default_policy_and_open_proxy_warning,
);
