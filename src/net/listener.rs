//! Listening sockets. Each worker gets its own socket per listen address, all bound to the same
//! address with SO_REUSEPORT so the kernel spreads new connections across workers without any
//! shared accept queue or lock. The first socket of each address is bound *without*
//! SO_REUSEPORT, which the kernel refuses while anyone else is bound there (with or without
//! the flag), so a second lynxio or any other listener makes startup fail with "address in
//! use" instead of silently sharing the port; the flag is set on it only after the bind, so
//! the other workers' sockets join it. When a port of 0 is requested, that first socket's real
//! port is reused for the others so every worker serves the same port. [`accept_ready`] takes
//! connections already queued without waiting, so a burst is accepted in one go.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// Accept queue length per socket.
pub const LISTEN_BACKLOG: i32 = 4096;

/// A connection already waiting in `listener`'s accept queue, taken without blocking (`None`:
/// the queue is empty). The accept loop drains the queue with this after each accept the
/// driver completes: one driver accept per event-loop turn would let a burst of thousands of
/// connections wait in the backlog for thousands of turns, their first requests unanswered.
pub fn accept_ready(
    listener: &monoio::net::TcpListener,
) -> io::Result<Option<(monoio::net::TcpStream, SocketAddr)>> {
    let fd = super::sys::borrow_listener(listener);
    let (socket, addr) = match socket2::SockRef::from(&fd).accept() {
        Ok(v) => v,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
        Err(e) => return Err(e),
    };
    socket.set_nonblocking(true)?;
    let peer = addr
        .as_socket()
        .ok_or_else(|| io::Error::other("accepted a connection that is not TCP/IP"))?;
    let stream = monoio::net::TcpStream::from_std(std::net::TcpStream::from(socket))?;
    Ok(Some((stream, peer)))
}

/// A non-blocking TCP socket for `addr`, SO_REUSEADDR set (a restart is not refused over
/// connections in TIME_WAIT; Linux still refuses a second listener).
fn listen_socket(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    // Clients on this host start on Reno (see `net::tcp`).
    if let Err(e) = super::tcp::listener_from_birth(&socket, addr) {
        tracing::debug!(%addr, error = %e, "setting the listener's congestion control failed");
    }
    Ok(socket)
}

/// Bind one non-blocking, SO_REUSEPORT listening socket (joins sockets already bound there
/// with the flag, by the same user).
pub fn bind_reuseport(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = listen_socket(addr)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Bind the first listening socket of an address: exclusively (fails with `AddrInUse` if any
/// other socket is bound there), then SO_REUSEPORT so the other workers' sockets can join.
pub fn bind_first(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = listen_socket(addr)?;
    socket.bind(&addr.into())?;
    socket.set_reuse_port(true)?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Bind `workers` sockets for every address. Returns, per worker, one listener per address, and
/// the addresses actually bound (real ports). An address someone else listens on is an error
/// naming it ("cannot listen on …: address in use").
pub fn bind_all(
    addrs: &[SocketAddr],
    workers: usize,
) -> io::Result<(Vec<Vec<TcpListener>>, Vec<SocketAddr>)> {
    let mut per_worker: Vec<Vec<TcpListener>> = (0..workers).map(|_| Vec::new()).collect();
    let mut bound = Vec::with_capacity(addrs.len());
    for &addr in addrs {
        let first = bind_first(addr).map_err(|e| cannot_listen(addr, e))?;
        let real = first.local_addr()?;
        bound.push(real);
        let mut first = Some(first);
        for listeners in per_worker.iter_mut() {
            let l = match first.take() {
                Some(l) => l,
                None => bind_reuseport(real).map_err(|e| cannot_listen(real, e))?,
            };
            listeners.push(l);
        }
    }
    Ok((per_worker, bound))
}

fn cannot_listen(addr: SocketAddr, e: io::Error) -> io::Error {
    let why = if e.kind() == io::ErrorKind::AddrInUse {
        "address in use (another process is listening there)".to_owned()
    } else {
        e.to_string()
    };
    io::Error::new(e.kind(), format!("cannot listen on {addr}: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_shared_by_workers() {
        let (per_worker, bound) = bind_all(&["127.0.0.1:0".parse().unwrap()], 3).unwrap();
        assert_eq!(per_worker.len(), 3);
        assert_ne!(bound[0].port(), 0);
        for l in &per_worker {
            assert_eq!(l[0].local_addr().unwrap(), bound[0]);
        }
    }

    #[test]
    fn a_foreign_listener_makes_binding_fail() {
        let plain = TcpListener::bind("127.0.0.1:0").unwrap();
        let reuseport = bind_reuseport("127.0.0.1:0".parse().unwrap()).unwrap();
        for taken in [plain.local_addr().unwrap(), reuseport.local_addr().unwrap()] {
            let e = bind_all(&[taken], 2).expect_err("address taken");
            assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
            let msg = e.to_string();
            assert!(msg.contains("address in use"), "{msg}");
            assert!(msg.contains(&taken.to_string()), "{msg}");
        }
    }

    #[test]
    fn a_second_bind_all_on_our_address_fails() {
        let (_ours, bound) = bind_all(&["127.0.0.1:0".parse().unwrap()], 2).unwrap();
        let e = bind_all(&bound, 2).expect_err("already ours");
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
    }
}
