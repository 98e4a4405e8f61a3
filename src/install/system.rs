//! The system trust store. Which one is found from the layout under the system root:
//! Debian/Ubuntu (`usr/local/share/ca-certificates/lynxio-ca.crt`, then
//! `update-ca-certificates`, pointed at the root's directories so a temporary layout works
//! too), Fedora/RHEL (`etc/pki/ca-trust/source/anchors/lynxio-ca.pem`, then
//! `update-ca-trust extract`) and Arch and other p11-kit systems
//! (`etc/ca-certificates/trust-source/anchors/lynxio-ca.crt`, then `update-ca-trust` or
//! `trust extract-compat`). The anchor file is written atomically and compared first, so a
//! second install changes nothing; uninstall removes it and refreshes.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{CaCert, Mode, Options, Status, Step, find_program, is_root, run_command, sudo_hint};

/// The name of the anchor file (extension per layout).
const ANCHOR_STEM: &str = "lynxio-ca";

/// A system store layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Debian,
    Fedora,
    Arch,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::Debian => "Debian/Ubuntu",
            Layout::Fedora => "Fedora/RHEL",
            Layout::Arch => "Arch/p11-kit",
        }
    }

    /// The anchor directory, relative to the system root.
    fn anchor_dir(self) -> &'static str {
        match self {
            Layout::Debian => "usr/local/share/ca-certificates",
            Layout::Fedora => "etc/pki/ca-trust/source/anchors",
            Layout::Arch => "etc/ca-certificates/trust-source/anchors",
        }
    }

    fn anchor_file(self) -> String {
        match self {
            Layout::Debian | Layout::Arch => format!("{ANCHOR_STEM}.crt"),
            Layout::Fedora => format!("{ANCHOR_STEM}.pem"),
        }
    }
}

/// The layout under `root`: the first whose anchor directory exists (Debian's may be created,
/// its parent `usr/local/share` existing with `etc/debian_version`).
pub fn detect(root: &Path) -> Option<Layout> {
    let debian_marker = root.join("etc/debian_version").exists();
    [Layout::Debian, Layout::Fedora, Layout::Arch]
        .into_iter()
        .find(|l| root.join(l.anchor_dir()).is_dir() || (*l == Layout::Debian && debian_marker))
}

/// Install or uninstall in the system store under `opts.system_root`.
pub fn apply(ca: &CaCert, opts: &Options) -> Step {
    let root = &opts.system_root;
    let Some(layout) = detect(root) else {
        return Step {
            status: Status::Skipped,
            store: "system store".into(),
            detail: format!(
                "no known layout under {} (Debian/Ubuntu, Fedora/RHEL, Arch); trust {} by hand",
                root.display(),
                ca.path.display()
            ),
        };
    };
    let store = format!("system store ({})", layout.name());
    let anchor = root.join(layout.anchor_dir()).join(layout.anchor_file());
    let step = |status, detail: String| Step {
        status,
        store: store.clone(),
        detail,
    };
    let current = match std::fs::read(&anchor) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => {
            return step(
                Status::Failed,
                format!("cannot read {}: {e}", anchor.display()),
            );
        }
    };
    let wanted = match opts.mode {
        Mode::Install => match &ca.pem {
            Some(pem) => Some(pem.as_bytes()),
            None => return step(Status::Failed, "no CA certificate to install".into()),
        },
        Mode::Uninstall => None,
    };
    if current.as_deref() == wanted {
        let detail = match wanted {
            Some(_) => format!("already trusted ({})", anchor.display()),
            None => format!("not installed ({} absent)", anchor.display()),
        };
        return step(Status::Unchanged, detail);
    }
    let action = match (wanted, &current) {
        (Some(_), None) => format!("add {}", anchor.display()),
        (Some(_), Some(_)) => format!("replace {} (a different CA)", anchor.display()),
        (None, _) => format!("remove {}", anchor.display()),
    };
    let refresh = refresh_command(layout, root, opts.mode);
    let refresh_text = refresh.as_ref().map_or_else(
        |why| why.clone(),
        |cmd| format!("run {}", cmd.get_program().to_string_lossy()),
    );
    if opts.dry_run {
        return step(
            Status::WouldChange,
            format!("would {action}, then {refresh_text}"),
        );
    }
    if root == Path::new("/") && !is_root() {
        return step(
            Status::Failed,
            format!("needs root to {action}; run: {}", sudo_hint(opts)),
        );
    }
    let written = match wanted {
        Some(pem) => write_anchor(&anchor, pem),
        None => std::fs::remove_file(&anchor),
    };
    if let Err(e) = written {
        let hint = if e.kind() == ErrorKind::PermissionDenied {
            format!("; run: {}", sudo_hint(opts))
        } else {
            String::new()
        };
        return step(Status::Failed, format!("cannot {action}: {e}{hint}"));
    }
    let past = match opts.mode {
        Mode::Install if current.is_some() => "replaced",
        Mode::Install => "added",
        Mode::Uninstall => "removed",
    };
    match refresh {
        Ok(mut cmd) => match run_command(&mut cmd) {
            Ok(()) => step(
                Status::Changed,
                format!(
                    "{past} {}; {} ran",
                    anchor.display(),
                    refresh_text.trim_start_matches("run ")
                ),
            ),
            Err(e) => step(
                Status::Failed,
                format!("{past} {}, but {e}", anchor.display()),
            ),
        },
        Err(why) => step(
            Status::Changed,
            format!("{past} {}; {why}", anchor.display()),
        ),
    }
}

/// The command that rebuilds the store's bundles from its anchors, or why none is run.
fn refresh_command(layout: Layout, root: &Path, mode: Mode) -> Result<Command, String> {
    let fake_root = root != Path::new("/");
    match layout {
        Layout::Debian => {
            let tool = find_program("update-ca-certificates")
                .ok_or("update-ca-certificates not found (install ca-certificates)")?;
            let mut cmd = Command::new(tool);
            if mode == Mode::Uninstall {
                cmd.arg("--fresh"); // drop the link to the removed file too
            }
            if fake_root {
                let at = |p: &str| root.join(p).into_os_string();
                cmd.arg("--certsconf")
                    .arg(at("etc/ca-certificates.conf"))
                    .arg("--certsdir")
                    .arg(at("usr/share/ca-certificates"))
                    .arg("--localcertsdir")
                    .arg(at(layout.anchor_dir()))
                    .arg("--etccertsdir")
                    .arg(at("etc/ssl/certs"))
                    .arg("--hooksdir")
                    .arg(at("etc/ca-certificates/update.d"));
            }
            Ok(cmd)
        }
        _ if fake_root => Err(format!(
            "the store's refresh was not run (--system-root {} is not /)",
            root.display()
        )),
        Layout::Fedora => {
            let tool = find_program("update-ca-trust")
                .ok_or("update-ca-trust not found (install ca-certificates)")?;
            let mut cmd = Command::new(tool);
            cmd.arg("extract");
            Ok(cmd)
        }
        Layout::Arch => {
            if let Some(tool) = find_program("update-ca-trust") {
                return Ok(Command::new(tool));
            }
            let tool = find_program("trust").ok_or("neither update-ca-trust nor trust found")?;
            let mut cmd = Command::new(tool);
            cmd.arg("extract-compat");
            Ok(cmd)
        }
    }
}

/// Write the anchor through a temporary file and a rename (mode 0644: everyone reads trust).
fn write_anchor(path: &Path, pem: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        file.write_all(pem)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
