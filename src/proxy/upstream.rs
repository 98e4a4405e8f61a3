//! Getting a connection to an origin: an idle one from the worker's pool (checked to be still
//! alive and quiet), else — at the origin's cap on open connections — one handed over by the
//! exchange that finishes next (waiting at most the connect timeout), else resolve (worker
//! cache, else the blocking pool) and dial every address in turn, plus TLS to the origin when
//! the client's session is intercepted. Counts pool and DNS cache hits, and records on the
//! flow whether the connection was reused and how long a new one took.

use std::sync::Arc;
use std::time::Instant;

use monoio::net::TcpStream;
use rustls::pki_types::ServerName;

use crate::error::ProxyError;
use crate::net::dns::Lookup;
use crate::net::sys::{IdleState, idle_state};
use crate::net::{DialError, Grant, PoolKey, dial};
use crate::observe::metrics::TlsSide;

use super::ctx::flow::UpstreamUse;
use super::ctx::{ConnCtx, Flow, Hop, Route, Upstream, Worker};
use super::stream::{UpRead, UpWrite};

/// The pool key of `route`'s origin connections: shared plain ones, a session's private TLS
/// ones, or lynxio's own TLS ones for a redirect to `https://`.
pub fn pool_key(route: &Route<'_>, ctx: ConnCtx<'_>) -> PoolKey {
    let mut key = PoolKey::default();
    match (route.hop, ctx) {
        (Hop::AsReceived, ConnCtx::Intercepted { session, .. }) => {
            key.set_session(session.id, &route.host, route.port)
        }
        (Hop::Tls, _) => key.set_tls(&route.host, route.port),
        _ => key.set(&route.host, route.port),
    }
    key
}

/// TLS to an origin: the server name to verify and the client configuration.
struct OriginTls {
    name: ServerName<'static>,
    config: Arc<rustls::ClientConfig>,
}

/// Whether lynxio speaks TLS to `route`'s origin, and how.
fn origin_tls(
    worker: &Worker,
    route: &Route<'_>,
    ctx: ConnCtx<'_>,
) -> Result<Option<OriginTls>, ProxyError> {
    Ok(match (route.hop, ctx) {
        (Hop::AsReceived, ConnCtx::Intercepted { session, .. }) => Some(OriginTls {
            name: session.server_name.clone(),
            config: session.tls.clone(),
        }),
        (Hop::Tls, _) => Some(OriginTls {
            name: ServerName::try_from(route.host.clone().into_owned()).map_err(|e| {
                ProxyError::UpstreamTls {
                    target: format!("{}:{}", route.host, route.port),
                    reason: format!("not a valid TLS server name: {e}"),
                }
            })?,
            config: worker.origin_config(route.port),
        }),
        _ => None,
    })
}

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
    let tls = origin_tls(worker, route, ctx)?;
    if !fresh_only {
        loop {
            let Some(up) = worker.pool.borrow_mut().take(key, Instant::now()) else {
                break;
            };
            // One non-blocking peek: a connection the origin closed, reset, or wrote
            // unsolicited bytes on while idle must not carry the next request (stray bytes
            // would be read as its response). A connection that dies between the peek and the
            // write is still retried by the caller when the request is replayable. A TLS
            // connection skips it: pending TLS records (session tickets) are normal there, and
            // its bytes are authenticated as the origin's.
            if tls.is_some() || idle_state(up.fd) == IdleState::Alive {
                worker.metrics.pool_hits.inc();
                flow.upstream = Some(UpstreamUse {
                    reused: true,
                    connect: std::time::Duration::ZERO,
                });
                return Ok(up);
            }
        }
    }
    // No idle connection: a place under the origin's cap, else wait for a connection to
    // finish (handed over warm) or close (its place handed over), at most the connect timeout.
    let gate = worker.pool.borrow_mut().gate(key);
    let permit = match gate.try_open() {
        Some(p) => p,
        None => {
            let waited =
                monoio::time::timeout(worker.cfg.timeouts.connect, gate.wait().granted()).await;
            match waited {
                Ok(Grant::Conn(up)) => {
                    worker.metrics.pool_hits.inc();
                    flow.upstream = Some(UpstreamUse {
                        reused: true,
                        connect: std::time::Duration::ZERO,
                    });
                    return Ok(up);
                }
                Ok(Grant::Open(p)) => p,
                Err(_) => {
                    return Err(ProxyError::OriginBusy {
                        target: format!("{}:{}", route.host, route.port),
                        open: worker.cfg.pool_max_open_per_host,
                    });
                }
            }
        }
    };
    worker.metrics.pool_misses.inc();
    let began = Instant::now();
    let stream = connect_to(worker, &route.host, route.port).await?;
    let mut up = match tls {
        None => Upstream::new(stream),
        Some(tls) => {
            connect_tls(
                worker,
                stream,
                tls.name,
                tls.config,
                &route.host,
                route.port,
            )
            .await?
        }
    };
    up.permit = Some(permit);
    flow.upstream = Some(UpstreamUse {
        reused: false,
        connect: began.elapsed(),
    });
    Ok(up)
}

