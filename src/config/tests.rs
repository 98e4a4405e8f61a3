//! Flags over the file over defaults, validation errors, and the parsers of list flags.

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
    assert!(err.contains("admin-token") || err.contains("admin_token") || err.contains("token"));
    let guarded = Settings {
        admin: Some("0.0.0.0:9000".parse().unwrap()),
        admin_token: Some("t".into()),
        ..Settings::default()
    };
    assert!(Config::from_settings(guarded).is_ok());
    let file: Settings =
        toml::from_str("capture = \"-\"\ncapture_bodies = 64\nlog_format = \"json\"\n").unwrap();
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
