//! Requests lynxio answers itself instead of forwarding: `http://lynxio.ca/` (like mitm.it) —
//! a short page on trusting lynxio's root CA on Linux, macOS, Windows and Firefox, the CA
//! certificate itself at `/cert`, and a proxy auto-config file at `/proxy.pac` (and
//! `/wpad.dat`) naming the listener the request came in on, loopback `DIRECT`. Reached through
//! the proxy like any site (`curl -x http://127.0.0.1:8080 http://lynxio.ca/cert`); the PAC
//! file also directly (`http://127.0.0.1:8080/proxy.pac`), as browsers fetch it. Only plain
//! HTTP, only GET/HEAD.

use monoio::io::AsyncWriteRent;

use crate::http1::{self, BodyKind, LocalResponse, Method, RequestHead, Version};
use crate::net::buf::write_vec;

use super::body::write_within;
use super::ctx::flow::Outcome;
use super::ctx::{Client, Flow, Route, Worker};
use super::report;
use crate::error::ProxyError;

/// Extra header fields of a local response.
type Fields<'a> = &'a [(&'a [u8], &'a [u8])];

/// The host lynxio serves its own pages on.
pub const HOST: &str = "lynxio.ca";

/// Whether `route` is for lynxio itself.
pub fn is_local(route: &Route<'_>) -> bool {
    route.host == HOST
}

const PAGE_HEAD: &str = "<!doctype html><html><head><meta charset=\"utf-8\">\
<title>lynxio CA</title></head><body><h1>lynxio root CA</h1>";

const PAGE_TRUST: &str = "<p><a href=\"/cert\">Download the CA certificate</a> (PEM), then \
trust it where your client looks:</p><ul>\
<li><b>Linux</b> (Debian/Ubuntu): <code>sudo cp lynxio-ca.pem \
/usr/local/share/ca-certificates/lynxio-ca.crt &amp;&amp; sudo update-ca-certificates</code>; \
Fedora: <code>sudo cp lynxio-ca.pem /etc/pki/ca-trust/source/anchors/ &amp;&amp; \
sudo update-ca-trust</code></li>\
<li><b>macOS</b>: <code>sudo security add-trusted-cert -d -r trustRoot -k \
/Library/Keychains/System.keychain lynxio-ca.pem</code></li>\
<li><b>Windows</b>: <code>certutil -addstore -f ROOT lynxio-ca.pem</code> (as administrator)</li>\
<li><b>Firefox</b>: Settings → Privacy &amp; Security → Certificates → View Certificates → \
Authorities → Import, tick “Trust this CA to identify websites”</li>\
<li><b>curl</b>: <code>curl --cacert lynxio-ca.pem …</code></li></ul>\
<p>Or let lynxio do it: <code>lynxio ca install</code> trusts the CA in the system store and in \
the NSS databases of Chromium and Firefox (<code>lynxio ca uninstall</code> undoes it).</p>\
<p>Only trust a CA whose key you control: whoever holds it can impersonate any site to you.</p>";

const PAGE_NO_CA: &str = "<p>lynxio could not load or create its CA (see its log: the CA \
directory, <code>--ca-dir</code>, must be readable and writable by lynxio).</p>";

const PAGE_PAC: &str = "<h2>Proxy settings</h2><p>Point a browser or the system at the \
<a href=\"/proxy.pac\">proxy auto-config file</a> (also <code>/wpad.dat</code>): everything \
goes through this listener, loopback goes direct. Browsers fetch it from the proxy itself: \
use <code>http://ADDRESS:PORT/proxy.pac</code> with the address you gave this proxy.</p>";

const PAGE_TAIL: &str = "</body></html>\n";

/// The PAC file for a client that reached lynxio on `listener`: loopback and `localhost`
/// direct, everything else through this proxy.
pub fn pac_file(listener: std::net::SocketAddr) -> String {
    format!(
        "// lynxio proxy auto-config: everything through the proxy at {listener}, loopback direct.\n\
         function FindProxyForURL(url, host) {{\n\
         \x20 if (host === \"localhost\" || shExpMatch(host, \"*.localhost\") ||\n\
         \x20     shExpMatch(host, \"127.*\") || host === \"::1\" || host === \"[::1]\")\n\
         \x20   return \"DIRECT\";\n\
         \x20 return \"PROXY {listener}\";\n\
         }}\n"
    )
}

