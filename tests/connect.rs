//! CONNECT tunnels, black-box: the `200 Connection established` answer comes only once the
//! origin is connected, bytes then flow both ways byte-exact (spliced and copied), half-closes
//! and resets propagate, server-first protocols work after the sniff timeout, HTTP/1 inside a
//! tunnel runs through the proxy's HTTP pipeline (upgrades stay opaque), TLS is relayed untouched
//! with its SNI logged, failures to reach the origin are 502/504, idle tunnels are closed, and
//! hundreds of tunnels run at once.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use socket2::SockRef;

/// The one acceptable answer to a CONNECT whose origin is reachable.
const ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";
/// First tunnel bytes that neither sniffer can take for its protocol (not a TLS record, not an
/// HTTP method token), so the proxy starts relaying them at once.
const OPAQUE: &[u8] = b"\x00\x01opaque ping\n";
/// Upper bound for answers and closes that should come "promptly".
const PROMPT: Duration = Duration::from_secs(3);
/// Idle splice pipes the proxy may keep per worker (src/tunnel/pool.rs `MAX_IDLE_PIPES`).
const MAX_IDLE_PIPES: usize = 16;
/// Upper bound for a test step that waits on the proxy.
const WAIT: Duration = Duration::from_secs(5);

/// Real ClientHellos captured from real clients: (file, bytes, SNI).
const HELLOS: [(&str, &[u8], &str); 4] = [
    (
        "chromium-156",
        include_bytes!("../src/sniff/testdata/chromium-156.bin"),
        "chromium.example.test",
    ),
    (
        "curl-7.88-openssl3",
        include_bytes!("../src/sniff/testdata/curl-7.88-openssl3.bin"),
        "localhost",
    ),
    (
        "openssl-s_client-3.0",
        include_bytes!("../src/sniff/testdata/openssl-s_client-3.0.bin"),
        "example.test",
    ),
    (
        "python-3.11-ssl",
        include_bytes!("../src/sniff/testdata/python-3.11-ssl.bin"),
        "python.example.test",
    ),
];

/// The two relay implementations: splice(2) (the default) and user-space copies.
const RELAYS: [&[&str]; 2] = [&[], &["--no-splice"]];

// ---- helpers ----

/// `relay` flags followed by `extra` ones.
fn flags<'a>(relay: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    relay.iter().chain(extra).copied().collect()
}

fn connect_request(target: &str) -> Vec<u8> {
    format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").into_bytes()
}

/// Reads the proxy's answer to a CONNECT, which must be exactly [`ESTABLISHED`]; returns the
/// tunnel bytes that arrived behind it in the same reads.
fn read_established(s: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    for _ in 0..1000 {
        if buf.len() >= ESTABLISHED.len() {
            assert!(
                buf.starts_with(ESTABLISHED),
                "the answer to CONNECT should be exactly {:?}, got {:?}",
                String::from_utf8_lossy(ESTABLISHED),
                String::from_utf8_lossy(&buf)
            );
            return buf.split_off(ESTABLISHED.len());
        }
        match s.read(&mut chunk) {
            Ok(0) => panic!(
                "the proxy closed instead of answering CONNECT with 200; got {:?}",
                String::from_utf8_lossy(&buf)
            ),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!(
                "no complete answer to CONNECT ({e}); got {:?}",
                String::from_utf8_lossy(&buf)
            ),
        }
    }
    panic!(
        "answer to CONNECT never completed: {:?}",
        String::from_utf8_lossy(&buf)
    )
}

/// Opens a tunnel to `target`: CONNECT, then exactly the 200. Returns the client stream and
/// any tunnel bytes that came with the 200.
fn open_tunnel(proxy: &Proxy, target: &str) -> (TcpStream, Vec<u8>) {
    let mut c = proxy.connect();
    c.write_all(&connect_request(target))
        .expect("write CONNECT");
    let rest = read_established(&mut c);
    (c, rest)
}

/// Like [`open_tunnel`], but the tunnel must carry nothing yet (the origin did not speak).
fn open_quiet_tunnel(proxy: &Proxy, target: &str) -> TcpStream {
    let (c, rest) = open_tunnel(proxy, target);
    assert!(
        rest.is_empty(),
        "unexpected bytes right behind the 200: {:?}",
        String::from_utf8_lossy(&rest)
    );
    c
}

/// Echoes every byte back until EOF, then half-closes (and drops) the connection.
fn echo(mut s: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..1_000_000 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
    let _ = s.shutdown(Shutdown::Write);
}

/// How a read loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Eof,
    Reset,
    /// Still open when the wait ran out.
    Open,
}

/// Reads everything until EOF, reset, or `wait` (each read bounded by the rest of it).
fn read_all(s: &mut TcpStream, wait: Duration) -> (Vec<u8>, End) {
    let deadline = Instant::now() + wait;
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    for _ in 0..1_000_000 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || out.len() > MAX_MESSAGE {
            return (out, End::Open);
        }
        let _ = s.set_read_timeout(Some(left.max(Duration::from_millis(1))));
        match s.read(&mut chunk) {
            Ok(0) => return (out, End::Eof),
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (out, End::Open);
            }
            Err(_) => return (out, End::Reset),
        }
    }
    (out, End::Open)
}

