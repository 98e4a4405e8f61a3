//! The request pipeline for one exchange, top to bottom as static functions: check the request
//! ([`route`]), get an upstream connection (pool, else resolve + dial), send the rewritten head,
//! then stream the request body to the origin while the response head(s) come back — at the
//! same time, so `Expect: 100-continue` and origins that answer before reading the whole body
//! both work — and stream the response body to the client. Decides keep-alive on both sides and
//! returns clean upstream connections to the pool. A reused pooled connection that turns out
//! dead before any response byte is retried once on a fresh one when the request is replayable.

use std::borrow::Cow;
use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;

use crate::error::ProxyError;
use crate::http1::{
    self, BodyKind, ConnectionHeader, RequestHead, RequestRewrite, ResponseHead, ResponseRewrite,
    Scheme, Target, Version,
};
use crate::net::buf::write_vec;
use crate::net::sys::{IdleState, idle_state};
use crate::net::{DialError, PoolKey, ReadBuf, dial};

use super::body::{self, ChunkMode, RelayError, write_within};
use super::client::{Client, ConnCtx, InterceptSession};
use super::local;
use super::stream::{UpRead, UpWrite};
use super::worker::{Upstream, Worker};

/// Bodies up to this size that are already buffered go out in the same write as their head.
pub const COALESCE_MAX: u64 = 16 * 1024;
/// `Via` values added to forwarded messages, by the version the message was received with.
const VIA_11: &[u8] = b"1.1 lynxio";
const VIA_10: &[u8] = b"1.0 lynxio";

/// A request that failed, and whether the client already saw part of a response.
#[derive(Debug)]
pub struct Failure {
    pub error: ProxyError,
    pub response_started: bool,
}

impl From<ProxyError> for Failure {
    fn from(error: ProxyError) -> Self {
        Failure {
            error,
            response_started: false,
        }
    }
}

/// Where a request goes.
#[derive(Debug)]
pub struct Route<'a> {
    pub host: Cow<'a, str>,
    pub port: u16,
    /// Host header value to send (the authority exactly as the client wrote it).
    pub authority: &'a [u8],
    /// origin-form target to send.
    pub path: Cow<'a, [u8]>,
}

/// Step 1: is this a request we forward, and to where? Absolute-form `http://` to its URL's
/// origin. Inside a CONNECT tunnel every request goes to the tunnel's origin — the client chose
/// that connection — in origin-form or absolute-form (`Host`: the URL's authority, else the
/// client's Host, else the CONNECT authority).
pub fn route<'a>(head: &'a RequestHead, ctx: ConnCtx<'a>) -> Result<Route<'a>, ProxyError> {
    if head.expect_unsupported() {
        return Err(ProxyError::ExpectationFailed);
    }
    let target =
        http1::parse_target(&head.method, head.target()).map_err(ProxyError::BadRequest)?;
    let origin = match ctx {
        ConnCtx::Proxy => None,
        ConnCtx::Tunnel { origin } | ConnCtx::Intercepted { origin, .. } => Some(origin),
    };
    let tls = matches!(ctx, ConnCtx::Intercepted { .. });
    match (target, origin) {
        (
            Target::Absolute {
                scheme: Scheme::Http,
                authority,
                host,
                port,
                path,
            },
            None,
        ) => Ok(Route {
            host,
            port,
            authority,
            path,
        }),
        (
            Target::Absolute {
                scheme: Scheme::Https,
                ..
            },
            None,
        ) => Err(ProxyError::HttpsWithoutConnect),
        (
            Target::Absolute {
                scheme,
                authority,
                path,
                ..
            },
            Some(origin),
        ) if (scheme == Scheme::Https) == tls => Ok(Route {
            host: Cow::Borrowed(&origin.host),
            port: origin.port,
            authority,
            path,
        }),
        (Target::Origin(path), Some(origin)) => Ok(Route {
            host: Cow::Borrowed(&origin.host),
            port: origin.port,
            authority: head.headers.get("host").unwrap_or(&origin.authority),
            path: Cow::Borrowed(path),
        }),
        _ => Err(ProxyError::NotProxyRequest),
    }
}

/// The `Via` value for a message received with `version` (RFC 9110 §7.6.3).
fn via_for(version: Version) -> &'static [u8] {
    match version {
        Version::Http11 => VIA_11,
        Version::Http10 => VIA_10,
    }
}

