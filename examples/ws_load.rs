//! WebSocket echo load, used by `scripts/bench-ws.sh`. Runs its own echo origin (tungstenite,
//! a thread per connection; `--tls` for wss with a throwaway CA) on 127.0.0.1 and drives
//! `--conns` client connections for `--seconds`. Each client writes `--window` binary messages
//! of `--size` bytes, then reads their echoes, over and over (`--window 1` is a ping-pong; more
//! keeps several messages in flight per connection). Ways to reach the origin (`--via`):
//!
//! - `direct`: straight to the origin (the baseline);
//! - `proxy`: through a forward proxy at `--proxy`, absolute-form `GET http://…` handshake, as a
//!   browser's proxied `ws://`;
//! - `reverse`: origin-form handshake to `--proxy`, a reverse proxy (nginx) that forwards to the
//!   origin on `--origin-port`;
//! - `mitm`: `CONNECT` through `--proxy`, TLS with SNI `localhost` trusting only `--proxy-ca`
//!   (the intercepting proxy's root), then the handshake — a browser's `wss://` through an
//!   intercepting proxy. Implies `--tls` on the origin.
//!
//! Prints `msgs/s <value> MB/s <value>` (echoed messages per second and their payload bytes,
//! one way). Plain std threads and blocking sockets. It is not part of lynxio itself.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection, StreamOwned};
use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::{Role, WebSocket};
use tungstenite::{Bytes, Message};

#[path = "support/tls.rs"]
mod tls;
use tls::err;

const IO_TIMEOUT: Duration = Duration::from_secs(30);
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// Largest handshake head read.
const MAX_HEAD: usize = 16 * 1024;
/// Bytes one connection may have in flight (window × size): beyond the socket buffers a
/// write-all-then-read-all client and a read-then-echo origin would block each other.
const MAX_IN_FLIGHT: usize = 4 * 1024 * 1024;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Via {
    Direct,
    Proxy,
    Reverse,
    Mitm,
}

#[derive(Parser)]
#[command(about = "WebSocket echo load (see the module docs)")]
struct Args {
    #[arg(long, value_enum, default_value = "direct")]
    via: Via,
    /// The proxy (forward, reverse or intercepting) to go through.
    #[arg(long)]
    proxy: Option<SocketAddr>,
    /// PEM of the intercepting proxy's root CA (`--via mitm`).
    #[arg(long)]
    proxy_ca: Option<PathBuf>,
    /// Serve wss (TLS) instead of ws.
    #[arg(long)]
    tls: bool,
    /// Port of the echo origin (0: any free port).
    #[arg(long, default_value_t = 0)]
    origin_port: u16,
    #[arg(long)]
    size: usize,
    #[arg(long)]
    conns: usize,
    #[arg(long)]
    seconds: u64,
    /// Messages each connection writes before reading their echoes.
    #[arg(long, default_value_t = 1)]
    window: usize,
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// What every client needs to open its connection.
struct Dial {
    via: Via,
    origin: SocketAddr,
    proxy: Option<SocketAddr>,
    tls: Option<Arc<ClientConfig>>,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("ws_load: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<(), String> {
    let tls_origin = args.tls || args.via == Via::Mitm;
    if args.via != Via::Direct && args.proxy.is_none() {
        return Err("--via proxy|reverse|mitm needs --proxy".into());
    }
    if args.window == 0 || args.window.saturating_mul(args.size) > MAX_IN_FLIGHT {
        return Err(format!(
            "--window × --size must be 1..={MAX_IN_FLIGHT} bytes"
        ));
    }
    let (server_cfg, origin_ca) = match tls_origin {
        true => {
            let (cfg, pem) = tls::origin_config("ws_load origin CA")?;
            (Some(cfg), Some(pem))
        }
        false => (None, None),
    };
    let origin = start_origin(args.origin_port, server_cfg)?;
    let client_roots = match (args.via, origin_ca) {
        (Via::Mitm, _) => {
            let path = args
                .proxy_ca
                .as_ref()
                .ok_or("--via mitm needs --proxy-ca")?;
            Some(std::fs::read(path).map_err(err("read --proxy-ca"))?)
        }
        (_, Some(pem)) => Some(pem.into_bytes()),
        (_, None) => None,
    };
    let tls = match client_roots {
        Some(pem) => Some(Arc::new(tls::client_config(&pem)?)),
        None => None,
    };
    let dial = Dial {
        via: args.via,
        origin,
        proxy: args.proxy,
        tls,
    };
    let payload = Bytes::from(vec![0x5au8; args.size]);
    let echoed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..args.conns {
        let mut ws = open(&dial)?;
        let (payload, echoed, stop) = (payload.clone(), echoed.clone(), stop.clone());
        let window = args.window;
        clients.push(thread::spawn(move || -> Result<(), String> {
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..window {
                    ws.write(Message::Binary(payload.clone()))
                        .map_err(err("write"))?;
                }
                ws.flush().map_err(err("flush"))?;
                for _ in 0..window {
                    match ws.read().map_err(err("read"))? {
                        Message::Binary(b) if b.len() == payload.len() => {
                            echoed.fetch_add(1, Ordering::Relaxed);
                        }
                        other => return Err(format!("unexpected echo: {} bytes", other.len())),
                    }
                }
            }
            let _ = ws.close(None);
            Ok(())
        }));
    }
    let started = Instant::now();
    thread::sleep(Duration::from_secs(args.seconds));
    let n = echoed.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join()
            .map_err(|_| "client thread panicked".to_owned())??;
    }
    let msgs = n as f64 / elapsed;
    println!(
        "msgs/s {msgs:.0} MB/s {:.1}",
        msgs * args.size as f64 / 1_000_000.0
    );
    Ok(())
}

