use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, Connection, RootCertStore, ServerConnection};

use super::*;
use crate::mitm::ca::{self, CertificateAuthority};

/// One CA for the whole test binary (creating one per test would be slow and pointless).
fn test_ca() -> &'static CertificateAuthority {
    static CA: std::sync::OnceLock<CertificateAuthority> = std::sync::OnceLock::new();
    CA.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("lynxio-leaf-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ca = ca::load_or_create(&dir).unwrap();
        // The CA is in memory now; the files are not needed.
        let _ = std::fs::remove_dir_all(&dir);
        ca
    })
}

fn roots() -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots.add(test_ca().cert_der().clone()).unwrap();
    Arc::new(roots)
}

fn verify_at(leaf: &CertifiedLeaf, name: &str, at: SystemTime) -> Result<(), rustls::Error> {
    let verifier = WebPkiServerVerifier::builder_with_provider(roots(), ca::provider())
        .build()
        .unwrap();
    let name = ServerName::try_from(name).unwrap();
    let at = UnixTime::since_unix_epoch(at.duration_since(UNIX_EPOCH).unwrap());
    verifier
        .verify_server_cert(&leaf.chain()[0], &leaf.chain()[1..], &name, &[], at)
        .map(|_| ())
}

#[test]
fn dns_leaf_verifies_for_its_name_only() {
    let mut cache = LeafCache::new();
    let leaf = cache.get_or_mint(test_ca(), "Example.TEST").unwrap();
    assert_eq!(leaf.host(), "example.test");
    assert_eq!(leaf.chain().len(), 2);
    assert_eq!(&leaf.chain()[1], test_ca().cert_der());
    test_ca().verify(leaf.chain(), "example.test").unwrap();
    let now = SystemTime::now();
    verify_at(&leaf, "example.test", now).unwrap();
    assert!(verify_at(&leaf, "other.test", now).is_err());
    assert!(verify_at(&leaf, "sub.example.test", now).is_err());
    assert!(verify_at(&leaf, "127.0.0.1", now).is_err());
}

#[test]
fn ip_leaves_carry_an_ip_san() {
    let mut cache = LeafCache::new();
    let now = SystemTime::now();
    let v4 = cache.get_or_mint(test_ca(), "127.0.0.1").unwrap();
    assert_eq!(v4.host(), "127.0.0.1");
    verify_at(&v4, "127.0.0.1", now).unwrap();
    assert!(verify_at(&v4, "127.0.0.2", now).is_err());
    let v6 = cache.get_or_mint(test_ca(), "[::1]").unwrap();
    assert_eq!(v6.host(), "::1");
    verify_at(&v6, "::1", now).unwrap();
    assert!(verify_at(&v6, "::2", now).is_err());
    // The same address written differently is the same leaf.
    let again = cache.get_or_mint(test_ca(), "0:0:0:0:0:0:0:1").unwrap();
    assert!(Arc::ptr_eq(&v6, &again));
}

#[test]
fn validity_is_backdated_a_day_and_at_most_397_days() {
    let mut cache = LeafCache::new();
    let leaf = cache.get_or_mint(test_ca(), "time.test").unwrap();
    let now = SystemTime::now();
    let hour = Duration::from_secs(3600);
    let day = 24 * hour;
    verify_at(&leaf, "time.test", now - 23 * hour).unwrap();
    assert!(verify_at(&leaf, "time.test", now - 25 * hour).is_err());
    verify_at(&leaf, "time.test", now + 395 * day).unwrap();
    assert!(verify_at(&leaf, "time.test", now + 396 * day + hour).is_err());
}

#[test]
fn second_lookup_is_a_hit() {
    let mut cache = LeafCache::new();
    let a = cache.get_or_mint(test_ca(), "cache.test").unwrap();
    let b = cache.get_or_mint(test_ca(), "CACHE.test.").unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(cache.minted(), 1);
    assert_eq!(cache.hits(), 1);
    assert_eq!(cache.len(), 1);
    assert!(Arc::ptr_eq(a.server_config(), b.server_config()));
}