/// TLS to an origin over a connected `stream`, verifying it as `name`; a rejected certificate
/// or failed handshake becomes a 502 whose body says why.
pub async fn connect_tls(
    worker: &Worker,
    stream: TcpStream,
    name: ServerName<'static>,
    config: Arc<rustls::ClientConfig>,
    host: &str,
    port: u16,
) -> Result<Upstream, ProxyError> {
    let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
    let tls = crate::mitm::tls::connect(stream, name, config, worker.cfg.timeouts.connect)
        .await
        .map_err(|e| ProxyError::UpstreamTls {
            target: format!("{host}:{port}"),
            reason: match crate::mitm::tls::rustls_error(&e) {
                Some(rejected) => crate::mitm::upstream::explain(rejected),
                None => format!("the TLS handshake with the origin failed: {e}"),
            },
        })?;
    let (r, w) = tls;
    let resumed = r.resumed();
    worker.metrics.tls_handshake(TlsSide::Origin, resumed);
    tracing::debug!(origin = %format_args!("{host}:{port}"), resumed, "origin TLS");
    Ok(Upstream::from_parts(UpRead::Tls(r), UpWrite::Tls(w), fd))
}

/// Resolve `host` (worker cache, else the blocking pool, waiting at most the connect timeout:
/// the worker's resolver was built with it) and dial its addresses in turn.
pub async fn connect_to(worker: &Worker, host: &str, port: u16) -> Result<TcpStream, ProxyError> {
    let target = || format!("{host}:{port}");
    let (addrs, lookup) = worker.dns.resolve(host, port).await;
    match lookup {
        Lookup::Cached => worker.metrics.dns_hits.inc(),
        Lookup::Resolved => worker.metrics.dns_misses.inc(),
        Lookup::Coalesced => worker.metrics.dns_coalesced.inc(),
        Lookup::Literal | Lookup::Overloaded => {}
    }
    let addrs = addrs.map_err(|source| ProxyError::Resolve {
        host: host.to_owned(),
        source,
    })?;
    let addrs = permitted(worker, host, port, addrs)?;
    match dial(&addrs, worker.cfg.timeouts.connect).await {
        Ok(stream) => Ok(stream),
        Err(DialError::TimedOut) => Err(ProxyError::ConnectTimeout { target: target() }),
        Err(DialError::Failed(source)) => Err(ProxyError::Connect {
            target: target(),
            source,
        }),
    }
}

/// The resolved addresses the destination policy lets lynxio dial (checked after DNS, so a name
/// cannot smuggle a private address past it); none → 403 naming the address and its class.
fn permitted(
    worker: &Worker,
    host: &str,
    port: u16,
    mut addrs: Vec<std::net::SocketAddr>,
) -> Result<Vec<std::net::SocketAddr>, ProxyError> {
    let policy = &worker.cfg.dest;
    let mut refused = None;
    addrs.retain(|a| match policy.check_addr(a.ip()) {
        Ok(()) => true,
        Err(class) => {
            refused.get_or_insert((a.ip(), class));
            false
        }
    });
    match refused {
        Some((ip, class)) if addrs.is_empty() => Err(ProxyError::DestRefused {
            target: format!("{host}:{port}"),
            reason: format!(
                "{host} is {ip}, a {class} address, and --dest-policy {} refuses those \
                 (--allow-dest re-allows a range)",
                policy.kind.as_str()
            ),
        }),
        _ => Ok(addrs),
    }
}
