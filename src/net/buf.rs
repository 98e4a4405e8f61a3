//! [`ReadBuf`]: the per-connection read buffer for monoio's owned-buffer ("rent") I/O. Bytes are
//! read into the spare capacity at the end and consumed from the front, so a parsed head or a
//! forwarded body segment never needs an extra copy: the same `Vec` is lent to the kernel for
//! reads and for writes of its buffered prefix. Leftover bytes (a pipelined request, a body
//! prefix read together with a head) stay in place for the next consumer.

use std::io;
use std::mem;

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, CancelHandle, CancelableAsyncReadRent,
};

/// Always leave at least this much room for a read before growing.
const MIN_READ_SPACE: usize = 2048;

/// A growable read buffer: `data[start..]` are buffered, unconsumed bytes.
#[derive(Debug, Default)]
pub struct ReadBuf {
    data: Vec<u8>,
    start: usize,
}

impl ReadBuf {
    /// An empty buffer with `capacity` bytes reserved.
    pub fn with_capacity(capacity: usize) -> Self {
        ReadBuf {
            data: Vec::with_capacity(capacity),
            start: 0,
        }
    }

    /// A buffer whose first bytes are `prefix` (bytes already read by someone else, e.g. a sniffer).
    pub fn from_prefix(prefix: Vec<u8>) -> Self {
        ReadBuf {
            data: prefix,
            start: 0,
        }
    }

    /// The unconsumed bytes as a vector (hands a sniffed prefix to the next owner).
    pub fn into_vec(mut self) -> Vec<u8> {
        self.data.drain(..self.start);
        self.data
    }

    /// The buffered, unconsumed bytes.
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        &self.data[self.start..]
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.data.len() - self.start
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the buffer can hold without reallocating.
    pub fn capacity(&self) -> usize {
        self.data.capacity()
    }

