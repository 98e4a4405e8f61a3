//! The client side of a connection, and the one place that knows the order of a connection's
//! steps: read request heads one after another (keep-alive and pipelining fall out of keeping
//! unconsumed bytes in the read buffer); give each its [`Flow`]; route it to lynxio's own pages,
//! the forwarding pipeline or CONNECT; answer failures with the status [`ProxyError::status`]
//! maps them to while no response byte has reached the client (else close); and report every
//! finished flow. After a CONNECT, the tunnel's sniffed content decides what runs next: an
//! opaque relay, this same loop over HTTP inside the tunnel, or over decrypted TLS.
//! Generic over the byte stream, so plain TCP, tunnelled HTTP and decrypted TLS share it.
//! Timeouts: idle keep-alive before the first byte of a request, then the slowloris bound for
//! the rest of the head.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Instant;

use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use monoio::net::tcp::{TcpOwnedReadHalf, TcpOwnedWriteHalf};
use tracing::Instrument;

use crate::error::ProxyError;
use crate::http1::{self, Method, RequestHead};
use crate::net::buf::write_vec;
use crate::net::idle::{Held, IdleWait};
use crate::net::{PoolKey, ReadBuf};
use crate::rules::{Plan, RuleSet, Terminal};

use super::act::{self, Answer};
use super::body::write_within;
use super::connect::{self, Intercepted, Sniffed};
use super::ctx::{
    CLIENT_BUF_SIZE, Client, ConnCtx, Flow, Peer, TunnelOrigin, Upstream, Worker, WsHandshake,
};
use super::forward::{self, Forwarded};
use super::report::{self, Tunnel, TunnelEnded};
use super::stream::ClientRead;
use super::{local, route, upgrade};

/// How a client conversation ended.
pub enum Served {
    /// Closed (by either side, on error, or idle).
    Closed,
    /// A CONNECT succeeded (`200` sent): the connection now belongs to the tunnel to `origin`,
    /// and `flow` (the CONNECT's) goes on as the tunnel's.
    Tunnel {
        origin: TcpStream,
        target: TunnelOrigin,
        flow: Box<Flow>,
    },
    /// An exchange switched protocols (WebSocket `101` sent): the connection now belongs to the
    /// relay between client and origin; the exchange is reported when it ends.
    Upgraded(Box<Upgraded>),
}

/// An upgraded exchange waiting for its relay.
pub struct Upgraded {
    pub up: Upstream,
    pub handshake: WsHandshake,
    pub flow: Flow,
    pub head: RequestHead,
    pub port: u16,
}

/// A client connection on plain TCP halves.
type TcpClient = Client<TcpOwnedReadHalf, TcpOwnedWriteHalf>;

/// Counts a client connection as open while it lives.
struct OpenConnection<'a>(&'a Worker);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.metrics.client_connections.dec();
    }
}

/// Serve a plain TCP client connection.
pub async fn serve_tcp(worker: Rc<Worker>, stream: TcpStream, peer: Peer) {
    worker.metrics.client_connections.inc();
    let _open = OpenConnection(&worker);
    // Best effort: a failure only costs latency.
    let _ = stream.set_nodelay(true);
    let mut client = Client::tcp(stream, ReadBuf::with_capacity(CLIENT_BUF_SIZE), peer);
    // Boxed, and freed when it returns: a tunnel that follows a CONNECT does not carry the
    // request loop's space in its task for as long as it lives.
    let served = Box::pin(serve_http(&worker, &mut client, ConnCtx::Proxy)).await;
    match served {
        Served::Closed => {}
        Served::Tunnel {
            origin,
            target,
            mut flow,
        } => {
            let Client { r, w, buf, out, .. } = client;
            // The write scratch is not needed by a tunnel; free it now, not when it ends.
            drop(out);
            match r.reunite(w) {
                Ok(stream) => {
                    let span = flow_span(&flow);
                    // Boxed: an opaque tunnel relays inside `established` for as long as it
                    // lives, so that allocation is sized for the sniff and the relay alone, and
                    // this task's own future stays small.
                    let sniffed = Box::pin(connect::established(
                        &worker, stream, buf, origin, &target, &mut flow,
                    ))
                    .instrument(span.clone())
                    .await;
                    // What the tunnel carries, served in allocations of its own.
                    match sniffed {
                        Sniffed::Relayed => {}
                        Sniffed::Http {
                            stream,
                            buf,
                            origin,
                            tunnel,
                        } => {
                            let (worker, target) = (&*worker, &target);
                            Box::pin(serve_tunnel_http(
                                worker, stream, buf, origin, target, &mut flow, tunnel,
                            ))
                            .instrument(span)
                            .await
                        }
                        Sniffed::Intercepted(parts) => {
                            Box::pin(serve_intercepted(&worker, *parts, &target, &mut flow))
                                .instrument(span)
                                .await
                        }
                    }
                }
                // Cannot happen: both halves come from the same split in `Client::tcp`.
                Err(_) => {
                    tracing::error!(id = %flow.id, "cannot reunite client halves; closing tunnel")
                }
            }
        }
        Served::Upgraded(u) => {
            Box::pin(relay_upgraded_tcp(&worker, client, *u)).await;
        }
    }
}

