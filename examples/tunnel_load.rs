//! Load generator for CONNECT tunnels, used by `scripts/bench-tunnel.sh`. Runs its own sink or
//! source origin on 127.0.0.1 and drives tunnels through a proxy (or straight to the origin for
//! the baseline):
//!
//! - `bulk PROXY|direct BYTES CONNS up|down` moves BYTES in total over CONNS parallel tunnels
//!   and prints `MB/s <value>` (first byte to last byte received);
//! - `idle PROXY COUNT PID SECONDS` opens COUNT tunnels that stay silent, holds them for
//!   SECONDS, and prints the proxy process's RSS, thread and fd counts before and while they are
//!   open (read from /proc/PID). Each tunnel first carries a real TLS ClientHello, like a
//!   browser's idle HTTPS connection.
//!
//! Plain std threads and blocking sockets; receivers discard with `recv(MSG_TRUNC)` (TCP
//! drops the bytes without copying them out), so the tool does one copy per byte instead of
//! two and is less of the ceiling it measures. It is not part of lynxio itself.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const CHUNK: usize = 256 * 1024;
const CLIENT_HELLO: &[u8] = include_bytes!("../src/sniff/testdata/curl-7.88-openssl3.bin");
const IO_TIMEOUT: Duration = Duration::from_secs(60);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("bulk") if args.len() == 5 || args.len() == 6 => bulk(
            &args[1],
            &args[2],
            &args[3],
            &args[4],
            args.get(5).map(String::as_str),
        ),
        Some("idle") if args.len() == 5 => idle(&args[1], &args[2], &args[3], &args[4]),
        _ => Err(
            "usage: tunnel_load bulk PROXY|direct BYTES CONNS up|down [PID] | \
                  idle PROXY COUNT PID SECONDS"
                .to_owned(),
        ),
    };
    if let Err(e) = result {
        eprintln!("tunnel_load: {e}");
        std::process::exit(1);
    }
}

fn parse_bytes(s: &str) -> Result<u64, String> {
    let (num, mult) = match s.chars().last() {
        Some('G') => (&s[..s.len() - 1], 1u64 << 30),
        Some('M') => (&s[..s.len() - 1], 1 << 20),
        Some('K') => (&s[..s.len() - 1], 1 << 10),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .map(|n| n * mult)
        .map_err(|e| format!("bad size {s:?}: {e}"))
}

/// Opens a tunnel to `origin` through `proxy` (or connects directly when `proxy` is None).
fn open(proxy: Option<SocketAddr>, origin: SocketAddr) -> Result<TcpStream, String> {
    let Some(proxy) = proxy else {
        return TcpStream::connect(origin).map_err(|e| format!("connect origin: {e}"));
    };
    let mut s = TcpStream::connect(proxy).map_err(|e| format!("connect proxy: {e}"))?;
    s.set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    write!(s, "CONNECT {origin} HTTP/1.1\r\nHost: {origin}\r\n\r\n").map_err(|e| e.to_string())?;
    // Read the reply head byte by byte so no tunnel byte is consumed here.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 4096 || s.read(&mut byte).map_err(|e| e.to_string())? == 0 {
            return Err(format!(
                "bad CONNECT reply: {:?}",
                String::from_utf8_lossy(&head)
            ));
        }
        head.push(byte[0]);
    }
    if !head.starts_with(b"HTTP/1.1 200") {
        return Err(format!(
            "CONNECT refused: {:?}",
            String::from_utf8_lossy(&head)
        ));
    }
    Ok(s)
}

fn proxy_arg(s: &str) -> Result<Option<SocketAddr>, String> {
    if s == "direct" {
        Ok(None)
    } else {
        s.parse()
            .map(Some)
            .map_err(|e| format!("bad proxy {s:?}: {e}"))
    }
}

fn bulk(proxy: &str, bytes: &str, conns: &str, dir: &str, pid: Option<&str>) -> Result<(), String> {
    let pid: Option<u32> = pid
        .map(|p| p.parse().map_err(|e| format!("bad PID: {e}")))
        .transpose()?;
    let proxy = proxy_arg(proxy)?;
    let total = parse_bytes(bytes)?;
    let conns: u64 = conns.parse().map_err(|e| format!("bad CONNS: {e}"))?;
    let up = match dir {
        "up" => true,
        "down" => false,
        _ => return Err("direction must be up or down".into()),
    };
    let per_conn = total / conns.max(1);
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let origin = listener.local_addr().map_err(|e| e.to_string())?;
    let received = Arc::new(AtomicU64::new(0));

    // Origin: a sink (up) or a source (down) per connection.
    let origin_thread = {
        let received = received.clone();
        thread::spawn(move || {
            let mut handles = Vec::new();
            for _ in 0..conns {
                let Ok((mut s, _)) = listener.accept() else {
                    break;
                };
                let received = received.clone();
                handles.push(thread::spawn(move || {
                    if up {
                        sink(&s, &received);
                    } else {
                        // Wait for the client's start byte (see below), then stream.
                        let mut start = [0u8; 1];
                        if s.read_exact(&mut start).is_ok() {
                            send(&mut s, per_conn);
                        }
                    }
                }));
            }
            for h in handles {
                let _ = h.join();
            }
        })
    };

    let streams: Vec<TcpStream> = (0..conns)
        .map(|_| open(proxy, origin))
        .collect::<Result<_, _>>()?;
    let start = Instant::now();
    let cpu_start = pid.map(cpu_seconds).transpose()?;
    let clients: Vec<_> = streams
        .into_iter()
        .map(|mut s| {
            let received = received.clone();
            thread::spawn(move || {
                if up {
                    send(&mut s, per_conn);
                } else {
                    // One NUL byte first: a proxy that sniffs sees at once that this is no
                    // protocol it knows, instead of waiting out its sniff timeout for a
                    // client-first protocol.
                    if s.write_all(&[0]).is_err() {
                        return;
                    }
                    sink(&s, &received);
                }
            })
        })
        .collect();
    for c in clients {
        let _ = c.join();
    }
    let _ = origin_thread.join();
    let secs = start.elapsed().as_secs_f64();
    let got = received.load(Ordering::Relaxed);
    if got != per_conn * conns {
        return Err(format!("moved {got} bytes, expected {}", per_conn * conns));
    }
    let cpu = match (pid, cpu_start) {
        (Some(pid), Some(t0)) => format!(
            " cpu_s_per_GB {:.3}",
            (cpu_seconds(pid)? - t0) / (got as f64 / 1e9)
        ),
        _ => String::new(),
    };
    println!("MB/s {:.0}{cpu}", got as f64 / secs / 1e6);
    Ok(())
}