/// Reads exactly `n` bytes (after `already`), panicking with `what` on EOF or timeout.
fn read_n(s: &mut TcpStream, already: Vec<u8>, n: usize, what: &str) -> Vec<u8> {
    let mut out = already;
    let mut chunk = vec![0u8; 64 * 1024];
    for _ in 0..1_000_000 {
        if out.len() >= n {
            break;
        }
        let want = (n - out.len()).min(chunk.len());
        match s.read(&mut chunk[..want]) {
            Ok(0) => panic!("{what}: EOF after {} of {n} bytes", out.len()),
            Ok(k) => out.extend_from_slice(&chunk[..k]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("{what}: {e} after {} of {n} bytes", out.len()),
        }
    }
    assert_eq!(out.len(), n, "{what}: read more than expected");
    out
}

/// Reads until EOF, checking every byte against `expected` as it arrives. Ok(bytes) when the
/// stream was exactly `expected`; Err says where it went wrong.
fn read_and_verify(s: &mut TcpStream, expected: &[u8]) -> Result<usize, String> {
    let mut chunk = vec![0u8; 256 * 1024];
    let mut off = 0usize;
    for _ in 0..10_000_000 {
        match s.read(&mut chunk) {
            Ok(0) => {
                return if off == expected.len() {
                    Ok(off)
                } else {
                    Err(format!("EOF after {off} of {} bytes", expected.len()))
                };
            }
            Ok(n) => {
                let Some(want) = expected.get(off..off + n) else {
                    return Err(format!(
                        "{} bytes more than the {} sent",
                        off + n - expected.len(),
                        expected.len()
                    ));
                };
                if want != &chunk[..n] {
                    let bad = want.iter().zip(&chunk[..n]).position(|(a, b)| a != b);
                    return Err(format!(
                        "bytes differ at offset {}",
                        off + bad.unwrap_or_default()
                    ));
                }
                off += n;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("{e} after {off} of {} bytes", expected.len())),
        }
    }
    Err("too many reads".to_owned())
}

/// Writes `data` in 256 KiB pieces, then half-closes.
fn write_then_shutdown(s: &mut TcpStream, data: &[u8]) -> std::io::Result<()> {
    for piece in data.chunks(256 * 1024) {
        s.write_all(piece)?;
    }
    s.shutdown(Shutdown::Write)
}

/// 64 MiB of pseudo-random bytes per seed (generated once, shared by the tests), starting with
/// a zero byte so the sniffer decides "opaque" at once.
fn bulk_data(seed: u64) -> &'static [u8] {
    static A: OnceLock<Vec<u8>> = OnceLock::new();
    static B: OnceLock<Vec<u8>> = OnceLock::new();
    let cell = if seed == 1 { &A } else { &B };
    cell.get_or_init(|| {
        let mut v = pseudo_random_bytes(64 * 1024 * 1024, seed);
        v[0] = 0;
        v
    })
}

/// A port nothing listens on (bound, then released).
fn refused_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// One echo exchange through a fresh tunnel to an echo origin: the proxy still serves CONNECT.
fn assert_tunnel_works(proxy: &Proxy, echo_origin: &Origin, what: &str) {
    let mut c = open_quiet_tunnel(proxy, &echo_origin.addr.to_string());
    c.write_all(OPAQUE).expect("write");
    let back = read_n(&mut c, Vec::new(), OPAQUE.len(), what);
    assert_eq!(back, OPAQUE, "{what}: echo through a new tunnel");
}

/// Writes `data` in small pieces with pauses: 7-byte pieces 20 ms apart for the first 70
/// bytes (splitting the record and handshake headers), then 64-byte pieces 5 ms apart.
fn write_slowly(s: &mut TcpStream, data: &[u8]) {
    let (head, tail) = data.split_at(data.len().min(70));
    for piece in head.chunks(7) {
        s.write_all(piece).expect("write piece");
        thread::sleep(Duration::from_millis(20));
    }
    for piece in tail.chunks(64) {
        s.write_all(piece).expect("write piece");
        thread::sleep(Duration::from_millis(5));
    }
}

// ---- establishing ----

/// CONNECT to an IPv4 literal, a `--resolve`d name (any case; or with a refusing first
/// address) and an IPv6 literal: exactly the 200, the origin has the connection, then bytes
/// flow both ways and EOF propagates.
fn established_and_relays(driver: &str) {
    fn reporting_echo() -> (
        impl Fn(TcpStream) + Send + Sync + 'static,
        mpsc::Receiver<()>,
    ) {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let handler = move |s: TcpStream| {
            let _ = tx.lock().unwrap_or_else(|e| e.into_inner()).send(());
            echo(s)
        };
        (handler, rx)
    }
    let (h4, rx4) = reporting_echo();
    let origin = Origin::start(h4);
    let port = origin.addr.port();
    let (h6, rx6) = reporting_echo();
    let origin6 = Origin::start_on("[::1]:0", h6);
    let resolve = format!("name.test:{port}:127.0.0.1");
    // The first address refuses (nothing listens on 127.0.0.2): the next one is tried.
    let resolve_multi = format!("multi.test:{port}:127.0.0.2,127.0.0.1");
    let proxy = Proxy::start(
        driver,
        &["--resolve", &resolve, "--resolve", &resolve_multi],
    );

    let mut cases = vec![
        (format!("127.0.0.1:{port}"), &rx4),
        (format!("name.test:{port}"), &rx4),
        (format!("NAME.Test:{port}"), &rx4),
        (format!("multi.test:{port}"), &rx4),
    ];
    match &origin6 {
        Some(o) => cases.push((format!("[::1]:{}", o.addr.port()), &rx6)),
        None => eprintln!("skipping the IPv6 case: cannot bind [::1]"),
    }
    let big = pseudo_random_bytes(200 * 1024, 7);
    for (target, accepted) in cases {
        let mut c = open_quiet_tunnel(&proxy, &target);
        accepted
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("{target}: 200 sent but the origin never accepted"));
        c.write_all(OPAQUE).expect("write");
        let back = read_n(&mut c, Vec::new(), OPAQUE.len(), &target);
        assert_eq!(back, OPAQUE, "{target}: first echo");
        let mut w = c.try_clone().expect("clone");
        let sent = big.clone();
        let writer = thread::spawn(move || write_then_shutdown(&mut w, &sent));
        let got = read_and_verify(&mut c, &big);
        writer
            .join()
            .expect("writer")
            .expect("write through the tunnel");
        assert_eq!(got, Ok(big.len()), "{target}: 200 KiB echoed, then EOF");
    }
    assert_eq!(origin.accepted(), 4);
    assert_no_panic(proxy);
}

/// The 200 waits for the origin's connect to complete: while the origin's accept queue is full
/// (its SYNs dropped) the client hears nothing; once there is room, the 200 comes, and only
/// after the origin has the connection.
fn established_waits_for_origin(driver: &str) {
    let (addr, listener, held) =
        full_backlog_listener().expect("could not fill a listener's accept queue");
    let proxy = Proxy::start(driver, &[]);
    let mut c = proxy.connect();
    c.write_all(&connect_request(&addr.to_string()))
        .expect("write CONNECT");
    let early = read_reply(
        c.try_clone().expect("clone"),
        Instant::now(),
        Duration::from_millis(600),
    );
    assert!(
        early.raw.is_empty() && !early.closed,
        "the proxy answered before the origin could accept: {:?} (closed: {})",
        early.text(),
        early.closed
    );
    // Make room in the queue: accept the held connections, then the proxy's (its SYN is
    // retransmitted ~1 s after the first one).
    listener
        .set_read_timeout(Some(WAIT))
        .expect("accept timeout");
    let held_addrs: Vec<SocketAddr> = held.iter().filter_map(|s| s.local_addr().ok()).collect();
    let released = Instant::now();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _held = held;
        for _ in 0..32 {
            let Ok((s, peer)) = listener.accept() else {
                return;
            };
            if held_addrs.contains(&peer.as_socket().expect("inet")) {
                continue;
            }
            let s: TcpStream = s.into();
            let _ = tx.send((Instant::now(), s));
            return;
        }
    });
    let _ = c.set_read_timeout(Some(WAIT));
    let rest = read_established(&mut c);
    let got_200 = Instant::now();
    assert!(rest.is_empty());
    let (accepted_at, mut o) = rx
        .recv_timeout(WAIT)
        .expect("the origin never accepted the proxy's connection");
    assert!(
        accepted_at >= released,
        "the origin's accept happened before the queue had room?"
    );
    assert!(
        got_200 >= released,
        "the 200 came before the origin could accept"
    );
    o.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    c.write_all(OPAQUE).expect("write");
    let got = read_n(&mut o, Vec::new(), OPAQUE.len(), "origin side");
    assert_eq!(got, OPAQUE);
    o.write_all(b"pong").expect("origin write");
    assert_eq!(read_n(&mut c, Vec::new(), 4, "client side"), b"pong");
    assert_no_panic(proxy);
}

