//! TLS stream tests over real loopback sockets, each on the io_uring and on the epoll driver:
//! handshake + ALPN (h2 offer → http/1.1) + SNI with a plain rustls client on a std thread,
//! 8 MiB byte-exact both ways with reader and writer of both ends used at once, writev of many
//! slices, the sniffed-prefix path, untrusted CA and wrong name (rustls' reason in the error),
//! handshake timeouts, clean close_notify vs truncated EOF, and a read that times out leaving
//! the stream usable. Certificates are minted per test run with rcgen.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use monoio::buf::VecBuf;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use super::*;
use crate::net::testutil::on_both_drivers;

const HANDSHAKE: Duration = Duration::from_secs(10);
const BULK: usize = 8 * 1024 * 1024;

/// A throwaway CA and a leaf for `localhost` signed by it.
struct Pki {
    ca: CertificateDer<'static>,
    leaf: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

/// `ca_name` keeps two CAs apart: same-named CAs make rustls report BadSignature, not
/// UnknownIssuer.
fn pki(ca_name: &str) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.distinguished_name = DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key"))
        .expect("ca cert");
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .expect("leaf params")
        .signed_by(&leaf_key, &ca)
        .expect("leaf cert");
    Pki {
        ca: ca.der().clone(),
        leaf: leaf.der().clone(),
        key: PrivatePkcs8KeyDer::from(leaf_key.serialize_der()),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn server_config(pki: &Pki) -> Arc<ServerConfig> {
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![pki.leaf.clone()],
            PrivateKeyDer::Pkcs8(pki.key.clone_key()),
        )
        .expect("server config");
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}

fn client_config(ca: &CertificateDer<'static>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).expect("root");
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(cfg)
}

fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").expect("name")
}

async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    (l, addr)
}

/// A blocking rustls client on a std thread running `body` over the established stream.
fn std_client<T: Send + 'static>(
    addr: SocketAddr,
    cfg: Arc<ClientConfig>,
    body: impl FnOnce(&mut rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>) -> T
    + Send
    + 'static,
) -> thread::JoinHandle<T> {
    thread::spawn(move || {
        let sock = std::net::TcpStream::connect(addr).expect("connect");
        sock.set_read_timeout(Some(Duration::from_secs(15)))
            .expect("timeout");
        let conn = rustls::ClientConnection::new(cfg, localhost()).expect("client conn");
        let mut tls = rustls::StreamOwned::new(conn, sock);
        body(&mut tls)
    })
}

async fn read_exact(r: &mut TlsReader, n: usize) -> Vec<u8> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let (res, buf) = r.read(Vec::with_capacity(64 * 1024)).await;
        let k = res.expect("read");
        assert!(k > 0, "early EOF after {} of {n} bytes", got.len());
        got.extend_from_slice(&buf[..k]);
    }
    got
}

async fn read_to_end(r: &mut TlsReader) -> Vec<u8> {
    let mut got = Vec::new();
    loop {
        let (res, buf) = r.read(Vec::with_capacity(16 * 1024)).await;
        match res.expect("read") {
            0 => return got,
            k => got.extend_from_slice(&buf[..k]),
        }
    }
}

