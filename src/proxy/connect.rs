//! CONNECT, top to bottom: validate the `host:port` target, dial it (answering 400/502/504
//! with the usual error mapping when that fails), and only once the origin is connected answer
//! `200 Connection established`. Then sniff the client's first bytes (bounded, with a
//! deadline, waiting on readiness so a timeout never loses a byte) and hand the connection to
//! whichever handler fits: HTTP/1 goes through the same request pipeline as plain proxy
//! requests with the tunnel's origin as the default authority; TLS, WebSocket upgrades, unknown
//! protocols and clients that stay silent (server-first protocols) become an opaque tunnel.
//! [`tls_action`] is the one place that decides what happens to TLS.

use std::time::Instant;

use monoio::io::{AsyncWriteRent, Splitable};
use monoio::net::TcpStream;
use rustls::pki_types::ServerName;

use crate::error::ProxyError;
use crate::http1::{self, BodyKind, RequestHead, Target};
use crate::mitm::{Interceptor, tls};
use crate::net::buf::write_vec;
use crate::net::{PoolKey, ReadBuf};
use crate::rules::Action;
use crate::sniff::{self, ClientHello, Detect, Protocol};
use crate::tunnel::{self, TunnelEnd};

use super::body::write_within;
use super::client::{
    CLIENT_BUF_SIZE, Client, ConnCtx, InterceptSession, Served, TunnelOrigin, serve_http,
};
use super::forward::{Failure, connect_tls, connect_to};
use super::worker::{Upstream, Worker};

/// The answer to a CONNECT whose origin is connected.
const ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";

/// What happens to TLS found inside a tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsAction {
    /// Relay the encrypted bytes untouched.
    Tunnel,
    /// Terminate TLS with a minted certificate and run the requests through the pipeline.
    Intercept,
}

/// The one decision point for TLS inside a CONNECT tunnel, made from the ClientHello's SNI (or
/// the CONNECT host when there is none) and the CONNECT port, before any certificate work:
/// the first matching rule wins, no match tunnels.
pub fn tls_action(worker: &Worker, target: &TunnelOrigin, hello: &ClientHello) -> TlsAction {
    if worker.mitm.is_none() {
        return TlsAction::Tunnel;
    }
    let host = hello.sni.as_deref().unwrap_or(&target.host);
    let decision = worker.cfg.rules.decide(host, target.port);
    match decision.action {
        Action::Intercept => {
            tracing::debug!(host, rule = decision.rule, "intercepting");
            TlsAction::Intercept
        }
        Action::Passthrough => TlsAction::Tunnel,
    }
}

/// Steps 1-3 of a CONNECT: target, dial, `200`. On success the caller owns both connections.
pub async fn open<R, W: AsyncWriteRent>(
    worker: &Worker,
    client: &mut Client<R, W>,
    head: &RequestHead,
    ctx: ConnCtx<'_>,
) -> Result<Option<Served>, Failure> {
    if let ConnCtx::Tunnel { .. } = ctx {
        return Err(ProxyError::ConnectInTunnel.into());
    }
    if !matches!(head.body, BodyKind::Empty | BodyKind::Length(0)) {
        return Err(bad_connect("CONNECT with a request body").into());
    }
    let (host, port) = match http1::parse_target(&head.method, head.target()) {
        Ok(Target::Authority { host, port }) if port != 0 => (host, port),
        Ok(_) => return Err(bad_connect("CONNECT target must be host:port").into()),
        Err(e) => return Err(ProxyError::BadRequest(e).into()),
    };
    // A host the rules intercept gets its leaf now, while a failure can still be answered
    // with a 502 (after the `200`, only closing is possible). The SNI usually names the same
    // host, so the handshake later finds it in the cache.
    if let Some(mitm) = &worker.mitm
        && worker.cfg.rules.decide(&host, port).action == Action::Intercept
        && let Err(e) = worker.leaves.borrow_mut().get_or_mint(&mitm.ca, &host)
    {
        return Err(ProxyError::Certificate {
            host: host.into_owned(),
            reason: e.to_string(),
        }
        .into());
    }
    let origin = connect_to(worker, &host, port).await?;
    let _ = origin.set_nodelay(true);
    client.out.clear();
    client.out.extend_from_slice(ESTABLISHED);
    write_within(
        worker.cfg.timeouts.client_idle,
        write_vec(&mut client.w, &mut client.out),
    )
    .await
    .map_err(|e| Failure::from(ProxyError::ClientIo(e)))?;
    Ok(Some(Served::Tunnel {
        origin,
        target: TunnelOrigin {
            host: host.into_owned(),
            port,
            authority: head.target().to_vec(),
        },
    }))
}