/// Bytes sent in the same write as the CONNECT head reach the origin first and intact: an
/// opaque prefix (relayed at once), a prefix the sniffer cannot decide on (relayed after the
/// sniff timeout), a whole TLS ClientHello (alone and with a record behind it) and 1 MiB.
fn early_data_reaches_origin(driver: &str) {
    let proxy = Proxy::start(driver, &["--sniff-timeout", "200ms"]);
    let (_, chromium, _) = HELLOS[0];
    let mut hello_and_more = chromium.to_vec();
    hello_and_more.extend_from_slice(b"\x17\x03\x03\x00\x03abc");
    let mut big = OPAQUE.to_vec();
    big.extend_from_slice(&pseudo_random_bytes(1024 * 1024, 5));
    for (what, early) in [
        ("opaque bytes", OPAQUE),
        ("undecided prefix", &b"HELLO"[..]),
        ("TLS ClientHello", chromium),
        ("TLS ClientHello + a record", &hello_and_more[..]),
        ("1 MiB of opaque bytes", &big[..]),
    ] {
        let (origin, seen) = byte_sink_origin();
        let mut c = proxy.connect();
        let mut bytes = connect_request(&origin.addr.to_string());
        bytes.extend_from_slice(early);
        c.write_all(&bytes).expect("write CONNECT + data");
        let rest = read_established(&mut c);
        assert!(rest.is_empty(), "{what}: {rest:?}");
        let arrived = eventually(WAIT, || {
            seen.lock().unwrap_or_else(|e| e.into_inner()).len() >= early.len()
        });
        assert!(arrived, "{what}: the early bytes never reached the origin");
        c.write_all(b"-more").expect("write");
        c.shutdown(Shutdown::Write).expect("shutdown");
        let (tail, end) = read_all(&mut c, WAIT);
        assert!(
            tail.is_empty() && end == End::Eof,
            "{what}: {tail:?} {end:?}"
        );
        let mut want = early.to_vec();
        want.extend_from_slice(b"-more");
        let got = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert!(
            got == want,
            "{what}: the origin received {} bytes, expected {} (first 64: {:?})",
            got.len(),
            want.len(),
            String::from_utf8_lossy(&got[..got.len().min(64)])
        );
    }
    assert_no_panic(proxy);
}

// ---- bulk and half-close ----

/// 64 MiB each way at the same time, byte-exact on both sides.
fn bulk_both_ways(driver: &str, flags: &[&str]) {
    let up = bulk_data(1);
    let down = bulk_data(2);
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let origin = Origin::start(move |mut s| {
        let mut w = s.try_clone().expect("clone");
        let writer = thread::spawn(move || write_then_shutdown(&mut w, down));
        let got = read_and_verify(&mut s, up);
        let wrote = writer
            .join()
            .expect("origin writer")
            .map_err(|e| e.to_string());
        let _ = tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send((got, wrote));
    });
    let proxy = Proxy::start(driver, flags);
    let start = Instant::now();
    let mut c = open_quiet_tunnel(&proxy, &origin.addr.to_string());
    let mut w = c.try_clone().expect("clone");
    let writer = thread::spawn(move || write_then_shutdown(&mut w, up));
    let got = read_and_verify(&mut c, down);
    let wrote = writer.join().expect("client writer");
    let (origin_got, origin_wrote) = rx.recv_timeout(WAIT).expect("origin result");
    assert_eq!(wrote.map_err(|e| e.to_string()), Ok(()), "client → proxy");
    assert_eq!(origin_wrote, Ok(()), "origin → proxy");
    assert_eq!(got, Ok(down.len()), "origin → client (flags {flags:?})");
    assert_eq!(
        origin_got,
        Ok(up.len()),
        "client → origin (flags {flags:?})"
    );
    eprintln!("64 MiB both ways ({flags:?}) in {:?}", start.elapsed());
    assert_no_panic(proxy);
}

fn bulk_spliced(driver: &str) {
    bulk_both_ways(driver, &[]);
}

fn bulk_copied(driver: &str) {
    bulk_both_ways(driver, &["--no-splice"]);
}

/// The client half-closes first (after some bytes, or before sending any): the origin reads
/// EOF, then still sends 1 MiB and closes; the client gets all of it, then EOF. Both relays.
fn half_close_client_first(driver: &str) {
    let reply = pseudo_random_bytes(1024 * 1024, 3);
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let sent = reply.clone();
    let origin = Origin::start(move |mut s| {
        let (got, end) = read_all(&mut s, WAIT);
        let _ = tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send((got, end));
        if end == End::Eof {
            let _ = s.write_all(&sent);
        }
    });
    for relay in RELAYS {
        let proxy = Proxy::start(driver, relay);
        for first in [OPAQUE, b""] {
            let what = format!("{relay:?}, {} bytes before the half-close", first.len());
            let mut c = open_quiet_tunnel(&proxy, &origin.addr.to_string());
            c.write_all(first).expect("write");
            c.shutdown(Shutdown::Write).expect("shutdown");
            let (got, end) = rx.recv_timeout(WAIT).expect("origin report");
            assert_eq!(
                end,
                End::Eof,
                "{what}: the origin should see the client's EOF"
            );
            assert_eq!(got, first, "{what}");
            let (back, end) = read_all(&mut c, WAIT);
            assert_eq!(
                end,
                End::Eof,
                "{what}: the client should get EOF after the reply"
            );
            assert!(
                back == reply,
                "{what}: the client got {} bytes instead of the exact 1 MiB reply",
                back.len()
            );
        }
        assert_no_panic(proxy);
    }
}

