//! Runtime configuration: the command-line flags, the TOML file that can hold every flag, and
//! the resolved [`Config`] the workers share read-only. Precedence is flag > file > default.
//! Every limit and timeout the proxy enforces is named here with its default, so there is one
//! place to read what lynxio will tolerate. Validation happens once at start; a bad value is a
//! startup error with the offending key, never a silent fallback.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;

use crate::http1::{DEFAULT_MAX_HEAD_BYTES, DEFAULT_MAX_HEADERS, MAX_HEADERS_CAP};
pub use crate::net::dns::ResolveOverride;
pub use crate::net::runtime::DriverKind;
use crate::observe::hub::{CaptureTarget, DEFAULT_QUEUE_CAPACITY};
use crate::rules::{RuleError, RuleSet, RuleSpec};

mod rules_source;
pub use rules_source::RulesSource;

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
/// Idle upstream connections kept per origin (host, port) per worker.
pub const DEFAULT_POOL_MAX_PER_HOST: usize = 64;
/// How long a DNS answer is cached per worker (the system resolver reports no TTL).
pub const DEFAULT_DNS_TTL: Duration = Duration::from_secs(60);
/// After `200 Connection established`: how long to wait for the client's first bytes before
/// treating the tunnel as opaque (server-first protocols send nothing from the client).
pub const DEFAULT_SNIFF_TIMEOUT: Duration = Duration::from_secs(1);
/// A CONNECT tunnel with no byte in either direction for this long is closed.
pub use crate::tunnel::DEFAULT_IDLE_TIMEOUT as DEFAULT_TUNNEL_IDLE_TIMEOUT;
/// Kernel pipe size for spliced tunnels (`F_SETPIPE_SZ`), per direction while bytes flow.
pub use crate::tunnel::DEFAULT_PIPE_SIZE;
/// io_uring submission queue entries per worker.
pub const DEFAULT_RING_ENTRIES: u32 = 1024;
/// Threads (shared by all workers) that run blocking `getaddrinfo` calls.
pub const DEFAULT_DNS_THREADS: usize = 2;
/// Upper bound for `--capture-bodies` (bytes kept per body, per exchange in flight).
pub const MAX_CAPTURE_BODIES: usize = 16 * 1024 * 1024;
/// Upper bound for `--capture-queue` (events per worker).
pub const MAX_CAPTURE_QUEUE: usize = 1024 * 1024;

/// `lynxio` command line.
#[derive(Debug, Parser)]
#[command(
    name = "lynxio",
    version,
    about = "Fast forward HTTP(S) debugging proxy on io_uring"
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: Settings,
}

/// Subcommands; with none, `run` is implied.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // built once per process; boxing buys nothing
pub enum Command {
    /// Run the proxy (the default).
    Run(Settings),
    /// Manage the root CA that signs intercepted hosts' certificates.
    Ca(CaArgs),
    /// Convert a capture file (`--capture`, JSON Lines) to HAR 1.2 on stdout.
    Har(HarArgs),
}

/// `lynxio har CAPTURE.jsonl`
#[derive(Debug, Args)]
pub struct HarArgs {
    /// The capture file (`-` for stdin).
    #[arg(value_name = "CAPTURE")]
    pub capture: PathBuf,
}

/// Format of log lines on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable text.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// `lynxio ca ...`
#[derive(Debug, Args)]
pub struct CaArgs {
    #[command(subcommand)]
    pub command: CaCommand,
}

/// The `ca` subcommands.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Print the CA certificate (PEM) to stdout, creating the CA first if there is none yet,
    /// so it can be trusted before the proxy's first run.
    Export(CaDirArgs),
    /// Print the path of the CA certificate file (does not create anything).
    Path(CaDirArgs),
}

/// Where the `ca` subcommands find the CA: `--ca-dir`, else `ca_dir` from `--config`, else
/// the default directory.
#[derive(Debug, Args)]
pub struct CaDirArgs {
    /// Directory holding ca.pem and ca-key.pem.
    #[arg(long, value_name = "DIR")]
    pub ca_dir: Option<PathBuf>,
    /// TOML configuration file to take `ca_dir` from.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl CaDirArgs {
    /// The CA directory these arguments select.
    pub fn resolve(&self) -> Result<PathBuf, ConfigError> {
        if let Some(dir) = &self.ca_dir {
            return Ok(dir.clone());
        }
        let file = match &self.config {
            Some(path) => Settings::from_file(path)?,
            None => Settings::default(),
        };
        Ok(file.ca_dir.unwrap_or_else(crate::mitm::ca::default_dir))
    }
}