/// Run one request through the pipeline. Ok(true): the client connection may serve another.
pub async fn handle<R: AsyncReadRent, W: AsyncWriteRent>(
    worker: &Worker,
    client: &mut Client<R, W>,
    head: &RequestHead,
    ctx: ConnCtx<'_>,
) -> Result<bool, Failure> {
    let route = route(head, ctx)?;
    if matches!(ctx, ConnCtx::Proxy) && local::is_local(&route) {
        return local::answer(worker, client, head, &route).await;
    }
    let mut key = PoolKey::default();
    match ctx {
        ConnCtx::Intercepted { session, .. } => {
            key.set_session(session.id, &route.host, route.port)
        }
        _ => key.set(&route.host, route.port),
    }

    let mut req_out = Vec::with_capacity(head_capacity(head));
    let via = via_for(head.version);
    http1::write_request(
        &mut req_out,
        head,
        &RequestRewrite {
            path: &route.path,
            host: route.authority,
            via,
            keep_upgrade: false,
        },
    );
    // A small, fully buffered body travels with the head; the request is then replayable.
    let mut body_pending = head.body != BodyKind::Empty;
    if let BodyKind::Length(n) = head.body
        && n <= COALESCE_MAX
        && client.buf.len() as u64 >= n
    {
        client.buf.take_into(&mut req_out, n as usize);
        body_pending = false;
    }
    let replayable = !body_pending && head.method.is_idempotent();

    let mut fresh_only = false;
    loop {
        let mut up = upstream(worker, &route, &key, fresh_only, ctx).await?;
        let reused = up.reused;
        let sent = write_within(
            worker.cfg.timeouts.response,
            write_all_keep(&mut up.w, &mut req_out),
        )
        .await;
        let outcome = match sent {
            // The origin took no bytes of the head for the whole response timeout (the head
            // is gone with the abandoned write, so this is never retried).
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                Err(Failure::from(ProxyError::ResponseTimeout))
            }
            Err(e) => Err(Failure::from(ProxyError::UpstreamIo(e))),
            Ok(()) if body_pending => exchange_with_body(worker, client, head, &mut up).await,
            Ok(()) => {
                let body_done = Cell::new(true);
                receive(
                    worker,
                    &mut client.w,
                    &mut client.out,
                    &mut up,
                    head,
                    &body_done,
                )
                .await
            }
        };
        match outcome {
            Ok(end) => {
                if end.upstream_reusable {
                    up.reused = true;
                    worker.pool.borrow_mut().put(&key, up, Instant::now());
                }
                return Ok(end.client_keep);
            }
            Err(f) if reused && replayable && !f.response_started && is_stale(&f.error) => {
                tracing::debug!(error = %f.error, "pooled connection was stale; retrying");
                fresh_only = true;
            }
            Err(f) => return Err(f),
        }
    }
}

fn head_capacity(head: &RequestHead) -> usize {
    256 + head.target().len()
        + head
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum::<usize>()
}

/// A pooled connection that died before answering: closed, reset, or EOF before any byte.
fn is_stale(error: &ProxyError) -> bool {
    matches!(error, ProxyError::UpstreamIo(_))
}

/// Write `out` completely, keeping its contents (a retry may need to send it again).
async fn write_all_keep<W: AsyncWriteRent>(w: &mut W, out: &mut Vec<u8>) -> std::io::Result<()> {
    let len = out.len();
    let buf = std::mem::take(out);
    let (res, buf) = monoio::io::AsyncWriteRentExt::write_all(w, buf).await;
    *out = buf;
    debug_assert_eq!(out.len(), len);
    res.map(|_| ())
}

/// Step 2: a connection to the origin — an idle pooled one, else a new one.
async fn upstream(
    worker: &Worker,
    route: &Route<'_>,
    key: &PoolKey,
    fresh_only: bool,
    ctx: ConnCtx<'_>,
) -> Result<Upstream, ProxyError> {
    let session = match ctx {
        ConnCtx::Intercepted { session, .. } => Some(session),
        _ => None,
    };
    if !fresh_only {
        loop {
            let Some(up) = worker.pool.borrow_mut().take(key, Instant::now()) else {
                break;
            };
            // One non-blocking peek: a connection the origin closed, reset, or wrote
            // unsolicited bytes on while idle must not carry the next request (stray bytes
            // would be read as its response). A connection that dies between the peek and the
            // write is still retried below when the request is replayable. A session's private
            // TLS connection skips it: pending TLS records (session tickets) are normal there,
            // and nobody else's bytes can be on it.
            if session.is_some() || idle_state(up.fd) == IdleState::Alive {
                return Ok(up);
            }
        }
    }
    let stream = connect_to(worker, &route.host, route.port).await?;
    match session {
        None => Ok(Upstream::new(stream)),
        Some(session) => connect_tls(worker, stream, session, &route.host, route.port).await,
    }
}

