//! The `/events` body: Server-Sent Events framing of JSON lines, keep-alive comments during
//! silence, and the three ways a stream ends. Generic over the writer and the line source so
//! it is tested without sockets or a hub.

use std::fmt;
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use super::{KEEPALIVE_INTERVAL, STOP_POLL};

/// Response head of an event stream; the body runs until the connection closes.
pub(super) const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\n\
Content-Type: text/event-stream\r\n\
Cache-Control: no-cache\r\n\
Connection: close\r\n\
X-Accel-Buffering: no\r\n\
\r\n";

/// Sent after [`Timing::keepalive`] without an event, so a dead client shows up as a write
/// error.
pub(super) const KEEPALIVE: &[u8] = b": keep-alive\n\n";

/// Most queued lines gathered into one write.
const BATCH: u64 = 64;

#[derive(Debug, Clone, Copy)]
pub(super) struct Timing {
    /// Silence before a keep-alive comment.
    pub keepalive: Duration,
    /// Longest single wait for a line, i.e. how often the stop flag is checked.
    pub poll: Duration,
}

impl Timing {
    pub const DEFAULT: Timing = Timing {
        keepalive: KEEPALIVE_INTERVAL,
        poll: STOP_POLL,
    };
}

/// How a stream ended.
#[derive(Debug)]
pub(super) enum End {
    /// Writing to the client failed (it went away, or stopped reading for a write timeout).
    ClientGone(io::Error),
    /// The source disconnected: the hub dropped a slow subscriber, or shut down.
    Disconnected,
    /// The admin listener is stopping.
    Stopped,
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            End::ClientGone(e) => write!(f, "client gone ({e})"),
            End::Disconnected => f.write_str("disconnected by the hub"),
            End::Stopped => f.write_str("admin stopping"),
        }
    }
}

/// Writes each line from `next` as one `data:` event until the stream ends; returns the number
/// of events written and why it ended.
pub(super) fn stream(
    out: &mut impl Write,
    next: &mut dyn FnMut(Duration) -> Result<Arc<str>, RecvTimeoutError>,
    stop: &AtomicBool,
    timing: Timing,
) -> (u64, End) {
    let mut sent = 0u64;
    let mut frame = Vec::new();
    let mut last_write = Instant::now();
    loop {
        if stop.load(Ordering::Acquire) {
            return (sent, End::Stopped);
        }
        let idle = last_write.elapsed();
        if idle >= timing.keepalive {
            if let Err(e) = send(out, KEEPALIVE) {
                return (sent, End::ClientGone(e));
            }
            last_write = Instant::now();
            continue;
        }
        let first = match next(timing.poll.min(timing.keepalive - idle)) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return (sent, End::Disconnected),
        };
        frame.clear();
        push_event(&mut frame, &first);
        let mut batch = 1;
        let mut disconnected = false;
        while batch < BATCH {
            match next(Duration::ZERO) {
                Ok(line) => {
                    push_event(&mut frame, &line);
                    batch += 1;
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    disconnected = true;
                    break;
                }
            }
        }
        if let Err(e) = send(out, &frame) {
            return (sent, End::ClientGone(e));
        }
        sent += batch;
        last_write = Instant::now();
        if disconnected {
            return (sent, End::Disconnected);
        }
    }
}

fn send(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    out.write_all(bytes)?;
    out.flush()
}

/// Appends one event carrying `line`. A trailing line break is dropped; any other line break
/// starts a new `data:` field (clients join them with `\n`), so the framing cannot break.
pub(super) fn push_event(frame: &mut Vec<u8>, line: &str) {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    for part in line.split('\n') {
        frame.extend_from_slice(b"data: ");
        frame.extend_from_slice(part.strip_suffix('\r').unwrap_or(part).as_bytes());
        frame.push(b'\n');
    }
    frame.push(b'\n');
}
