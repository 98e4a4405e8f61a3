//! Owned header storage. A parsed head copies its raw bytes once into one `Vec<u8>`; every field
//! (and the start-line pieces the request/response types keep) is a pair of `u32` offsets into
//! that buffer, so a head owns its data, borrows nothing from the read buffer, and costs two
//! allocations however many fields it has. Lookups are ASCII case-insensitive; names and values
//! come back byte-exact as received. `push` appends to the buffer, `remove` only drops entries.

use std::ops::Range;

use super::framing::is_token;

/// Byte offsets `start..end` into a [`Headers`] buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// The span of `part` inside `base`, when `part` is a sub-slice of `base` (pointer-wise) and
    /// offsets fit in `u32`.
    pub(super) fn of(base: &[u8], part: &[u8]) -> Option<Span> {
        let start = (part.as_ptr() as usize).checked_sub(base.as_ptr() as usize)?;
        let end = start.checked_add(part.len())?;
        if end > base.len() {
            return None;
        }
        Some(Span {
            start: u32::try_from(start).ok()?,
            end: u32::try_from(end).ok()?,
        })
    }

    /// A span from plain offsets (`start <= end`), when they fit in `u32`.
    pub(super) fn from_range(r: Range<usize>) -> Option<Span> {
        if r.start > r.end {
            return None;
        }
        Some(Span {
            start: u32::try_from(r.start).ok()?,
            end: u32::try_from(r.end).ok()?,
        })
    }

    fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

#[derive(Debug, Clone, Copy)]
struct Field {
    name: Span,
    value: Span,
}

/// Header fields of one message, stored as ranges into one owned byte buffer (the raw head
/// bytes copied once after parsing) so a parsed head owns its data and holds no borrow of the
/// read buffer. Edit it with [`Headers::push`] / [`Headers::remove`]; replacing a head's
/// `headers` wholesale also replaces the buffer its method/target/reason bytes live in.
#[derive(Debug, Clone, Default)]
pub struct Headers {
    raw: Vec<u8>,
    fields: Vec<Field>,
}

impl Headers {
    /// Takes ownership of a head's raw bytes; fields are added with `push_span`.
    pub(super) fn with_raw(raw: Vec<u8>, fields: usize) -> Headers {
        Headers {
            raw,
            fields: Vec::with_capacity(fields),
        }
    }

    pub(super) fn push_span(&mut self, name: Span, value: Span) {
        self.fields.push(Field { name, value });
    }

    /// Bytes of `span` in the buffer (empty if the span does not belong to this buffer).
    pub(super) fn slice(&self, span: Span) -> &[u8] {
        self.raw.get(span.range()).unwrap_or_default()
    }

    /// Size of the byte buffer (a bound on the serialized size of the fields).
    pub(super) fn raw_len(&self) -> usize {
        self.raw.len()
    }

    /// Writes every field `keep` accepts as `name: value CRLF`. A field whose received line was
    /// exactly `name:` OWS `value` CRLF is copied verbatim from the buffer, and consecutive such
    /// lines are copied with one `memcpy`; others (pushed fields, trailing whitespace, bare LF)
    /// are rebuilt. Either way names and values are byte-exact and every line ends in CRLF.
    pub(super) fn write_fields(&self, out: &mut Vec<u8>, mut keep: impl FnMut(&[u8]) -> bool) {
        let mut run = 0..0;
        for f in &self.fields {
            if !keep(self.slice(f.name)) {
                continue;
            }
            match self.wire_line(f) {
                Some(line) if !run.is_empty() && line.start == run.end => run.end = line.end,
                Some(line) => {
                    out.extend_from_slice(self.raw.get(run).unwrap_or_default());
                    run = line;
                }
                None => {
                    out.extend_from_slice(self.raw.get(run).unwrap_or_default());
                    run = 0..0;
                    out.extend_from_slice(self.slice(f.name));
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(self.slice(f.value));
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
        out.extend_from_slice(self.raw.get(run).unwrap_or_default());
    }

    /// The range of `f`'s received line when it is exactly `name:` OWS `value` CRLF.
    fn wire_line(&self, f: &Field) -> Option<Range<usize>> {
        let (name, value) = (f.name.range(), f.value.range());
        if value.start <= name.end {
            return None; // pushed field, or empty value
        }
        match self.raw.get(name.end..value.start)? {
            [b':', ows @ ..] if ows.iter().all(|&b| b == b' ' || b == b'\t') => {}
            _ => return None,
        }
        let end = value.end.checked_add(2)?;
        (self.raw.get(value.end..end)? == b"\r\n").then_some(name.start..end)
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// `(name, value)` pairs in wire order, names as sent.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields
            .iter()
            .map(|f| (self.slice(f.name), self.slice(f.value)))
    }

    /// The first value of `name` (ASCII case-insensitive).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        let name = name.as_bytes();
        self.fields
            .iter()
            .find(|f| self.slice(f.name).eq_ignore_ascii_case(name))
            .map(|f| self.slice(f.value))
    }

    /// Every value of `name` (ASCII case-insensitive), in wire order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        let name = name.as_bytes();
        self.fields
            .iter()
            .filter(move |f| self.slice(f.name).eq_ignore_ascii_case(name))
            .map(|f| self.slice(f.value))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Appends a field. A field that could not be serialized safely — a name that is not a
    /// token, a value containing CR, LF or NUL — is ignored, as is one that would push the
    /// buffer past 4 GiB.
    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        if !is_token(name) || value.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)) {
            return;
        }
        let start = self.raw.len();
        let mid = start + name.len();
        let end = mid + value.len();
        let (Some(name_span), Some(value_span)) =
            (Span::from_range(start..mid), Span::from_range(mid..end))
        else {
            return;
        };
        self.raw.reserve(end - start);
        self.raw.extend_from_slice(name);
        self.raw.extend_from_slice(value);
        self.push_span(name_span, value_span);
    }

    /// Removes every field called `name` (ASCII case-insensitive); returns how many.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.fields.len();
        let raw = &self.raw;
        self.fields.retain(|f| {
            !raw.get(f.name.range())
                .unwrap_or_default()
                .eq_ignore_ascii_case(name.as_bytes())
        });
        before - self.fields.len()
    }
}

#[cfg(test)]
mod tests;
