use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::AtomicUsize;
use std::time::SystemTime;

use super::*;
use crate::observe::event::{EventKind, Fields, FlowId, Request, Timestamp};

/// A unique scratch directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("lynxio-hub-test-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const LIMIT: Duration = Duration::from_secs(10);

/// A request event of worker `worker`, flow `seq`, with a header of `pad` bytes.
fn event(worker: u32, seq: u64, host: &str, pad: usize) -> Event {
    let mut headers = Fields::default();
    headers.push(b"Host", host.as_bytes());
    if pad > 0 {
        headers.push(b"X-Pad", &vec![b'x'; pad]);
    }
    Event {
        host: Arc::from(host),
        kind: EventKind::Request(Request {
            id: FlowId { worker, seq },
            ts: Timestamp(SystemTime::now()),
            client: ([127, 0, 0, 1], 50000).into(),
            listener: ([127, 0, 0, 1], 8080).into(),
            method: "GET".into(),
            url: format!("http://{host}/"),
            version: "HTTP/1.1",
            headers,
        }),
    }
}

fn metrics(workers: usize) -> Vec<Arc<WorkerMetrics>> {
    (0..workers).map(|_| Arc::default()).collect()
}

fn options(capture: Option<&Path>, queue_capacity: usize) -> HubOptions {
    HubOptions {
        capture: capture.map(|p| CaptureTarget::File(p.to_owned())),
        queue_capacity,
    }
}

/// Runs `f` on another thread and fails the test if it takes longer than `limit`.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|e| panic!("not done within {limit:?}: {e}"))
}

/// Polls `cond` until it holds, failing the test after [`LIMIT`].
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(2));
    }
}

