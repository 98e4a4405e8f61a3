//! The raw syscalls the tunnel makes, and the only `unsafe` in `tunnel`: a [`Pipe`] (two
//! `O_NONBLOCK | O_CLOEXEC` fds from `pipe2`, sized with `F_SETPIPE_SZ`, closed by `Drop`),
//! non-blocking `splice(2)` (`SPLICE_F_NONBLOCK | SPLICE_F_MOVE`), non-blocking `recv`/`send`
//! (`MSG_DONTWAIT`, `MSG_NOSIGNAL`), `shutdown(SHUT_WR)`, setting `O_NONBLOCK` on a socket,
//! duplicating a socket's fd for readiness waits, and borrowing a stream's fd for `socket2`'s
//! socket options.
//! Every call is a plain syscall on a file descriptor the caller keeps open for the duration of
//! the call; none of them blocks the worker thread (the pipe is non-blocking by construction,
//! and the relay sets `O_NONBLOCK` on its sockets because `SPLICE_F_NONBLOCK` alone does not
//! stop a splice from waiting on an empty socket). `EINTR` is returned as is; callers retry.

use std::io;
use std::os::fd::RawFd;

/// Size of a pipe whose `F_SETPIPE_SZ` failed and whose `F_GETPIPE_SZ` failed too: the
/// kernel's default (16 pages).
const DEFAULT_PIPE_CAPACITY: usize = 16 * 4096;

/// Flags for every splice: never wait on the pipe, and move pages instead of copying if the
/// kernel can.
const SPLICE_FLAGS: libc::c_uint = libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MOVE;

/// Turn a `-1`-on-error return value into a `Result`.
fn check(ret: isize) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// A kernel pipe owned by one worker, used as the in-kernel buffer of a splice.
#[derive(Debug)]
pub struct Pipe {
    read: RawFd,
    write: RawFd,
    capacity: usize,
}

impl Pipe {
    /// A non-blocking, close-on-exec pipe, resized to `size` bytes if `size > 0`. Resizing is
    /// best effort: an unprivileged process over `fs.pipe-user-pages-soft`, or asking for more
    /// than `fs.pipe-max-size`, gets `EPERM`, and the pipe keeps the size the kernel gave it.
    /// [`Pipe::capacity`] reports the size actually in force.
    pub fn new(size: usize) -> io::Result<Pipe> {
        let mut fds: [libc::c_int; 2] = [-1, -1];
        // SAFETY: `fds` is a valid, writable array of two c_ints, which is what pipe2 fills.
        let ret = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        check(ret as isize)?;
        // From here on `Drop` closes both fds, also on the early returns below.
        let mut pipe = Pipe {
            read: fds[0],
            write: fds[1],
            capacity: DEFAULT_PIPE_CAPACITY,
        };
        let set = if size > 0 {
            let want = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
            // SAFETY: `pipe.write` is an open pipe fd owned by `pipe`; F_SETPIPE_SZ takes an
            // int argument and touches no memory of ours.
            unsafe { libc::fcntl(pipe.write, libc::F_SETPIPE_SZ, want) }
        } else {
            -1
        };
        let got = if set > 0 {
            set
        } else {
            // SAFETY: as above; F_GETPIPE_SZ takes no argument.
            unsafe { libc::fcntl(pipe.write, libc::F_GETPIPE_SZ) }
        };
        if got > 0 {
            pipe.capacity = got as usize;
        }
        Ok(pipe)
    }

    /// Bytes the pipe can hold (the size in force, not the size asked for).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The end bytes are spliced out of.
    pub fn read_fd(&self) -> RawFd {
        self.read
    }

    /// The end bytes are spliced into.
    pub fn write_fd(&self) -> RawFd {
        self.write
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        // SAFETY: both fds were returned by pipe2 for this value only, are never handed out
        // as owned, and are closed exactly once, here. A close error leaves nothing to undo.
        unsafe {
            libc::close(self.read);
            libc::close(self.write);
        }
    }
}

/// Move up to `len` bytes from `fd_in` to `fd_out` (one of them a pipe) without waiting.
/// `Ok(0)` from a socket means end of stream; `WouldBlock` means the source is empty or the
/// destination is full.
pub fn splice(fd_in: RawFd, fd_out: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: both fds are open for the duration of the call (the caller holds the socket and
    // the pipe); null offsets mean "current position", which is what sockets and pipes need.
    let ret = unsafe {
        libc::splice(
            fd_in,
            std::ptr::null_mut(),
            fd_out,
            std::ptr::null_mut(),
            len,
            SPLICE_FLAGS,
        )
    };
    check(ret)
}

/// Read what the socket has into `buf` without waiting. `Ok(0)`: end of stream.
pub fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid and writable for `buf.len()` bytes for the whole call; `fd` is an
    // open socket held by the caller.
    let ret = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    check(ret)
}

/// Write as much of `buf` as the socket takes without waiting. A closed peer is `EPIPE`, never
/// SIGPIPE.
pub fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid and readable for `buf.len()` bytes for the whole call; `fd` is an
    // open socket held by the caller.
    let ret = unsafe {
        libc::send(
            fd,
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    check(ret)
}

/// Send FIN: no more bytes from us on this socket (reading it stays possible).
pub fn shutdown_write(fd: RawFd) -> io::Result<()> {
    // SAFETY: plain syscall on an open socket held by the caller; no memory is passed.
    let ret = unsafe { libc::shutdown(fd, libc::SHUT_WR) };
    check(ret as isize).map(|_| ())
}

/// A runtime handle on the socket `fd` for readiness waits, without taking `fd` over: a
/// close-on-exec duplicate (the same socket; closed when the handle drops) registered with the
/// worker's runtime on its own. The socket is made `O_NONBLOCK` (a flag of the socket, so `fd`
/// has it too), which the raw syscalls on it need.
pub fn watch(fd: RawFd) -> io::Result<monoio::net::TcpStream> {
    // SAFETY: F_DUPFD_CLOEXEC on an open fd held by the caller; no memory is passed.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    check(dup as isize)?;
    // SAFETY: `dup` is a fresh fd that nothing else owns; the std stream takes it over and
    // closes it on every path from here (also when registering it below fails).
    let std = unsafe { <std::net::TcpStream as std::os::fd::FromRawFd>::from_raw_fd(dup) };
    set_nonblocking(dup)?;
    monoio::net::TcpStream::from_std(std)
}

/// Set the socket's receive low-water mark (`SO_RCVLOWAT`): readiness and wake-ups wait until
/// at least `bytes` are queued (or the stream ends, or an error is pending).
pub fn set_rcvlowat(fd: RawFd, bytes: usize) -> io::Result<()> {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: setsockopt on an open socket held by the caller; `value` lives across the call
    // and the length passed is its size.
    let ret = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    check(ret as isize).map(|_| ())
}

/// The socket's receive low-water mark (for tests: a pump must leave it at one byte).
#[cfg(test)]
pub fn rcvlowat(fd: RawFd) -> io::Result<usize> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt on an open socket held by the caller, writing at most `len` bytes
    // into `value`, which lives across the call.
    let ret = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&raw mut value).cast(),
            &raw mut len,
        )
    };
    check(ret as isize).map(|_| value as usize)
}

/// Set `O_NONBLOCK` on `fd` (keeping its other status flags).
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL on an open fd held by the caller; no memory is passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    check(flags as isize)?;
    if flags & libc::O_NONBLOCK != 0 {
        return Ok(());
    }
    // SAFETY: F_SETFL with an int argument on the same open fd; no memory is passed.
    let ret = unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) };
    check(ret as isize).map(|_| ())
}
