//! The few raw socket calls monoio does not wrap, and the one look through a monoio owned read
//! half at its stream. This is the only module of `net` with `unsafe`; each call is a plain
//! syscall on a file descriptor the caller owns and keeps open.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use monoio::net::TcpStream;
use monoio::net::tcp::TcpOwnedReadHalf;

/// State of an idle pooled connection, checked without blocking before it is reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleState {
    /// Nothing to read and not closed: safe to send a request on.
    Alive,
    /// The peer closed or reset it, or sent unsolicited bytes: discard it.
    Unusable,
}

/// Peek at an idle connection with a non-blocking `recv(MSG_PEEK)`.
pub fn idle_state(fd: RawFd) -> IdleState {
    let mut byte = 0u8;
    // SAFETY: `fd` is an open socket owned by the caller for the duration of the call; the
    // buffer is one valid, writable byte on our stack, and MSG_PEEK leaves the socket unchanged.
    let n = unsafe {
        libc::recv(
            fd,
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        let err = std::io::Error::last_os_error();
        if err.kind() == std::io::ErrorKind::WouldBlock {
            return IdleState::Alive;
        }
    }
    IdleState::Unusable
}

/// The stream's socket, borrowed for `socket2`'s option calls ([`socket2::SockRef`]).
pub fn borrow_socket(stream: &monoio::net::TcpStream) -> BorrowedFd<'_> {
    // SAFETY: `stream` owns its fd and closes it only on drop, so the fd stays open for as
    // long as the returned value borrows `stream`.
    unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) }
}

/// Wait until the socket behind a TCP read half is readable (data, end of stream or an error),
/// holding no read buffer: an io_uring `POLL_ADD`, or on epoll the cached readiness re-checked
/// with `poll(2)` (`relaxed = false`). The caller must not use the matching write half while
/// this future is alive (see the SAFETY note).
pub async fn read_half_readable(half: &TcpOwnedReadHalf) -> io::Result<()> {
    // SAFETY: monoio's owned halves share the stream as `Rc<UnsafeCell<TcpStream>>` and each
    // creates a `&mut TcpStream` only while one of its own I/O futures is being created. This
    // shared reference lives for this future; `half` is borrowed, so its owner creates no read
    // future meanwhile, and the connection loop that calls this (waiting for a client's next
    // request) has no write in flight and starts none until the wait ends — so no `&mut` to the
    // stream exists while this `&` does. `readable` itself only registers interest in the fd.
    let stream: &TcpStream = unsafe { &*half.0.get() };
    stream.readable(false).await
}

/// The listener's socket, borrowed for `socket2` calls (a non-blocking accept).
pub fn borrow_listener(listener: &monoio::net::TcpListener) -> BorrowedFd<'_> {
    // SAFETY: `listener` owns its fd and closes it only on drop, so the fd stays open for as
    // long as the returned value borrows `listener`.
    unsafe { BorrowedFd::borrow_raw(listener.as_raw_fd()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    #[test]
    fn detects_close_and_stray_bytes() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        assert_eq!(idle_state(client.as_raw_fd()), IdleState::Alive);
        server.write_all(b"x").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(idle_state(client.as_raw_fd()), IdleState::Unusable);

        let client2 = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server2, _) = listener.accept().unwrap();
        drop(server2);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(idle_state(client2.as_raw_fd()), IdleState::Unusable);
    }
}