/// Pseudo-random bytes, different per seed.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Runs `test` on both drivers with a server config for `server`'s leaf and a client config
/// trusting `client_ca` (fresh configs per driver).
fn with_configs<F, Fut>(server: &Pki, client_ca: &CertificateDer<'static>, test: F)
where
    F: Fn(&'static str, Arc<ServerConfig>, Arc<ClientConfig>) -> Fut,
    Fut: Future<Output = ()>,
{
    on_both_drivers(|driver| test(driver, server_config(server), client_config(client_ca)))
}

/// [`with_configs`] for one throwaway PKI ("lynxio test CA") whose CA the client trusts.
fn each_driver<F, Fut>(test: F)
where
    F: Fn(&'static str, Arc<ServerConfig>, Arc<ClientConfig>) -> Fut,
    Fut: Future<Output = ()>,
{
    let pki = pki("lynxio test CA");
    with_configs(&pki, &pki.ca, test)
}

/// Accepts one connection on `l` and runs our server handshake over it (no prefix).
async fn accept_one(
    l: &TcpListener,
    server_cfg: Arc<ServerConfig>,
) -> io::Result<(TlsReader, TlsWriter, HandshakeInfo)> {
    let (stream, _) = l.accept().await.expect("accept");
    accept(stream, Vec::new(), server_cfg, HANDSHAKE).await
}

/// Connects to `addr` and runs our client handshake as `name`.
async fn connect_to(
    addr: SocketAddr,
    name: ServerName<'static>,
    client_cfg: Arc<ClientConfig>,
) -> io::Result<(TlsReader, TlsWriter)> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    connect(stream, name, client_cfg, HANDSHAKE).await
}

/// Our server and our client (as `name`) handshaking with each other at once; both results.
async fn handshake_pair(
    server_cfg: Arc<ServerConfig>,
    client_cfg: Arc<ClientConfig>,
    name: ServerName<'static>,
) -> (
    io::Result<(TlsReader, TlsWriter, HandshakeInfo)>,
    io::Result<(TlsReader, TlsWriter)>,
) {
    let (l, addr) = listener().await;
    monoio::join!(
        accept_one(&l, server_cfg),
        connect_to(addr, name, client_cfg)
    )
}

/// Connect our client to our server; returns (server halves + info, client halves).
async fn pair(
    server_cfg: Arc<ServerConfig>,
    client_cfg: Arc<ClientConfig>,
) -> (
    (TlsReader, TlsWriter, HandshakeInfo),
    (TlsReader, TlsWriter),
) {
    let (server, client) = handshake_pair(server_cfg, client_cfg, localhost()).await;
    (
        server.expect("server handshake"),
        client.expect("client handshake"),
    )
}

#[test]
fn std_client_gets_http11_sni_and_clean_close() {
    each_driver(|driver, server_cfg, client_cfg| async move {
        let (l, addr) = listener().await;
        let client = std_client(addr, client_cfg, |tls| {
            tls.write_all(b"ping").expect("write");
            let mut got = Vec::new();
            // Ok(0) only on close_notify: an unclean EOF is an error in StreamOwned.
            let res = tls.read_to_end(&mut got);
            let alpn = tls.conn.alpn_protocol().map(<[u8]>::to_vec);
            tls.conn.send_close_notify();
            let _ = tls.flush();
            (res.map(|_| got), alpn)
        });
        let (mut r, mut w, info) = accept_one(&l, server_cfg).await.expect("handshake");
        assert_eq!(info.alpn.as_deref(), Some(&b"http/1.1"[..]), "{driver}");
        assert_eq!(info.sni.as_deref(), Some("localhost"), "{driver}");
        assert_eq!(read_exact(&mut r, 4).await, b"ping", "{driver}");
        let (res, _) = w.write_all(b"pong".to_vec()).await;
        res.expect("write");
        w.shutdown().await.expect("shutdown");
        // The client answers with close_notify: a clean EOF, not a truncation.
        assert_eq!(read_to_end(&mut r).await, b"", "{driver}");
        assert!(!r.truncated(), "{driver}");
        let (got, alpn) = client.join().expect("client thread");
        assert_eq!(got.expect("clean close_notify EOF"), b"pong", "{driver}");
        assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]), "{driver}");
    });
}

#[test]
fn tcp_eof_without_close_notify_is_eof_and_truncated() {
    each_driver(|driver, server_cfg, client_cfg| async move {
        let (l, addr) = listener().await;
        let client = std_client(addr, client_cfg, |tls| {
            tls.write_all(b"partial").expect("write");
            tls.sock
                .shutdown(std::net::Shutdown::Both)
                .expect("shutdown");
        });
        let (mut r, _w, _) = accept_one(&l, server_cfg).await.expect("handshake");
        assert_eq!(read_to_end(&mut r).await, b"partial", "{driver}");
        assert!(r.truncated(), "{driver}");
        client.join().expect("client thread");
    });
}