/// Relay an upgraded exchange whose client is on plain TCP (spliced when the origin is too),
/// then report it. Returns the bytes moved each way.
async fn relay_upgraded_tcp(worker: &Worker, client: TcpClient, u: Upgraded) -> (u64, u64) {
    let Upgraded {
        up,
        handshake,
        mut flow,
        head,
        port,
    } = u;
    let Client { r, w, mut buf, .. } = client;
    let span = flow_span(&flow);
    match r.reunite(w) {
        Ok(stream) => {
            let pending = buf.bytes().to_vec();
            buf.consume(pending.len());
            drop(buf);
            upgrade::relay_tcp(worker, stream, pending, up, &handshake, &mut flow)
                .instrument(span)
                .await;
        }
        // Cannot happen: both halves come from the same `into_split`.
        Err(_) => tracing::error!(id = %flow.id, "cannot reunite client halves; closing"),
    }
    finish_upgraded(worker, &mut flow, &head, port)
}

/// Report an upgraded exchange whose relay ended; returns the bytes it moved each way.
fn finish_upgraded(worker: &Worker, flow: &mut Flow, head: &RequestHead, port: u16) -> (u64, u64) {
    flow.complete();
    // Read before reporting: the report hands the upgrade record to the `end` event.
    let moved = flow
        .upgrade
        .as_ref()
        .map_or((0, 0), |u| (u.bytes_up, u.bytes_down));
    report::finish(worker, flow, head, port);
    moved
}

/// HTTP/1 inside the tunnel: the connection already dialed to the tunnel's origin becomes the
/// first pooled upstream for it, and the requests run through the normal pipeline.
async fn serve_tunnel_http(
    worker: &Worker,
    stream: TcpStream,
    buf: ReadBuf,
    origin: TcpStream,
    target: &TunnelOrigin,
    flow: &mut Flow,
    tunnel: Tunnel,
) {
    let mut key = PoolKey::default();
    key.set(&target.host, target.port);
    worker
        .pool
        .borrow_mut()
        .put(&key, Upstream::new(origin), Instant::now());
    let mut client = Client::tcp(stream, buf, flow.peer);
    let served = serve_http(worker, &mut client, ConnCtx::Tunnel { origin: target }).await;
    let mut moved = client.moved;
    if let Served::Upgraded(u) = served {
        let (up, down) = Box::pin(relay_upgraded_tcp(worker, client, *u)).await;
        moved = (moved.0 + up, moved.1 + down);
        end_inner(worker, flow, &tunnel, moved, None);
    } else {
        end_inner(worker, flow, &tunnel, moved, Some(served));
    }
}

/// Decrypted HTTP/1 of an intercepted session; its origin connections are private to it.
async fn serve_intercepted(
    worker: &Worker,
    parts: Intercepted,
    target: &TunnelOrigin,
    flow: &mut Flow,
) {
    let Intercepted {
        r,
        w,
        session,
        tunnel,
    } = parts;
    let mut client = Client::new(r, w, ReadBuf::with_capacity(CLIENT_BUF_SIZE), flow.peer);
    let ctx = ConnCtx::Intercepted {
        origin: target,
        session: &session,
    };
    let mut served = serve_http(worker, &mut client, ctx).await;
    if let Served::Upgraded(u) = served {
        let Upgraded {
            up,
            handshake,
            flow: mut inner,
            head,
            port,
        } = *u;
        let span = flow_span(&inner);
        upgrade::relay(worker, &mut client, up, &handshake, &mut inner)
            .instrument(span)
            .await;
        let (up, down) = finish_upgraded(worker, &mut inner, &head, port);
        client.moved.0 += up;
        client.moved.1 += down;
        served = Served::Closed;
    }
    let mut key = PoolKey::default();
    key.set_session(session.id, &target.host, target.port);
    worker.pool.borrow_mut().remove(&key);
    let _ = write_within(worker.cfg.timeouts.client_idle, client.w.shutdown()).await;
    end_inner(worker, flow, &tunnel, client.moved, Some(served));
}

