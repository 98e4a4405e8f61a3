//! Bounded under abuse: the per-worker client connection limit. At the cap the worker stops
//! accepting (a new client's TCP handshake completes into the kernel backlog but nothing answers
//! it) until a client leaves; the episode is logged once and counted.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::time::Duration;

use common::*;

/// How long a client beyond the cap must go unanswered.
const UNANSWERED: Duration = Duration::from_millis(500);
const LIMIT_LINE: &str = "connection limit 4 reached; not accepting until a client leaves";

fn get(url: &str) -> Vec<u8> {
    format!("GET {url} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()
}

/// `--max-connections 4`: four idle keep-alive clients hold every place; a fifth connects but
/// gets no answer; when one of the four leaves, the fifth is served. One log line, one count.
fn fifth_client_waits_in_the_backlog_until_one_leaves(driver: &str) {
    let origin = Origin::http(|_| ok(b"fine"));
    let proxy = Proxy::start(driver, &["--max-connections", "4"]);
    proxy
        .wait_for_line(IO_TIMEOUT, |l| {
            l.contains("client connections limited per worker")
                && l.contains("max_connections=4")
                && l.contains("--max-connections")
        })
        .expect("the effective limit is logged at start");
    let mut held: Vec<Reader<_>> = (0..4)
        .map(|i| {
            let mut c = Reader::new(proxy.connect());
            let resp = roundtrip(&mut c, "GET", &get(&origin.url(&format!("/held/{i}"))));
            assert_eq!(resp.status, 200, "client {i} is served");
            c
        })
        .collect();

    let mut fifth = proxy.connect();
    fifth
        .write_all(&get(&origin.url("/fifth")))
        .expect("the kernel takes the request");
    fifth.set_read_timeout(Some(UNANSWERED)).expect("timeout");
    let mut byte = [0u8; 1];
    match fifth.read(&mut byte) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("a client beyond the limit was answered: {other:?}"),
    }
    proxy
        .wait_for_line(IO_TIMEOUT, |l| l.contains(LIMIT_LINE))
        .expect("reaching the limit is logged");

    drop(held.pop());
    fifth.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let mut fifth = Reader::new(fifth);
    let resp = fifth.response("GET").expect("served once a client left");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_str(), "fine");
    // The other three are still served, and the limit holds again (a new episode is not logged
    // while the worker stays near its cap).
    for c in &mut held {
        assert_eq!(roundtrip(c, "GET", &get(&origin.url("/again"))).status, 200);
    }
    assert_eq!(
        proxy.log().matches(LIMIT_LINE).count(),
        1,
        "{}",
        proxy.log()
    );
}

/// Without `--max-connections` the limit is derived from the open-files limit and logged.
fn default_limit_comes_from_the_open_files_limit(driver: &str) {
    let proxy = Proxy::start(driver, &[]);
    let line = proxy
        .wait_for_line(IO_TIMEOUT, |l| {
            l.contains("client connections limited per worker")
        })
        .expect("the effective limit is logged at start");
    assert!(line.contains("open-files limit"), "{line}");
    let limit: usize = line
        .split("max_connections=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no max_connections in {line:?}"));
    assert!(limit >= 64, "{line}");
}

drivers!(
    fifth_client_waits_in_the_backlog_until_one_leaves,
    default_limit_comes_from_the_open_files_limit,
);