/// Both ends in the runtime: 8 MiB each way, all four halves busy at once.
#[test]
fn bulk_both_ways_concurrently_byte_exact() {
    each_driver(|driver, server_cfg, client_cfg| async move {
        let up = pattern(BULK, 1);
        let down = pattern(BULK, 2);
        let ((mut sr, mut sw, info), (mut cr, mut cw)) = pair(server_cfg, client_cfg).await;
        assert_eq!(info.alpn.as_deref(), Some(&b"http/1.1"[..]), "{driver}");
        let (a, b, c, d) = monoio::join!(
            async {
                for chunk in up.chunks(100_000) {
                    let (res, _) = cw.write_all(chunk.to_vec()).await;
                    res.expect("client write");
                }
                cw.shutdown().await.expect("client shutdown");
            },
            async {
                for chunk in down.chunks(77_777) {
                    let (res, _) = sw.write_all(chunk.to_vec()).await;
                    res.expect("server write");
                }
                sw.shutdown().await.expect("server shutdown");
            },
            read_to_end(&mut sr),
            read_to_end(&mut cr),
        );
        let ((), ()) = (a, b);
        assert!(c == up, "{driver}: client→server stream differs");
        assert!(d == down, "{driver}: server→client stream differs");
        assert!(!sr.truncated() && !cr.truncated(), "{driver}");
    });
}

#[test]
fn writev_sends_every_slice() {
    each_driver(|driver, server_cfg, client_cfg| async move {
        let ((mut sr, _sw, _), (_cr, mut cw)) = pair(server_cfg, client_cfg).await;
        let slices: Vec<Vec<u8>> = vec![
            b"GET / HTTP/1.1\r\n".to_vec(),
            Vec::new(),
            b"Host: x\r\n\r\n".to_vec(),
            pattern(100_000, 3),
            b"tail".to_vec(),
        ];
        let expected = slices.concat();
        let mut sent = 0;
        let mut bufs = slices;
        // writev may take less than everything (rustls' 64 KiB buffer limit): resend the rest.
        while sent < expected.len() {
            let (res, back) = cw.writev(VecBuf::from(bufs)).await;
            let n = res.expect("writev");
            assert!(n > 0, "{driver}: writev wrote nothing");
            sent += n;
            bufs = vec![expected[sent..].to_vec()];
            let _ = Vec::<Vec<u8>>::from(back);
        }
        assert_eq!(
            read_exact(&mut sr, expected.len()).await,
            expected,
            "{driver}"
        );
    });
}

#[test]
fn first_writev_covers_more_than_the_first_slice() {
    each_driver(|driver, server_cfg, client_cfg| async move {
        let ((mut sr, _sw, _), (_cr, mut cw)) = pair(server_cfg, client_cfg).await;
        let bufs = vec![b"ab".to_vec(), b"cd".to_vec(), b"ef".to_vec()];
        let (res, _) = cw.writev(VecBuf::from(bufs)).await;
        assert_eq!(res.expect("writev"), 6, "{driver}");
        assert_eq!(read_exact(&mut sr, 6).await, b"abcdef", "{driver}");
    });
}

#[test]
fn sniffed_prefix_is_fed_first() {
    each_driver(|driver, server_cfg, client_cfg| async move {
        let (l, addr) = listener().await;
        let server = async {
            let (mut stream, _) = l.accept().await.expect("accept");
            // Play sniffer: take the first bytes (the ClientHello) off the socket ourselves.
            let (res, prefix) = stream.read(Vec::with_capacity(64 * 1024)).await;
            assert!(res.expect("sniff read") > 0);
            assert_eq!(prefix[0], 0x16, "a TLS handshake record");
            accept(stream, prefix, server_cfg, HANDSHAKE)
                .await
                .expect("server handshake")
        };
        let client = async {
            let (cr, mut cw) = connect_to(addr, localhost(), client_cfg)
                .await
                .expect("client handshake");
            let (res, _) = cw.write_all(b"hello through prefix".to_vec()).await;
            res.expect("write");
            (cr, cw)
        };
        let ((mut sr, _sw, info), _client) = monoio::join!(server, client);
        assert_eq!(info.sni.as_deref(), Some("localhost"), "{driver}");
        assert_eq!(
            read_exact(&mut sr, 20).await,
            b"hello through prefix",
            "{driver}"
        );
    });
}

