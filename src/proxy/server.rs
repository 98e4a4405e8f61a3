//! Process-level lifecycle: listeners, worker threads, the ready line, signals and draining.
//! Workers report `Ready`/`Failed` over a channel; a signal thread forwards SIGINT/SIGTERM over
//! the same channel. Shutdown closes each worker's stop socket and joins the workers, which
//! bound their own drain by the configured timeout; a second signal exits at once.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use std::sync::atomic::{AtomicBool, Ordering};

use super::live::{LiveRules, Reloaded};
use crate::admin::{self, Admin, AdminState};
use crate::config::{Config, DEFAULT_DNS_THREADS};
use crate::mitm::Interceptor;
use crate::net::listener::bind_all;
use crate::net::runtime::blocking_pool;
use crate::net::{ActiveDriver, RuntimeOptions, WorkerSeed, spawn_worker};
use crate::observe::hub::{Hub, HubOptions};
use crate::observe::metrics::Registry;

use super::access::LogOutput;
use super::worker::{self, WorkerInit};

/// How long workers may take to build their runtimes and start accepting.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Slack on top of the drain timeout before the main thread gives up on a worker.
const JOIN_SLACK: Duration = Duration::from_secs(2);
/// File descriptors kept out of the per-connection budget when `--max-connections` is derived
/// from the open-files limit: listeners, stop sockets, each runtime's io_uring/eventfd, idle
/// pooled pipes, the log, capture and mock files, admin connections, DNS threads.
const FD_RESERVE: u64 = 256;
/// File descriptors one client connection is budgeted: the client, its origin, and on average
/// part of a pipe pair leased while a tunnel splices (a pipe that cannot be made for want of
/// descriptors degrades that burst to copying, it does not fail the tunnel).
const FDS_PER_CONNECTION: u64 = 3;
/// The derived per-worker connection limit never goes below this.
const MIN_MAX_CONNECTIONS: usize = 64;