/// The origin half-closes first: the client reads EOF, then still sends 256 KiB which the
/// origin receives before its own EOF. Both relays.
fn half_close_origin_first(driver: &str) {
    let data = pseudo_random_bytes(256 * 1024, 4);
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let origin = Origin::start(move |mut s| {
        let _ = s.write_all(b"origin done\n");
        let _ = s.shutdown(Shutdown::Write);
        let got = read_all(&mut s, WAIT);
        let _ = tx.lock().unwrap_or_else(|e| e.into_inner()).send(got);
    });
    for relay in RELAYS {
        let proxy = Proxy::start(driver, &flags(relay, &["--sniff-timeout", "200ms"]));
        let (mut c, rest) = open_tunnel(&proxy, &origin.addr.to_string());
        let (mut got, end) = read_all(&mut c, WAIT);
        got.splice(0..0, rest);
        assert_eq!(
            end,
            End::Eof,
            "{relay:?}: the client should see the origin's EOF"
        );
        assert_eq!(got, b"origin done\n", "{relay:?}");
        let mut payload = OPAQUE.to_vec();
        payload.extend_from_slice(&data);
        write_then_shutdown(&mut c, &payload).expect("client writes after the origin's EOF");
        let (got, end) = rx.recv_timeout(WAIT).expect("origin report");
        assert_eq!(
            end,
            End::Eof,
            "{relay:?}: the origin should see the client's EOF"
        );
        assert!(
            got == payload,
            "{relay:?}: the origin got {} of {} bytes sent after its half-close",
            got.len(),
            payload.len()
        );
        let (tail, end) = read_all(&mut c, PROMPT);
        assert!(tail.is_empty(), "{relay:?}: {tail:?}");
        assert_ne!(
            end,
            End::Open,
            "{relay:?}: both sides are done: the proxy should close"
        );
        assert_no_panic(proxy);
    }
}

// ---- protocols inside the tunnel ----

/// A server-first protocol: the client sends nothing, so after the sniff timeout the banner
/// the origin sent on accept reaches it; then the conversation goes on both ways.
fn server_first_banner(driver: &str) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let origin = Origin::start(move |mut s| {
        if s.write_all(b"220 smtp.test ESMTP\r\n").is_err() {
            return;
        }
        let mut line = Vec::new();
        let mut b = [0u8; 256];
        while !line.ends_with(b"\r\n") && line.len() < 4096 {
            match s.read(&mut b) {
                Ok(0) | Err(_) => break,
                Ok(n) => line.extend_from_slice(&b[..n]),
            }
        }
        let _ = tx.lock().unwrap_or_else(|e| e.into_inner()).send(line);
        let _ = s.write_all(b"250 smtp.test\r\n");
        let _ = read_all(&mut s, WAIT);
    });
    let configs: [(&[&str], Duration); 3] = [
        (&["--sniff-timeout", "200ms"], Duration::from_secs(2)),
        (
            &["--no-splice", "--sniff-timeout", "200ms"],
            Duration::from_secs(2),
        ),
        // The default sniff timeout (1 s).
        (&[], PROMPT),
    ];
    for (config, limit) in configs {
        let proxy = Proxy::start(driver, config);
        let (mut c, rest) = open_tunnel(&proxy, &origin.addr.to_string());
        let opened = Instant::now();
        let banner = b"220 smtp.test ESMTP\r\n";
        let got = read_n(&mut c, rest, banner.len(), "banner");
        assert_eq!(got, banner, "{config:?}");
        assert!(
            opened.elapsed() < limit,
            "{config:?}: the banner took {:?}",
            opened.elapsed()
        );
        c.write_all(b"EHLO x\r\n").expect("write");
        let line = rx.recv_timeout(WAIT).expect("origin line");
        assert_eq!(line, b"EHLO x\r\n", "{config:?}");
        assert_eq!(
            read_n(&mut c, Vec::new(), 15, "250 reply"),
            b"250 smtp.test\r\n",
            "{config:?}"
        );
        assert_no_panic(proxy);
    }
}

/// Plain HTTP/1 inside a tunnel: origin-form requests go to the tunnel's origin through the
/// proxy's pipeline (Via added, hop-by-hop removed), keep-alive on the tunnel's connection.
fn http_inside_tunnel(driver: &str) {
    let (origin, rx) = recording_origin(|req| {
        ok(format!("{} {} {}", req.method, req.target, req.body_str()).as_bytes())
    });
    let proxy = Proxy::start(driver, &[]);
    let c = open_quiet_tunnel(&proxy, &origin.addr.to_string());
    let mut c = Reader::new(c);
    let get = "GET /path?q HTTP/1.1\r\n\
               Host: h\r\n\
               Connection: keep-alive, X-Hop\r\n\
               X-Hop: 1\r\n\
               Keep-Alive: timeout=5\r\n\
               Proxy-Connection: keep-alive\r\n\
               Proxy-Authorization: Basic dXNlcjpwYXNz\r\n\
               X-End: yes\r\n\
               \r\n";
    for round in 0..2 {
        let resp = roundtrip(&mut c, "GET", get.as_bytes());
        assert_eq!(resp.status, 200, "round {round}");
        assert_eq!(resp.body_str(), "GET /path?q ", "round {round}");
        assert_eq!(resp.header("via"), Some("1.1 lynxio"), "round {round}");
        let got = next_request(&rx);
        assert_eq!(
            got.target, "/path?q",
            "round {round}: origin-form to the origin"
        );
        assert_eq!(
            header_names(&got),
            ["host", "x-end", "via"],
            "round {round}: origin head {}",
            String::from_utf8_lossy(&got.raw_head)
        );
        assert_eq!(got.header("host"), Some("h"));
        assert_eq!(got.header("via"), Some("1.1 lynxio"));
    }
    let post = "POST /submit HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello";
    let resp = roundtrip(&mut c, "POST", post.as_bytes());
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_str(), "POST /submit hello");
    assert_eq!(next_request(&rx).target, "/submit");
    assert_eq!(
        origin.accepted(),
        1,
        "every request should use the connection the CONNECT opened"
    );
    assert_no_panic(proxy);
}

