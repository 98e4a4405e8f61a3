//! TLS session resumption on both sides of interception, so a client or an origin seen before
//! costs an abbreviated handshake instead of a full one. Toward clients: stateless tickets from
//! ONE rotating ring [`Ticketer`] per process ([`ticketer`]: a reconnecting client lands on any
//! worker through SO_REUSEPORT, and a per-worker ticket key would resume only one in N) and
//! session IDs in the worker's own bounded store (see [`super::leaf`]); every leaf wraps both in
//! [`HostTickets`] / [`HostSessions`], which bind a session to the leaf's host, so a session made
//! for host A is never resumed for host B even where rustls' own SNI check cannot tell them apart
//! (IP-address targets, which have no SNI), and stop accepting tickets older than
//! [`TICKET_LIFETIME`]. Toward origins: [`OriginConfigs`] gives each worker its own rustls
//! `ClientConfig` per origin port, built once and kept in a small LRU, all backed by one bounded
//! session store per worker keyed by (port, server name) ([`ORIGIN_SESSION_HOSTS`] origins,
//! [`ORIGIN_TICKETS_PER_HOST`] TLS 1.3 tickets each); its mutex is only ever taken by its own
//! worker, so it is never contended.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lru::LruCache;
use rustls::client::{
    ClientSessionStore, Resumption, Tls12ClientSessionValue, Tls13ClientSessionValue,
};
use rustls::pki_types::ServerName;
use rustls::server::{ProducesTickets, StoresServerSessions};
use rustls::{ClientConfig, NamedGroup};

/// How long a ticket lynxio issues to a client can be used. Equal to the key rotation period of
/// rustls' ring ticketer (6 h; a key encrypts for that long, then decrypts for as long again),
/// so every ticket still within its lifetime can be decrypted. Also the lifetime hint sent.
pub const TICKET_LIFETIME: Duration = Duration::from_secs(6 * 3600);
/// Origins (port + server name) whose sessions one worker remembers; the least recently used
/// one is forgotten first.
pub const ORIGIN_SESSION_HOSTS: usize = 1024;
/// TLS 1.3 tickets kept per origin, as rustls keeps by default. Each is used once and an
/// origin usually sends one or two per connection, so the reserve rises and falls with the
/// connections in flight: with 16 parallel connections to one origin, a reserve of 4 ran dry
/// often enough that 20–45 % of them were full handshakes; with 8, a few per cent. Bounded
/// overall by [`ORIGIN_SESSION_HOSTS`] (a ticket is a few hundred bytes: ~2.5 MiB per worker
/// at most).
pub const ORIGIN_TICKETS_PER_HOST: usize = 8;
/// Origin ports whose client configuration a worker keeps built (one `ClientConfig` each,
/// sharing the worker's session store); an evicted one is rebuilt on its next use, its
/// sessions kept.
pub const ORIGIN_CONFIG_PORTS: usize = 16;
/// Clock skew tolerated on a ticket's issue time (the wall clock may step back).
const TICKET_CLOCK_SKEW: Duration = Duration::from_secs(60);

/// The process-wide ticket key holder for client-facing sessions: rustls' ring `Ticketer`
/// (ChaCha20-Poly1305, a fresh random key every 6 h, the previous one kept for decryption).
pub fn ticketer() -> Result<Arc<dyn ProducesTickets>, rustls::Error> {
    rustls::crypto::ring::Ticketer::new()
}

/// `tag` as a length-prefixed byte string, the common prefix of a host's tickets and session
/// keys.
fn host_tag(host: &str) -> Box<[u8]> {
    let len = u16::try_from(host.len()).unwrap_or(u16::MAX);
    let mut tag = Vec::with_capacity(2 + usize::from(len));
    tag.extend_from_slice(&len.to_be_bytes());
    tag.extend_from_slice(&host.as_bytes()[..usize::from(len)]);
    tag.into_boxed_slice()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One leaf's view of the shared ticketer: what it encrypts is `tag ‖ issued (u64 BE) ‖ state`,
/// and it decrypts only its own host's tickets issued less than [`TICKET_LIFETIME`] ago (AEAD
/// makes the prefix unforgeable).
#[derive(Debug)]
pub struct HostTickets {
    inner: Arc<dyn ProducesTickets>,
    tag: Box<[u8]>,
}

impl HostTickets {
    pub fn new(inner: Arc<dyn ProducesTickets>, host: &str) -> HostTickets {
        HostTickets {
            inner,
            tag: host_tag(host),
        }
    }
}

impl ProducesTickets for HostTickets {
    fn enabled(&self) -> bool {
        self.inner.enabled()
    }

    fn lifetime(&self) -> u32 {
        let ours = u32::try_from(TICKET_LIFETIME.as_secs()).unwrap_or(u32::MAX);
        ours.min(self.inner.lifetime())
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let mut bound = Vec::with_capacity(self.tag.len() + 8 + plain.len());
        bound.extend_from_slice(&self.tag);
        bound.extend_from_slice(&now_secs().to_be_bytes());
        bound.extend_from_slice(plain);
        self.inner.encrypt(&bound)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let mut plain = self.inner.decrypt(cipher)?;
        let rest = plain.strip_prefix(&self.tag[..])?;
        let (issued, _) = rest.split_first_chunk::<8>()?;
        let issued = u64::from_be_bytes(*issued);
        let now = now_secs();
        if issued > now.saturating_add(TICKET_CLOCK_SKEW.as_secs())
            || now.saturating_sub(issued) > TICKET_LIFETIME.as_secs()
        {
            return None;
        }
        plain.drain(..self.tag.len() + 8);
        Some(plain)
    }
}

/// One leaf's view of the worker's session-ID store: every key is prefixed with the leaf's
/// host, so a session ID is found only under the host it was issued for.
#[derive(Debug)]
pub struct HostSessions {
    inner: Arc<dyn StoresServerSessions>,
    tag: Box<[u8]>,
}

impl HostSessions {
    pub fn new(inner: Arc<dyn StoresServerSessions>, host: &str) -> HostSessions {
        HostSessions {
            inner,
            tag: host_tag(host),
        }
    }

    fn key(&self, key: &[u8]) -> Vec<u8> {
        let mut bound = Vec::with_capacity(self.tag.len() + key.len());
        bound.extend_from_slice(&self.tag);
        bound.extend_from_slice(key);
        bound
    }
}

impl StoresServerSessions for HostSessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.inner.put(self.key(&key), value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.inner.get(&self.key(key))
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.inner.take(&self.key(key))
    }

    fn can_cache(&self) -> bool {
        self.inner.can_cache()
    }
}

