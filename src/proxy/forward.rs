//! The forwarding pipeline for one routed exchange, top to bottom as static functions: get an
//! upstream connection ([`upstream::get`]: pool, else resolve + dial), send the rewritten head,
//! then stream the request body to the origin while the response head(s) come back — at the
//! same time, so `Expect: 100-continue` and origins that answer before reading the whole body
//! both work — and stream the response body to the client, filling in the flow as it goes
//! (`response_started` before the first response byte, bodies' byte counts, status, TTFB).
//! Decides keep-alive on both sides and returns clean upstream connections to the pool. A
//! reused pooled connection that turns out dead before any response byte (interim ones
//! included) is retried once on a fresh one when the request is replayable. At most
//! [`MAX_INTERIM_RESPONSES`] 1xx responses are accepted per request.

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use monoio::io::{AsyncReadRent, AsyncWriteRent};

use crate::error::ProxyError;
use crate::http1::{
    self, BodyKind, ConnectionHeader, RequestHead, RequestRewrite, ResponseHead, ResponseRewrite,
    Version,
};
use crate::net::ReadBuf;
use crate::net::buf::write_vec;
use crate::observe::event::FlowId;
use crate::rules::Rewrite;

use super::body::{self, ChunkMode, RelayError, SpliceLink, write_within};
use super::ctx::flow::{ResponseSide, Tally};
use super::ctx::{Client, ConnCtx, Flow, Route, Upstream, Worker, WsHandshake};
use super::{act, report, upstream};

/// Bodies up to this size that are already buffered go out in the same write as their head.
pub const COALESCE_MAX: u64 = 16 * 1024;
/// Interim (1xx) responses accepted before a request's final response. Real origins send one or
/// two (`100 Continue`, `103 Early Hints`); an endless stream of them would keep an exchange
/// alive forever without ever answering, so beyond this the exchange ends with a 502.
pub const MAX_INTERIM_RESPONSES: usize = 32;
/// `Via` values added to forwarded messages, by the version the message was received with.
const VIA_11: &[u8] = b"1.1 lynxio";
const VIA_10: &[u8] = b"1.0 lynxio";

/// The `Via` value for a message received with `version` (RFC 9110 §7.6.3).
fn via_for(version: Version) -> &'static [u8] {
    match version {
        Version::Http11 => VIA_11,
        Version::Http10 => VIA_10,
    }
}

/// How a forwarded exchange ended.
pub enum Forwarded {
    /// The response is complete; `keep`: the client connection may serve another request.
    Done { keep: bool },
    /// The origin switched protocols (`101` to a WebSocket handshake), and the client has the
    /// `101`: both connections now belong to the upgraded protocol.
    Upgraded(Upstream, WsHandshake),
}