/// More HTTP/1 inside a tunnel: a request in the same write as the CONNECT, a request head
/// trickled in pieces, HTTP/1.0 without Host (the CONNECT authority becomes the Host), and
/// `Connection: close` (answered, then the tunnel closes).
/// Inside a tunnel every request goes to the tunnel's origin, even in absolute-form naming
/// another host: the client chose the connection. A CONNECT with `Content-Length: 0` is fine.
fn absolute_form_inside_tunnel_stays_on_tunnel(driver: &str) {
    let (origin, rx) = recording_origin(|req| ok(req.target.as_bytes()));
    let other = Origin::http(|_| ok(b"wrong origin"));
    let proxy = Proxy::start(driver, &[]);
    let mut s = proxy.connect();
    let o = origin.addr;
    s.write_all(
        format!("CONNECT {o} HTTP/1.1\r\nHost: {o}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
    )
    .expect("write");
    let rest = read_established(&mut s);
    assert!(rest.is_empty());
    let mut c = Reader::new(s);
    let b = other.addr;
    let req = format!("GET http://{b}/abs HTTP/1.1\r\nHost: {b}\r\n\r\n");
    let resp = roundtrip(&mut c, "GET", req.as_bytes());
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_str(), "/abs");
    let got = next_request(&rx);
    assert_eq!(got.header("host"), Some(b.to_string().as_str()));
    assert_eq!(
        other.accepted(),
        0,
        "the tunnel's request escaped to another origin"
    );
    assert_no_panic(proxy);
}