fn bad_connect(detail: &'static str) -> ProxyError {
    ProxyError::BadRequest(http1::ParseError {
        kind: http1::ParseErrorKind::Malformed,
        detail,
    })
}

/// Step 4: the tunnel is established; sniff and dispatch. `buf` holds any bytes the client
/// sent right behind its CONNECT head.
pub async fn established(
    worker: &Worker,
    mut stream: TcpStream,
    mut buf: ReadBuf,
    origin: TcpStream,
    target: TunnelOrigin,
) {
    let started = Instant::now();
    let deadline = started + worker.cfg.timeouts.sniff;
    let protocol = sniff_prefix(&mut stream, &mut buf, deadline).await;
    let kind = match &protocol {
        Protocol::Tls(hello) => match (tls_action(worker, &target, hello), &worker.mitm) {
            (TlsAction::Intercept, Some(mitm)) => {
                let prefix = buf.into_vec();
                return Box::pin(intercept(
                    worker, mitm, stream, prefix, origin, &target, hello,
                ))
                .await;
            }
            _ => "tls",
        },
        Protocol::Http1 => {
            // The rest of the head gets the normal head timeout, not the sniff deadline.
            let head_deadline = Instant::now() + worker.cfg.timeouts.client_head;
            let complete = read_http_head(worker, &mut stream, &mut buf, head_deadline).await;
            if complete.is_some_and(|head| head.conn.upgrade || head.headers.contains("upgrade")) {
                // WebSocket and other upgrades stay opaque until a handler understands them.
                "http-upgrade"
            } else {
                // Boxed, so an opaque tunnel's task does not carry the pipeline's space.
                return Box::pin(serve_inner_http(worker, stream, buf, origin, &target)).await;
            }
        }
        Protocol::Unknown => "opaque",
    };
    let sni = match &protocol {
        Protocol::Tls(hello) => hello.sni.as_deref(),
        _ => None,
    };
    let (stats, end) = tunnel::relay(
        stream,
        buf.into_vec(),
        origin,
        &worker.tunnel_cfg,
        &worker.tunnel_pools,
    )
    .await;
    let target = format!("{}:{}", target.host, target.port);
    let secs = started.elapsed().as_secs_f64();
    let (up, down) = (stats.client_to_origin, stats.origin_to_client);
    let (how, error) = match &end {
        TunnelEnd::Done => ("done", None),
        TunnelEnd::IdleTimeout => ("idle timeout", None),
        TunnelEnd::ClientError(e) => ("client failed", Some(e)),
        TunnelEnd::OriginError(e) => ("origin failed", Some(e)),
    };
    let error = error.map(tracing::field::display);
    tracing::info!(%target, kind, sni, up, down, secs, end = how, error, "tunnel closed");
}

/// Read until the prefix is recognised, the sniff limit is reached, the client goes quiet
/// until `deadline`, or it closes.
async fn sniff_prefix(stream: &mut TcpStream, buf: &mut ReadBuf, deadline: Instant) -> Protocol {
    let decided =
        read_until(
            stream,
            buf,
            sniff::MAX_SNIFF_BYTES,
            deadline,
            |bytes| match sniff::detect(bytes) {
                Detect::Found(protocol) => Some(protocol),
                Detect::NotThis => Some(Protocol::Unknown),
                Detect::NeedMore => None,
            },
        );
    // Limit, silence, EOF or error: nothing more to learn; the relay sees the same and ends.
    decided.await.unwrap_or(Protocol::Unknown)
}

/// Read (up to the head limit and `deadline`) until `buf` holds a complete request head, to
/// see whether it asks for an upgrade. `None`: incomplete or invalid — the HTTP pipeline will
/// answer that with its own timeouts and errors.
async fn read_http_head(
    worker: &Worker,
    stream: &mut TcpStream,
    buf: &mut ReadBuf,
    deadline: Instant,
) -> Option<RequestHead> {
    let limits = &worker.cfg.head_limits;
    let parsed =
        read_until(
            stream,
            buf,
            limits.max_head_bytes,
            deadline,
            |bytes| match http1::parse_request(bytes, limits) {
                Ok(Some((head, _))) => Some(Some(head)),
                Ok(None) => None,
                Err(_) => Some(None),
            },
        );
    parsed.await.flatten()
}

