//! Shared harness for the black-box integration tests: start the real `lynxio` binary on an
//! ephemeral loopback port (one driver per test), run origin servers on std threads inside the
//! test, and speak raw wire bytes to both. Every read has a timeout and every loop a bound, so a
//! proxy bug fails a test instead of hanging CI.

#![allow(dead_code)] // each test file uses a different part of the harness

mod errors;
mod wire;
#[allow(unused_imports)] // not every test file uses both
pub use errors::*;
#[allow(unused_imports)]
pub use wire::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Upper bound for any single socket read in the tests.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound for the proxy to print its `listening on` line.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Largest response or request the harness will read (bounds every read loop).
pub const MAX_MESSAGE: usize = 256 * 1024 * 1024;

/// Generates one `#[test]` per driver for a test function taking the driver name:
/// `drivers!(keep_alive);` gives `keep_alive::uring` and `keep_alive::epoll`.
#[macro_export]
macro_rules! drivers {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn uring() {
                super::$name("uring")
            }
            #[test]
            fn epoll() {
                super::$name("epoll")
            }
        }
    )*};
}

/// A running `lynxio` process; killed on drop.
pub struct Proxy {
    child: Child,
    pub addr: SocketAddr,
    /// The admin listener's address, when started with `--admin`.
    pub admin: Option<SocketAddr>,
    stderr: Option<thread::JoinHandle<String>>,
    /// Everything logged so far (filled line by line as the proxy writes).
    log: Arc<std::sync::Mutex<String>>,
}

impl Proxy {
    /// Starts lynxio with one worker on `driver` plus `extra` flags.
    pub fn start(driver: &str, extra: &[&str]) -> Proxy {
        let mut args = vec![
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--driver",
            driver,
            "--log",
            "debug",
        ];
        args.extend_from_slice(extra);
        Proxy::start_with_args(&args)
    }

    /// Starts lynxio with exactly these arguments (must include a `--listen` on port 0).
    pub fn start_with_args(args: &[&str]) -> Proxy {
        Proxy::start_with_env(args, &[])
    }

    /// [`Proxy::start_with_args`] with extra environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Proxy {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lynxio"))
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn lynxio");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(std::sync::Mutex::new(String::new()));
        let sink = log.clone();
        let stderr = Some(thread::spawn(move || drain(stderr, &sink)));
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
                panic!("lynxio did not report listening; stderr:\n{log}");
            }
        };
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split([' ', ',']).next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line: {line}"));
        let admin = line
            .split("admin: ")
            .nth(1)
            .and_then(|rest| rest.split([')', ',']).next())
            .and_then(|a| a.parse().ok());
        Proxy {
            child,
            addr,
            admin,
            stderr,
            log,
        }
    }

    /// Everything the proxy has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Waits up to `limit` for a logged line satisfying `pred`; returns it.
    pub fn wait_for_line(&self, limit: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(line) = self.log().lines().find(|l| pred(l)) {
                return Some(line.to_owned());
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn connect(&self) -> TcpStream {
        connect(self.addr)
    }

    /// Sends a signal (libc number) to the proxy process.
    pub fn signal(&self, sig: i32) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} failed");
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops the proxy and returns everything it logged to stderr.
    pub fn stop_and_log(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking()
            && let Some(h) = self.stderr.take()
            && let Ok(log) = h.join()
        {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- lynxio stderr (last lines) ---");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

fn drain(r: ChildStderr, sink: &std::sync::Mutex<String>) -> String {
    let mut lines = BufReader::new(r);
    let mut line = Vec::new();
    loop {
        line.clear();
        match lines.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if let Ok(mut log) = sink.lock() {
                    log.push_str(&String::from_utf8_lossy(&line));
                }
            }
        }
    }
    sink.lock().map(|l| l.clone()).unwrap_or_default()
}

/// Connects with read/write timeouts set.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// A test origin: accepts on 127.0.0.1:0 and runs `handler` on a thread per connection.
pub struct Origin {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Origin {
    pub fn start<F>(handler: F) -> Origin
    where
        F: Fn(TcpStream) + Send + Sync + 'static,
    {
        Origin::start_on("127.0.0.1:0", handler).expect("bind origin on 127.0.0.1")
    }

    /// An origin that answers every request on a connection with `respond(&request)`, keeping
    /// the connection open while the request allows it.
    pub fn http<F>(respond: F) -> Origin
    where
        F: Fn(&Message) -> Vec<u8> + Send + Sync + 'static,
    {
        Origin::start(move |mut s| {
            let mut r = Reader::new(s.try_clone().expect("clone"));
            for _ in 0..10_000 {
                let Some(req) = r.request() else { return };
                let resp = respond(&req);
                if s.write_all(&resp).is_err() {
                    return;
                }
                let close = req
                    .header("connection")
                    .is_some_and(|v| v.eq_ignore_ascii_case("close"))
                    || req.version == 0;
                if close {
                    let _ = s.shutdown(Shutdown::Both);
                    return;
                }
            }
        })
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// `http://127.0.0.1:PORT` + path.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Sends `bytes` to the proxy on a fresh connection, half-closes, and returns everything the
/// proxy wrote back until it closed (or the read timeout).
pub fn exchange(proxy: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = connect(proxy);
    s.write_all(bytes).expect("write");
    let _ = s.shutdown(Shutdown::Write);
    Reader::new(s).read_to_close()
}

/// The status code at the start of a raw response, or 0.
pub fn status_of(raw: &[u8]) -> u16 {
    let s = String::from_utf8_lossy(raw);
    s.strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// A complete `200 OK` response with a Content-Length body.
pub fn ok(body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    r.extend_from_slice(body);
    r
}

/// Sends one request through the proxy on an existing connection and reads the final response.
pub fn roundtrip(s: &mut Reader<TcpStream>, method: &str, request: &[u8]) -> Message {
    s.get_mut().write_all(request).expect("write request");
    s.final_response(method).expect("response").1
}

/// Waits until `cond` holds, polling every 10 ms, for at most `limit`.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    cond()
}

/// An [`Origin::http`] that also reports every request it reads, in order, on the returned
/// channel (receive them with [`next_request`]).
pub fn recording_origin<F>(respond: F) -> (Origin, mpsc::Receiver<Message>)
where
    F: Fn(&Message) -> Vec<u8> + Send + Sync + 'static,
{
    let (tx, rx) = mpsc::channel();
    let origin = Origin::http(move |req| {
        let _ = tx.send(req.clone());
        respond(req)
    });
    (origin, rx)
}

/// The next request a [`recording_origin`] received (panics after [`IO_TIMEOUT`]).
pub fn next_request(rx: &mpsc::Receiver<Message>) -> Message {
    rx.recv_timeout(IO_TIMEOUT)
        .expect("the origin did not receive the request")
}

/// `len` deterministic pseudo-random bytes (xorshift64*), different for each `seed`.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Lowercased names of a message's header fields, in wire order.
pub fn header_names(m: &Message) -> Vec<String> {
    m.headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect()
}

// ---- Helpers for the CONNECT suite (connect.rs) ----

impl Origin {
    /// Like [`Origin::start`], but listening on `bind` (e.g. `[::1]:0`); `None` when that
    /// address cannot be bound here (no IPv6 loopback, say).
    pub fn start_on<F>(bind: &str, handler: F) -> Option<Origin>
    where
        F: Fn(TcpStream) + Send + Sync + 'static,
    {
        let listener = TcpListener::bind(bind).ok()?;
        let addr = listener.local_addr().ok()?;
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let handler = Arc::new(handler);
        let (acc, stp) = (accepted.clone(), stop.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                acc.fetch_add(1, Ordering::SeqCst);
                let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
                let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
                let h = handler.clone();
                thread::spawn(move || h(stream));
            }
        });
        Some(Origin {
            addr,
            accepted,
            stop,
        })
    }
}

impl Proxy {
    /// The proxy's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// How many file descriptors process `pid` has open (Linux `/proc`), `None` if unreadable.
pub fn open_fds(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count())
}

/// A listener whose accept queue is full: further SYNs are dropped, so a connect hangs (how
/// connect timeouts are tested on loopback). Returns the address, the listener and the held
/// connections (keep them alive); `None` if the queue never filled.
pub fn full_backlog_listener() -> Option<(SocketAddr, socket2::Socket, Vec<TcpStream>)> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    sock.bind(&any.into()).expect("bind");
    sock.listen(0).expect("listen");
    let addr = sock.local_addr().ok()?.as_socket()?;
    let mut held = Vec::new();
    for _ in 0..16 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => held.push(s),
            Err(_) => return Some((addr, sock, held)),
        }
    }
    None
}