/// A tunnel that carried HTTP ended: its line counts the body bytes of the exchanges inside
/// (`moved`, each way).
fn end_inner(
    worker: &Worker,
    flow: &Flow,
    tunnel: &Tunnel,
    moved: (u64, u64),
    served: Option<Served>,
) {
    if let Some(Served::Tunnel { flow: inner, .. }) = served {
        // `connect::open` refuses CONNECT outside a direct proxy connection.
        tracing::error!(id = %inner.id, "CONNECT inside a tunnel was not refused");
    }
    let ended = TunnelEnded {
        up: moved.0,
        down: moved.1,
        end: "done",
        error: None,
    };
    report::tunnel_close(worker, flow, tunnel, &ended);
}

/// The span every debug line of a flow is logged in (`flow{id=0-1f}`); disabled, and nearly
/// free, unless debug logging is on. Lines above debug carry the id as a field instead.
fn flow_span(flow: &Flow) -> tracing::Span {
    tracing::debug_span!("flow", id = %flow.id)
}

/// What reading the next request produced.
enum Next {
    Request(RequestHead),
    /// The client closed, went idle too long, or the worker is shutting down.
    Done,
}

/// What the connection does after an exchange.
enum After {
    Continue,
    Close,
    Tunnel(TcpStream, TunnelOrigin),
    /// The origin's `101` reached the client: relay (route port for the report).
    Upgraded(Upstream, WsHandshake, u16),
}

/// Answer requests on `client` until it closes, fails, asks to close, or opens a tunnel.
pub async fn serve_http<R: ClientRead, W: AsyncWriteRent>(
    worker: &Worker,
    client: &mut Client<R, W>,
    ctx: ConnCtx<'_>,
) -> Served {
    let mut idle = IdleWait::new(
        worker.cfg.timeouts.idle_buffer_hold,
        CLIENT_BUF_SIZE,
        worker.driver,
    );
    let mut first = true;
    loop {
        // Boxed: the request pipeline's future is several KiB. It lives while the connection
        // is busy (one allocation however many requests follow each other) and is freed when
        // the client goes quiet past the hold, so an idle connection does not hold it.
        let busy = pin_boxed(|| serve_busy(worker, client, ctx, &mut idle, first)).await;
        first = false;
        match busy {
            Busy::Ended(served) => return served,
            Busy::Quiet => {}
        }
        let Client { r, buf, out, .. } = &mut *client;
        match r.wait_ready(buf, out, &idle).await {
            Ok(Some(n)) if n > 0 => {}
            Ok(Some(_)) => return Served::Closed,
            Ok(None) => {
                tracing::debug!("client idle timeout");
                return Served::Closed;
            }
            Err(e) => {
                tracing::debug!(error = %e, "client read failed");
                return Served::Closed;
            }
        }
    }
}

/// How a busy stretch of a connection ended.
enum Busy {
    /// The conversation is over.
    Ended(Served),
    /// The client sent nothing during the hold: wait for it without buffers.
    Quiet,
}

/// Requests one after another while the client keeps the connection busy.
async fn serve_busy<R: ClientRead, W: AsyncWriteRent>(
    worker: &Worker,
    client: &mut Client<R, W>,
    ctx: ConnCtx<'_>,
    idle: &mut IdleWait,
    mut first: bool,
) -> Busy {
    loop {
        if client.buf.is_empty() {
            match wait_for_request(worker, client, idle, first).await {
                Waited::Bytes => {}
                Waited::Quiet => return Busy::Quiet,
                Waited::Closed => return Busy::Ended(Served::Closed),
            }
        }
        first = false;
        if let Some(served) = serve_request(worker, client, ctx).await {
            return Busy::Ended(served);
        }
    }
}

/// `Box::pin(make())` without building the future on the stack first and copying all of its
/// (several KiB, mostly not yet used) bytes into the box: allocating first lets the compiler
/// write the new future straight into the allocation.
#[inline(always)]
fn pin_boxed<F: Future>(make: impl FnOnce() -> F) -> Pin<Box<F>> {
    Box::into_pin(Box::write(Box::new_uninit(), make()))
}

