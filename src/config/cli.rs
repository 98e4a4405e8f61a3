//! The command line: subcommands (`run`, `ca`, `har`) and their arguments; the `run` flags
//! themselves are [`Settings`](super::Settings).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;

use super::{ConfigError, Settings};

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