/// What a worker remembers of one origin.
#[derive(Default)]
struct Remembered {
    kx_hint: Option<NamedGroup>,
    tls12: Option<Tls12ClientSessionValue>,
    tls13: VecDeque<Tls13ClientSessionValue>,
}

type OriginKey = (u16, ServerName<'static>);

/// A worker's origin sessions, keyed by (port, server name), bounded LRU.
struct OriginSessions {
    origins: Mutex<LruCache<OriginKey, Remembered>>,
}

impl std::fmt::Debug for OriginSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginSessions")
            .field("origins", &self.lock().len())
            .finish()
    }
}

impl OriginSessions {
    fn new(capacity: usize) -> OriginSessions {
        OriginSessions {
            origins: Mutex::new(LruCache::new(
                NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }

    /// Only the owning worker locks it; a poisoned lock (a panic elsewhere) still holds a
    /// consistent LRU.
    fn lock(&self) -> MutexGuard<'_, LruCache<OriginKey, Remembered>> {
        self.origins.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, key: OriginKey, change: impl FnOnce(&mut Remembered)) {
        let mut origins = self.lock();
        change(origins.get_or_insert_mut(key, Remembered::default));
    }

    fn with<T>(&self, key: &OriginKey, read: impl FnOnce(&mut Remembered) -> T) -> Option<T> {
        self.lock().get_mut(key).map(read)
    }
}

/// The session store of one origin port's `ClientConfig`: the worker's [`OriginSessions`]
/// under this port.
#[derive(Debug)]
struct PortSessions {
    port: u16,
    shared: Arc<OriginSessions>,
}

impl PortSessions {
    fn key(&self, name: &ServerName<'_>) -> OriginKey {
        (self.port, name.to_owned())
    }
}

impl ClientSessionStore for PortSessions {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.shared
            .update((self.port, server_name), |r| r.kx_hint = Some(group));
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.shared
            .with(&self.key(server_name), |r| r.kx_hint)
            .flatten()
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.shared
            .update((self.port, server_name), |r| r.tls12 = Some(value));
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.shared
            .with(&self.key(server_name), |r| r.tls12.clone())
            .flatten()
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.shared.with(&self.key(server_name), |r| r.tls12 = None);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        self.shared.update((self.port, server_name), |r| {
            if r.tls13.len() >= ORIGIN_TICKETS_PER_HOST {
                r.tls13.pop_front();
            }
            r.tls13.push_back(value);
        });
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        // The newest first: it has the longest left to live.
        self.shared
            .with(&self.key(server_name), |r| r.tls13.pop_back())
            .flatten()
    }
}

/// One worker's TLS client configurations for origins: the shared template (verification,
/// ALPN) specialised per origin port with the worker's own session store. Single-threaded
/// (lives in the worker); building one costs a `ClientConfig` clone, once per port.
pub struct OriginConfigs {
    template: Arc<ClientConfig>,
    sessions: Arc<OriginSessions>,
    by_port: RefCell<LruCache<u16, Arc<ClientConfig>>>,
}

impl std::fmt::Debug for OriginConfigs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginConfigs")
            .field("ports", &self.by_port.borrow().len())
            .field("sessions", &self.sessions)
            .finish()
    }
}

impl OriginConfigs {
    /// A worker's set, derived from the process-wide `template`.
    pub fn new(template: Arc<ClientConfig>) -> OriginConfigs {
        OriginConfigs {
            template,
            sessions: Arc::new(OriginSessions::new(ORIGIN_SESSION_HOSTS)),
            by_port: RefCell::new(LruCache::new(
                NonZeroUsize::new(ORIGIN_CONFIG_PORTS).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }

    /// The client configuration for origins on `port` (built now if it is not kept).
    pub fn for_port(&self, port: u16) -> Arc<ClientConfig> {
        let mut by_port = self.by_port.borrow_mut();
        if let Some(config) = by_port.get(&port) {
            return Arc::clone(config);
        }
        let mut config = ClientConfig::clone(&self.template);
        config.resumption = Resumption::store(Arc::new(PortSessions {
            port,
            shared: Arc::clone(&self.sessions),
        }));
        let config = Arc::new(config);
        by_port.put(port, Arc::clone(&config));
        config
    }

    /// Origins with remembered sessions (for tests).
    pub fn remembered(&self) -> usize {
        self.sessions.lock().len()
    }
}

#[cfg(test)]
mod tests;
