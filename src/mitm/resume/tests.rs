use super::*;

use rustls::server::ServerSessionMemoryCache;

fn shared_ticketer() -> Arc<dyn ProducesTickets> {
    ticketer().expect("ticket key")
}

#[test]
fn a_ticket_decrypts_only_for_its_host() {
    let key = shared_ticketer();
    let a = HostTickets::new(key.clone(), "a.test");
    let b = HostTickets::new(key.clone(), "b.test");
    let ip = HostTickets::new(key, "127.0.0.1");
    let ticket = a.encrypt(b"session state").expect("encrypt");
    assert_eq!(a.decrypt(&ticket).as_deref(), Some(&b"session state"[..]));
    assert_eq!(
        b.decrypt(&ticket),
        None,
        "a.test's ticket opened for b.test"
    );
    assert_eq!(
        ip.decrypt(&ticket),
        None,
        "a.test's ticket opened for an IP"
    );
    // A host that is a prefix of another is not confused with it (length-prefixed tag).
    let short = HostTickets::new(shared_ticketer(), "a.tes");
    assert_eq!(short.decrypt(&ticket), None);
    assert!(a.decrypt(b"garbage").is_none());
}

#[test]
fn tickets_from_another_key_do_not_open() {
    let a = HostTickets::new(shared_ticketer(), "a.test");
    let other = HostTickets::new(shared_ticketer(), "a.test");
    let ticket = a.encrypt(b"x").expect("encrypt");
    assert_eq!(other.decrypt(&ticket), None);
}

#[test]
fn expired_and_future_tickets_are_refused() {
    let key = shared_ticketer();
    let a = HostTickets::new(key.clone(), "a.test");
    let seal = |issued: u64| {
        let mut plain = host_tag("a.test").into_vec();
        plain.extend_from_slice(&issued.to_be_bytes());
        plain.extend_from_slice(b"state");
        key.encrypt(&plain).expect("encrypt")
    };
    let now = now_secs();
    assert!(a.decrypt(&seal(now - 60)).is_some());
    assert!(
        a.decrypt(&seal(now - TICKET_LIFETIME.as_secs() - 1))
            .is_none()
    );
    assert!(a.decrypt(&seal(now + 3600)).is_none());
    assert_eq!(u64::from(a.lifetime()), TICKET_LIFETIME.as_secs());
    assert!(a.enabled());
}

#[test]
fn session_ids_are_found_only_under_their_host() {
    let store: Arc<dyn StoresServerSessions> = ServerSessionMemoryCache::new(16);
    let a = HostSessions::new(store.clone(), "a.test");
    let b = HostSessions::new(store, "b.test");
    assert!(a.put(b"id-1".to_vec(), b"value".to_vec()));
    assert_eq!(a.get(b"id-1").as_deref(), Some(&b"value"[..]));
    assert_eq!(b.get(b"id-1"), None);
    assert_eq!(b.take(b"id-1"), None);
    assert_eq!(a.take(b"id-1").as_deref(), Some(&b"value"[..]));
    assert_eq!(a.get(b"id-1"), None);
    assert!(a.can_cache());
}

fn template() -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    Arc::new(config)
}

#[test]
fn one_config_per_port_built_once() {
    let origins = OriginConfigs::new(template());
    let a = origins.for_port(443);
    let again = origins.for_port(443);
    assert!(
        Arc::ptr_eq(&a, &again),
        "the config for a port is built once"
    );
    let other = origins.for_port(8443);
    assert!(!Arc::ptr_eq(&a, &other));
    for port in 0..(ORIGIN_CONFIG_PORTS as u16 + 4) {
        origins.for_port(10_000 + port);
    }
    assert_eq!(origins.by_port.borrow().len(), ORIGIN_CONFIG_PORTS);
}

#[test]
fn origin_sessions_are_keyed_by_port_and_name() {
    let shared = Arc::new(OriginSessions::new(2));
    let p443 = PortSessions {
        port: 443,
        shared: shared.clone(),
    };
    let p8443 = PortSessions {
        port: 8443,
        shared: shared.clone(),
    };
    let a = ServerName::try_from("a.test").expect("name");
    let b = ServerName::try_from("b.test").expect("name");
    p443.set_kx_hint(a.clone(), NamedGroup::X25519);
    assert_eq!(p443.kx_hint(&a), Some(NamedGroup::X25519));
    assert_eq!(p443.kx_hint(&b), None, "another name");
    assert_eq!(p8443.kx_hint(&a), None, "another port");
    assert!(p8443.take_tls13_ticket(&a).is_none());
    // Bounded: a third origin evicts the least recently used one.
    p443.set_kx_hint(b.clone(), NamedGroup::secp256r1);
    p8443.set_kx_hint(a.clone(), NamedGroup::secp384r1);
    assert_eq!(shared.lock().len(), 2);
    assert_eq!(p443.kx_hint(&a), None, "the oldest origin was forgotten");
    assert_eq!(p8443.kx_hint(&a), Some(NamedGroup::secp384r1));
}
