//! TCP options lynxio sets on tunnel sockets. One so far: on a connection whose peer is on this
//! host (loopback, or the same address at both ends), a model-based congestion control such as
//! BBR — the usual system default — is swapped for Reno. BBR sizes the congestion window from
//! the path's measured bottleneck bandwidth × minimum RTT; on loopback the minimum RTT is
//! microseconds, so the window stays at a few segments, while the RTT under load is the time
//! the *receiving process* takes to be scheduled and read (hundreds of µs when it runs on
//! another core). Sending is then window-limited: measured on a 2-core VM, one tunnel moved
//! 1.8 GB/s with both proxy cores half idle and the proxy's origin socket at `cwnd` 10–34 with
//! 2–3.5 MB not yet sent; with Reno on the proxy's sending socket it moved 4.3 GB/s (direct
//! loopback: 4.8 GB/s) at less than half the CPU per byte, because bursts get bigger. Reno is
//! loss-based (on loopback, with no loss, the window simply grows to the receiver's) and is the
//! one algorithm every process may choose (`tcp_allowed_congestion_control` always includes it).
//! Connections to other hosts keep the system's choice; so does a loopback socket already on a
//! loss-based algorithm.
//!
//! Where it can, lynxio picks Reno *before* the connection exists: on a listener bound to a
//! loopback or wildcard address ([`listener_from_birth`]; accepted sockets inherit the
//! listener's choice, and on a wildcard listener a client from another host gets the system
//! default back at once, [`accepted_on_wildcard`]) and on a socket about to dial a loopback
//! address ([`same_host_from_birth`]). Swapping an established socket off BBR leaves the
//! kernel's internal pacing switched on (BBR's init asks for it and nothing turns it off), and
//! with internal pacing every 64 KiB loopback segment after the first of a send waits for its
//! own high-resolution timer: on the 2-core VM a spliced 1 MiB body cost 0.50 s of proxy CPU
//! per GB swapped and 0.31 born Reno. A listener bound to one of the host's own non-loopback
//! addresses, and an origin on one, are still swapped after the fact ([`tune`]).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;

use monoio::net::TcpStream;
use socket2::{Domain, SockRef, Socket, Type};

use super::sys;

/// Congestion control set on same-host connections that use a model-based one.
pub const SAME_HOST_CONGESTION: &str = "reno";

/// Loss-based algorithms that already grow the window to the receiver's on a lossless path.
const LOSS_BASED: &[&str] = &["reno", "cubic", "htcp", "highspeed", "scalable", "bic"];

/// Best effort: set [`SAME_HOST_CONGESTION`] on `stream` if its peer is on this host and its
/// congestion control is not loss-based. Ok(true) if it was changed.
pub fn tune(stream: &TcpStream) -> io::Result<bool> {
    let fd = sys::borrow_socket(stream);
    let sock = SockRef::from(&fd);
    // First the one-syscall check that ends it for a socket already tuned (or loss-based).
    if is_loss_based(&sock.tcp_congestion()?) {
        return Ok(false);
    }
    let (Some(local), Some(peer)) = (
        sock.local_addr()?.as_socket(),
        sock.peer_addr()?.as_socket(),
    ) else {
        return Ok(false);
    };
    if !same_host(local, peer) {
        return Ok(false);
    }
    sock.set_tcp_congestion(SAME_HOST_CONGESTION.as_bytes())?;
    Ok(true)
}

/// Before `socket` listens or connects, for a listener bound to (or a dial to) a loopback
/// address: set [`SAME_HOST_CONGESTION`] if the system default it was created with is
/// model-based, so no connection of it ever starts on BBR. Ok(true) if it was set.
pub fn same_host_from_birth(socket: &Socket, addr: SocketAddr) -> io::Result<bool> {
    if !addr.ip().to_canonical().is_loopback() {
        return Ok(false);
    }
    set_if_model_based(socket)
}