/// Why the proxy could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("worker {index} failed: {error}")]
    Worker { index: usize, error: String },
    #[error("workers did not start within {0:?}")]
    StartupTimeout(Duration),
    #[error("forced exit on second signal")]
    Forced,
    #[error("interception: {0}")]
    Ca(#[from] crate::mitm::ca::CaError),
    #[error("interception: {0}")]
    UpstreamTls(#[from] crate::mitm::upstream::UpstreamTlsError),
    #[error("interception: cannot make the TLS session ticket key: {0}")]
    Tickets(rustls::Error),
    #[error("capture: {0}")]
    Capture(std::io::Error),
    #[error("admin listener {addr}: {source}")]
    Admin {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// What the main thread hears about: workers starting or failing, and signals.
#[derive(Debug)]
pub enum Event {
    Ready { index: usize, driver: ActiveDriver },
    Failed { index: usize, error: String },
    Signal(i32),
}

/// Run the proxy until SIGINT/SIGTERM; returns after a graceful drain. Access lines go to
/// `log` (the same writer as the process's other log lines).
pub fn run(cfg: Config, log: LogOutput) -> Result<(), RunError> {
    let mitm = interceptor(&cfg)?;
    let rules = Arc::new(LiveRules::new(&cfg));
    let cfg = Arc::new(cfg);
    let (tx, rx) = mpsc::channel::<Event>();

    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    let sig_tx = tx.clone();
    std::thread::Builder::new()
        .name("lynxio-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if sig_tx.send(Event::Signal(sig)).is_err() {
                    break;
                }
            }
        })?;

    let max_connections = connection_limit(&cfg);
    let (per_worker, bound) = bind_all(&cfg.listen, cfg.workers)?;
    let registry = Registry::new(cfg.workers);
    // The hub runs when someone may read events: a capture file or live `/events` clients.
    let hub = if cfg.capture.is_some() || cfg.admin.is_some() {
        let opts = HubOptions {
            capture: cfg.capture.clone(),
            queue_capacity: cfg.capture_queue,
        };
        Some(Hub::start(opts, &registry.workers).map_err(RunError::Capture)?)
    } else {
        None
    };
    let healthy = Arc::new(AtomicBool::new(false));
    let admin = match (cfg.admin, &hub) {
        (Some(addr), Some(hub)) => Some(start_admin(addr, &cfg, &registry, hub, &healthy)?),
        _ => None,
    };
    let pool = blocking_pool(DEFAULT_DNS_THREADS);
    let opts = RuntimeOptions {
        driver: cfg.driver,
        ring_entries: cfg.ring_entries,
        sqpoll_idle_ms: cfg.sqpoll_idle_ms,
    };
    let mut stops = Vec::with_capacity(cfg.workers);
    let mut handles = Vec::with_capacity(cfg.workers);
    for (index, listeners) in per_worker.into_iter().enumerate() {
        let (ours, theirs) = UnixStream::pair()?;
        stops.push(ours);
        let cpu = (!cfg.cpus.is_empty()).then(|| cfg.cpus[index % cfg.cpus.len()]);
        let seed = WorkerSeed {
            index,
            cpu,
            listeners,
            stop: theirs,
        };
        let init = WorkerInit {
            cfg: cfg.clone(),
            mitm: mitm.clone(),
            rules: rules.clone(),
            metrics: registry.workers[index].clone(),
            hub: hub.clone(),
            log: log.clone(),
            events: tx.clone(),
            max_connections,
        };
        handles.push(spawn_worker(
            seed,
            opts.clone(),
            pool.clone(),
            move |seed, driver| worker::run(seed, driver, init),
        )?);
    }
    drop(tx);

    // Wait until every worker accepts.
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let mut drivers = Vec::with_capacity(cfg.workers);
    while drivers.len() < cfg.workers {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Event::Ready { driver, .. }) => drivers.push(driver),
            Ok(Event::Failed { index, error }) => {
                return Err(RunError::Worker { index, error });
            }
            Ok(Event::Signal(SIGHUP)) => reload(&rules),
            Ok(Event::Signal(_)) => return Ok(()),
            Err(_) => return Err(RunError::StartupTimeout(STARTUP_TIMEOUT)),
        }
    }
    let addrs = bound
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let driver = if drivers.iter().all(|d| *d == ActiveDriver::Uring) {
        "io_uring"
    } else if drivers.iter().all(|d| *d == ActiveDriver::Epoll) {
        "epoll"
    } else {
        "mixed io_uring/epoll"
    };
    let admin_addr = admin.as_ref().map(|(_, addr)| *addr);
    // Healthy from the moment anyone can learn where we listen.
    healthy.store(true, Ordering::Relaxed);
    {
        let mut stdout = std::io::stdout().lock();
        write!(
            stdout,
            "lynxio listening on {addrs} (workers: {}, driver: {driver}",
            cfg.workers
        )?;
        if let Some(addr) = admin_addr {
            write!(stdout, ", admin: {addr}")?;
        }
        write!(stdout, ", dest-policy: {}", cfg.dest.kind.as_str())?;
        if cfg.auth.is_some() {
            write!(stdout, ", auth: basic")?;
        }
        writeln!(stdout, ")")?;
        stdout.flush()?;
    }
    tracing::info!(%addrs, workers = cfg.workers, driver, admin = admin_addr.map(tracing::field::display), "accepting connections");
    super::notify::notify(&format!("READY=1\nSTATUS=listening on {addrs}"));
    warn_if_open(&cfg, &bound);

    // Serve until a signal.
    loop {
        match rx.recv() {
            Ok(Event::Signal(SIGHUP)) => {
                super::notify::notify(&super::notify::reloading_state());
                reload(&rules);
                super::notify::notify("READY=1");
            }
            Ok(Event::Signal(sig)) => {
                tracing::info!(signal = sig, drain = ?cfg.timeouts.drain, "shutting down");
                super::notify::notify("STOPPING=1");
                break;
            }
            Ok(Event::Failed { index, error }) => {
                return Err(RunError::Worker { index, error });
            }
            Ok(Event::Ready { .. }) => {}
            Err(_) => break,
        }
    }

    healthy.store(false, Ordering::Relaxed);
    drop(stops);
    let deadline = Instant::now() + cfg.timeouts.drain + JOIN_SLACK;
    while handles.iter().any(|h| !h.is_finished()) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            tracing::error!("workers did not stop in time");
            return Err(RunError::Forced);
        }
        match rx.recv_timeout(left.min(Duration::from_millis(20))) {
            Ok(Event::Signal(SIGHUP)) => {}
            Ok(Event::Signal(_)) => return Err(RunError::Forced),
            Ok(Event::Ready { .. } | Event::Failed { .. }) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "worker runtime failed"),
            Err(_) => tracing::error!("worker panicked"),
        }
    }
    // Live subscribers go first; then everything the workers queued reaches the capture
    // file before the process exits.
    if let Some((admin, _)) = admin {
        admin.stop();
    }
    if let Some(hub) = &hub {
        hub.shutdown();
    }
    tracing::info!("stopped");
    Ok(())
}

/// A listener others can reach without credentials makes lynxio a proxy for anyone who finds
/// it: say so loudly (the destination policy still keeps them off private networks unless it
/// was opened).
fn warn_if_open(cfg: &Config, bound: &[std::net::SocketAddr]) {
    tracing::info!(
        policy = cfg.dest.kind.as_str(),
        why = cfg.dest_reason,
        connect_ports = ?cfg.dest.connect_ports,
        "destination policy"
    );
    if cfg.auth.is_some() {
        return;
    }
    for addr in bound.iter().filter(|a| !a.ip().is_loopback()) {
        tracing::warn!(
            %addr,
            dest_policy = cfg.dest.kind.as_str(),
            "OPEN PROXY: {addr} is not a loopback address and no --auth is set: anyone who can reach it can use this proxy"
        );
    }
}

