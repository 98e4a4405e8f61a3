//! WebSocket (RFC 6455) frame inspection for one direction of an upgraded connection: a sans-IO
//! [`FrameInspector`] that is fed the bytes of the stream as they are relayed, split at any
//! point, and reports what it learned as [`Observed`] events (one per completed data message,
//! ping, pong and close) or the first [`ProtocolError`] it sees (with the close code, 1002 or
//! 1007, that an endpoint would send), plus [`close_frame`] to build a close frame. It keeps only
//! a partial header (at most [`MAX_HEADER_LEN`] bytes), counters, the first `keep` payload bytes
//! of the current message, at most 3 bytes of an unfinished UTF-8 character and a control
//! payload (at most [`MAX_CONTROL_PAYLOAD`] bytes): whole frames and messages are never
//! buffered. It does not own sockets, relaying, the opening handshake, extension negotiation
//! (the caller says whether permessage-deflate was agreed) or decompression: a compressed
//! message is counted and its kept bytes are the compressed wire payload, and its text is not
//! UTF-8 checked. It imports nothing else from lynxio.

use std::fmt;

#[cfg(test)]
mod tests;

/// The longest frame header: 2 fixed bytes, an 8-byte extended length and a 4-byte mask key.
pub const MAX_HEADER_LEN: usize = 14;
/// The largest payload a control frame (close, ping, pong) may carry (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;
/// The most reason bytes a close frame can carry: the control limit less the 2-byte code.
pub const MAX_CLOSE_REASON: usize = MAX_CONTROL_PAYLOAD - 2;
/// Close code for a protocol violation (RFC 6455 §7.4.1).
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// Close code for data inconsistent with the message type, e.g. bad UTF-8 (RFC 6455 §7.4.1).
pub const CLOSE_INVALID_PAYLOAD: u16 = 1007;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

const FIN_BIT: u8 = 0x80;
const RSV1_BIT: u8 = 0x40;
const RSV2_BIT: u8 = 0x20;
const RSV3_BIT: u8 = 0x10;
const OPCODE_MASK: u8 = 0x0F;
const MASK_BIT: u8 = 0x80;
const LEN7_MASK: u8 = 0x7F;
/// 7-bit length values that announce a 16-bit or a 64-bit extended length.
const LEN7_EXT16: u8 = 126;
const LEN7_EXT64: u8 = 127;
/// Payload bytes unmasked at a time on the stack.
const SCRATCH_LEN: usize = 1024;
/// A UTF-8 character is at most 4 bytes, so at most 3 are ever carried between chunks.
const MAX_UTF8_CARRY: usize = 3;

/// Which way the inspected bytes flow; it decides whether frames must be masked (RFC 6455 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server: every frame must be masked.
    ClientToServer,
    /// Server to client: no frame may be masked.
    ServerToClient,
}

/// The type of a data message (its first frame's opcode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataOpcode {
    /// Opcode 0x1, UTF-8 text.
    Text,
    /// Opcode 0x2, binary data.
    Binary,
}

/// What the inspector learned from the bytes it was fed, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// A data message completed (its final fragment ended).
    Message {
        /// Text or binary.
        opcode: DataOpcode,
        /// Total payload bytes across all fragments, as on the wire (compressed if `compressed`).
        length: u64,
        /// Number of frames the message was carried in (1 when unfragmented).
        fragments: u32,
        /// RSV1 was set on the first frame: the payload is permessage-deflate compressed.
        compressed: bool,
        /// The first `keep` payload bytes, unmasked (still compressed if `compressed`).
        first: Vec<u8>,
        /// `length` exceeds `first.len()`.
        truncated: bool,
    },
    /// A ping frame: its payload length and its first `keep` bytes.
    Ping {
        /// Payload length (at most [`MAX_CONTROL_PAYLOAD`]).
        length: u64,
        /// The first `keep` payload bytes, unmasked.
        first: Vec<u8>,
    },
    /// A pong frame: its payload length and its first `keep` bytes.
    Pong {
        /// Payload length (at most [`MAX_CONTROL_PAYLOAD`]).
        length: u64,
        /// The first `keep` payload bytes, unmasked.
        first: Vec<u8>,
    },
    /// A close frame; `code` is `None` for an empty payload.
    Close {
        /// The status code, if the payload carried one.
        code: Option<u16>,
        /// The (valid UTF-8) reason, possibly empty.
        reason: String,
    },
}

