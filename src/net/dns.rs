//! Name resolution that never blocks a worker. IP literals and `--resolve` overrides answer
//! at once; other names hit a per-worker cache (TTL from config: the system resolver reports
//! none) and, on a miss, `getaddrinfo` runs on the shared blocking pool while the worker keeps
//! serving. Bounded under abuse: failures are cached briefly ([`DNS_NEGATIVE_TTL`]) so a dead
//! name cannot turn into a lookup storm; concurrent lookups of one name on a worker share one
//! resolver call; a waiter gives up after the lookup deadline (the blocking call may stay
//! stuck, the request does not); and at most [`DNS_MAX_PENDING`] lookups are queued or running
//! on the resolver threads at once, over every worker — past that a lookup fails at once
//! ("resolver overloaded") rather than queueing behind black-holed names without bound.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// A `--resolve` entry: connections to `host:port` go to these addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveOverride {
    pub host: String,
    pub port: u16,
    pub addrs: Vec<IpAddr>,
}

/// Entries kept per worker before expired ones are swept (and, if still full, all dropped).
pub const DNS_CACHE_MAX_ENTRIES: usize = 4096;
/// How long a failed lookup is remembered.
pub const DNS_NEGATIVE_TTL: Duration = Duration::from_secs(5);
/// Lookups queued or running on the resolver threads at once, over all workers. A normal
/// lookup takes milliseconds, so this is far more than a burst of cold names needs, while a
/// flood of names that never answer (each holding a resolver thread for the system's full
/// retry time) is refused at once instead of queueing every later lookup behind it.
pub const DNS_MAX_PENDING: usize = 256;

/// The blocking lookup: unique IPs for a name, in resolver order. Runs on a resolver thread.
pub type LookupFn = Arc<dyn Fn(&str) -> io::Result<Vec<IpAddr>> + Send + Sync>;

/// Admission to the resolver threads: counts lookups queued or running, up to a maximum.
#[derive(Debug)]
pub struct LookupQueue {
    pending: AtomicUsize,
    max: usize,
}

impl LookupQueue {
    pub fn new(max: usize) -> Self {
        LookupQueue {
            pending: AtomicUsize::new(0),
            max,
        }
    }

    /// Lookups queued or running now.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// A slot for one lookup, or `None` when the queue is full.
    fn admit(self: &Arc<Self>) -> Option<Slot> {
        self.pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()?;
        Some(Slot(self.clone()))
    }
}

