//! NSS certificate databases, which Chromium (`~/.pki/nssdb`) and Firefox (each profile) use
//! instead of the system store. Only SQL databases (`cert9.db`, every Firefox since 58) that
//! already exist are touched — lynxio never creates a browser's database. The certificate is
//! added under its common name with trust `C,,` (a CA for TLS servers) by `certutil`; before
//! adding, the database's copy under that name is compared, so a second install changes
//! nothing and a different CA of the same name is replaced. Uninstall deletes the name (or,
//! when the CA files are gone, every `lynxio CA …` name).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{CaCert, Mode, Options, Status, Step, find_program, run_command};

/// Trust flags for a root that issues TLS server certificates.
const TRUST: &str = "C,,";
/// Nicknames lynxio's CAs use (`lynxio CA <host>`).
const NICK_PREFIX: &str = "lynxio CA";

/// An NSS database and which browser reads it.
#[derive(Debug, Clone)]
pub struct Database {
    pub browser: &'static str,
    pub dir: PathBuf,
}

/// The SQL NSS databases under `home`: Chromium's (also the snap's) and every Firefox profile
/// (also the snap's and the Flatpak's).
pub fn find(home: &Path) -> Vec<Database> {
    let mut found = Vec::new();
    for dir in [".pki/nssdb", "snap/chromium/current/.pki/nssdb"] {
        let dir = home.join(dir);
        if dir.join("cert9.db").is_file() {
            found.push(Database {
                browser: "Chromium",
                dir,
            });
        }
    }
    for profiles in [
        ".mozilla/firefox",
        "snap/firefox/common/.mozilla/firefox",
        ".var/app/org.mozilla.firefox/.mozilla/firefox",
    ] {
        let Ok(entries) = std::fs::read_dir(home.join(profiles)) else {
            continue;
        };
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.join("cert9.db").is_file())
            .collect();
        dirs.sort();
        found.extend(dirs.into_iter().map(|dir| Database {
            browser: "Firefox",
            dir,
        }));
    }
    found
}

/// Install or uninstall in every database found under the home directory.
pub fn apply(ca: &CaCert, opts: &Options) -> Vec<Step> {
    let Some(home) = &opts.home else {
        return vec![Step {
            status: Status::Skipped,
            store: "NSS databases".into(),
            detail: "no home directory ($HOME unset; pass --home)".into(),
        }];
    };
    let dbs = find(home);
    if dbs.is_empty() {
        return vec![Step {
            status: Status::Skipped,
            store: "NSS databases".into(),
            detail: format!(
                "none under {} (~/.pki/nssdb appears once Chromium has run, a Firefox profile \
                 once Firefox has)",
                home.display()
            ),
        }];
    }
    let Some(certutil) = find_program("certutil") else {
        return vec![Step {
            status: Status::Failed,
            store: "NSS databases".into(),
            detail: format!(
                "{} found, but certutil is not installed (Debian/Ubuntu: libnss3-tools, \
                 Fedora: nss-tools, Arch: nss); install it and run again",
                dbs.iter()
                    .map(|d| d.dir.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }];
    };
    dbs.iter()
        .map(|db| apply_one(&certutil, db, ca, opts))
        .collect()
}

fn apply_one(certutil: &Path, db: &Database, ca: &CaCert, opts: &Options) -> Step {
    let store = format!("{} NSS db {}", db.browser, db.dir.display());
    let step = |status, detail: String| Step {
        status,
        store: store.clone(),
        detail,
    };
    let tool = Certutil {
        exe: certutil,
        db: format!("sql:{}", db.dir.display()),
    };
    let restart = if db.browser == "Firefox" {
        " (restart Firefox)"
    } else {
        ""
    };
    match (opts.mode, &ca.nickname, &ca.pem) {
        (Mode::Install, Some(nick), Some(pem)) => {
            let present = tool.pem_of(nick);
            if present.as_deref().is_some_and(|p| same_pem(p, pem)) {
                return step(Status::Unchanged, format!("already trusts {nick:?}"));
            }
            let (verb, past) = if present.is_some() {
                ("replace", "replaced")
            } else {
                ("add", "added")
            };
            if opts.dry_run {
                return step(Status::WouldChange, format!("would {verb} {nick:?}"));
            }
            if present.is_some()
                && let Err(e) = tool.delete(nick)
            {
                return step(Status::Failed, e);
            }
            match tool.add(nick, &ca.path) {
                Ok(()) => step(
                    Status::Changed,
                    format!("{past} {nick:?} trusted as {TRUST}{restart}"),
                ),
                Err(e) => step(Status::Failed, e),
            }
        }
        (Mode::Install, _, _) => step(Status::Failed, "no CA certificate to install".into()),
        (Mode::Uninstall, nick, _) => {
            let names: Vec<String> = match nick {
                Some(n) if tool.pem_of(n).is_some() => vec![n.clone()],
                Some(_) => Vec::new(),
                None => tool.nicknames(),
            };
            if names.is_empty() {
                return step(Status::Unchanged, "no lynxio CA in it".into());
            }
            if opts.dry_run {
                return step(Status::WouldChange, format!("would remove {names:?}"));
            }
            for name in &names {
                if let Err(e) = tool.delete(name) {
                    return step(Status::Failed, e);
                }
            }
            step(Status::Changed, format!("removed {names:?}{restart}"))
        }
    }
}

/// Two PEM texts of the same certificate (line endings and trailing space aside).
fn same_pem(a: &str, b: &str) -> bool {
    let norm = |s: &str| -> String { s.split_whitespace().collect() };
    norm(a) == norm(b)
}

/// `certutil` on one database.
struct Certutil<'a> {
    exe: &'a Path,
    db: String,
}

impl Certutil<'_> {
    fn cmd(&self) -> Command {
        let mut cmd = Command::new(self.exe);
        cmd.arg("-d").arg(&self.db);
        cmd
    }

    /// The PEM stored under `nick`, if any.
    fn pem_of(&self, nick: &str) -> Option<String> {
        let out = self
            .cmd()
            .args(["-L", "-a", "-n", nick])
            .stdin(std::process::Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        (out.status.success() && text.contains("BEGIN CERTIFICATE")).then(|| text.into_owned())
    }

    /// Every `lynxio CA…` nickname in the database.
    fn nicknames(&self) -> Vec<String> {
        let Ok(out) = self
            .cmd()
            .arg("-L")
            .stdin(std::process::Stdio::null())
            .output()
        else {
            return Vec::new();
        };
        let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with(NICK_PREFIX))
            // "<nickname>   <trust flags>": the flags are the last word.
            .filter_map(|l| l.trim_end().rsplit_once(char::is_whitespace))
            .map(|(name, _)| name.trim_end().to_owned())
            .collect();
        names.dedup();
        names
    }

    fn add(&self, nick: &str, cert: &Path) -> Result<(), String> {
        run_command(
            self.cmd()
                .args(["-A", "-t", TRUST, "-n", nick, "-i"])
                .arg(cert),
        )
    }

    fn delete(&self, nick: &str) -> Result<(), String> {
        run_command(self.cmd().args(["-D", "-n", nick]))
    }
}
