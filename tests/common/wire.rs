//! HTTP/1 messages as the harness sees them on the wire: [`Message`] and a [`Reader`] that
//! parses requests and responses (heads with httparse, bodies by their framing) from any byte
//! stream.

use std::io::{ErrorKind, Read};

use super::*;

/// A parsed HTTP/1 message (request or response) as the harness saw it on the wire.
#[derive(Debug, Clone, Default)]
pub struct Message {
    /// Request method (empty for responses).
    pub method: String,
    /// Request target, byte-exact (empty for responses).
    pub target: String,
    /// Response status (0 for requests).
    pub status: u16,
    /// Minor version: 0 or 1.
    pub version: u8,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Trailer fields of a chunked body.
    pub trailers: Vec<(String, String)>,
    /// Whether the body was chunked on the wire.
    pub chunked: bool,
    /// The head bytes exactly as received.
    pub raw_head: Vec<u8>,
}

impl Message {
    /// First value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Buffered reader of HTTP/1 messages over a stream, for both test clients and test origins.
pub struct Reader<S> {
    s: S,
    buf: Vec<u8>,
}

enum HeadKind {
    Request,
    Response,
}

impl<S: Read> Reader<S> {
    pub fn new(s: S) -> Self {
        Reader { s, buf: Vec::new() }
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.s
    }

    /// Bytes read but not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Reads more bytes; false on EOF or error (including timeout).
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 64 * 1024];
        match self.s.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => true,
            Err(_) => false,
        }
    }

    /// Reads everything until EOF (or a timeout), returning it with whatever was buffered.
    pub fn read_to_close(&mut self) -> Vec<u8> {
        while self.buf.len() < MAX_MESSAGE && self.fill() {}
        std::mem::take(&mut self.buf)
    }

    /// Whether the peer closed the connection (EOF) within the read timeout, with nothing
    /// more buffered.
    pub fn closed(&mut self) -> bool {
        self.buf.is_empty() && !self.fill()
    }

    /// Reads a request (head and body); `None` on clean EOF before any byte or bad bytes.
    pub fn request(&mut self) -> Option<Message> {
        let mut m = self.head(HeadKind::Request)?;
        self.body(&mut m, false)?;
        Some(m)
    }

    /// Reads a response to a request with method `method`.
    pub fn response(&mut self, method: &str) -> Option<Message> {
        let mut m = self.head(HeadKind::Response)?;
        let no_body = method == "HEAD"
            || (100..200).contains(&m.status)
            || m.status == 204
            || m.status == 304;
        if no_body {
            return Some(m);
        }
        self.body(&mut m, true)?;
        Some(m)
    }

    /// Reads the body `m`'s head announces: chunked, Content-Length, else (responses only)
    /// everything until the peer closes.
    fn body(&mut self, m: &mut Message, until_close: bool) -> Option<()> {
        let len: Option<usize> = m
            .header("content-length")
            .and_then(|v| v.trim().parse().ok());
        if m.header("transfer-encoding").is_some() {
            self.chunked(m)?;
        } else if let Some(n) = len {
            m.body = self.exact(n)?;
        } else if until_close {
            m.body = self.read_to_close();
        }
        Some(())
    }

    /// Reads a final response, skipping (and returning) any 1xx interim responses before it.
    pub fn final_response(&mut self, method: &str) -> Option<(Vec<Message>, Message)> {
        let mut interim = Vec::new();
        for _ in 0..16 {
            let m = self.response(method)?;
            if (100..200).contains(&m.status) && m.status != 101 {
                interim.push(m);
            } else {
                return Some((interim, m));
            }
        }
        None
    }

    fn head(&mut self, kind: HeadKind) -> Option<Message> {
        for _ in 0..100_000 {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let raw: Vec<u8> = self.buf.drain(..end + 4).collect();
                return parse_head(&raw, kind);
            }
            if self.buf.len() > 1024 * 1024 || !self.fill() {
                return None;
            }
        }
        None
    }

    fn exact(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buf.len() < n {
            if n > MAX_MESSAGE || !self.fill() {
                return None;
            }
        }
        Some(self.buf.drain(..n).collect())
    }

    fn line(&mut self) -> Option<Vec<u8>> {
        for _ in 0..100_000 {
            if let Some(end) = find(&self.buf, b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..end + 2).collect();
                return Some(line[..end].to_vec());
            }
            if self.buf.len() > 64 * 1024 || !self.fill() {
                return None;
            }
        }
        None
    }

    fn chunked(&mut self, m: &mut Message) -> Option<()> {
        m.chunked = true;
        for _ in 0..10_000_000 {
            let line = self.line()?;
            let size_hex = line.split(|&b| b == b';').next()?;
            let size =
                usize::from_str_radix(std::str::from_utf8(size_hex).ok()?.trim(), 16).ok()?;
            if size == 0 {
                for _ in 0..1000 {
                    let t = self.line()?;
                    if t.is_empty() {
                        return Some(());
                    }
                    let t = String::from_utf8_lossy(&t).into_owned();
                    let (n, v) = t.split_once(':')?;
                    m.trailers.push((n.trim().to_owned(), v.trim().to_owned()));
                }
                return None;
            }
            let data = self.exact(size)?;
            m.body.extend_from_slice(&data);
            if self.line()? != b"" {
                return None;
            }
        }
        None
    }
}

fn parse_head(raw: &[u8], kind: HeadKind) -> Option<Message> {
    let mut headers = [httparse::EMPTY_HEADER; 256];
    let mut m = Message {
        raw_head: raw.to_vec(),
        ..Message::default()
    };
    let fields: &[httparse::Header] = match kind {
        HeadKind::Request => {
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(raw) {
                Ok(httparse::Status::Complete(_)) => {}
                _ => return None,
            }
            m.method = req.method?.to_owned();
            m.target = req.path?.to_owned();
            m.version = req.version?;
            let n = req.headers.len();
            return Some(fill_headers(m, &headers[..n]));
        }
        HeadKind::Response => {
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(raw) {
                Ok(httparse::Status::Complete(_)) => {}
                _ => return None,
            }
            m.status = resp.code?;
            m.version = resp.version?;
            let n = resp.headers.len();
            &headers[..n]
        }
    };
    let fields = fields.to_vec();
    Some(fill_headers(m, &fields))
}

fn fill_headers(mut m: Message, fields: &[httparse::Header]) -> Message {
    for h in fields {
        m.headers.push((
            h.name.to_owned(),
            String::from_utf8_lossy(h.value).into_owned(),
        ));
    }
    m
}

impl<S: Read> Reader<S> {
    /// The stream and the bytes read from it but not consumed.
    pub fn into_parts(self) -> (S, Vec<u8>) {
        (self.s, self.buf)
    }

    /// Reads only a response head (no body).
    pub fn response_head(&mut self) -> Option<Message> {
        self.head(HeadKind::Response)
    }

    /// Reads only a request head (no body), e.g. for an origin that answers `100 Continue`.
    pub fn request_head(&mut self) -> Option<Message> {
        self.head(HeadKind::Request)
    }

    /// Reads exactly `n` more bytes (buffered ones first); `None` on EOF or timeout.
    pub fn take_exact(&mut self, n: usize) -> Option<Vec<u8>> {
        self.exact(n)
    }
}
