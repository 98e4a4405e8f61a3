//! Per-worker pools of splice pipes and copy buffers. A tunnel direction leases a pipe (or a
//! buffer) only while bytes are in flight and gives it back as soon as it is empty, so an idle
//! tunnel holds neither; thousands of idle tunnels cost no pipe fds and no user-space memory.
//! Leases are guards: dropping one (also when the relay future is dropped mid-flight) returns
//! the item, except a pipe that still holds bytes, which is closed because its contents belong
//! to a stream that no longer exists. At most [`MAX_IDLE_PIPES`] pipes and
//! [`MAX_IDLE_BUFFERS`] buffers stay idle; the rest are closed or freed. The pools belong to one
//! worker thread and use `Cell`/`RefCell`, no locks.

use std::cell::{Cell, RefCell};
use std::io;

use super::TunnelConfig;
use super::sys::Pipe;

/// Idle pipes kept per worker. Each is two fds, and its full size is charged to the user's pipe
/// quota (`fs.pipe-user-pages-soft`, 64 MiB by default, enforced on processes without
/// `CAP_SYS_RESOURCE`) whether or not it holds bytes: 8 idle 1 MiB pipes per worker keep a few
/// workers well inside it.
pub const MAX_IDLE_PIPES: usize = 8;
/// Idle copy buffers kept per worker (`MAX_IDLE_BUFFERS * COPY_BUF_SIZE` bytes at most).
pub const MAX_IDLE_BUFFERS: usize = 16;
/// Size of one copy buffer.
pub const COPY_BUF_SIZE: usize = 64 * 1024;

/// One worker's pipes and copy buffers. Create once per worker with [`TunnelPools::new`] and
/// pass it by reference to every [`relay`](super::relay) on that worker.
#[derive(Debug)]
pub struct TunnelPools {
    pipe_size: usize,
    pipes: RefCell<Vec<Pipe>>,
    buffers: RefCell<Vec<Box<[u8]>>>,
    pipes_in_use: Cell<usize>,
    buffers_in_use: Cell<usize>,
    /// Test hook: make pipe creation fail as if the fd table were full.
    #[cfg(test)]
    pub(super) fail_pipes: Cell<bool>,
}

impl TunnelPools {
    pub fn new(cfg: &TunnelConfig) -> Self {
        TunnelPools {
            pipe_size: cfg.pipe_size,
            pipes: RefCell::new(Vec::new()),
            buffers: RefCell::new(Vec::new()),
            pipes_in_use: Cell::new(0),
            buffers_in_use: Cell::new(0),
            #[cfg(test)]
            fail_pipes: Cell::new(false),
        }
    }

    /// Capacity of the pipes this pool leases (bytes).
    pub fn pipe_size(&self) -> usize {
        self.pipe_size
    }

    /// Pipes waiting in the pool.
    pub fn idle_pipes(&self) -> usize {
        self.pipes.borrow().len()
    }

    /// Copy buffers waiting in the pool.
    pub fn idle_buffers(&self) -> usize {
        self.buffers.borrow().len()
    }

    /// Pipes leased by tunnel directions right now (bytes in flight through them).
    pub fn in_use_pipes(&self) -> usize {
        self.pipes_in_use.get()
    }

    /// Copy buffers leased by tunnel directions right now.
    pub fn in_use_buffers(&self) -> usize {
        self.buffers_in_use.get()
    }

    /// An empty pipe: a pooled one, or a new one. Fails when the process is out of fds.
    pub(super) fn take_pipe(&self) -> io::Result<PipeLease<'_>> {
        let pooled = self.pipes.borrow_mut().pop();
        let pipe = match pooled {
            Some(p) => p,
            None => self.new_pipe()?,
        };
        self.pipes_in_use.set(self.pipes_in_use.get() + 1);
        Ok(PipeLease {
            pools: self,
            pipe: Some(pipe),
            len: 0,
        })
    }

    fn new_pipe(&self) -> io::Result<Pipe> {
        #[cfg(test)]
        if self.fail_pipes.get() {
            return Err(io::Error::from_raw_os_error(libc::EMFILE));
        }
        Pipe::new(self.pipe_size)
    }

    /// A copy buffer of [`COPY_BUF_SIZE`] bytes.
    pub(super) fn take_buffer(&self) -> BufLease<'_> {
        let pooled = self.buffers.borrow_mut().pop();
        let buf = pooled.unwrap_or_else(|| vec![0u8; COPY_BUF_SIZE].into_boxed_slice());
        self.buffers_in_use.set(self.buffers_in_use.get() + 1);
        BufLease {
            pools: self,
            buf: Some(buf),
        }
    }
}

/// A leased pipe. `len` counts the bytes in it (the lease owns both ends, so it is exact).
#[derive(Debug)]
pub(super) struct PipeLease<'a> {
    pools: &'a TunnelPools,
    pipe: Option<Pipe>,
    pub len: usize,
}

impl PipeLease<'_> {
    pub fn pipe(&self) -> &Pipe {
        // The option is only emptied in `drop`.
        self.pipe.as_ref().expect("pipe lease used after drop")
    }
}

impl Drop for PipeLease<'_> {
    fn drop(&mut self) {
        let pools = self.pools;
        pools.pipes_in_use.set(pools.pipes_in_use.get() - 1);
        let Some(pipe) = self.pipe.take() else { return };
        let mut idle = pools.pipes.borrow_mut();
        // A pipe with bytes left in it goes with its stream; a surplus pipe is closed.
        if self.len == 0 && idle.len() < MAX_IDLE_PIPES {
            idle.push(pipe);
        }
    }
}

/// A leased copy buffer.
#[derive(Debug)]
pub(super) struct BufLease<'a> {
    pools: &'a TunnelPools,
    buf: Option<Box<[u8]>>,
}

impl BufLease<'_> {
    pub fn buf(&mut self) -> &mut [u8] {
        // The option is only emptied in `drop`.
        self.buf.as_mut().expect("buffer lease used after drop")
    }
}

impl Drop for BufLease<'_> {
    fn drop(&mut self) {
        let pools = self.pools;
        pools.buffers_in_use.set(pools.buffers_in_use.get() - 1);
        let Some(buf) = self.buf.take() else { return };
        let mut idle = pools.buffers.borrow_mut();
        if idle.len() < MAX_IDLE_BUFFERS {
            idle.push(buf);
        }
    }
}