/// A violation of RFC 6455, with the close code an endpoint would answer it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolError {
    /// [`CLOSE_PROTOCOL_ERROR`] (1002) or [`CLOSE_INVALID_PAYLOAD`] (1007).
    pub code: u16,
    /// What was wrong, short and fixed.
    pub reason: &'static str,
}

impl ProtocolError {
    const fn protocol(reason: &'static str) -> Self {
        ProtocolError {
            code: CLOSE_PROTOCOL_ERROR,
            reason,
        }
    }

    const fn invalid_payload(reason: &'static str) -> Self {
        ProtocolError {
            code: CLOSE_INVALID_PAYLOAD,
            reason,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "websocket protocol error {}: {}", self.code, self.reason)
    }
}

impl std::error::Error for ProtocolError {}

/// The frame whose payload is being read.
#[derive(Debug)]
struct Frame {
    opcode: u8,
    fin: bool,
    mask: Option<[u8; 4]>,
    /// Payload bytes already read (also the position in the mask key, modulo 4).
    done: u64,
    /// Payload bytes still to read.
    remaining: u64,
}

impl Frame {
    fn is_control(&self) -> bool {
        self.opcode & 0x8 != 0
    }
}

/// The data message in progress (from its first frame to the end of its final one).
#[derive(Debug)]
struct Message {
    opcode: DataOpcode,
    length: u64,
    fragments: u32,
    compressed: bool,
    first: Vec<u8>,
    /// Present for an uncompressed text message.
    utf8: Option<Utf8Check>,
}

/// Incremental UTF-8 validation across arbitrary splits, carrying at most 3 bytes of an
/// unfinished character.
#[derive(Debug, Default)]
struct Utf8Check {
    carry: [u8; 4],
    carry_len: usize,
}

const BAD_UTF8: ProtocolError = ProtocolError::invalid_payload("invalid UTF-8 in text message");

impl Utf8Check {
    fn push(&mut self, mut bytes: &[u8]) -> Result<(), ProtocolError> {
        if self.carry_len > 0 {
            // Complete the carried character one byte at a time: std tells an invalid prefix
            // (`error_len` is `Some`) from a valid but unfinished one (`None`).
            while self.carry_len > 0 {
                let Some((&b, rest)) = bytes.split_first() else {
                    return Ok(());
                };
                bytes = rest;
                self.carry[self.carry_len] = b;
                let len = self.carry_len + 1;
                match std::str::from_utf8(&self.carry[..len]) {
                    Ok(_) => self.carry_len = 0,
                    Err(e) if e.error_len().is_none() && len <= MAX_UTF8_CARRY => {
                        self.carry_len = len
                    }
                    Err(_) => return Err(BAD_UTF8),
                }
            }
        }
        match std::str::from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                let tail = &bytes[e.valid_up_to()..];
                if tail.len() > MAX_UTF8_CARRY {
                    return Err(BAD_UTF8);
                }
                self.carry[..tail.len()].copy_from_slice(tail);
                self.carry_len = tail.len();
                Ok(())
            }
            Err(_) => Err(BAD_UTF8),
        }
    }

    /// At the end of a message no character may be left unfinished.
    fn finish(&self) -> Result<(), ProtocolError> {
        if self.carry_len == 0 {
            Ok(())
        } else {
            Err(BAD_UTF8)
        }
    }
}

/// Streaming frame inspector for one direction of one WebSocket connection. Feed it every byte
/// the relay forwards in that direction, in order; see the module doc for what it keeps.
#[derive(Debug)]
pub struct FrameInspector {
    dir: Direction,
    deflate: bool,
    keep: usize,
    header: [u8; MAX_HEADER_LEN],
    header_len: usize,
    frame: Option<Frame>,
    message: Option<Message>,
    /// The payload of the control frame being read (at most [`MAX_CONTROL_PAYLOAD`] bytes).
    control: Vec<u8>,
    failed: Option<ProtocolError>,
}

