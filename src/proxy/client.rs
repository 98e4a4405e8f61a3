//! The client side of a connection: read request heads one after another (keep-alive and
//! pipelining fall out of keeping unconsumed bytes in the read buffer), run each through the
//! request pipeline, and answer failures with the status [`ProxyError::status`] maps them to.
//! Generic over the byte stream so plain TCP, HTTP inside a CONNECT tunnel and decrypted TLS
//! can share it. Timeouts: idle keep-alive before the first byte of a request, then the
//! slowloris bound for the rest of the head.

use std::rc::Rc;
use std::time::Instant;

use monoio::io::{AsyncReadRent, AsyncWriteRent, Splitable};
use monoio::net::TcpStream;

use crate::error::ProxyError;
use crate::http1::{self, Method, RequestHead};
use crate::net::ReadBuf;
use crate::net::buf::write_vec;

use super::body::write_within;
use super::connect;
use super::forward::{self, Failure};
use super::worker::Worker;

/// Read buffer each client connection starts with (grows for big heads, up to the head limit).
pub const CLIENT_BUF_SIZE: usize = 8 * 1024;

/// One client connection's halves and buffers.
pub struct Client<R, W> {
    pub r: R,
    pub w: W,
    pub buf: ReadBuf,
    /// Scratch for serialized heads, reused across requests.
    pub out: Vec<u8>,
}

impl<R: AsyncReadRent, W: AsyncWriteRent> Client<R, W> {
    pub fn new(r: R, w: W, buf: ReadBuf) -> Self {
        Client {
            r,
            w,
            buf,
            out: Vec::with_capacity(1024),
        }
    }
}

/// Where a connection's requests come from, which decides how origin-form requests and
/// CONNECT are treated.
#[derive(Debug, Clone, Copy)]
pub enum ConnCtx<'a> {
    /// A client talking to the proxy directly: absolute-form requests and CONNECT.
    Proxy,
    /// HTTP/1 found inside a CONNECT tunnel to `origin`: origin-form requests go there.
    Tunnel { origin: &'a TunnelOrigin },
    /// Decrypted HTTP/1 from an intercepted TLS tunnel: requests go to `origin` over TLS.
    Intercepted {
        origin: &'a TunnelOrigin,
        session: &'a InterceptSession,
    },
}

/// An intercepted client session's link to its origin.
#[derive(Debug)]
pub struct InterceptSession {
    /// Worker-unique id; keys the session's private origin connections in the pool.
    pub id: u64,
    /// SNI (and certificate name) for the origin: the client's SNI, else the CONNECT host.
    pub server_name: rustls::pki_types::ServerName<'static>,
    pub tls: std::sync::Arc<rustls::ClientConfig>,
}

/// The `host:port` a CONNECT tunnel was opened to.
#[derive(Debug, Clone)]
pub struct TunnelOrigin {
    /// Lowercased host (IPv6 without brackets), as dialed.
    pub host: String,
    pub port: u16,
    /// The CONNECT target exactly as the client wrote it: the default `Host` value.
    pub authority: Vec<u8>,
}

/// How a client conversation ended.
pub enum Served {
    /// Closed (by either side, on error, or idle).
    Closed,
    /// A CONNECT succeeded (`200` sent): the connection now belongs to the tunnel to `origin`.
    Tunnel {
        origin: TcpStream,
        target: TunnelOrigin,
    },
}

/// Serve a plain TCP client connection.
pub async fn serve_tcp(worker: Rc<Worker>, stream: TcpStream) {
    // Best effort: a failure only costs latency.
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    let mut client = Client::new(r, w, ReadBuf::with_capacity(CLIENT_BUF_SIZE));
    // Boxed: the HTTP pipeline's future is several KiB, and a tunnel that follows a CONNECT
    // would otherwise carry that space in its task for as long as it lives.
    let served = Box::pin(serve_http(&worker, &mut client, ConnCtx::Proxy)).await;
    if let Served::Tunnel { origin, target } = served {
        let Client { r, w, buf, .. } = client;
        match r.reunite(w) {
            Ok(stream) => connect::established(&worker, stream, buf, origin, target).await,
            // Cannot happen: both halves come from the same `into_split` above.
            Err(_) => tracing::error!("cannot reunite client halves; closing tunnel"),
        }
    }
}

/// The request's URL for logs: the target as sent, with `http://` or `https://` and the
/// tunnel's authority put in front of an origin-form target inside a tunnel (capped).
fn request_url(head: &RequestHead, ctx: ConnCtx<'_>) -> String {
    const MAX_LOGGED: usize = 256;
    let target = head.target();
    let target = String::from_utf8_lossy(target.get(..MAX_LOGGED).unwrap_or(target));
    let (scheme, origin) = match ctx {
        ConnCtx::Proxy => return target.into_owned(),
        ConnCtx::Tunnel { origin } => ("http", origin),
        ConnCtx::Intercepted { origin, .. } => ("https", origin),
    };
    if !target.starts_with('/') {
        return target.into_owned();
    }
    format!(
        "{scheme}://{}{target}",
        String::from_utf8_lossy(&origin.authority)
    )
}

