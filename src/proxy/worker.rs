//! One worker's life: its shared-nothing state ([`Worker`]: DNS cache, upstream pool, counters),
//! the accept loops over its own SO_REUSEPORT listeners, the pool sweeper, and graceful
//! shutdown. When the main thread closes the worker's stop socket, the worker stops accepting,
//! waits (up to the drain timeout) for requests in flight to finish, and returns; keep-alive
//! connections sitting idle between requests are simply closed.

use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::mpsc::Sender;
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
    let worker = Rc::new(Worker::new(index, cfg, mitm, &rules, metrics, tap, &log));
    let _ = events.send(Event::Ready { index, driver });
    drop(events);

    let sweeper = monoio::spawn(sweep_pool(worker.clone()));
    let flusher = monoio::spawn(flush_access_log(worker.clone()));
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
    worker.access.flush();
    drop(sweeper);
    drop(flusher);
}

/// Hands the worker's buffered access lines to the log writer every so often, so lines show
/// up promptly when traffic is light.
async fn flush_access_log(worker: Rc<Worker>) {
    loop {
        monoio::time::sleep(ACCESS_FLUSH_EVERY).await;
        worker.access.flush();
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

async fn accept_loop(worker: Rc<Worker>, listener: TcpListener) {
    // Reported with each flow; an unspecified bind address is reported as bound.
    let local = listener
        .local_addr()
        .unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
    loop {
        match listener.accept().await {
            Ok((stream, client)) => {
                let conn = worker.next_id();
                let span = tracing::debug_span!("conn", w = worker.index, conn, peer = %client);
                let peer = Peer {
                    client,
                    listener: local,
                };
                monoio::spawn(client::serve_tcp(worker.clone(), stream, peer).instrument(span));
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
