//! Rules: what lynxio does with a CONNECT target's TLS and with each request. Rules are data,
//! compiled once at start into a [`RuleSet`] the workers share read-only. Sources, in order:
//! the `[[rule]]` tables of the config file, then one `intercept` rule per `--mitm GLOB`.
//!
//! ```toml
//! [[rule]]
//! name = "stub-user"            # optional; "#N" (1-based index) when absent
//! match = { host = "*.example.com", port = 443, scheme = "https", method = ["GET", "HEAD"],
//!           path = "/api/user/*", header = { "x-env" = "dev" }, not = { header = { "x-real" = "1" } } }
//! action = "mock"
//! status = 200
//! headers = { "content-type" = "application/json" }
//! body = '{"id":1}'             # or: file = "fixtures/user.json" (relative to the config file)
//! ```
//!
//! **Match keys** (all optional, all must hold): `host`, `port`, `scheme` (`http`/`https`),
//! `method` (a string or a list; exact, case-sensitive), `path` (without the query), `header`
//! (name → pattern; names case-insensitive, a header matches if any of its values does) and
//! `not` (a table of the same keys, not nested; the rule matches only if it does not fully
//! match). Patterns are globs (`*` any run of characters including `/` and `.`, `?` one
//! character) or, with a `~` prefix, regexes (`regex` crate syntax; an unanchored search, so
//! anchor with `^…$`). Hosts are compared lowercased without a trailing dot (IPv6 without
//! brackets); host regexes are case-insensitive.
//!
//! **Actions.** `intercept` / `passthrough` are decided at CONNECT, first match wins, and may
//! only use `host` and `port`; a host pattern matches the CONNECT host or the TLS SNI. No
//! match: passthrough. The other actions act on requests, matched on the request as received
//! (a rewrite never changes what later rules see): the terminal ones — `block` (`status`,
//! default 403; `body`), `mock` (`status`, default 200; `headers`; `body` or `file`) and
//! `redirect` (`to = "http(s)://host[:port]"`, `rewrite_host`) — first match wins; the
//! non-terminal ones — `rewrite` (`set_request_headers`, `remove_request_headers`,
//! `set_response_headers`, `remove_response_headers`, `path_prefix = { from, to }`) and `delay`
//! (`ms`) — all apply, rewrites in file order (the pipeline applies them in that order, so a
//! later `set` of the same header wins), delays summed. A key the action does not use, an
//! unknown key, a bad pattern, header, status or `to`, or a missing `file` is a start-up error
//! naming the rule and the line.
//!
//! **Speed.** Rules are filed in a host index (exact hosts, `*.suffix` globs, host-less rules,
//! and other globs and regexes behind one `RegexSet` prefilter), so a request tests only the
//! rules that can match its host, in file order.

mod compile;
mod index;
mod pattern;
mod spec;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::http1::Headers;
use compile::{Kind, Rule};
use index::{HostIndex, Merge};
use pattern::{Cond, HostPattern, normalize_host};

pub use compile::{
    DEFAULT_BLOCK_STATUS, DEFAULT_MOCK_STATUS, FRAMING_HEADERS, MAX_DELAY_MS, MAX_NAME_LEN,
    RuleError, STATUS_RANGE,
};
pub use index::MERGE_INLINE;
pub use pattern::{MAX_PATTERN_LEN, MAX_REGEX_SIZE};
pub use spec::{RuleSpec, attach_lines, parse_rules};

/// What to do with a CONNECT target's TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Terminate TLS with a minted certificate and run the requests through the pipeline.
    Intercept,
    /// Relay the encrypted bytes untouched.
    Passthrough,
}

/// A CONNECT decision and the rule that made it (`None`: the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'a> {
    pub action: Action,
    pub rule: Option<&'a str>,
}

/// The scheme a request arrived with (`https`: inside an intercepted TLS session).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Scheme {
    Http,
    Https,
}

impl From<crate::http1::Scheme> for Scheme {
    fn from(s: crate::http1::Scheme) -> Scheme {
        match s {
            crate::http1::Scheme::Http => Scheme::Http,
            crate::http1::Scheme::Https => Scheme::Https,
        }
    }
}

/// The parts of a request rules match on.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub scheme: Scheme,
    /// Lowercased, without a trailing dot, IPv6 without brackets.
    pub host: &'a str,
    pub port: u16,
    pub method: &'a str,
    /// The path without the query, e.g. `/api/x`.
    pub path: &'a str,
    pub headers: &'a Headers,
}