/// One admitted lookup; frees its place when the blocking call has returned (or the task was
/// dropped unrun), not when the waiters give up — that is what bounds the resolver's queue.
struct Slot(Arc<LookupQueue>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The queue every worker's resolver shares (the blocking pool is shared too).
static SHARED_QUEUE: LazyLock<Arc<LookupQueue>> =
    LazyLock::new(|| Arc::new(LookupQueue::new(DNS_MAX_PENDING)));

#[derive(Debug, Clone)]
enum Answer {
    Found(Rc<[IpAddr]>),
    Failed(io::ErrorKind, Rc<str>),
}

impl Answer {
    fn to_result(&self) -> io::Result<Rc<[IpAddr]>> {
        match self {
            Answer::Found(ips) => Ok(ips.clone()),
            Answer::Failed(kind, msg) => Err(io::Error::new(*kind, msg.to_string())),
        }
    }
}

#[derive(Debug)]
struct Entry {
    answer: Answer,
    expires: Instant,
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// An IP literal or a `--resolve` override: no lookup at all.
    Literal,
    /// The worker's cache (a hit).
    Cached,
    /// The system resolver (a miss).
    Resolved,
    /// The lookup of the same name another request of this worker had already started.
    Coalesced,
    /// Refused before reaching the resolver: its queue was full.
    Overloaded,
}

/// One running lookup: its answer once known, and the requests waiting for it.
#[derive(Debug, Default)]
struct Pending(RefCell<PendingInner>);

#[derive(Debug, Default)]
struct PendingInner {
    answer: Option<Answer>,
    /// One slot per waiter holding its latest waker; a waiter that gave up frees its slot
    /// for the next one, so a stuck lookup's waiters never outnumber the requests waiting.
    wakers: Vec<Option<Waker>>,
    free: Vec<usize>,
}

impl Pending {
    fn finish(&self, answer: Answer) {
        let wakers = {
            let mut inner = self.0.borrow_mut();
            inner.answer = Some(answer);
            inner.free.clear();
            std::mem::take(&mut inner.wakers)
        };
        for waker in wakers.into_iter().flatten() {
            waker.wake();
        }
    }
}

/// Waits for a [`Pending`] lookup's answer.
struct Wait {
    pending: Rc<Pending>,
    slot: Option<usize>,
}

impl Future for Wait {
    type Output = Answer;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answer> {
        let slot = {
            let mut inner = self.pending.0.borrow_mut();
            if let Some(answer) = &inner.answer {
                return Poll::Ready(answer.clone());
            }
            let waker = Some(cx.waker().clone());
            match self.slot {
                Some(i) if i < inner.wakers.len() => {
                    inner.wakers[i] = waker;
                    i
                }
                _ => match inner.free.pop() {
                    Some(i) => {
                        inner.wakers[i] = waker;
                        i
                    }
                    None => {
                        inner.wakers.push(waker);
                        inner.wakers.len() - 1
                    }
                },
            }
        };
        self.slot = Some(slot);
        Poll::Pending
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        let mut inner = self.pending.0.borrow_mut();
        if let Some(i) = self.slot
            && inner.answer.is_none()
            && i < inner.wakers.len()
        {
            inner.wakers[i] = None;
            inner.free.push(i);
        }
    }
}

/// What the resolver's lookup tasks share with it: the cache and the lookups running.
#[derive(Debug, Default)]
struct State {
    cache: RefCell<HashMap<String, Entry>>,
    running: RefCell<HashMap<String, Rc<Pending>>>,
}

impl State {
    fn insert(&self, host: &str, answer: Answer, expires: Instant) {
        let mut cache = self.cache.borrow_mut();
        if cache.len() >= DNS_CACHE_MAX_ENTRIES {
            let now = Instant::now();
            cache.retain(|_, e| e.expires > now);
            if cache.len() >= DNS_CACHE_MAX_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(host.to_owned(), Entry { answer, expires });
    }
}

/// A per-worker resolver.
pub struct Resolver {
    overrides: HashMap<(String, u16), Rc<[IpAddr]>>,
    state: Rc<State>,
    ttl: Duration,
    /// How long a request waits for a lookup.
    deadline: Duration,
    lookup: LookupFn,
    queue: Arc<LookupQueue>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("overrides", &self.overrides)
            .field("state", &self.state)
            .field("ttl", &self.ttl)
            .field("deadline", &self.deadline)
            .field("queue", &self.queue)
            .finish()
    }
}

impl Resolver {
    /// A resolver using the system's `getaddrinfo` and the process-wide resolver queue;
    /// answers are cached for `ttl` and a request waits at most `deadline` for a lookup.
    pub fn new(overrides: &[ResolveOverride], ttl: Duration, deadline: Duration) -> Self {
        let lookup: LookupFn = Arc::new(system_lookup);
        Resolver::with_lookup(overrides, ttl, deadline, lookup, SHARED_QUEUE.clone())
    }

    /// A resolver with its own blocking `lookup` and admission `queue` (tests: a fake resolver).
    pub fn with_lookup(
        overrides: &[ResolveOverride],
        ttl: Duration,
        deadline: Duration,
        lookup: LookupFn,
        queue: Arc<LookupQueue>,
    ) -> Self {
        Resolver {
            overrides: overrides
                .iter()
                .map(|o| ((o.host.clone(), o.port), Rc::from(o.addrs.as_slice())))
                .collect(),
            state: Rc::default(),
            ttl,
            deadline,
            lookup,
            queue,
        }
    }

    /// Addresses for `host` (lowercase, IPv6 without brackets) and `port`, in resolver order,
    /// and where the answer came from (the error, too, may come from the cache).
    pub async fn resolve(&self, host: &str, port: u16) -> (io::Result<Vec<SocketAddr>>, Lookup) {
        let (ips, how) = self.lookup(host, port).await;
        let addrs = ips.map(|ips| ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect());
        (addrs, how)
    }

    async fn lookup(&self, host: &str, port: u16) -> (io::Result<Rc<[IpAddr]>>, Lookup) {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return (Ok(Rc::from([ip].as_slice())), Lookup::Literal);
        }
        if !self.overrides.is_empty()
            && let Some(ips) = self.overrides.get(&(host.to_owned(), port))
        {
            return (Ok(ips.clone()), Lookup::Literal);
        }
        if let Some(entry) = self.state.cache.borrow().get(host)
            && entry.expires > Instant::now()
        {
            return (entry.answer.to_result(), Lookup::Cached);
        }
        let running = self.state.running.borrow().get(host).cloned();
        let (pending, how) = match running {
            Some(pending) => (pending, Lookup::Coalesced),
            None => match self.start(host) {
                Some(pending) => (pending, Lookup::Resolved),
                None => {
                    let error = io::Error::other(format!(
                        "resolver overloaded ({} lookups already pending)",
                        self.queue.max
                    ));
                    return (Err(error), Lookup::Overloaded);
                }
            },
        };
        let wait = Wait {
            pending,
            slot: None,
        };
        match monoio::time::timeout(self.deadline, wait).await {
            Ok(answer) => (answer.to_result(), how),
            Err(_) => {
                let error = io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("lookup took longer than {:?}", self.deadline),
                );
                (Err(error), how)
            }
        }
    }

    /// Start looking `host` up on the blocking pool, unless its queue is full. A task of the
    /// worker's own waits for the answer, caches it and wakes every waiter, so the answer is
    /// kept even when each request waiting for it gave up first.
    fn start(&self, host: &str) -> Option<Rc<Pending>> {
        let slot = self.queue.admit()?;
        let pending = Rc::new(Pending::default());
        self.state
            .running
            .borrow_mut()
            .insert(host.to_owned(), pending.clone());
        let (name, lookup) = (host.to_owned(), self.lookup.clone());
        let join = monoio::spawn_blocking(move || {
            let _slot = slot;
            lookup(&name)
        });
        let (state, done, ttl, name) = (
            self.state.clone(),
            pending.clone(),
            self.ttl,
            host.to_owned(),
        );
        monoio::spawn(async move {
            let result = join
                .await
                .unwrap_or_else(|_| Err(io::Error::other("resolver thread pool is gone")));
            let (answer, ttl) = match result {
                Ok(ips) => (Answer::Found(Rc::from(ips)), ttl),
                Err(e) => (
                    Answer::Failed(e.kind(), Rc::from(e.to_string())),
                    DNS_NEGATIVE_TTL,
                ),
            };
            state.running.borrow_mut().remove(&name);
            state.insert(&name, answer.clone(), Instant::now() + ttl);
            done.finish(answer);
        });
        Some(pending)
    }
}

/// Blocking system lookup (runs on the blocking pool). Returns unique IPs in resolver order.
fn system_lookup(host: &str) -> io::Result<Vec<IpAddr>> {
    let mut ips: Vec<IpAddr> = Vec::new();
    for addr in (host, 0u16).to_socket_addrs()? {
        if !ips.contains(&addr.ip()) {
            ips.push(addr.ip());
        }
    }
    if ips.is_empty() {
        return Err(io::Error::new(io::ErrorKind::NotFound, "no addresses"));
    }
    Ok(ips)
}

#[cfg(test)]
mod tests;
