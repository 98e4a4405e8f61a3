//! The per-worker pool of idle upstream connections, keyed by origin (`host:port`). Checkout is
//! LIFO (the most recently used connection is the one most likely still open and warm); each
//! origin keeps at most `max_per_host` idle connections, the whole pool at most `max_total`
//! (past it, the least recently used idle connection of any origin is closed, so many origins
//! cannot pile up idle sockets without bound), and each connection at most `idle_timeout` of
//! idleness. A connection going idle is told so ([`Pooled::on_idle`]) to give back memory it
//! only needed while busy. Each origin also has a [`Gate`]: the cap on its open connections
//! (busy and idle) with the queue of requests waiting under it; a connection returned while
//! requests wait goes straight to the first of them instead of into the idle list. The pool is
//! generic over the connection type so TLS upstreams can reuse it; it is owned by one worker
//! and never shared, so it takes no lock.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::gate::{Gate, Grant};

/// An origin identity: lowercase host and port, formatted `host:port`.
#[derive(Debug, Default)]
pub struct PoolKey(String);

impl PoolKey {
    /// Reuse this key's allocation for `host:port`.
    pub fn set(&mut self, host: &str, port: u16) {
        self.0.clear();
        self.push_origin(host, port);
    }

    /// Appends `host:port` (formatted by hand: this runs once per request).
    fn push_origin(&mut self, host: &str, port: u16) {
        self.0.push_str(host);
        self.0.push(':');
        self.0.push_str(itoa::Buffer::new().format(port));
    }

    /// A key private to one intercepted client session (`tls#<session>#host:port`): TLS origin
    /// connections are never shared between clients, exactly as without a proxy.
    pub fn set_session(&mut self, session: u64, host: &str, port: u16) {
        self.0.clear();
        self.0.push_str("tls#");
        self.0.push_str(itoa::Buffer::new().format(session));
        self.0.push('#');
        self.push_origin(host, port);
    }

