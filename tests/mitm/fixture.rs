//! The MITM test fixture: a rustls origin whose certificate is signed by a fresh test CA, a
//! client that trusts only lynxio's root, and a proxy started with `--mitm` and the flags a
//! test asks for.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, StreamOwned};
use x509_parser::extensions::GeneralName;

/// The one acceptable answer to a CONNECT whose origin is reachable.
pub const ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";
/// Size of the POST body sent through the interception.
pub const POST_LEN: usize = 100 * 1024;

/// A client-side TLS stream over the proxy connection.
pub type Tls = StreamOwned<ClientConnection, TcpStream>;

// ---- PKI ----

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A path under the temp dir unique to this process, test and driver (removed first).
pub fn temp_path(name: &str, driver: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!(
        "lynxio-mitm-{}-{name}-{driver}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&p);
    let _ = std::fs::remove_file(&p);
    p
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

// ---- the TLS origin ----

/// A TLS origin on 127.0.0.1 with a certificate for `localhost` and IP 127.0.0.1 signed by a
/// fresh test CA (or self-signed: [`OriginCert`]). It answers every request with `200`, a body `METHOD TARGET` (followed by a
/// newline and the request body when there is one), `X-Sni:` the SNI it received (`-` for
/// none) and `X-Handshake: full|resumed` (its connection's TLS handshake); keep-alive. Its
/// sessions are resumable (rustls' stateful TLS 1.3 tickets); every resumption a client offers
/// is counted ([`TlsOrigin::session_lookups`]).
pub struct TlsOrigin {
    pub origin: Origin,
    /// The test CA's certificate PEM (or the self-signed certificate's), written to a file for
    /// `--upstream-ca`.
    pub ca_file: PathBuf,
    pub ca_der: CertificateDer<'static>,
    /// The origin's own leaf, as presented on the wire.
    pub leaf_der: CertificateDer<'static>,
    /// Requests answered so far (all connections).
    pub requests: Arc<AtomicUsize>,
    /// Sessions clients offered to resume (lookups in the origin's session store).
    pub lookups: Arc<AtomicUsize>,
}

/// The origin's session store, counting lookups (each one a session a client offered).
#[derive(Debug)]
struct CountingStore {
    inner: Arc<dyn rustls::server::StoresServerSessions>,
    lookups: Arc<AtomicUsize>,
}

impl rustls::server::StoresServerSessions for CountingStore {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.inner.put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.inner.take(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

/// Which certificate a [`TlsOrigin`] serves.
#[derive(Clone, Copy)]
pub enum OriginCert {
    /// A leaf signed by a fresh test CA (the CA goes in `ca_file`).
    TestCa,
    /// A self-signed certificate marked CA:TRUE, as `openssl req -x509` makes (the
    /// certificate itself goes in `ca_file`: passing it to `--upstream-ca` pins it).
    SelfSignedCa,
}

impl TlsOrigin {
    pub fn start(name: &str, driver: &str) -> TlsOrigin {
        TlsOrigin::start_with(name, driver, OriginCert::TestCa)
    }

    pub fn start_with(name: &str, driver: &str, cert: OriginCert) -> TlsOrigin {
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let leaf_key = KeyPair::generate().expect("leaf key");
        let mut leaf_params = CertificateParams::new(names).expect("leaf params");
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let (leaf_der, ca_der, ca_pem) = match cert {
            OriginCert::TestCa => {
                let mut ca_params =
                    CertificateParams::new(Vec::<String>::new()).expect("ca params");
                ca_params.distinguished_name = DistinguishedName::new();
                ca_params
                    .distinguished_name
                    .push(DnType::CommonName, "lynxio mitm test origin CA");
                ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
                let ca =
                    CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key"))
                        .expect("ca cert");
                let leaf = leaf_params.signed_by(&leaf_key, &ca).expect("leaf cert");
                (leaf.der().clone(), ca.der().clone(), ca.pem())
            }
            OriginCert::SelfSignedCa => {
                leaf_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
                let cert = leaf_params
                    .self_signed(&leaf_key)
                    .expect("self-signed cert");
                (cert.der().clone(), cert.der().clone(), cert.pem())
            }
        };
        let key = PrivatePkcs8KeyDer::from(leaf_key.serialize_der());
        let mut cfg = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![leaf_der.clone()], PrivateKeyDer::Pkcs8(key))
            .expect("server config");
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let lookups = Arc::new(AtomicUsize::new(0));
        cfg.session_storage = Arc::new(CountingStore {
            inner: rustls::server::ServerSessionMemoryCache::new(256),
            lookups: lookups.clone(),
        });
        let cfg = Arc::new(cfg);

        let ca_file = temp_path(&format!("{name}-origin-ca.pem"), driver);
        std::fs::write(&ca_file, ca_pem).expect("write test CA");

        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let origin = Origin::start(move |sock| {
            let Ok(conn) = rustls::ServerConnection::new(cfg.clone()) else {
                return;
            };
            let mut r = Reader::new(StreamOwned::new(conn, sock));
            for _ in 0..10_000 {
                // A failed handshake or EOF ends the connection.
                let Some(req) = r.request() else { return };
                counter.fetch_add(1, Ordering::SeqCst);
                if req
                    .header("upgrade")
                    .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
                {
                    return websocket_echo(r, &req);
                }
                let conn = &r.get_mut().conn;
                let sni = conn.server_name().unwrap_or("-").to_owned();
                let handshake = match conn.handshake_kind() {
                    Some(rustls::HandshakeKind::Resumed) => "resumed",
                    _ => "full",
                };
                let mut body = format!("{} {}", req.method, req.target).into_bytes();
                if !req.body.is_empty() {
                    body.push(b'\n');
                    body.extend_from_slice(&req.body);
                }
                let mut resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Sni: {sni}\r\n\
                     X-Handshake: {handshake}\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                resp.extend_from_slice(&body);
                let s = r.get_mut();
                if s.write_all(&resp).and_then(|()| s.flush()).is_err() {
                    return;
                }
                if req
                    .header("connection")
                    .is_some_and(|v| v.eq_ignore_ascii_case("close"))
                {
                    s.conn.send_close_notify();
                    let _ = s.flush();
                    return;
                }
            }
        });
        TlsOrigin {
            origin,
            ca_file,
            ca_der,
            leaf_der,
            requests,
            lookups,
        }
    }

    pub fn port(&self) -> u16 {
        self.origin.addr.port()
    }

    /// `--resolve` flag value mapping `localhost:PORT` to 127.0.0.1.
    pub fn resolve(&self) -> String {
        format!("localhost:{}:127.0.0.1", self.port())
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Sessions clients have offered to resume so far.
    pub fn session_lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }
}

/// Accepts a WebSocket handshake on an origin's TLS stream and echoes data messages until the
/// close handshake.
pub fn websocket_echo(
    mut r: Reader<StreamOwned<rustls::ServerConnection, TcpStream>>,
    req: &Message,
) {
    let key = req.header("sec-websocket-key").unwrap_or_default();
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    let s = r.get_mut();
    if s.write_all(answer.as_bytes())
        .and_then(|()| s.flush())
        .is_err()
    {
        return;
    }
    let (stream, rest) = r.into_parts();
    let mut ws = tungstenite::WebSocket::from_partially_read(
        stream,
        rest,
        tungstenite::protocol::Role::Server,
        None,
    );
    for _ in 0..1000 {
        match ws.read() {
            Ok(m @ (tungstenite::Message::Text(_) | tungstenite::Message::Binary(_))) => {
                if ws.send(m).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

impl Drop for TlsOrigin {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ca_file);
    }
}

// ---- the client ----

pub fn roots_of(ders: &[CertificateDer<'static>]) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    for der in ders {
        roots.add(der.clone()).expect("add root");
    }
    roots
}

/// lynxio's root CA as written to `DIR/ca.pem`.
pub fn lynxio_ca(dir: &Path) -> CertificateDer<'static> {
    let path = dir.join("ca.pem");
    assert!(
        path.exists(),
        "{} was not created at startup with interception configured",
        path.display()
    );
    CertificateDer::from_pem_file(&path)
        .unwrap_or_else(|e| panic!("{} is not a PEM certificate: {e}", path.display()))
}

pub fn client_config(roots: RootCertStore) -> Arc<ClientConfig> {
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(cfg)
}

/// Reads the proxy's answer to a CONNECT, which must be exactly [`ESTABLISHED`] with nothing
/// behind it (the client speaks first in TLS).
pub fn read_established(s: &mut TcpStream) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte, so no TLS byte is consumed by mistake.
    for _ in 0..4096 {
        if buf.len() >= ESTABLISHED.len() || buf.ends_with(b"\r\n\r\n") {
            break;
        }
        match s.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => buf.push(byte[0]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!(
                "no complete answer to CONNECT ({e}); got {:?}",
                String::from_utf8_lossy(&buf)
            ),
        }
    }
    assert_eq!(
        String::from_utf8_lossy(&buf),
        String::from_utf8_lossy(ESTABLISHED),
        "the answer to CONNECT"
    );
}

/// CONNECT `target` through `proxy`, then a TLS handshake as `name` with `roots` and ALPN
/// `[h2, http/1.1]`. `Err` carries the handshake error.
pub fn tls_through(
    proxy: &Proxy,
    target: &str,
    name: &str,
    roots: RootCertStore,
) -> Result<Tls, String> {
    let mut sock = proxy.connect();
    sock.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .expect("write CONNECT");
    read_established(&mut sock);
    tls_over(sock, name, roots)
}

/// A TLS handshake as `name` over `sock`.
pub fn tls_over(sock: TcpStream, name: &str, roots: RootCertStore) -> Result<Tls, String> {
    tls_with(sock, name, client_config(roots))
}

/// A TLS handshake as `name` over `sock` with `config` (its session store, when it keeps one).
pub fn tls_with(sock: TcpStream, name: &str, config: Arc<ClientConfig>) -> Result<Tls, String> {
    let server_name = ServerName::try_from(name.to_owned()).expect("server name");
    let conn = ClientConnection::new(config, server_name).expect("client conn");
    let mut tls = StreamOwned::new(conn, sock);
    for _ in 0..100 {
        if !tls.conn.is_handshaking() {
            return Ok(tls);
        }
        match tls.conn.complete_io(&mut tls.sock) {
            Ok((0, 0)) if tls.conn.is_handshaking() => {
                return Err("EOF during the TLS handshake".to_owned());
            }
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("the TLS handshake did not finish".to_owned())
}

/// Sends one request (origin-form, `Host: host`) and reads the final response.
pub fn request(r: &mut Reader<Tls>, method: &str, path: &str, host: &str, body: &[u8]) -> Message {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    if method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    let s = r.get_mut();
    s.write_all(&bytes)
        .and_then(|()| s.flush())
        .unwrap_or_else(|e| panic!("{method} {path}: write: {e}"));
    r.final_response(method)
        .unwrap_or_else(|| panic!("{method} {path}: no complete response"))
        .1
}

/// The SANs of a DER certificate: (DNS names, IP addresses as raw bytes).
pub fn sans(der: &CertificateDer<'_>) -> (Vec<String>, Vec<Vec<u8>>) {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("parse the presented leaf");
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    if let Some(ext) = cert
        .subject_alternative_name()
        .expect("well-formed SAN extension")
    {
        for n in &ext.value.general_names {
            match n {
                GeneralName::DNSName(d) => dns.push((*d).to_owned()),
                GeneralName::IPAddress(ip) => ips.push(ip.to_vec()),
                _ => {}
            }
        }
    }
    (dns, ips)
}

pub fn presented_leaf(tls: &Tls) -> CertificateDer<'static> {
    tls.conn
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("the server presented a certificate")
        .clone()
}

pub fn assert_via(m: &Message, what: &str) {
    assert!(
        m.header("via").is_some_and(|v| v.contains("lynxio")),
        "{what}: intercepted response without `Via: 1.1 lynxio`: {:?}",
        String::from_utf8_lossy(&m.raw_head)
    );
}

/// What a direct client (trusting the test CA, SNI localhost) gets for one request.
pub fn direct(origin: &TlsOrigin, method: &str, path: &str, body: &[u8]) -> Message {
    let tls = tls_over(
        connect(origin.origin.addr),
        "localhost",
        roots_of(std::slice::from_ref(&origin.ca_der)),
    )
    .expect("direct handshake with the origin");
    let mut r = Reader::new(tls);
    request(&mut r, method, path, "localhost", body)
}

// ---- fixtures ----

/// A temp dir (lynxio's `--ca-dir`) removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str, driver: &str) -> TempDir {
        TempDir(temp_path(name, driver))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        path_str(&self.0)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How lynxio is told to verify the origin's certificate.
#[derive(Clone, Copy)]
pub enum Upstream {
    /// `--upstream-ca` with the origin's test CA.
    TestCa,
    /// `--insecure-upstream`.
    Insecure,
    /// Neither flag: the origin cannot be verified.
    Unverified,
}

/// A [`TlsOrigin`] named `NAME`, a temp `--ca-dir` `NAME-ca`, and a proxy started with
/// `--mitm RULE --ca-dir DIR`, then the [`Upstream`] flag, then (when asked) `--resolve` for
/// localhost. On drop the proxy stops first, then the dir goes, then the origin.
pub struct MitmFixture {
    pub driver: String,
    pub flags: Vec<String>,
    pub proxy: Option<Proxy>,
    pub dir: TempDir,
    pub origin: TlsOrigin,
}

impl MitmFixture {
    pub fn start(
        name: &str,
        driver: &str,
        rule: &str,
        upstream: Upstream,
        resolve: bool,
    ) -> MitmFixture {
        let origin = TlsOrigin::start(name, driver);
        MitmFixture::with_origin(origin, name, driver, rule, upstream, resolve)
    }

    /// [`MitmFixture::start`] with an origin the test made.
    pub fn with_origin(
        origin: TlsOrigin,
        name: &str,
        driver: &str,
        rule: &str,
        upstream: Upstream,
        resolve: bool,
    ) -> MitmFixture {
        let dir = TempDir::new(&format!("{name}-ca"), driver);
        let mut flags = vec![
            "--mitm".to_owned(),
            rule.to_owned(),
            "--ca-dir".to_owned(),
            dir.as_str().to_owned(),
        ];
        match upstream {
            Upstream::TestCa => flags.extend([
                "--upstream-ca".to_owned(),
                path_str(&origin.ca_file).to_owned(),
            ]),
            Upstream::Insecure => flags.push("--insecure-upstream".to_owned()),
            Upstream::Unverified => {}
        }
        if resolve {
            flags.extend(["--resolve".to_owned(), origin.resolve()]);
        }
        let mut fx = MitmFixture {
            driver: driver.to_owned(),
            flags,
            proxy: None,
            dir,
            origin,
        };
        fx.restart();
        fx
    }

    /// Stops the running proxy (if any), then starts it again with the same flags.
    pub fn restart(&mut self) {
        self.proxy = None;
        let flags: Vec<&str> = self.flags.iter().map(String::as_str).collect();
        self.proxy = Some(Proxy::start(&self.driver, &flags));
    }

    pub fn proxy(&self) -> &Proxy {
        self.proxy.as_ref().expect("the proxy is running")
    }

    pub fn stop_and_log(&mut self) -> String {
        self.proxy
            .take()
            .expect("the proxy is running")
            .stop_and_log()
    }

    /// lynxio's root CA (`DIR/ca.pem`).
    pub fn ca(&self) -> CertificateDer<'static> {
        lynxio_ca(self.dir.path())
    }

    /// `localhost:PORT`, the CONNECT target resolved through `--resolve`.
    pub fn localhost_target(&self) -> String {
        format!("localhost:{}", self.origin.port())
    }

    /// [`tls_through`] this fixture's proxy.
    pub fn tls(&self, target: &str, name: &str, roots: RootCertStore) -> Result<Tls, String> {
        tls_through(self.proxy(), target, name, roots)
    }
}

impl Drop for MitmFixture {
    fn drop(&mut self) {
        // The proxy before its CA dir; the fields (dir, then origin) drop after this.
        self.proxy = None;
    }
}

/// `GET path` over `r`, which must be answered `200` with the origin's body `GET path`.
pub fn get_ok(r: &mut Reader<Tls>, path: &str, target: &str) -> Message {
    let got = request(r, "GET", path, target, b"");
    assert_eq!(
        got.status,
        200,
        "GET {path}: {:?} {:?}",
        String::from_utf8_lossy(&got.raw_head),
        got.body_str()
    );
    assert_eq!(got.body_str(), format!("GET {path}"));
    got
}
