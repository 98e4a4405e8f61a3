//! The message-framing and connection-management rules of RFC 9110/9112 that `httparse` leaves
//! to us: one pass over a head's fields reads Content-Length (1*DIGIT, identical duplicates
//! only), Transfer-Encoding (final `chunked`, once), Connection tokens, Host count and Expect,
//! and `framing` then applies the smuggling rules (CL+TE, TE in HTTP/1.0, a Connection token
//! naming a framing field) — rejecting, never repairing. It also owns [`ConnectionInfo`] and
//! the static hop-by-hop field list used when re-serializing heads.

use super::{ParseError, ParseErrorKind, Version};

const fn bad_framing(detail: &'static str) -> ParseError {
    ParseError::new(ParseErrorKind::BadFraming, detail)
}

/// RFC 9110 §5.6.2 `tchar`.
static TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        i += 1;
    }
    t
};

pub(super) fn is_tchar(b: u8) -> bool {
    TCHAR[b as usize]
}

pub(super) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Elements of a comma-separated list, OWS-trimmed, empty elements skipped (RFC 9110 §5.6.1).
pub(super) fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

/// Fields that are hop-by-hop for both directions, whatever `Connection` says.
#[inline]
pub(super) fn is_static_hop_by_hop(name: &[u8]) -> bool {
    // A length bitmap first: most fields are rejected by one predictable branch.
    const LENGTHS: u32 = 1 << 2 | 1 << 7 | 1 << 10 | 1 << 16 | 1 << 19;
    if name.len() >= 32 || LENGTHS & (1 << name.len()) == 0 {
        return false;
    }
    let candidates: &[&[u8]] = match name.len() {
        2 => &[b"te"],
        7 => &[b"trailer", b"upgrade"],
        10 => &[b"connection", b"keep-alive"],
        16 => &[b"proxy-connection"],
        _ => &[b"proxy-authorization"],
    };
    candidates.iter().any(|c| name.eq_ignore_ascii_case(c))
}

fn is_framing_field(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"transfer-encoding")
}

/// Facts about a message's connection-level headers, computed once while parsing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// `Connection: close`.
    pub close: bool,
    /// `Connection: keep-alive`.
    pub keep_alive: bool,
    /// `Connection: upgrade`.
    pub upgrade: bool,
    /// Other tokens (lowercased) naming fields to strip; tokens naming fields that are always
    /// stripped (TE, Keep-Alive, …) are not stored.
    other: Vec<Box<[u8]>>,
}

impl ConnectionInfo {
    /// The extra field names `Connection` listed (lowercased), besides close/keep-alive/upgrade
    /// and the always-hop-by-hop fields.
    pub fn other_tokens(&self) -> impl Iterator<Item = &[u8]> {
        self.other.iter().map(|t| &t[..])
    }

    /// Whether `Connection` named a field outside the static hop-by-hop list.
    #[inline]
    pub(super) fn names_other(&self, name: &[u8]) -> bool {
        !self.other.is_empty() && self.other.iter().any(|t| name.eq_ignore_ascii_case(t))
    }

    /// Whether `Connection` named the field `name` (so it must not be forwarded).
    pub fn names(&self, name: &[u8]) -> bool {
        (self.upgrade && name.eq_ignore_ascii_case(b"upgrade"))
            || (self.keep_alive && name.eq_ignore_ascii_case(b"keep-alive"))
            || self.other.iter().any(|t| name.eq_ignore_ascii_case(t))
    }

    fn add(&mut self, value: &[u8]) -> Result<(), ParseError> {
        for token in list(value) {
            if !is_token(token) {
                return Err(ParseError::new(
                    ParseErrorKind::Malformed,
                    "invalid Connection token",
                ));
            }
            if token.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else if token.eq_ignore_ascii_case(b"upgrade") {
                self.upgrade = true;
            } else if !is_static_hop_by_hop(token) && !self.names(token) {
                self.other
                    .push(token.to_ascii_lowercase().into_boxed_slice());
            }
        }
        Ok(())
    }
}

/// Everything one pass over the fields learns.
#[derive(Debug, Default)]
pub(super) struct Scan {
    pub conn: ConnectionInfo,
    /// First malformed-Connection error (Malformed).
    pub conn_error: Option<ParseError>,
    pub hosts: u32,
    pub expect_continue: bool,
    pub expect_other: bool,
    name_error: Option<ParseError>,
    cl_present: bool,
    /// The Content-Length fields are not exactly one plain `1*DIGIT` (several fields, or a
    /// list): a recipient must not forward them as received (RFC 9110 §8.6).
    cl_needs_fold: bool,
    content_length: Option<u64>,
    cl_error: Option<ParseError>,
    te_present: bool,
    chunked_seen: bool,
    te_error: Option<ParseError>,
}

/// The framing facts of a head, before the request/response-specific rules (HEAD, 204, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    None,
    Length(u64),
    Chunked,
}