fn http_inside_tunnel_variants(driver: &str) {
    let (origin, rx) =
        recording_origin(|req| ok(format!("{} {}", req.method, req.target).as_bytes()));
    let proxy = Proxy::start(driver, &[]);
    let authority = origin.addr.to_string();

    // CONNECT and the first request in one write.
    let mut c = proxy.connect();
    let mut bytes = connect_request(&authority);
    bytes.extend_from_slice(b"GET /early HTTP/1.1\r\nHost: h\r\n\r\n");
    c.write_all(&bytes).expect("write");
    let rest = read_established(&mut c);
    let mut r = Reader::new(std::io::Cursor::new(rest).chain(c.try_clone().expect("clone")));
    let (_, resp) = r
        .final_response("GET")
        .expect("response to the pipelined request");
    assert_eq!((resp.status, resp.body_str().as_str()), (200, "GET /early"));
    assert_eq!(resp.header("via"), Some("1.1 lynxio"));
    let got = next_request(&rx);
    assert_eq!(
        (got.target.as_str(), got.header("host")),
        ("/early", Some("h"))
    );
    assert_eq!(got.header("via"), Some("1.1 lynxio"));
    drop((r, c));

    // A request head trickled in pieces (the sniffer and the head reader must wait for more).
    let mut c = open_quiet_tunnel(&proxy, &authority);
    for piece in [
        "GE",
        "T /trick",
        "le HT",
        "TP/1.1\r\nHo",
        "st: h\r\n",
        "\r\n",
    ] {
        c.write_all(piece.as_bytes()).expect("write piece");
        thread::sleep(Duration::from_millis(30));
    }
    let mut r = Reader::new(c);
    let (_, resp) = r
        .final_response("GET")
        .expect("response to the trickled request");
    assert_eq!(
        (resp.status, resp.body_str().as_str()),
        (200, "GET /trickle")
    );
    assert_eq!(next_request(&rx).target, "/trickle");

    // HTTP/1.0 without Host: the origin gets the CONNECT authority as Host; then the proxy
    // closes (no keep-alive asked for).
    let mut c = open_quiet_tunnel(&proxy, &authority);
    c.write_all(b"GET /ten HTTP/1.0\r\n\r\n").expect("write");
    let mut r = Reader::new(c);
    let (_, resp) = r.final_response("GET").expect("response to HTTP/1.0");
    assert_eq!((resp.status, resp.body_str().as_str()), (200, "GET /ten"));
    let got = next_request(&rx);
    assert_eq!(got.target, "/ten");
    assert_eq!(got.header("host"), Some(authority.as_str()));
    assert_eq!(got.header("via"), Some("1.0 lynxio"));
    assert!(
        r.closed(),
        "HTTP/1.0 without keep-alive: the tunnel should close"
    );

    // Connection: close in HTTP/1.1.
    let mut c = open_quiet_tunnel(&proxy, &authority);
    c.write_all(b"GET /bye HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut r = Reader::new(c);
    let (_, resp) = r
        .final_response("GET")
        .expect("response to Connection: close");
    assert_eq!((resp.status, resp.body_str().as_str()), (200, "GET /bye"));
    assert!(
        resp.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close")),
        "the response should say Connection: close: {:?}",
        String::from_utf8_lossy(&resp.raw_head)
    );
    assert_eq!(next_request(&rx).target, "/bye");
    assert!(r.closed(), "Connection: close: the tunnel should close");
    assert_no_panic(proxy);
}

/// HTTP/1 inside a tunnel whose pre-dialed origin connection was closed by the origin before
/// the first request: the requests (two, pipelined) still get answered over a new connection.
fn http_inside_tunnel_origin_closed_first(driver: &str) {
    let first = AtomicBool::new(true);
    let origin = Origin::start(move |mut s| {
        if first.swap(false, Ordering::SeqCst) {
            return; // closes the tunnel's own connection at once
        }
        let mut r = Reader::new(s.try_clone().expect("clone"));
        for _ in 0..100 {
            let Some(req) = r.request() else { return };
            if s.write_all(&ok(req.target.as_bytes())).is_err() {
                return;
            }
        }
    });
    let proxy = Proxy::start(driver, &[]);
    let c = open_quiet_tunnel(&proxy, &origin.addr.to_string());
    assert!(eventually(WAIT, || origin.accepted() == 1));
    thread::sleep(Duration::from_millis(200));
    let mut r = Reader::new(c);
    r.get_mut()
        .write_all(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n")
        .expect("write");
    for want in ["/a", "/b"] {
        let (_, resp) = r
            .final_response("GET")
            .unwrap_or_else(|| panic!("no response for {want}"));
        assert_eq!((resp.status, resp.body_str().as_str()), (200, want));
    }
    assert_no_panic(proxy);
}

/// Bad requests inside a tunnel get the proxy's own 400, and nothing reaches the origin; so
/// does a CONNECT inside a tunnel.
fn bad_requests_inside_tunnel(driver: &str) {
    let proxy = Proxy::start(driver, &[]);
    let (origin, seen) = byte_sink_origin();
    let o = origin.addr;
    let cases = [
        (
            "bad header name",
            "GET /x HTTP/1.1\r\nHost: h\r\nBad Header: 1\r\n\r\n".to_owned(),
        ),
        (
            "CL + TE",
            "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\
             Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                .to_owned(),
        ),
        (
            "CONNECT in a tunnel",
            format!("CONNECT {o} HTTP/1.1\r\nHost: {o}\r\n\r\n"),
        ),
    ];
    for (what, req) in cases {
        let mut c = open_quiet_tunnel(&proxy, &o.to_string());
        c.write_all(req.as_bytes()).expect("write");
        let reply = read_reply(c, Instant::now(), WAIT);
        assert_error_reply(&reply, 400, what);
    }
    thread::sleep(Duration::from_millis(100));
    let got = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(
        got.is_empty(),
        "the origin received bytes of rejected requests: {:?}",
        String::from_utf8_lossy(&got)
    );
    assert_no_panic(proxy);
}

const WS_REQUEST: &[u8] = b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";
const WS_SWITCH: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
/// A masked text frame "Hello" (RFC 6455 §5.7) and the server's unmasked one.
const WS_CLIENT_FRAME: &[u8] = b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
const WS_SERVER_FRAME: &[u8] = b"\x81\x05Hello";

/// A WebSocket origin: reports the request head it got (raw), answers 101, reports the
/// client's frame, sends its own, then reads until the proxy closes.
fn websocket_origin() -> (Origin, mpsc::Receiver<Vec<u8>>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let origin = Origin::start(move |mut s| {
        let mut r = Reader::new(s.try_clone().expect("clone"));
        let Some(head) = r.request_head() else { return };
        let _ = tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(head.raw_head);
        if s.write_all(WS_SWITCH).is_err() {
            return;
        }
        let frame = r.take_exact(WS_CLIENT_FRAME.len()).unwrap_or_default();
        let _ = tx.lock().unwrap_or_else(|e| e.into_inner()).send(frame);
        let _ = s.write_all(WS_SERVER_FRAME);
        let _ = r.read_to_close();
    });
    (origin, rx)
}

/// One WebSocket conversation through a fresh tunnel, the upgrade request written in pieces of
/// `split` bytes `gap` apart: the handshake is forwarded like any request (Upgrade,
/// `Connection: upgrade` and `Sec-WebSocket-*` kept, `Via` added) and the frames byte-exact in
/// both directions.
fn websocket_exchange(
    proxy: &Proxy,
    origin: &Origin,
    rx: &mpsc::Receiver<Vec<u8>>,
    split: usize,
    gap: Duration,
) {
    let what = format!("upgrade request written in pieces of {split} bytes {gap:?} apart");
    let mut c = open_quiet_tunnel(proxy, &origin.addr.to_string());
    for piece in WS_REQUEST.chunks(split) {
        c.write_all(piece).expect("write upgrade request");
        thread::sleep(gap);
    }
    let head = rx
        .recv_timeout(WAIT)
        .expect("origin got the upgrade request");
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    for field in [
        "get /ws http/1.1\r\n",
        "\r\nupgrade: websocket\r\n",
        "\r\nconnection: upgrade\r\n",
        "\r\nsec-websocket-key: dghlihnhbxbszsbub25jzq==\r\n",
        "\r\nsec-websocket-version: 13\r\n",
        "\r\nvia: 1.1 lynxio\r\n",
    ] {
        assert!(
            head.contains(field),
            "{what}: {field:?} missing from {head:?}"
        );
    }
    let mut switch = Vec::new();
    while !switch.ends_with(b"\r\n\r\n") && switch.len() < 4096 {
        switch = read_n(&mut c, switch.clone(), switch.len() + 1, "101");
    }
    let switch = String::from_utf8_lossy(&switch).to_ascii_lowercase();
    for field in [
        "http/1.1 101 switching protocols\r\n",
        "\r\nupgrade: websocket\r\n",
        "\r\nconnection: upgrade\r\n",
        "\r\nsec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=\r\n",
    ] {
        assert!(
            switch.contains(field),
            "{what}: {field:?} missing from {switch:?}"
        );
    }
    c.write_all(WS_CLIENT_FRAME).expect("write frame");
    let frame = rx.recv_timeout(WAIT).expect("origin got the frame");
    assert_eq!(frame, WS_CLIENT_FRAME, "{what}");
    assert_eq!(
        read_n(&mut c, Vec::new(), WS_SERVER_FRAME.len(), "server frame"),
        WS_SERVER_FRAME,
        "{what}"
    );
    c.shutdown(Shutdown::Write).expect("shutdown");
    let (tail, end) = read_all(&mut c, WAIT);
    assert!(
        tail.is_empty() && end == End::Eof,
        "{what}: {tail:?} {end:?}"
    );
}

/// A WebSocket upgrade inside a tunnel goes through the HTTP pipeline (visible, checked) and
/// its 101 switches both connections to a relay; then frames flow both ways. Whole, and with
/// the head split so the proxy must read on to see the Upgrade field.
fn websocket_inside_tunnel(driver: &str) {
    let (origin, rx) = websocket_origin();
    let proxy = Proxy::start(driver, &[]);
    for split in [WS_REQUEST.len(), 40] {
        websocket_exchange(&proxy, &origin, &rx, split, Duration::from_millis(30));
    }
    assert_no_panic(proxy);
}

/// The same upgrade request, but its head completes only after the sniff timeout: once the
/// request line says HTTP/1, the rest of the head gets the head timeout, so the upgrade is
/// still seen and the upgrade relayed.
fn websocket_head_after_sniff_timeout(driver: &str) {
    let (origin, rx) = websocket_origin();
    let proxy = Proxy::start(driver, &["--sniff-timeout", "200ms"]);
    websocket_exchange(&proxy, &origin, &rx, 40, Duration::from_millis(400));
    assert_no_panic(proxy);
}

/// Real ClientHellos written in small pieces after the 200 reach the origin untouched, and the
/// proxy logs each tunnel as TLS with its SNI.
fn tls_client_hello_tunnelled(driver: &str) {
    const SERVER_BYTES: &[u8] = b"\x16\x03\x03\x00\x02\x02\x00";
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let origin = Origin::start(move |mut s| {
        let (got, end) = {
            // The hello is complete when its records are: read record by record.
            let mut got = Vec::new();
            let mut chunk = [0u8; 4096];
            let mut end = End::Open;
            for _ in 0..10_000 {
                if tls_records_complete(&got) {
                    break;
                }
                match s.read(&mut chunk) {
                    Ok(0) => {
                        end = End::Eof;
                        break;
                    }
                    Ok(n) => got.extend_from_slice(&chunk[..n]),
                    Err(_) => {
                        end = End::Reset;
                        break;
                    }
                }
            }
            (got, end)
        };
        let _ = tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send((got, end));
        if end == End::Open {
            let _ = s.write_all(SERVER_BYTES);
            let _ = read_all(&mut s, WAIT);
        }
    });
    let proxy = Proxy::start(driver, &["--sniff-timeout", "5s"]);
    for (name, hello, _) in HELLOS {
        let mut c = open_quiet_tunnel(&proxy, &origin.addr.to_string());
        write_slowly(&mut c, hello);
        let (got, end) = rx.recv_timeout(WAIT).expect("origin report");
        assert_eq!(
            end,
            End::Open,
            "{name}: the origin saw the tunnel end early"
        );
        assert!(
            got == hello,
            "{name}: the origin got {} bytes, not the exact {}-byte ClientHello",
            got.len(),
            hello.len()
        );
        let back = read_n(&mut c, Vec::new(), SERVER_BYTES.len(), name);
        assert_eq!(back, SERVER_BYTES, "{name}");
        c.shutdown(Shutdown::Write).expect("shutdown");
        let (tail, end) = read_all(&mut c, WAIT);
        assert!(
            tail.is_empty() && end == End::Eof,
            "{name}: {tail:?} {end:?}"
        );
    }
    // The tunnel's access line is written right after the relay ends.
    thread::sleep(Duration::from_millis(300));
    let log = proxy.stop_and_log();
    let closed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("lynxio::access: tunnel"))
        .collect();
    for (name, hello, sni) in HELLOS {
        let line = closed
            .iter()
            .find(|l| field(l, "sni").as_deref() == Some(sni))
            .unwrap_or_else(|| {
                panic!(
                    "{name}: no tunnel access line with sni={sni}; tunnel lines:\n{}",
                    closed.join("\n")
                )
            });
        assert_eq!(
            field(line, "kind").as_deref(),
            Some("tls"),
            "{name}: {line}"
        );
        assert_eq!(
            field(line, "up"),
            Some(hello.len().to_string()),
            "{name}: {line}"
        );
        assert_eq!(
            field(line, "down"),
            Some(SERVER_BYTES.len().to_string()),
            "{name}: {line}"
        );
    }
    assert!(!log.contains("panicked"), "the proxy panicked:\n{log}");
}

/// Whether `b` is a sequence of complete TLS records (at least one).
fn tls_records_complete(b: &[u8]) -> bool {
    let mut at = 0;
    while at + 5 <= b.len() {
        let len = u16::from_be_bytes([b[at + 3], b[at + 4]]) as usize;
        at += 5 + len;
    }
    at == b.len() && at > 0
}

/// The value of `name=value` in a log line (quotes stripped).
fn field(line: &str, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    line.split_whitespace()
        .find_map(|t| t.strip_prefix(prefix.as_str()))
        .map(|v| v.trim_matches('"').to_owned())
}

// ---- failures ----

/// CONNECT to a port nothing listens on: 502, fast.
fn connect_refused(driver: &str) {
    let port = refused_port();
    let proxy = Proxy::start(driver, &[]);
    let start = Instant::now();
    let reply = send_raw(
        proxy.addr,
        &connect_request(&format!("127.0.0.1:{port}")),
        WAIT,
    );
    assert_error_reply(&reply, 502, "CONNECT to a refused port");
    assert!(
        start.elapsed() < PROMPT,
        "a refused connect must fail fast, took {:?}",
        start.elapsed()
    );
    assert_no_panic(proxy);
}

/// CONNECT to a name that does not resolve: 502 naming the host.
fn connect_unknown_host(driver: &str) {
    let proxy = Proxy::start(driver, &[]);
    let reply = send_raw(
        proxy.addr,
        &connect_request("nonexistent.invalid:443"),
        WAIT,
    );
    let m = assert_error_reply(&reply, 502, "CONNECT to an unknown host");
    assert!(
        m.body_str().contains("nonexistent.invalid"),
        "the body should name the host: {:?}",
        m.body_str()
    );
    assert_no_panic(proxy);
}

/// CONNECT to an origin that never completes the handshake: 504 after the connect timeout.
fn connect_timeout(driver: &str) {
    let (addr, _listener, _held) =
        full_backlog_listener().expect("could not fill a listener's accept queue");
    let proxy = Proxy::start(driver, &["--connect-timeout", "300ms"]);
    let start = Instant::now();
    let reply = send_raw(proxy.addr, &connect_request(&addr.to_string()), WAIT);
    let elapsed = start.elapsed();
    assert_error_reply(&reply, 504, "CONNECT timeout");
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < PROMPT,
        "504 should come after ~300ms, took {elapsed:?}"
    );
    assert_no_panic(proxy);
}

