//! Leaf certificates minted on demand from the root CA, one per intercepted host, and the rustls
//! server configuration that presents each. A [`LeafCache`] belongs to one worker (no locks): a
//! bounded LRU from a normalized host key (lowercase DNS name without a trailing dot, or the
//! canonical text of an IP address) to an [`Arc<CertifiedLeaf>`], so repeated handshakes to a
//! host cost no key generation. A leaf is ECDSA P-256 with a SAN for the DNS name (or an IP SAN),
//! CN = host (when it fits), EKU serverAuth, a random serial, and validity backdated a day and
//! 397 days long in total. Its `ServerConfig` (ring provider, ALPN `http/1.1` only) is built once
//! with the leaf, and every leaf of a cache shares ONE bounded session-ID store
//! ([`SESSION_CACHE_ENTRIES`], the worker's own: its lock is never contended) and the process's
//! rotating ticket key, so the memory resumption costs is bounded per worker however many hosts
//! are intercepted; each leaf sees both through [`super::resume`]'s host binding, so a session
//! resumes only for the host it was made for (also without SNI), whichever leaf object serves
//! that host now (a re-minted one included). Every failure is a [`LeafError`] value, never a
//! panic: the caller answers 502.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use lru::LruCache;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::{ProducesTickets, ServerSessionMemoryCache, StoresServerSessions};

use super::ca::{self, CertificateAuthority};
use super::resume::{self, HostSessions, HostTickets};

/// Leaves kept per worker before the least recently used one is dropped.
pub const LEAF_CACHE_CAPACITY: usize = 1024;
/// Total validity of a leaf (the CA/Browser Forum maximum for publicly trusted certificates).
pub const LEAF_VALIDITY: Duration = Duration::from_secs(397 * 24 * 3600);
/// The only ALPN protocol offered to intercepted clients.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";
/// TLS sessions kept for resumption per worker, shared by all its leaves (rustls' default is 256
/// per server config, which would be 256 × [`LEAF_CACHE_CAPACITY`] per worker). A stored session
/// is a few hundred bytes, so this bounds resumption state near 1 MiB per worker.
pub const SESSION_CACHE_ENTRIES: usize = 4096;
/// X.520 upper bound for a CommonName; longer hosts get a SAN only.
const MAX_CN_LEN: usize = 64;

/// Why a leaf could not be minted for a host.
#[derive(Debug, thiserror::Error)]
pub enum LeafError {
    #[error("cannot mint a certificate for {host:?}: not a DNS name or IP address")]
    InvalidHost { host: String },
    #[error("cannot mint a certificate for {host}: {reason}")]
    Generate { host: String, reason: String },
    #[error("cannot build the TLS server config for {host}: {source}")]
    Tls { host: String, source: rustls::Error },
}

/// A minted leaf: its chain (leaf, then CA), its private key and a ready server config.
pub struct CertifiedLeaf {
    host: String,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    server_config: Arc<ServerConfig>,
}

impl std::fmt::Debug for CertifiedLeaf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertifiedLeaf")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl CertifiedLeaf {
    /// The normalized host this leaf was minted for.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The certificate chain presented to clients: the leaf, then the CA.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The leaf's private key (PKCS#8).
    pub fn key(&self) -> &PrivateKeyDer<'static> {
        &self.key
    }

    /// The rustls server config presenting this leaf (ALPN `http/1.1` only).
    pub fn server_config(&self) -> &Arc<ServerConfig> {
        &self.server_config
    }
}

/// Per-worker bounded LRU of minted leaves, with counters for tests and metrics.
pub struct LeafCache {
    leaves: LruCache<String, Arc<CertifiedLeaf>>,
    provider: Arc<CryptoProvider>,
    /// The one session-ID store every leaf's server config uses (through [`HostSessions`]).
    sessions: Arc<dyn StoresServerSessions>,
    /// The ticket key every leaf's server config uses (through [`HostTickets`]).
    tickets: Arc<dyn ProducesTickets>,
    minted: u64,
    hits: u64,
}

impl Default for LeafCache {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for LeafCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeafCache")
            .field("len", &self.leaves.len())
            .field("cap", &self.leaves.cap())
            .field("minted", &self.minted)
            .field("hits", &self.hits)
            .finish()
    }
}

impl LeafCache {
    /// A cache holding up to [`LEAF_CACHE_CAPACITY`] leaves, with a ticket key of its own.
    pub fn new() -> Self {
        Self::with_capacity(LEAF_CACHE_CAPACITY)
    }

