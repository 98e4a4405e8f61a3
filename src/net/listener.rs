//! Listening sockets. Each worker gets its own socket per listen address, all bound to the same
//! address with SO_REUSEPORT so the kernel spreads new connections across workers without any
//! shared accept queue or lock. When a port of 0 is requested, the first socket's real port is
//! reused for the others so every worker serves the same port.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// Accept queue length per socket.
pub const LISTEN_BACKLOG: i32 = 4096;

/// Bind one non-blocking, SO_REUSEPORT listening socket.
pub fn bind_reuseport(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Bind `workers` sockets for every address. Returns, per worker, one listener per address, and
/// the addresses actually bound (real ports).
pub fn bind_all(
    addrs: &[SocketAddr],
    workers: usize,
) -> io::Result<(Vec<Vec<TcpListener>>, Vec<SocketAddr>)> {
    let mut per_worker: Vec<Vec<TcpListener>> = (0..workers).map(|_| Vec::new()).collect();
    let mut bound = Vec::with_capacity(addrs.len());
    for &addr in addrs {
        let first = bind_reuseport(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        let real = first.local_addr()?;
        bound.push(real);
        let mut first = Some(first);
        for listeners in per_worker.iter_mut() {
            let l = match first.take() {
                Some(l) => l,
                None => bind_reuseport(real)?,
            };
            listeners.push(l);
        }
    }
    Ok((per_worker, bound))
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
}