/// An origin that echoes the first read of each connection back, then closes.
pub fn echo_once_origin() -> Origin {
    Origin::start(|mut s| {
        let mut buf = [0u8; 64];
        if let Ok(n) = s.read(&mut buf) {
            let _ = s.write_all(&buf[..n]);
        }
    })
}

/// An opaque tunnel through `proxy` to `target` (an [`echo_once_origin`]): CONNECT, `200`,
/// 5 bytes up (not TLS, not HTTP), the same 5 back, then the client half-closes and reads to
/// the end.
pub fn ping_through_tunnel(proxy: &Proxy, target: &str) {
    let mut t = proxy.connect();
    t.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .expect("write CONNECT");
    let mut est = [0u8; 39];
    t.read_exact(&mut est).expect("200 Connection established");
    t.write_all(b"\x00ping").expect("write");
    let mut back = [0u8; 5];
    t.read_exact(&mut back).expect("echo");
    assert_eq!(&back, b"\x00ping");
    t.shutdown(Shutdown::Write).expect("shutdown");
    let _ = Reader::new(t).read_to_close();
}

/// Sends a WebSocket close (`code`, when given) and reads until the peer's close and the end
/// of the connection; returns the close code the peer answered with.
pub fn ws_close<S: Read + Write>(
    ws: &mut tungstenite::WebSocket<S>,
    code: Option<u16>,
) -> Option<u16> {
    let frame = code.map(|c| tungstenite::protocol::CloseFrame {
        code: c.into(),
        reason: "bye".into(),
    });
    ws.close(frame).expect("send close");
    let mut answered = None;
    for _ in 0..10 {
        match ws.read() {
            Ok(tungstenite::Message::Close(frame)) => answered = frame.map(|f| u16::from(f.code)),
            Ok(other) => panic!("after close: {other:?}"),
            Err(tungstenite::Error::ConnectionClosed) => return answered,
            Err(e) => panic!("closing: {e}"),
        }
    }
    panic!("the close handshake did not complete");
}

/// A capture file path under the temp dir unique to this process, test and driver (removed
/// first).
pub fn capture_path(name: &str, driver: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!(
        "lynxio-capture-{}-{name}-{driver}",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&p);
    p
}

/// SIGTERMs the proxy, waits for it to exit, and parses its capture file (every line must be
/// a JSON object); the file is removed.
pub fn stop_and_read_capture(mut proxy: Proxy, path: &std::path::Path) -> Vec<serde_json::Value> {
    proxy.signal(15);
    assert!(
        proxy.wait_exit(Duration::from_secs(15)).is_some(),
        "lynxio did not exit on SIGTERM"
    );
    let text = std::fs::read_to_string(path).expect("read capture");
    let _ = std::fs::remove_file(path);
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}
