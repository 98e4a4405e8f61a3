//! The bottom layer: everything that touches the OS. Worker threads and their monoio runtimes
//! (driver choice with io_uring → epoll fallback, core pinning), SO_REUSEPORT listeners, name
//! resolution off the worker thread with a per-worker cache, dialing with a deadline across every
//! resolved address, the per-worker idle-connection pool with its per-origin cap on open
//! connections (`gate`), and the read buffer every connection uses. Nothing here knows HTTP;
//! the orchestration layer (`proxy`) composes these pieces.

pub mod buf;
pub mod dial;
pub mod dns;
pub mod gate;
pub mod idle;
pub mod listener;
pub mod pool;
pub mod runtime;
pub mod sys;
pub mod tcp;
#[cfg(test)]
pub(crate) mod testutil;

pub use buf::ReadBuf;
pub use dial::{DialError, dial};
pub use dns::Resolver;
pub use gate::{Gate, Grant, Permit};
pub use pool::{Pool, PoolKey, Pooled};
pub use runtime::{ActiveDriver, RuntimeOptions, WorkerSeed, spawn_worker};