/// TLS to an intercepted origin over a connected `stream`; a rejected certificate or failed
/// handshake becomes a 502 whose body says why.
pub async fn connect_tls(
    worker: &Worker,
    stream: TcpStream,
    session: &InterceptSession,
    host: &str,
    port: u16,
) -> Result<Upstream, ProxyError> {
    let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
    let tls = crate::mitm::tls::connect(
        stream,
        session.server_name.clone(),
        session.tls.clone(),
        worker.cfg.timeouts.connect,
    )
    .await
    .map_err(|e| ProxyError::UpstreamTls {
        target: format!("{host}:{port}"),
        reason: e.to_string(),
    })?;
    let (r, w) = tls;
    Ok(Upstream::from_parts(UpRead::Tls(r), UpWrite::Tls(w), fd))
}

/// Resolve `host` (worker cache, else the blocking pool) and dial its addresses in turn.
pub async fn connect_to(worker: &Worker, host: &str, port: u16) -> Result<TcpStream, ProxyError> {
    let target = || format!("{host}:{port}");
    let addrs = worker
        .dns
        .resolve(host, port)
        .await
        .map_err(|source| ProxyError::Resolve {
            host: host.to_owned(),
            source,
        })?;
    match dial(&addrs, worker.cfg.timeouts.connect).await {
        Ok(stream) => Ok(stream),
        Err(DialError::TimedOut) => Err(ProxyError::ConnectTimeout { target: target() }),
        Err(DialError::Failed(source)) => Err(ProxyError::Connect {
            target: target(),
            source,
        }),
    }
}

/// How an exchange ended.
struct End {
    client_keep: bool,
    upstream_reusable: bool,
}

/// Step 3 (request has a body still to stream): body up and response down concurrently.
async fn exchange_with_body<R: AsyncReadRent, W: AsyncWriteRent>(
    worker: &Worker,
    client: &mut Client<R, W>,
    head: &RequestHead,
    up: &mut Upstream,
) -> Result<End, Failure> {
    let idle = worker.cfg.timeouts.client_idle;
    let body_done = Cell::new(false);
    let Client { r, w, buf, out } = client;
    let Upstream {
        r: up_r,
        w: up_w,
        buf: up_buf,
        ..
    } = up;
    let send = pin!(async {
        let res = body::relay(r, buf, up_w, head.body, ChunkMode::Verbatim, idle).await;
        if res.is_ok() {
            body_done.set(true);
        }
        res
    });
    let recv = pin!(receive_parts(
        worker, w, out, up_r, up_buf, head, &body_done
    ));
    let mut send = Some(send);
    let mut recv = recv;
    let result = std::future::poll_fn(|cx| {
        if let Some(s) = send.as_mut()
            && let Poll::Ready(res) = s.as_mut().poll(cx)
        {
            send = None;
            match res {
                Ok(()) => {}
                // The origin stopped reading; its response (e.g. 413) may still come.
                Err(RelayError::Write(e)) => {
                    tracing::debug!(error = %e, "origin stopped reading the body")
                }
                Err(RelayError::Framing(e)) => {
                    return Poll::Ready(Err(Failure::from(ProxyError::BadRequest(e))));
                }
                Err(other) => {
                    return Poll::Ready(Err(Failure::from(ProxyError::ClientBody(
                        other.to_string(),
                    ))));
                }
            }
        }
        recv.as_mut().poll(cx)
    })
    .await;
    let mut end = result?;
    if !body_done.get() {
        // The response finished before the request body: the client connection is out of step
        // and the upstream one holds half a request. Close both.
        end.client_keep = false;
        end.upstream_reusable = false;
    }
    Ok(end)
}

/// Step 4 on a whole upstream connection.
async fn receive<W: AsyncWriteRent>(
    worker: &Worker,
    cw: &mut W,
    out: &mut Vec<u8>,
    up: &mut Upstream,
    head: &RequestHead,
    body_done: &Cell<bool>,
) -> Result<End, Failure> {
    receive_parts(worker, cw, out, &mut up.r, &mut up.buf, head, body_done).await
}

fn started(error: ProxyError) -> Failure {
    Failure {
        error,
        response_started: true,
    }
}

