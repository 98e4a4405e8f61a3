//! One worker's life: its shared-nothing state ([`Worker`]: DNS cache, upstream pool, counters),
//! the accept loops over its own SO_REUSEPORT listeners, the pool sweeper, and graceful
//! shutdown. When the main thread closes the worker's stop socket, the worker stops accepting,
//! waits (up to the drain timeout) for requests in flight to finish, and returns; keep-alive
//! connections sitting idle between requests are simply closed.
//!
//! Each worker serves at most `max_connections` client connections at once ([`ConnLimit`]): at
//! the cap its accept loops stop calling `accept` — new connections wait in the kernel's listen
//! backlog, never accepted-and-closed — until a client leaves. Reaching the cap is logged and
//! counted once per episode; the episode ends when the open connections fall to half the cap.
//! With several listeners, accepts already pending when the cap is reached may each still
//! complete, so the cap can be passed by at most one connection per extra listener.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use monoio::io::AsyncReadRent;
use monoio::net::{TcpListener, UnixStream};
use tracing::Instrument;

use crate::config::Config;
use crate::mitm::Interceptor;
use crate::net::{ActiveDriver, WorkerSeed};
use crate::observe::hub::Hub;
use crate::observe::metrics::WorkerMetrics;

use super::access::{ACCESS_FLUSH_EVERY, LogOutput};
use super::client;
use super::ctx::{Peer, Worker};
use super::live::LiveRules;
use super::server::Event;

/// Back-off after an accept error such as EMFILE, so a full fd table is not a busy loop.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);
/// Connections taken from the accept queue per completed accept: the one the driver completed,
/// then up to this many minus one already queued (non-blocking), before other tasks run again.
const ACCEPT_BATCH: usize = 256;
/// How often the drain loop checks for in-flight requests.
const DRAIN_POLL: Duration = Duration::from_millis(10);

/// What a worker is started with besides its listeners.
pub struct WorkerInit {
    pub cfg: Arc<Config>,
    pub mitm: Arc<Interceptor>,
    pub rules: Arc<LiveRules>,
    pub metrics: Arc<WorkerMetrics>,
    pub hub: Option<Arc<Hub>>,
    pub log: LogOutput,
    pub events: Sender<Event>,
    /// Client connections this worker serves at once (resolved at start).
    pub max_connections: usize,
}

/// The worker's whole life on its runtime.
pub async fn run(seed: WorkerSeed, driver: ActiveDriver, init: WorkerInit) {
    let index = seed.index;
    let WorkerInit {
        cfg,
        mitm,
        rules,
        metrics,
        hub,
        log,
        events,
        max_connections,
    } = init;
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
    let tap = hub.as_ref().map(|h| h.tap(index));
    let worker = Rc::new(Worker::new(
        index, driver, cfg, mitm, &rules, metrics, tap, &log,
    ));
    let _ = events.send(Event::Ready { index, driver });
    drop(events);

    let limit = Rc::new(ConnLimit::new(max_connections, worker.clone()));
    let sweeper = monoio::spawn(sweep_pool(worker.clone()));
    let flusher = monoio::spawn(flush_access_log(worker.clone()));
    // The accept loops are not spawned: when the stop socket fires, `select!` drops them and
    // with them the listeners, so the kernel stops handing this worker connections.
    let mut loops: Vec<_> = listeners
        .into_iter()
        .map(|l| Box::pin(accept_loop(worker.clone(), limit.clone(), l)))
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
    worker.access.flush();
    drop(sweeper);
    drop(flusher);
}

/// Hands the worker's buffered access lines to the log writer every so often, so lines show
/// up promptly when traffic is light, and lets the allocator give back pages freed meanwhile.
async fn flush_access_log(worker: Rc<Worker>) {
    loop {
        monoio::time::sleep(ACCESS_FLUSH_EVERY).await;
        worker.access.flush();
        crate::net::runtime::release_freed_memory();
    }
}

async fn drain(worker: &Worker) {
    let deadline = Instant::now() + worker.cfg.timeouts.drain;
    while worker.in_flight() > 0 {
        if Instant::now() >= deadline {
            tracing::warn!(
                worker = worker.index,
                in_flight = worker.in_flight(),
                "drain timeout: closing requests still in flight"
            );
            return;
        }
        monoio::time::sleep(DRAIN_POLL).await;
    }
}

