//! Rules: which CONNECT targets lynxio intercepts. Rules are data, compiled once at start into
//! a [`RuleSet`] the workers share read-only; a decision is a first-match-wins scan over host
//! globs and ports, with "passthrough" as the default. Sources, in order: the `[[rule]]` tables
//! of the config file, then one `intercept` rule per `--mitm GLOB`. Globs (`*` any run of
//! characters, `?` one character) match the lowercased host — DNS names and IP literals alike
//! (`*` matches everything). The rules issue extends the match keys and actions; the shape of a
//! rule in TOML is already the final one:
//!
//! ```toml
//! [[rule]]
//! name = "api"
//! match = { host = "*.example.com", port = 443 }
//! action = "intercept"     # or "passthrough"
//! ```

use serde::Deserialize;
use wildmatch::WildMatch;

/// What to do with a CONNECT target's TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Terminate TLS with a minted certificate and run the requests through the pipeline.
    Intercept,
    /// Relay the encrypted bytes untouched.
    Passthrough,
}

/// One `[[rule]]` table as written in the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Shown in logs; optional.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(rename = "match")]
    pub matches: MatchSpec,
    pub action: Action,
}

/// The match keys of a rule; an absent key matches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    /// Host glob, matched case-insensitively.
    #[serde(default)]
    pub host: Option<String>,
    /// Exact port.
    #[serde(default)]
    pub port: Option<u16>,
}

/// A rule that cannot be compiled.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("rule {index} ({name}): empty host glob")]
    EmptyHost { index: usize, name: String },
    #[error("rule {index} ({name}): port 0 never matches")]
    PortZero { index: usize, name: String },
}

#[derive(Debug)]
struct Rule {
    name: String,
    host: Option<WildMatch>,
    port: Option<u16>,
    action: Action,
}

/// Compiled rules, first match wins; no match → [`Action::Passthrough`].
#[derive(Debug, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

/// A decision and the rule that made it (`None`: the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'a> {
    pub action: Action,
    pub rule: Option<&'a str>,
}

impl RuleSet {
    /// Compiles the config file's rules, then one intercept rule per `--mitm` glob.
    pub fn compile(specs: &[RuleSpec], mitm_globs: &[String]) -> Result<RuleSet, RuleError> {
        let mut rules = Vec::with_capacity(specs.len() + mitm_globs.len());
        for (i, spec) in specs.iter().enumerate() {
            let index = i + 1;
            let name = spec.name.clone().unwrap_or_else(|| format!("#{index}"));
            if spec.matches.host.as_deref().is_some_and(str::is_empty) {
                return Err(RuleError::EmptyHost { index, name });
            }
            if spec.matches.port == Some(0) {
                return Err(RuleError::PortZero { index, name });
            }
            rules.push(Rule {
                host: spec.matches.host.as_deref().map(glob),
                port: spec.matches.port,
                action: spec.action,
                name,
            });
        }
        for (i, g) in mitm_globs.iter().enumerate() {
            let index = specs.len() + i + 1;
            let name = format!("--mitm {g}");
            if g.is_empty() {
                return Err(RuleError::EmptyHost { index, name });
            }
            rules.push(Rule {
                host: Some(glob(g)),
                port: None,
                action: Action::Intercept,
                name,
            });
        }
        Ok(RuleSet { rules })
    }

    /// Whether any rule can intercept (decides whether the CA must be loaded at start).
    pub fn may_intercept(&self) -> bool {
        self.first_intercept_rule().is_some()
    }

    /// The name of the first rule whose action is intercept.
    pub fn first_intercept_rule(&self) -> Option<&str> {
        self.rules
            .iter()
            .find(|r| r.action == Action::Intercept)
            .map(|r| r.name.as_str())
    }

    /// The action for a CONNECT to `host:port` (`host` as dialed: lowercased, IPv6 without
    /// brackets), first match wins.
    pub fn decide(&self, host: &str, port: u16) -> Decision<'_> {
        let host = host.trim_end_matches('.');
        for r in &self.rules {
            let host_ok = r.host.as_ref().is_none_or(|g| g.matches(host));
            let port_ok = r.port.is_none_or(|p| p == port);
            if host_ok && port_ok {
                return Decision {
                    action: r.action,
                    rule: Some(&r.name),
                };
            }
        }
        Decision {
            action: Action::Passthrough,
            rule: None,
        }
    }
}

fn glob(pattern: &str) -> WildMatch {
    WildMatch::new(&pattern.trim_end_matches('.').to_ascii_lowercase())
}

#[cfg(test)]
mod tests;