/// Step 4: read the response head(s), relay interim responses, then the final response.
async fn receive_parts<W: AsyncWriteRent, UR: AsyncReadRent>(
    worker: &Worker,
    cw: &mut W,
    out: &mut Vec<u8>,
    up_r: &mut UR,
    up_buf: &mut ReadBuf,
    req: &RequestHead,
    body_done: &Cell<bool>,
) -> Result<End, Failure> {
    let t = &worker.cfg.timeouts;
    let resp = loop {
        let resp = read_response_head(worker, up_r, up_buf, t.response).await?;
        if resp.status >= 200 {
            break resp;
        }
        if resp.status == 101 {
            return Err(Failure::from(ProxyError::BadResponse(http1::ParseError {
                kind: http1::ParseErrorKind::Malformed,
                detail: "101 Switching Protocols without an upgrade request",
            })));
        }
        if req.version == Version::Http11 {
            out.clear();
            http1::write_interim(out, &resp);
            write_within(t.response, write_vec(cw, out))
                .await
                .map_err(|e| started(ProxyError::ClientIo(e)))?;
        }
    };
    let kind = resp
        .body_kind(&req.method)
        .map_err(|e| Failure::from(ProxyError::BadResponse(e)))?;
    let dechunk = kind == BodyKind::Chunked && req.version == Version::Http10;
    let upstream_keep = resp.wants_keep_alive();
    let client_keep = req.wants_keep_alive()
        && !worker.shutting_down.get()
        && kind != BodyKind::UntilClose
        && !dechunk
        && body_done.get();
    let connection = match (client_keep, req.version) {
        (false, _) => ConnectionHeader::Close,
        (true, Version::Http10) => ConnectionHeader::KeepAlive,
        (true, Version::Http11) => ConnectionHeader::None,
    };
    out.clear();
    http1::write_response(
        out,
        &resp,
        &ResponseRewrite {
            via: via_for(resp.version),
            connection,
            strip_transfer_encoding: dechunk,
            keep_upgrade: false,
        },
    );
    let mut remaining = kind;
    if let BodyKind::Length(n) = kind
        && n <= COALESCE_MAX
        && up_buf.len() as u64 >= n
    {
        up_buf.take_into(out, n as usize);
        remaining = BodyKind::Empty;
    }
    write_within(t.response, write_vec(cw, out))
        .await
        .map_err(|e| started(ProxyError::ClientIo(e)))?;
    let mode = if dechunk {
        ChunkMode::Dechunk
    } else {
        ChunkMode::Verbatim
    };
    body::relay(up_r, up_buf, cw, remaining, mode, t.response)
        .await
        .map_err(|e| {
            started(match e {
                RelayError::Write(e) => ProxyError::ClientIo(e),
                RelayError::Framing(e) => ProxyError::BadResponse(e),
                RelayError::Timeout => ProxyError::ResponseTimeout,
                RelayError::Read(e) => ProxyError::UpstreamIo(e),
                RelayError::Eof => ProxyError::UpstreamIo(std::io::ErrorKind::UnexpectedEof.into()),
            })
        })?;
    Ok(End {
        client_keep,
        upstream_reusable: upstream_keep
            && kind != BodyKind::UntilClose
            && up_buf.is_empty()
            && body_done.get(),
    })
}

/// Read one response head from the origin within `timeout`.
async fn read_response_head<UR: AsyncReadRent>(
    worker: &Worker,
    up_r: &mut UR,
    up_buf: &mut ReadBuf,
    timeout: Duration,
) -> Result<ResponseHead, Failure> {
    let limits = &worker.cfg.head_limits;
    let deadline = Instant::now() + timeout;
    loop {
        if !up_buf.is_empty()
            && let Some((resp, len)) = http1::parse_response(up_buf.bytes(), limits)
                .map_err(|e| Failure::from(ProxyError::BadResponse(e)))?
        {
            up_buf.consume(len);
            return Ok(resp);
        }
        let room = limits.max_head_bytes.saturating_sub(up_buf.len()).max(1);
        match monoio::time::timeout_at(deadline.into(), up_buf.fill(up_r, room)).await {
            Ok(Ok(0)) => {
                return Err(Failure::from(ProxyError::UpstreamIo(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "origin closed the connection before responding",
                ))));
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(Failure::from(ProxyError::UpstreamIo(e))),
            Err(_) => return Err(Failure::from(ProxyError::ResponseTimeout)),
        }
    }
}