/// Answer a request for `lynxio.ca`. Ok(true): the client connection may serve another.
pub async fn answer<R, W: AsyncWriteRent>(
    worker: &Worker,
    client: &mut Client<R, W>,
    head: &RequestHead,
    route: &Route<'_>,
    flow: &mut Flow,
) -> Result<bool, ProxyError> {
    let head_only = head.method == Method::Head;
    // A request body is not read here: close afterwards so it is never taken for a request.
    let close = head.body != BodyKind::Empty
        || head.version == Version::Http10
        || head.conn.close
        || worker.shutting_down.get();
    let path = route.path.split(|&b| b == b'?').next().unwrap_or_default();
    // The page offers the CA whether or not anything is intercepted yet: users install it first.
    // (The PAC file needs no CA: fetching it must not create one.)
    let ca = match worker.mitm.ca() {
        _ if super::route::is_pac_path(path) => None,
        Ok(ca) => Some(ca),
        Err(e) => {
            tracing::warn!(error = %e, "cannot load or create the CA for {HOST}");
            None
        }
    };
    let page;
    let (status, content_type, extra, body): (u16, &[u8], Fields<'_>, &[u8]) =
        match (&head.method, path, ca) {
            (Method::Get | Method::Head, b"/", _) => {
                page = format!(
                    "{PAGE_HEAD}{}{PAGE_PAC}{PAGE_TAIL}",
                    if ca.is_some() { PAGE_TRUST } else { PAGE_NO_CA }
                );
                (200, b"text/html; charset=utf-8", &[], page.as_bytes())
            }
            (Method::Get | Method::Head, b"/proxy.pac" | b"/wpad.dat", _) => {
                page = pac_file(client.peer.listener);
                (
                    200,
                    b"application/x-ns-proxy-autoconfig",
                    &[(b"Cache-Control", b"no-store")],
                    page.as_bytes(),
                )
            }
            (Method::Get | Method::Head, b"/cert" | b"/lynxio-ca.pem", Some(ca)) => (
                200,
                b"application/x-pem-file",
                &[(
                    b"Content-Disposition",
                    b"attachment; filename=\"lynxio-ca.pem\"",
                )],
                ca.cert_pem().as_bytes(),
            ),
            (Method::Get | Method::Head, b"/cert" | b"/lynxio-ca.pem", None) => (
                503,
                b"text/plain; charset=utf-8",
                &[],
                b"the CA could not be loaded or created (see lynxio's log)\n",
            ),
            (Method::Get | Method::Head, _, _) => {
                (404, b"text/plain; charset=utf-8", &[], b"not found\n")
            }
            _ => (
                405,
                b"text/plain; charset=utf-8",
                &[(b"Allow", b"GET, HEAD")],
                b"lynxio.ca answers GET and HEAD only\n",
            ),
        };
    let connection: &[u8] = if close { b"close" } else { b"keep-alive" };
    let mut fields: Vec<(&[u8], &[u8])> = vec![(b"Content-Type", content_type)];
    fields.extend_from_slice(extra);
    fields.push((b"Connection", connection));
    report::response_from_lynxio(worker, flow, status, &fields);
    flow.outcome = Outcome::Answered {
        status,
        reason: format!("{HOST} page"),
    };
    client.out.clear();
    http1::write_local_response(
        &mut client.out,
        &LocalResponse {
            status,
            reason: http1::reason_phrase(status),
            content_type,
            extra,
            body,
            close,
            head_only,
        },
    );
    write_within(
        worker.cfg.timeouts.client_idle,
        write_vec(&mut client.w, &mut client.out),
    )
    .await
    .map_err(ProxyError::ClientIo)?;
    Ok(!close)
}
