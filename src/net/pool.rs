//! The per-worker pool of idle upstream connections, keyed by origin (`host:port`). Checkout is
//! LIFO (the most recently used connection is the one most likely still open and warm); each
//! origin keeps at most `max_per_host` idle connections and each connection at most
//! `idle_timeout` of idleness. The pool is generic over the connection type so TLS upstreams
//! can reuse it; it is owned by one worker and never shared, so it takes no lock.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write;
use std::time::{Duration, Instant};

/// An origin identity: lowercase host and port, formatted `host:port`.
#[derive(Debug, Default)]
pub struct PoolKey(String);

impl PoolKey {
    /// Reuse this key's allocation for `host:port`.
    pub fn set(&mut self, host: &str, port: u16) {
        self.0.clear();
        let _ = write!(self.0, "{host}:{port}");
    }

    /// A key private to one intercepted client session (`tls#<session>#host:port`): TLS origin
    /// connections are never shared between clients, exactly as without a proxy.
    pub fn set_session(&mut self, session: u64, host: &str, port: u16) {
        self.0.clear();
        let _ = write!(self.0, "tls#{session}#{host}:{port}");
    }

    /// A key for lynxio's own TLS connections to `host:port` (`tls#host:port`), shared by every
    /// client: a redirect rule sends requests there, no client's TLS session is involved.
    pub fn set_tls(&mut self, host: &str, port: u16) {
        self.0.clear();
        let _ = write!(self.0, "tls#{host}:{port}");
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug)]
struct Idle<T> {
    conn: T,
    since: Instant,
}

/// Idle connections per origin.
#[derive(Debug)]
pub struct Pool<T> {
    idle: HashMap<String, VecDeque<Idle<T>>>,
    max_per_host: usize,
    idle_timeout: Duration,
}

impl<T> Pool<T> {
    pub fn new(max_per_host: usize, idle_timeout: Duration) -> Self {
        Pool {
            idle: HashMap::new(),
            max_per_host,
            idle_timeout,
        }
    }

    /// The most recently returned connection to `key` that has not outlived the idle timeout.
    /// Drop every idle connection under `key` (an intercepted session that ended).
    pub fn remove(&mut self, key: &PoolKey) {
        self.idle.remove(key.as_str());
    }

    pub fn take(&mut self, key: &PoolKey, now: Instant) -> Option<T> {
        let list = self.idle.get_mut(key.as_str())?;
        while let Some(idle) = list.pop_back() {
            if now.duration_since(idle.since) < self.idle_timeout {
                return Some(idle.conn);
            }
        }
        None
    }

    /// Return a connection whose last exchange ended cleanly.
    pub fn put(&mut self, key: &PoolKey, conn: T, now: Instant) {
        if self.max_per_host == 0 {
            return;
        }
        let list = match self.idle.get_mut(key.as_str()) {
            Some(list) => list,
            None => self.idle.entry(key.as_str().to_owned()).or_default(),
        };
        if list.len() >= self.max_per_host {
            list.pop_front();
        }
        list.push_back(Idle { conn, since: now });
    }

    /// Drop every connection idle for longer than the timeout, and empty origin entries.
    pub fn purge_expired(&mut self, now: Instant) {
        let timeout = self.idle_timeout;
        self.idle.retain(|_, list| {
            list.retain(|idle| now.duration_since(idle.since) < timeout);
            !list.is_empty()
        });
    }

    /// Idle connections held, over all origins.
    pub fn len(&self) -> usize {
        self.idle.values().map(VecDeque::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.idle.is_empty()
    }

    /// Drop every idle connection (shutdown).
    pub fn clear(&mut self) {
        self.idle.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(h: &str, p: u16) -> PoolKey {
        let mut k = PoolKey::default();
        k.set(h, p);
        k
    }

    #[test]
    fn lifo_cap_and_expiry() {
        let t0 = Instant::now();
        let mut pool = Pool::new(2, Duration::from_secs(10));
        let a = key("a", 80);
        pool.put(&a, 1, t0);
        pool.put(&a, 2, t0);
        pool.put(&a, 3, t0); // evicts 1
        assert_eq!(pool.len(), 2);
        assert_eq!(pool.take(&a, t0), Some(3));
        assert_eq!(pool.take(&key("a", 81), t0), None);
        assert_eq!(pool.take(&a, t0 + Duration::from_secs(11)), None);
        assert!(pool.take(&a, t0).is_none());
        pool.put(&a, 4, t0);
        pool.purge_expired(t0 + Duration::from_secs(11));
        assert!(pool.is_empty());
    }
}
