//! `lynxio ca install` / `ca uninstall` against a temporary system layout (`--system-root`) and
//! temporary NSS databases (`--home`): the real `update-ca-certificates` rebuilds the fake
//! root's bundle, the real `certutil` edits databases made with `certutil -N`. Install adds the
//! CA everywhere and reports it, a second install changes nothing, `--dry-run` changes nothing,
//! uninstall removes it again. Tests that need a tool say so and skip when it is missing
//! (.ci/run installs both).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Temp(PathBuf);

impl Temp {
    fn new(name: &str) -> Temp {
        let dir = std::env::temp_dir().join(format!("lynxio-trust-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Temp(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
    fn s(&self, sub: &str) -> String {
        self.0.join(sub).to_str().expect("utf-8 path").to_owned()
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn have(tool: &str) -> bool {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .any(|d| Path::new(d).join(tool).exists())
}

fn lynxio(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lynxio"))
        .args(args)
        .output()
        .expect("run lynxio")
}

fn ok(args: &[&str]) -> String {
    let out = lynxio(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: exit {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A Debian-like root: the directories `update-ca-certificates` reads and writes.
fn debian_root(t: &Temp) -> String {
    for dir in [
        "root/usr/share/ca-certificates",
        "root/usr/local/share/ca-certificates",
        "root/etc/ssl/certs",
    ] {
        std::fs::create_dir_all(t.path().join(dir)).expect("mkdir");
    }
    // One distribution CA, as on any real system (with none, update-ca-certificates leaves the
    // old bundle in place).
    let other = ok(&["ca", "export", "--ca-dir", &t.s("distro-ca")]);
    std::fs::create_dir_all(t.path().join("root/usr/share/ca-certificates/distro")).expect("mkdir");
    std::fs::write(
        t.path()
            .join("root/usr/share/ca-certificates/distro/distro.crt"),
        other,
    )
    .expect("distro CA");
    std::fs::write(
        t.path().join("root/etc/ca-certificates.conf"),
        "distro/distro.crt\n",
    )
    .expect("conf");
    std::fs::write(t.path().join("root/etc/debian_version"), "12\n").expect("marker");
    t.s("root")
}

fn nss_db(dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir nssdb");
    let out = Command::new("certutil")
        .args(["-N", "--empty-password", "-d"])
        .arg(format!("sql:{}", dir.display()))
        .output()
        .expect("run certutil -N");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn nss_list(dir: &Path) -> String {
    let out = Command::new("certutil")
        .args(["-L", "-d"])
        .arg(format!("sql:{}", dir.display()))
        .output()
        .expect("run certutil -L");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The base64 body of a PEM (what a bundle holds, whatever its line endings).
fn pem_body(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

fn bundle_has(root: &str, pem: &str) -> bool {
    let bundle = Path::new(root).join("etc/ssl/certs/ca-certificates.crt");
    let text = std::fs::read_to_string(bundle).unwrap_or_default();
    let joined: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    joined.contains(&pem_body(pem))
}

#[test]
fn install_and_uninstall_debian_and_nss() {
    if !have("update-ca-certificates") || !have("certutil") {
        eprintln!(
            "SKIPPED: needs update-ca-certificates (ca-certificates) and certutil (libnss3-tools); \
             .ci/run installs them"
        );
        return;
    }
    let t = Temp::new("debian");
    let root = debian_root(&t);
    let home = t.s("home");
    let chromium = t.path().join("home/.pki/nssdb");
    let firefox = t.path().join("home/.mozilla/firefox/abcd.default-release");
    nss_db(&chromium);
    nss_db(&firefox);
    let ca_dir = t.s("ca");
    let args = |extra: &[&'static str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "ca",
            "install",
            "--ca-dir",
            &ca_dir,
            "--system-root",
            &root,
            "--home",
            &home,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |v: Vec<String>| ok(&v.iter().map(String::as_str).collect::<Vec<_>>());
    let anchor = Path::new(&root).join("usr/local/share/ca-certificates/lynxio-ca.crt");

    // Dry run: says what it would do, does nothing (the CA is not even created).
    let out = run(args(&["--dry-run"]));
    assert_eq!(out.matches("would change").count(), 3, "{out}");
    assert!(!anchor.exists());
    assert!(
        !Path::new(&ca_dir).join("ca.pem").exists(),
        "dry run created the CA"
    );
    assert!(!nss_list(&chromium).contains("lynxio CA"));

    // Install: the CA is created, and every store changes.
    let out = run(args(&[]));
    let pem = std::fs::read_to_string(Path::new(&ca_dir).join("ca.pem")).expect("ca.pem");
    assert_eq!(out.matches("changed  ").count(), 3, "{out}");
    assert!(out.contains("update-ca-certificates ran"), "{out}");
    assert_eq!(std::fs::read_to_string(&anchor).expect("anchor"), pem);
    assert!(bundle_has(&root, &pem), "the bundle lacks the CA");
    for db in [&chromium, &firefox] {
        let list = nss_list(db);
        let line = list
            .lines()
            .find(|l| l.starts_with("lynxio CA"))
            .unwrap_or_else(|| panic!("{list}"));
        assert!(line.trim_end().ends_with("C,,"), "{line}");
    }

    // Again: nothing changes.
    let out = run(args(&[]));
    assert_eq!(out.matches("unchanged").count(), 3, "{out}");

    // Uninstall (dry run first), then again.
    let mut un = args(&[]);
    un[1] = "uninstall".into();
    let mut dry = un.clone();
    dry.push("--dry-run".into());
    let out = run(dry);
    assert_eq!(out.matches("would change").count(), 3, "{out}");
    assert!(anchor.exists());
    let out = run(un.clone());
    assert_eq!(out.matches("changed  ").count(), 3, "{out}");
    assert!(!anchor.exists());
    assert!(!bundle_has(&root, &pem), "the bundle still has the CA");
    for db in [&chromium, &firefox] {
        assert!(!nss_list(db).contains("lynxio CA"), "{}", nss_list(db));
    }
    let out = run(un);
    assert_eq!(out.matches("unchanged").count(), 3, "{out}");

    // --only nss leaves the system store alone.
    let out = run(args(&["--only", "nss"]));
    assert!(!out.contains("system store"), "{out}");
    assert!(!anchor.exists());
    assert!(nss_list(&chromium).contains("lynxio CA"));
}

/// Fedora's layout: the anchor goes into etc/pki/ca-trust/source/anchors; under a
/// `--system-root` that is not `/` the refresh is reported as not run. No NSS database in the
/// home: reported as skipped, and certutil is not needed.
#[test]
fn fedora_layout_and_nothing_in_home() {
    let t = Temp::new("fedora");
    std::fs::create_dir_all(t.path().join("root/etc/pki/ca-trust/source/anchors")).expect("mkdir");
    std::fs::create_dir_all(t.path().join("home")).expect("mkdir");
    let (root, home, ca_dir) = (t.s("root"), t.s("home"), t.s("ca"));
    let base = ["--ca-dir", &ca_dir, "--system-root", &root, "--home", &home];
    let out = ok(&[&["ca", "install"][..], &base].concat());
    assert!(out.contains("system store (Fedora/RHEL)"), "{out}");
    assert!(out.contains("refresh was not run"), "{out}");
    assert!(out.contains("skipped") && out.contains("NSS"), "{out}");
    let anchor = t
        .path()
        .join("root/etc/pki/ca-trust/source/anchors/lynxio-ca.pem");
    let pem = std::fs::read_to_string(t.path().join("ca/ca.pem")).expect("ca.pem");
    assert_eq!(std::fs::read_to_string(&anchor).expect("anchor"), pem);
    let out = ok(&[&["ca", "uninstall"][..], &base].concat());
    assert!(out.contains("removed"), "{out}");
    assert!(!anchor.exists());

    // No known layout: skipped with the manual way, exit 0.
    let empty = t.s("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let out = ok(&[
        "ca",
        "install",
        "--ca-dir",
        &ca_dir,
        "--system-root",
        &empty,
        "--only",
        "system",
    ]);
    assert!(out.contains("no known layout"), "{out}");
}
