//! Step 1 of every exchange: is this a request lynxio forwards, and to where? The answer
//! depends on where the connection's requests come from ([`ConnCtx`]): absolute-form `http://`
//! from a proxy client, or anything inside a CONNECT tunnel (plain or intercepted), which goes
//! to the tunnel's origin. Also builds the request's full URL for logs and events.

use std::borrow::Cow;

use crate::error::ProxyError;
use crate::http1::{self, RequestHead, Scheme, Target};

use super::ctx::{ConnCtx, Hop, Route};

/// Longest request-target kept in a flow's URL (logs, events); longer ones are cut.
pub const MAX_URL_TARGET: usize = 8 * 1024;

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
            authority: Cow::Borrowed(authority),
            path,
            hop: Hop::AsReceived,
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
            authority: Cow::Borrowed(authority),
            path,
            hop: Hop::AsReceived,
        }),
        (Target::Origin(path), Some(origin)) => Ok(Route {
            host: Cow::Borrowed(&origin.host),
            port: origin.port,
            authority: Cow::Borrowed(head.headers.get("host").unwrap_or(&origin.authority)),
            path: Cow::Borrowed(path),
            hop: Hop::AsReceived,
        }),
        // A browser fetches its PAC file from the proxy directly, not through it:
        // `http://127.0.0.1:8080/proxy.pac` is lynxio's own page, like `http://lynxio.ca/proxy.pac`.
        (Target::Origin(path), None) if is_pac_path(path) => Ok(Route {
            host: Cow::Borrowed(super::local::HOST),
            port: 80,
            authority: Cow::Borrowed(super::local::HOST.as_bytes()),
            path: Cow::Borrowed(path),
            hop: Hop::AsReceived,
        }),
        _ => Err(ProxyError::NotProxyRequest),
    }
}

/// The paths a proxy auto-config file is served at (query ignored).
pub fn is_pac_path(target: &[u8]) -> bool {
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    matches!(path, b"/proxy.pac" | b"/wpad.dat")
}

/// The request's full URL: the target as sent, with `http://` or `https://` and the tunnel's
/// authority put in front of an origin-form target inside a tunnel (target capped at
/// [`MAX_URL_TARGET`]).
pub fn request_url(head: &RequestHead, ctx: ConnCtx<'_>) -> String {
    let target = head.target();
    let target = String::from_utf8_lossy(target.get(..MAX_URL_TARGET).unwrap_or(target));
    let (scheme, origin) = match ctx {
        ConnCtx::Proxy => return target.into_owned(),
        ConnCtx::Tunnel { origin } => ("http", origin),
        ConnCtx::Intercepted { origin, .. } => ("https", origin),
    };
    if !target.starts_with('/') {
        return target.into_owned();
    }
    let authority = String::from_utf8_lossy(&origin.authority);
    let mut url = String::with_capacity(scheme.len() + 3 + authority.len() + target.len());
    url.push_str(scheme);
    url.push_str("://");
    url.push_str(&authority);
    url.push_str(&target);
    url
}