/// Run one request through the pipeline (route already decided). On an error,
/// `flow.response_started` tells the caller whether it may still answer.
pub async fn handle<R: AsyncReadRent, W: AsyncWriteRent>(
    worker: &Worker,
    client: &mut Client<R, W>,
    head: &RequestHead,
    route: &Route<'_>,
    ctx: ConnCtx<'_>,
    flow: &mut Flow,
    response_edits: &[&Rewrite],
) -> Result<Forwarded, ProxyError> {
    let key = upstream::pool_key(route, ctx);

    let mut req_out = Vec::with_capacity(head_capacity(head));
    let via = via_for(head.version);
    http1::write_request(
        &mut req_out,
        head,
        &RequestRewrite {
            path: &route.path,
            host: &route.authority,
            via,
            keep_upgrade: head.is_websocket_upgrade(),
        },
    );
    // A small, fully buffered body travels with the head; the request is then replayable.
    let mut body_pending = head.body != BodyKind::Empty;
    if let BodyKind::Length(n) = head.body
        && n <= COALESCE_MAX
        && client.buf.len() as u64 >= n
    {
        let n = n as usize;
        flow.request_body
            .keep(client.buf.bytes().get(..n).unwrap_or_default());
        flow.request_body.count(n);
        client.buf.take_into(&mut req_out, n);
        body_pending = false;
    }
    let replayable = !body_pending && head.method.is_idempotent();

    let mut fresh_only = false;
    loop {
        let mut up = upstream::get(worker, route, &key, fresh_only, ctx, flow).await?;
        let reused = up.reused;
        let sent = write_within(
            worker.cfg.timeouts.response,
            write_all_keep(&mut up.w, &mut req_out),
        )
        .await;
        let outcome = match sent {
            // The origin took no bytes of the head for the whole response timeout (the head
            // is gone with the abandoned write, so this is never retried).
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Err(ProxyError::ResponseTimeout),
            Err(e) => Err(ProxyError::UpstreamIo(e)),
            Ok(()) if body_pending => {
                exchange_with_body(worker, client, head, &mut up, flow, response_edits).await
            }
            Ok(()) => {
                flow.request_complete.set(true);
                let link = splice_link(worker, up.plain_socket(), client.socket);
                let Upstream { r, buf, .. } = &mut up;
                let mut resp = Receiving::of(flow, response_edits);
                receive(
                    worker,
                    &mut client.w,
                    &mut client.out,
                    r,
                    buf,
                    head,
                    &mut resp,
                    link,
                )
                .await
            }
        };
        match outcome {
            Ok(end) if end.upgraded.is_some() => {
                let handshake = end.upgraded.unwrap_or_default();
                return Ok(Forwarded::Upgraded(up, handshake));
            }
            Ok(end) => {
                if end.upstream_reusable {
                    up.reused = true;
                    worker.pool.borrow_mut().put(&key, up, Instant::now());
                }
                return Ok(Forwarded::Done {
                    keep: end.client_keep,
                });
            }
            // Nothing of a response reached the client (not even an interim one), so the
            // request can go again on a fresh connection.
            Err(e)
                if reused
                    && replayable
                    && !flow.response_started.get()
                    && flow.response.interim_sent == 0
                    && is_stale(&e) =>
            {
                tracing::debug!(id = %flow.id, error = %e, "pooled connection was stale; retrying");
                fresh_only = true;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Sockets a body may be spliced between (`src` → `dst`): both plain TCP, and splice on.
fn splice_link(
    worker: &Worker,
    src: Option<std::os::fd::RawFd>,
    dst: Option<std::os::fd::RawFd>,
) -> Option<SpliceLink<'_>> {
    if !worker.cfg.splice {
        return None;
    }
    Some(SpliceLink {
        src: src?,
        dst: dst?,
        pools: &worker.tunnel_pools,
        min: worker.cfg.splice_body_min,
    })
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

/// How an exchange ended.
struct End {
    client_keep: bool,
    upstream_reusable: bool,
    /// The origin's `101` (to a WebSocket handshake) went to the client, agreeing to this.
    upgraded: Option<WsHandshake>,
}

/// The parts of the flow the response side writes while the request body may still be
/// flowing (the two run at once, so each gets its own fields).
struct Receiving<'f> {
    id: FlowId,
    /// The flow's host for event filters (set only when someone reads events).
    host: &'f Option<std::sync::Arc<str>>,
    started: Instant,
    response: &'f mut ResponseSide,
    response_started: &'f Cell<bool>,
    request_complete: &'f Cell<bool>,
    /// Rules' edits to the final response head, in order.
    edits: &'f [&'f Rewrite],
}

impl<'f> Receiving<'f> {
    fn of(flow: &'f mut Flow, edits: &'f [&'f Rewrite]) -> Self {
        Receiving {
            id: flow.id,
            host: &flow.host,
            started: flow.started,
            response: &mut flow.response,
            response_started: &flow.response_started,
            request_complete: &flow.request_complete,
            edits,
        }
    }
}

/// Step 3 (request has a body still to stream): body up and response down concurrently.
/// If the client's upload fails after the response has started, the origin is told no more
/// body is coming (write side shut) and the response still runs to its end — the client gets
/// exactly what the origin sent — then both connections close.
async fn exchange_with_body<R: AsyncReadRent, W: AsyncWriteRent>(
    worker: &Worker,
    client: &mut Client<R, W>,
    head: &RequestHead,
    up: &mut Upstream,
    flow: &mut Flow,
    edits: &[&Rewrite],
) -> Result<End, ProxyError> {
    let idle = worker.cfg.timeouts.client_idle;
    let up_link = splice_link(worker, client.socket, up.plain_socket());
    let down_link = splice_link(worker, up.plain_socket(), client.socket);
    let Client { r, w, buf, out, .. } = client;
    let Upstream {
        r: up_r,
        w: up_w,
        buf: up_buf,
        ..
    } = up;
    let Flow {
        id,
        host,
        started,
        request_body,
        request_complete,
        request_error,
        response,
        response_started,
        ..
    } = flow;
    let (response_started, request_complete) = (&*response_started, &*request_complete);
    let send = pin!(async {
        let res = body::relay(
            r,
            buf,
            up_w,
            head.body,
            ChunkMode::Verbatim,
            idle,
            request_body,
            up_link,
        )
        .await;
        match &res {
            Ok(()) => request_complete.set(true),
            Err(RelayError::Read(_) | RelayError::Eof | RelayError::Timeout)
                if response_started.get() =>
            {
                let _ = write_within(idle, up_w.shutdown()).await;
            }
            Err(_) => {}
        }
        res
    });
    let mut recv_state = Receiving {
        id: *id,
        host,
        started: *started,
        response,
        response_started,
        request_complete,
        edits,
    };
    let recv = pin!(receive(
        worker,
        w,
        out,
        up_r,
        up_buf,
        head,
        &mut recv_state,
        down_link,
    ));
    let mut send = Some(send);
    let mut recv = recv;
    let mut cut_short = None;
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
                    return Poll::Ready(Err(ProxyError::BadRequest(e)));
                }
                Err(other) => {
                    let error = ProxyError::ClientBody(other.to_string());
                    if !response_started.get() {
                        return Poll::Ready(Err(error));
                    }
                    cut_short = Some(error);
                }
            }
        }
        recv.as_mut().poll(cx)
    })
    .await;
    if let Some(error) = cut_short {
        tracing::debug!(id = %id, %error, "request body cut short after the response started");
        *request_error = Some(error);
    }
    let mut end = result?;
    if !request_complete.get() {
        // The response finished before the request body: the client connection is out of step
        // and the upstream one holds half a request. Close both.
        end.client_keep = false;
        end.upstream_reusable = false;
    }
    Ok(end)
}