/// One request from its head to its report: `None` when the connection stays open for the
/// next one, else how the conversation ended.
async fn serve_request<R: AsyncReadRent, W: AsyncWriteRent>(
    worker: &Worker,
    client: &mut Client<R, W>,
    ctx: ConnCtx<'_>,
) -> Option<Served> {
    let _in_flight = worker.begin_request();
    let mut flow = Flow::start(
        worker.next_flow_id(),
        client.peer,
        worker.cfg.capture_bodies,
    );
    let head = match read_head(worker, client).await {
        Ok(Next::Request(head)) => head,
        Ok(Next::Done) => {
            // Bytes of a request, then EOF: the client gave up on it.
            let error = ProxyError::ClientIo(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "client closed before the request head was complete",
            ));
            report::head_failed(worker, &flow, &error, None);
            return Some(Served::Closed);
        }
        Err(error) => {
            let status = error.status();
            report::head_failed(worker, &flow, &error, status);
            if let Some(status) = status {
                write_error(worker, client, &error, status).await;
            }
            return Some(Served::Closed);
        }
    };
    flow.url = route::request_url(&head, ctx);
    let span = flow_span(&flow);
    match exchange(worker, client, &head, ctx, &mut flow)
        .instrument(span)
        .await
    {
        After::Continue => None,
        After::Close => Some(Served::Closed),
        After::Tunnel(origin, target) => Some(Served::Tunnel {
            origin,
            target,
            flow: Box::new(flow),
        }),
        After::Upgraded(up, handshake, port) => Some(Served::Upgraded(Box::new(Upgraded {
            up,
            handshake,
            flow,
            head,
            port,
        }))),
    }
}

/// A browser fetching its PAC file from the listener itself (`GET /proxy.pac`, origin form):
/// such fetches never carry proxy credentials, so `--auth` does not apply to them. The file
/// only names the proxy the client has already reached.
fn is_direct_pac_fetch(head: &RequestHead) -> bool {
    matches!(head.method, Method::Get | Method::Head) && route::is_pac_path(head.target())
}

/// One request, start to end: route it, answer or forward it, report it.
async fn exchange<R: AsyncReadRent, W: AsyncWriteRent>(
    worker: &Worker,
    client: &mut Client<R, W>,
    head: &RequestHead,
    ctx: ConnCtx<'_>,
    flow: &mut Flow,
) -> After {
    if let (Some(auth), ConnCtx::Proxy) = (&worker.cfg.auth, ctx)
        && !is_direct_pac_fetch(head)
        && let Err(refusal) = auth.check(head.headers.get("proxy-authorization"))
    {
        report::request(worker, flow, head, "");
        let error = ProxyError::ProxyAuthRequired(refusal);
        fail(worker, client, head, flow, &error, 0).await;
        return After::Close;
    }
    let rules = worker.rules.current();
    if head.method == Method::Connect {
        report::request(worker, flow, head, connect_host(head.target()));
        return connect_exchange(worker, client, head, ctx, flow, &rules).await;
    }
    let mut route = match route::route(head, ctx) {
        Ok(route) => route,
        Err(error) => {
            report::request(worker, flow, head, "");
            fail(worker, client, head, flow, &error, 0).await;
            return After::Close;
        }
    };
    if let ConnCtx::Intercepted { session, .. } = ctx {
        flow.rule.clone_from(&session.rule);
    }
    // lynxio's own pages stay reachable whatever the rules say.
    let local = matches!(ctx, ConnCtx::Proxy) && local::is_local(&route);
    let plan = if local {
        Plan::default()
    } else {
        act::plan(&rules, head, &route, ctx)
    };
    if let Some(label) = plan.rule_label() {
        flow.rule = Some(label);
    }
    report::request(worker, flow, head, &route.host);
    if let Some(delay) = plan.delay {
        monoio::time::sleep(delay).await;
    }
    let result = match plan.terminal {
        _ if local => local::answer(worker, client, head, &route, flow)
            .await
            .map(|keep| Forwarded::Done { keep }),
        Some(Terminal::Block(b)) => {
            act::answer(worker, client, head, flow, Answer::Block(b), &plan.rewrites)
                .await
                .map(|keep| Forwarded::Done { keep })
        }
        Some(Terminal::Mock(m)) => {
            act::answer(worker, client, head, flow, Answer::Mock(m), &plan.rewrites)
                .await
                .map(|keep| Forwarded::Done { keep })
        }
        terminal => {
            if let Some(Terminal::Redirect(to)) = terminal {
                act::redirect(&mut route, to);
            }
            let edited = act::edit_request(head, &mut route, &plan.rewrites);
            let sent = edited.as_ref().unwrap_or(head);
            forward::handle(worker, client, sent, &route, ctx, flow, &plan.rewrites).await
        }
    };
    match result {
        // The connection's owner relays it: it knows whether both ends are plain sockets.
        Ok(Forwarded::Upgraded(up, handshake)) => After::Upgraded(up, handshake, route.port),
        Ok(Forwarded::Done { keep }) => {
            flow.complete();
            finish(worker, client, head, flow, route.port);
            next_after_answer(worker, keep)
        }
        Err(error) => {
            fail(worker, client, head, flow, &error, route.port).await;
            After::Close
        }
    }
}