pub(super) fn scan<'a>(fields: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Scan {
    let mut s = Scan::default();
    for (name, value) in fields {
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => s.hosts += 1,
            6 if name.eq_ignore_ascii_case(b"expect") => {
                for e in list(value) {
                    if e.eq_ignore_ascii_case(b"100-continue") {
                        s.expect_continue = true;
                    } else {
                        s.expect_other = true;
                    }
                }
            }
            10 if name.eq_ignore_ascii_case(b"connection") => {
                if let Err(e) = s.conn.add(value) {
                    s.conn_error.get_or_insert(e);
                }
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                s.cl_needs_fold |= s.cl_present || value.contains(&b',');
                s.cl_present = true;
                if let Err(e) = content_length(value, &mut s.content_length) {
                    s.cl_error.get_or_insert(e);
                }
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                s.te_present = true;
                if let Err(e) = transfer_encoding(value, &mut s.chunked_seen) {
                    s.te_error.get_or_insert(e);
                }
            }
            14 | 17 if is_underscore_framing_field(name) => {
                s.name_error = Some(bad_framing("underscore variant of a framing field"));
            }
            _ => {}
        }
    }
    s
}

/// `Content_Length` / `Transfer_Encoding`: some servers fold `_` into `-`, so forwarding
/// one would let the origin see framing the proxy did not.
fn is_underscore_framing_field(name: &[u8]) -> bool {
    let mut dashed = [0u8; 17];
    name.len() <= dashed.len() && name.contains(&b'_') && {
        let n = name.len();
        for (d, &b) in dashed.iter_mut().zip(name) {
            *d = if b == b'_' { b'-' } else { b };
        }
        is_framing_field(dashed.get(..n).unwrap_or_default())
    }
}

/// Folds one Content-Length field value (a list of 1*DIGIT) into `acc`.
fn content_length(value: &[u8], acc: &mut Option<u64>) -> Result<(), ParseError> {
    let mut any = false;
    for part in value.split(|&b| b == b',') {
        let part = trim_ows(part);
        if part.is_empty() {
            return Err(bad_framing("empty Content-Length"));
        }
        let mut n: u64 = 0;
        for &b in part {
            if !b.is_ascii_digit() {
                return Err(bad_framing("invalid Content-Length"));
            }
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(b - b'0')))
                .ok_or(bad_framing("Content-Length overflows"))?;
        }
        match *acc {
            Some(prev) if prev != n => return Err(bad_framing("differing Content-Length values")),
            _ => *acc = Some(n),
        }
        any = true;
    }
    if any {
        Ok(())
    } else {
        Err(bad_framing("empty Content-Length"))
    }
}

/// Folds one Transfer-Encoding field value into the running "chunked seen" state: `chunked`
/// must be the last coding of all TE fields together and appear once.
fn transfer_encoding(value: &[u8], chunked_seen: &mut bool) -> Result<(), ParseError> {
    for coding in list(value) {
        if *chunked_seen {
            return Err(bad_framing("chunked is not the final transfer coding"));
        }
        let name = match coding.iter().position(|&b| b == b';') {
            Some(i) => trim_ows(coding.get(..i).unwrap_or_default()),
            None => coding,
        };
        if !is_token(name) {
            return Err(bad_framing("invalid transfer coding"));
        }
        if name.eq_ignore_ascii_case(b"chunked") {
            if name.len() != coding.len() {
                return Err(bad_framing("chunked with parameters"));
            }
            *chunked_seen = true;
        }
    }
    Ok(())
}

impl Scan {
    /// The single value to send instead of the received Content-Length fields, when they
    /// were several identical values (`5, 5` or two fields) that framing folded into one.
    pub(super) fn folded_length(&self) -> Option<u64> {
        if self.cl_needs_fold && self.cl_error.is_none() {
            self.content_length
        } else {
            None
        }
    }

    /// Applies the framing rules (RFC 9112 §6.1, §6.3) common to requests and responses.
    pub(super) fn framing(&self, version: Version) -> Result<Framing, ParseError> {
        if let Some(e) = self.name_error {
            return Err(e);
        }
        if self.conn.other.iter().any(|t| is_framing_field(t)) {
            return Err(bad_framing("Connection names a framing field"));
        }
        if self.te_present {
            if self.cl_present {
                return Err(bad_framing("Content-Length and Transfer-Encoding together"));
            }
            if version == Version::Http10 {
                return Err(bad_framing("Transfer-Encoding in HTTP/1.0"));
            }
            if let Some(e) = self.te_error {
                return Err(e);
            }
            if !self.chunked_seen {
                return Err(bad_framing("Transfer-Encoding does not end in chunked"));
            }
            return Ok(Framing::Chunked);
        }
        if let Some(e) = self.cl_error {
            return Err(e);
        }
        Ok(match self.content_length {
            Some(n) => Framing::Length(n),
            None => Framing::None,
        })
    }
}

#[cfg(test)]
mod tests;
