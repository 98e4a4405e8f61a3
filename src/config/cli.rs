//! The command line: subcommands (`run`, `ca`, `har`, `check-config`, `completions`, `man`)
//! and their arguments; the `run` flags themselves are [`Settings`](super::Settings).
//! [`command`] is the one clap definition that parsing, `--help` (with every flag's default,
//! taken from the named constants), the completions and the man page are all generated from.

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use serde::Deserialize;

use super::{ConfigError, Settings};

/// What `--help` says after the flags: value formats and exit statuses.
const AFTER_HELP: &str = "\
Values: DUR is a number and a unit, e.g. 250ms, 5s, 2m, 1h30m; ADDR is IP:PORT, [IPv6]:PORT or
localhost:PORT. Every flag can also be a key of the --config file (- becomes _).

Exit status: 0 clean exit (also after SIGINT/SIGTERM), 1 runtime failure (e.g. an address in
use), 2 usage or configuration error (one line on stderr says why).

The CA page: http://lynxio.ca/ through the proxy; a PAC file at http://lynxio.ca/proxy.pac.";

/// `lynxio` command line.
#[derive(Debug, Parser)]
#[command(
    name = "lynxio",
    version,
    about = "Fast forward HTTP(S) debugging and interception proxy on io_uring",
    after_help = AFTER_HELP
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
    /// Validate a config file (with any flags, as `run` would take them) and print the
    /// effective settings; exit 0 when valid, 1 when not. For CI, and before a SIGHUP.
    CheckConfig(CheckConfigArgs),
    /// Print a completion script for SHELL on stdout.
    Completions(CompletionsArgs),
    /// Print the man page (roff) on stdout: `lynxio man > lynxio.1`.
    Man,
}

/// `lynxio check-config [FILE] [FLAGS]`
#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// The config file to check (the same as --config FILE).
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub run: Settings,
}

/// `lynxio completions SHELL`
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
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
    /// Trust the CA in the system store (needs root) and in the NSS databases of Chromium
    /// (~/.pki/nssdb) and Firefox profiles (with certutil); creates the CA if there is none.
    /// Says what it changed and what it could not; running it again changes nothing.
    Install(TrustArgs),
    /// Remove the CA from everywhere `ca install` puts it (the CA files themselves stay).
    Uninstall(TrustArgs),
}

/// Where `ca install` / `ca uninstall` act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TrustStore {
    /// The system store (update-ca-certificates, update-ca-trust).
    System,
    /// NSS databases of Chromium and Firefox (certutil).
    Nss,
}