/// Every setting, as a flag and as a key of the TOML config file (`listen = [...]`,
/// `connect_timeout = "2s"`, ...). `None`/empty means "not given here".
#[derive(Debug, Default, Args, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Address to listen on (repeatable). Default 127.0.0.1:8080.
    #[arg(long = "listen", value_name = "ADDR")]
    pub listen: Vec<SocketAddr>,
    /// Worker threads, one runtime each. Default: available cores.
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Pin each worker to a core (default when --cpus is given).
    #[arg(long = "pin", overrides_with = "no_pin")]
    #[serde(skip)]
    pub pin_flag: bool,
    /// Do not pin workers to cores.
    #[arg(long = "no-pin", overrides_with = "pin_flag")]
    #[serde(skip)]
    pub no_pin: bool,
    /// File key for pinning (`pin = true`).
    #[arg(skip)]
    pub pin: Option<bool>,
    /// Cores to pin workers to, e.g. `0-3,6` (workers take them round-robin).
    #[arg(long, value_name = "LIST")]
    pub cpus: Option<String>,
    /// Event driver.
    #[arg(long, value_enum, value_name = "auto|uring|epoll")]
    pub driver: Option<DriverKind>,
    /// io_uring submission queue size per worker.
    #[arg(long, value_name = "N")]
    pub ring_entries: Option<u32>,
    /// Enable io_uring kernel submission polling with this idle time in ms (off by default).
    #[arg(long, value_name = "IDLE_MS")]
    pub sqpoll: Option<u32>,
    /// TOML configuration file; flags override its values.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Static name resolution like curl: `HOST:PORT:ADDR[,ADDR...]` (repeatable).
    #[arg(long, value_name = "HOST:PORT:ADDR")]
    pub resolve: Vec<String>,
    /// Log filter (tracing EnvFilter syntax), e.g. `info`, `lynxio=debug`. Default: RUST_LOG or info.
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,
    /// A request head must arrive completely within this time of its first byte.
    #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub client_head_timeout: Option<Duration>,
    /// Upstream connect timeout.
    #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub connect_timeout: Option<Duration>,
    /// Upstream response head timeout (also the longest stall inside a response: origin silent or client not reading).
    #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub response_timeout: Option<Duration>,
    /// Client keep-alive idle timeout (also the longest stall inside a request body, either side).
    #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub client_idle_timeout: Option<Duration>,
    /// How long idle upstream connections stay pooled.
    #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub upstream_idle_timeout: Option<Duration>,
    /// Graceful shutdown: time allowed for in-flight requests after SIGINT/SIGTERM.
    #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub drain_timeout: Option<Duration>,
    /// How long resolved addresses are cached.
    #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub dns_ttl: Option<Duration>,
    /// Largest request/response head in bytes (431 / 502 beyond).
    #[arg(long, value_name = "BYTES")]
    pub max_head_bytes: Option<usize>,
    /// Most header fields in a head.
    #[arg(long, value_name = "N")]
    pub max_headers: Option<usize>,
    /// Idle upstream connections kept per origin per worker.
    #[arg(long, value_name = "N")]
    pub pool_max_per_host: Option<usize>,
    /// How long to wait for a CONNECT client's first bytes before tunnelling blind.
    #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub sniff_timeout: Option<Duration>,
    /// Close a CONNECT tunnel after this long without a byte in either direction.
    #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub tunnel_idle_timeout: Option<Duration>,
    /// Kernel pipe size in bytes for zero-copy tunnels (rounded up to a page by the kernel).
    #[arg(long, value_name = "BYTES")]
    pub pipe_size: Option<usize>,
    /// Relay tunnels through user-space buffers instead of splice(2).
    #[arg(long)]
    #[serde(default)]
    pub no_splice: bool,
    /// Directory of the root CA for interception (ca.pem, ca-key.pem; created on first use).
    /// Default: $XDG_DATA_HOME/lynxio or ~/.local/share/lynxio.
    #[arg(long, value_name = "DIR")]
    pub ca_dir: Option<PathBuf>,
    /// Intercept (MITM) CONNECT targets whose host matches this glob (repeatable; `*` = all).
    /// Applied after the config file's `[[rule]]` tables.
    #[arg(long, value_name = "GLOB")]
    #[serde(default)]
    pub mitm: Vec<String>,
    /// Extra trusted root certificates (PEM) for verifying intercepted origins, on top of the
    /// built-in webpki roots.
    #[arg(long, value_name = "FILE")]
    pub upstream_ca: Option<PathBuf>,
    /// Do not verify intercepted origins' certificates (testing only; logged loudly).
    #[arg(long)]
    #[serde(default)]
    pub insecure_upstream: bool,
    /// Log line format: text or json (one object per line).
    #[arg(long, value_enum, value_name = "text|json")]
    pub log_format: Option<LogFormat>,
    /// Write flow events as JSON Lines to FILE (`-` = stdout): request, response, end,
    /// tunnel_open, tunnel_close, error. Appends to an existing file.
    #[arg(long, value_name = "FILE")]
    pub capture: Option<PathBuf>,
    /// Also capture up to this many bytes of each request and response body.
    #[arg(long, value_name = "BYTES")]
    pub capture_bodies: Option<usize>,
    /// Events each worker may queue for the capture/live writer before new ones are dropped
    /// (and counted). Default 16384.
    #[arg(long, value_name = "N")]
    pub capture_queue: Option<usize>,
    /// Serve /healthz, /metrics (Prometheus) and /events (live flow events, SSE) on ADDR.
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<SocketAddr>,
    /// Bearer token required by the admin listener (required on a non-loopback address).
    #[arg(long, value_name = "TOKEN")]
    pub admin_token: Option<String>,
    /// `[[rule]]` tables (config file only).
    #[arg(skip)]
    #[serde(default)]
    pub rule: Vec<RuleSpec>,
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("bad duration {s:?}: {e}")))
}

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
    /// Pipe size for spliced tunnels.
    pub pipe_size: usize,
    /// Use splice(2) for tunnels (else user-space copies).
    pub splice: bool,
    /// Directory of the root CA (`--ca-dir`, or the default); loaded when interception starts.
    pub ca_dir: PathBuf,
    /// The rules at start (SIGHUP puts new ones in force: see `proxy::live`).
    pub rules: Arc<RuleSet>,
    /// Where the rules come from, to read them again on SIGHUP.
    pub rules_source: RulesSource,
    /// Extra roots for verifying intercepted origins.
    pub upstream_ca: Option<PathBuf>,
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

