//! The log filter: `--log` (or the file's `log`), else `RUST_LOG`, else `info`, in tracing's
//! `EnvFilter` syntax. `EnvFilter` reads a bare word it does not know as a *target* at trace
//! level, so `--log verbose` would be accepted and silence everything else; lynxio refuses a
//! bare word that is neither a level nor one of its own targets. A bad `--log` is a startup
//! error; a bad `RUST_LOG` (which may leak in from elsewhere) is warned about and replaced by
//! `info`.

use tracing_subscriber::EnvFilter;

/// The filter when neither `--log` nor a usable `RUST_LOG` is given.
pub const DEFAULT_LOG_FILTER: &str = "info";
/// Shown with every rejected filter.
pub const LOG_FILTER_EXAMPLE: &str = "e.g. --log debug, or --log info,lynxio::access=off";
/// Level names (and tracing's numeric levels) a bare directive may be.
const LEVELS: &[&str] = &[
    "off", "error", "warn", "info", "debug", "trace", "0", "1", "2", "3", "4", "5",
];
/// The crate's own target prefix: a bare `lynxio…` directive means "that target at trace".
const OWN_TARGET: &str = "lynxio";

/// Checks `spec` and builds the filter; `Err` explains what is wrong with it (without the
/// example, which callers add).
pub fn parse_log_filter(spec: &str) -> Result<EnvFilter, String> {
    for directive in spec.split(',').map(str::trim) {
        // Directives with a level, span or field part are EnvFilter's to judge.
        if directive.is_empty() || directive.contains(['=', '[', ']', '{', '}']) {
            continue;
        }
        let is_level = LEVELS.iter().any(|l| directive.eq_ignore_ascii_case(l));
        let own_target = directive.split("::").next() == Some(OWN_TARGET);
        if !is_level && !own_target {
            return Err(format!(
                "{directive:?} is neither a level (off, error, warn, info, debug, trace) nor a \
                 lynxio target; for another crate write {directive}=LEVEL"
            ));
        }
    }
    EnvFilter::try_new(spec).map_err(|e| e.to_string())
}

/// Checks a `--log` value, for config validation: `Err` names the filter and gives an example.
pub fn check_log_flag(spec: &str) -> Result<(), String> {
    parse_log_filter(spec)
        .map(drop)
        .map_err(|why| format!("{spec:?}: {why} ({LOG_FILTER_EXAMPLE})"))
}

/// The filter to log with: `flag` if given (an error if invalid), else `rust_log` if set and
/// valid, else [`DEFAULT_LOG_FILTER`] — with a warning to print when `rust_log` was invalid.
pub fn choose_log_filter(
    flag: Option<&str>,
    rust_log: Option<&str>,
) -> Result<(EnvFilter, Option<String>), String> {
    if let Some(spec) = flag {
        check_log_flag(spec)?;
        return parse_log_filter(spec).map(|f| (f, None));
    }
    let default = || parse_log_filter(DEFAULT_LOG_FILTER);
    match rust_log.map(str::trim).filter(|s| !s.is_empty()) {
        None => default().map(|f| (f, None)),
        Some(spec) => match parse_log_filter(spec) {
            Ok(f) => Ok((f, None)),
            Err(why) => default().map(|f| {
                let warning = format!(
                    "ignoring RUST_LOG={spec:?}: {why}; logging at {DEFAULT_LOG_FILTER} \
                     ({LOG_FILTER_EXAMPLE})"
                );
                (f, Some(warning))
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_filters() {
        for spec in [
            "info",
            "DEBUG",
            "warn,lynxio::access=off",
            "lynxio=debug",
            "lynxio::proxy",
            "rustls=trace,info",
            "info,",
            "lynxio[conn{peer=1}]=debug",
        ] {
            assert!(parse_log_filter(spec).is_ok(), "{spec:?}");
        }
    }

    #[test]
    fn invalid_filters_name_the_problem() {
        for (spec, words) in [
            ("verbose", "\"verbose\" is neither a level"),
            ("info,loud", "\"loud\" is neither a level"),
            ("rustls", "rustls=LEVEL"),
            ("lynxio=loud", ""),
        ] {
            let err = check_log_flag(spec).expect_err(spec);
            assert!(err.contains(words), "{spec:?}: {err}");
            assert!(err.contains(&format!("{spec:?}")), "{spec:?}: {err}");
            assert!(err.contains("--log debug"), "{spec:?}: {err}");
        }
    }

    #[test]
    fn flag_wins_and_a_bad_rust_log_falls_back_with_a_warning() {
        assert!(choose_log_filter(Some("verbose"), None).is_err());
        assert!(choose_log_filter(Some("verbose"), Some("debug")).is_err());
        let (_, warning) = choose_log_filter(Some("debug"), Some("verbose")).expect("flag");
        assert_eq!(warning, None, "RUST_LOG is not read when --log is given");
        let (filter, warning) = choose_log_filter(None, Some("verbose")).expect("fallback");
        let warning = warning.expect("a warning for a bad RUST_LOG");
        assert!(warning.contains("RUST_LOG=\"verbose\""), "{warning}");
        assert_eq!(filter.to_string(), "info");
        let (filter, warning) = choose_log_filter(None, Some("lynxio=debug")).expect("env");
        assert_eq!(
            (filter.to_string(), warning),
            ("lynxio=debug".to_owned(), None)
        );
        let (filter, _) = choose_log_filter(None, Some("  ")).expect("empty env");
        assert_eq!(filter.to_string(), "info");
    }
}
