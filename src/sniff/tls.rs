//! TLS ClientHello sniffing: walks the TLS record layer of a stream prefix (content type 22,
//! record version 0x0301..=0x0304, non-empty payloads of at most 2^14 bytes), joins the
//! fragments of the first handshake message across as many records as it was split into, and
//! parses the ClientHello body field by field (RFC 8446 §4.1.2): legacy version, random, session
//! id, cipher suites, compression methods and extensions, taking `server_name` (RFC 6066 §3, one
//! `host_name`, checked to be a plausible DNS name and lowercased) and ALPN (RFC 7301). Every
//! length is checked against its container's declared end before its bytes are needed, so a
//! malformed hello is rejected as soon as the bytes that prove it arrive, and running out of
//! bytes inside a valid structure is "need more", never an error.

use std::borrow::Cow;

use super::{ClientHello, Detect, MAX_SNIFF_BYTES};

/// Largest TLSPlaintext fragment (RFC 8446 §5.1: 2^14).
pub const MAX_RECORD_PAYLOAD_BYTES: usize = 16 * 1024;
/// Largest ClientHello body accepted (the handshake length field, header excluded).
pub const MAX_CLIENT_HELLO_BYTES: usize = 64 * 1024;
/// Largest `server_name` host name accepted (RFC 6066: at most 2^8 - 1 in DNS terms).
pub const MAX_HOST_NAME_BYTES: usize = 255;

/// Content type (1), legacy record version (2), length (2).
pub(super) const RECORD_HEADER_LEN: usize = 5;
/// Handshake type (1), length (3).
pub(super) const HANDSHAKE_HEADER_LEN: usize = 4;
/// How many record headers [`MAX_SNIFF_BYTES`] leaves room for around a maximal hello.
pub(super) const HELLO_RECORD_SLACK: usize = 64;

const CONTENT_TYPE_HANDSHAKE: u8 = 22;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const TLS_MAJOR: u8 = 3;
const RECORD_MINOR_VERSIONS: std::ops::RangeInclusive<u8> = 1..=4;
const RANDOM_LEN: usize = 32;
const MAX_SESSION_ID_LEN: usize = 32;
/// Version (2) + random (32) + session id length (1) + one cipher suite with its length (4) +
/// one compression method with its length (2).
const MIN_CLIENT_HELLO_BYTES: usize = 2 + RANDOM_LEN + 1 + 4 + 2;
const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
const SNI_HOST_NAME: u8 = 0;
const MAX_LABEL_BYTES: usize = 63;
/// One bit per possible extension type, to reject duplicates (RFC 8446 §4.2).
const EXT_BITSET_WORDS: usize = (u16::MAX as usize + 1) / 64;

/// Why parsing stopped short of a ClientHello.
enum Fail {
    /// The bytes so far are a valid prefix.
    Short,
    /// The bytes so far cannot start a valid ClientHello.
    Bad,
}

type Step<T> = Result<T, Fail>;

pub(super) fn client_hello(prefix: &[u8]) -> Detect<ClientHello> {
    let parsed = reassemble(prefix).and_then(|(message, body_len)| {
        let body = message.get(HANDSHAKE_HEADER_LEN..).unwrap_or_default();
        parse_body(body, body_len)
    });
    match parsed {
        Ok(hello) => Detect::Found(hello),
        Err(Fail::Short) => Detect::NeedMore,
        Err(Fail::Bad) => Detect::NotThis,
    }
}

/// Joins the first handshake message's fragments from consecutive records. Returns the
/// message bytes available so far (header included, never past the message's end) and the
/// declared body length, or `Short` while even the 4-byte handshake header is incomplete.
fn reassemble(prefix: &[u8]) -> Step<(Cow<'_, [u8]>, usize)> {
    let mut joined: Cow<'_, [u8]> = Cow::Borrowed(&[]);
    // Header + body length of the message, once its header has arrived.
    let mut total: Option<usize> = None;
    let mut pos = 0usize;
    loop {
        let payload_len = match record_header(prefix.get(pos..).unwrap_or_default()) {
            Ok(len) => len,
            Err(Fail::Short) => return partial(joined, total),
            Err(Fail::Bad) => return Err(Fail::Bad),
        };
        let data_start = pos.checked_add(RECORD_HEADER_LEN).ok_or(Fail::Bad)?;
        let data_end = data_start.checked_add(payload_len).ok_or(Fail::Bad)?;
        let have_before = joined.len();
        let fragment = prefix
            .get(data_start..data_end.min(prefix.len()))
            .unwrap_or_default();
        append(&mut joined, fragment);

        if total.is_none() {
            total = handshake_header(&joined)?;
        }
        if let Some(total) = total {
            // The message cannot end before this record's data start plus what it still
            // lacks; later records only add headers.
            let earliest_end = total
                .checked_sub(have_before)
                .and_then(|missing| data_start.checked_add(missing))
                .ok_or(Fail::Bad)?;
            if earliest_end > MAX_SNIFF_BYTES {
                return Err(Fail::Bad);
            }
            if joined.len() >= total {
                let body_len = total.saturating_sub(HANDSHAKE_HEADER_LEN);
                return Ok((truncate(joined, total), body_len));
            }
        }
        if data_end > prefix.len() {
            return partial(joined, total);
        }
        pos = data_end;
    }
}

