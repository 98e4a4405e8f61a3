//! TLS session resumption through interception, black-box: a client that keeps its sessions
//! reconnects with a TLS 1.3 ticket or a TLS 1.2 session ID and is resumed by lynxio; lynxio's
//! second connection to an origin resumes the first one's session (seen by the origin); and no
//! session crosses hosts: a client offering host A's ticket for host B (a DNS name, or an IP
//! address without SNI) gets a full handshake, and lynxio never offers an origin's session to
//! another name or port. `/metrics` counts full and resumed handshakes per side.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientSessionMemoryCache, ClientSessionStore, Resumption, Tls12Resumption};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, HandshakeKind, NamedGroup, SignatureScheme};

use crate::common::*;
use crate::fixture::*;

/// A client config trusting `roots`, keeping up to 32 sessions (tickets and session IDs).
fn resuming_client(roots: rustls::RootCertStore) -> Arc<ClientConfig> {
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    cfg.resumption = Resumption::in_memory_sessions(32);
    Arc::new(cfg)
}

/// CONNECT `target`, TLS as `name` with `config`, one GET (which also reads the session
/// tickets the server sent after the handshake); returns how the handshake went.
fn connect_and_get(
    fx: &MitmFixture,
    target: &str,
    name: &str,
    config: &Arc<ClientConfig>,
) -> HandshakeKind {
    let mut sock = fx.proxy().connect();
    sock.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .expect("write CONNECT");
    read_established(&mut sock);
    let tls = tls_with(sock, name, config.clone())
        .unwrap_or_else(|e| panic!("handshake as {name} through lynxio: {e}"));
    let kind = tls.conn.handshake_kind().expect("handshake done");
    let mut r = Reader::new(tls);
    get_ok(&mut r, "/resume", target);
    kind
}

/// The proxy's `/metrics` text.
fn metrics(admin: SocketAddr) -> String {
    let mut s = connect(admin);
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        .expect("write /metrics");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// The value of `lynxio_tls_handshakes_total` for worker 0, `side` and `kind`.
fn handshakes(admin: SocketAddr, side: &str, kind: &str) -> u64 {
    let text = metrics(admin);
    let series =
        format!("lynxio_tls_handshakes_total{{worker=\"0\",side=\"{side}\",kind=\"{kind}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in /metrics:\n{text}"))
}

fn with_admin(fx: &mut MitmFixture) -> SocketAddr {
    fx.flags
        .extend(["--admin".to_owned(), "127.0.0.1:0".to_owned()]);
    fx.restart();
    fx.proxy().admin.expect("admin address")
}

/// A TLS 1.3 client that kept lynxio's ticket is resumed on its next connection (leaf cache,
/// ticket key and host binding all line up), and the metrics count one full and one resumed
/// client handshake.
pub fn client_resumes_with_ticket(driver: &str) {
    let mut fx = MitmFixture::start("resume-ticket", driver, "localhost", Upstream::TestCa, true);
    let admin = with_admin(&mut fx);
    let target = fx.localhost_target();
    let client = resuming_client(roots_of(&[fx.ca()]));
    assert_eq!(
        connect_and_get(&fx, &target, "localhost", &client),
        HandshakeKind::Full
    );
    assert_eq!(
        connect_and_get(&fx, &target, "localhost", &client),
        HandshakeKind::Resumed,
        "the second connection with lynxio's ticket was not resumed"
    );
    assert_eq!(handshakes(admin, "client", "full"), 1);
    assert_eq!(handshakes(admin, "client", "resumed"), 1);
}

/// A TLS 1.2 client without tickets is resumed by session ID.
pub fn client_resumes_with_session_id(driver: &str) {
    let fx = MitmFixture::start("resume-id", driver, "localhost", Upstream::TestCa, true);
    let target = fx.localhost_target();
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("TLS 1.2")
        .with_root_certificates(roots_of(&[fx.ca()]))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    cfg.resumption =
        Resumption::in_memory_sessions(32).tls12_resumption(Tls12Resumption::SessionIdOnly);
    let client = Arc::new(cfg);
    assert_eq!(
        connect_and_get(&fx, &target, "localhost", &client),
        HandshakeKind::Full
    );
    assert_eq!(
        connect_and_get(&fx, &target, "localhost", &client),
        HandshakeKind::Resumed,
        "the second TLS 1.2 connection with lynxio's session ID was not resumed"
    );
}

/// lynxio's second connection to an origin (a new intercepted session) resumes the session of
/// its first one: the origin sees a resumed handshake, and the metrics count it.
pub fn origin_reconnect_is_resumed(driver: &str) {
    let mut fx = MitmFixture::start("resume-origin", driver, "localhost", Upstream::TestCa, true);
    let admin = with_admin(&mut fx);
    let target = fx.localhost_target();
    let roots = roots_of(&[fx.ca()]);
    let handshake_seen = |what: &str| {
        let tls = fx
            .tls(&target, "localhost", roots.clone())
            .unwrap_or_else(|e| panic!("{what}: handshake: {e}"));
        let mut r = Reader::new(tls);
        let got = get_ok(&mut r, "/origin", &target);
        got.header("x-handshake").unwrap_or_default().to_owned()
    };
    assert_eq!(handshake_seen("first"), "full");
    assert_eq!(
        handshake_seen("second"),
        "resumed",
        "lynxio's second connection to the origin did not resume"
    );
    assert_eq!(handshakes(admin, "origin", "full"), 1);
    assert_eq!(handshakes(admin, "origin", "resumed"), 1);
}