/// Every leaf of a cache (one per worker) stores session IDs in the same bounded store, each
/// under its own host: what a leaf stores, a later leaf for the same host (re-minted after an
/// eviction) finds, a leaf for another host (an IP without SNI included) does not; another
/// cache (another worker) has its own store.
#[test]
fn leaves_of_a_cache_share_one_session_store_per_host() {
    let mut cache = LeafCache::with_capacity(1);
    let a = cache.get_or_mint(test_ca(), "a.store.test").unwrap();
    let sa = a.server_config().session_storage.clone();
    assert!(sa.put(b"session-id".to_vec(), b"state".to_vec()));
    assert_eq!(sa.get(b"session-id").as_deref(), Some(&b"state"[..]));
    let b = cache.get_or_mint(test_ca(), "b.store.test").unwrap();
    assert_eq!(b.server_config().session_storage.get(b"session-id"), None);
    let ip = cache.get_or_mint(test_ca(), "192.0.2.7").unwrap();
    assert_eq!(ip.server_config().session_storage.get(b"session-id"), None);
    // `a` was evicted (capacity 1): the re-minted leaf still finds its host's session.
    let again = cache.get_or_mint(test_ca(), "a.store.test").unwrap();
    assert!(!Arc::ptr_eq(&a, &again), "the leaf was re-minted");
    assert_eq!(
        again
            .server_config()
            .session_storage
            .get(b"session-id")
            .as_deref(),
        Some(&b"state"[..])
    );

    let mut other = LeafCache::new();
    let c = other.get_or_mint(test_ca(), "a.store.test").unwrap();
    assert_eq!(c.server_config().session_storage.get(b"session-id"), None);
}

/// Tickets: one key shared by caches (workers) opens a host's ticket on any of them, for that
/// host only; a cache with a key of its own cannot open it.
#[test]
fn tickets_resume_across_workers_for_the_same_host_only() {
    let key = crate::mitm::resume::ticketer().unwrap();
    let mut w0 = LeafCache::with_tickets(8, key.clone());
    let mut w1 = LeafCache::with_tickets(8, key);
    let a0 = w0.get_or_mint(test_ca(), "a.tickets.test").unwrap();
    let a1 = w1.get_or_mint(test_ca(), "a.tickets.test").unwrap();
    let b1 = w1.get_or_mint(test_ca(), "b.tickets.test").unwrap();
    let ticketer = &a0.server_config().ticketer;
    assert!(ticketer.enabled());
    let ticket = ticketer.encrypt(b"state").unwrap();
    let open = |leaf: &CertifiedLeaf| leaf.server_config().ticketer.decrypt(&ticket);
    assert_eq!(open(&a1).as_deref(), Some(&b"state"[..]));
    assert_eq!(open(&b1), None);
    let mut own = LeafCache::new();
    let a2 = own.get_or_mint(test_ca(), "a.tickets.test").unwrap();
    assert_eq!(open(&a2), None);
}

#[test]
fn lru_bound_is_respected() {
    let mut cache = LeafCache::with_capacity(2);
    cache.get_or_mint(test_ca(), "a.test").unwrap();
    cache.get_or_mint(test_ca(), "b.test").unwrap();
    cache.get_or_mint(test_ca(), "a.test").unwrap(); // a is now most recent
    cache.get_or_mint(test_ca(), "c.test").unwrap(); // evicts b
    assert_eq!(cache.len(), 2);
    assert!(cache.contains("a.test"));
    assert!(!cache.contains("b.test"));
    assert!(cache.contains("c.test"));
    assert_eq!((cache.minted(), cache.hits()), (3, 1));
    cache.get_or_mint(test_ca(), "b.test").unwrap();
    assert_eq!((cache.minted(), cache.len()), (4, 2));
    assert_eq!(LeafCache::with_capacity(0).leaves.cap().get(), 1);
}

#[test]
fn bad_hosts_are_errors_not_panics() {
    let mut cache = LeafCache::new();
    for host in [
        "",
        " ",
        "bad host",
        "a..b",
        "-",
        "[::1",
        "exa mple.test",
        "*",
    ] {
        let err = cache.get_or_mint(test_ca(), host).unwrap_err();
        assert!(
            matches!(err, LeafError::InvalidHost { .. }),
            "{host:?}: {err}"
        );
    }
    assert_eq!(cache.minted(), 0);
    assert!(cache.is_empty());
}

#[test]
fn long_names_get_a_san_without_cn() {
    let mut cache = LeafCache::new();
    let host = format!("{}.{}.test", "a".repeat(60), "b".repeat(60));
    let leaf = cache.get_or_mint(test_ca(), &host).unwrap();
    verify_at(&leaf, &host, SystemTime::now()).unwrap();
}