/// The answer when the prefix ends before the message does.
fn partial(joined: Cow<'_, [u8]>, total: Option<usize>) -> Step<(Cow<'_, [u8]>, usize)> {
    match total {
        Some(total) => Ok((joined, total.saturating_sub(HANDSHAKE_HEADER_LEN))),
        None => Err(Fail::Short),
    }
}

fn append<'a>(joined: &mut Cow<'a, [u8]>, more: &'a [u8]) {
    if joined.is_empty() {
        *joined = Cow::Borrowed(more);
    } else if !more.is_empty() {
        joined.to_mut().extend_from_slice(more);
    }
}

fn truncate(joined: Cow<'_, [u8]>, len: usize) -> Cow<'_, [u8]> {
    match joined {
        Cow::Borrowed(b) => Cow::Borrowed(b.get(..len).unwrap_or(b)),
        Cow::Owned(mut v) => {
            v.truncate(len);
            Cow::Owned(v)
        }
    }
}

/// Checks a record header byte by byte as far as it has arrived; returns the payload length.
fn record_header(rest: &[u8]) -> Step<usize> {
    if rest.first().is_some_and(|&t| t != CONTENT_TYPE_HANDSHAKE)
        || rest.get(1).is_some_and(|&major| major != TLS_MAJOR)
        || rest
            .get(2)
            .is_some_and(|minor| !RECORD_MINOR_VERSIONS.contains(minor))
    {
        return Err(Fail::Bad);
    }
    match rest.get(3..RECORD_HEADER_LEN) {
        Some(&[hi, lo]) => {
            let len = usize::from(u16::from_be_bytes([hi, lo]));
            if len == 0 || len > MAX_RECORD_PAYLOAD_BYTES {
                Err(Fail::Bad)
            } else {
                Ok(len)
            }
        }
        _ => Err(Fail::Short),
    }
}

/// Checks the handshake header as far as it has arrived; once complete, returns the whole
/// message's length (header included).
fn handshake_header(joined: &[u8]) -> Step<Option<usize>> {
    if joined.first().is_some_and(|&t| t != HANDSHAKE_CLIENT_HELLO) {
        return Err(Fail::Bad);
    }
    match joined.get(1..HANDSHAKE_HEADER_LEN) {
        Some(&[a, b, c]) => {
            let len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
            if !(MIN_CLIENT_HELLO_BYTES..=MAX_CLIENT_HELLO_BYTES).contains(&len) {
                return Err(Fail::Bad);
            }
            Ok(Some(len + HANDSHAKE_HEADER_LEN))
        }
        _ => Ok(None),
    }
}

/// Parses a ClientHello body of declared length `len` of which `body` has arrived.
fn parse_body(body: &[u8], len: usize) -> Step<ClientHello> {
    let mut r = Reader::new(body, len);
    let legacy_version = r.u16()?;
    if legacy_version >> 8 != u16::from(TLS_MAJOR) {
        return Err(Fail::Bad);
    }
    r.take(RANDOM_LEN)?;
    let session_id = usize::from(r.u8()?);
    if session_id > MAX_SESSION_ID_LEN {
        return Err(Fail::Bad);
    }
    r.take(session_id)?;
    let suites = usize::from(r.u16()?);
    if suites < 2 || suites % 2 != 0 {
        return Err(Fail::Bad);
    }
    r.take(suites)?;
    let compression = usize::from(r.u8()?);
    if compression == 0 {
        return Err(Fail::Bad);
    }
    r.take(compression)?;

    let mut hello = ClientHello {
        legacy_version,
        ..ClientHello::default()
    };
    if !r.at_end() {
        let block = usize::from(r.u16()?);
        let mut extensions = r.sub(block)?;
        r.finish()?;
        parse_extensions(&mut extensions, &mut hello)?;
    }
    if body.len() < len {
        return Err(Fail::Short);
    }
    Ok(hello)
}

fn parse_extensions(r: &mut Reader<'_>, hello: &mut ClientHello) -> Step<()> {
    let mut seen = [0u64; EXT_BITSET_WORDS];
    while !r.at_end() {
        let kind = r.u16()?;
        let len = usize::from(r.u16()?);
        let mut data = r.sub(len)?;
        let word = seen.get_mut(usize::from(kind / 64)).ok_or(Fail::Bad)?;
        let bit = 1u64 << (kind % 64);
        if *word & bit != 0 {
            return Err(Fail::Bad);
        }
        *word |= bit;
        match kind {
            EXT_SERVER_NAME => hello.sni = Some(server_name(&mut data)?),
            EXT_ALPN => hello.alpn = alpn(&mut data)?,
            _ => {
                data.take(len)?;
            }
        }
        data.finish()?;
    }
    Ok(())
}

/// RFC 6066 §3 `ServerNameList` holding exactly one `host_name` (as OpenSSL requires: other
/// name types were never defined and their encoding is unknowable).
fn server_name(r: &mut Reader<'_>) -> Step<String> {
    let list_len = usize::from(r.u16()?);
    let mut list = r.sub(list_len)?;
    r.finish()?;
    if list.u8()? != SNI_HOST_NAME {
        return Err(Fail::Bad);
    }
    let name_len = usize::from(list.u16()?);
    list.finish_after(name_len)?;
    let available = list.peek(name_len)?;
    if !plausible_host(available, available.len() == name_len) {
        return Err(Fail::Bad);
    }
    let name = list.take(name_len)?;
    Ok(name
        .iter()
        .map(|&b| char::from(b.to_ascii_lowercase()))
        .collect())
}

/// A DNS host name as far as `name` goes: 1..=255 bytes of dot-separated labels of 1..=63
/// letters, digits, `-` or `_` (no trailing dot, per RFC 6066). When `complete` is false the
/// last label may still be empty (more bytes are coming).
fn plausible_host(name: &[u8], complete: bool) -> bool {
    if name.len() > MAX_HOST_NAME_BYTES {
        return false;
    }
    let mut labels = name.split(|&b| b == b'.').peekable();
    while let Some(label) = labels.next() {
        let last = labels.peek().is_none();
        if label.len() > MAX_LABEL_BYTES || (label.is_empty() && (complete || !last)) {
            return false;
        }
        if !label
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return false;
        }
    }
    true
}

