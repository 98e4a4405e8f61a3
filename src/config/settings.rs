//! [`Settings`]: every setting as a flag and as a key of the TOML config file, each optional
//! ("not given here"), read from the file and merged flag-over-file; [`super::Config`] turns
//! the merged settings into validated values with defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use super::{ConfigError, DriverKind, LogFormat};
use crate::policy::dest::DestKind;
use crate::rules::RuleSpec;

/// Every setting, as a flag and as a key of the TOML config file (`listen = [...]`,
/// `connect_timeout = "2s"`, ...). `None`/empty means "not given here".
#[derive(Debug, Default, Args, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Address to accept proxy clients on: IP:PORT, [IPv6]:PORT or localhost:PORT; port 0
    /// picks one (repeatable).
    #[arg(long = "listen", value_name = "ADDR", value_parser = parse_listen)]
    #[serde(deserialize_with = "de_listen")]
    pub listen: Vec<SocketAddr>,
    /// Worker threads, one runtime each.
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
    /// Log filter (tracing EnvFilter syntax), e.g. `info`, `lynxio=debug`.
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,
    /// A request head must arrive completely within this time of its first byte.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub client_head_timeout: Option<Duration>,
    /// Upstream connect timeout.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub connect_timeout: Option<Duration>,
    /// Upstream response head timeout (also the longest stall inside a response: origin silent or client not reading).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub response_timeout: Option<Duration>,
    /// Client keep-alive idle timeout (also the longest stall inside a request body, either side).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub client_idle_timeout: Option<Duration>,
    /// How long idle upstream connections stay pooled.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub upstream_idle_timeout: Option<Duration>,
    /// Graceful shutdown: time allowed for in-flight requests after SIGINT/SIGTERM.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub drain_timeout: Option<Duration>,
    /// How long resolved addresses are cached.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
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
    /// Upstream connections open at once per origin per worker (busy or idle); past it,
    /// requests wait for one to finish (at most the connect timeout).
    #[arg(long, value_name = "N")]
    pub pool_max_open_per_host: Option<usize>,
    /// How long an idle keep-alive client connection keeps its read buffer; after that it waits
    /// for its next request without one.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub idle_buffer_hold: Option<Duration>,
    /// How long to wait for a CONNECT client's first bytes before tunnelling blind.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub sniff_timeout: Option<Duration>,
    /// Close a CONNECT tunnel after this long without a byte in either direction.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub tunnel_idle_timeout: Option<Duration>,
    /// Kernel pipe size in bytes for zero-copy tunnels (rounded up to a page by the kernel).
    #[arg(long, value_name = "BYTES")]
    pub pipe_size: Option<usize>,
    /// Relay tunnels and bodies through user-space buffers instead of splice(2).
    #[arg(long)]
    #[serde(default)]
    pub no_splice: bool,
    /// Splice a Content-Length body between plain sockets when at least this many of its bytes
    /// are still to come (a close-delimited one after this many) and nobody needs to see them.
    #[arg(long, value_name = "BYTES")]
    pub splice_body_min: Option<u64>,
    /// Directory of the root CA for interception (ca.pem, ca-key.pem; created on first use).
    #[arg(long, value_name = "DIR")]
    pub ca_dir: Option<PathBuf>,
    /// Intercept (MITM) CONNECT targets whose host matches this glob (repeatable; `*` = all).
    /// Applied after the config file's `[[rule]]` tables.
    #[arg(long, value_name = "GLOB")]
    #[serde(default)]
    pub mitm: Vec<String>,
    /// Extra trusted certificates (PEM) for verifying origins lynxio speaks TLS to, on top of
    /// the built-in webpki roots (repeatable).
    #[arg(long, value_name = "FILE")]
    #[serde(default, deserialize_with = "de_one_or_many")]
    pub upstream_ca: Vec<PathBuf>,
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
    /// (and counted).
    #[arg(long, value_name = "N")]
    pub capture_queue: Option<usize>,
    /// Serve /healthz, /metrics (Prometheus) and /events (live flow events, SSE) on ADDR
    /// (IP:PORT, [IPv6]:PORT or localhost:PORT).
    #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
    #[serde(deserialize_with = "de_admin")]
    pub admin: Option<SocketAddr>,
    /// Bearer token required by the admin listener (required on a non-loopback address).
    #[arg(long, value_name = "TOKEN")]
    pub admin_token: Option<String>,
    /// Require `Proxy-Authorization: Basic` credentials USER:PASS (repeatable); without valid
    /// ones every request and CONNECT gets 407.
    #[arg(long, value_name = "USER:PASS")]
    #[serde(default)]
    pub auth: Vec<String>,
    /// A file of `user:pass` lines accepted like --auth (`#` comments).
    #[arg(long, value_name = "FILE")]
    pub auth_file: Option<PathBuf>,
    /// Where requests may go: `open` (anywhere) or `public` (no loopback, private, link-local,
    /// multicast or unspecified addresses, CONNECT only to --connect-ports).
    #[arg(long, value_enum, value_name = "open|public")]
    pub dest_policy: Option<DestKind>,
    /// Ports CONNECT may reach (comma-separated).
    #[arg(long, value_name = "PORTS", value_delimiter = ',')]
    pub connect_ports: Option<Vec<u16>>,
    /// Address ranges (CIDR) allowed even under --dest-policy public (repeatable).
    #[arg(long, value_name = "CIDR")]
    #[serde(default)]
    pub allow_dest: Vec<String>,
    /// Client connections each worker serves at once; above it the worker stops accepting until
    /// one closes (the kernel backlog holds the rest).
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Idle upstream connections each worker keeps in total, all origins together (the least
    /// recently used go first).
    #[arg(long, value_name = "N")]
    pub pool_max_idle: Option<usize>,
    /// `[[rule]]` tables (config file only).
    #[arg(skip)]
    #[serde(default)]
    pub rule: Vec<RuleSpec>,
}

