//! Forwarding: absolute-form to origin-form, byte-exact targets, bodies, keep-alive, pooling.

mod common;

use common::*;

fn get_through_proxy(driver: &str) {
    let origin = Origin::http(|req| ok(format!("you asked for {}", req.target).as_bytes()));
    let proxy = Proxy::start(driver, &[]);
    let mut c = Reader::new(proxy.connect());
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\n\r\n",
        origin.url("/a%2Fb?q=1&x=%zz"),
        origin.addr
    );
    let resp = roundtrip(&mut c, "GET", req.as_bytes());
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_str(), "you asked for /a%2Fb?q=1&x=%zz");
    assert_eq!(resp.header("via"), Some("1.1 lynxio"));
}

drivers!(get_through_proxy);
