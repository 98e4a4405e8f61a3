//! Dialing an origin: try every resolved address in order (IPv4 and IPv6 alike) within one
//! overall connect deadline, splitting the time left evenly over the addresses still to try so a
//! black-holed first address cannot use up the whole budget. The caller gets a connected,
//! TCP_NODELAY stream or one error that says refused/unreachable versus timed out.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;

/// Why no address accepted the connection.
#[derive(Debug)]
pub enum DialError {
    /// Every address failed fast; the last error.
    Failed(io::Error),
    /// The deadline passed before any address connected.
    TimedOut,
}

/// Connect to the first address in `addrs` that accepts within `timeout` overall.
pub async fn dial(addrs: &[SocketAddr], timeout: Duration) -> Result<TcpStream, DialError> {
    let deadline = Instant::now() + timeout;
    let mut last_err = None;
    let mut timed_out = false;
    for (i, addr) in addrs.iter().enumerate() {
        let now = Instant::now();
        if now >= deadline {
            timed_out = true;
            break;
        }
        let left = (addrs.len() - i) as u32;
        let budget = (deadline - now) / left;
        match monoio::time::timeout(budget, TcpStream::connect_addr(*addr)).await {
            Ok(Ok(stream)) => {
                // Best effort: a failure here only costs latency.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last_err = Some(e),
            Err(_) => timed_out = true,
        }
    }
    if timed_out {
        return Err(DialError::TimedOut);
    }
    Err(DialError::Failed(last_err.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, "no addresses to connect to")
    })))
}