/// A client session store that offers whatever it has to every server (as if host A's
/// session were reused for host B).
#[derive(Debug)]
struct Promiscuous(ClientSessionMemoryCache);

fn any() -> ServerName<'static> {
    ServerName::try_from("any.test").expect("name")
}

impl ClientSessionStore for Promiscuous {
    fn set_kx_hint(&self, _: ServerName<'static>, group: NamedGroup) {
        self.0.set_kx_hint(any(), group);
    }

    fn kx_hint(&self, _: &ServerName<'_>) -> Option<NamedGroup> {
        self.0.kx_hint(&any())
    }

    fn set_tls12_session(
        &self,
        _: ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        self.0.set_tls12_session(any(), value);
    }

    fn tls12_session(&self, _: &ServerName<'_>) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.0.tls12_session(&any())
    }

    fn remove_tls12_session(&self, _: &ServerName<'static>) {
        self.0.remove_tls12_session(&any());
    }

    fn insert_tls13_ticket(
        &self,
        _: ServerName<'static>,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        self.0.insert_tls13_ticket(any(), value);
    }

    fn take_tls13_ticket(
        &self,
        _: &ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        self.0.take_tls13_ticket(&any())
    }
}

/// Accepts any certificate (signatures still checked): lets the test reach a full handshake
/// with a leaf for another name than the one the client dialled, to see which kind it gets.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client whose one session store offers every session to every server.
fn promiscuous_client() -> Arc<ClientConfig> {
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    cfg.resumption = Resumption::store(Arc::new(Promiscuous(ClientSessionMemoryCache::new(32))));
    Arc::new(cfg)
}

/// Client side: host A's ticket offered for host B is refused (full handshake) — by SNI
/// (a.test vs b.test) and without SNI (IP 127.0.0.1 vs the CONNECT host `localhost`, where
/// only lynxio's host binding tells them apart) — while it still resumes host A.
pub fn client_sessions_never_cross_hosts(driver: &str) {
    let fx = MitmFixture::start("resume-hosts", driver, "*", Upstream::Insecure, true);
    let ip_target = fx.origin.origin.addr.to_string();
    let name_target = fx.localhost_target();
    let client = promiscuous_client();
    let kind = |target: &str, name: &str| connect_and_get(&fx, target, name, &client);

    // The store hands out its newest ticket; each step first shows a resumption works, then
    // offers that host's newest ticket to another host.
    assert_eq!(kind(&ip_target, "a.test"), HandshakeKind::Full);
    assert_eq!(
        kind(&ip_target, "a.test"),
        HandshakeKind::Resumed,
        "the test's store did not offer a session (the test would prove nothing)"
    );
    assert_eq!(
        kind(&ip_target, "b.test"),
        HandshakeKind::Full,
        "a.test's session resumed for b.test"
    );
    // No SNI: the leaf is for the CONNECT host.
    assert_eq!(kind(&ip_target, "127.0.0.1"), HandshakeKind::Full);
    assert_eq!(kind(&ip_target, "127.0.0.1"), HandshakeKind::Resumed);
    assert_eq!(
        kind(&name_target, "127.0.0.1"),
        HandshakeKind::Full,
        "a session of host 127.0.0.1 resumed for host localhost (no SNI)"
    );
}

/// Origin side: lynxio offers an origin's session only to the same name and port — never to
/// the same origin under another name (IP vs `localhost`), nor to another port.
pub fn origin_sessions_never_cross_hosts(driver: &str) {
    let mut fx = MitmFixture::start("resume-origins", driver, "*", Upstream::TestCa, true);
    let other = TlsOrigin::start("resume-origins-2", driver);
    fx.flags.extend([
        "--upstream-ca".to_owned(),
        path_str(&other.ca_file).to_owned(),
        "--resolve".to_owned(),
        other.resolve(),
    ]);
    fx.restart();
    let roots = roots_of(&[fx.ca()]);
    let seen = |target: &str, name: &str| {
        let tls = fx
            .tls(target, name, roots.clone())
            .unwrap_or_else(|e| panic!("{target} as {name}: handshake: {e}"));
        let mut r = Reader::new(tls);
        let got = get_ok(&mut r, "/o", target);
        got.header("x-handshake").unwrap_or_default().to_owned()
    };
    let by_name = fx.localhost_target();
    let by_ip = fx.origin.origin.addr.to_string();
    assert_eq!(seen(&by_name, "localhost"), "full");
    assert_eq!(seen(&by_ip, "127.0.0.1"), "full");
    assert_eq!(
        fx.origin.session_lookups(),
        0,
        "lynxio offered localhost's session to 127.0.0.1"
    );
    let other_port = format!("localhost:{}", other.port());
    assert_eq!(seen(&other_port, "localhost"), "full");
    assert_eq!(
        other.session_lookups(),
        0,
        "lynxio offered a session of another port"
    );
    assert_eq!(seen(&by_name, "localhost"), "resumed");
    assert_eq!(seen(&by_ip, "127.0.0.1"), "resumed");
    assert_eq!(seen(&other_port, "localhost"), "resumed");
}