/// Move TLS records between the two sides until neither has anything to say.
fn pump(client: &mut Connection, server: &mut Connection) {
    fn flush(from: &mut Connection, to: &mut Connection) -> bool {
        let mut buf = Vec::new();
        while from.wants_write() {
            from.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            to.read_tls(&mut rd).unwrap();
            to.process_new_packets().unwrap();
        }
        !buf.is_empty()
    }
    for _ in 0..32 {
        let a = flush(client, server);
        let b = flush(server, client);
        if !a && !b {
            return;
        }
    }
    panic!("handshake did not settle");
}

fn handshake(host: &str, alpn: &[&[u8]]) -> (Connection, Connection) {
    let mut cache = LeafCache::new();
    let leaf = cache.get_or_mint(test_ca(), host).unwrap();
    let mut client_config = ClientConfig::builder_with_provider(ca::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots())
        .with_no_client_auth();
    client_config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned()).unwrap();
    let mut client: Connection = ClientConnection::new(Arc::new(client_config), name)
        .unwrap()
        .into();
    let mut server: Connection = ServerConnection::new(Arc::clone(leaf.server_config()))
        .unwrap()
        .into();
    pump(&mut client, &mut server);
    assert!(!client.is_handshaking() && !server.is_handshaking());
    (client, server)
}

fn exchange(client: &mut Connection, server: &mut Connection) {
    use std::io::{Read, Write};
    client
        .writer()
        .write_all(b"GET / HTTP/1.1\r\n\r\n")
        .unwrap();
    pump(client, server);
    let mut got = [0u8; 18];
    server.reader().read_exact(&mut got).unwrap();
    assert_eq!(&got, b"GET / HTTP/1.1\r\n\r\n");
    server.writer().write_all(b"HTTP/1.1 204 \r\n\r\n").unwrap();
    pump(server, client);
    let mut got = [0u8; 17];
    client.reader().read_exact(&mut got).unwrap();
    assert_eq!(&got, b"HTTP/1.1 204 \r\n\r\n");
}

#[test]
fn in_memory_handshake_negotiates_http11_over_h2() {
    let (mut client, mut server) = handshake("handshake.test", &[b"h2", b"http/1.1"]);
    assert_eq!(client.alpn_protocol(), Some(ALPN_HTTP11));
    assert_eq!(server.alpn_protocol(), Some(ALPN_HTTP11));
    exchange(&mut client, &mut server);
}

#[test]
fn in_memory_handshake_for_an_ip_without_alpn() {
    let (mut client, mut server) = handshake("[::1]", &[]);
    assert_eq!(client.alpn_protocol(), None);
    exchange(&mut client, &mut server);
}

#[test]
fn leaf_has_the_documented_shape() {
    use x509_parser::extensions::GeneralName;
    let mut cache = LeafCache::new();
    let dns = cache.get_or_mint(test_ca(), "shape.test").unwrap();
    let ip = cache.get_or_mint(test_ca(), "10.1.2.3").unwrap();
    let (_, d) = x509_parser::parse_x509_certificate(&dns.chain()[0]).unwrap();
    let (_, i) = x509_parser::parse_x509_certificate(&ip.chain()[0]).unwrap();
    assert!(!d.is_ca());
    let san = d.subject_alternative_name().unwrap().unwrap().value;
    assert_eq!(san.general_names, [GeneralName::DNSName("shape.test")]);
    let san = i.subject_alternative_name().unwrap().unwrap().value;
    assert_eq!(
        san.general_names,
        [GeneralName::IPAddress(&[10, 1, 2, 3][..])]
    );
    let cn = d.subject().iter_common_name().next().unwrap();
    assert_eq!(cn.as_str().unwrap(), "shape.test");
    let eku = d.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth);
    let v = d.validity();
    let total = v.not_after.timestamp() - v.not_before.timestamp();
    assert!(total <= LEAF_VALIDITY.as_secs() as i64, "{total}");
    assert!(total > 396 * 24 * 3600, "{total}");
    assert_eq!(d.raw_serial().len(), 16);
    assert_ne!(d.raw_serial(), i.raw_serial());
    assert_eq!(
        d.issuer(),
        x509_parser::parse_x509_certificate(test_ca().cert_der())
            .unwrap()
            .1
            .subject()
    );
}
