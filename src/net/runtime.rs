//! Worker threads and their runtimes. Each worker is one OS thread, optionally pinned to a core,
//! running one monoio runtime with a timer and either the io_uring or the epoll driver. `auto`
//! tries io_uring and, if the ring cannot be built (old kernel, seccomp, memlock), logs once and
//! builds the epoll runtime instead — monoio's own FusionDriver does not fall back. Blocking work
//! (DNS) goes to one small thread pool shared by all workers.

use std::future::Future;
use std::io;
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use monoio::blocking::DefaultThreadPool;
use monoio::time::TimeDriver;
use monoio::{IoUringDriver, LegacyDriver, Runtime, RuntimeBuilder};

/// Which event driver each worker runtime uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriverKind {
    /// io_uring, falling back to epoll (with one log line) if the ring cannot be built.
    Auto,
    /// io_uring only; failing to build the ring is a startup error.
    Uring,
    /// epoll only.
    Epoll,
}

/// How to build each worker's runtime.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    pub driver: DriverKind,
    pub ring_entries: u32,
    pub sqpoll_idle_ms: Option<u32>,
}

/// The driver a worker actually runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActiveDriver {
    Uring,
    Epoll,
}

impl std::fmt::Display for ActiveDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ActiveDriver::Uring => "io_uring",
            ActiveDriver::Epoll => "epoll",
        })
    }
}

/// What a worker thread starts with.
#[derive(Debug)]
pub struct WorkerSeed {
    pub index: usize,
    pub cpu: Option<usize>,
    /// One listener per listen address (std sockets; converted inside the runtime).
    pub listeners: Vec<TcpListener>,
    /// Closed by the main thread to ask the worker to shut down.
    pub stop: UnixStream,
}

/// Logged once per process when `auto` falls back to epoll.
static FALLBACK_LOGGED: AtomicBool = AtomicBool::new(false);

fn uring_runtime(
    opts: &RuntimeOptions,
    pool: &DefaultThreadPool,
) -> io::Result<Runtime<TimeDriver<IoUringDriver>>> {
    if opts.sqpoll_idle_ms.is_some() {
        // The kernel rejects the task-run flags together with SQPOLL (no IPIs to avoid there).
        return build_uring(opts, pool, false);
    }
    match build_uring(opts, pool, true) {
        // Kernels before 5.19 do not know COOP_TASKRUN; run without it.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            tracing::debug!("io_uring COOP_TASKRUN unsupported; using a plain ring");
            build_uring(opts, pool, false)
        }
        other => other,
    }
}

/// `coop_taskrun`: completions are delivered the next time the worker enters the kernel instead
/// of by an inter-processor interrupt into the running worker. The worker enters the kernel on
/// every loop turn anyway, so nothing waits longer; measured on the 2-core bench machine it
/// takes 100-byte proxying from ~53k to ~93k requests/s (scripts/bench.sh, BENCHMARKS.md).
fn build_uring(
    opts: &RuntimeOptions,
    pool: &DefaultThreadPool,
    coop_taskrun: bool,
) -> io::Result<Runtime<TimeDriver<IoUringDriver>>> {
    let mut urb = io_uring::IoUring::builder();
    if let Some(idle) = opts.sqpoll_idle_ms {
        urb.setup_sqpoll(idle);
    }
    if coop_taskrun {
        urb.setup_coop_taskrun();
        urb.setup_taskrun_flag();
    }
    RuntimeBuilder::<IoUringDriver>::new()
        .with_entries(opts.ring_entries)
        .uring_builder(urb)
        .enable_timer()
        .attach_thread_pool(Box::new(pool.clone()))
        .build()
}

fn epoll_runtime(pool: &DefaultThreadPool) -> io::Result<Runtime<TimeDriver<LegacyDriver>>> {
    RuntimeBuilder::<LegacyDriver>::new()
        .enable_timer()
        .attach_thread_pool(Box::new(pool.clone()))
        .build()
}

/// Build the runtime `opts` asks for and run `body` on it to completion.
fn run_on_runtime<F, Fut>(
    opts: &RuntimeOptions,
    pool: &DefaultThreadPool,
    body: F,
) -> io::Result<()>
where
    F: FnOnce(ActiveDriver) -> Fut,
    Fut: Future<Output = ()>,
{
    match opts.driver {
        DriverKind::Epoll => {
            epoll_runtime(pool)?.block_on(body(ActiveDriver::Epoll));
        }
        DriverKind::Uring => {
            let mut rt = uring_runtime(opts, pool)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot build io_uring: {e}")))?;
            rt.block_on(body(ActiveDriver::Uring));
        }
        DriverKind::Auto => match uring_runtime(opts, pool) {
            Ok(mut rt) => rt.block_on(body(ActiveDriver::Uring)),
            Err(e) => {
                if !FALLBACK_LOGGED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "io_uring unavailable; falling back to epoll");
                }
                epoll_runtime(pool)?.block_on(body(ActiveDriver::Epoll));
            }
        },
    }
    Ok(())
}

/// Start one worker thread: pin it (if asked), build its runtime, run `body(seed, driver)`.
pub fn spawn_worker<F, Fut>(
    seed: WorkerSeed,
    opts: RuntimeOptions,
    pool: DefaultThreadPool,
    body: F,
) -> io::Result<JoinHandle<io::Result<()>>>
where
    F: FnOnce(WorkerSeed, ActiveDriver) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    std::thread::Builder::new()
        .name(format!("lynxio-w{}", seed.index))
        .spawn(move || {
            if let Some(cpu) = seed.cpu
                && !core_affinity::set_for_current(core_affinity::CoreId { id: cpu })
            {
                tracing::warn!(worker = seed.index, cpu, "could not pin worker to core");
            }
            run_on_runtime(&opts, &pool, move |driver| body(seed, driver))
        })
}

/// Let the allocator hand pages that became free back to the OS now. mimalloc returns a free
/// page only after a delay, and only from within a later allocator call; a worker whose
/// connections went idle makes none, so pages freed just before (a burst of connections'
/// buffers) would stay resident for as long as the quiet lasts. Cheap when there is nothing to
/// do; called from a worker's periodic tick. No effect on memory from another allocator.
pub fn release_freed_memory() {
    // SAFETY: `mi_collect` takes no pointers; it walks this thread's mimalloc heap and the
    // shared arenas under mimalloc's own synchronization.
    unsafe { libmimalloc_sys::mi_collect(false) }
}

/// The blocking pool shared by all workers (DNS lookups).
pub fn blocking_pool(threads: usize) -> DefaultThreadPool {
    DefaultThreadPool::new(threads.max(1))
}
