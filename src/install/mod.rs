//! `lynxio ca install` / `lynxio ca uninstall`: put the root CA where clients look for trust,
//! or take it out again — the system store ([`system`]: Debian/Ubuntu `update-ca-certificates`,
//! Fedora/RHEL and Arch `update-ca-trust` anchors) and the NSS databases of Chromium and Firefox
//! ([`nss`], with `certutil`). Every step is idempotent (a store that already holds exactly this
//! certificate is left alone), never touches the network, and reports one [`Step`]: what it
//! changed, would change (`--dry-run`), skipped or could not do and why — with, for a store that
//! needs root, the one command to run. The system root and the home directory are parameters,
//! so tests run the real tools against a temporary layout.

pub mod nss;
pub mod system;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Install or uninstall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Install,
    Uninstall,
}

impl Mode {
    fn verb(self) -> &'static str {
        match self {
            Mode::Install => "install",
            Mode::Uninstall => "uninstall",
        }
    }
}

/// The CA being trusted: its PEM, its certificate file and the name stores list it under (its
/// subject common name). `None` parts when uninstalling a CA whose files are gone.
#[derive(Debug, Clone)]
pub struct CaCert {
    pub pem: Option<String>,
    pub path: PathBuf,
    pub nickname: Option<String>,
}

impl CaCert {
    /// Describe the CA in `pem` (read from `path`).
    pub fn new(pem: String, path: PathBuf) -> CaCert {
        let nickname = common_name(&pem);
        CaCert {
            pem: Some(pem),
            path,
            nickname,
        }
    }
}

/// The subject CN of the first certificate in `pem`.
fn common_name(pem: &str) -> Option<String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

/// Where and how to act.
#[derive(Debug, Clone)]
pub struct Options {
    pub mode: Mode,
    pub dry_run: bool,
    pub system: bool,
    pub nss: bool,
    /// `/` normally; a directory for a chroot, an image or a test.
    pub system_root: PathBuf,
    /// Whose NSS databases (`None`: no home, nothing to do there).
    pub home: Option<PathBuf>,
    /// The CA directory, for the command printed when root is needed.
    pub ca_dir: PathBuf,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Changed (added, replaced or removed).
    Changed,
    /// Already as asked.
    Unchanged,
    /// `--dry-run`: would change.
    WouldChange,
    /// Nothing there to act on (no such store on this machine).
    Skipped,
    /// Could not be done; the text says why and what to do.
    Failed,
}

/// One store's outcome.
#[derive(Debug, Clone)]
pub struct Step {
    pub status: Status,
    /// The store: `system store (Debian/Ubuntu)`, `Chromium NSS db /home/u/.pki/nssdb`.
    pub store: String,
    pub detail: String,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = match self.status {
            Status::Changed => "changed",
            Status::Unchanged => "unchanged",
            Status::WouldChange => "would change",
            Status::Skipped => "skipped",
            Status::Failed => "NOT DONE",
        };
        write!(f, "{word:>12}  {}: {}", self.store, self.detail)
    }
}

/// Run every selected store; one step per store (or database) found.
pub fn run(ca: &CaCert, opts: &Options) -> Vec<Step> {
    let mut steps = Vec::new();
    if opts.system {
        steps.push(system::apply(ca, opts));
    }
    if opts.nss {
        steps.extend(nss::apply(ca, opts));
    }
    steps
}

/// Whether all steps succeeded (nothing failed).
pub fn all_done(steps: &[Step]) -> bool {
    steps.iter().all(|s| s.status != Status::Failed)
}

/// The command that does the system-store part as root, with the CA directory spelled out
/// (sudo changes `$HOME`, so the default directory would be root's).
pub fn sudo_hint(opts: &Options) -> String {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.to_str().map(str::to_owned))
        .unwrap_or_else(|| "lynxio".to_owned());
    let mut cmd = format!(
        "sudo {} ca {} --only system --ca-dir {}",
        shell_word(&exe),
        opts.mode.verb(),
        shell_word(&opts.ca_dir.display().to_string())
    );
    if opts.system_root != Path::new("/") {
        cmd.push_str(" --system-root ");
        cmd.push_str(&shell_word(&opts.system_root.display().to_string()));
    }
    cmd
}

/// `s` quoted for a POSIX shell when it needs it.
fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:=@,".contains(&b));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// `name` on `$PATH`, or in the sbin directories a non-root `$PATH` often lacks.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Run `cmd`; Err with its last line of stderr (or the spawn error) when it fails.
fn run_command(cmd: &mut Command) -> Result<(), String> {
    let shown = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
    Err(format!(
        "{shown} failed ({}){}",
        out.status,
        last.map(|l| format!(": {}", l.trim())).unwrap_or_default()
    ))
}

/// Whether this process runs as root.
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests;