/// What the rules want done with one request. The pipeline applies, in order: `delay`, then
/// the `rewrites` in order (request-side edits before forwarding, response-side edits on the
/// response), then either `terminal` (answer without an upstream; a redirect forwards to
/// another origin) or the normal forward.
#[derive(Debug, Default)]
pub struct Plan<'a> {
    /// Matched rewrite rules in file order (empty: no allocation).
    pub rewrites: Vec<&'a Rewrite>,
    /// Sum of the matched delay rules.
    pub delay: Option<Duration>,
    /// The first matching block/mock/redirect rule.
    pub terminal: Option<Terminal<'a>>,
    /// Names of the rules that acted, in file order: the first, then the others.
    first: Option<&'a Arc<str>>,
    more: Vec<&'a Arc<str>>,
}

impl Plan<'_> {
    /// Whether no rule acts on the request.
    pub fn is_noop(&self) -> bool {
        self.first.is_none()
    }

    /// The rule(s) that acted, for logs and capture: one rule's name, or `a+b+c`.
    pub fn rule_label(&self) -> Option<Arc<str>> {
        let first = self.first?;
        if self.more.is_empty() {
            return Some(Arc::clone(first));
        }
        let mut label = String::from(&**first);
        for name in &self.more {
            label.push('+');
            label.push_str(name);
        }
        Some(Arc::from(label))
    }
}

