//! Load generator for HTTPS through an intercepting (MITM) proxy, used by
//! `scripts/bench-mitm.sh`:
//!
//! - `origin CA_PATH` starts an HTTPS origin on 127.0.0.1 (rustls; an ECDSA P-256 leaf for
//!   `localhost` and IP 127.0.0.1 signed by a throwaway CA whose PEM it writes to CA_PATH),
//!   prints `port <PORT>` once it accepts, and serves until killed. Every request gets `200`
//!   with a 100-byte body; keep-alive unless the request says `Connection: close`.
//! - `certs DIR` writes an origin's PKI for another server (nginx): `DIR/cert.pem` (leaf for
//!   `localhost` and 127.0.0.1, ECDSA P-256), `DIR/key.pem`, and `DIR/ca.pem` (its CA).
//! - `load PROXY ORIGIN_PORT CA_PEM keepalive|handshake|resumed CONNS SECONDS [K]` runs CONNS
//!   client threads for SECONDS. Each opens a connection to PROXY, sends
//!   `CONNECT 127.0.0.1:PORT` (PROXY `direct`: connects to the origin itself instead), does a
//!   TLS handshake with SNI `localhost` trusting only CA_PEM (the proxy's root, or the origin's
//!   CA when direct), then either sends up to K keep-alive GETs (keepalive; K defaults to 1000)
//!   or one GET with `Connection: close` and starts over: `handshake` with client-side session
//!   resumption off (every connection a full handshake), `resumed` with a session store per
//!   thread (every connection after a thread's first offers the last session's ticket). Prints
//!   `rps <requests/s> errors <n> handshakes <n> resumed <n>`.
//!
//! Plain std threads, blocking sockets and rustls; one reused buffer per thread. It is not part
//! of lynxio itself.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rustls::client::Resumption;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, HandshakeKind, ServerConfig, StreamOwned};

const BODY_LEN: usize = 100;
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_HEAD: usize = 16 * 1024;
/// Sessions a `resumed` thread keeps (it only ever talks to one server).
const CLIENT_SESSIONS: usize = 8;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("origin") if args.len() == 2 => origin(&args[1]),
        Some("certs") if args.len() == 2 => certs(&args[1]),
        Some("load") if args.len() == 7 || args.len() == 8 => load(&args[1..]),
        _ => Err("usage: mitm_load origin CA_PATH | certs DIR | \
                  load PROXY|direct ORIGIN_PORT CA_PEM keepalive|handshake|resumed CONNS SECONDS [K]"
            .to_owned()),
    };
    if let Err(e) = result {
        eprintln!("mitm_load: {e}");
        std::process::exit(1);
    }
}

#[path = "support/tls.rs"]
mod tls;
use tls::err;

// ---- origin ----

fn certs(dir: &str) -> Result<(), String> {
    let pems = tls::origin_pems("mitm_load origin CA")?;
    let dir = std::path::Path::new(dir);
    std::fs::create_dir_all(dir).map_err(err("create DIR"))?;
    for (name, pem) in [
        ("cert.pem", &pems.cert),
        ("key.pem", &pems.key),
        ("ca.pem", &pems.ca),
    ] {
        std::fs::write(dir.join(name), pem).map_err(err("write PEM"))?;
    }
    Ok(())
}

fn origin(ca_path: &str) -> Result<(), String> {
    let (cfg, ca_pem) = tls::origin_config("mitm_load origin CA")?;
    std::fs::write(ca_path, ca_pem).map_err(err("write CA"))?;

    let listener = TcpListener::bind("127.0.0.1:0").map_err(err("bind"))?;
    let port = listener.local_addr().map_err(err("local addr"))?.port();
    println!("port {port}");
    std::io::stdout().flush().map_err(err("stdout"))?;
    loop {
        let Ok((sock, _)) = listener.accept() else {
            continue;
        };
        let cfg = cfg.clone();
        thread::spawn(move || serve(cfg, sock));
    }
}

fn serve(cfg: Arc<ServerConfig>, sock: TcpStream) {
    let _ = sock.set_nodelay(true);
    let _ = sock.set_read_timeout(Some(Duration::from_secs(60)));
    let Ok(conn) = rustls::ServerConnection::new(cfg) else {
        return;
    };
    let mut tls = StreamOwned::new(conn, sock);
    let mut resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {BODY_LEN}\r\n\r\n"
    )
    .into_bytes();
    resp.extend(std::iter::repeat_n(b'x', BODY_LEN));
    let mut buf = Vec::with_capacity(4096);
    loop {
        // GETs only: a request is its head.
        let Some(head_len) = read_head(&mut tls, &mut buf) else {
            return;
        };
        let close = header_has(&buf[..head_len], b"connection", b"close");
        buf.drain(..head_len);
        if tls.write_all(&resp).and_then(|()| tls.flush()).is_err() {
            return;
        }
        if close {
            tls.conn.send_close_notify();
            let _ = tls.flush();
            return;
        }
    }
}

