//! The admin listener over real sockets on 127.0.0.1 (statuses, headers, token, limits, stop),
//! `/events` end to end with a channel-backed [`EventSource`] in place of the hub, and the SSE
//! writer on its own (framing, keep-alive, every way a stream ends).

use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver, Sender};

use super::*;
use crate::observe::metrics::MethodClass;

/// Bound on every client read in these tests.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on any reply a test reads.
const MAX_REPLY: usize = 1 << 20;

/// Hands out one queued channel per subscription, `TooMany` when none is left, and records
/// the host filters it was asked for.
#[derive(Default)]
struct FakeEvents {
    feeds: Mutex<Vec<Receiver<Arc<str>>>>,
    hosts: Mutex<Vec<Option<String>>>,
}

impl FakeEvents {
    fn feed(&self) -> Sender<Arc<str>> {
        let (tx, rx) = mpsc::channel();
        self.feeds.lock().expect("lock").push(rx);
        tx
    }

    fn hosts(&self) -> Vec<Option<String>> {
        self.hosts.lock().expect("lock").clone()
    }
}

impl EventSource for FakeEvents {
    fn open(&self, host: Option<&str>) -> Result<NextEvent<'_>, SubscribeError> {
        self.hosts
            .lock()
            .expect("lock")
            .push(host.map(String::from));
        let rx = self
            .feeds
            .lock()
            .expect("lock")
            .pop()
            .ok_or(SubscribeError::TooMany)?;
        Ok(Box::new(move |wait| rx.recv_timeout(wait)))
    }
}

struct Fixture {
    admin: Admin,
    addr: SocketAddr,
    registry: Registry,
    healthy: Arc<AtomicBool>,
    events: Arc<FakeEvents>,
}

impl Fixture {
    fn start(token: Option<&str>) -> Fixture {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let registry = Registry::new(2);
        let healthy = Arc::new(AtomicBool::new(true));
        let events = Arc::new(FakeEvents::default());
        let admin = spawn(
            listener,
            registry.clone(),
            events.clone(),
            token.map(String::from),
            healthy.clone(),
        )
        .expect("start admin");
        Fixture {
            admin,
            addr,
            registry,
            healthy,
            events,
        }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(CLIENT_TIMEOUT)).expect("timeout");
        s.set_write_timeout(Some(CLIENT_TIMEOUT)).expect("timeout");
        s
    }

    /// Sends `raw` and reads the whole reply (the server closes after it).
    fn raw(&self, raw: &[u8]) -> Parsed {
        let mut s = self.connect();
        s.write_all(raw).expect("send");
        parse_reply(&read_to_end(&mut s))
    }

    fn get(&self, path: &str, auth: Option<&str>) -> Parsed {
        let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
        self.raw(format!("GET {path} HTTP/1.1\r\nHost: admin\r\n{auth}\r\n").as_bytes())
    }
}

fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    while out.len() < MAX_REPLY {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("reading reply: {e}"),
        }
    }
    out
}

#[derive(Debug)]
struct Parsed {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Parsed {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn parse_reply(bytes: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(len)) = resp.parse(bytes) else {
        panic!("incomplete reply: {:?}", String::from_utf8_lossy(bytes));
    };
    Parsed {
        status: resp.code.expect("status"),
        headers: resp
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&bytes[len..]).into_owned(),
    }
}

#[test]
fn healthz_follows_the_flag() {
    let f = Fixture::start(None);
    let r = f.get("/healthz", None);
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    assert_eq!(r.header("Connection"), Some("close"));
    assert_eq!(r.header("Content-Length"), Some("3"));

    f.healthy.store(false, Ordering::Release);
    let r = f.get("/healthz", None);
    assert_eq!((r.status, r.body.as_str()), (503, "draining\n"));

    let r = f.raw(b"HEAD /healthz HTTP/1.1\r\nHost: admin\r\n\r\n");
    assert_eq!((r.status, r.body.as_str()), (503, ""));
    assert_eq!(r.header("Content-Length"), Some("9"));
}

