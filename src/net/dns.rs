//! Name resolution that never blocks a worker. IP literals and `--resolve` overrides answer
//! at once; other names hit a per-worker cache (TTL from config: the system resolver reports
//! none) and, on a miss, `getaddrinfo` runs on the shared blocking pool while the worker keeps
//! serving. Failures are cached briefly too so a dead name cannot turn into a lookup storm.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::rc::Rc;
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

#[derive(Debug, Clone)]
enum Answer {
    Found(Rc<[IpAddr]>),
    Failed(io::ErrorKind, Rc<str>),
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
}

/// A per-worker resolver.
#[derive(Debug)]
pub struct Resolver {
    overrides: HashMap<(String, u16), Rc<[IpAddr]>>,
    cache: RefCell<HashMap<String, Entry>>,
    ttl: Duration,
}

impl Resolver {
    pub fn new(overrides: &[ResolveOverride], ttl: Duration) -> Self {
        Resolver {
            overrides: overrides
                .iter()
                .map(|o| ((o.host.clone(), o.port), Rc::from(o.addrs.as_slice())))
                .collect(),
            cache: RefCell::new(HashMap::new()),
            ttl,
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
        let now = Instant::now();
        if let Some(entry) = self.cache.borrow().get(host)
            && entry.expires > now
        {
            let answer = match &entry.answer {
                Answer::Found(ips) => Ok(ips.clone()),
                Answer::Failed(kind, msg) => Err(io::Error::new(*kind, msg.to_string())),
            };
            return (answer, Lookup::Cached);
        }
        let name = host.to_owned();
        let result = monoio::spawn_blocking(move || system_lookup(&name))
            .await
            .unwrap_or_else(|_| Err(io::Error::other("resolver thread pool is gone")))
            .map(Rc::<[IpAddr]>::from);
        let (answer, ttl) = match &result {
            Ok(ips) => (Answer::Found(ips.clone()), self.ttl),
            Err(e) => (
                Answer::Failed(e.kind(), Rc::from(e.to_string())),
                DNS_NEGATIVE_TTL,
            ),
        };
        self.insert(host, answer, now + ttl);
        (result, Lookup::Resolved)
    }

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