/// Reads until `buf` holds a complete head; returns its length (buffered bytes beyond it stay).
fn read_head<R: Read>(r: &mut R, buf: &mut Vec<u8>) -> Option<usize> {
    let mut scanned: usize = 0;
    loop {
        let from = scanned.saturating_sub(3);
        if let Some(i) = memchr::memmem::find(&buf[from..], b"\r\n\r\n") {
            return Some(from + i + 4);
        }
        scanned = buf.len();
        if buf.len() > MAX_HEAD {
            return None;
        }
        let old = buf.len();
        buf.resize(old + 4096, 0);
        match r.read(&mut buf[old..]) {
            Ok(0) | Err(_) => {
                buf.truncate(old);
                return None;
            }
            Ok(n) => buf.truncate(old + n),
        }
    }
}

/// Whether `head` has a header `name` (ASCII case-insensitive) whose value contains `token`.
fn header_has(head: &[u8], name: &[u8], token: &[u8]) -> bool {
    head.split(|&b| b == b'\n').skip(1).any(|line| {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return false;
        };
        line[..colon].trim_ascii().eq_ignore_ascii_case(name)
            && line[colon + 1..]
                .to_ascii_lowercase()
                .windows(token.len())
                .any(|w| w == token)
    })
}

fn content_length(head: &[u8]) -> Option<usize> {
    head.split(|&b| b == b'\n').skip(1).find_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        if !line[..colon]
            .trim_ascii()
            .eq_ignore_ascii_case(b"content-length")
        {
            return None;
        }
        std::str::from_utf8(line[colon + 1..].trim_ascii())
            .ok()?
            .parse()
            .ok()
    })
}

// ---- load ----

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    KeepAlive,
    Handshake,
    Resumed,
}

struct Target {
    /// `None`: straight to the origin.
    proxy: Option<SocketAddr>,
    origin_port: u16,
    /// Each thread's config is a copy (its own session store in `resumed` mode).
    cfg: ClientConfig,
    mode: Mode,
    per_conn: u64,
}

/// What the threads count.
#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    handshakes: AtomicU64,
    resumed: AtomicU64,
}

