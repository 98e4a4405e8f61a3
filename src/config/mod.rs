//! Runtime configuration: the command-line flags, the TOML file that can hold every flag, and
//! the resolved [`Config`] the workers share read-only. Precedence is flag > file > default.
//! Every limit and timeout the proxy enforces is named here with its default, so there is one
//! place to read what lynxio will tolerate. Validation happens once at start; a bad value is a
//! startup error with the offending key, never a silent fallback.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::http1::{DEFAULT_MAX_HEAD_BYTES, DEFAULT_MAX_HEADERS, MAX_HEADERS_CAP};
pub use crate::net::dns::ResolveOverride;
pub use crate::net::runtime::DriverKind;
use crate::observe::hub::{CaptureTarget, DEFAULT_QUEUE_CAPACITY};
use crate::policy::auth::{AuthError, Credentials};
use crate::policy::dest::{Cidr, DEFAULT_PUBLIC_CONNECT_PORTS, DestKind, DestPolicy};
use crate::rules::{RuleError, RuleSet};

mod cli;
mod log_filter;
mod rules_source;
mod settings;
mod summary;
#[cfg(test)]
mod tests;

pub use cli::{
    CaArgs, CaCommand, CaDirArgs, CheckConfigArgs, Cli, Command, CompletionsArgs, HarArgs,
    LogFormat, TrustArgs, TrustStore, command,
};
pub use log_filter::{DEFAULT_LOG_FILTER, LOG_FILTER_EXAMPLE, choose_log_filter};
pub use rules_source::RulesSource;
pub use settings::{DURATION_FORMAT, LISTEN_FORMAT, Settings, parse_duration, parse_listen};

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Slowloris bound: a request head must be complete this long after its first byte.
pub const DEFAULT_CLIENT_HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Upstream TCP connect (all resolved addresses together).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Upstream response head, and the longest silence between reads of a response body.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// Client keep-alive idle time between requests (and silence within a request body).
pub const DEFAULT_CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an idle upstream connection stays in the pool.
pub const DEFAULT_UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Graceful shutdown: how long in-flight requests may take to finish.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle upstream connections kept per origin (host, port) per worker. As many as may be open
/// ([`DEFAULT_POOL_MAX_OPEN_PER_HOST`]): a smaller idle cap closes connections after a burst
/// only to dial them again on the next one (measured: at 1,000 keep-alive clients and a cap
/// of 64, every second request dialed; BENCHMARKS.md).
pub const DEFAULT_POOL_MAX_PER_HOST: usize = DEFAULT_POOL_MAX_OPEN_PER_HOST;
/// Upstream connections open at once per origin per worker, busy or idle; past it, requests
/// queue for the next one to finish (see `net::gate`), so thousands of clients of one origin
/// share a bounded set of connections instead of each holding its own.
pub const DEFAULT_POOL_MAX_OPEN_PER_HOST: usize = 256;
/// How long a DNS answer is cached per worker (the system resolver reports no TTL).
pub const DEFAULT_DNS_TTL: Duration = Duration::from_secs(60);
/// After `200 Connection established`: how long to wait for the client's first bytes before
/// treating the tunnel as opaque (server-first protocols send nothing from the client).
pub const DEFAULT_SNIFF_TIMEOUT: Duration = Duration::from_secs(1);
/// How long an idle keep-alive client connection keeps its read buffer before waiting for its
/// next request without one.
pub use crate::net::idle::DEFAULT_IDLE_BUFFER_HOLD;
/// A CONNECT tunnel with no byte in either direction for this long is closed.
pub use crate::tunnel::DEFAULT_IDLE_TIMEOUT as DEFAULT_TUNNEL_IDLE_TIMEOUT;
/// Kernel pipe size for spliced tunnels (`F_SETPIPE_SZ`), per direction while bytes flow.
pub use crate::tunnel::DEFAULT_PIPE_SIZE;
/// Smallest body remainder moved by splice rather than copied (see `proxy::body`).
pub use crate::tunnel::SPLICE_BODY_MIN as DEFAULT_SPLICE_BODY_MIN;
/// io_uring submission queue entries per worker.
pub const DEFAULT_RING_ENTRIES: u32 = 1024;
/// Threads (shared by all workers) that run blocking `getaddrinfo` calls.
pub const DEFAULT_DNS_THREADS: usize = 2;
/// Upper bound for `--capture-bodies` (bytes kept per body, per exchange in flight).
pub const MAX_CAPTURE_BODIES: usize = 16 * 1024 * 1024;
/// Upper bound for `--capture-queue` (events per worker).
pub const MAX_CAPTURE_QUEUE: usize = 1024 * 1024;
/// Idle upstream connections kept per worker, all origins together.
pub const DEFAULT_POOL_MAX_IDLE: usize = 1024;