/// A TOML value that may be one string or a list of them (`upstream_ca = "a.pem"` or
/// `["a.pem", "b.pem"]`).
fn de_one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(PathBuf),
        Many(Vec<PathBuf>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(p) => vec![p],
        OneOrMany::Many(v) => v,
    })
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("bad duration {s:?}: {e}")))
}

/// How a duration is written, for `--help` and error messages.
pub const DURATION_FORMAT: &str = "a number and a unit, e.g. 250ms, 5s, 2m, 1h30m";
/// How a listen address is written, for `--help` and error messages.
pub const LISTEN_FORMAT: &str = "IP:PORT, [IPv6]:PORT or localhost:PORT (e.g. 127.0.0.1:8080, \
                                 [::1]:8080, 0.0.0.0:8080)";

/// A duration flag or key: `250ms`, `5s`, `2m`, `1h30m` (humantime); a bare number has no unit
/// and is refused with the expected form.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("{e}; expected {DURATION_FORMAT}"))
}

/// A listen address: `IP:PORT`, `[IPv6]:PORT`, or `localhost:PORT` (= 127.0.0.1:PORT; no DNS).
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let bad = || format!("expected {LISTEN_FORMAT}");
    if let Some((host, port)) = s.rsplit_once(':')
        && host.eq_ignore_ascii_case("localhost")
    {
        let port: u16 = port.parse().map_err(|_| bad())?;
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if s.parse::<std::net::IpAddr>().is_ok() || !s.contains(':') {
        return Err(format!("the port is missing; {}", bad()));
    }
    Err(bad())
}

fn de_listen<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
    let list = Vec::<String>::deserialize(d)?;
    list.iter()
        .map(|s| parse_listen(s).map_err(|e| serde::de::Error::custom(format!("{s:?}: {e}"))))
        .collect()
}

fn de_admin<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let s = String::deserialize(d)?;
    parse_listen(&s)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("{s:?}: {e}")))
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
    pub(super) fn over(self, file: Settings) -> Settings {
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
            idle_buffer_hold: self.idle_buffer_hold.or(file.idle_buffer_hold),
            pool_max_open_per_host: self.pool_max_open_per_host.or(file.pool_max_open_per_host),
            sniff_timeout: self.sniff_timeout.or(file.sniff_timeout),
            tunnel_idle_timeout: self.tunnel_idle_timeout.or(file.tunnel_idle_timeout),
            pipe_size: self.pipe_size.or(file.pipe_size),
            splice_body_min: self.splice_body_min.or(file.splice_body_min),
            no_splice: self.no_splice || file.no_splice,
            ca_dir: self.ca_dir.or(file.ca_dir),
            mitm: if self.mitm.is_empty() {
                file.mitm
            } else {
                self.mitm
            },
            rule: file.rule,
            upstream_ca: if self.upstream_ca.is_empty() {
                file.upstream_ca
            } else {
                self.upstream_ca
            },
            auth: if self.auth.is_empty() {
                file.auth
            } else {
                self.auth
            },
            auth_file: self.auth_file.or(file.auth_file),
            dest_policy: self.dest_policy.or(file.dest_policy),
            connect_ports: self.connect_ports.or(file.connect_ports),
            allow_dest: if self.allow_dest.is_empty() {
                file.allow_dest
            } else {
                self.allow_dest
            },
            max_connections: self.max_connections.or(file.max_connections),
            pool_max_idle: self.pool_max_idle.or(file.pool_max_idle),
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
