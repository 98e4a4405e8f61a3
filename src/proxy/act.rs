//! Rules acting on one request, as plain steps of the exchange: [`plan`] asks the compiled
//! rules (skipped outright when no request rule exists) what to do with a routed request;
//! [`edit_request`] applies the matched rewrites to what is sent (headers, path prefix, Host);
//! [`redirect`] points the route at another origin; [`edit_response`] applies the response-side
//! rewrites to a head before it reaches the client; [`answer`] writes a `block` or `mock`
//! response — a mock's `file` streamed from disk in chunks, any size — without contacting any
//! origin. Rewrites apply in file order, so a later `set` of the same header wins. Framing and
//! connection fields never change here: the rules compiler refuses them.

use std::borrow::Cow;

use bytes::Bytes;
use monoio::buf::IoBufMut;
use monoio::io::AsyncWriteRent;

use crate::error::ProxyError;
use crate::http1::{self, BodyKind, Headers, Method, RequestHead, Version};
use crate::net::buf::write_vec;
use crate::rules::{Block, Mock, MockBody, Plan, Redirect, RequestView, Rewrite, RuleSet, Scheme};

use super::body::write_within;
use super::ctx::flow::Outcome;
use super::ctx::{Client, ConnCtx, Flow, Hop, Route, Worker};
use super::forward::COALESCE_MAX;
use super::report;

/// Bytes of a mock `file` read from disk per write to the client.
pub const MOCK_FILE_CHUNK: usize = 64 * 1024;

/// What the rules want done with a routed request (an empty plan when no request rule exists:
/// then no view of the request is even built).
pub fn plan<'r>(
    rules: &'r RuleSet,
    head: &RequestHead,
    route: &Route<'_>,
    ctx: ConnCtx<'_>,
) -> Plan<'r> {
    if !rules.has_request_rules() {
        return Plan::default();
    }
    let path = route.path.split(|&b| b == b'?').next().unwrap_or_default();
    rules.plan(&RequestView {
        scheme: match ctx {
            ConnCtx::Intercepted { .. } => Scheme::Https,
            _ => Scheme::Http,
        },
        host: route.host.trim_end_matches('.'),
        port: route.port,
        method: head.method_str(),
        // The head parser admits only visible ASCII in the target.
        path: std::str::from_utf8(path).unwrap_or_default(),
        headers: &head.headers,
    })
}

/// The plan for a CONNECT to `host:port`, before anything is dialed (only `block` and `delay`
/// can act on a tunnel; the rest need interception to see requests).
pub fn plan_connect<'r>(rules: &'r RuleSet, head: &RequestHead, host: &str, port: u16) -> Plan<'r> {
    if !rules.has_request_rules() {
        return Plan::default();
    }
    rules.plan(&RequestView {
        scheme: Scheme::Http,
        host: host.trim_end_matches('.'),
        port,
        method: head.method_str(),
        path: "",
        headers: &head.headers,
    })
}

/// Points `route` at the redirect's origin; the Host sent becomes its authority only when the
/// rule says `rewrite_host`.
pub fn redirect(route: &mut Route<'_>, to: &Redirect) {
    route.host = Cow::Owned(to.host.clone());
    route.port = to.port;
    route.hop = if to.tls { Hop::Tls } else { Hop::Plain };
    if to.rewrite_host {
        route.authority = Cow::Owned(to.authority().into_bytes());
    }
}

/// Applies the request side of `rewrites` in order: `path_prefix` to the target sent, header
/// removals and sets to a copy of the head (`None`: the head is sent as received). A set
/// `host` becomes the Host sent.
pub fn edit_request(
    head: &RequestHead,
    route: &mut Route<'_>,
    rewrites: &[&Rewrite],
) -> Option<RequestHead> {
    let mut edited: Option<RequestHead> = None;
    for rw in rewrites {
        if let Some((from, to)) = &rw.path_prefix
            && let Some(rest) = route.path.strip_prefix(from.as_bytes())
        {
            let mut path = Vec::with_capacity(to.len() + rest.len());
            path.extend_from_slice(to.as_bytes());
            path.extend_from_slice(rest);
            route.path = Cow::Owned(path);
        }
        if rw.remove_request_headers.is_empty() && rw.set_request_headers.is_empty() {
            continue;
        }
        let h = &mut edited.get_or_insert_with(|| head.clone()).headers;
        for name in &rw.remove_request_headers {
            h.remove(name);
        }
        for (name, value) in &rw.set_request_headers {
            if name == "host" {
                route.authority = Cow::Owned(value.clone().into_bytes());
            } else {
                h.remove(name);
                h.push(name.as_bytes(), value.as_bytes());
            }
        }
    }
    edited
}

/// Applies the response side of `rewrites`, in order, to a response's fields.
pub fn edit_response(fields: &mut Headers, rewrites: &[&Rewrite]) {
    for rw in rewrites {
        for name in &rw.remove_response_headers {
            fields.remove(name);
        }
        for (name, value) in &rw.set_response_headers {
            fields.remove(name);
            fields.push(name.as_bytes(), value.as_bytes());
        }
    }
}