#[test]
fn untrusted_ca_fails_with_rustls_reason_on_both_sides() {
    let (pki, other) = (pki("lynxio test CA"), pki("another CA"));
    with_configs(
        &pki,
        &other.ca,
        |driver, server_cfg, client_cfg| async move {
            let (server, client) = handshake_pair(server_cfg, client_cfg, localhost()).await;
            let (server_err, client_err) = (server.err(), client.err());
            let client_err = client_err.expect("client must reject the certificate");
            assert_eq!(client_err.kind(), io::ErrorKind::InvalidData, "{driver}");
            let msg = client_err.to_string();
            assert!(msg.contains("UnknownIssuer"), "{driver}: {msg}");
            let source = client_err
                .get_ref()
                .and_then(|e| e.downcast_ref::<rustls::Error>());
            assert!(
                matches!(source, Some(rustls::Error::InvalidCertificate(_))),
                "{driver}: {source:?}"
            );
            // The client's alert reaches the server, which names it.
            let msg = server_err.expect("server must fail too").to_string();
            assert!(msg.contains("alert"), "{driver}: {msg}");
        },
    );
}

#[test]
fn wrong_name_fails() {
    each_driver(|driver, server_cfg, client_cfg| async move {
        let name = ServerName::try_from("other.example").expect("name");
        let (_, client) = handshake_pair(server_cfg, client_cfg, name).await;
        let msg = client.err().expect("wrong name must fail").to_string();
        assert!(msg.contains("not valid for name"), "{driver}: {msg}");
    });
}

#[test]
fn silent_peer_times_out_the_handshake() {
    each_driver(|driver, server_cfg, client_cfg| async move {
        let (l, addr) = listener().await;
        let limit = Duration::from_millis(200);
        // accept: the client connects and says nothing.
        let silent = std::net::TcpStream::connect(addr).expect("connect");
        let (stream, _) = l.accept().await.expect("accept");
        let err = accept(stream, Vec::new(), Arc::clone(&server_cfg), limit)
            .await
            .err()
            .expect("must time out");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{driver}");
        drop(silent);
        // connect: the server accepts TCP and never answers the ClientHello.
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (_held, _) = l.accept().await.expect("accept");
        let err = connect(stream, localhost(), client_cfg, limit)
            .await
            .err()
            .expect("must time out");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{driver}");
    });
}

#[test]
fn timed_out_read_leaves_the_stream_usable() {
    each_driver(|driver, server_cfg, client_cfg| async move {
        let ((mut sr, mut sw, _), (mut cr, mut cw)) = pair(server_cfg, client_cfg).await;
        let idle =
            monoio::time::timeout(Duration::from_millis(50), sr.read(Vec::with_capacity(1024)))
                .await;
        assert!(idle.is_err(), "{driver}: nothing was sent yet");
        let (res, _) = cw.write_all(b"after the timeout".to_vec()).await;
        res.expect("write");
        assert_eq!(
            read_exact(&mut sr, 17).await,
            b"after the timeout",
            "{driver}"
        );
        // A tiny destination takes plaintext in pieces without losing any.
        let (res, _) = sw.write_all(b"0123456789".to_vec()).await;
        res.expect("write");
        let mut got = Vec::new();
        while got.len() < 10 {
            let (res, buf) = cr.read(Vec::with_capacity(3)).await;
            let n = res.expect("read");
            assert!((1..=3).contains(&n), "{driver}: {n}");
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"0123456789", "{driver}");
    });
}

#[test]
fn readv_fills_several_iovecs() {
    each_driver(|driver, server_cfg, client_cfg| async move {
        let ((mut sr, _sw, _), (_cr, mut cw)) = pair(server_cfg, client_cfg).await;
        let (res, _) = cw.write_all(b"abcdefgh".to_vec()).await;
        res.expect("write");
        let bufs = VecBuf::from(vec![vec![0u8; 3], vec![0u8; 10]]);
        let (res, bufs) = sr.readv(bufs).await;
        assert_eq!(res.expect("readv"), 8, "{driver}");
        let bufs: Vec<Vec<u8>> = bufs.into();
        assert_eq!(bufs.concat(), b"abcdefgh", "{driver}");
    });
}