/// Reads into `buf` until `decide` returns an answer for the bytes so far. `None` once `buf`
/// holds `limit` bytes undecided, at `deadline`, on EOF or on error. Waits on readiness, never
/// on a pending read, so giving up at the deadline cannot swallow bytes that arrive just then.
async fn read_until<T>(
    stream: &mut TcpStream,
    buf: &mut ReadBuf,
    limit: usize,
    deadline: Instant,
    mut decide: impl FnMut(&[u8]) -> Option<T>,
) -> Option<T> {
    loop {
        if let Some(answer) = decide(buf.bytes()) {
            return Some(answer);
        }
        if buf.len() >= limit || !read_ready(stream, deadline).await {
            return None;
        }
        match buf.fill(stream, limit - buf.len()).await {
            Ok(n) if n > 0 => {}
            _ => return None,
        }
    }
}

/// Wait until `stream` is readable (data or EOF); false at `deadline` or on error.
async fn read_ready(stream: &TcpStream, deadline: Instant) -> bool {
    matches!(
        monoio::time::timeout_at(deadline.into(), stream.readable(false)).await,
        Ok(Ok(()))
    )
}

/// HTTP/1 inside the tunnel: the connection already dialed to the tunnel's origin becomes the
/// first pooled upstream for it, and the requests run through the normal pipeline.
async fn serve_inner_http(
    worker: &Worker,
    stream: TcpStream,
    buf: ReadBuf,
    origin: TcpStream,
    target: &TunnelOrigin,
) {
    let mut key = PoolKey::default();
    key.set(&target.host, target.port);
    worker
        .pool
        .borrow_mut()
        .put(&key, Upstream::new(origin), Instant::now());
    let (r, w) = stream.into_split();
    let mut client = Client::new(r, w, buf);
    serve_http(worker, &mut client, ConnCtx::Tunnel { origin: target }).await;
}

/// An intercepted tunnel: the client's TLS ends here with a leaf for its SNI (or the CONNECT
/// host), lynxio opens its own verified TLS connection to the origin (reusing the connection
/// dialed for the CONNECT), and the decrypted requests run through the HTTP pipeline. Origin
/// connections stay private to this client session. Failures before the first request can
/// only be logged and the connection closed (the client has its `200` already); a rejected
/// origin certificate is answered as a 502 on the client's first request, with the reason.
async fn intercept(
    worker: &Worker,
    mitm: &Interceptor,
    stream: TcpStream,
    prefix: Vec<u8>,
    origin: TcpStream,
    target: &TunnelOrigin,
    hello: &ClientHello,
) {
    let name = hello.sni.clone().unwrap_or_else(|| target.host.clone());
    let leaf = match worker.leaves.borrow_mut().get_or_mint(&mitm.ca, &name) {
        Ok(leaf) => leaf,
        Err(e) => {
            tracing::warn!(host = %name, error = %e, "cannot mint a certificate; closing");
            return;
        }
    };
    let server_name = match ServerName::try_from(name.clone()) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(host = %name, error = %e, "not a valid TLS server name; closing");
            return;
        }
    };
    let handshake = worker.cfg.timeouts.client_head;
    let (r, w, info) =
        match tls::accept(stream, prefix, leaf.server_config().clone(), handshake).await {
            Ok(parts) => parts,
            Err(e) => {
                tracing::info!(host = %name, error = %e, "client TLS handshake failed");
                return;
            }
        };
    let session = InterceptSession {
        id: worker.next_id(),
        server_name,
        tls: mitm.upstream.clone(),
    };
    let mut key = PoolKey::default();
    key.set_session(session.id, &target.host, target.port);
    match connect_tls(worker, origin, &session, &target.host, target.port).await {
        Ok(up) => worker.pool.borrow_mut().put(&key, up, Instant::now()),
        // The pipeline dials again for the first request and answers it with this error.
        Err(e) => tracing::debug!(error = %e, "origin TLS failed at CONNECT time"),
    }
    tracing::debug!(host = %name, alpn = ?info.alpn.as_deref().map(String::from_utf8_lossy), "intercepted");
    let mut client = Client::new(r, w, ReadBuf::with_capacity(CLIENT_BUF_SIZE));
    serve_http(
        worker,
        &mut client,
        ConnCtx::Intercepted {
            origin: target,
            session: &session,
        },
    )
    .await;
    worker.pool.borrow_mut().remove(&key);
    let _ = client.w.shutdown().await;
}