#[test]
fn metrics_render_the_registry() {
    let f = Fixture::start(None);
    f.registry.workers[1].request(MethodClass::Post);
    f.registry.workers[1].request(MethodClass::Post);
    let r = f.get("/metrics?ignored=1", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some(OPENMETRICS));
    assert!(r.body.ends_with("# EOF\n"));
    assert!(r.body.contains("# TYPE lynxio_requests counter\n"));
    let lines: Vec<&str> = r.body.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(lines.iter().all(|l| {
        l.rsplit_once(' ')
            .is_some_and(|(_, v)| v.parse::<i64>().is_ok())
    }));
    assert!(lines.contains(&"lynxio_requests_total{worker=\"1\",method=\"POST\"} 2"));
    assert!(lines.contains(&"lynxio_requests_total{worker=\"0\",method=\"POST\"} 0"));

    let head = f.raw(b"HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    assert_eq!(
        head.header("Content-Length"),
        Some(r.body.len().to_string().as_str())
    );
}

#[test]
fn token_is_enforced() {
    let f = Fixture::start(Some("s3cret-token"));
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer s3cret-tokeN"),
        Some("Bearer s3cret-token-longer"),
        Some("Basic s3cret-token"),
        Some("Bearers3cret-token"),
    ] {
        let r = f.get("/healthz", auth);
        assert_eq!(r.status, 401, "{auth:?}");
        assert_eq!(
            r.header("WWW-Authenticate"),
            Some("Bearer realm=\"lynxio-admin\"")
        );
        assert!(!r.body.contains("s3cret"));
    }
    // Unknown paths do not reveal themselves without the token.
    assert_eq!(f.get("/nope", None).status, 401);

    assert_eq!(f.get("/healthz", Some("Bearer s3cret-token")).status, 200);
    assert_eq!(
        f.get("/healthz", Some("bearer   s3cret-token ")).status,
        200
    );
    assert_eq!(f.get("/metrics", Some("Bearer s3cret-token")).status, 200);
    assert_eq!(f.get("/nope", Some("Bearer s3cret-token")).status, 404);

    // Two Authorization headers are refused even when one is right.
    let r = f.raw(
        b"GET /healthz HTTP/1.1\r\nAuthorization: Bearer s3cret-token\r\n\
          Authorization: Bearer other\r\n\r\n",
    );
    assert_eq!(r.status, 401);
}

