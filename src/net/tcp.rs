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

use std::io;
use std::net::{IpAddr, SocketAddr};

use monoio::net::TcpStream;
use socket2::SockRef;

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
    let current = sock.tcp_congestion()?;
    let name = current.split(|&b| b == 0).next().unwrap_or_default();
    if LOSS_BASED.iter().any(|cc| cc.as_bytes() == name) {
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
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .unwrap();
        rt.block_on(async move {
            let stream = TcpStream::from_std(accepted).unwrap();
            let before = SockRef::from(&sys::borrow_socket(&stream))
                .tcp_congestion()
                .unwrap();
            let changed = tune(&stream).unwrap();
            let after = SockRef::from(&sys::borrow_socket(&stream))
                .tcp_congestion()
                .unwrap();
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
}