/// All timeouts, resolved.
#[derive(Debug, Clone)]
pub struct Timeouts {
    pub client_head: Duration,
    pub connect: Duration,
    pub response: Duration,
    pub client_idle: Duration,
    pub upstream_idle: Duration,
    pub drain: Duration,
    pub sniff: Duration,
    pub tunnel_idle: Duration,
    /// How long an idle keep-alive client keeps its read buffer (`net::idle`).
    pub idle_buffer_hold: Duration,
}

/// The resolved configuration shared (read-only) by every worker.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Vec<SocketAddr>,
    pub workers: usize,
    /// Core for each worker index (empty: not pinned).
    pub cpus: Vec<usize>,
    pub driver: DriverKind,
    pub ring_entries: u32,
    pub sqpoll_idle_ms: Option<u32>,
    pub resolve: Vec<ResolveOverride>,
    pub log: Option<String>,
    pub timeouts: Timeouts,
    pub dns_ttl: Duration,
    pub head_limits: crate::http1::HeadLimits,
    pub pool_max_per_host: usize,
    /// Upstream connections open at once per origin per worker.
    pub pool_max_open_per_host: usize,
    /// Pipe size for spliced tunnels.
    pub pipe_size: usize,
    /// Use splice(2) for tunnels and big bodies (else user-space copies).
    pub splice: bool,
    /// Bodies with at least this many bytes still to come are spliced (when `splice`).
    pub splice_body_min: u64,
    /// Directory of the root CA (`--ca-dir`, or the default); loaded when interception starts.
    pub ca_dir: PathBuf,
    /// The rules at start (SIGHUP puts new ones in force: see `proxy::live`).
    pub rules: Arc<RuleSet>,
    /// Where the rules come from, to read them again on SIGHUP.
    pub rules_source: RulesSource,
    /// Extra trusted certificates for verifying origins lynxio speaks TLS to.
    pub upstream_ca: Vec<PathBuf>,
    /// Proxy credentials required of every client (`None`: no authentication).
    pub auth: Option<Arc<Credentials>>,
    /// Where requests may go.
    pub dest: Arc<DestPolicy>,
    /// Why `dest.kind` is what it is (for the startup line): "set" or the default's reason.
    pub dest_reason: &'static str,
    /// Client connections per worker (`None`: derived from the open-files limit at start).
    pub max_connections: Option<usize>,
    /// Idle upstream connections per worker, all origins together.
    pub pool_max_idle: usize,
    /// Skip origin certificate verification when intercepting.
    pub insecure_upstream: bool,
    pub log_format: LogFormat,
    /// Where flow events are written (`--capture`).
    pub capture: Option<CaptureTarget>,
    /// Body bytes kept per body in captured events (0: none).
    pub capture_bodies: usize,
    /// Per-worker event queue length.
    pub capture_queue: usize,
    /// Admin listener address and the token it requires.
    pub admin: Option<SocketAddr>,
    pub admin_token: Option<String>,
}