/// A CONNECT: its target, then the rules (a `block` answers it, a `delay` holds it; nothing is
/// dialed for a blocked one), then dial and `200`, after which the connection is the tunnel's.
async fn connect_exchange<R: AsyncReadRent, W: AsyncWriteRent>(
    worker: &Worker,
    client: &mut Client<R, W>,
    head: &RequestHead,
    ctx: ConnCtx<'_>,
    flow: &mut Flow,
    rules: &RuleSet,
) -> After {
    enum Connected {
        Tunnel(TcpStream, TunnelOrigin),
        Blocked { keep: bool },
    }
    let opened = async {
        let (host, port) = connect::target(head, ctx)?;
        if !worker.cfg.dest.connect_port_allowed(port) {
            return Err(ProxyError::DestRefused {
                target: format!("{host}:{port}"),
                reason: format!(
                    "CONNECT to port {port} is not allowed (--connect-ports: {})",
                    ports_list(worker.cfg.dest.connect_ports.as_deref())
                ),
            });
        }
        let plan = act::plan_connect(rules, head, &host, port);
        let block = match plan.terminal {
            Some(Terminal::Block(b)) => Some(b),
            _ => None,
        };
        if block.is_some() || plan.delay.is_some() {
            flow.rule = plan.rule_label();
        }
        if let Some(delay) = plan.delay {
            monoio::time::sleep(delay).await;
        }
        match block {
            Some(b) => act::answer(worker, client, head, flow, Answer::Block(b), &[])
                .await
                .map(|keep| Connected::Blocked { keep }),
            None => connect::open(worker, client, head, &host, port)
                .await
                .map(|(origin, target)| Connected::Tunnel(origin, target)),
        }
    };
    match opened.await {
        Ok(Connected::Tunnel(origin, target)) => {
            flow.response_begins(200);
            worker.metrics.response(200);
            After::Tunnel(origin, target)
        }
        Ok(Connected::Blocked { keep }) => {
            flow.complete();
            finish(worker, client, head, flow, 0);
            next_after_answer(worker, keep)
        }
        Err(error) => {
            fail(worker, client, head, flow, &error, 0).await;
            After::Close
        }
    }
}

/// After a complete answer: another request, unless the answer or a shutdown closes.
fn next_after_answer(worker: &Worker, keep: bool) -> After {
    if keep && !worker.shutting_down.get() {
        After::Continue
    } else {
        After::Close
    }
}

/// `443, 8443` (or `any`).
fn ports_list(ports: Option<&[u16]>) -> String {
    match ports {
        None => "any".to_owned(),
        Some(p) => p.iter().map(u16::to_string).collect::<Vec<_>>().join(", "),
    }
}

/// Report a finished exchange and add its body bytes to the connection's totals.
fn finish<R, W>(
    worker: &Worker,
    client: &mut Client<R, W>,
    head: &RequestHead,
    flow: &mut Flow,
    port: u16,
) {
    client.moved.0 += flow.request_body.bytes;
    client.moved.1 += flow.response.body.bytes;
    report::finish(worker, flow, head, port);
}