/// A WebSocket client to the origin, the way `dial.via` says.
fn open(dial: &Dial) -> Result<WebSocket<Box<dyn Stream>>, String> {
    let origin = dial.origin;
    let first_hop = match dial.via {
        Via::Direct => origin,
        _ => dial.proxy.ok_or("no proxy")?,
    };
    let mut s = TcpStream::connect(first_hop).map_err(err("connect"))?;
    s.set_nodelay(true).map_err(err("nodelay"))?;
    s.set_read_timeout(Some(IO_TIMEOUT))
        .map_err(err("timeout"))?;
    if dial.via == Via::Mitm {
        let port = origin.port();
        write!(
            s,
            "CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
        )
        .map_err(err("write CONNECT"))?;
        let (head, rest) = read_head(&mut s)?;
        if !head.starts_with("HTTP/1.1 200") || !rest.is_empty() {
            return Err(format!("CONNECT refused: {head}"));
        }
    }
    let mut stream: Box<dyn Stream> = match &dial.tls {
        Some(cfg) => {
            let name = ServerName::try_from("localhost").map_err(err("server name"))?;
            let conn = ClientConnection::new(cfg.clone(), name).map_err(err("TLS client"))?;
            Box::new(StreamOwned::new(conn, s))
        }
        None => Box::new(s),
    };
    let target = match dial.via {
        Via::Proxy => format!("http://{origin}/echo"),
        _ => "/echo".to_owned(),
    };
    let handshake = format!(
        "GET {target} HTTP/1.1\r\nHost: {origin}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream
        .write_all(handshake.as_bytes())
        .map_err(err("handshake"))?;
    let (head, rest) = read_head(&mut stream)?;
    if !head.starts_with("HTTP/1.1 101") {
        return Err(format!("handshake refused: {head}"));
    }
    Ok(WebSocket::from_partially_read(
        stream,
        rest,
        Role::Client,
        None,
    ))
}

/// Reads a head up to its blank line; returns it and the bytes read past it.
fn read_head<R: Read + ?Sized>(s: &mut R) -> Result<(String, Vec<u8>), String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while buf.len() < MAX_HEAD {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        let n = s.read(&mut chunk).map_err(err("read head"))?;
        if n == 0 {
            return Err("EOF in the handshake".to_owned());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Err("handshake head too large".to_owned())
}

/// The echo origin: accepts handshakes and echoes data messages until the peer closes.
fn start_origin(port: u16, tls: Option<Arc<ServerConfig>>) -> Result<SocketAddr, String> {
    let listener = TcpListener::bind(("127.0.0.1", port)).map_err(err("bind"))?;
    let addr = listener.local_addr().map_err(err("local addr"))?;
    thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let _ = s.set_nodelay(true);
            let stream: Box<dyn Stream> = match &tls {
                Some(cfg) => match ServerConnection::new(cfg.clone()) {
                    Ok(conn) => Box::new(StreamOwned::new(conn, s)),
                    Err(_) => continue,
                },
                None => Box::new(s),
            };
            thread::spawn(move || echo(stream));
        }
    });
    Ok(addr)
}

fn echo(mut s: Box<dyn Stream>) {
    let Ok((head, rest)) = read_head(&mut s) else {
        return;
    };
    let Some(key) = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("sec-websocket-key")
            .then(|| value.trim().to_owned())
    }) else {
        return;
    };
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    if s.write_all(answer.as_bytes())
        .and_then(|()| s.flush())
        .is_err()
    {
        return;
    }
    let mut ws = WebSocket::from_partially_read(s, rest, Role::Server, None);
    loop {
        match ws.read() {
            Ok(m @ Message::Binary(_)) => {
                if ws.send(m).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}