/// A failure while relaying the response body, by the side that failed.
fn body_error(e: RelayError) -> ProxyError {
    match e {
        RelayError::Write(e) => ProxyError::ClientIo(e),
        RelayError::Framing(e) => ProxyError::BadResponse(e),
        RelayError::Timeout => ProxyError::ResponseTimeout,
        RelayError::Read(e) => ProxyError::UpstreamIo(e),
        RelayError::Eof => ProxyError::UpstreamIo(std::io::ErrorKind::UnexpectedEof.into()),
    }
}

/// Step 4: read the response head(s), relay interim responses, then the final response
/// (its body spliced over `link` when it qualifies).
#[allow(clippy::too_many_arguments)]
async fn receive<W: AsyncWriteRent, UR: AsyncReadRent>(
    worker: &Worker,
    cw: &mut W,
    out: &mut Vec<u8>,
    up_r: &mut UR,
    up_buf: &mut ReadBuf,
    req: &RequestHead,
    flow: &mut Receiving<'_>,
    link: Option<SpliceLink<'_>>,
) -> Result<End, ProxyError> {
    let t = &worker.cfg.timeouts;
    let mut interim = 0usize;
    let mut resp = loop {
        let resp = read_response_head(worker, up_r, up_buf, t.response).await?;
        if resp.status >= 200 {
            break resp;
        }
        if resp.status == 101 {
            if req.is_websocket_upgrade() && resp.accepts_websocket() {
                return switch(worker, cw, out, &resp, flow).await;
            }
            return Err(ProxyError::BadResponse(http1::ParseError {
                kind: http1::ParseErrorKind::Malformed,
                detail: "101 Switching Protocols without a WebSocket upgrade request",
            }));
        }
        interim += 1;
        if interim > MAX_INTERIM_RESPONSES {
            return Err(ProxyError::BadResponse(http1::ParseError {
                kind: http1::ParseErrorKind::Malformed,
                detail: "origin sent too many interim responses",
            }));
        }
        if req.version == Version::Http11 {
            out.clear();
            http1::write_interim(out, &resp);
            flow.response.interim_sent = flow.response.interim_sent.saturating_add(1);
            write_within(t.response, write_vec(cw, out))
                .await
                .map_err(ProxyError::ClientIo)?;
        }
    };
    let kind = resp
        .body_kind(&req.method)
        .map_err(ProxyError::BadResponse)?;
    if !flow.edits.is_empty() {
        act::edit_response(&mut resp.headers, flow.edits);
    }
    let dechunk = kind == BodyKind::Chunked && req.version == Version::Http10;
    let upstream_keep = resp.wants_keep_alive();
    let client_keep = req.wants_keep_alive()
        && !worker.shutting_down.get()
        && kind != BodyKind::UntilClose
        && !dechunk
        && flow.request_complete.get();
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
    let tally: &mut Tally = &mut flow.response.body;
    if let BodyKind::Length(n) = kind
        && n <= COALESCE_MAX
        && up_buf.len() as u64 >= n
    {
        let n = n as usize;
        tally.keep(up_buf.bytes().get(..n).unwrap_or_default());
        tally.count(n);
        up_buf.take_into(out, n);
        remaining = BodyKind::Empty;
    }
    // From here on a failure can only close the connection: the client may hold bytes of
    // this response.
    let ttfb = flow
        .response
        .begin(resp.status, flow.response_started, flow.started);
    report::response_from_origin(worker, flow.id, flow.host, &resp, ttfb);
    write_within(t.response, write_vec(cw, out))
        .await
        .map_err(ProxyError::ClientIo)?;
    let mode = if dechunk {
        ChunkMode::Dechunk
    } else {
        ChunkMode::Verbatim
    };
    body::relay(
        up_r,
        up_buf,
        cw,
        remaining,
        mode,
        t.response,
        &mut flow.response.body,
        link,
    )
    .await
    .map_err(body_error)?;
    Ok(End {
        client_keep,
        upstream_reusable: upstream_keep
            && kind != BodyKind::UntilClose
            && up_buf.is_empty()
            && flow.request_complete.get(),
        upgraded: None,
    })
}