/// An exchange failed: answer with the error's status if no response byte has reached the
/// client yet (else the connection just closes), then report it.
async fn fail<R, W: AsyncWriteRent>(
    worker: &Worker,
    client: &mut Client<R, W>,
    head: &RequestHead,
    flow: &mut Flow,
    error: &ProxyError,
    port: u16,
) {
    report::error(worker, error);
    if let Some(status) = flow.fail(error) {
        report::response_from_lynxio(worker, flow, status, ERROR_FIELDS);
        write_error(worker, client, error, status).await;
    }
    finish(worker, client, head, flow, port);
}

/// The host of a CONNECT target, for events (`host:port`, `[v6]:port`).
fn connect_host(target: &[u8]) -> &str {
    let target = std::str::from_utf8(target).unwrap_or_default();
    let host = target.rsplit_once(':').map_or(target, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// What waiting for the next request's first bytes produced.
enum Waited {
    Bytes,
    /// Nothing during the hold: the wait goes on without buffers ([`ClientRead::wait_ready`]).
    Quiet,
    /// Closed, idle timeout, or error.
    Closed,
}

/// Wait for the first bytes of the next request, with the read buffer for the hold at most.
async fn wait_for_request<R: ClientRead, W: AsyncWriteRent>(
    worker: &Worker,
    client: &mut Client<R, W>,
    idle: &mut IdleWait,
    first: bool,
) -> Waited {
    let t = &worker.cfg.timeouts;
    let limit = if first { t.client_head } else { t.client_idle };
    // Idle between requests: a buffer that grew for a large body goes back to the default.
    client.buf.shrink_idle(CLIENT_BUF_SIZE);
    match client.r.read_held(&mut client.buf, idle, limit).await {
        Ok(Held::Read(n)) if n > 0 => Waited::Bytes,
        Ok(Held::Read(_)) => Waited::Closed,
        Ok(Held::HoldOver) => Waited::Quiet,
        Ok(Held::TimedOut) => {
            tracing::debug!("client idle timeout");
            Waited::Closed
        }
        Err(e) => {
            tracing::debug!(error = %e, "client read failed");
            Waited::Closed
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

/// Header fields of lynxio's error answers (for events; the writer adds Content-Length).
const ERROR_FIELDS: &[(&[u8], &[u8])] = &[
    (b"Content-Type", b"text/plain; charset=utf-8"),
    (b"Connection", b"close"),
];

/// Answer with `status` and the error's short text body; the connection closes after it.
async fn write_error<R, W: AsyncWriteRent>(
    worker: &Worker,
    client: &mut Client<R, W>,
    error: &ProxyError,
    status: u16,
) {
    client.out.clear();
    let mut body = error.body(&worker.cfg);
    body.push('\n');
    http1::write_local_response(
        &mut client.out,
        &http1::LocalResponse {
            status,
            reason: http1::reason_phrase(status),
            content_type: b"text/plain; charset=utf-8",
            extra: error.extra_fields(),
            body: body.as_bytes(),
            close: true,
            head_only: false,
        },
    );
    let limit = worker.cfg.timeouts.client_idle;
    if let Err(e) = write_within(limit, write_vec(&mut client.w, &mut client.out)).await {
        tracing::debug!(error = %e, "could not send error response");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future `f` returns, without calling it.
    fn future_size<A, B, C, Fut, F: FnOnce(A, B, C) -> Fut>(_: F) -> usize {
        std::mem::size_of::<Fut>()
    }

    /// An idle keep-alive connection or tunnel holds its task's future for as long as it
    /// lives, so the long-lived futures stay small: the request pipeline (several KiB) is
    /// boxed per busy stretch, a tunnel's sniff and relay apart from the request loop. The
    /// bounds are loose: they catch the pipeline being inlined again, not a field added.
    #[test]
    fn long_lived_futures_stay_small() {
        type R = TcpOwnedReadHalf;
        type W = TcpOwnedWriteHalf;
        let pipeline = future_size(serve_request::<R, W>);
        let conn = future_size(serve_tcp);
        let requests = future_size(serve_http::<R, W>);
        assert!(
            pipeline > 4096,
            "the pipeline is {pipeline} bytes: is boxing it still worth it?"
        );
        assert!(conn < 2048, "serve_tcp's future is {conn} bytes");
        assert!(requests < 2560, "serve_http's future is {requests} bytes");
    }

    #[test]
    fn connect_hosts() {
        assert_eq!(connect_host(b"a.test:443"), "a.test");
        assert_eq!(connect_host(b"[::1]:443"), "::1");
        assert_eq!(connect_host(b"noport"), "noport");
    }
}