/// A response a rule makes: `block` or `mock`.
#[derive(Debug, Clone, Copy)]
pub enum Answer<'r> {
    Block(&'r Block),
    Mock(&'r Mock),
}

/// The body of a rule's answer, opened.
enum AnswerBody {
    Bytes(Bytes),
    File {
        file: monoio::fs::File,
        len: u64,
        path: String,
    },
}

/// Write a rule's answer (response-side rewrites applied). Ok(true): the client connection may
/// serve another request. A request body is not read: the connection closes afterwards so it is
/// never taken for a request.
pub async fn answer<R, W: AsyncWriteRent>(
    worker: &Worker,
    client: &mut Client<R, W>,
    head: &RequestHead,
    flow: &mut Flow,
    answer: Answer<'_>,
    rewrites: &[&Rewrite],
) -> Result<bool, ProxyError> {
    let close = !matches!(head.body, BodyKind::Empty | BodyKind::Length(0))
        || head.version == Version::Http10
        || head.conn.close
        || worker.shutting_down.get();
    let mut fields = Headers::default();
    let (status, body, what) = match answer {
        Answer::Block(b) => {
            fields.push(b"content-type", b"text/plain; charset=utf-8");
            (b.status, AnswerBody::Bytes(b.body.clone()), "blocked")
        }
        Answer::Mock(m) => {
            for (name, value) in &m.headers {
                fields.push(name.as_bytes(), value.as_bytes());
            }
            (m.status, open_body(&m.body).await?, "mocked")
        }
    };
    edit_response(&mut fields, rewrites);
    let len = match &body {
        AnswerBody::Bytes(b) => b.len() as u64,
        AnswerBody::File { len, .. } => *len,
    };
    let mut shown: Vec<(&[u8], &[u8])> = fields.iter().collect();
    let connection: &[u8] = if close { b"close" } else { b"keep-alive" };
    shown.push((b"connection", connection));
    report::response_from_lynxio(worker, flow, status, &shown);
    flow.outcome = Outcome::Answered {
        status,
        reason: format!("{what} by a rule"),
    };
    let timeout = worker.cfg.timeouts.client_idle;
    client.out.clear();
    http1::write_answer_head(&mut client.out, status, &fields, len, close);
    let head_only = head.method == Method::Head;
    match body {
        _ if head_only => {}
        AnswerBody::Bytes(b) => {
            flow.response.body.keep(&b);
            flow.response.body.count(b.len());
            // Small bodies go out in the same write as their head, as forwarded ones do.
            if b.len() as u64 <= COALESCE_MAX {
                client.out.extend_from_slice(&b);
            } else {
                send(client, timeout).await?;
                client.out.extend_from_slice(&b);
            }
        }
        AnswerBody::File { file, len, path } => {
            send(client, timeout).await?;
            stream_file(client, flow, &file, len, &path, timeout).await?;
        }
    }
    send(client, timeout).await?;
    Ok(!close)
}

async fn open_body(body: &MockBody) -> Result<AnswerBody, ProxyError> {
    match body {
        MockBody::Inline(b) => Ok(AnswerBody::Bytes(b.clone())),
        MockBody::File(path) => {
            let shown = path.display().to_string();
            let fail = |source| ProxyError::MockFile {
                path: shown.clone(),
                source,
            };
            let file = monoio::fs::File::open(path).await.map_err(fail)?;
            let meta = std::fs::metadata(path).map_err(fail)?;
            if !meta.is_file() {
                return Err(fail(std::io::Error::other("not a regular file")));
            }
            Ok(AnswerBody::File {
                file,
                len: meta.len(),
                path: shown,
            })
        }
    }
}

/// Sends `len` bytes of `file` after the head. A file that shrank since its size was read
/// ends the connection (the promised length cannot be kept).
async fn stream_file<R, W: AsyncWriteRent>(
    client: &mut Client<R, W>,
    flow: &mut Flow,
    file: &monoio::fs::File,
    len: u64,
    path: &str,
    timeout: std::time::Duration,
) -> Result<(), ProxyError> {
    let mut pos = 0u64;
    let mut chunk = Vec::with_capacity(MOCK_FILE_CHUNK.min(len as usize));
    while pos < len {
        let want = MOCK_FILE_CHUNK.min((len - pos) as usize);
        chunk.clear();
        // Never more than the promised length, even if the file grew meanwhile.
        let (res, slice) = file.read_at(chunk.slice_mut(0..want), pos).await;
        chunk = slice.into_inner();
        let fail = |source| ProxyError::MockFile {
            path: path.to_owned(),
            source,
        };
        match res.map_err(fail)? {
            0 => {
                return Err(fail(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the file shrank while it was being sent",
                )));
            }
            n => pos += n as u64,
        }
        flow.response.body.keep(&chunk);
        flow.response.body.count(chunk.len());
        write_within(timeout, write_vec(&mut client.w, &mut chunk))
            .await
            .map_err(ProxyError::ClientIo)?;
    }
    Ok(())
}

async fn send<R, W: AsyncWriteRent>(
    client: &mut Client<R, W>,
    timeout: std::time::Duration,
) -> Result<(), ProxyError> {
    write_within(timeout, write_vec(&mut client.w, &mut client.out))
        .await
        .map_err(ProxyError::ClientIo)
}