/// RFC 7301 §3.1 `ProtocolNameList`: non-empty, of non-empty names.
fn alpn(r: &mut Reader<'_>) -> Step<Vec<Vec<u8>>> {
    let list_len = usize::from(r.u16()?);
    if list_len == 0 {
        return Err(Fail::Bad);
    }
    let mut list = r.sub(list_len)?;
    r.finish()?;
    let mut protocols = Vec::new();
    while !list.at_end() {
        let len = usize::from(list.u8()?);
        if len == 0 {
            return Err(Fail::Bad);
        }
        protocols.push(list.take(len)?.to_vec());
    }
    Ok(protocols)
}

/// A cursor over a structure whose declared end is `end` but of which only `buf` has arrived.
/// Reading past `end` is `Bad` (a length overruns its container); reading past `buf` while
/// within `end` is `Short`.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], end: usize) -> Self {
        Reader { buf, pos: 0, end }
    }

    fn stop(&self, n: usize) -> Step<usize> {
        match self.pos.checked_add(n) {
            Some(stop) if stop <= self.end => Ok(stop),
            _ => Err(Fail::Bad),
        }
    }

    fn take(&mut self, n: usize) -> Step<&'a [u8]> {
        let stop = self.stop(n)?;
        let bytes = self.buf.get(self.pos..stop).ok_or(Fail::Short)?;
        self.pos = stop;
        Ok(bytes)
    }

    /// The part of the next `n` bytes that has arrived, without consuming it.
    fn peek(&self, n: usize) -> Step<&'a [u8]> {
        let stop = self.stop(n)?.min(self.buf.len());
        Ok(self.buf.get(self.pos..stop).unwrap_or_default())
    }

    fn u8(&mut self) -> Step<u8> {
        match self.take(1)? {
            &[b] => Ok(b),
            _ => Err(Fail::Bad),
        }
    }

    fn u16(&mut self) -> Step<u16> {
        match self.take(2)? {
            &[hi, lo] => Ok(u16::from_be_bytes([hi, lo])),
            _ => Err(Fail::Bad),
        }
    }

    /// Splits off the next `n` bytes as a nested structure and moves past them.
    fn sub(&mut self, n: usize) -> Step<Reader<'a>> {
        let stop = self.stop(n)?;
        let nested = Reader {
            buf: self.buf,
            pos: self.pos,
            end: stop,
        };
        self.pos = stop;
        Ok(nested)
    }

    fn at_end(&self) -> bool {
        self.pos >= self.end
    }

    /// The structure must end exactly here.
    fn finish(&self) -> Step<()> {
        self.finish_after(0)
    }

    /// The structure must end exactly `n` bytes from here.
    fn finish_after(&self, n: usize) -> Step<()> {
        if self.pos.checked_add(n) == Some(self.end) {
            Ok(())
        } else {
            Err(Fail::Bad)
        }
    }
}

#[cfg(test)]
mod tests;