/// The origin accepted a WebSocket handshake: relay its `101` (Upgrade and
/// `Connection: upgrade` kept, `Sec-WebSocket-*` untouched) and hand both connections over.
async fn switch<W: AsyncWriteRent>(
    worker: &Worker,
    cw: &mut W,
    out: &mut Vec<u8>,
    resp: &ResponseHead,
    flow: &mut Receiving<'_>,
) -> Result<End, ProxyError> {
    out.clear();
    http1::write_response(
        out,
        resp,
        &ResponseRewrite {
            via: via_for(resp.version),
            connection: ConnectionHeader::None,
            strip_transfer_encoding: false,
            keep_upgrade: true,
        },
    );
    let ttfb = flow
        .response
        .begin(101, flow.response_started, flow.started);
    report::response_from_origin(worker, flow.id, flow.host, resp, ttfb);
    write_within(worker.cfg.timeouts.response, write_vec(cw, out))
        .await
        .map_err(ProxyError::ClientIo)?;
    let text = |name: &str| {
        let values: Vec<_> = resp
            .headers
            .get_all(name)
            .map(String::from_utf8_lossy)
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    };
    Ok(End {
        client_keep: false,
        upstream_reusable: false,
        upgraded: Some(WsHandshake {
            subprotocol: text("sec-websocket-protocol"),
            extensions: text("sec-websocket-extensions"),
        }),
    })
}

/// Read one response head from the origin within `timeout`.
async fn read_response_head<UR: AsyncReadRent>(
    worker: &Worker,
    up_r: &mut UR,
    up_buf: &mut ReadBuf,
    timeout: Duration,
) -> Result<ResponseHead, ProxyError> {
    let limits = &worker.cfg.head_limits;
    let deadline = Instant::now() + timeout;
    loop {
        if !up_buf.is_empty()
            && let Some((resp, len)) =
                http1::parse_response(up_buf.bytes(), limits).map_err(ProxyError::BadResponse)?
        {
            up_buf.consume(len);
            return Ok(resp);
        }
        let room = limits.max_head_bytes.saturating_sub(up_buf.len()).max(1);
        match monoio::time::timeout_at(deadline.into(), up_buf.fill(up_r, room)).await {
            Ok(Ok(0)) => {
                return Err(ProxyError::UpstreamIo(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "origin closed the connection before responding",
                )));
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(ProxyError::UpstreamIo(e)),
            Err(_) => return Err(ProxyError::ResponseTimeout),
        }
    }
}