#[test]
fn unknown_paths_and_methods() {
    let f = Fixture::start(None);
    assert_eq!(f.get("/", None).status, 404);
    assert_eq!(f.get("/metrics/", None).status, 404);

    let r = f.raw(b"POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("GET, HEAD"));

    let r = f.raw(b"HEAD /events HTTP/1.1\r\n\r\n");
    assert_eq!((r.status, r.body.as_str()), (405, ""));
    assert_eq!(r.header("Allow"), Some("GET"));

    let r = f.raw(b"DELETE /healthz HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 405);
}

#[test]
fn malformed_heads_are_400() {
    let f = Fixture::start(None);
    assert_eq!(f.raw(b"GARBAGE\r\n\r\n").status, 400);
    assert_eq!(f.raw(b"GET /healthz HTTP/9.9\r\n\r\n").status, 400);
    assert_eq!(
        f.raw(b"GET http://admin/healthz HTTP/1.1\r\n\r\n").status,
        400
    );
    assert_eq!(
        f.raw(b"GET /healthz HTTP/1.1\r\nNo-Colon\r\n\r\n").status,
        400
    );

    // The client gives up half-way through the head.
    let mut s = f.connect();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: a")
        .expect("send");
    s.shutdown(Shutdown::Write).expect("shutdown");
    assert_eq!(parse_reply(&read_to_end(&mut s)).status, 400);
}

#[test]
fn oversize_heads_are_431() {
    let f = Fixture::start(None);
    let big = format!(
        "GET /healthz HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(MAX_HEAD_BYTES)
    );
    let r = f.raw(big.as_bytes());
    assert_eq!(r.status, 431);

    let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
    let r = f.raw(format!("GET /healthz HTTP/1.1\r\n{many}\r\n").as_bytes());
    assert_eq!(r.status, 431);

    // Just under the limit still works.
    let fits = format!(
        "GET /healthz HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(MAX_HEAD_BYTES - 64)
    );
    assert_eq!(f.raw(fits.as_bytes()).status, 200);
}

#[test]
fn connections_beyond_the_limit_get_503() {
    let f = Fixture::start(None);
    // Idle connections each hold a thread while it waits for their head.
    let idle: Vec<TcpStream> = (0..MAX_CONNECTIONS).map(|_| f.connect()).collect();
    let mut extra = f.connect();
    let r = parse_reply(&read_to_end(&mut extra));
    assert_eq!(
        (r.status, r.body.as_str()),
        (503, "too many admin connections\n")
    );

    // Once they leave, their threads end and new requests are served again.
    drop(idle);
    let mut served = false;
    for _ in 0..100 {
        if f.get("/healthz", None).status == 200 {
            served = true;
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    assert!(served);
}

/// Reads exactly up to and including the blank line ending a response head.
fn read_head_of(s: &mut TcpStream) -> Parsed {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert!(head.len() < MAX_HEAD_BYTES, "head too long");
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            other => panic!("reading head: {other:?}"),
        }
    }
    parse_reply(&head)
}

fn read_exact_str(s: &mut TcpStream, len: usize) -> String {
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf).expect("read event");
    String::from_utf8(buf).expect("utf-8")
}

#[test]
fn events_stream_until_the_hub_disconnects() {
    let f = Fixture::start(Some("t"));
    let feed = f.events.feed();
    let mut s = f.connect();
    s.write_all(
        b"GET /events?x=1&host=%2A.example.com HTTP/1.1\r\nAuthorization: Bearer t\r\n\r\n",
    )
    .expect("send");
    let head = read_head_of(&mut s);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Content-Type"), Some("text/event-stream"));
    assert_eq!(head.header("Cache-Control"), Some("no-cache"));
    assert_eq!(head.header("Content-Length"), None);

    let line = r#"{"host":"a.example.com","status":200}"#;
    feed.send(Arc::from(line)).expect("send event");
    let want = format!("data: {line}\n\n");
    assert_eq!(read_exact_str(&mut s, want.len()), want);
    assert_eq!(f.events.hosts(), [Some("*.example.com".to_string())]);

    feed.send(Arc::from("{}")).expect("send event");
    drop(feed);
    assert_eq!(
        String::from_utf8_lossy(&read_to_end(&mut s)),
        "data: {}\n\n"
    );
}

#[test]
fn events_refused_and_bad_filters() {
    let f = Fixture::start(None);
    // No feed queued: the fake says TooMany, like a full hub.
    let r = f.get("/events", None);
    assert_eq!(r.status, 503);
    assert_eq!(f.events.hosts(), [None]);

    for bad in [
        "/events?host=%zz",
        "/events?host=",
        "/events?host=a&host=b",
        "/events?host=%ff",
    ] {
        assert_eq!(f.get(bad, None).status, 400, "{bad}");
    }
    assert_eq!(f.events.hosts().len(), 1, "bad filters never subscribe");
}

#[test]
fn event_streams_leave_room_for_scrapes() {
    let f = Fixture::start(None);
    let feeds: Vec<_> = (0..=MAX_EVENT_STREAMS).map(|_| f.events.feed()).collect();
    let streams: Vec<TcpStream> = (0..MAX_EVENT_STREAMS)
        .map(|_| {
            let mut s = f.connect();
            s.write_all(b"GET /events HTTP/1.1\r\n\r\n").expect("send");
            assert_eq!(read_head_of(&mut s).status, 200);
            s
        })
        .collect();
    let r = f.get("/events", None);
    assert_eq!(
        (r.status, r.body.as_str()),
        (503, "too many event streams\n")
    );
    assert_eq!(f.get("/healthz", None).status, 200);

    // Ending a stream frees its slot.
    drop(feeds);
    drop(streams);
    let feed = f.events.feed();
    let mut reopened = None;
    for _ in 0..100 {
        let mut s = f.connect();
        s.write_all(b"GET /events HTTP/1.1\r\n\r\n").expect("send");
        if read_head_of(&mut s).status == 200 {
            reopened = Some(s);
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    assert!(reopened.is_some());
    drop(feed);
}

#[test]
fn stop_ends_open_streams() {
    let f = Fixture::start(None);
    let _feed = f.events.feed();
    let mut s = f.connect();
    s.write_all(b"GET /events HTTP/1.1\r\n\r\n").expect("send");
    assert_eq!(read_head_of(&mut s).status, 200);

    let started = Instant::now();
    f.admin.stop();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(read_to_end(&mut s).is_empty());
    assert!(
        TcpStream::connect(f.addr).is_err(),
        "listener closed after stop"
    );
}

#[test]
fn idle_listener_stops_promptly() {
    let f = Fixture::start(None);
    let started = Instant::now();
    f.admin.stop();
    assert!(started.elapsed() < STOP_POLL * 3, "{:?}", started.elapsed());
}

#[test]
fn helpers_decode_and_parse() {
    assert_eq!(percent_decode("a%2Ab%2fc").as_deref(), Some("a*b/c"));
    assert_eq!(percent_decode("%E2%9C%93").as_deref(), Some("\u{2713}"));
    assert_eq!(percent_decode("a+b").as_deref(), Some("a+b"));
    assert_eq!(percent_decode("%4"), None);
    assert_eq!(percent_decode("%g0"), None);
    assert_eq!(host_filter(""), Ok(None));
    assert_eq!(host_filter("a=b&host=x.com&"), Ok(Some("x.com".into())));
    assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
    assert_eq!(bearer(b"BEARER\tabc"), None);
    assert_eq!(bearer(b"Bearer"), None);
}

// The SSE writer on its own.

const FAST: sse::Timing = sse::Timing {
    keepalive: Duration::from_millis(60),
    poll: Duration::from_millis(10),
};

fn run(
    rx: &Receiver<Arc<str>>,
    out: &mut impl Write,
    stop: &AtomicBool,
    timing: sse::Timing,
) -> (u64, sse::End) {
    sse::stream(out, &mut |wait| rx.recv_timeout(wait), stop, timing)
}

#[test]
fn sse_frames_each_line_and_ends_on_disconnect() {
    let (tx, rx) = mpsc::channel::<Arc<str>>();
    for line in ["{\"a\":1}", "{\"b\":2}\n", "x\r\ny"] {
        tx.send(Arc::from(line)).expect("send");
    }
    drop(tx);
    let mut out = Vec::new();
    let (sent, end) = run(&rx, &mut out, &AtomicBool::new(false), FAST);
    assert_eq!(sent, 3);
    assert!(matches!(end, sse::End::Disconnected), "{end}");
    assert_eq!(
        String::from_utf8(out).expect("utf-8"),
        "data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: x\ndata: y\n\n"
    );
}

#[test]
fn sse_sends_keepalive_during_silence() {
    // Silent for 4.5 keep-alive intervals, then one line, then the end.
    let started = Instant::now();
    let mut delivered = false;
    let mut source = |wait: Duration| {
        if delivered {
            Err(RecvTimeoutError::Disconnected)
        } else if started.elapsed() >= FAST.keepalive * 4 + FAST.keepalive / 2 {
            delivered = true;
            Ok(Arc::from("{}"))
        } else {
            thread::sleep(wait);
            Err(RecvTimeoutError::Timeout)
        }
    };
    let mut out = Vec::new();
    let (sent, end) = sse::stream(&mut out, &mut source, &AtomicBool::new(false), FAST);
    let elapsed = started.elapsed();
    assert_eq!(sent, 1);
    assert!(matches!(end, sse::End::Disconnected));
    let text = String::from_utf8(out).expect("utf-8");
    let pings = text.matches(": keep-alive\n\n").count();
    // At least one; never more often than once per interval (however slow the machine).
    let most = (elapsed.as_millis() / FAST.keepalive.as_millis()) as usize;
    assert!(pings >= 1 && pings <= most, "{pings} pings in {elapsed:?}");
    assert_eq!(text, ": keep-alive\n\n".repeat(pings) + "data: {}\n\n");
}

/// A client that went away: every write fails.
struct Gone;

impl Write for Gone {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::ErrorKind::BrokenPipe.into())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn sse_ends_when_client_is_gone_or_on_stop() {
    let (tx, rx) = mpsc::channel::<Arc<str>>();
    tx.send(Arc::from("{}")).expect("send");
    let (sent, end) = run(&rx, &mut Gone, &AtomicBool::new(false), FAST);
    assert_eq!(sent, 0);
    assert!(matches!(end, sse::End::ClientGone(_)));

    // Silence also finds a dead client, through the keep-alive write.
    let started = Instant::now();
    let (_, end) = run(&rx, &mut Gone, &AtomicBool::new(false), FAST);
    assert!(matches!(end, sse::End::ClientGone(_)));
    assert!(started.elapsed() >= FAST.keepalive);

    let stop = AtomicBool::new(true);
    let (sent, end) = run(&rx, &mut Vec::new(), &stop, FAST);
    assert_eq!(sent, 0);
    assert!(matches!(end, sse::End::Stopped));
    drop(tx);
}