    /// A key for lynxio's own TLS connections to `host:port` (`tls#host:port`), shared by every
    /// client: a redirect rule sends requests there, no client's TLS session is involved.
    pub fn set_tls(&mut self, host: &str, port: u16) {
        self.0.clear();
        self.0.push_str("tls#");
        self.push_origin(host, port);
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A connection the pool can hold.
pub trait Pooled {
    /// Called as the connection goes idle into the pool (shrink buffers that grew while busy).
    fn on_idle(&mut self) {}
}

#[derive(Debug)]
struct Idle<T> {
    conn: T,
    since: Instant,
    /// Pool-wide return order (the key of this connection in [`Pool::order`]).
    seq: u64,
}

/// One origin's idle connections, oldest first, and its shared name.
struct Origin<T> {
    name: Rc<str>,
    list: VecDeque<Idle<T>>,
}

/// Idle connections per origin, with a per-origin and a pool-wide cap.
pub struct Pool<T> {
    /// By origin. foldhash: a put and a take per request; at most `max_total` entries, so even
    /// keys chosen to collide cost a bounded probe.
    idle: HashMap<Rc<str>, Origin<T>, foldhash::fast::RandomState>,
    /// Every idle connection by return order (sequence number → origin): the first entry is
    /// the least recently used one, the front of its origin's list.
    order: BTreeMap<u64, Rc<str>>,
    next_seq: u64,
    max_per_host: usize,
    max_total: usize,
    idle_timeout: Duration,
    /// Told about every idle connection closed to make room (for a counter).
    on_evict: Option<Box<dyn Fn()>>,
    /// Each origin's cap on open connections (an entry lives while anything holds its gate).
    gates: HashMap<Rc<str>, Rc<Gate<T>>, foldhash::fast::RandomState>,
    max_open_per_host: usize,
}

impl<T> std::fmt::Debug for Pool<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("idle", &self.order.len())
            .field("origins", &self.idle.len())
            .field("max_per_host", &self.max_per_host)
            .field("max_total", &self.max_total)
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

impl<T> Pool<T> {
    /// A pool keeping at most `max_per_host` idle connections per origin and `max_total` in
    /// all (0 for either: no pooling).
    pub fn new(max_per_host: usize, max_total: usize, idle_timeout: Duration) -> Self {
        Pool {
            idle: HashMap::default(),
            order: BTreeMap::new(),
            next_seq: 0,
            max_per_host,
            max_total,
            idle_timeout,
            on_evict: None,
            gates: HashMap::default(),
            max_open_per_host: usize::MAX,
        }
    }

    /// Cap the connections open to one origin (busy or idle; at least 1): past it, requests
    /// wait at the origin's [`Gate`] for one to finish or close.
    pub fn max_open_per_host(mut self, max: usize) -> Self {
        self.max_open_per_host = max.max(1);
        self
    }

    /// The gate of `key`'s origin (created on first use).
    pub fn gate(&mut self, key: &PoolKey) -> Rc<Gate<T>> {
        if let Some(g) = self.gates.get(key.as_str()) {
            return g.clone();
        }
        let g = Gate::new(self.max_open_per_host);
        self.gates.insert(Rc::from(key.as_str()), g.clone());
        g
    }

    /// Call `f` for every idle connection closed to make room for a newer one (either cap).
    pub fn on_evict(mut self, f: impl Fn() + 'static) -> Self {
        self.on_evict = Some(Box::new(f));
        self
    }

    /// Drop every idle connection under `key` (an intercepted session that ended).
    pub fn remove(&mut self, key: &PoolKey) {
        if let Some(origin) = self.idle.remove(key.as_str()) {
            for idle in origin.list {
                self.order.remove(&idle.seq);
            }
        }
    }

    /// The most recently returned connection to `key` that has not outlived the idle timeout.
    pub fn take(&mut self, key: &PoolKey, now: Instant) -> Option<T> {
        let list = &mut self.idle.get_mut(key.as_str())?.list;
        while let Some(idle) = list.pop_back() {
            self.order.remove(&idle.seq);
            if now.duration_since(idle.since) < self.idle_timeout {
                return Some(idle.conn);
            }
        }
        None
    }

    /// Idle connections held, over all origins.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Drop every connection idle for longer than the timeout, and empty origin entries.
    pub fn purge_expired(&mut self, now: Instant) {
        let Pool {
            idle,
            order,
            idle_timeout,
            ..
        } = self;
        idle.retain(|_, origin| {
            origin.list.retain(|idle| {
                let keep = now.duration_since(idle.since) < *idle_timeout;
                if !keep {
                    order.remove(&idle.seq);
                }
                keep
            });
            !origin.list.is_empty()
        });
        // A gate nobody holds (no open connection, no waiter) is forgotten.
        self.gates.retain(|_, g| Rc::strong_count(g) > 1);
    }

    /// Drop every idle connection (shutdown).
    pub fn clear(&mut self) {
        self.idle.clear();
        self.order.clear();
    }

    /// Close the least recently used idle connection of any origin.
    fn evict_oldest(&mut self) {
        let Some((seq, key)) = self.order.pop_first() else {
            return;
        };
        if let Some(Origin { list, .. }) = self.idle.get_mut(&key) {
            // Lists are in return order, so the pool's oldest is the front of its origin's.
            debug_assert_eq!(list.front().map(|i| i.seq), Some(seq));
            list.pop_front();
            if list.is_empty() {
                self.idle.remove(&key);
            }
        }
        self.evicted();
    }

    fn evicted(&self) {
        if let Some(f) = &self.on_evict {
            f();
        }
    }
}

impl<T: Pooled> Pool<T> {
    /// Return a connection whose last exchange ended cleanly. Past a cap, the oldest idle
    /// connection of the origin (per-origin cap) or of the whole pool (total cap) is closed.
    /// A request waiting at the origin's gate is handed the connection instead.
    pub fn put(&mut self, key: &PoolKey, conn: T, now: Instant) {
        let mut conn = match self.gates.get(key.as_str()) {
            Some(gate) => match gate.hand(Grant::Conn(conn)) {
                None => return,
                Some(Grant::Conn(c)) => c,
                Some(Grant::Open(_)) => return,
            },
            None => conn,
        };
        if self.max_per_host == 0 || self.max_total == 0 {
            return;
        }
        conn.on_idle();
        let seq = self.next_seq;
        self.next_seq += 1;
        let idle = Idle {
            conn,
            since: now,
            seq,
        };
        // One lookup when the origin is known (the steady state of keep-alive traffic).
        let (origin, dropped) = match self.idle.get_mut(key.as_str()) {
            Some(Origin { name, list }) => {
                let dropped = if list.len() >= self.max_per_host {
                    list.pop_front().map(|i| i.seq)
                } else {
                    None
                };
                list.push_back(idle);
                (name.clone(), dropped)
            }
            None => {
                let name: Rc<str> = Rc::from(key.as_str());
                let origin = Origin {
                    name: name.clone(),
                    list: VecDeque::from([idle]),
                };
                self.idle.insert(name.clone(), origin);
                (name, None)
            }
        };
        if let Some(old) = dropped {
            self.order.remove(&old);
            self.evicted();
        }
        self.order.insert(seq, origin);
        while self.order.len() > self.max_total {
            self.evict_oldest();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// A test connection: its id, and whether it was told it went idle.
    #[derive(Debug, PartialEq, Eq)]
    struct Conn(u32, bool);

    impl Pooled for Conn {
        fn on_idle(&mut self) {
            self.1 = true;
        }
    }

    fn key(h: &str, p: u16) -> PoolKey {
        let mut k = PoolKey::default();
        k.set(h, p);
        k
    }

    fn id(conn: Option<Conn>) -> Option<u32> {
        conn.map(|c| c.0)
    }

    #[test]
    fn lifo_cap_and_expiry() {
        let t0 = Instant::now();
        let mut pool = Pool::new(2, 100, Duration::from_secs(10));
        let a = key("a", 80);
        pool.put(&a, Conn(1, false), t0);
        pool.put(&a, Conn(2, false), t0);
        pool.put(&a, Conn(3, false), t0); // evicts 1
        assert_eq!(pool.len(), 2);
        assert_eq!(pool.take(&a, t0), Some(Conn(3, true)));
        assert_eq!(id(pool.take(&key("a", 81), t0)), None);
        assert_eq!(id(pool.take(&a, t0 + Duration::from_secs(11))), None);
        assert!(pool.take(&a, t0).is_none());
        assert!(pool.is_empty());
        pool.put(&a, Conn(4, false), t0);
        pool.purge_expired(t0 + Duration::from_secs(11));
        assert!(pool.is_empty());
    }

    #[test]
    fn total_cap_evicts_least_recently_used_of_any_origin() {
        let t0 = Instant::now();
        let evictions = Rc::new(Cell::new(0));
        let counted = evictions.clone();
        let mut pool = Pool::new(10, 3, Duration::from_secs(10))
            .on_evict(move || counted.set(counted.get() + 1));
        let (a, b, c) = (key("a", 80), key("b", 80), key("c", 80));
        pool.put(&a, Conn(1, false), t0);
        pool.put(&b, Conn(2, false), t0);
        pool.put(&a, Conn(3, false), t0);
        // Using b's connection and returning it makes a's first one the oldest.
        let two = pool.take(&b, t0).expect("b pooled");
        pool.put(&b, two, t0);
        pool.put(&c, Conn(4, false), t0); // a total of 4 > 3: evicts a/1
        assert_eq!(pool.len(), 3);
        assert_eq!(evictions.get(), 1);
        assert_eq!(id(pool.take(&a, t0)), Some(3));
        assert_eq!(id(pool.take(&a, t0)), None);
        pool.put(&c, Conn(5, false), t0);
        pool.put(&c, Conn(6, false), t0); // evicts b/2, whose origin entry goes too
        assert_eq!(evictions.get(), 2);
        assert_eq!(id(pool.take(&b, t0)), None);
        assert_eq!(pool.len(), 3);
        assert_eq!(id(pool.take(&c, t0)), Some(6));
        assert_eq!(id(pool.take(&c, t0)), Some(5));
        assert_eq!(id(pool.take(&c, t0)), Some(4));
        assert!(pool.is_empty());
    }

    #[test]
    fn per_origin_cap_counts_as_eviction_and_keeps_order_consistent() {
        let t0 = Instant::now();
        let evictions = Rc::new(Cell::new(0));
        let counted = evictions.clone();
        let mut pool = Pool::new(1, 2, Duration::from_secs(10))
            .on_evict(move || counted.set(counted.get() + 1));
        let (a, b) = (key("a", 80), key("b", 80));
        pool.put(&a, Conn(1, false), t0);
        pool.put(&a, Conn(2, false), t0); // per-origin cap: a/1 goes
        pool.put(&b, Conn(3, false), t0);
        assert_eq!(evictions.get(), 1);
        assert_eq!(pool.len(), 2);
        pool.put(&b, Conn(4, false), t0); // per-origin cap again: b/3 goes, a/2 stays
        assert_eq!(evictions.get(), 2);
        assert_eq!(id(pool.take(&a, t0)), Some(2));
        assert_eq!(id(pool.take(&b, t0)), Some(4));
        assert!(pool.is_empty());
    }

    #[test]
    fn remove_and_purge_keep_the_total_in_step() {
        let t0 = Instant::now();
        let mut pool = Pool::new(10, 2, Duration::from_secs(10));
        let (a, b, c) = (key("a", 80), key("b", 80), key("c", 80));
        pool.put(&a, Conn(1, false), t0);
        pool.put(&b, Conn(2, false), t0 + Duration::from_secs(5));
        pool.remove(&a);
        assert_eq!(pool.len(), 1);
        pool.purge_expired(t0 + Duration::from_secs(12)); // b is 7 s idle: stays
        assert_eq!(pool.len(), 1);
        pool.put(&c, Conn(3, false), t0);
        pool.put(&c, Conn(4, false), t0); // evicts b/2, the oldest returned
        assert_eq!(id(pool.take(&b, t0)), None);
        assert_eq!(pool.len(), 2);
        pool.clear();
        assert!(pool.is_empty());
    }

    #[test]
    fn zero_caps_pool_nothing() {
        let t0 = Instant::now();
        let a = key("a", 80);
        for (per_host, total) in [(0, 10), (10, 0)] {
            let mut pool = Pool::new(per_host, total, Duration::from_secs(10));
            pool.put(&a, Conn(1, false), t0);
            assert!(pool.is_empty());
        }
    }
}