fn shutdown(hub: &Arc<Hub>) {
    let hub = Arc::clone(hub);
    within(LIMIT, move || hub.shutdown());
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A line's flow id as (worker, seq).
fn id_of(v: &serde_json::Value) -> (u32, u64) {
    let id = v["id"].as_str().unwrap();
    let (w, s) = id.split_once('-').unwrap();
    (w.parse().unwrap(), u64::from_str_radix(s, 16).unwrap())
}

fn recv_id(sub: &Subscription) -> (u32, u64) {
    let line = sub.recv_timeout(LIMIT).unwrap();
    id_of(&serde_json::from_str(&line).unwrap())
}

#[test]
fn taps_on_worker_threads_reach_the_file_in_order_and_all_before_shutdown_returns() {
    const WORKERS: usize = 3;
    const N: u64 = 5000;
    let dir = TempDir::new("order");
    let path = dir.0.join("capture.jsonl");
    std::fs::write(&path, "{\"ev\":\"earlier\"}\n").unwrap();
    let m = metrics(WORKERS);
    let hub = Hub::start(options(Some(&path), N as usize), &m).unwrap();
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let tap = hub.tap(w);
            thread::spawn(move || {
                assert!(tap.active());
                for seq in 0..N {
                    tap.emit(event(w as u32, seq, "a.test", 0));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    shutdown(&hub);

    let lines = lines(&path);
    assert_eq!(lines[0]["ev"], "earlier", "the file is appended to");
    assert_eq!(lines.len() as u64, 1 + WORKERS as u64 * N);
    let mut next = [0u64; WORKERS];
    for v in &lines[1..] {
        assert_eq!(v["ev"], "request");
        let (w, seq) = id_of(v);
        assert_eq!(seq, next[w as usize], "worker {w} out of order");
        next[w as usize] += 1;
    }
    assert!(m.iter().all(|m| m.events_dropped.get() == 0));
}

#[test]
fn events_emitted_while_the_writer_sleeps_are_all_written_by_shutdown() {
    const N: u64 = 2000;
    let dir = TempDir::new("asleep");
    let path = dir.0.join("capture.jsonl");
    let m = metrics(1);
    let hub = Hub::start(options(Some(&path), N as usize), &m).unwrap();
    let tap = hub.tap(0);
    wait_for("the writer to park", || {
        hub.shared.sleeping.load(Ordering::Relaxed)
    });
    for seq in 0..N {
        tap.emit(event(0, seq, "a.test", 100));
    }
    shutdown(&hub);
    let lines = lines(&path);
    assert_eq!(lines.len() as u64, N);
    assert_eq!(id_of(&lines[lines.len() - 1]), (0, N - 1));
}

#[test]
fn active_follows_capture_and_live_subscribers() {
    let hub = Hub::start(options(None, 16), &metrics(1)).unwrap();
    let tap = hub.tap(0);
    assert!(!tap.active());
    let a = hub.subscribe(None).unwrap();
    let b = hub.subscribe(Some("*.test")).unwrap();
    assert!(tap.active());
    drop(a);
    assert!(tap.active());
    drop(b);
    assert!(!tap.active());

    let dir = TempDir::new("active");
    let path = dir.0.join("capture.jsonl");
    let hub = Hub::start(options(Some(&path), 16), &metrics(1)).unwrap();
    assert!(hub.tap(0).active());
}

#[test]
fn subscribers_get_the_hosts_their_glob_matches() {
    let hub = Hub::start(options(None, 64), &metrics(1)).unwrap();
    let tap = hub.tap(0);
    let all = hub.subscribe(None).unwrap();
    let example = hub.subscribe(Some("*.Example.COM")).unwrap();
    for (seq, host) in [
        "a.example.com",
        "other.test",
        "example.com",
        "b.example.com",
    ]
    .into_iter()
    .enumerate()
    {
        tap.emit(event(0, seq as u64, host, 0));
    }
    for seq in 0..4 {
        assert_eq!(recv_id(&all), (0, seq));
    }
    // `all` got the last event, so the writer has offered everything to both.
    assert_eq!(recv_id(&example), (0, 0));
    assert_eq!(recv_id(&example), (0, 3));
    assert_eq!(
        example.recv_timeout(Duration::ZERO),
        Err(RecvTimeoutError::Timeout)
    );
}

#[test]
fn a_subscriber_that_never_reads_is_disconnected_and_nothing_else_stops() {
    const TOTAL: usize = SUBSCRIBER_BUFFER + 1000;
    const CHUNK: usize = 500;
    let dir = TempDir::new("slow");
    let path = dir.0.join("capture.jsonl");
    let m = metrics(1);
    let hub = Hub::start(options(Some(&path), CHUNK), &m).unwrap();
    let tap = hub.tap(0);
    let slow = hub.subscribe(None).unwrap();
    let fast = hub.subscribe(None).unwrap();
    let got = Arc::new(AtomicUsize::new(0));
    let reader = {
        let got = Arc::clone(&got);
        thread::spawn(move || {
            while got.load(Ordering::Relaxed) < TOTAL {
                fast.recv_timeout(LIMIT).unwrap();
                got.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    for seq in 0..TOTAL {
        tap.emit(event(0, seq as u64, "a.test", 0));
        if (seq + 1) % CHUNK == 0 || seq + 1 == TOTAL {
            // Pace by the fast reader, so only the slow one falls behind.
            wait_for("the fast reader", || got.load(Ordering::Relaxed) > seq);
        }
    }
    within(LIMIT, move || reader.join().unwrap());

    let mut buffered = 0;
    let end = loop {
        match slow.recv_timeout(LIMIT) {
            Ok(_) => buffered += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(end, RecvTimeoutError::Disconnected);
    assert_eq!(buffered, SUBSCRIBER_BUFFER);
    assert!(tap.active(), "still capturing");
    assert_eq!(hub.shared.readers.load(Ordering::Relaxed), CAPTURE_BIT);

    shutdown(&hub);
    assert_eq!(lines(&path).len(), TOTAL);
    assert_eq!(m[0].events_dropped.get(), 0);
}

#[test]
fn a_full_queue_drops_and_counts_without_blocking_the_worker() {
    const CAPACITY: usize = 4;
    const N: u64 = 10_000;
    let dir = TempDir::new("fifo");
    let fifo = dir.0.join("capture.fifo");
    let c_path = CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c_path` is a valid NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    // The read end, opened first so the hub's open does not wait; never read.
    let read_end = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let m = metrics(1);
    let hub = Hub::start(options(Some(&fifo), CAPACITY), &m).unwrap();
    let tap = hub.tap(0);

    // One event larger than a pipe buffer: once the writer has taken it, it blocks writing it
    // out (in the same round, before it takes anything else) until the pipe is read or closed.
    tap.emit(event(0, 0, "a.test", 512 * 1024));
    wait_for("the writer to take the big event", || {
        hub.shared.queues[0].taken.0.load(Ordering::Relaxed) == 1
    });

    let started = Instant::now();
    for seq in 1..=N {
        tap.emit(event(0, seq, "a.test", 64));
    }
    assert!(started.elapsed() < LIMIT, "emit blocked");
    assert_eq!(m[0].events_dropped.get(), N - CAPACITY as u64);

    // Closing the read end fails the blocked write: the capture ends, subscribers still work.
    drop(read_end);
    wait_for("the capture to end", || !tap.active());
    let sub = hub.subscribe(None).unwrap();
    let marker = N + 1;
    let deadline = Instant::now() + LIMIT;
    'found: loop {
        assert!(Instant::now() < deadline, "the subscriber got nothing");
        tap.emit(event(0, marker, "a.test", 0));
        while let Ok(line) = sub.recv_timeout(Duration::from_millis(20)) {
            if id_of(&serde_json::from_str(&line).unwrap()) == (0, marker) {
                break 'found;
            }
        }
    }
    shutdown(&hub);
}

#[test]
fn drops_warn_once_per_episode_and_at_most_every_interval() {
    let mut log = DropLog::default();
    let t = Instant::now();
    let no_clock = || -> Instant { panic!("clock read in the middle of an episode") };
    assert_eq!(log.dropped(|| t), Some(0));
    for _ in 0..99 {
        assert_eq!(log.dropped(no_clock), None);
    }
    // Events flowed again; a new episode soon after is counted but not logged.
    log.dropping = false;
    assert_eq!(log.dropped(|| t + Duration::from_secs(1)), None);
    log.dropping = false;
    assert_eq!(log.dropped(|| t + WARN_INTERVAL), Some(101));
    assert_eq!(log.dropped(no_clock), None);
}

#[test]
fn subscribers_are_capped() {
    let hub = Hub::start(options(None, 16), &metrics(1)).unwrap();
    let mut subs: Vec<_> = (0..MAX_SUBSCRIBERS)
        .map(|_| hub.subscribe(None).unwrap())
        .collect();
    assert!(matches!(hub.subscribe(None), Err(SubscribeError::TooMany)));
    subs.pop();
    assert!(hub.subscribe(Some("*")).is_ok());
}

#[test]
fn shutdown_disconnects_subscribers_and_is_idempotent() {
    let dir = TempDir::new("shutdown");
    let path = dir.0.join("capture.jsonl");
    let m = metrics(1);
    let hub = Hub::start(options(Some(&path), 16), &m).unwrap();
    let tap = hub.tap(0);
    let sub = hub.subscribe(None).unwrap();
    tap.emit(event(0, 0, "a.test", 0));
    assert_eq!(recv_id(&sub), (0, 0));
    shutdown(&hub);
    assert_eq!(sub.recv_timeout(LIMIT), Err(RecvTimeoutError::Disconnected));
    shutdown(&hub);
    assert!(!tap.active());
    let late = hub.subscribe(None).unwrap();
    assert_eq!(
        late.recv_timeout(LIMIT),
        Err(RecvTimeoutError::Disconnected)
    );
    tap.emit(event(0, 1, "a.test", 0));
    assert_eq!(m[0].events_dropped.get(), 1);
    assert_eq!(lines(&path).len(), 1);
}

#[test]
fn dropping_the_last_handle_flushes() {
    let dir = TempDir::new("drop");
    let path = dir.0.join("capture.jsonl");
    let hub = Hub::start(options(Some(&path), 16), &metrics(1)).unwrap();
    let tap = hub.tap(0);
    for seq in 0..10 {
        tap.emit(event(0, seq, "a.test", 0));
    }
    within(LIMIT, move || drop(hub));
    assert_eq!(lines(&path).len(), 10);
}

#[test]
fn an_unopenable_capture_file_is_a_startup_error_naming_it() {
    let dir = TempDir::new("badpath");
    let path = dir.0.join("missing").join("capture.jsonl");
    let Err(e) = Hub::start(options(Some(&path), 16), &metrics(1)) else {
        panic!("started with a capture file in a missing directory");
    };
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
}

#[test]
fn an_idle_writer_sleeps_and_still_wakes_for_the_next_event() {
    let hub = Hub::start(options(None, 16), &metrics(1)).unwrap();
    let tap = hub.tap(0);
    let sub = hub.subscribe(None).unwrap();
    tap.emit(event(0, 0, "a.test", 0));
    assert_eq!(recv_id(&sub), (0, 0));
    wait_for("the writer to park", || {
        hub.shared.sleeping.load(Ordering::Relaxed)
    });
    let before = hub.shared.loops.load(Ordering::Relaxed);
    thread::sleep(Duration::from_secs(1));
    let wakeups = hub.shared.loops.load(Ordering::Relaxed) - before;
    assert!(wakeups <= 10, "{wakeups} wakeups in an idle second");
    tap.emit(event(0, 1, "a.test", 0));
    assert_eq!(
        sub.recv_timeout(Duration::from_secs(2))
            .map(|l| id_of(&serde_json::from_str(&l).unwrap())),
        Ok((0, 1))
    );
}

#[test]
fn handles_cross_threads() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send::<Tap>();
    send::<Subscription>();
    send_sync::<Hub>();
}
