//! Many clients, few resources: client connections share a capped set of origin connections
//! (`--pool-max-open-per-host`: past it requests wait for a connection to finish instead of
//! dialing), a burst of clients is accepted in one go, and with two workers SO_REUSEPORT puts
//! clients on both while one worker still serves them all.

mod common;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use common::*;

fn get(url: &str) -> Vec<u8> {
    format!("GET {url} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()
}

/// Per-worker values of an admin metric (`name{worker="N",...} value`, summed per worker).
fn per_worker(admin: std::net::SocketAddr, name: &str) -> Vec<u64> {
    let raw = exchange(
        admin,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&raw);
    let mut vals: Vec<u64> = Vec::new();
    for line in text.lines() {
        let Some(rest) = line
            .strip_prefix(name)
            .and_then(|r| r.strip_prefix("{worker=\""))
        else {
            continue;
        };
        let Some((w, tail)) = rest.split_once('"') else {
            continue;
        };
        let (Ok(w), Some(Ok(v))) = (
            w.parse::<usize>(),
            tail.rsplit(' ').next().map(str::parse::<u64>),
        ) else {
            continue;
        };
        if vals.len() <= w {
            vals.resize(w + 1, 0);
        }
        vals[w] += v;
    }
    vals
}

/// Eight clients, each with five keep-alive requests to a slow origin (20 ms per answer), and
/// at most two origin connections: every request is answered, and the origin never sees more
/// than two connections — the others waited for one to be handed over.
fn clients_share_a_capped_set_of_origin_connections(driver: &str) {
    let origin = Origin::http(|_| {
        thread::sleep(Duration::from_millis(20));
        ok(b"shared")
    });
    let proxy = Proxy::start(driver, &["--pool-max-open-per-host", "2"]);
    let url = origin.url("/x");
    let answered = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (addr, url, answered) = (proxy.addr, url.clone(), answered.clone());
            thread::spawn(move || {
                let mut c = Reader::new(connect(addr));
                for _ in 0..5 {
                    let resp = roundtrip(&mut c, "GET", &get(&url));
                    assert_eq!(resp.status, 200);
                    assert_eq!(resp.body_str(), "shared");
                    answered.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client thread");
    }
    assert_eq!(answered.load(Ordering::SeqCst), 40);
    assert!(
        origin.accepted() <= 2,
        "origin saw {} connections, cap 2",
        origin.accepted()
    );
}

/// A request waiting at a full origin gives up after the connect timeout (504, saying the
/// origin's connections stayed busy), and the connection it waited for still serves the next
/// request once free.
fn a_request_waits_at_most_the_connect_timeout(driver: &str) {
    let origin = Origin::http(|req| {
        if req.target.ends_with("/slow") {
            thread::sleep(Duration::from_millis(1500));
        }
        ok(b"done")
    });
    let proxy = Proxy::start(
        driver,
        &[
            "--pool-max-open-per-host",
            "1",
            "--connect-timeout",
            "300ms",
        ],
    );
    let slow = {
        let (addr, url) = (proxy.addr, origin.url("/slow"));
        thread::spawn(move || {
            let mut c = Reader::new(connect(addr));
            roundtrip(&mut c, "GET", &get(&url)).status
        })
    };
    thread::sleep(Duration::from_millis(200));
    let mut waiting = Reader::new(proxy.connect());
    let resp = roundtrip(&mut waiting, "GET", &get(&origin.url("/fast")));
    assert_eq!(resp.status, 504, "waited past the connect timeout");
    let why = resp.body_str();
    assert!(
        why.contains("all 1 connections") && why.contains("--pool-max-open-per-host"),
        "the answer says why: {why}"
    );
    assert_eq!(slow.join().expect("slow client"), 200);
    let mut later = Reader::new(proxy.connect());
    assert_eq!(
        roundtrip(&mut later, "GET", &get(&origin.url("/fast"))).status,
        200
    );
    assert_eq!(origin.accepted(), 1, "the one connection served all");
}

/// 300 clients connect and send a request at once: every one is answered.
fn a_burst_of_clients_is_served(driver: &str) {
    let origin = Origin::http(|_| ok(b"burst"));
    let proxy = Proxy::start(driver, &[]);
    let request = get(&origin.url("/b"));
    let mut clients: Vec<_> = (0..300)
        .map(|_| {
            let mut s = proxy.connect();
            s.write_all(&request).expect("write");
            Reader::new(s)
        })
        .collect();
    for (i, c) in clients.iter_mut().enumerate() {
        let resp = c.final_response("GET").expect("answered").1;
        assert_eq!(resp.status, 200, "client {i}");
    }
}

/// With two workers, 32 clients land on both (SO_REUSEPORT spreads them); each is served.
fn two_workers_both_get_clients(driver: &str) {
    let origin = Origin::http(|_| ok(b"w"));
    let proxy = Proxy::start_with_args(&[
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "2",
        "--driver",
        driver,
        "--log",
        "info",
        "--admin",
        "127.0.0.1:0",
    ]);
    let admin = proxy.admin.expect("admin address");
    let url = origin.url("/w");
    let mut clients: Vec<_> = (0..32)
        .map(|_| {
            let mut c = Reader::new(proxy.connect());
            assert_eq!(roundtrip(&mut c, "GET", &get(&url)).status, 200);
            c
        })
        .collect();
    let requests = per_worker(admin, "lynxio_requests_total");
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests.iter().sum::<u64>(), 32);
    assert!(
        requests.iter().all(|&n| n > 0),
        "one worker got none: {requests:?}"
    );
    for c in &mut clients {
        assert_eq!(roundtrip(c, "GET", &get(&url)).status, 200);
    }
}

drivers!(
    clients_share_a_capped_set_of_origin_connections,
    a_request_waits_at_most_the_connect_timeout,
    a_burst_of_clients_is_served,
    two_workers_both_get_clients,
);