/// The origin resets while both directions are busy: the client's connection ends promptly
/// and the proxy keeps serving.
fn origin_reset_mid_stream(driver: &str) {
    let origin = Origin::start(|mut s| {
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        let _ = s.write_all(&[b'o'; 64 * 1024]);
        thread::sleep(Duration::from_millis(100));
        let _ = SockRef::from(&s).set_linger(Some(Duration::ZERO));
        drop(s);
    });
    let echo_origin = Origin::start(echo);
    for relay in RELAYS {
        let proxy = Proxy::start(driver, relay);
        let mut c = open_quiet_tunnel(&proxy, &origin.addr.to_string());
        c.write_all(OPAQUE).expect("write");
        // Keep the client → origin direction busy (the origin stops reading).
        let mut w = c.try_clone().expect("clone");
        w.set_write_timeout(Some(PROMPT)).expect("timeout");
        let writer = thread::spawn(move || {
            let piece = vec![0u8; 1024 * 1024];
            for _ in 0..32 {
                if w.write_all(&piece).is_err() {
                    return;
                }
            }
        });
        let start = Instant::now();
        let (got, end) = read_all(&mut c, WAIT);
        let elapsed = start.elapsed();
        assert_ne!(
            end,
            End::Open,
            "the client connection stayed open after the origin reset"
        );
        assert!(elapsed < PROMPT, "closing took {elapsed:?}");
        assert!(
            got.len() <= 64 * 1024 && got.iter().all(|&b| b == b'o'),
            "unexpected bytes before the close ({} bytes)",
            got.len()
        );
        drop(c);
        writer.join().expect("writer");
        assert_tunnel_works(&proxy, &echo_origin, "after an origin reset");
        assert_no_panic(proxy);
    }
}

/// The client resets while the origin is streaming: the origin's connection ends promptly and
/// the proxy keeps serving.
fn client_reset_mid_stream(driver: &str) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let origin = Origin::start(move |mut s| {
        let mut w = s.try_clone().expect("clone");
        let writer = thread::spawn(move || {
            let piece = vec![b'd'; 256 * 1024];
            for _ in 0..256 {
                if w.write_all(&piece).is_err() {
                    return;
                }
            }
        });
        let (_, end) = read_all(&mut s, Duration::from_secs(8));
        let _ = tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send((Instant::now(), end));
        let _ = s.shutdown(Shutdown::Both);
        let _ = writer.join();
    });
    let echo_origin = Origin::start(echo);
    for relay in RELAYS {
        let proxy = Proxy::start(driver, relay);
        let mut c = open_quiet_tunnel(&proxy, &origin.addr.to_string());
        c.write_all(OPAQUE).expect("write");
        let got = read_n(&mut c, Vec::new(), 64 * 1024, "origin stream");
        assert!(got.iter().all(|&b| b == b'd'));
        SockRef::from(&c)
            .set_linger(Some(Duration::ZERO))
            .expect("linger");
        drop(c);
        let reset_at = Instant::now();
        let (ended_at, end) = rx.recv_timeout(WAIT * 2).expect("origin report");
        assert_ne!(
            end,
            End::Open,
            "the origin connection stayed open after the client reset"
        );
        assert!(
            ended_at.saturating_duration_since(reset_at) < PROMPT,
            "the origin saw the end {:?} after the client reset",
            ended_at.saturating_duration_since(reset_at)
        );
        assert_tunnel_works(&proxy, &echo_origin, "after a client reset");
        assert_no_panic(proxy);
    }
}