/// Sends `n` bytes (a fixed pattern, one 256 KiB write at a time), then shuts down writing.
/// Plain writes measured faster here than sendfile(2) from an in-memory file.
fn send(s: &mut TcpStream, n: u64) {
    let block: Vec<u8> = (0..CHUNK).map(|i| (i * 31 % 251) as u8).collect();
    let mut left = n;
    while left > 0 {
        let k = (left as usize).min(CHUNK);
        if s.write_all(&block[..k]).is_err() {
            return;
        }
        left -= k as u64;
    }
    let _ = s.shutdown(std::net::Shutdown::Write);
}

/// Receives and discards everything until EOF with `recv(MSG_TRUNC)`: TCP drops the bytes
/// without copying them to user space, again keeping the load tool cheap.
fn sink(s: &TcpStream, received: &AtomicU64) {
    use std::os::fd::AsRawFd;
    let mut scratch = vec![0u8; CHUNK];
    loop {
        // SAFETY: the fd is open; `scratch` is valid for CHUNK bytes (MSG_TRUNC does not even
        // write to it for TCP).
        let n = unsafe {
            libc::recv(
                s.as_raw_fd(),
                scratch.as_mut_ptr().cast(),
                scratch.len(),
                libc::MSG_TRUNC,
            )
        };
        match n {
            0 => return,
            n if n > 0 => {
                received.fetch_add(n as u64, Ordering::Relaxed);
            }
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            _ => return,
        }
    }
}

/// CPU time (user + system, all threads) `pid` has used so far, in seconds.
fn cpu_seconds(pid: u32) -> Result<f64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("read /proc/{pid}/stat: {e}"))?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> f64 { fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0.0) };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok((ticks(11) + ticks(12)) / hz.max(1.0))
}

/// RSS (KiB), threads, open fds of `pid`.
fn process_stats(pid: u32) -> Result<(u64, u64, u64), String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("read /proc/{pid}/status: {e}"))?;
    let field = |name: &str| -> u64 {
        BufReader::new(status.as_bytes())
            .lines()
            .map_while(Result::ok)
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map_err(|e| format!("read /proc/{pid}/fd: {e}"))?
        .count() as u64;
    Ok((field("VmRSS:"), field("Threads:"), fds))
}

fn idle(proxy: &str, count: &str, pid: &str, seconds: &str) -> Result<(), String> {
    let proxy = proxy_arg(proxy)?.ok_or("idle needs a proxy address")?;
    let count: usize = count.parse().map_err(|e| format!("bad COUNT: {e}"))?;
    let pid: u32 = pid.parse().map_err(|e| format!("bad PID: {e}"))?;
    let hold: u64 = seconds.parse().map_err(|e| format!("bad SECONDS: {e}"))?;
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let origin = listener.local_addr().map_err(|e| e.to_string())?;
    let accepted = thread::spawn(move || {
        let mut held = Vec::with_capacity(count);
        for _ in 0..count {
            match listener.accept() {
                Ok((s, _)) => held.push(s),
                Err(_) => break,
            }
        }
        held
    });
    // Let the proxy settle, then measure its baseline.
    thread::sleep(Duration::from_millis(500));
    let before = process_stats(pid)?;
    let mut tunnels = Vec::with_capacity(count);
    for i in 0..count {
        let mut s = open(Some(proxy), origin).map_err(|e| format!("tunnel {i}: {e}"))?;
        // A real ClientHello (curl's), as a browser's idle HTTPS connection would have sent;
        // then the tunnel goes quiet.
        s.write_all(CLIENT_HELLO).map_err(|e| e.to_string())?;
        tunnels.push(s);
    }
    let origin_side = accepted.join().map_err(|_| "origin thread panicked")?;
    // Wait past the sniff timeout so every tunnel is in its idle relay state.
    thread::sleep(Duration::from_secs(hold));
    let during = process_stats(pid)?;
    let per_tunnel = (during.0.saturating_sub(before.0)) as f64 / count as f64;
    println!(
        "idle {count} tunnels: RSS {} -> {} KiB ({per_tunnel:.2} KiB/tunnel), threads {} -> {}, fds {} -> {}",
        before.0, during.0, before.1, during.1, before.2, during.2
    );
    drop(tunnels);
    drop(origin_side);
    Ok(())
}
