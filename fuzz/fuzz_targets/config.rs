//! Fuzzes the config file as the proxy reads it: the input is written to a file and
//! `lynxio::config::Config::from_settings` is given `--config FILE` (so `Settings::from_file`
//! parses the TOML, `[[rule]]` tables with their lines, and every value is validated and the
//! rules compiled). Never panics; a file that TOML-parses into `Settings` is never reported as
//! unreadable or unparsable; an accepted config keeps its promises (workers 1..=1024, header
//! limits in range, at least one listener, every rule compiled). Inputs that set `auth_file`
//! are skipped: it names a file to read, and the fuzzer must not read arbitrary paths (mock
//! `file`s are only looked up, never read, at load).

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use lynxio::config::{Config, ConfigError, Settings};

fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("lynxio-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir.join("lynxio.toml")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(settings) = toml::from_str::<Settings>(text) else {
        return;
    };
    if settings.auth_file.is_some() {
        return;
    }
    let rules = settings.rule.len() + settings.mitm.len();
    std::fs::write(path(), data).expect("write config");
    let flags = Settings {
        config: Some(path().clone()),
        ..Settings::default()
    };
    let config = match Config::from_settings(flags) {
        Ok(config) => config,
        Err(e @ (ConfigError::Read { .. } | ConfigError::Parse { .. })) => {
            panic!("parsed as Settings, refused as a file: {e}")
        }
        Err(_) => return,
    };
    assert!((1..=1024).contains(&config.workers));
    assert!(!config.listen.is_empty());
    assert!((1..=lynxio::http1::MAX_HEADERS_CAP).contains(&config.head_limits.max_headers));
    assert!((1024..=1024 * 1024).contains(&config.head_limits.max_head_bytes));
    assert_eq!(config.rules.len(), rules);
});