/// A configuration problem found at start-up.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid {key}: {message}")]
    Invalid { key: &'static str, message: String },
    #[error("{0}")]
    Auth(#[from] AuthError),
    #[error("invalid rule: {0}")]
    Rule(#[from] RuleError),
    /// A `[[rule]]` of the config file (the error names the rule and its line).
    #[error("config file {path}: {source}")]
    FileRule { path: PathBuf, source: RuleError },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

impl Config {
    /// Resolve flags (and the config file they name) into a validated configuration.
    pub fn from_settings(flags: Settings) -> Result<Config, ConfigError> {
        let file = match &flags.config {
            Some(path) => Settings::from_file(path)?,
            None => Settings::default(),
        };
        let rules_source = RulesSource {
            path: flags.config.clone(),
            mitm_flags: flags.mitm.clone(),
        };
        let s = flags.over(file);

        let listen = if s.listen.is_empty() {
            vec![
                DEFAULT_LISTEN
                    .parse()
                    .map_err(|_| invalid("listen", DEFAULT_LISTEN))?,
            ]
        } else {
            s.listen
        };
        let available = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = s.workers.unwrap_or(available);
        if workers == 0 || workers > 1024 {
            return Err(invalid("workers", format!("{workers} (must be 1..=1024)")));
        }
        let pin = s.pin.unwrap_or(s.cpus.is_some());
        let cpus = match (&s.cpus, pin) {
            (_, false) => Vec::new(),
            (Some(list), true) => parse_cpu_list(list)?,
            (None, true) => (0..available).collect(),
        };
        if let Some(spec) = &s.log {
            log_filter::check_log_flag(spec).map_err(|m| invalid("--log filter", m))?;
        }
        let max_headers = s.max_headers.unwrap_or(DEFAULT_MAX_HEADERS);
        if max_headers == 0 || max_headers > MAX_HEADERS_CAP {
            return Err(invalid(
                "max_headers",
                format!("{max_headers} (must be 1..={MAX_HEADERS_CAP})"),
            ));
        }
        let max_head_bytes = s.max_head_bytes.unwrap_or(DEFAULT_MAX_HEAD_BYTES);
        if !(1024..=1024 * 1024).contains(&max_head_bytes) {
            return Err(invalid(
                "max_head_bytes",
                format!("{max_head_bytes} (must be 1 KiB..=1 MiB)"),
            ));
        }
        let ring_entries = s.ring_entries.unwrap_or(DEFAULT_RING_ENTRIES);
        if !ring_entries.is_power_of_two() || !(8..=32768).contains(&ring_entries) {
            return Err(invalid(
                "ring_entries",
                format!("{ring_entries} (a power of two, 8..=32768)"),
            ));
        }
        let pipe_size = s.pipe_size.unwrap_or(DEFAULT_PIPE_SIZE);
        if !(4096..=64 * 1024 * 1024).contains(&pipe_size) {
            return Err(invalid(
                "pipe_size",
                format!("{pipe_size} (must be 4 KiB..=64 MiB)"),
            ));
        }
        let resolve = s
            .resolve
            .iter()
            .map(|r| parse_resolve(r))
            .collect::<Result<Vec<_>, _>>()?;
        let timeouts = Timeouts {
            client_head: s.client_head_timeout.unwrap_or(DEFAULT_CLIENT_HEAD_TIMEOUT),
            connect: s.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            response: s.response_timeout.unwrap_or(DEFAULT_RESPONSE_TIMEOUT),
            client_idle: s.client_idle_timeout.unwrap_or(DEFAULT_CLIENT_IDLE_TIMEOUT),
            upstream_idle: s
                .upstream_idle_timeout
                .unwrap_or(DEFAULT_UPSTREAM_IDLE_TIMEOUT),
            drain: s.drain_timeout.unwrap_or(DEFAULT_DRAIN_TIMEOUT),
            sniff: s.sniff_timeout.unwrap_or(DEFAULT_SNIFF_TIMEOUT),
            tunnel_idle: s.tunnel_idle_timeout.unwrap_or(DEFAULT_TUNNEL_IDLE_TIMEOUT),
            idle_buffer_hold: s.idle_buffer_hold.unwrap_or(DEFAULT_IDLE_BUFFER_HOLD),
        };
        for (key, d) in [
            ("client_head_timeout", timeouts.client_head),
            ("connect_timeout", timeouts.connect),
            ("response_timeout", timeouts.response),
            ("client_idle_timeout", timeouts.client_idle),
            ("upstream_idle_timeout", timeouts.upstream_idle),
            ("sniff_timeout", timeouts.sniff),
            ("tunnel_idle_timeout", timeouts.tunnel_idle),
            ("idle_buffer_hold", timeouts.idle_buffer_hold),
        ] {
            if d.is_zero() {
                return Err(invalid(key, "must be greater than zero"));
            }
        }
        let rules = Arc::new(rules_source.compile_specs(&s.rule, &s.mitm)?);
        let auth = Credentials::load(&s.auth, s.auth_file.as_deref())?.map(Arc::new);
        let (dest, dest_reason) = dest_policy(
            s.dest_policy,
            s.connect_ports.as_deref(),
            &s.allow_dest,
            &listen,
        )?;
        let pool_max_open_per_host = s
            .pool_max_open_per_host
            .unwrap_or(DEFAULT_POOL_MAX_OPEN_PER_HOST);
        if pool_max_open_per_host == 0 {
            return Err(invalid("pool_max_open_per_host", "must be at least 1"));
        }
        if s.max_connections == Some(0) {
            return Err(invalid("max_connections", "must be at least 1"));
        }
        let pool_max_idle = s.pool_max_idle.unwrap_or(DEFAULT_POOL_MAX_IDLE);
        let capture_bodies = s.capture_bodies.unwrap_or(0);
        if capture_bodies > MAX_CAPTURE_BODIES {
            return Err(invalid(
                "capture_bodies",
                format!("{capture_bodies} (at most {MAX_CAPTURE_BODIES})"),
            ));
        }
        if capture_bodies > 0 && s.capture.is_none() && s.admin.is_none() {
            return Err(invalid(
                "capture_bodies",
                "needs --capture or --admin (someone must read the events)",
            ));
        }
        let capture_queue = s.capture_queue.unwrap_or(DEFAULT_QUEUE_CAPACITY);
        if !(1..=MAX_CAPTURE_QUEUE).contains(&capture_queue) {
            return Err(invalid(
                "capture_queue",
                format!("{capture_queue} (must be 1..={MAX_CAPTURE_QUEUE})"),
            ));
        }
        let capture = s.capture.map(|p| {
            if p.as_os_str() == "-" {
                CaptureTarget::Stdout
            } else {
                CaptureTarget::File(p)
            }
        });
        if let Some(token) = &s.admin_token
            && token.is_empty()
        {
            return Err(invalid("admin_token", "must not be empty"));
        }
        if let Some(addr) = s.admin
            && !addr.ip().is_loopback()
            && s.admin_token.is_none()
        {
            return Err(invalid(
                "admin",
                format!("{addr} is not a loopback address: set --admin-token"),
            ));
        }
        Ok(Config {
            listen,
            workers,
            cpus,
            driver: s.driver.unwrap_or(DriverKind::Auto),
            ring_entries,
            sqpoll_idle_ms: s.sqpoll,
            resolve,
            log: s.log,
            timeouts,
            dns_ttl: s.dns_ttl.unwrap_or(DEFAULT_DNS_TTL),
            head_limits: crate::http1::HeadLimits {
                max_head_bytes,
                max_headers,
            },
            pool_max_per_host: s.pool_max_per_host.unwrap_or(DEFAULT_POOL_MAX_PER_HOST),
            pool_max_open_per_host,
            pipe_size,
            splice: !s.no_splice,
            splice_body_min: s.splice_body_min.unwrap_or(DEFAULT_SPLICE_BODY_MIN),
            ca_dir: s.ca_dir.unwrap_or_else(crate::mitm::ca::default_dir),
            rules,
            rules_source,
            upstream_ca: s.upstream_ca,
            auth,
            dest: Arc::new(dest),
            dest_reason,
            max_connections: s.max_connections,
            pool_max_idle,
            insecure_upstream: s.insecure_upstream,
            log_format: s.log_format.unwrap_or(LogFormat::Text),
            capture,
            capture_bodies,
            capture_queue,
            admin: s.admin,
            admin_token: s.admin_token,
        })
    }
}

/// Parse a core list such as `0-3,6`.
/// The destination policy: as set, else `open` when every listener is on loopback (a personal
/// proxy) and `public` otherwise; returns it with the reason for the startup line.
fn dest_policy(
    kind: Option<DestKind>,
    connect_ports: Option<&[u16]>,
    allow_dest: &[String],
    listen: &[SocketAddr],
) -> Result<(DestPolicy, &'static str), ConfigError> {
    let (kind, reason) = match kind {
        Some(kind) => (kind, "set"),
        None if listen.iter().all(|a| a.ip().is_loopback()) => {
            (DestKind::Open, "default: every listener is on loopback")
        }
        None => (DestKind::Public, "default: a listener is not on loopback"),
    };
    let allow = allow_dest
        .iter()
        .map(|c| Cidr::parse(c).map_err(|m| invalid("allow_dest", m)))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(ports) = connect_ports
        && (ports.is_empty() || ports.contains(&0))
    {
        return Err(invalid(
            "connect_ports",
            "ports must be 1..=65535, at least one",
        ));
    }
    let connect_ports = match (connect_ports, kind) {
        (Some(p), _) => Some(p.to_vec()),
        (None, DestKind::Public) => Some(DEFAULT_PUBLIC_CONNECT_PORTS.to_vec()),
        (None, DestKind::Open) => None,
    };
    Ok((
        DestPolicy {
            kind,
            connect_ports,
            allow,
        },
        reason,
    ))
}

pub fn parse_cpu_list(list: &str) -> Result<Vec<usize>, ConfigError> {
    let bad = || invalid("cpus", format!("{list:?} (expected e.g. 0-3,6)"));
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let lo: usize = lo.parse().map_err(|_| bad())?;
        let hi: usize = hi.parse().map_err(|_| bad())?;
        if lo > hi || hi >= 4096 {
            return Err(bad());
        }
        cpus.extend(lo..=hi);
    }
    if cpus.is_empty() {
        return Err(bad());
    }
    Ok(cpus)
}

/// Parse a curl-style `HOST:PORT:ADDR[,ADDR...]`; IPv6 addresses may be bracketed.
pub fn parse_resolve(spec: &str) -> Result<ResolveOverride, ConfigError> {
    let bad = || {
        invalid(
            "resolve",
            format!("{spec:?} (expected HOST:PORT:ADDR[,ADDR...])"),
        )
    };
    let (host, rest) = spec.split_once(':').ok_or_else(bad)?;
    let (port, addrs) = rest.split_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let addrs = addrs
        .split(',')
        .map(|a| {
            let a = a.trim();
            let a = a
                .strip_prefix('[')
                .and_then(|a| a.strip_suffix(']'))
                .unwrap_or(a);
            a.parse::<IpAddr>().map_err(|_| bad())
        })
        .collect::<Result<Vec<_>, _>>()?;
    if host.is_empty() || port == 0 || addrs.is_empty() {
        return Err(bad());
    }
    Ok(ResolveOverride {
        host: host.to_ascii_lowercase(),
        port,
        addrs,
    })
}