/// What reading the next request produced.
enum Next {
    Request(RequestHead),
    /// The client closed, went idle too long, or the worker is shutting down.
    Done,
}

/// Answer requests on `client` until it closes, fails, asks to close, or opens a tunnel.
pub async fn serve_http<R: AsyncReadRent, W: AsyncWriteRent>(
    worker: &Worker,
    client: &mut Client<R, W>,
    ctx: ConnCtx<'_>,
) -> Served {
    let mut first = true;
    loop {
        if client.buf.is_empty() && !wait_for_request(worker, client, first).await {
            return Served::Closed;
        }
        first = false;
        let _in_flight = worker.begin_request();
        let head = match read_head(worker, client).await {
            Ok(Next::Request(head)) => head,
            Ok(Next::Done) => return Served::Closed,
            Err(error) => {
                answer_error(worker, client, &error, None).await;
                return Served::Closed;
            }
        };
        let outcome = if head.method == Method::Connect {
            connect::open(worker, client, &head, ctx).await
        } else {
            forward::handle(worker, client, &head, ctx)
                .await
                .map(|keep| {
                    if keep && !worker.shutting_down.get() {
                        None
                    } else {
                        Some(Served::Closed)
                    }
                })
        };
        match outcome {
            Ok(None) => continue,
            Ok(Some(served)) => return served,
            Err(Failure {
                error,
                response_started,
            }) => {
                if response_started {
                    tracing::info!(%error, "response aborted");
                } else {
                    answer_error(worker, client, &error, Some((&head, ctx))).await;
                }
                return Served::Closed;
            }
        }
    }
}

/// Wait for the first bytes of the next request. False: closed, idle timeout, or error.
async fn wait_for_request<R: AsyncReadRent, W: AsyncWriteRent>(
    worker: &Worker,
    client: &mut Client<R, W>,
    first: bool,
) -> bool {
    let t = &worker.cfg.timeouts;
    let idle = if first { t.client_head } else { t.client_idle };
    match monoio::time::timeout(idle, client.buf.fill(&mut client.r, usize::MAX)).await {
        Ok(Ok(n)) => n > 0,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "client read failed");
            false
        }
        Err(_) => {
            tracing::debug!("client idle timeout");
            false
        }
    }
}

/// Parse a complete request head from the buffer, reading more until the head deadline.
async fn read_head<R: AsyncReadRent, W: AsyncWriteRent>(
    worker: &Worker,
    client: &mut Client<R, W>,
) -> Result<Next, ProxyError> {
    let limits = &worker.cfg.head_limits;
    let deadline = Instant::now() + worker.cfg.timeouts.client_head;
    loop {
        if let Some((head, len)) =
            http1::parse_request(client.buf.bytes(), limits).map_err(ProxyError::BadRequest)?
        {
            client.buf.consume(len);
            return Ok(Next::Request(head));
        }
        let room = limits
            .max_head_bytes
            .saturating_sub(client.buf.len())
            .max(1);
        client
            .buf
            .reserve_total(client.buf.len() + room.min(CLIENT_BUF_SIZE));
        let read = monoio::time::timeout_at(deadline.into(), client.buf.fill(&mut client.r, room));
        match read.await {
            Ok(Ok(0)) => {
                tracing::debug!(buffered = client.buf.len(), "client closed mid-head");
                return Ok(Next::Done);
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(ProxyError::ClientIo(e)),
            Err(_) => return Err(ProxyError::ClientHeadTimeout),
        }
    }
}

/// Log a failed request and, if the client can still hear it, answer with the mapped status
/// and close.
async fn answer_error<R, W: AsyncWriteRent>(
    worker: &Worker,
    client: &mut Client<R, W>,
    error: &ProxyError,
    head: Option<(&RequestHead, ConnCtx<'_>)>,
) {
    let Some(status) = error.status() else {
        tracing::debug!(%error, "client connection ended");
        return;
    };
    match head {
        Some((h, ctx)) => tracing::warn!(
            status,
            %error,
            method = h.method_str(),
            url = %request_url(h, ctx),
            "request failed"
        ),
        None => tracing::warn!(status, %error, "bad request"),
    }
    client.out.clear();
    http1::write_simple_response(
        &mut client.out,
        status,
        http1::reason_phrase(status),
        &error.body(),
        true,
    );
    let limit = worker.cfg.timeouts.client_idle;
    if let Err(e) = write_within(limit, write_vec(&mut client.w, &mut client.out)).await {
        tracing::debug!(error = %e, "could not send error response");
    }
}
