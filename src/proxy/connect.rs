//! CONNECT, top to bottom: validate the `host:port` target, dial it (answering 400/502/504
//! with the usual error mapping when that fails), and only once the origin is connected answer
//! `200 Connection established`. Then sniff the client's first bytes (bounded, with a
//! deadline, waiting on readiness so a timeout never loses a byte) and hand the connection to
//! whichever handler fits: HTTP/1 (WebSocket handshakes included) goes back to the caller for
//! the same request pipeline as plain proxy requests, with the tunnel's origin as the default
//! authority; intercepted TLS likewise after both handshakes; other TLS, other upgrades (h2c),
//! unknown protocols and clients that stay silent (server-first protocols) become an opaque
//! tunnel. [`tls_action`] is the one place that decides what happens to TLS.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use monoio::io::AsyncWriteRent;
use monoio::net::TcpStream;
use rustls::pki_types::ServerName;

use crate::error::ProxyError;
use crate::http1::{self, BodyKind, RequestHead, Target};
use crate::mitm::tls::{self, TlsReader, TlsWriter};
use crate::net::buf::write_vec;
use crate::net::{PoolKey, ReadBuf};
use crate::observe::metrics::{TlsSide, TunnelKind};
use crate::rules::Action;
use crate::sniff::{self, ClientHello, Detect, Protocol};
use crate::tunnel::{self, TunnelEnd};

use super::body::write_within;
use super::ctx::{Client, ConnCtx, Flow, InterceptSession, TunnelOrigin, Worker};
use super::report::{self, Tunnel, TunnelEnded};
use super::upstream::{connect_tls, connect_to};

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

/// The one decision point for TLS inside a CONNECT tunnel, made from the CONNECT host, the
/// ClientHello's SNI and the CONNECT port, before any certificate work: a rule's host pattern
/// matches either name, the first matching rule wins, no match tunnels. Also returns the name
/// of the rule that decided, if one did.
pub fn tls_action(
    worker: &Worker,
    target: &TunnelOrigin,
    hello: &ClientHello,
) -> (TlsAction, Option<Arc<str>>) {
    let rules = worker.rules.current();
    let decision = rules.decide_tls(&target.host, hello.sni.as_deref(), target.port);
    let rule = decision.rule.map(Arc::from);
    match decision.action {
        Action::Intercept => {
            tracing::debug!(host = %target.host, sni = hello.sni.as_deref(), rule = decision.rule, "intercepting");
            (TlsAction::Intercept, rule)
        }
        Action::Passthrough => (TlsAction::Tunnel, rule),
    }
}

/// Step 1 of a CONNECT: the `host:port` it asks for. CONNECT is only valid directly from a
/// proxy client: inside a tunnel or an intercepted session it is refused before anything is
/// dialed.
pub fn target<'h>(
    head: &'h RequestHead,
    ctx: ConnCtx<'_>,
) -> Result<(Cow<'h, str>, u16), ProxyError> {
    if !matches!(ctx, ConnCtx::Proxy) {
        return Err(ProxyError::ConnectInTunnel);
    }
    if !matches!(head.body, BodyKind::Empty | BodyKind::Length(0)) {
        return Err(bad_connect("CONNECT with a request body"));
    }
    match http1::parse_target(&head.method, head.target()) {
        Ok(Target::Authority { host, port }) if port != 0 => Ok((host, port)),
        Ok(_) => Err(bad_connect("CONNECT target must be host:port")),
        Err(e) => Err(ProxyError::BadRequest(e)),
    }
}

/// Steps 2-3 of a CONNECT to `host:port` (from [`target`]): dial, `200`. On success the caller
/// owns both connections.
pub async fn open<R, W: AsyncWriteRent>(
    worker: &Worker,
    client: &mut Client<R, W>,
    head: &RequestHead,
    host: &str,
    port: u16,
) -> Result<(TcpStream, TunnelOrigin), ProxyError> {
    // A host the rules intercept gets its leaf now, while a failure can still be answered
    // with a 502 (after the `200`, only closing is possible). The SNI usually names the same
    // host, so the handshake later finds it in the cache.
    if worker.rules.current().decide_tls(host, None, port).action == Action::Intercept
        && let Err(reason) = worker.leaf(host)
    {
        return Err(ProxyError::Certificate {
            host: host.to_owned(),
            reason,
        });
    }
    let origin = connect_to(worker, host, port).await?;
    let _ = origin.set_nodelay(true);
    client.out.clear();
    client.out.extend_from_slice(ESTABLISHED);
    write_within(
        worker.cfg.timeouts.client_idle,
        write_vec(&mut client.w, &mut client.out),
    )
    .await
    .map_err(ProxyError::ClientIo)?;
    Ok((
        origin,
        TunnelOrigin {
            host: host.to_owned(),
            port,
            authority: head.target().to_vec(),
        },
    ))
}