async fn accept_loop(worker: Rc<Worker>, limit: Rc<ConnLimit>, listener: TcpListener) {
    // Reported with each flow (for a wildcard bind, the address the client connected to).
    let local = listener
        .local_addr()
        .unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
    loop {
        limit.below_cap().await;
        match listener.accept().await {
            Ok((stream, client)) => {
                serve(&worker, &limit, stream, client, local);
                // Whatever else is already queued, without a driver round trip each.
                for _ in 1..ACCEPT_BATCH {
                    if !limit.has_room() {
                        break;
                    }
                    match crate::net::listener::accept_ready(&listener) {
                        Ok(Some((stream, client))) => serve(&worker, &limit, stream, client, local),
                        Ok(None) => break,
                        Err(e) => {
                            tracing::debug!(error = %e, "non-blocking accept failed");
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                monoio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
            }
        }
    }
}

/// Spawn the task serving one accepted client connection, counted under the cap.
fn serve(
    worker: &Rc<Worker>,
    limit: &Rc<ConnLimit>,
    stream: monoio::net::TcpStream,
    client: std::net::SocketAddr,
    local: std::net::SocketAddr,
) {
    let slot = ConnLimit::take(limit);
    let conn = worker.next_id();
    let span = tracing::debug_span!("conn", w = worker.index, conn, peer = %client);
    // Bound to a wildcard address: the address this client reached (the PAC file names it), at
    // one getsockname per connection.
    let listener = if local.ip().is_unspecified() {
        let reached = stream.local_addr().unwrap_or(local);
        // The listener is on Reno for same-host clients; others get the default back.
        if let Err(e) = crate::net::tcp::accepted_on_wildcard(&stream, reached, client) {
            tracing::debug!(error = %e, "restoring the congestion control failed");
        }
        reached
    } else {
        local
    };
    let peer = Peer { client, listener };
    let worker = worker.clone();
    // The connection's future is made inside the task's: made outside and moved in, it would
    // take its space twice in the task for the connection's whole life.
    monoio::spawn(
        async move {
            client::serve_tcp(worker, stream, peer).await;
            drop(slot);
        }
        .instrument(span),
    );
}

/// The worker's count of open client connections against its cap, and the accept loops
/// waiting for room.
struct ConnLimit {
    max: usize,
    open: Cell<usize>,
    /// Accept loops parked at the cap, woken when a connection closes.
    waiting: RefCell<Vec<Waker>>,
    /// The cap was reached and the episode has not ended yet (see the module docs).
    reached: Cell<bool>,
    worker: Rc<Worker>,
}

/// One accepted client connection's place under the cap; dropping it frees the place.
struct Slot(Rc<ConnLimit>);

impl ConnLimit {
    fn new(max: usize, worker: Rc<Worker>) -> ConnLimit {
        ConnLimit {
            max: max.max(1),
            open: Cell::new(0),
            waiting: RefCell::new(Vec::new()),
            reached: Cell::new(false),
            worker,
        }
    }

    /// Count an accepted connection until the returned slot drops.
    fn take(this: &Rc<ConnLimit>) -> Slot {
        this.open.set(this.open.get() + 1);
        Slot(Rc::clone(this))
    }

    /// Whether another connection may be accepted now.
    fn has_room(&self) -> bool {
        self.open.get() < self.max
    }

    /// Wait until another connection may be accepted (at once when under the cap).
    async fn below_cap(&self) {
        if self.open.get() < self.max {
            return;
        }
        if !self.reached.replace(true) {
            self.worker.metrics.connection_limit_reached.inc();
            tracing::warn!(
                worker = self.worker.index,
                max_connections = self.max,
                "connection limit {} reached; not accepting until a client leaves",
                self.max
            );
        }
        std::future::poll_fn(|cx| {
            if self.open.get() < self.max {
                Poll::Ready(())
            } else {
                let mut waiting = self.waiting.borrow_mut();
                if !waiting.iter().any(|w| w.will_wake(cx.waker())) {
                    waiting.push(cx.waker().clone());
                }
                Poll::Pending
            }
        })
        .await;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let limit = &self.0;
        let open = limit.open.get().saturating_sub(1);
        limit.open.set(open);
        if open <= limit.max / 2 && limit.reached.replace(false) {
            tracing::info!(
                worker = limit.worker.index,
                open,
                "connection limit episode over: accepting freely again"
            );
        }
        if open < limit.max {
            let waiting = std::mem::take(&mut *limit.waiting.borrow_mut());
            waiting.into_iter().for_each(Waker::wake);
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