/// Before `listener` listens on `addr`: [`SAME_HOST_CONGESTION`] for a loopback address (every
/// client is on this host) and for a wildcard one (same-host clients among them; the others are
/// put back by [`accepted_on_wildcard`]), if the system default is model-based. Ok(true) if set.
pub fn listener_from_birth(listener: &Socket, addr: SocketAddr) -> io::Result<bool> {
    let ip = addr.ip().to_canonical();
    if !(ip.is_loopback() || ip.is_unspecified()) {
        return Ok(false);
    }
    set_if_model_based(listener)
}

/// A connection accepted on a wildcard listener, which [`listener_from_birth`] put on Reno:
/// a client on another host gets the system's default algorithm back (one `setsockopt`, before
/// a byte is sent), a client on this host keeps Reno. `local` is the address the client reached.
/// Ok(true) if the default was restored.
pub fn accepted_on_wildcard(
    stream: &TcpStream,
    local: SocketAddr,
    peer: SocketAddr,
) -> io::Result<bool> {
    let Some(default) = model_based_default() else {
        return Ok(false);
    };
    if same_host(local, peer) {
        return Ok(false);
    }
    SockRef::from(&sys::borrow_socket(stream)).set_tcp_congestion(default)?;
    Ok(true)
}

/// The system's default congestion control if it is model-based (read once, from a fresh
/// socket); `None` if it is loss-based, when lynxio changes nothing.
fn model_based_default() -> Option<&'static [u8]> {
    static DEFAULT: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            let socket = Socket::new(Domain::IPV4, Type::STREAM, None).ok()?;
            let name = socket.tcp_congestion().ok()?;
            let name = name.split(|&b| b == 0).next().unwrap_or_default();
            (!name.is_empty() && !is_loss_based(name)).then(|| name.to_vec())
        })
        .as_deref()
}

/// [`SAME_HOST_CONGESTION`] on `socket` unless what it has is loss-based already.
fn set_if_model_based(socket: &Socket) -> io::Result<bool> {
    let current = socket.tcp_congestion()?;
    if is_loss_based(&current) {
        return Ok(false);
    }
    socket.set_tcp_congestion(SAME_HOST_CONGESTION.as_bytes())?;
    Ok(true)
}

/// Whether a `TCP_CONGESTION` value (NUL-padded) names a loss-based algorithm.
fn is_loss_based(name: &[u8]) -> bool {
    let name = name.split(|&b| b == 0).next().unwrap_or_default();
    LOSS_BASED.iter().any(|cc| cc.as_bytes() == name)
}

/// [`tune`], logging a failure at debug level: a socket option is never worth failing a
/// connection for. Called on both sockets of a CONNECT tunnel and on the receiving socket of a
/// spliced body (one `getsockopt` once it is tuned): spliced bytes gain 2–3× there. Not on
/// every HTTP forwarding socket: with bodies copied through 64 KiB buffers Reno measured no
/// better than BBR (once ~20 % slower).
pub fn tune_best_effort(stream: &TcpStream, side: &'static str) {
    if let Err(e) = tune(stream) {
        tracing::debug!(side, error = %e, "setting TCP options failed");
    }
}

