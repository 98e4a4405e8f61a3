//! What a service manager and a browser's proxy settings see: the PAC file at
//! `http://lynxio.ca/proxy.pac` (and `/wpad.dat`, and fetched directly from the listener) names
//! the listener the request came in on and sends loopback `DIRECT`; under systemd's
//! `Type=notify` lynxio sends `READY=1` once it accepts, `RELOADING=1`/`READY=1` around a SIGHUP
//! and `STOPPING=1` on SIGTERM.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use common::*;

fn pac_file_names_the_listener(driver: &str) {
    let proxy = Proxy::start(driver, &[]);
    let listener = proxy.addr.to_string();
    let mut c = Reader::new(proxy.connect());
    for path in ["/proxy.pac", "/wpad.dat"] {
        let req = format!("GET http://lynxio.ca{path} HTTP/1.1\r\nHost: lynxio.ca\r\n\r\n");
        let pac = roundtrip(&mut c, "GET", req.as_bytes());
        assert_eq!(pac.status, 200, "{path}");
        assert_eq!(
            pac.header("content-type"),
            Some("application/x-ns-proxy-autoconfig")
        );
        let body = pac.body_str();
        assert!(
            body.contains("function FindProxyForURL(url, host)"),
            "{body}"
        );
        assert!(
            body.contains(&format!("return \"PROXY {listener}\";")),
            "{body}"
        );
        assert!(body.contains("shExpMatch(host, \"127.*\")") && body.contains("\"DIRECT\""));
    }
    // A browser fetches the PAC file from the proxy itself, in origin form.
    let direct = roundtrip(
        &mut c,
        "GET",
        format!("GET /proxy.pac HTTP/1.1\r\nHost: {listener}\r\n\r\n").as_bytes(),
    );
    assert_eq!(direct.status, 200);
    assert!(direct.body_str().contains(&format!("PROXY {listener}")));
    // Other origin-form requests are still refused: lynxio is a proxy.
    let other = roundtrip(
        &mut c,
        "GET",
        format!("GET /index.html HTTP/1.1\r\nHost: {listener}\r\n\r\n").as_bytes(),
    );
    assert_eq!(other.status, 400);
    // The CA page links to it.
    let mut c = Reader::new(proxy.connect());
    let page = roundtrip(
        &mut c,
        "GET",
        b"GET http://lynxio.ca/ HTTP/1.1\r\nHost: lynxio.ca\r\n\r\n",
    );
    assert!(
        page.body_str().contains("href=\"/proxy.pac\""),
        "{}",
        page.body_str()
    );
    assert!(page.body_str().contains("lynxio ca install"));
}

/// The PAC file names an IPv6 listener in brackets.
fn pac_file_ipv6(driver: &str) {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("SKIPPED: no IPv6 loopback");
        return;
    }
    let proxy =
        Proxy::start_with_args(&["--listen", "[::1]:0", "--workers", "1", "--driver", driver]);
    let raw = exchange(
        proxy.addr,
        b"GET http://lynxio.ca/proxy.pac HTTP/1.1\r\nHost: lynxio.ca\r\nConnection: close\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.contains(&format!("PROXY [::1]:{}", proxy.addr.port())),
        "{text}"
    );
}

drivers!(pac_file_names_the_listener, pac_file_ipv6);

fn recv(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = sock
        .recv(&mut buf)
        .expect("a notification within the timeout");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn sd_notify_ready_reloading_stopping() {
    let path = std::env::temp_dir().join(format!("lynxio-sd-notify-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let sock = UnixDatagram::bind(&path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut proxy = Proxy::start_with_env(
        &["--listen", "127.0.0.1:0", "--workers", "1"],
        &[("NOTIFY_SOCKET", path.to_str().expect("utf-8 path"))],
    );
    let ready = recv(&sock);
    assert!(ready.starts_with("READY=1\n"), "{ready}");
    assert!(
        ready.contains(&format!("listening on {}", proxy.addr)),
        "{ready}"
    );
    proxy.signal(1); // SIGHUP
    let reloading = recv(&sock);
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading}"
    );
    assert_eq!(recv(&sock), "READY=1");
    proxy.signal(15); // SIGTERM
    assert_eq!(recv(&sock), "STOPPING=1");
    let status = proxy.wait_exit(Duration::from_secs(15)).expect("exits");
    assert_eq!(status.code(), Some(0));
    let _ = std::fs::remove_file(&path);
}