fn load(args: &[String]) -> Result<(), String> {
    let proxy: Option<SocketAddr> = match args[0].as_str() {
        "direct" => None,
        addr => Some(addr.parse().map_err(err("bad PROXY"))?),
    };
    let origin_port: u16 = args[1].parse().map_err(err("bad ORIGIN_PORT"))?;
    let ca_pem = std::fs::read(&args[2]).map_err(err("read CA_PEM"))?;
    let mode = match args[3].as_str() {
        "keepalive" => Mode::KeepAlive,
        "handshake" => Mode::Handshake,
        "resumed" => Mode::Resumed,
        _ => return Err("mode must be keepalive, handshake or resumed".into()),
    };
    let conns: usize = args[4].parse().map_err(err("bad CONNS"))?;
    let secs: f64 = args[5].parse().map_err(err("bad SECONDS"))?;
    let per_conn: u64 = match args.get(6) {
        Some(k) => k.parse().map_err(err("bad K"))?,
        None => 1000,
    };
    let mut cfg = tls::client_config(&ca_pem)?;
    cfg.resumption = match mode {
        // Sessions are kept per thread: one ticket per new connection, taken by the next.
        Mode::Resumed => Resumption::in_memory_sessions(CLIENT_SESSIONS),
        // Every new connection is a full handshake, as for a fresh client.
        Mode::KeepAlive | Mode::Handshake => Resumption::disabled(),
    };
    let target = Arc::new(Target {
        proxy,
        origin_port,
        cfg,
        mode,
        per_conn: if mode == Mode::KeepAlive {
            per_conn.max(1)
        } else {
            1
        },
    });

    let done = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let errors = Arc::new(AtomicU64::new(0));
    let last_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let start = Instant::now();
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let (target, done, counts, errors, last_error) = (
                target.clone(),
                done.clone(),
                counts.clone(),
                errors.clone(),
                last_error.clone(),
            );
            thread::spawn(move || {
                let mut buf = Vec::with_capacity(4096);
                let mut cfg = target.cfg.clone();
                if target.mode == Mode::Resumed {
                    // This thread's own session store (a copy would share the template's).
                    cfg.resumption = Resumption::in_memory_sessions(CLIENT_SESSIONS);
                }
                let cfg = Arc::new(cfg);
                while !done.load(Ordering::Relaxed) {
                    if let Err(e) = connection(&target, &cfg, &done, &counts, &mut buf) {
                        if done.load(Ordering::Relaxed) {
                            break;
                        }
                        errors.fetch_add(1, Ordering::Relaxed);
                        *last_error.lock().unwrap() = Some(e);
                        // Do not spin on a refusing proxy.
                        thread::sleep(Duration::from_millis(10));
                    }
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_secs_f64(secs));
    // Count only what completed within the window.
    let counted = counts.requests.load(Ordering::Relaxed);
    let handshakes = counts.handshakes.load(Ordering::Relaxed);
    let resumed = counts.resumed.load(Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    println!(
        "rps {:.0} errors {} handshakes {handshakes} resumed {resumed}",
        counted as f64 / elapsed,
        errors.load(Ordering::Relaxed)
    );
    if let Some(e) = last_error.lock().unwrap().take() {
        eprintln!("mitm_load: last error: {e}");
    }
    Ok(())
}

/// One TLS connection (through the proxy: CONNECT first), handshake, then `per_conn` GETs (or
/// until `done`).
fn connection(
    t: &Target,
    cfg: &Arc<ClientConfig>,
    done: &AtomicBool,
    counts: &Counts,
    buf: &mut Vec<u8>,
) -> Result<(), String> {
    let port = t.origin_port;
    let dial = t
        .proxy
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], port)));
    let mut sock = TcpStream::connect(dial).map_err(err("connect"))?;
    sock.set_nodelay(true).map_err(err("nodelay"))?;
    sock.set_read_timeout(Some(IO_TIMEOUT))
        .map_err(err("timeout"))?;
    if t.proxy.is_some() {
        write!(
            sock,
            "CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
        )
        .map_err(err("write CONNECT"))?;
        // The TLS server speaks only after our ClientHello, so the whole answer is the reply
        // head.
        buf.clear();
        let head = read_head(&mut sock, buf).ok_or("no answer to CONNECT")?;
        if !buf.starts_with(b"HTTP/1.1 200") || buf.len() != head {
            return Err(format!(
                "CONNECT refused: {:?}",
                String::from_utf8_lossy(&buf[..head])
            ));
        }
    }
    buf.clear();
    let name = ServerName::try_from("localhost").expect("static name");
    let conn = ClientConnection::new(cfg.clone(), name).map_err(err("client conn"))?;
    let mut tls = StreamOwned::new(conn, sock);
    let close = t.mode != Mode::KeepAlive;
    let mut counted = false;
    let req = format!(
        "GET /100b HTTP/1.1\r\nHost: localhost:{port}\r\n{}\r\n",
        if close { "Connection: close\r\n" } else { "" }
    );
    for _ in 0..t.per_conn {
        if done.load(Ordering::Relaxed) {
            break;
        }
        // The first write drives the handshake.
        tls.write_all(req.as_bytes())
            .map_err(err("write request"))?;
        let head = read_head(&mut tls, buf).ok_or("no response head")?;
        if !counted {
            counted = true;
            counts.handshakes.fetch_add(1, Ordering::Relaxed);
            if tls.conn.handshake_kind() == Some(HandshakeKind::Resumed) {
                counts.resumed.fetch_add(1, Ordering::Relaxed);
            }
        }
        if !buf.starts_with(b"HTTP/1.1 200") {
            return Err(format!(
                "bad response: {:?}",
                String::from_utf8_lossy(&buf[..head])
            ));
        }
        let len = content_length(&buf[..head]).ok_or("response without Content-Length")?;
        while buf.len() < head + len {
            let old = buf.len();
            buf.resize(head + len, 0);
            match tls.read(&mut buf[old..]) {
                Ok(0) => return Err("EOF in response body".into()),
                Ok(n) => buf.truncate(old + n),
                Err(e) => return Err(format!("read body: {e}")),
            }
        }
        buf.drain(..head + len);
        counts.requests.fetch_add(1, Ordering::Relaxed);
    }
    if close {
        tls.conn.send_close_notify();
        let _ = tls.flush();
    }
    Ok(())
}
