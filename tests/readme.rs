//! README and dist/ stay true: every `lynxio` command in README's shell blocks parses (a run is
//! checked by `check-config` with the same flags, a subcommand's flags must exist in its
//! `--help`), and the service files carry what they promise (the unit's hardening and reload,
//! the Dockerfile's stages, user and volume, HAProxy's TCP leastconn with health checks, the
//! Kubernetes objects), with the lynxio arguments of each valid for `check-config`.

use std::path::{Path, PathBuf};
use std::process::Command;

const SUBCOMMANDS: &[&str] = &["ca", "har", "check-config", "completions", "man"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn work_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lynxio-readme-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn lynxio(dir: &Path, args: &[String]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lynxio"))
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env_remove("XDG_DATA_HOME")
        .output()
        .expect("run lynxio")
}

/// Files a command names are made to exist (a PEM certificate, a config, credentials), so
/// `check-config` judges the flags, not this machine.
fn provide_files(dir: &Path, args: &[String]) {
    let mut pem = None;
    for (i, arg) in args.iter().enumerate() {
        let Some(flag) = i.checked_sub(1).map(|p| args[p].as_str()) else {
            continue;
        };
        let path = dir.join(arg);
        if path.exists() {
            continue;
        }
        match flag {
            "--upstream-ca" => {
                let pem = pem.get_or_insert_with(|| {
                    let out = lynxio(
                        dir,
                        &[
                            "ca".into(),
                            "export".into(),
                            "--ca-dir".into(),
                            "pem-ca".into(),
                        ],
                    );
                    out.stdout
                });
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).expect("mkdir");
                }
                std::fs::write(&path, &pem).expect("write pem");
            }
            "--config" => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).expect("mkdir");
                }
                std::fs::write(&path, "").expect("write config");
            }
            "--auth-file" => std::fs::write(&path, "user:pass\n").expect("write auth"),
            _ => {}
        }
    }
}