/// `--tunnel-idle-timeout`: a tunnel with traffic every 50 ms stays open past the timeout; a
/// silent one is closed on both sides, and so is a half-closed one that goes silent.
fn idle_tunnel_closed(driver: &str) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let origin = Origin::start(move |s| {
        echo(s);
        let _ = tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(Instant::now());
    });
    // Reads until EOF, then stays silent with the connection open (for a bounded time).
    let mute_origin = Origin::start(|mut s| {
        let _ = read_all(&mut s, WAIT);
        thread::sleep(Duration::from_secs(4));
    });
    for relay in RELAYS {
        let proxy = Proxy::start(
            driver,
            &flags(
                relay,
                &["--tunnel-idle-timeout", "300ms", "--sniff-timeout", "200ms"],
            ),
        );
        let mut c = open_quiet_tunnel(&proxy, &origin.addr.to_string());
        // 20 round trips 50 ms apart: active for longer than the timeout.
        for i in 0..20u8 {
            if i > 0 {
                thread::sleep(Duration::from_millis(50));
            }
            c.write_all(&[i]).expect("write while active");
            let back = read_n(&mut c, Vec::new(), 1, "echo while active");
            assert_eq!(back, [i], "round {i}: the active tunnel was closed");
        }
        // The proxy's idle clock started when it relayed the last echo, just before this.
        let silent = Instant::now();
        let (got, end) = read_all(&mut c, WAIT);
        let elapsed = silent.elapsed();
        assert!(got.is_empty(), "{got:?}");
        assert_ne!(end, End::Open, "the idle tunnel was not closed");
        assert!(
            elapsed >= Duration::from_millis(100) && elapsed < PROMPT,
            "the idle tunnel was closed after {elapsed:?} (timeout 300ms)"
        );
        let origin_closed = rx.recv_timeout(WAIT).expect("origin side closed");
        assert!(
            origin_closed.saturating_duration_since(silent) < PROMPT,
            "the origin side closed {:?} after the tunnel went idle",
            origin_closed.saturating_duration_since(silent)
        );

        // Half-closed and then silent: the client is done, the origin neither answers nor
        // closes. The idle timeout still ends the tunnel.
        let mut c = open_quiet_tunnel(&proxy, &mute_origin.addr.to_string());
        c.write_all(OPAQUE).expect("write");
        c.shutdown(Shutdown::Write).expect("shutdown");
        let silent = Instant::now();
        let (got, end) = read_all(&mut c, WAIT);
        let elapsed = silent.elapsed();
        assert!(got.is_empty(), "{got:?}");
        assert_ne!(end, End::Open, "the half-closed idle tunnel was not closed");
        assert!(
            elapsed >= Duration::from_millis(100) && elapsed < PROMPT,
            "the half-closed idle tunnel was closed after {elapsed:?} (timeout 300ms)"
        );
        assert_no_panic(proxy);
    }
}

/// 200 tunnels open at once, each echoing 64 KiB of its own data byte-exact.
fn many_tunnels(driver: &str) {
    const TUNNELS: usize = 200;
    const SIZE: usize = 64 * 1024;
    let origin = Origin::start(echo);
    for (round, relay) in RELAYS.into_iter().enumerate() {
        let proxy = Proxy::start(driver, relay);
        let fds_before = open_fds(proxy.pid());
        let target = origin.addr.to_string();
        let tunnels: Vec<TcpStream> = (0..TUNNELS)
            .map(|_| open_quiet_tunnel(&proxy, &target))
            .collect();
        // The origin's accept loop may still be counting the last connection.
        assert!(
            eventually(WAIT, || origin.accepted() == TUNNELS * (round + 1)),
            "{relay:?}: the origin accepted {} connections for {TUNNELS} tunnels",
            origin.accepted() - TUNNELS * round
        );
        let failures = Arc::new(Mutex::new(Vec::new()));
        thread::scope(|scope| {
            for (i, mut c) in tunnels.into_iter().enumerate() {
                let failures = failures.clone();
                scope.spawn(move || {
                    let mut data = pseudo_random_bytes(SIZE, 100 + i as u64);
                    data[0] = 0;
                    let mut w = c.try_clone().expect("clone");
                    let sent = data.clone();
                    let writer = thread::spawn(move || write_then_shutdown(&mut w, &sent));
                    let got = read_and_verify(&mut c, &data);
                    let wrote = writer.join().expect("writer");
                    if got != Ok(SIZE) || wrote.is_err() {
                        failures
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(format!(
                                "{relay:?} tunnel {i}: read {got:?}, write {wrote:?}"
                            ));
                    }
                });
            }
        });
        let failures = failures.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        // Every tunnel is closed: its sockets and pipes too (a few pipes may stay pooled).
        if let Some(before) = fds_before {
            let limit = before + 2 * MAX_IDLE_PIPES + 8;
            let settled = eventually(WAIT, || open_fds(proxy.pid()).is_some_and(|n| n <= limit));
            assert!(
                settled,
                "{relay:?}: the proxy holds {:?} fds after 200 closed tunnels ({before} before)",
                open_fds(proxy.pid())
            );
        }
        assert_no_panic(proxy);
    }
}

drivers!(
    established_and_relays,
    established_waits_for_origin,
    early_data_reaches_origin,
    bulk_spliced,
    bulk_copied,
    half_close_client_first,
    half_close_origin_first,
    server_first_banner,
    http_inside_tunnel,
    http_inside_tunnel_variants,
    absolute_form_inside_tunnel_stays_on_tunnel,
    http_inside_tunnel_origin_closed_first,
    bad_requests_inside_tunnel,
    websocket_inside_tunnel,
    websocket_head_after_sniff_timeout,
    tls_client_hello_tunnelled,
    connect_refused,
    connect_unknown_host,
    connect_timeout,
    origin_reset_mid_stream,
    client_reset_mid_stream,
    idle_tunnel_closed,
    many_tunnels,
);
