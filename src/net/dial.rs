//! Dialing an origin: try every resolved address in order (IPv4 and IPv6 alike) within one
//! overall connect deadline, splitting the time left evenly over the addresses still to try so a
//! black-holed first address cannot use up the whole budget. The caller gets a connected,
//! TCP_NODELAY stream or one error that says refused/unreachable versus timed out. Sockets are
//! made here (not by the runtime's connect) so options that only work before the handshake can
//! be set: a dial to a loopback address starts on Reno (`net::tcp::same_host_from_birth`).

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;
use socket2::{Domain, Protocol, SockRef, Socket, Type};

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
        match monoio::time::timeout(budget, connect(*addr)).await {
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

/// One non-blocking connect to `addr`: the socket is registered with the worker's runtime and
/// the handshake awaited as writability, then its outcome read from `SO_ERROR`.
async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )?;
    if let Err(e) = super::tcp::same_host_from_birth(&socket, addr) {
        tracing::debug!(%addr, error = %e, "setting the congestion control before connect failed");
    }
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let stream = TcpStream::from_std(socket.into())?;
    stream.writable(false).await?;
    let fd = super::sys::borrow_socket(&stream);
    match SockRef::from(&fd).take_error()? {
        Some(e) => Err(e),
        None => Ok(stream),
    }
}