impl FrameInspector {
    /// An inspector for the `dir` half of a connection; `deflate` says permessage-deflate was
    /// negotiated (RSV1 allowed on a message's first frame), and `keep` how many payload bytes
    /// of each message, ping and pong to keep for display.
    pub fn new(dir: Direction, deflate: bool, keep: usize) -> Self {
        FrameInspector {
            dir,
            deflate,
            keep,
            header: [0; MAX_HEADER_LEN],
            header_len: 0,
            frame: None,
            message: None,
            control: Vec::new(),
            failed: None,
        }
    }

    /// The error this inspector failed with, if any.
    pub fn error(&self) -> Option<ProtocolError> {
        self.failed
    }

    /// Whether the stream so far ends exactly at a frame boundary outside a fragmented message
    /// (a clean place for the connection to end).
    pub fn at_message_boundary(&self) -> bool {
        self.failed.is_none()
            && self.header_len == 0
            && self.frame.is_none()
            && self.message.is_none()
    }

    /// Inspects the next `bytes` of the stream, pushing completed events to `out`. Events found
    /// before an error stay in `out`. After an error every call returns that same error.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Observed>) -> Result<(), ProtocolError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let result = self.run(bytes, out);
        if let Err(e) = result {
            self.failed = Some(e);
        }
        result
    }

    fn run(&mut self, mut bytes: &[u8], out: &mut Vec<Observed>) -> Result<(), ProtocolError> {
        loop {
            let Some(frame) = &mut self.frame else {
                let need = self.header_need();
                if self.header_len < need {
                    if bytes.is_empty() {
                        return Ok(());
                    }
                    let take = (need - self.header_len).min(bytes.len());
                    let before = self.header_len;
                    self.header[before..before + take].copy_from_slice(&bytes[..take]);
                    self.header_len += take;
                    bytes = &bytes[take..];
                    if before < 2 && self.header_len >= 2 {
                        self.check_first_two()?;
                    }
                    continue;
                }
                self.begin_frame()?;
                continue;
            };
            if frame.remaining == 0 {
                self.end_frame(out)?;
                continue;
            }
            if bytes.is_empty() {
                return Ok(());
            }
            let n = usize::try_from(frame.remaining).map_or(bytes.len(), |r| r.min(bytes.len()));
            let (chunk, rest) = bytes.split_at(n);
            bytes = rest;
            self.payload(chunk)?;
        }
    }

    /// Header bytes needed in total, given the bytes of it read so far.
    fn header_need(&self) -> usize {
        if self.header_len < 2 {
            return 2;
        }
        let ext = match self.header[1] & LEN7_MASK {
            LEN7_EXT16 => 2,
            LEN7_EXT64 => 8,
            _ => 0,
        };
        let mask = if self.header[1] & MASK_BIT != 0 { 4 } else { 0 };
        2 + ext + mask
    }

    /// Every check that the first two header bytes allow, done as soon as they arrive.
    fn check_first_two(&self) -> Result<(), ProtocolError> {
        let (b0, b1) = (self.header[0], self.header[1]);
        let opcode = b0 & OPCODE_MASK;
        let fin = b0 & FIN_BIT != 0;
        let len7 = b1 & LEN7_MASK;
        if !matches!(
            opcode,
            OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
        ) {
            return Err(ProtocolError::protocol("unknown opcode"));
        }
        if b0 & (RSV2_BIT | RSV3_BIT) != 0 {
            return Err(ProtocolError::protocol("RSV2 or RSV3 set"));
        }
        let control = opcode & 0x8 != 0;
        if b0 & RSV1_BIT != 0 {
            if !self.deflate {
                return Err(ProtocolError::protocol(
                    "RSV1 set without permessage-deflate",
                ));
            }
            // permessage-deflate (RFC 7692 §6) marks only the first frame of a data message.
            if control || opcode == OP_CONTINUATION {
                return Err(ProtocolError::protocol(
                    "RSV1 set on a control or continuation frame",
                ));
            }
        }
        if control {
            if !fin {
                return Err(ProtocolError::protocol("fragmented control frame"));
            }
            if usize::from(len7) > MAX_CONTROL_PAYLOAD {
                return Err(ProtocolError::protocol(
                    "control frame payload over 125 bytes",
                ));
            }
            if opcode == OP_CLOSE && len7 == 1 {
                return Err(ProtocolError::protocol("close payload of 1 byte"));
            }
        }
        let masked = b1 & MASK_BIT != 0;
        match self.dir {
            Direction::ClientToServer if !masked => {
                return Err(ProtocolError::protocol("unmasked client frame"));
            }
            Direction::ServerToClient if masked => {
                return Err(ProtocolError::protocol("masked server frame"));
            }
            _ => {}
        }
        match opcode {
            OP_CONTINUATION if self.message.is_none() => Err(ProtocolError::protocol(
                "continuation frame without a message in progress",
            )),
            OP_TEXT | OP_BINARY if self.message.is_some() => Err(ProtocolError::protocol(
                "new data frame inside a fragmented message",
            )),
            _ => Ok(()),
        }
    }

    /// Decodes the complete header in `self.header` and starts reading the frame's payload.
    fn begin_frame(&mut self) -> Result<(), ProtocolError> {
        let h = &self.header;
        let (b0, b1) = (h[0], h[1]);
        let (length, at) = match b1 & LEN7_MASK {
            LEN7_EXT16 => (u64::from(u16::from_be_bytes([h[2], h[3]])), 4),
            LEN7_EXT64 => {
                let len = u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]);
                // RFC 6455 §5.2: the most significant bit of a 64-bit length must be 0.
                if len >> 63 != 0 {
                    return Err(ProtocolError::protocol(
                        "64-bit payload length with MSB set",
                    ));
                }
                (len, 10)
            }
            short => (u64::from(short), 2),
        };
        let mask = if b1 & MASK_BIT != 0 {
            Some([h[at], h[at + 1], h[at + 2], h[at + 3]])
        } else {
            None
        };
        self.header_len = 0;
        let opcode = b0 & OPCODE_MASK;
        let frame = Frame {
            opcode,
            fin: b0 & FIN_BIT != 0,
            mask,
            done: 0,
            remaining: length,
        };
        if frame.is_control() {
            self.control.clear();
        } else if let Some(message) = &mut self.message {
            message.fragments = message.fragments.saturating_add(1);
        } else {
            let compressed = b0 & RSV1_BIT != 0;
            let opcode = if opcode == OP_TEXT {
                DataOpcode::Text
            } else {
                DataOpcode::Binary
            };
            let utf8 = (opcode == DataOpcode::Text && !compressed).then(Utf8Check::default);
            self.message = Some(Message {
                opcode,
                length: 0,
                fragments: 1,
                compressed,
                first: Vec::new(),
                utf8,
            });
        }
        self.frame = Some(frame);
        Ok(())
    }

    /// Consumes `chunk`, which lies wholly inside the current frame's payload.
    fn payload(&mut self, chunk: &[u8]) -> Result<(), ProtocolError> {
        let Some(frame) = &mut self.frame else {
            return Ok(());
        };
        let start = frame.done;
        let len = chunk.len() as u64;
        frame.done += len;
        frame.remaining -= len;
        let mask = frame.mask;
        let control = frame.is_control();
        if !control {
            let Some(message) = &mut self.message else {
                return Ok(());
            };
            message.length = message.length.saturating_add(len);
            if message.first.len() >= self.keep && message.utf8.is_none() {
                return Ok(()); // nothing to look at: just count
            }
        }
        let mut scratch = [0u8; SCRATCH_LEN];
        let mut offset = start;
        for piece in chunk.chunks(SCRATCH_LEN) {
            let buf = &mut scratch[..piece.len()];
            buf.copy_from_slice(piece);
            if let Some(key) = mask {
                unmask(buf, key, offset);
            }
            offset += piece.len() as u64;
            if control {
                self.control.extend_from_slice(buf);
            } else if let Some(message) = &mut self.message {
                let room = self.keep.saturating_sub(message.first.len());
                message.first.extend_from_slice(&buf[..room.min(buf.len())]);
                if let Some(check) = &mut message.utf8 {
                    check.push(buf)?;
                }
            }
        }
        Ok(())
    }

    /// The current frame's payload is complete.
    fn end_frame(&mut self, out: &mut Vec<Observed>) -> Result<(), ProtocolError> {
        let Some(frame) = self.frame.take() else {
            return Ok(());
        };
        let length = frame.done;
        match frame.opcode {
            OP_PING | OP_PONG => {
                let mut first = std::mem::take(&mut self.control);
                first.truncate(self.keep);
                out.push(if frame.opcode == OP_PING {
                    Observed::Ping { length, first }
                } else {
                    Observed::Pong { length, first }
                });
            }
            OP_CLOSE => out.push(parse_close(&self.control)?),
            _ if frame.fin => {
                let Some(message) = self.message.take() else {
                    return Ok(());
                };
                if let Some(check) = &message.utf8 {
                    check.finish()?;
                }
                out.push(Observed::Message {
                    opcode: message.opcode,
                    length: message.length,
                    fragments: message.fragments,
                    compressed: message.compressed,
                    truncated: message.length > message.first.len() as u64,
                    first: message.first,
                });
            }
            _ => {}
        }
        Ok(())
    }
}