fn bad_connect(detail: &'static str) -> ProxyError {
    ProxyError::BadRequest(http1::ParseError {
        kind: http1::ParseErrorKind::Malformed,
        detail,
    })
}

/// What an established tunnel turned out to carry, and who serves it next.
#[allow(clippy::large_enum_variant)] // returned once per tunnel, moved straight into a match
pub enum Sniffed {
    /// Relayed as opaque bytes to its end (and reported).
    Relayed,
    /// HTTP/1: the caller serves it with the request pipeline, `origin` as its first upstream.
    Http {
        stream: TcpStream,
        buf: ReadBuf,
        origin: TcpStream,
        tunnel: Tunnel,
    },
    /// Intercepted TLS, handshakes done: the caller serves the decrypted requests.
    Intercepted(Box<Intercepted>),
}

/// An intercepted session, ready for requests.
pub struct Intercepted {
    pub r: TlsReader,
    pub w: TlsWriter,
    pub session: InterceptSession,
    pub tunnel: Tunnel,
}

/// Step 4: the tunnel is established; sniff and dispatch. `buf` holds any bytes the client
/// sent right behind its CONNECT head. `flow` is the CONNECT's, now the tunnel's.
pub async fn established(
    worker: &Worker,
    mut stream: TcpStream,
    mut buf: ReadBuf,
    origin: TcpStream,
    target: &TunnelOrigin,
    flow: &mut Flow,
) -> Sniffed {
    let deadline = Instant::now() + worker.cfg.timeouts.sniff;
    // The sniff waits on readiness: a client that stays silent (server-first protocols, idle
    // tunnels) never needs the connection's read buffer, so it is not kept through the wait.
    buf.release();
    let protocol = sniff_prefix(&mut stream, &mut buf, deadline).await;
    let mut tunnel = Tunnel {
        target: format!("{}:{}", target.host, target.port),
        sni: None,
        alpn: None,
        kind: TunnelKind::Opaque,
    };
    match &protocol {
        Protocol::Tls(hello) => {
            tunnel.sni = hello.sni.clone();
            tunnel.kind = TunnelKind::Tls;
            let (action, rule) = tls_action(worker, target, hello);
            flow.rule = rule;
            if action == TlsAction::Intercept {
                tunnel.kind = TunnelKind::Intercepted;
                let prefix = buf.into_vec();
                return match Box::pin(intercept(
                    worker,
                    stream,
                    prefix,
                    origin,
                    target,
                    hello,
                    flow,
                    &mut tunnel,
                ))
                .await
                {
                    Some((r, w, session)) => Sniffed::Intercepted(Box::new(Intercepted {
                        r,
                        w,
                        session,
                        tunnel,
                    })),
                    None => Sniffed::Relayed,
                };
            }
        }
        Protocol::Http1 => {
            // The rest of the head gets the normal head timeout, not the sniff deadline.
            let head_deadline = Instant::now() + worker.cfg.timeouts.client_head;
            let complete = read_http_head(worker, &mut stream, &mut buf, head_deadline).await;
            let other_upgrade = |head: RequestHead| {
                (head.conn.upgrade || head.headers.contains("upgrade"))
                    && !head.is_websocket_upgrade()
            };
            if complete.is_some_and(other_upgrade) {
                // Upgrades other than WebSocket (h2c, …) stay opaque: lynxio does not speak
                // them, and the origin may. WebSocket goes through the pipeline like any request.
                tunnel.kind = TunnelKind::HttpUpgrade;
            } else {
                tunnel.kind = TunnelKind::Http;
                report::tunnel_open(worker, flow, &tunnel);
                return Sniffed::Http {
                    stream,
                    buf,
                    origin,
                    tunnel,
                };
            }
        }
        Protocol::Unknown => {}
    }
    report::tunnel_open(worker, flow, &tunnel);
    let (stats, end) = tunnel::relay(
        stream,
        buf.into_vec(),
        origin,
        &worker.tunnel_cfg,
        &worker.tunnel_pools,
    )
    .await;
    let (how, error) = match &end {
        TunnelEnd::Done => ("done", None),
        TunnelEnd::IdleTimeout => ("idle timeout", None),
        TunnelEnd::ClientError(e) => ("client failed", Some(e)),
        TunnelEnd::OriginError(e) => ("origin failed", Some(e)),
        // Only the relay over halves has taps.
        TunnelEnd::Refused { .. } => ("refused", None),
    };
    let ended = TunnelEnded {
        up: stats.client_to_origin,
        down: stats.origin_to_client,
        end: how,
        error: error.map(|e| e as &dyn std::fmt::Display),
    };
    report::tunnel_close(worker, flow, &tunnel, &ended);
    Sniffed::Relayed
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

/// An intercepted tunnel: the client's TLS ends here with a leaf for its SNI (or the CONNECT
/// host), lynxio opens its own verified TLS connection to the origin (reusing the connection
/// dialed for the CONNECT, pooled under the session's private key), and the caller runs the
/// decrypted requests through the HTTP pipeline. Failures before the first request can only be
/// reported and the connection closed (the client has its `200` already); a rejected origin
/// certificate is answered as a 502 on the client's first request, with the reason.
#[allow(clippy::too_many_arguments)] // one call site; the pieces are the tunnel's state
async fn intercept(
    worker: &Worker,
    stream: TcpStream,
    prefix: Vec<u8>,
    origin: TcpStream,
    target: &TunnelOrigin,
    hello: &ClientHello,
    flow: &mut Flow,
    tunnel: &mut Tunnel,
) -> Option<(TlsReader, TlsWriter, InterceptSession)> {
    let name = hello.sni.clone().unwrap_or_else(|| target.host.clone());
    report::tunnel_open(worker, flow, tunnel);
    let give_up = |stage: &'static str, error: &dyn std::fmt::Display| {
        report::intercept_failed(worker, flow, stage, error);
        let ended = TunnelEnded {
            up: 0,
            down: 0,
            end: "client failed",
            error: Some(error),
        };
        report::tunnel_close(worker, flow, tunnel, &ended);
    };
    let leaf = match worker.leaf(&name) {
        Ok(leaf) => leaf,
        Err(e) => {
            give_up(
                "certificate",
                &format!("cannot make a certificate for {name}: {e}"),
            );
            return None;
        }
    };
    let server_name = match ServerName::try_from(name.clone()) {
        Ok(n) => n,
        Err(e) => {
            give_up(
                "certificate",
                &format!("{name} is not a valid TLS server name: {e}"),
            );
            return None;
        }
    };
    let handshake = worker.cfg.timeouts.client_head;
    let (r, w, info) =
        match tls::accept(stream, prefix, leaf.server_config().clone(), handshake).await {
            Ok(parts) => parts,
            Err(e) => {
                give_up(
                    "tls_handshake",
                    &format!("client TLS handshake failed: {e}"),
                );
                return None;
            }
        };
    worker.metrics.tls_handshake(TlsSide::Client, info.resumed);
    tunnel.alpn = info
        .alpn
        .as_deref()
        .map(|a| String::from_utf8_lossy(a).into_owned());
    let session = InterceptSession {
        id: worker.next_id(),
        server_name,
        tls: worker.origin_config(target.port),
        rule: flow.rule.clone(),
    };
    let mut key = PoolKey::default();
    key.set_session(session.id, &target.host, target.port);
    match connect_tls(
        worker,
        origin,
        session.server_name.clone(),
        session.tls.clone(),
        &target.host,
        target.port,
    )
    .await
    {
        Ok(up) => worker.pool.borrow_mut().put(&key, up, Instant::now()),
        // The pipeline dials again for the first request and answers it with this error.
        Err(e) => tracing::debug!(id = %flow.id, error = %e, "origin TLS failed at CONNECT time"),
    }
    tracing::debug!(id = %flow.id, host = %name, alpn = ?tunnel.alpn, resumed = info.resumed, "intercepted");
    Some((r, w, session))
}
