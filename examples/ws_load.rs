//! WebSocket echo load, used by `scripts/bench-ws.sh`. Runs its own echo origin (tungstenite,
//! a thread per connection) on 127.0.0.1 and drives CONNS client connections, each sending a
//! SIZE-byte binary message and waiting for its echo, over and over for SECONDS — through a
//! proxy (absolute-form `GET http://…` handshake, as a browser's proxied `ws://`) or straight
//! to the origin for the baseline:
//!
//! `ws_load PROXY|direct SIZE CONNS SECONDS` prints `msgs/s <value> MB/s <value>` (echoed
//! messages per second and their payload bytes, one way).
//!
//! Plain std threads and blocking sockets. It is not part of lynxio itself.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::{Role, WebSocket};
use tungstenite::{Bytes, Message};

const IO_TIMEOUT: Duration = Duration::from_secs(30);
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// Largest handshake head read.
const MAX_HEAD: usize = 16 * 1024;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [proxy, size, conns, secs] => run(proxy, size, conns, secs),
        _ => Err("usage: ws_load PROXY|direct SIZE CONNS SECONDS".to_owned()),
    };
    if let Err(e) = result {
        eprintln!("ws_load: {e}");
        std::process::exit(1);
    }
}

fn run(proxy: &str, size: &str, conns: &str, secs: &str) -> Result<(), String> {
    let size: usize = size.parse().map_err(|e| format!("bad SIZE: {e}"))?;
    let conns: usize = conns.parse().map_err(|e| format!("bad CONNS: {e}"))?;
    let secs: u64 = secs.parse().map_err(|e| format!("bad SECONDS: {e}"))?;
    let origin = start_origin()?;
    let via: Option<SocketAddr> = match proxy {
        "direct" => None,
        p => Some(p.parse().map_err(|e| format!("bad PROXY {p:?}: {e}"))?),
    };
    let payload = Bytes::from(vec![0x5au8; size]);
    let echoed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..conns {
        let mut ws = open(origin, via)?;
        let (payload, echoed, stop) = (payload.clone(), echoed.clone(), stop.clone());
        clients.push(thread::spawn(move || -> Result<(), String> {
            while !stop.load(Ordering::Relaxed) {
                ws.send(Message::Binary(payload.clone()))
                    .map_err(|e| format!("send: {e}"))?;
                match ws.read().map_err(|e| format!("read: {e}"))? {
                    Message::Binary(b) if b.len() == payload.len() => {
                        echoed.fetch_add(1, Ordering::Relaxed);
                    }
                    other => return Err(format!("unexpected echo: {} bytes", other.len())),
                }
            }
            let _ = ws.close(None);
            Ok(())
        }));
    }
    let started = Instant::now();
    thread::sleep(Duration::from_secs(secs));
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
        msgs * size as f64 / 1_000_000.0
    );
    Ok(())
}

/// A WebSocket client to the origin, through `via` when given.
fn open(origin: SocketAddr, via: Option<SocketAddr>) -> Result<WebSocket<TcpStream>, String> {
    let mut s = TcpStream::connect(via.unwrap_or(origin)).map_err(|e| format!("connect: {e}"))?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let target = match via {
        Some(_) => format!("http://{origin}/echo"),
        None => "/echo".to_owned(),
    };
    let handshake = format!(
        "GET {target} HTTP/1.1\r\nHost: {origin}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(handshake.as_bytes())
        .map_err(|e| format!("handshake: {e}"))?;
    let (head, rest) = read_head(&mut s)?;
    if !head.starts_with("HTTP/1.1 101") {
        return Err(format!("handshake refused: {head}"));
    }
    Ok(WebSocket::from_partially_read(s, rest, Role::Client, None))
}

/// Reads a head up to its blank line; returns it and the bytes read past it.
fn read_head(s: &mut TcpStream) -> Result<(String, Vec<u8>), String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while buf.len() < MAX_HEAD {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        let n = s.read(&mut chunk).map_err(|e| format!("read head: {e}"))?;
        if n == 0 {
            return Err("EOF in the handshake".to_owned());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Err("handshake head too large".to_owned())
}

/// The echo origin: accepts handshakes and echoes data messages until the peer closes.
fn start_origin() -> Result<SocketAddr, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    thread::spawn(move || {
        for s in listener.incoming().flatten() {
            thread::spawn(move || echo(s));
        }
    });
    Ok(addr)
}

fn echo(mut s: TcpStream) {
    let _ = s.set_nodelay(true);
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
    if s.write_all(answer.as_bytes()).is_err() {
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