/// SIGHUP: put the config file's rules in force, or say why not and keep the old ones.
fn reload(rules: &LiveRules) {
    match rules.reload() {
        Ok(Reloaded::Swapped { rules }) => tracing::info!(rules, "SIGHUP: rules reloaded"),
        Ok(Reloaded::NoConfigFile) => {
            tracing::warn!("SIGHUP: started without --config, so there are no rules to reload")
        }
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: config rejected; the previous rules stay in force")
        }
    }
}

/// Binds the admin listener (so a taken port is a startup error) and starts its thread.
fn start_admin(
    addr: std::net::SocketAddr,
    cfg: &Config,
    registry: &Registry,
    hub: &Arc<Hub>,
    healthy: &Arc<AtomicBool>,
) -> Result<(Admin, std::net::SocketAddr), RunError> {
    let fail = |source| RunError::Admin { addr, source };
    let listener = std::net::TcpListener::bind(addr).map_err(fail)?;
    let bound = listener.local_addr().map_err(fail)?;
    let state = AdminState {
        registry: registry.clone(),
        hub: hub.clone(),
        token: cfg.admin_token.clone(),
        healthy: healthy.clone(),
    };
    let admin = admin::start(listener, state).map_err(fail)?;
    Ok((admin, bound))
}

/// Builds the origin TLS configuration, and loads (or creates) the CA now when a rule can
/// intercept from the start — a CA problem is then a startup error, not a failure on the first
/// intercepted tunnel. Otherwise the CA waits for its first use.
fn interceptor(cfg: &Config) -> Result<Arc<Interceptor>, RunError> {
    if cfg.insecure_upstream {
        tracing::warn!(
            "--insecure-upstream: origin certificates are NOT verified when intercepting"
        );
    }
    let upstream = crate::mitm::upstream::client_config(&cfg.upstream_ca, cfg.insecure_upstream)?;
    let mitm = Arc::new(Interceptor::new(cfg.ca_dir.clone(), upstream).map_err(RunError::Tickets)?);
    if let Some(rule) = cfg.rules.first_intercept_rule() {
        let ca = mitm.ca()?;
        tracing::info!(rule, ca = %ca.cert_path().display(), "TLS interception enabled");
    }
    Ok(mitm)
}

/// The per-worker client connection limit: `--max-connections`, else derived from the
/// open-files limit (raised to its hard limit first) as (soft limit − [`FD_RESERVE`]) /
/// (workers × [`FDS_PER_CONNECTION`]), at least [`MIN_MAX_CONNECTIONS`]. Logged at start.
fn connection_limit(cfg: &Config) -> usize {
    let nofile = raise_nofile_limit();
    let (limit, source) = match cfg.max_connections {
        Some(n) => (n, "--max-connections"),
        None => (
            derived_connection_limit(nofile, cfg.workers),
            "open-files limit",
        ),
    };
    tracing::info!(
        max_connections = limit,
        workers = cfg.workers,
        open_files = nofile,
        source,
        "client connections limited per worker"
    );
    limit
}

/// (`nofile` − reserve) / (`workers` × fds per connection), at least the minimum.
fn derived_connection_limit(nofile: u64, workers: usize) -> usize {
    let per_worker = workers.max(1) as u64 * FDS_PER_CONNECTION;
    let n = nofile.saturating_sub(FD_RESERVE) / per_worker;
    usize::try_from(n)
        .unwrap_or(usize::MAX)
        .max(MIN_MAX_CONNECTIONS)
}

/// Raise the soft open-files limit to the hard limit (a common soft default, 1024, is far below
/// what a proxy needs); returns the soft limit now in force.
fn raise_nofile_limit() -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `getrlimit` only writes the `rlimit` struct we pass by valid mutable pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return FD_RESERVE;
    }
    if rl.rlim_cur < rl.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: rl.rlim_max,
            rlim_max: rl.rlim_max,
        };
        // SAFETY: `setrlimit` only reads the `rlimit` struct we pass by valid pointer.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            rl.rlim_cur = rl.rlim_max;
        } else {
            tracing::debug!(
                soft = rl.rlim_cur,
                hard = rl.rlim_max,
                "cannot raise the open-files limit"
            );
        }
    }
    rl.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_connection_limit_splits_the_open_files_budget() {
        // 1,048,576 − 256 over 2 workers × 3 fds.
        assert_eq!(derived_connection_limit(1 << 20, 2), 174_720);
        assert_eq!(derived_connection_limit(65_536, 1), 21_760);
        // Small limits and many workers bottom out at the minimum.
        assert_eq!(derived_connection_limit(1024, 8), MIN_MAX_CONNECTIONS);
        assert_eq!(derived_connection_limit(0, 1), MIN_MAX_CONNECTIONS);
        // An unlimited hard limit (RLIM_INFINITY) and a zero worker count do not overflow.
        assert!(derived_connection_limit(u64::MAX, 0) > 1 << 40);
    }
}