/// XORs `buf`, which starts `offset` bytes into a frame's payload, with the mask `key`.
fn unmask(buf: &mut [u8], mut key: [u8; 4], offset: u64) {
    key.rotate_left((offset % 4) as usize);
    for group in buf.chunks_mut(4) {
        for (b, k) in group.iter_mut().zip(key) {
            *b ^= k;
        }
    }
}

/// Decodes a complete close payload (never 1 byte long: that is rejected at the header).
fn parse_close(payload: &[u8]) -> Result<Observed, ProtocolError> {
    let Some((code, reason)) = payload.split_first_chunk::<2>() else {
        return if payload.is_empty() {
            Ok(Observed::Close {
                code: None,
                reason: String::new(),
            })
        } else {
            Err(ProtocolError::protocol("close payload of 1 byte"))
        };
    };
    let code = u16::from_be_bytes(*code);
    if !close_code_allowed(code) {
        return Err(ProtocolError::protocol(
            "close code not allowed on the wire",
        ));
    }
    let reason = std::str::from_utf8(reason)
        .map_err(|_| ProtocolError::invalid_payload("invalid UTF-8 in close reason"))?;
    Ok(Observed::Close {
        code: Some(code),
        reason: reason.to_owned(),
    })
}

/// Whether `code` may appear in a close frame.
///
/// RFC 6455 §7.4.2: 0–999 are not used; 1000–2999 are reserved for the protocol and its
/// extensions, of which only registered codes may be sent; 3000–3999 are for libraries and
/// frameworks (IANA registered) and 4000–4999 for private use; nothing above 4999 is defined.
/// Of 1000–2999, §7.4.1 defines 1000–1003 and 1007–1011, and the IANA "WebSocket Close Code
/// Number Registry" adds 1012–1014. 1004 is reserved without meaning, and 1005, 1006 and 1015
/// are registered but "MUST NOT be set as a status code in a Close control frame by an
/// endpoint" (§7.4.1); 1016–2999 are unassigned.
pub fn close_code_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A complete close frame carrying `code` and `reason`, masked with `mask` when given (as every
/// client-to-server frame must be). The reason is cut at a character boundary so the payload
/// fits [`MAX_CONTROL_PAYLOAD`]. `code` should satisfy [`close_code_allowed`].
pub fn close_frame(code: u16, reason: &str, mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut cut = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let reason = &reason.as_bytes()[..cut];
    let payload_len = 2 + reason.len(); // at most 125, so it fits the 7-bit length
    let mut frame = Vec::with_capacity(2 + 4 + payload_len);
    frame.push(FIN_BIT | OP_CLOSE);
    let len7 = payload_len as u8;
    match mask {
        Some(key) => {
            frame.push(MASK_BIT | len7);
            frame.extend_from_slice(&key);
        }
        None => frame.push(len7),
    }
    let start = frame.len();
    frame.extend_from_slice(&code.to_be_bytes());
    frame.extend_from_slice(reason);
    if let Some(key) = mask {
        unmask(&mut frame[start..], key, 0);
    }
    frame
}
