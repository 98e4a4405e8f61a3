//! Streaming decoder for the chunked transfer coding (RFC 9112 §7.1). It validates framing
//! strictly — hex size of at most 16 digits, extensions without CTLs and bounded by
//! [`MAX_CHUNK_LINE_BYTES`], CRLF only (no bare LF/CR), CRLF after each data segment, trailer
//! fields with token names and no obs-fold bounded by [`MAX_TRAILER_BYTES`] — one byte at a time
//! on framing bytes only; data segments are handed back as one range per step, never scanned.
//! Optional whitespace (BWS) between the size and `;` is accepted, as the chunk-ext grammar
//! allows; whitespace between the size and CRLF is not.

use std::ops::Range;

use super::framing::is_tchar;
use super::{MAX_CHUNK_LINE_BYTES, MAX_TRAILER_BYTES, ParseError, ParseErrorKind};

const fn bad(detail: &'static str) -> ParseError {
    ParseError::new(ParseErrorKind::BadChunk, detail)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum State {
    /// Expecting the first hex digit of a chunk size.
    #[default]
    Size,
    /// After at least one size digit.
    SizeDigits,
    /// Whitespace after the size: only more whitespace or `;` may follow.
    SizeBws,
    /// Inside chunk extensions, until CR.
    Ext,
    /// CR of the size line seen.
    SizeLf,
    /// Inside chunk data (`remaining > 0`).
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer field line or of the final CRLF.
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    FinalLf,
    Done,
}

/// Streaming chunked-body decoder (RFC 9112 §7.1). Feed it whatever bytes are buffered; each
/// call consumes at most one data segment. The proxy either forwards consumed bytes verbatim
/// (it validated them) or, for an HTTP/1.0 client, forwards only the data ranges.
#[derive(Debug, Clone, Default)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    digits: u8,
    line: usize,
    remaining: u64,
    trailer: usize,
}

/// The outcome of one [`ChunkedDecoder::decode`] call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkStep {
    /// Bytes of the input consumed (framing and data).
    pub consumed: usize,
    /// Chunk data inside `0..consumed`; empty (`0..0`) when this step was framing only.
    pub data: Range<usize>,
    /// The final CRLF after the trailers has been consumed; bytes after it are not ours.
    pub done: bool,
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the whole chunked body (last chunk, trailers, final CRLF) has been consumed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes framing bytes and at most one data segment from `input`. `consumed == 0` only
    /// when `input` is empty or the body is already done (the rest belongs to the next message).
    pub fn decode(&mut self, input: &[u8]) -> Result<ChunkStep, ParseError> {
        let mut pos = 0;
        let mut data = 0..0;
        while let Some(rest) = input.get(pos..) {
            let Some(&b) = rest.first() else { break };
            match self.state {
                State::Done => break,
                State::Data if !data.is_empty() => break,
                State::Data => {
                    let take = usize::try_from(self.remaining)
                        .unwrap_or(usize::MAX)
                        .min(rest.len());
                    data = pos..pos + take;
                    pos += take;
                    self.remaining -= take as u64;
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                }
                _ => {
                    self.framing_byte(b)?;
                    pos += 1;
                }
            }
        }
        Ok(ChunkStep {
            consumed: pos,
            data,
            done: self.is_done(),
        })
    }

    fn framing_byte(&mut self, b: u8) -> Result<(), ParseError> {
        use State::*;
        match self.state {
            Size | SizeDigits | SizeBws | Ext if b != b'\r' => {
                self.line += 1;
                if self.line > MAX_CHUNK_LINE_BYTES {
                    return Err(bad("chunk size line too long"));
                }
            }
            TrailerStart | TrailerName | TrailerValue | TrailerLf | FinalLf => {
                self.trailer += 1;
                if self.trailer > MAX_TRAILER_BYTES {
                    return Err(bad("trailer section too large"));
                }
            }
            _ => {}
        }
        self.state = match (self.state, b) {
            (Size, _) => {
                let v = hex(b).ok_or(bad("invalid chunk size"))?;
                self.size = v;
                self.digits = 1;
                SizeDigits
            }
            (SizeDigits, b';') => Ext,
            (SizeDigits, b' ' | b'\t') => SizeBws,
            (SizeDigits, b'\r') => SizeLf,
            (SizeDigits, _) => {
                let v = hex(b).ok_or(bad("invalid chunk size"))?;
                if self.digits >= 16 {
                    return Err(bad("chunk size too large"));
                }
                self.digits += 1;
                self.size = (self.size << 4) | v;
                SizeDigits
            }
            (SizeBws, b' ' | b'\t') => SizeBws,
            (SizeBws, b';') => Ext,
            (SizeBws, _) => return Err(bad("whitespace after chunk size")),
            (Ext, b'\r') => SizeLf,
            (Ext, b'\t' | 0x20..=0x7e | 0x80..=0xff) => Ext,
            (Ext, _) => return Err(bad("invalid byte in chunk extension")),
            (SizeLf, b'\n') => {
                self.line = 0;
                if self.size == 0 {
                    TrailerStart
                } else {
                    self.remaining = self.size;
                    Data
                }
            }
            (SizeLf, _) => return Err(bad("chunk size line not ended by CRLF")),
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => Size,
            (DataCr | DataLf, _) => return Err(bad("chunk data not followed by CRLF")),
            (TrailerStart, b'\r') => FinalLf,
            (TrailerStart | TrailerName, _) if is_tchar(b) => TrailerName,
            (TrailerName, b':') => TrailerValue,
            (TrailerStart | TrailerName, _) => return Err(bad("invalid trailer field name")),
            (TrailerValue, b'\r') => TrailerLf,
            (TrailerValue, b'\t' | 0x20..=0x7e | 0x80..=0xff) => TrailerValue,
            (TrailerValue, _) => return Err(bad("invalid trailer field value")),
            (TrailerLf, b'\n') => TrailerStart,
            (TrailerLf, _) => return Err(bad("trailer field not ended by CRLF")),
            (FinalLf, b'\n') => Done,
            (FinalLf, _) => return Err(bad("chunked body not ended by CRLF")),
            (Data | Done, _) => self.state,
        };
        Ok(())
    }
}

fn hex(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some(u64::from(b - b'0')),
        b'a'..=b'f' => Some(u64::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u64::from(b - b'A' + 10)),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
