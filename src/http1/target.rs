//! Request-target classification (RFC 9112 §3.2): origin-form, absolute-form (`http`/`https`
//! only), authority-form (CONNECT only, port required) and asterisk-form (OPTIONS only). Hosts
//! are validated (reg-name characters and `%HH`, or a bracketed IPv6 literal checked by
//! `std::net::Ipv6Addr`), lowercased without allocating when already lowercase; userinfo,
//! fragments, empty hosts and ports outside 1..=65535 are rejected as `BadTarget`.

use std::borrow::Cow;
use std::net::Ipv6Addr;

use super::{Method, ParseError, ParseErrorKind};

const fn bad(detail: &'static str) -> ParseError {
    ParseError::new(ParseErrorKind::BadTarget, detail)
}

/// The scheme of an absolute-form target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// The request-target, classified (RFC 9112 §3.2). Borrowed from the head's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    /// absolute-form: `authority` = the exact authority bytes (`host[:port]`) for the Host header;
    /// `host` lowercased (IPv6 without brackets), `port` explicit or scheme default; `path` = the
    /// path-and-query exactly as sent, or b"/" if empty (a bare "?q" becomes "/?q").
    Absolute {
        scheme: Scheme,
        authority: &'a [u8],
        host: Cow<'a, str>,
        port: u16,
        path: Cow<'a, [u8]>,
    },
    /// origin-form: starts with '/'.
    Origin(&'a [u8]),
    /// authority-form of CONNECT: `host:port` or `[v6]:port`; port required.
    Authority { host: Cow<'a, str>, port: u16 },
    /// `*` (OPTIONS only).
    Asterisk,
}

/// Classifies and validates `target` for `method`.
pub fn parse_target<'a>(method: &Method, target: &'a [u8]) -> Result<Target<'a>, ParseError> {
    if *method == Method::Connect {
        let (end, host, port) = authority(target, false)?;
        return match port {
            Some(port) if end == target.len() => Ok(Target::Authority { host, port }),
            _ => Err(bad("CONNECT target must be host:port")),
        };
    }
    match target {
        [b'/', ..] if memchr::memchr(b'#', target).is_some() => {
            Err(bad("fragment in request-target"))
        }
        [b'/', ..] => Ok(Target::Origin(target)),
        b"*" if *method == Method::Options => Ok(Target::Asterisk),
        b"*" => Err(bad("asterisk-form is only for OPTIONS")),
        _ => absolute(target),
    }
}

/// Validates a `Host` header value (or any bare authority): `host[:port]` or `[v6][:port]`,
/// with the same rules and lowercasing as targets. For origin-form requests (inside a tunnel or
/// an intercepted TLS stream) the caller supplies the default port of the connection's scheme.
pub fn parse_host(value: &[u8]) -> Result<(Cow<'_, str>, Option<u16>), ParseError> {
    let (_, host, port) = authority(value, false)?;
    Ok((host, port))
}

fn strip_prefix_ci<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

fn absolute(target: &[u8]) -> Result<Target<'_>, ParseError> {
    let (scheme, rest) = if let Some(rest) = strip_prefix_ci(target, b"http://") {
        (Scheme::Http, rest)
    } else if let Some(rest) = strip_prefix_ci(target, b"https://") {
        (Scheme::Https, rest)
    } else if memchr::memmem::find(target, b"://").is_some() {
        return Err(bad("unsupported scheme"));
    } else {
        return Err(bad("invalid request-target"));
    };
    let (end, host, port) = authority(rest, true)?;
    let (authority, path) = rest.split_at_checked(end).unwrap_or((rest, b""));
    if memchr::memchr(b'#', path).is_some() {
        return Err(bad("fragment in request-target"));
    }
    let path = match path {
        [] => Cow::Borrowed(&b"/"[..]),
        [b'?', ..] => {
            let mut p = Vec::with_capacity(path.len() + 1);
            p.push(b'/');
            p.extend_from_slice(path);
            Cow::Owned(p)
        }
        _ => Cow::Borrowed(path),
    };
    Ok(Target::Absolute {
        scheme,
        authority,
        host,
        port: port.unwrap_or(scheme.default_port()),
        path,
    })
}

