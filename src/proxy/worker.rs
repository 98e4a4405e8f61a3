//! One worker's life: its shared-nothing state ([`Worker`]: DNS cache, upstream pool, counters),
//! the accept loops over its own SO_REUSEPORT listeners, the pool sweeper, and graceful
//! shutdown. When the main thread closes the worker's stop socket, the worker stops accepting,
//! waits (up to the drain timeout) for requests in flight to finish, and returns; keep-alive
//! connections sitting idle between requests are simply closed.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use monoio::io::{AsyncReadRent, Splitable};
use monoio::net::{TcpListener, TcpStream, UnixStream};
use tracing::Instrument;

use crate::config::Config;
use crate::mitm::Interceptor;
use crate::mitm::leaf::LeafCache;
use crate::net::{ActiveDriver, Pool, ReadBuf, Resolver, WorkerSeed};
use crate::tunnel::{TunnelConfig, TunnelPools};

use super::client;
use super::server::Event;
use super::stream::{UpRead, UpWrite};

/// Read buffer each upstream connection starts with.
pub const UPSTREAM_BUF_SIZE: usize = 16 * 1024;
/// Back-off after an accept error such as EMFILE, so a full fd table is not a busy loop.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);
/// How often the drain loop checks for in-flight requests.
const DRAIN_POLL: Duration = Duration::from_millis(10);

/// A connection to an origin, split so a request body and the response can flow at once.
pub struct Upstream {
    pub r: UpRead,
    pub w: UpWrite,
    pub buf: ReadBuf,
    pub fd: RawFd,
    /// Taken from the pool rather than freshly dialed.
    pub reused: bool,
}

impl Upstream {
    pub fn new(stream: TcpStream) -> Self {
        let fd = stream.as_raw_fd();
        let (r, w) = stream.into_split();
        Upstream::from_parts(UpRead::Tcp(r), UpWrite::Tcp(w), fd)
    }

    /// An origin connection from already-split halves (TLS) and its socket's fd.
    pub fn from_parts(r: UpRead, w: UpWrite, fd: RawFd) -> Self {
        Upstream {
            r,
            w,
            buf: ReadBuf::with_capacity(UPSTREAM_BUF_SIZE),
            fd,
            reused: false,
        }
    }
}

/// Per-worker state. Lives on one thread; nothing in it is shared or locked.
pub struct Worker {
    pub index: usize,
    pub cfg: Arc<Config>,
    pub dns: Resolver,
    pub pool: RefCell<Pool<Upstream>>,
    /// How CONNECT tunnels relay, and the worker's pipes and buffers they borrow while bytes flow.
    pub tunnel_cfg: TunnelConfig,
    pub tunnel_pools: TunnelPools,
    /// Interception (CA, origin TLS config) when a rule can intercept; shared read-only.
    pub mitm: Option<Arc<Interceptor>>,
    /// This worker's minted leaf certificates.
    pub leaves: RefCell<LeafCache>,
    /// Set when shutdown starts: finish the current request, then close.
    pub shutting_down: Cell<bool>,
    /// Requests between their first byte and their last response byte.
    in_flight: Cell<usize>,
    next_conn_id: Cell<u64>,
}

/// Marks a request in flight for the drain logic while it lives.
pub struct InFlight<'a>(&'a Worker);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.set(self.0.in_flight.get() - 1);
    }
}

impl Worker {
    pub fn new(index: usize, cfg: Arc<Config>, mitm: Option<Arc<Interceptor>>) -> Self {
        let tunnel_cfg = TunnelConfig {
            idle_timeout: cfg.timeouts.tunnel_idle,
            pipe_size: cfg.pipe_size,
            splice: cfg.splice,
        };
        Worker {
            index,
            dns: Resolver::new(&cfg.resolve, cfg.dns_ttl),
            pool: RefCell::new(Pool::new(cfg.pool_max_per_host, cfg.timeouts.upstream_idle)),
            tunnel_pools: TunnelPools::new(&tunnel_cfg),
            mitm,
            leaves: RefCell::new(LeafCache::new()),
            tunnel_cfg,
            cfg,
            shutting_down: Cell::new(false),
            in_flight: Cell::new(0),
            next_conn_id: Cell::new(0),
        }
    }

    /// A worker-unique id (connections, intercepted sessions).
    pub fn next_id(&self) -> u64 {
        let id = self.next_conn_id.get();
        self.next_conn_id.set(id + 1);
        id
    }

    /// Count a request as in flight until the guard drops.
    pub fn begin_request(&self) -> InFlight<'_> {
        self.in_flight.set(self.in_flight.get() + 1);
        InFlight(self)
    }
}

/// The worker's whole life on its runtime.
pub async fn run(
    seed: WorkerSeed,
    driver: ActiveDriver,
    cfg: Arc<Config>,
    mitm: Option<Arc<Interceptor>>,
    events: Sender<Event>,
) {
    let index = seed.index;
    let setup = || -> std::io::Result<(Vec<TcpListener>, UnixStream)> {
        let listeners = seed
            .listeners
            .into_iter()
            .map(TcpListener::from_std)
            .collect::<std::io::Result<Vec<_>>>()?;
        seed.stop.set_nonblocking(true)?;
        Ok((listeners, UnixStream::from_std(seed.stop)?))
    };
    let (listeners, mut stop) = match setup() {
        Ok(v) => v,
        Err(e) => {
            let _ = events.send(Event::Failed {
                index,
                error: e.to_string(),
            });
            return;
        }
    };
    let worker = Rc::new(Worker::new(index, cfg, mitm));
    let _ = events.send(Event::Ready { index, driver });
    drop(events);

    let sweeper = monoio::spawn(sweep_pool(worker.clone()));
    // The accept loops are not spawned: when the stop socket fires, `select!` drops them and
    // with them the listeners, so the kernel stops handing this worker connections.
    let mut loops: Vec<_> = listeners
        .into_iter()
        .map(|l| Box::pin(accept_loop(worker.clone(), l)))
        .collect();
    let accepting = std::future::poll_fn(move |cx| {
        loops.retain_mut(|l| l.as_mut().poll(cx).is_pending());
        if loops.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    });
    monoio::select! {
        _ = stop.read(vec![0u8; 1]) => {}
        _ = accepting => {}
    }
    worker.shutting_down.set(true);
    drain(&worker).await;
    worker.pool.borrow_mut().clear();
    drop(sweeper);
}

async fn drain(worker: &Worker) {
    let deadline = Instant::now() + worker.cfg.timeouts.drain;
    while worker.in_flight.get() > 0 {
        if Instant::now() >= deadline {
            tracing::warn!(
                worker = worker.index,
                in_flight = worker.in_flight.get(),
                "drain timeout: closing requests still in flight"
            );
            return;
        }
        monoio::time::sleep(DRAIN_POLL).await;
    }
}

async fn accept_loop(worker: Rc<Worker>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let id = worker.next_id();
                let span = tracing::info_span!("conn", w = worker.index, id, %peer);
                monoio::spawn(client::serve_tcp(worker.clone(), stream).instrument(span));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                monoio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
            }
        }
    }
}

async fn sweep_pool(worker: Rc<Worker>) {
    let every = (worker.cfg.timeouts.upstream_idle / 2).max(Duration::from_millis(500));
    while !worker.shutting_down.get() {
        monoio::time::sleep(every).await;
        worker.pool.borrow_mut().purge_expired(Instant::now());
    }
}
