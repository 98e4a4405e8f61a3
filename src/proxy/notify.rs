//! systemd readiness notification (`sd_notify`), for `Type=notify` units: one datagram of
//! `KEY=VALUE` lines to the socket named by `$NOTIFY_SOCKET` (a path, or an abstract socket
//! written `@name`). lynxio sends `READY=1` once every worker accepts, `RELOADING=1` (with
//! `MONOTONIC_USEC`, as `Type=notify-reload` requires) then `READY=1` around a SIGHUP reload,
//! and `STOPPING=1` when it starts draining. Without `$NOTIFY_SOCKET` nothing is sent; a send
//! that fails is logged, never fatal — readiness is a courtesy to the service manager.

use std::io;
use std::os::unix::net::UnixDatagram;

/// The environment variable systemd sets for `Type=notify` services.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Send `state` to `$NOTIFY_SOCKET` if set; failures are logged at debug/warn.
pub fn notify(state: &str) {
    let Some(socket) = std::env::var_os(NOTIFY_SOCKET) else {
        return;
    };
    let Some(socket) = socket.to_str() else {
        tracing::warn!("NOTIFY_SOCKET is not UTF-8; readiness not reported");
        return;
    };
    match send_to(socket, state) {
        Ok(()) => tracing::debug!(state, "sd_notify sent"),
        Err(e) => tracing::warn!(error = %e, socket, "sd_notify failed"),
    }
}

/// Send one notification datagram to `socket` (`/path` or `@abstract`).
pub fn send_to(socket: &str, state: &str) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    if let Some(name) = socket.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else if socket.starts_with('/') {
        sock.send_to(state.as_bytes(), socket)?;
    } else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{NOTIFY_SOCKET}={socket:?} is neither a path nor @abstract"),
        ));
    }
    Ok(())
}

/// `RELOADING=1` with the monotonic clock in microseconds, as systemd wants it.
pub fn reloading_state() -> String {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let usec = u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000
        + u64::try_from(ts.tv_nsec).unwrap_or(0) / 1_000;
    format!("RELOADING=1\nMONOTONIC_USEC={usec}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_and_abstract_sockets_receive() {
        let path = std::env::temp_dir().join(format!("lynxio-notify-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let rx = UnixDatagram::bind(&path).unwrap();
        send_to(path.to_str().unwrap(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        let _ = std::fs::remove_file(&path);

        use std::os::linux::net::SocketAddrExt;
        let name = format!("lynxio-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        send_to(&format!("@{name}"), "STOPPING=1").unwrap();
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");

        assert!(send_to("relative", "READY=1").is_err());
        assert!(reloading_state().starts_with("RELOADING=1\nMONOTONIC_USEC="));
    }
}