// Byte classes of an authority, for a single table-driven pass.
const INVALID: u8 = 0;
const REG: u8 = 1;
const UPPER: u8 = 2;
const COLON: u8 = 3;
const PCT: u8 = 4;
const PATH: u8 = 5;
const AT: u8 = 6;
const HASH: u8 = 7;

static CLASS: [u8; 256] = {
    let mut t = [INVALID; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match i as u8 {
            b'A'..=b'Z' => UPPER,
            // RFC 3986 reg-name: unreserved and sub-delims (IPv4 literals are a subset).
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => REG,
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' => REG,
            b':' => COLON,
            b'%' => PCT,
            b'/' | b'?' => PATH,
            b'@' => AT,
            b'#' => HASH,
            _ => INVALID,
        };
        i += 1;
    }
    t
};

/// Parses the authority at the start of `s` (up to the first `/` or `?` when `in_url`, else
/// all of `s`): `host[:port]` or `[v6][:port]`. Returns (end of authority, host, port).
fn authority(s: &[u8], in_url: bool) -> Result<(usize, Cow<'_, str>, Option<u16>), ParseError> {
    if let [b'[', ..] = s {
        return ipv6_authority(s, in_url);
    }
    let mut colon = None;
    let mut upper = false;
    let mut i = 0;
    loop {
        // Plain reg-name bytes are the common case: skip them in a tight loop.
        i += s
            .get(i..)
            .unwrap_or_default()
            .iter()
            .position(|&b| CLASS[b as usize] != REG)
            .unwrap_or(s.len().saturating_sub(i));
        let Some(&b) = s.get(i) else { break };
        match CLASS[b as usize] {
            UPPER => upper = true,
            COLON if colon.is_none() => colon = Some(i),
            PCT => match (s.get(i + 1), s.get(i + 2)) {
                (Some(h), Some(l)) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => i += 2,
                _ => return Err(bad("invalid percent-encoding in host")),
            },
            PATH if in_url => break,
            AT => return Err(bad("userinfo in request-target")),
            HASH => return Err(bad("fragment in request-target")),
            _ => return Err(bad("invalid host")),
        }
        i += 1;
    }
    let end = i;
    let (host, port) = match colon {
        Some(c) => (
            s.get(..c).unwrap_or_default(),
            Some(port(s.get(c + 1..end).unwrap_or_default())?),
        ),
        None => (s.get(..end).unwrap_or_default(), None),
    };
    if host.is_empty() {
        return Err(bad("empty host"));
    }
    // Every byte accepted above is ASCII, so this cannot fail.
    let host = std::str::from_utf8(host).map_err(|_| bad("invalid host"))?;
    Ok((end, lowercase(host, upper), port))
}

fn ipv6_authority(
    s: &[u8],
    in_url: bool,
) -> Result<(usize, Cow<'_, str>, Option<u16>), ParseError> {
    let end = if in_url {
        memchr::memchr2(b'/', b'?', s).unwrap_or(s.len())
    } else {
        s.len()
    };
    let auth = s.get(1..end).unwrap_or_default();
    let close = memchr::memchr(b']', auth).ok_or(bad("unterminated IPv6 literal"))?;
    let (inner, after) = auth.split_at_checked(close).ok_or(bad("invalid host"))?;
    let text = std::str::from_utf8(inner).map_err(|_| bad("invalid IPv6 literal"))?;
    if text.parse::<Ipv6Addr>().is_err() {
        return Err(bad("invalid IPv6 literal"));
    }
    let port = match after.get(1..).unwrap_or_default() {
        [] => None,
        [b':', digits @ ..] => Some(port(digits)?),
        _ => return Err(bad("invalid authority")),
    };
    let upper = text.bytes().any(|b| b.is_ascii_uppercase());
    Ok((end, lowercase(text, upper), port))
}

fn lowercase(host: &str, upper: bool) -> Cow<'_, str> {
    if upper {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// `1*5DIGIT` in 1..=65535.
fn port(digits: &[u8]) -> Result<u16, ParseError> {
    if digits.is_empty() || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad("invalid port"));
    }
    let n = digits
        .iter()
        .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
    match u16::try_from(n) {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(bad("invalid port")),
    }
}

#[cfg(test)]
mod tests;