    /// A cache holding up to `capacity` leaves (at least one), with a ticket key of its own
    /// (none if the system's random generator fails: session IDs still resume).
    pub fn with_capacity(capacity: usize) -> Self {
        let tickets = resume::ticketer().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "no TLS session tickets: cannot make a ticket key");
            Arc::new(NoTickets)
        });
        Self::with_tickets(capacity, tickets)
    }

    /// A cache holding up to `capacity` leaves whose sessions are resumable through `tickets`
    /// (shared with other caches: a ticket from one worker resumes on any).
    pub fn with_tickets(capacity: usize, tickets: Arc<dyn ProducesTickets>) -> Self {
        LeafCache {
            leaves: LruCache::new(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN)),
            provider: ca::provider(),
            sessions: ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES),
            tickets,
            minted: 0,
            hits: 0,
        }
    }

    /// The leaf for `host` (a DNS name or IP address, optionally bracketed or with a trailing
    /// dot; case-insensitive): from the cache, or minted now and cached.
    pub fn get_or_mint(
        &mut self,
        ca: &CertificateAuthority,
        host: &str,
    ) -> Result<Arc<CertifiedLeaf>, LeafError> {
        let (key, name) = normalize(host)?;
        if let Some(leaf) = self.leaves.get(&key) {
            self.hits += 1;
            return Ok(Arc::clone(leaf));
        }
        let shared = Shared {
            provider: &self.provider,
            sessions: &self.sessions,
            tickets: &self.tickets,
        };
        let leaf = Arc::new(mint(ca, &shared, key.clone(), name)?);
        self.minted += 1;
        self.leaves.put(key, Arc::clone(&leaf));
        Ok(leaf)
    }

    /// Leaves minted (each one a key generation) since the cache was made.
    pub fn minted(&self) -> u64 {
        self.minted
    }

    /// Lookups answered from the cache.
    pub fn hits(&self) -> u64 {
        self.hits
    }

    /// Leaves currently cached.
    pub fn len(&self) -> usize {
        self.leaves.len()
    }

    /// True when no leaf is cached.
    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty()
    }

    /// Whether a leaf for `host` is cached (does not touch the LRU order or the counters).
    pub fn contains(&self, host: &str) -> bool {
        normalize(host).is_ok_and(|(key, _)| self.leaves.contains(&key))
    }
}

/// What a host becomes in the certificate.
enum Name {
    Dns,
    Ip(IpAddr),
}

/// The cache key for `host` and whether it is a DNS name or an IP address.
fn normalize(host: &str) -> Result<(String, Name), LeafError> {
    let invalid = || LeafError::InvalidHost {
        host: host.to_owned(),
    };
    let trimmed = host.trim();
    let unbracketed = trimmed
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(trimmed);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Ok((ip.to_string(), Name::Ip(ip)));
    }
    let name = trimmed.strip_suffix('.').unwrap_or(trimmed);
    let name = name.to_ascii_lowercase();
    match ServerName::try_from(name.as_str()) {
        Ok(ServerName::DnsName(_)) => Ok((name, Name::Dns)),
        _ => Err(invalid()),
    }
}

/// What every leaf of a cache is built with.
struct Shared<'a> {
    provider: &'a Arc<CryptoProvider>,
    sessions: &'a Arc<dyn StoresServerSessions>,
    tickets: &'a Arc<dyn ProducesTickets>,
}

/// Tickets off (only when no ticket key could be made).
#[derive(Debug)]
struct NoTickets;

impl ProducesTickets for NoTickets {
    fn enabled(&self) -> bool {
        false
    }

    fn lifetime(&self) -> u32 {
        0
    }

    fn encrypt(&self, _plain: &[u8]) -> Option<Vec<u8>> {
        None
    }

    fn decrypt(&self, _cipher: &[u8]) -> Option<Vec<u8>> {
        None
    }
}

/// Generate a key and a CA-signed certificate for `host`, and its server config.
fn mint(
    ca: &CertificateAuthority,
    shared: &Shared<'_>,
    host: String,
    name: Name,
) -> Result<CertifiedLeaf, LeafError> {
    let generate = |reason: String| LeafError::Generate {
        host: host.clone(),
        reason,
    };
    let provider = shared.provider;
    let key_pair = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| generate(format!("key generation: {e}")))?;
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![match name {
        Name::Ip(ip) => SanType::IpAddress(ip),
        Name::Dns => SanType::DnsName(
            host.clone()
                .try_into()
                .map_err(|e| generate(format!("SAN: {e}")))?,
        ),
    }];
    params.distinguished_name = DistinguishedName::new();
    if host.len() <= MAX_CN_LEN {
        params
            .distinguished_name
            .push(DnType::CommonName, host.as_str());
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.serial_number =
        Some(ca::random_serial(provider).map_err(|e| generate(format!("serial: {e}")))?);
    ca::set_validity(&mut params, LEAF_VALIDITY);
    let cert = params
        .signed_by(&key_pair, ca.issuer())
        .map_err(|e| generate(format!("signing: {e}")))?;

    let chain = vec![cert.der().clone(), ca.cert_der().clone()];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der()));
    let tls = |source| LeafError::Tls {
        host: host.clone(),
        source,
    };
    let mut server_config = ServerConfig::builder_with_provider(Arc::clone(provider))
        .with_safe_default_protocol_versions()
        .map_err(tls)?
        .with_no_client_auth()
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(tls)?;
    server_config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    server_config.session_storage = Arc::new(HostSessions::new(Arc::clone(shared.sessions), &host));
    server_config.ticketer = Arc::new(HostTickets::new(Arc::clone(shared.tickets), &host));
    Ok(CertifiedLeaf {
        host,
        chain,
        key,
        server_config: Arc::new(server_config),
    })
}

#[cfg(test)]
mod tests;