/// Whether a connection between `local` and `peer` stays on this host.
fn same_host(local: SocketAddr, peer: SocketAddr) -> bool {
    let (local, peer): (IpAddr, IpAddr) = (local.ip().to_canonical(), peer.ip().to_canonical());
    peer.is_loopback() || peer == local
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{dial::dial, listener::bind_all};
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn same_host_is_loopback_or_own_address() {
        assert!(same_host(addr("127.0.0.1:1"), addr("127.0.0.1:2")));
        assert!(same_host(addr("127.0.0.1:1"), addr("127.1.2.3:2")));
        assert!(same_host(addr("[::1]:1"), addr("[::1]:2")));
        assert!(same_host(
            addr("[::ffff:127.0.0.1]:1"),
            addr("[::ffff:127.0.0.1]:2")
        ));
        assert!(same_host(addr("10.0.0.5:1"), addr("10.0.0.5:2")));
        assert!(!same_host(addr("10.0.0.5:1"), addr("10.0.0.6:2")));
        assert!(!same_host(addr("[2001:db8::1]:1"), addr("[2001:db8::2]:2")));
    }

    /// On loopback the socket ends up on a loss-based algorithm, whatever the system default.
    #[test]
    fn loopback_ends_up_loss_based() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        runtime().block_on(async move {
            let stream = TcpStream::from_std(accepted).unwrap();
            let before = congestion(&sys::borrow_socket(&stream));
            let changed = tune(&stream).unwrap();
            let after = congestion(&sys::borrow_socket(&stream));
            let name = |v: &[u8]| {
                String::from_utf8_lossy(v.split(|&b| b == 0).next().unwrap()).into_owned()
            };
            assert!(
                LOSS_BASED.contains(&name(&after).as_str()),
                "{}",
                name(&after)
            );
            assert_eq!(changed, name(&before) != name(&after));
            // A second call finds nothing to do.
            assert!(!tune(&stream).unwrap());
        });
        drop(peer);
    }

    fn congestion(fd: &impl std::os::fd::AsFd) -> Vec<u8> {
        SockRef::from(fd).tcp_congestion().unwrap()
    }

    /// The one listening socket `bind_all` makes for `addr` with one worker, and its address.
    fn listener_on(addr: SocketAddr) -> (std::net::TcpListener, SocketAddr) {
        let (listeners, bound) = bind_all(&[addr], 1).unwrap();
        let listener = listeners.into_iter().flatten().next().unwrap();
        (listener, bound[0])
    }

    fn runtime() -> monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>> {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap()
    }

    /// Sockets accepted by a loopback listener, and sockets dialed to a loopback address, are
    /// loss-based from their first byte: `tune` finds nothing left to do on either.
    #[test]
    fn loopback_listener_and_dial_start_loss_based() {
        let (listener, bound) = listener_on(addr("127.0.0.1:0"));
        assert!(is_loss_based(&congestion(&listener)));
        runtime().block_on(async move {
            let dialed = dial(&[bound], Duration::from_secs(5))
                .await
                .unwrap_or_else(|_| panic!("dial failed"));
            let (accepted, _) = listener.accept().unwrap();
            let accepted = TcpStream::from_std(accepted).unwrap();
            for stream in [&dialed, &accepted] {
                assert!(is_loss_based(&congestion(&sys::borrow_socket(stream))));
                assert!(!tune(stream).unwrap());
            }
        });
    }

    /// A wildcard listener starts its clients on a loss-based algorithm too; one from this host
    /// keeps it, one from another host gets the system default back.
    #[test]
    fn wildcard_listener_restores_the_default_for_other_hosts() {
        let (listener, bound) = listener_on(addr("0.0.0.0:0"));
        assert!(is_loss_based(&congestion(&listener)));
        let peer = std::net::TcpStream::connect(("127.0.0.1", bound.port())).unwrap();
        let (accepted, client) = listener.accept().unwrap();
        runtime().block_on(async move {
            let stream = TcpStream::from_std(accepted).unwrap();
            let reached = stream.local_addr().unwrap();
            assert!(!accepted_on_wildcard(&stream, reached, client).unwrap());
            assert!(is_loss_based(&congestion(&sys::borrow_socket(&stream))));
            // The same socket as if its client were elsewhere.
            let restored =
                accepted_on_wildcard(&stream, addr("192.0.2.1:80"), addr("192.0.2.2:5000"))
                    .unwrap();
            let now = congestion(&sys::borrow_socket(&stream));
            match model_based_default() {
                Some(default) => {
                    assert!(restored);
                    assert_eq!(now.split(|&b| b == 0).next().unwrap(), default);
                }
                None => assert!(!restored && is_loss_based(&now)),
            }
        });
        drop(peer);
    }

    /// A socket for another host keeps the system's choice.
    #[test]
    fn other_hosts_keep_the_default() {
        let socket = Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let before = congestion(&socket);
        assert!(!same_host_from_birth(&socket, addr("192.0.2.1:80")).unwrap());
        assert_eq!(congestion(&socket), before);
        let loopback = same_host_from_birth(&socket, addr("127.0.0.1:80")).unwrap();
        assert!(is_loss_based(&congestion(&socket)));
        assert_eq!(loopback, !is_loss_based(&before));
    }
}