/// A KeyUpdate the peer requests is answered by the reader's rustls and sent by the writer ahead
/// of its next record; out-of-order or lost records would break the peer's decryption.
#[test]
fn peer_key_update_is_answered_in_order() {
    each_driver(|driver, server_cfg, client_cfg| async move {
        let (l, addr) = listener().await;
        let client = std_client(addr, client_cfg, |tls| {
            while tls.conn.is_handshaking() {
                tls.conn.complete_io(&mut tls.sock).expect("handshake");
            }
            for round in 0..3u8 {
                tls.conn.refresh_traffic_keys().expect("key update");
                tls.write_all(&[b'a' + round]).expect("write");
                let mut got = [0u8; 1];
                tls.read_exact(&mut got).expect("read after key update");
                assert_eq!(got[0], b'A' + round);
            }
        });
        let (mut r, mut w, _) = accept_one(&l, server_cfg).await.expect("handshake");
        for round in 0..3u8 {
            assert_eq!(read_exact(&mut r, 1).await, [b'a' + round], "{driver}");
            let (res, _) = w.write_all(vec![b'A' + round]).await;
            res.expect("write");
        }
        client.join().expect("client thread");
    });
}

/// A write future dropped while the socket is full leaves the record stream cut: later writes
/// fail instead of sending garbage, and shutdown still closes the socket.
#[test]
fn dropped_write_breaks_the_writer() {
    each_driver(|driver, server_cfg, client_cfg| async move {
        // Nobody reads the client's side, so the server's socket fills up.
        let ((_sr, mut sw, _), _client) = pair(server_cfg, client_cfg).await;
        let big = vec![7u8; 64 * 1024 * 1024];
        let stuck = monoio::time::timeout(Duration::from_millis(200), sw.write_all(big)).await;
        assert!(
            stuck.is_err(),
            "{driver}: 64 MiB cannot fit in socket buffers"
        );
        let (res, _) = sw.write(b"more".to_vec()).await;
        let err = res.expect_err("a broken writer must refuse");
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{driver}");
        sw.shutdown()
            .await
            .expect("shutdown still closes the socket");
    });
}

/// A peer that stops reading cannot hold `shutdown`: with its window and our send buffer full,
/// `close_notify` gets the writer's deadline, then the TCP write side is shut anyway (and the
/// writer is broken). The socket is filled with raw bytes under the writer (the peer never reads
/// them), so the writer itself is intact when `shutdown` starts.
#[test]
fn close_notify_to_a_peer_that_stops_reading_has_a_deadline() {
    const MAX_TOP_UPS: usize = 10_000;
    each_driver(|driver, server_cfg, client_cfg| async move {
        let ((_sr, mut sw, _), _client) = pair(server_cfg, client_cfg).await;
        let big = vec![7u8; 64 * 1024 * 1024];
        let fill = monoio::time::timeout(Duration::from_millis(200), sw.io.write_all(big)).await;
        assert!(
            fill.is_err(),
            "{driver}: 64 MiB cannot fit in socket buffers"
        );
        // Room can still appear (buffers autotune, a cancelled write gives some back): top up
        // with small writes until one is stuck too.
        let mut stuck = false;
        for _ in 0..MAX_TOP_UPS {
            let small = sw.io.write_all(vec![7u8; 64]);
            if monoio::time::timeout(Duration::from_millis(200), small)
                .await
                .is_err()
            {
                stuck = true;
                break;
            }
        }
        assert!(stuck, "{driver}: the socket never filled up");
        assert!(!sw.broken, "{driver}: the TLS writer itself was not used");
        sw.close_timeout_ms = 300;
        let outer = CLOSE_NOTIFY_TIMEOUT;
        let res = monoio::time::timeout(outer, sw.shutdown())
            .await
            .unwrap_or_else(|_| panic!("{driver}: shutdown outlived its close_notify deadline"));
        let err = res.expect_err(&format!("{driver}: close_notify cannot have been sent"));
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{driver}: {err}");
        assert!(
            sw.broken,
            "{driver}: a timed-out close_notify breaks the writer"
        );
        let (res, _) = sw.write(b"more".to_vec()).await;
        assert_eq!(
            res.expect_err("broken").kind(),
            io::ErrorKind::BrokenPipe,
            "{driver}"
        );
    });
}