/// Check one `lynxio ARGS` command.
fn check(dir: &Path, line: &str, args: Vec<String>) {
    let sub = args.first().cloned().unwrap_or_default();
    let sub = sub.as_str();
    if matches!(sub, "--version" | "--help") {
        let out = lynxio(dir, &args);
        assert!(out.status.success(), "README: {line}");
        return;
    }
    if SUBCOMMANDS.contains(&sub) {
        // The subcommand path (words before the first flag) and every flag must exist.
        let words: Vec<String> = args
            .iter()
            .take_while(|a| !a.starts_with('-'))
            .cloned()
            .collect();
        let words: Vec<String> = words
            .into_iter()
            .take_while(|w| {
                SUBCOMMANDS.contains(&w.as_str())
                    || ["export", "path", "install", "uninstall"].contains(&w.as_str())
            })
            .collect();
        let mut help_args = words.clone();
        help_args.push("--help".into());
        let out = lynxio(dir, &help_args);
        assert!(out.status.success(), "README: {line}: {help_args:?} fails");
        let help = String::from_utf8_lossy(&out.stdout);
        for flag in args.iter().filter(|a| a.starts_with("--")) {
            let name = flag.split('=').next().unwrap_or_default();
            assert!(
                help.contains(name),
                "README: {line}: {name} is not a flag of {words:?}"
            );
        }
        return;
    }
    let mut args = args;
    if sub == "run" {
        args.remove(0);
    }
    provide_files(dir, &args);
    let mut cmd = vec!["check-config".to_owned()];
    cmd.extend(args);
    let out = lynxio(dir, &cmd);
    assert!(
        out.status.success(),
        "README: {line}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Shell words of a command segment: whitespace-split, quotes removed.
fn words(segment: &str) -> Vec<String> {
    segment
        .split_whitespace()
        .map(|w| w.trim_matches(|c| c == '\'' || c == '"').to_owned())
        .collect()
}

#[test]
fn every_lynxio_command_in_readme_parses() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let dir = work_dir("commands");
    let mut in_sh = false;
    let mut logical = String::new();
    let mut checked = 0;
    for line in readme.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            in_sh = trimmed == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        if let Some(cont) = line.strip_suffix('\\') {
            logical.push_str(cont);
            continue;
        }
        logical.push_str(line);
        let full = std::mem::take(&mut logical);
        // Drop a trailing comment, then look at each command of a && / | / > chain.
        let code = full.split(" #").next().unwrap_or_default();
        for segment in code.split("&&").flat_map(|s| s.split('|')) {
            let segment = segment.split('>').next().unwrap_or_default();
            let w = words(segment);
            if w.first().is_some_and(|c| c == "docker") && w.get(1).is_some_and(|c| c == "build") {
                continue;
            }
            let start = if let Some(i) = w.iter().position(|x| x == "lynxio") {
                i + 1
            } else if let Some(i) = w.windows(3).position(|x| x == ["run", "--release", "--"]) {
                i + 3
            } else {
                continue;
            };
            check(&dir, &full, w[start..].to_vec());
            checked += 1;
        }
    }
    assert!(
        checked >= 15,
        "only {checked} lynxio commands found in README"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn systemd_unit() {
    let unit = read("dist/lynxio.service");
    for line in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "StateDirectory=lynxio",
        "AmbientCapabilities=\n",
        "LimitNOFILE=",
        "RestartPreventExitStatus=2",
    ] {
        assert!(unit.contains(line), "lynxio.service lacks {line:?}");
    }
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let mut args = words(exec);
    assert_eq!(args.remove(0), "/usr/local/bin/lynxio");
    let dir = work_dir("unit");
    for a in &mut args {
        *a = a
            .replace("/etc/lynxio/", "etc/")
            .replace("/var/lib/lynxio", "state");
    }
    check(&dir, exec, args);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dockerfile() {
    let file = read("Dockerfile");
    assert_eq!(
        file.lines().filter(|l| l.starts_with("FROM ")).count(),
        2,
        "multi-stage"
    );
    let user = file
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER");
    assert!(
        !user.starts_with('0') && !user.starts_with("root"),
        "runs as {user}"
    );
    assert!(file.contains("VOLUME [\"/var/lib/lynxio\"]"));
    assert!(file.contains("--locked"));
    let cmd = file
        .lines()
        .find_map(|l| l.strip_prefix("CMD "))
        .expect("CMD");
    let args: Vec<String> = serde_json::from_str::<Vec<String>>(cmd)
        .expect("CMD as JSON")
        .into_iter()
        .map(|a| a.replace("/var/lib/lynxio", "state"))
        .collect();
    let dir = work_dir("docker");
    check(&dir, cmd, args);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn haproxy_and_kubernetes() {
    let cfg = read("dist/haproxy.cfg");
    for line in [
        "mode tcp",
        "balance leastconn",
        "option httpchk GET /healthz",
    ] {
        assert!(cfg.contains(line), "haproxy.cfg lacks {line:?}");
    }
    if Path::new("/usr/sbin/haproxy").exists() {
        let out = Command::new("/usr/sbin/haproxy")
            .args(["-c", "-q", "-f"])
            .arg(root().join("dist/haproxy.cfg"))
            .output()
            .expect("run haproxy -c");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!("SKIPPED haproxy -c: haproxy not installed");
    }
    let k8s = read("dist/k8s.yaml");
    for line in ["kind: Deployment", "kind: Service", "secretName: lynxio-ca"] {
        assert!(k8s.contains(line), "k8s.yaml lacks {line:?}");
    }
    let args: Vec<String> = k8s
        .lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("- --"))
        .map(|a| {
            format!("--{a}")
                .replace("$(PROXY_AUTH)", "user:pass")
                .replace("$(ADMIN_TOKEN)", "token")
                .replace("/var/lib/lynxio", "state")
        })
        .collect();
    assert!(args.len() >= 5, "{args:?}");
    let dir = work_dir("k8s");
    check(&dir, "k8s.yaml args", args);
    let _ = std::fs::remove_dir_all(&dir);
}