impl Settings {
    /// Read a TOML config file into settings.
    pub fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut settings: Settings = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        crate::rules::attach_lines(&mut settings.rule, &text);
        Ok(settings)
    }

    /// `self` (flags) over `file`: every value given as a flag wins.
    fn over(self, file: Settings) -> Settings {
        let pin = if self.pin_flag {
            Some(true)
        } else if self.no_pin {
            Some(false)
        } else {
            file.pin
        };
        Settings {
            listen: if self.listen.is_empty() {
                file.listen
            } else {
                self.listen
            },
            resolve: if self.resolve.is_empty() {
                file.resolve
            } else {
                self.resolve
            },
            workers: self.workers.or(file.workers),
            pin_flag: false,
            no_pin: false,
            pin,
            cpus: self.cpus.or(file.cpus),
            driver: self.driver.or(file.driver),
            ring_entries: self.ring_entries.or(file.ring_entries),
            sqpoll: self.sqpoll.or(file.sqpoll),
            config: None,
            log: self.log.or(file.log),
            client_head_timeout: self.client_head_timeout.or(file.client_head_timeout),
            connect_timeout: self.connect_timeout.or(file.connect_timeout),
            response_timeout: self.response_timeout.or(file.response_timeout),
            client_idle_timeout: self.client_idle_timeout.or(file.client_idle_timeout),
            upstream_idle_timeout: self.upstream_idle_timeout.or(file.upstream_idle_timeout),
            drain_timeout: self.drain_timeout.or(file.drain_timeout),
            dns_ttl: self.dns_ttl.or(file.dns_ttl),
            max_head_bytes: self.max_head_bytes.or(file.max_head_bytes),
            max_headers: self.max_headers.or(file.max_headers),
            pool_max_per_host: self.pool_max_per_host.or(file.pool_max_per_host),
            sniff_timeout: self.sniff_timeout.or(file.sniff_timeout),
            tunnel_idle_timeout: self.tunnel_idle_timeout.or(file.tunnel_idle_timeout),
            pipe_size: self.pipe_size.or(file.pipe_size),
            no_splice: self.no_splice || file.no_splice,
            ca_dir: self.ca_dir.or(file.ca_dir),
            mitm: if self.mitm.is_empty() {
                file.mitm
            } else {
                self.mitm
            },
            rule: file.rule,
            upstream_ca: self.upstream_ca.or(file.upstream_ca),
            insecure_upstream: self.insecure_upstream || file.insecure_upstream,
            log_format: self.log_format.or(file.log_format),
            capture: self.capture.or(file.capture),
            capture_bodies: self.capture_bodies.or(file.capture_bodies),
            capture_queue: self.capture_queue.or(file.capture_queue),
            admin: self.admin.or(file.admin),
            admin_token: self.admin_token.or(file.admin_token),
        }
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
        };
        for (key, d) in [
            ("client_head_timeout", timeouts.client_head),
            ("connect_timeout", timeouts.connect),
            ("response_timeout", timeouts.response),
            ("client_idle_timeout", timeouts.client_idle),
            ("upstream_idle_timeout", timeouts.upstream_idle),
            ("sniff_timeout", timeouts.sniff),
            ("tunnel_idle_timeout", timeouts.tunnel_idle),
        ] {
            if d.is_zero() {
                return Err(invalid(key, "must be greater than zero"));
            }
        }
        let rules = Arc::new(rules_source.compile_specs(&s.rule, &s.mitm)?);
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
            pipe_size,
            splice: !s.no_splice,
            ca_dir: s.ca_dir.unwrap_or_else(crate::mitm::ca::default_dir),
            rules,
            rules_source,
            upstream_ca: s.upstream_ca,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,6").unwrap(), vec![0, 1, 2, 3, 6]);
        assert_eq!(parse_cpu_list("1").unwrap(), vec![1]);
        for bad in ["", "a", "3-1", "1-", "-1", "0,,1"] {
            assert!(parse_cpu_list(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn resolve_specs() {
        let r = parse_resolve("Example.test:8080:127.0.0.2,[::1]").unwrap();
        assert_eq!(r.host, "example.test");
        assert_eq!(r.port, 8080);
        assert_eq!(
            r.addrs,
            vec![
                "127.0.0.2".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        for bad in [
            "x",
            "x:80",
            "x:0:127.0.0.1",
            ":80:127.0.0.1",
            "x:80:nope",
            "x:99999:1.1.1.1",
        ] {
            assert!(parse_resolve(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn flags_override_file() {
        let file: Settings = toml::from_str(
            "listen = [\"127.0.0.1:9000\"]\nworkers = 3\nconnect_timeout = \"2s\"\ndriver = \"epoll\"\n",
        )
        .unwrap();
        let flags = Settings {
            workers: Some(1),
            ..Settings::default()
        };
        let merged = flags.over(file);
        assert_eq!(merged.workers, Some(1));
        assert_eq!(
            merged.listen,
            vec!["127.0.0.1:9000".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(merged.connect_timeout, Some(Duration::from_secs(2)));
        assert_eq!(merged.driver, Some(DriverKind::Epoll));
    }

    #[test]
    fn ca_dir_from_flag_file_or_default() {
        let file: Settings = toml::from_str("ca_dir = \"/srv/ca\"\n").unwrap();
        let merged = Settings::default().over(file);
        assert_eq!(merged.ca_dir, Some(PathBuf::from("/srv/ca")));
        let flags = Settings {
            ca_dir: Some(PathBuf::from("/flag")),
            ..Settings::default()
        };
        let file: Settings = toml::from_str("ca_dir = \"/srv/ca\"\n").unwrap();
        assert_eq!(flags.over(file).ca_dir, Some(PathBuf::from("/flag")));
        let cfg = Config::from_settings(Settings::default()).unwrap();
        assert_eq!(cfg.ca_dir, crate::mitm::ca::default_dir());
    }

    #[test]
    fn observation_settings_are_checked() {
        let bodies_alone = Settings {
            capture_bodies: Some(10),
            ..Settings::default()
        };
        assert!(Config::from_settings(bodies_alone).is_err());
        let open_admin = Settings {
            admin: Some("0.0.0.0:9000".parse().unwrap()),
            ..Settings::default()
        };
        let err = Config::from_settings(open_admin).unwrap_err().to_string();
        assert!(
            err.contains("admin-token") || err.contains("admin_token") || err.contains("token")
        );
        let guarded = Settings {
            admin: Some("0.0.0.0:9000".parse().unwrap()),
            admin_token: Some("t".into()),
            ..Settings::default()
        };
        assert!(Config::from_settings(guarded).is_ok());
        let file: Settings =
            toml::from_str("capture = \"-\"\ncapture_bodies = 64\nlog_format = \"json\"\n")
                .unwrap();
        let cfg = Config::from_settings(Settings::default().over(file)).unwrap();
        assert_eq!(cfg.capture, Some(CaptureTarget::Stdout));
        assert_eq!(cfg.capture_bodies, 64);
        assert_eq!(cfg.log_format, LogFormat::Json);
        let zero_queue = Settings {
            capture: Some(PathBuf::from("x")),
            capture_queue: Some(0),
            ..Settings::default()
        };
        assert!(Config::from_settings(zero_queue).is_err());
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        assert!(toml::from_str::<Settings>("wrokers = 2").is_err());
    }

    #[test]
    fn defaults_resolve() {
        let cfg = Config::from_settings(Settings::default()).unwrap();
        assert_eq!(
            cfg.listen,
            vec![DEFAULT_LISTEN.parse::<SocketAddr>().unwrap()]
        );
        assert!(cfg.cpus.is_empty());
        assert_eq!(cfg.timeouts.client_head, DEFAULT_CLIENT_HEAD_TIMEOUT);
        let zero = Settings {
            connect_timeout: Some(Duration::ZERO),
            ..Settings::default()
        };
        assert!(Config::from_settings(zero).is_err());
    }
}