    /// Drop the first `n` buffered bytes.
    #[inline]
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.data.len());
        if self.start == self.data.len() {
            self.data.clear();
            self.start = 0;
        }
    }

    /// Make sure the buffer can hold `capacity` bytes in total (used before streaming a big body).
    pub fn reserve_total(&mut self, capacity: usize) {
        if self.data.capacity() < capacity {
            self.data.reserve(capacity - self.data.len());
        }
    }

    /// Give memory back while the connection sits idle: when nothing is buffered and the
    /// buffer grew beyond `capacity` (a large body streamed through it), shrink it back to
    /// `capacity`, so an idle pooled or keep-alive connection does not hold a body-sized
    /// buffer. A buffer still holding bytes, or not grown, is left as it is.
    pub fn shrink_idle(&mut self, capacity: usize) {
        if self.is_empty() && self.data.capacity() > capacity {
            self.data.clear();
            self.start = 0;
            self.data.shrink_to(capacity);
        }
    }

    /// Give the storage back while nothing is buffered (a connection about to sit idle for a
    /// long time); the next read allocates again. A buffer holding bytes is left as it is.
    pub fn release(&mut self) {
        if self.is_empty() {
            self.data = Vec::new();
            self.start = 0;
        }
    }

    /// [`fill`](Self::fill) as a read that `handle`'s canceller can cancel: a cancelled read
    /// returns `ECANCELED` with nothing appended, and one that completed before the cancel
    /// reached the kernel still appends its bytes, so cancelling never loses data (unlike
    /// dropping the future of an in-flight io_uring read).
    pub async fn fill_cancelable<R: CancelableAsyncReadRent>(
        &mut self,
        io: &mut R,
        limit: usize,
        handle: CancelHandle,
    ) -> io::Result<usize> {
        let Some((len, end)) = self.make_room(limit) else {
            return Ok(0);
        };
        let buf = mem::take(&mut self.data);
        let (res, slice) = io.cancelable_read(buf.slice_mut(len..end), handle).await;
        self.data = slice.into_inner();
        res
    }

    /// Room for one read of at most `limit` bytes: the range of `data` to read into, or `None`
    /// when `limit` is 0.
    #[inline]
    fn make_room(&mut self, limit: usize) -> Option<(usize, usize)> {
        if self.start > 0 {
            self.data.drain(..self.start);
            self.start = 0;
        }
        if self.data.capacity() - self.data.len() < MIN_READ_SPACE {
            self.data.reserve(MIN_READ_SPACE.max(self.data.len()));
        }
        let len = self.data.len();
        let end = self.data.capacity().min(len.saturating_add(limit));
        (end > len).then_some((len, end))
    }

    /// Read once from `io`, appending at most `limit` bytes. Returns the count; 0 means EOF
    /// (or `limit == 0`). If the future is dropped mid-read the buffered bytes are lost, so only
    /// drop it when the connection is being closed anyway.
    pub async fn fill<R: AsyncReadRent>(&mut self, io: &mut R, limit: usize) -> io::Result<usize> {
        let Some((len, end)) = self.make_room(limit) else {
            return Ok(0);
        };
        let buf = mem::take(&mut self.data);
        let (res, slice) = io.read(buf.slice_mut(len..end)).await;
        self.data = slice.into_inner();
        res
    }

    /// Write the first `n` buffered bytes (clamped to what is buffered) to `io` and consume them.
    pub async fn write_to<W: AsyncWriteRent>(&mut self, io: &mut W, n: usize) -> io::Result<()> {
        let n = n.min(self.len());
        if n == 0 {
            return Ok(());
        }
        let (start, data) = (self.start, mem::take(&mut self.data));
        let (res, slice) = io.write_all(data.slice(start..start + n)).await;
        self.data = slice.into_inner();
        self.start = start;
        res?;
        self.consume(n);
        Ok(())
    }

    /// Move the first `n` buffered bytes to the end of `out` (used to coalesce a small body with
    /// the head in one write).
    pub fn take_into(&mut self, out: &mut Vec<u8>, n: usize) {
        let n = n.min(self.len());
        out.extend_from_slice(&self.data[self.start..self.start + n]);
        self.consume(n);
    }
}

/// Write all of `out` to `io` and hand the (cleared) vector back for reuse.
pub async fn write_vec<W: AsyncWriteRent>(io: &mut W, out: &mut Vec<u8>) -> io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    let buf = mem::take(out);
    let (res, mut buf) = io.write_all(buf).await;
    buf.clear();
    *out = buf;
    res.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrink_idle_gives_back_a_grown_empty_buffer() {
        let mut buf = ReadBuf::with_capacity(1024);
        buf.reserve_total(64 * 1024);
        assert!(buf.capacity() >= 64 * 1024);
        buf.shrink_idle(1024);
        assert!(buf.capacity() >= 1024 && buf.capacity() < 64 * 1024);
        // Not grown: untouched (no reallocation).
        let before = buf.capacity();
        buf.shrink_idle(before);
        assert_eq!(buf.capacity(), before);
    }

    #[test]
    fn release_frees_only_an_empty_buffer() {
        let mut buf = ReadBuf::from_prefix(b"kept".to_vec());
        buf.release();
        assert_eq!(buf.bytes(), b"kept");
        buf.consume(4);
        buf.release();
        assert_eq!(buf.capacity(), 0);
    }

    #[test]
    fn shrink_idle_keeps_buffered_bytes() {
        let mut prefix = Vec::with_capacity(64 * 1024);
        prefix.extend_from_slice(b"pipelined");
        let mut buf = ReadBuf::from_prefix(prefix);
        buf.shrink_idle(1024);
        assert_eq!(buf.bytes(), b"pipelined");
        assert!(buf.capacity() >= 64 * 1024);
        // Consumed to the end: now it may shrink.
        buf.consume(buf.len());
        buf.shrink_idle(1024);
        assert!(buf.capacity() < 64 * 1024);
        assert!(buf.is_empty());
    }
}