/// A request answered by a rule.
#[derive(Debug, Clone, Copy)]
pub enum Terminal<'a> {
    Block(&'a Block),
    Mock(&'a Mock),
    Redirect(&'a Redirect),
}

/// `action = "block"`: answer with `status` and a short text body.
#[derive(Debug)]
pub struct Block {
    pub status: u16,
    pub body: bytes::Bytes,
}

/// `action = "mock"`: answer with a canned response.
#[derive(Debug)]
pub struct Mock {
    pub status: u16,
    /// Lowercase names; never `content-length` or `transfer-encoding`.
    pub headers: Vec<(String, String)>,
    pub body: MockBody,
}

/// A mock's body.
#[derive(Debug)]
pub enum MockBody {
    Inline(bytes::Bytes),
    /// Resolved against the config file's folder; a regular file at start, streamed per request.
    File(PathBuf),
}

/// `action = "redirect"`: forward to another origin instead of the request's.
#[derive(Debug)]
pub struct Redirect {
    pub tls: bool,
    /// Lowercased, IPv6 without brackets.
    pub host: String,
    pub port: u16,
    /// Whether the Host header becomes [`Redirect::authority`].
    pub rewrite_host: bool,
}

impl Redirect {
    /// `host:port` (IPv6 in brackets), the port omitted when it is the scheme's default.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = if self.tls { 443 } else { 80 };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// `action = "rewrite"`: header edits and a path prefix swap. Names are lowercase.
#[derive(Debug, Default)]
pub struct Rewrite {
    pub set_request_headers: Vec<(String, String)>,
    pub remove_request_headers: Vec<String>,
    pub set_response_headers: Vec<(String, String)>,
    pub remove_response_headers: Vec<String>,
    /// `(from, to)`: a path starting with `from` gets `to` instead of that prefix.
    pub path_prefix: Option<(String, String)>,
}

impl Rewrite {
    /// Whether the rewrite changes nothing.
    pub fn is_empty(&self) -> bool {
        self.set_request_headers.is_empty()
            && self.remove_request_headers.is_empty()
            && self.set_response_headers.is_empty()
            && self.remove_response_headers.is_empty()
            && self.path_prefix.is_none()
    }
}

/// Compiled rules, immutable, shared as `Arc<RuleSet>` by the workers.
#[derive(Debug, Default)]
pub struct RuleSet {
    /// Every rule in file order, `--mitm` rules last.
    rules: Vec<Rule>,
    /// intercept/passthrough rules.
    tls: HostIndex,
    /// block/mock/redirect/rewrite/delay rules.
    requests: HostIndex,
    request_rules: usize,
    /// Index of the last non-terminal request rule: once a terminal matched, later candidates
    /// are tested only up to here.
    last_non_terminal: Option<u32>,
}

/// Most rules a set may hold (indices are `u32`).
pub const MAX_RULES: usize = 1_000_000;

impl RuleSet {
    /// Compiles the config file's rules (file `file`s resolved against `base_dir`, the config
    /// file's folder), then one intercept rule per `--mitm` glob.
    pub fn compile(
        specs: &[RuleSpec],
        mitm_globs: &[String],
        base_dir: &Path,
    ) -> Result<RuleSet, RuleError> {
        let total = specs.len() + mitm_globs.len();
        if total > MAX_RULES {
            return Err(RuleError {
                index: total,
                name: "all rules".to_owned(),
                line: None,
                message: format!("{total} rules (at most {MAX_RULES})"),
                from_flag: false,
            });
        }
        let mut set = RuleSet::default();
        for (i, spec) in specs.iter().enumerate() {
            set.push(compile::compile(&spec.node, i + 1, base_dir)?);
        }
        for (i, g) in mitm_globs.iter().enumerate() {
            let index = specs.len() + i + 1;
            let host = HostPattern::parse(g).map_err(|m| compile::flag_error(index, g, m))?;
            set.push(Rule {
                name: Arc::from(format!("--mitm {g}")),
                cond: Cond {
                    host: Some(host),
                    ..Cond::default()
                },
                not: None,
                kind: Kind::Tls(Action::Intercept),
            });
        }
        set.tls.finish();
        set.requests.finish();
        Ok(set)
    }

    fn push(&mut self, rule: Rule) {
        let index = u32::try_from(self.rules.len()).unwrap_or(u32::MAX);
        let host = rule.cond.host.as_ref();
        match rule.kind {
            Kind::Tls(_) => self.tls.insert(index, host, &rule.cond.methods),
            _ => {
                self.requests.insert(index, host, &rule.cond.methods);
                self.request_rules += 1;
                if !rule.kind.is_terminal() {
                    self.last_non_terminal = Some(index);
                }
            }
        }
        self.rules.push(rule);
    }

    /// Number of rules (request and CONNECT rules, `--mitm` included).
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether any rule can intercept (decides whether the CA must be loaded at start).
    pub fn may_intercept(&self) -> bool {
        self.first_intercept_rule().is_some()
    }

    /// The name of the first rule whose action is intercept.
    pub fn first_intercept_rule(&self) -> Option<&str> {
        self.rules
            .iter()
            .find(|r| matches!(r.kind, Kind::Tls(Action::Intercept)))
            .map(|r| &*r.name)
    }

    /// The CONNECT decision, first match wins, no match passthrough. `host` as dialed
    /// (lowercased, IPv6 without brackets), `sni` lowercased; a host pattern matches either.
    pub fn decide_tls(&self, host: &str, sni: Option<&str>, port: u16) -> Decision<'_> {
        let host = normalize_host(host);
        let sni = sni
            .map(normalize_host)
            .filter(|s| !s.is_empty() && *s != host);
        let mut merge = Merge::default();
        self.tls.lookup(&host, sni.as_deref(), None, &mut merge);
        for i in merge {
            let Some(rule) = self.rules.get(i as usize) else {
                continue;
            };
            if let Kind::Tls(action) = rule.kind
                && rule.cond.matches_tls(&host, sni.as_deref(), port)
                && !rule
                    .not
                    .as_ref()
                    .is_some_and(|n| n.matches_tls(&host, sni.as_deref(), port))
            {
                return Decision {
                    action,
                    rule: Some(&rule.name),
                };
            }
        }
        Decision {
            action: Action::Passthrough,
            rule: None,
        }
    }

    /// Whether any block/mock/redirect/rewrite/delay rule exists (else [`RuleSet::plan`] is
    /// always a no-op and the request path may skip it).
    pub fn has_request_rules(&self) -> bool {
        self.request_rules > 0
    }

    /// The plan for one request, matched on the request as received.
    pub fn plan<'a>(&'a self, req: &RequestView<'_>) -> Plan<'a> {
        let mut plan = Plan::default();
        if self.request_rules == 0 {
            return plan;
        }
        let host = normalize_host(req.host);
        let path = req.path.split_once('?').map_or(req.path, |(p, _)| p);
        let mut merge = Merge::default();
        self.requests
            .lookup(&host, None, Some(req.method), &mut merge);
        let mut delay = None::<Duration>;
        for i in merge {
            let Some(rule) = self.rules.get(i as usize) else {
                continue;
            };
            if plan.terminal.is_some() {
                if self.last_non_terminal.is_none_or(|last| i > last) {
                    break;
                }
                if rule.kind.is_terminal() {
                    continue;
                }
            }
            if !rule.cond.matches(req, &host, path)
                || rule
                    .not
                    .as_ref()
                    .is_some_and(|n| n.matches(req, &host, path))
            {
                continue;
            }
            match &rule.kind {
                Kind::Tls(_) => continue,
                Kind::Block(b) => plan.terminal = Some(Terminal::Block(b)),
                Kind::Mock(m) => plan.terminal = Some(Terminal::Mock(m)),
                Kind::Redirect(r) => plan.terminal = Some(Terminal::Redirect(r)),
                Kind::Rewrite(r) => plan.rewrites.push(r),
                Kind::Delay(d) => delay = Some(delay.unwrap_or_default().saturating_add(*d)),
            }
            match plan.first {
                None => plan.first = Some(&rule.name),
                Some(_) => plan.more.push(&rule.name),
            }
        }
        plan.delay = delay;
        plan
    }
}

#[cfg(test)]
mod tests;