/// `lynxio ca install|uninstall`
#[derive(Debug, Args)]
pub struct TrustArgs {
    #[command(flatten)]
    pub dir: CaDirArgs,
    /// Say what would change, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Only this store (default: both).
    #[arg(long, value_enum, value_name = "system|nss")]
    pub only: Option<TrustStore>,
    /// Treat DIR as the file system root for the system store (a chroot, an image being
    /// built, or a test); the store's refresh command is then pointed at DIR too.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub system_root: PathBuf,
    /// Home directory whose NSS databases are changed. Default: $HOME.
    #[arg(long, value_name = "DIR")]
    pub home: Option<PathBuf>,
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

/// Defaults shown in `--help` (and the man page) for flags whose value is optional so that the
/// config file can set it: clap cannot know them, so they are appended as `[default: …]`,
/// worded from the constants the configuration uses.
fn flag_defaults() -> Vec<(&'static str, String)> {
    use super::*;
    let dur = |d: std::time::Duration| humantime::format_duration(d).to_string();
    vec![
        ("listen", DEFAULT_LISTEN.to_owned()),
        ("workers", "one per available core".to_owned()),
        ("cpus", "all cores (when pinning)".to_owned()),
        ("driver", "auto".to_owned()),
        ("ring_entries", DEFAULT_RING_ENTRIES.to_string()),
        ("sqpoll", "off".to_owned()),
        ("log", format!("RUST_LOG, else {DEFAULT_LOG_FILTER}")),
        ("client_head_timeout", dur(DEFAULT_CLIENT_HEAD_TIMEOUT)),
        ("connect_timeout", dur(DEFAULT_CONNECT_TIMEOUT)),
        ("response_timeout", dur(DEFAULT_RESPONSE_TIMEOUT)),
        ("client_idle_timeout", dur(DEFAULT_CLIENT_IDLE_TIMEOUT)),
        ("upstream_idle_timeout", dur(DEFAULT_UPSTREAM_IDLE_TIMEOUT)),
        ("drain_timeout", dur(DEFAULT_DRAIN_TIMEOUT)),
        ("dns_ttl", dur(DEFAULT_DNS_TTL)),
        (
            "max_head_bytes",
            crate::http1::DEFAULT_MAX_HEAD_BYTES.to_string(),
        ),
        ("max_headers", crate::http1::DEFAULT_MAX_HEADERS.to_string()),
        ("pool_max_per_host", DEFAULT_POOL_MAX_PER_HOST.to_string()),
        (
            "pool_max_open_per_host",
            DEFAULT_POOL_MAX_OPEN_PER_HOST.to_string(),
        ),
        ("idle_buffer_hold", dur(DEFAULT_IDLE_BUFFER_HOLD)),
        ("sniff_timeout", dur(DEFAULT_SNIFF_TIMEOUT)),
        ("tunnel_idle_timeout", dur(DEFAULT_TUNNEL_IDLE_TIMEOUT)),
        ("pipe_size", DEFAULT_PIPE_SIZE.to_string()),
        ("splice_body_min", DEFAULT_SPLICE_BODY_MIN.to_string()),
        (
            "ca_dir",
            "$XDG_DATA_HOME/lynxio, else ~/.local/share/lynxio".to_owned(),
        ),
        ("log_format", "text".to_owned()),
        ("capture", "off".to_owned()),
        ("capture_bodies", "0".to_owned()),
        (
            "capture_queue",
            crate::observe::hub::DEFAULT_QUEUE_CAPACITY.to_string(),
        ),
        ("admin", "off".to_owned()),
        (
            "dest_policy",
            "open when every listener is on loopback, else public".to_owned(),
        ),
        (
            "connect_ports",
            "any under open, 443 under public".to_owned(),
        ),
        ("max_connections", "from the open-files limit".to_owned()),
        ("pool_max_idle", DEFAULT_POOL_MAX_IDLE.to_string()),
    ]
}

/// Append each flag's default to its help, on `cmd` and on every subcommand that has the
/// `run` flags.
fn with_defaults(mut cmd: clap::Command) -> clap::Command {
    for (id, default) in flag_defaults() {
        if cmd.get_arguments().any(|a| a.get_id() == id) {
            cmd = cmd.mut_arg(id, |arg| {
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                arg.help(format!("{help} [default: {default}]"))
            });
        }
    }
    cmd
}

/// The full command definition: what is parsed, and what `--help`, `lynxio completions` and
/// `lynxio man` show.
pub fn command() -> clap::Command {
    let mut cmd = with_defaults(Cli::command());
    for name in ["run", "check-config"] {
        cmd = cmd.mut_subcommand(name, |sub| with_defaults(sub).after_help(AFTER_HELP));
    }
    cmd
}

impl Cli {
    /// Parse the process's arguments with [`command`]; a usage error exits 2 with clap's message.
    pub fn parse_args() -> Cli {
        use clap::FromArgMatches;
        let matches = command().get_matches();
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Value-taking flags that have no default: absent means "none".
    const NO_DEFAULT: &[&str] = &[
        "config",
        "resolve",
        "mitm",
        "upstream_ca",
        "admin_token",
        "auth",
        "auth_file",
        "allow_dest",
    ];

    /// Every value-taking `run` flag either shows a default or is known to have none.
    #[test]
    fn every_flag_has_its_default_in_help() {
        let cmd = command();
        let run = cmd
            .get_subcommands()
            .find(|s| s.get_name() == "run")
            .expect("run subcommand");
        for arg in run.get_arguments() {
            let id = arg.get_id().as_str();
            if !arg.get_action().takes_values() || NO_DEFAULT.contains(&id) {
                continue;
            }
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            assert!(help.contains("[default: "), "--{id}: {help}");
        }
        cmd.debug_assert();
    }
}
