//! Getting a connection to an origin: an idle one from the worker's pool (checked to be still
//! alive and quiet), else resolve (worker cache, else the blocking pool) and dial every address
//! in turn, plus TLS to the origin when the client's session is intercepted. Counts pool and
//! DNS cache hits, and records on the flow whether the connection was reused and how long a
//! new one took.

use std::time::Instant;

use monoio::net::TcpStream;

use crate::error::ProxyError;
use crate::net::dns::Lookup;
use crate::net::sys::{IdleState, idle_state};
use crate::net::{DialError, PoolKey, dial};

use super::ctx::flow::UpstreamUse;
use super::ctx::{ConnCtx, Flow, InterceptSession, Route, Upstream, Worker};
use super::stream::{UpRead, UpWrite};

/// A connection to the origin of `route` — an idle pooled one (unless `fresh_only`), else a
/// new one. Records which on `flow`.
pub async fn get(
    worker: &Worker,
    route: &Route<'_>,
    key: &PoolKey,
    fresh_only: bool,
    ctx: ConnCtx<'_>,
    flow: &mut Flow,
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
            // write is still retried by the caller when the request is replayable. A session's
            // private TLS connection skips it: pending TLS records (session tickets) are normal
            // there, and nobody else's bytes can be on it.
            if session.is_some() || idle_state(up.fd) == IdleState::Alive {
                worker.metrics.pool_hits.inc();
                flow.upstream = Some(UpstreamUse {
                    reused: true,
                    connect: std::time::Duration::ZERO,
                });
                return Ok(up);
            }
        }
    }
    worker.metrics.pool_misses.inc();
    let began = Instant::now();
    let stream = connect_to(worker, &route.host, route.port).await?;
    let up = match session {
        None => Upstream::new(stream),
        Some(session) => connect_tls(worker, stream, session, &route.host, route.port).await?,
    };
    flow.upstream = Some(UpstreamUse {
        reused: false,
        connect: began.elapsed(),
    });
    Ok(up)
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
    let (addrs, lookup) = worker.dns.resolve(host, port).await;
    match lookup {
        Lookup::Cached => worker.metrics.dns_hits.inc(),
        Lookup::Resolved => worker.metrics.dns_misses.inc(),
        Lookup::Literal => {}
    }
    let addrs = addrs.map_err(|source| ProxyError::Resolve {
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
