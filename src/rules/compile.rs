//! Compiling one raw `[[rule]]` table into a [`Rule`]: type checks, key checks (unknown keys,
//! keys the action does not use, match keys a CONNECT rule cannot see), pattern and regex
//! compilation, header and status validation, `file` resolution and `to` parsing. Every error
//! is a [`RuleError`] naming the rule's index and name and, when the source was seen, the line
//! of the offending key.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::pattern::{Cond, HostPattern, Pattern};
use super::spec::{Node, NodeValue};
use super::{Action, Block, Mock, MockBody, Redirect, Rewrite, Scheme};
use crate::http1::{Method, Target, parse_target};

/// Longest rule name.
pub const MAX_NAME_LEN: usize = 128;
/// Longest `delay` (`ms`).
pub const MAX_DELAY_MS: u64 = 600_000;
/// Status codes a `mock` or `block` rule may answer with.
pub const STATUS_RANGE: std::ops::RangeInclusive<i64> = 200..=599;
/// Default status of a `block` rule.
pub const DEFAULT_BLOCK_STATUS: u16 = 403;
/// Default status of a `mock` rule.
pub const DEFAULT_MOCK_STATUS: u16 = 200;
/// Headers a rule may not set or remove: lynxio frames bodies and manages each connection
/// itself (body framing, hop-by-hop fields, the upgrade handshake), so a rule can never make a
/// message say something about its framing or connection that is not true.
pub const FRAMING_HEADERS: [&str; 9] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
];

/// A rule that cannot be compiled: which one, where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// 1-based position among all rules (config file rules first, then `--mitm` globs).
    pub index: usize,
    /// The rule's name (`#N` when it has none, `--mitm GLOB` for a flag).
    pub name: String,
    /// 1-based line in the config file, when known (see [`attach_lines`](super::attach_lines)).
    pub line: Option<u32>,
    /// The problem.
    pub message: String,
    /// The rule came from a `--mitm` flag, not from the config file.
    pub from_flag: bool,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        write!(f, "rule {} ({}): {}", self.index, self.name, self.message)
    }
}

impl std::error::Error for RuleError {}

/// What a compiled rule does.
#[derive(Debug)]
pub(super) enum Kind {
    Tls(Action),
    Block(Block),
    Mock(Mock),
    Redirect(Redirect),
    Rewrite(Rewrite),
    Delay(Duration),
}

impl Kind {
    /// Block, mock and redirect answer the request; the first matching one wins.
    pub(super) fn is_terminal(&self) -> bool {
        matches!(self, Kind::Block(_) | Kind::Mock(_) | Kind::Redirect(_))
    }
}

/// A compiled rule.
#[derive(Debug)]
pub(super) struct Rule {
    pub(super) name: Arc<str>,
    pub(super) cond: Cond,
    pub(super) not: Option<Cond>,
    pub(super) kind: Kind,
}

/// The `action` values and the keys (beyond `name`, `match`, `action`) each one takes.
const ACTIONS: [(&str, &[&str]); 7] = [
    ("intercept", &[]),
    ("passthrough", &[]),
    ("block", &["status", "body"]),
    ("mock", &["status", "headers", "body", "file"]),
    ("redirect", &["to", "rewrite_host"]),
    (
        "rewrite",
        &[
            "set_request_headers",
            "remove_request_headers",
            "set_response_headers",
            "remove_response_headers",
            "path_prefix",
        ],
    ),
    ("delay", &["ms"]),
];

const MATCH_KEYS: [&str; 7] = ["host", "port", "scheme", "method", "path", "header", "not"];
/// The only match keys a CONNECT-time rule can evaluate.
const TLS_MATCH_KEYS: [&str; 3] = ["host", "port", "not"];

/// The rule being compiled, for error messages.
struct Ctx<'a> {
    index: usize,
    name: &'a str,
    line: Option<u32>,
}

impl Ctx<'_> {
    fn err(&self, node: Option<&Node>, message: impl Into<String>) -> RuleError {
        RuleError {
            index: self.index,
            name: self.name.to_owned(),
            line: node.and_then(|n| n.line).or(self.line),
            message: message.into(),
            from_flag: false,
        }
    }

    fn str<'n>(&self, key: &str, node: &'n Node) -> Result<&'n str, RuleError> {
        match &node.value {
            NodeValue::Value(toml::Value::String(s)) => Ok(s),
            _ => Err(self.expected(key, "a string", node)),
        }
    }

    fn int(&self, key: &str, node: &Node) -> Result<i64, RuleError> {
        match &node.value {
            NodeValue::Value(toml::Value::Integer(i)) => Ok(*i),
            _ => Err(self.expected(key, "an integer", node)),
        }
    }

    fn bool(&self, key: &str, node: &Node) -> Result<bool, RuleError> {
        match &node.value {
            NodeValue::Value(toml::Value::Boolean(b)) => Ok(*b),
            _ => Err(self.expected(key, "a boolean", node)),
        }
    }

    fn table<'n>(&self, key: &str, node: &'n Node) -> Result<&'n [(String, Node)], RuleError> {
        match &node.value {
            NodeValue::Table(entries) => Ok(entries),
            _ => Err(self.expected(key, "a table", node)),
        }
    }

    /// An array of strings.
    fn strings<'n>(&self, key: &str, node: &'n Node) -> Result<Vec<&'n str>, RuleError> {
        let bad = || self.expected(key, "an array of strings", node);
        match &node.value {
            NodeValue::Value(toml::Value::Array(items)) => {
                items.iter().map(|v| v.as_str().ok_or_else(bad)).collect()
            }
            _ => Err(bad()),
        }
    }

    /// A table of strings.
    fn string_table<'n>(
        &self,
        key: &str,
        node: &'n Node,
    ) -> Result<Vec<(&'n str, &'n str, &'n Node)>, RuleError> {
        self.table(key, node)?
            .iter()
            .map(|(k, v)| Ok((k.as_str(), self.str(&format!("{key}.{k}"), v)?, v)))
            .collect()
    }

    fn expected(&self, key: &str, what: &str, node: &Node) -> RuleError {
        self.err(
            Some(node),
            format!("`{key}` must be {what}, not {}", node.type_name()),
        )
    }

    /// A header name to set or match: a token, returned lowercased.
    fn header_name(&self, key: &str, name: &str, node: &Node) -> Result<String, RuleError> {
        if is_token(name) {
            Ok(name.to_ascii_lowercase())
        } else {
            Err(self.err(Some(node), format!("`{key}`: bad header name {name:?}")))
        }
    }

    /// A table of headers to set, in written order; a name given twice (in any case) is an
    /// error.
    fn header_table(&self, key: &str, node: &Node) -> Result<Vec<(String, String)>, RuleError> {
        let mut out: Vec<(String, String)> = Vec::new();
        for entry in self.string_table(key, node)? {
            let (name, value) = self.header(key, entry)?;
            if out.iter().any(|(n, _)| *n == name) {
                return Err(self.err(Some(entry.2), format!("`{key}`: {name} given twice")));
            }
            out.push((name, value));
        }
        Ok(out)
    }

    /// A header to set: a token name (lowercased) and a value without CR, LF or NUL.
    fn header(
        &self,
        key: &str,
        (name, value, node): (&str, &str, &Node),
    ) -> Result<(String, String), RuleError> {
        let name = self.not_framing(key, self.header_name(key, name, node)?, node)?;
        if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return Err(self.err(
                Some(node),
                format!("`{key}`: value of {name:?} contains CR, LF or NUL"),
            ));
        }
        Ok((name, value.to_owned()))
    }

    fn not_framing(&self, key: &str, name: String, node: &Node) -> Result<String, RuleError> {
        if key == "remove_request_headers" && name == "host" {
            return Err(self.err(
                Some(node),
                format!("`{key}`: every HTTP/1.1 request needs a Host (set it instead)"),
            ));
        }
        if FRAMING_HEADERS.contains(&name.as_str()) {
            return Err(self.err(
                Some(node),
                format!("`{key}`: {name} is set by lynxio, a rule cannot change it"),
            ));
        }
        Ok(name)
    }

    fn status(&self, node: Option<&Node>, default: u16) -> Result<u16, RuleError> {
        let Some(node) = node else {
            return Ok(default);
        };
        let status = self.int("status", node)?;
        if !STATUS_RANGE.contains(&status) {
            return Err(self.err(
                Some(node),
                format!(
                    "status {status} out of range ({}..={})",
                    STATUS_RANGE.start(),
                    STATUS_RANGE.end()
                ),
            ));
        }
        u16::try_from(status).map_err(|_| self.err(Some(node), "status out of range"))
    }
}

/// RFC 9110 token characters.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The error for a `--mitm GLOB` that is not a valid host pattern.
pub(super) fn flag_error(index: usize, glob: &str, message: String) -> RuleError {
    RuleError {
        index,
        name: format!("--mitm {glob}"),
        line: None,
        message,
        from_flag: true,
    }
}

/// Compiles the raw rule at 1-based `index`; `base_dir` resolves `file` paths.
pub(super) fn compile(node: &Node, index: usize, base_dir: &Path) -> Result<Rule, RuleError> {
    let unnamed = format!("#{index}");
    let mut ctx = Ctx {
        index,
        name: &unnamed,
        line: node.line,
    };
    let NodeValue::Table(entries) = &node.value else {
        return Err(ctx.err(Some(node), "a [[rule]] must be a table"));
    };
    let get = |key: &str| entries.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    if let Some(n) = get("name") {
        let name = ctx.str("name", n)?;
        if name.is_empty() || name.len() > MAX_NAME_LEN || name.chars().any(char::is_control) {
            return Err(ctx.err(
                Some(n),
                format!("`name` must be 1..={MAX_NAME_LEN} bytes without control characters"),
            ));
        }
        ctx.name = name;
    }
    let Some(action_node) = get("action") else {
        return Err(ctx.err(None, "missing `action`"));
    };
    let action = ctx.str("action", action_node)?;
    let Some(&(_, allowed)) = ACTIONS.iter().find(|(a, _)| *a == action) else {
        let known: Vec<&str> = ACTIONS.iter().map(|(a, _)| *a).collect();
        return Err(ctx.err(
            Some(action_node),
            format!("unknown action {action:?} (one of {})", known.join(", ")),
        ));
    };
    for (key, value) in entries {
        if matches!(key.as_str(), "name" | "match" | "action") || allowed.contains(&key.as_str()) {
            continue;
        }
        let used_by: Vec<&str> = ACTIONS
            .iter()
            .filter(|(_, keys)| keys.contains(&key.as_str()))
            .map(|(a, _)| *a)
            .collect();
        let message = if used_by.is_empty() {
            format!("unknown key `{key}`")
        } else {
            format!(
                "key `{key}` is not used by action {action:?} (only by {})",
                used_by.join(", ")
            )
        };
        return Err(ctx.err(Some(value), message));
    }
    let tls = matches!(action, "intercept" | "passthrough");
    let (cond, not) = match get("match") {
        Some(m) => match_table(&ctx, m, tls)?,
        None => (Cond::default(), None),
    };
    let kind = match action {
        "intercept" => Kind::Tls(Action::Intercept),
        "passthrough" => Kind::Tls(Action::Passthrough),
        "block" => Kind::Block(Block {
            status: ctx.status(get("status"), DEFAULT_BLOCK_STATUS)?,
            body: match get("body") {
                Some(b) => Bytes::from(ctx.str("body", b)?.to_owned()),
                None => Bytes::from(format!("blocked by lynxio rule {}\n", ctx.name)),
            },
        }),
        "mock" => Kind::Mock(mock(&ctx, node, &get, base_dir)?),
        "redirect" => Kind::Redirect(redirect(&ctx, node, &get)?),
        "rewrite" => Kind::Rewrite(rewrite(&ctx, node, &get)?),
        _ => {
            let Some(ms_node) = get("ms") else {
                return Err(ctx.err(None, "a delay needs `ms`"));
            };
            let ms = ctx.int("ms", ms_node)?;
            match u64::try_from(ms) {
                Ok(ms @ 1..=MAX_DELAY_MS) => Kind::Delay(Duration::from_millis(ms)),
                _ => {
                    return Err(ctx.err(
                        Some(ms_node),
                        format!("`ms` = {ms} out of range (1..={MAX_DELAY_MS})"),
                    ));
                }
            }
        }
    };
    Ok(Rule {
        name: Arc::from(ctx.name),
        cond,
        not,
        kind,
    })
}

/// The `match` table and its `not` table.
fn match_table(ctx: &Ctx<'_>, node: &Node, tls: bool) -> Result<(Cond, Option<Cond>), RuleError> {
    let cond = conditions(ctx, "match", node, tls)?;
    let not = match ctx.table("match", node)?.iter().find(|(k, _)| k == "not") {
        Some((_, n)) => {
            let not = conditions(ctx, "match.not", n, tls)?;
            if not.is_empty() {
                return Err(ctx.err(Some(n), "`match.not` needs at least one key"));
            }
            Some(not)
        }
        None => None,
    };
    Ok((cond, not))
}

/// One table of match keys (`not` is skipped here; `match_table` reads it).
fn conditions(ctx: &Ctx<'_>, at: &str, node: &Node, tls: bool) -> Result<Cond, RuleError> {
    let mut cond = Cond::default();
    let in_not = at != "match";
    for (key, value) in ctx.table(at, node)? {
        let path = format!("{at}.{key}");
        let known = MATCH_KEYS.contains(&key.as_str()) && !(in_not && key == "not");
        if !known {
            let hint = if in_not { " (no nested `not`)" } else { "" };
            return Err(ctx.err(Some(value), format!("unknown match key `{path}`{hint}")));
        }
        if tls && !TLS_MATCH_KEYS.contains(&key.as_str()) {
            return Err(ctx.err(
                Some(value),
                format!(
                    "match key `{path}` is not allowed for intercept/passthrough \
                     (decided at CONNECT: only host and port are known)"
                ),
            ));
        }
        let bad = |msg: String| ctx.err(Some(value), format!("`{path}`: {msg}"));
        match key.as_str() {
            "host" => cond.host = Some(HostPattern::parse(ctx.str(&path, value)?).map_err(bad)?),
            "port" => {
                let port = ctx.int(&path, value)?;
                cond.port = Some(
                    u16::try_from(port)
                        .ok()
                        .filter(|&p| p != 0)
                        .ok_or_else(|| bad(format!("port {port} out of range (1..=65535)")))?,
                );
            }
            "scheme" => {
                cond.scheme = Some(match ctx.str(&path, value)? {
                    "http" => Scheme::Http,
                    "https" => Scheme::Https,
                    other => return Err(bad(format!("{other:?} is not \"http\" or \"https\""))),
                });
            }
            "method" => {
                let methods = match &value.value {
                    NodeValue::Value(toml::Value::String(s)) => vec![s.as_str()],
                    _ => ctx.strings(&path, value)?,
                };
                if methods.is_empty() {
                    return Err(bad("empty method list".into()));
                }
                for m in methods {
                    if !is_token(m) {
                        return Err(bad(format!("bad method {m:?}")));
                    }
                    cond.methods.push(m.to_owned());
                }
            }
            "path" => cond.path = Some(Pattern::parse(ctx.str(&path, value)?).map_err(bad)?),
            "header" => {
                for (name, pattern, n) in ctx.string_table(&path, value)? {
                    let name = ctx.header_name(&path, name, n)?;
                    let pattern = Pattern::parse(pattern)
                        .map_err(|m| ctx.err(Some(n), format!("`{path}.{name}`: {m}")))?;
                    cond.headers.push((name, pattern));
                }
            }
            _ => {} // "not", read by the caller
        }
    }
    Ok(cond)
}

type Get<'n> = dyn Fn(&str) -> Option<&'n Node> + 'n;

fn mock<'n>(ctx: &Ctx<'_>, rule: &Node, get: &Get<'n>, base: &Path) -> Result<Mock, RuleError> {
    let headers = match get("headers") {
        Some(h) => ctx.header_table("headers", h)?,
        None => Vec::new(),
    };
    let body = match (get("body"), get("file")) {
        (Some(_), Some(f)) => return Err(ctx.err(Some(f), "`body` and `file` are exclusive")),
        (None, None) => return Err(ctx.err(Some(rule), "a mock needs `body` or `file`")),
        (Some(b), None) => MockBody::Inline(Bytes::from(ctx.str("body", b)?.to_owned())),
        (None, Some(f)) => {
            let file = ctx.str("file", f)?;
            if file.is_empty() {
                return Err(ctx.err(Some(f), "`file` is empty"));
            }
            let path = base.join(file);
            match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => MockBody::File(path),
                Ok(_) => {
                    let shown = path.display();
                    return Err(ctx.err(Some(f), format!("file {shown} is not a regular file")));
                }
                Err(e) => {
                    let shown = path.display();
                    return Err(ctx.err(Some(f), format!("file {shown}: {e}")));
                }
            }
        }
    };
    Ok(Mock {
        status: ctx.status(get("status"), DEFAULT_MOCK_STATUS)?,
        headers,
        body,
    })
}

fn redirect<'n>(ctx: &Ctx<'_>, rule: &Node, get: &Get<'n>) -> Result<Redirect, RuleError> {
    let Some(to_node) = get("to") else {
        return Err(ctx.err(Some(rule), "a redirect needs `to`"));
    };
    let to = ctx.str("to", to_node)?;
    let bad = |why: &str| {
        ctx.err(
            Some(to_node),
            format!("bad `to` {to:?}: {why} (expected http://host[:port] or https://host[:port])"),
        )
    };
    let Ok(Target::Absolute {
        scheme,
        host,
        port,
        path,
        ..
    }) = parse_target(&Method::Get, to.as_bytes())
    else {
        return Err(bad("not an http(s) origin"));
    };
    if *path != *b"/" {
        return Err(bad("only an origin, no path or query"));
    }
    Ok(Redirect {
        tls: Scheme::from(scheme) == Scheme::Https,
        host: host.into_owned(),
        port,
        rewrite_host: match get("rewrite_host") {
            Some(b) => ctx.bool("rewrite_host", b)?,
            None => false,
        },
    })
}

fn rewrite<'n>(ctx: &Ctx<'_>, rule: &Node, get: &Get<'n>) -> Result<Rewrite, RuleError> {
    let set = |key: &str| -> Result<Vec<(String, String)>, RuleError> {
        let Some(node) = get(key) else {
            return Ok(Vec::new());
        };
        ctx.header_table(key, node)
    };
    let remove = |key: &str| -> Result<Vec<String>, RuleError> {
        let Some(node) = get(key) else {
            return Ok(Vec::new());
        };
        let names = ctx.strings(key, node)?;
        names
            .into_iter()
            .map(|n| ctx.not_framing(key, ctx.header_name(key, n, node)?, node))
            .collect()
    };
    let path_prefix = match get("path_prefix") {
        None => None,
        Some(node) => {
            let mut from = None;
            let mut to = None;
            for (key, value) in ctx.table("path_prefix", node)? {
                let slot = match key.as_str() {
                    "from" => &mut from,
                    "to" => &mut to,
                    _ => {
                        return Err(
                            ctx.err(Some(value), format!("unknown key `path_prefix.{key}`"))
                        );
                    }
                };
                let text = ctx.str(&format!("path_prefix.{key}"), value)?;
                if !text.starts_with('/')
                    || text
                        .bytes()
                        .any(|b| b <= b' ' || b == 0x7f || b == b'?' || b == b'#')
                {
                    return Err(ctx.err(
                        Some(value),
                        format!("`path_prefix.{key}` {text:?} must start with / and hold no spaces, controls, ? or #"),
                    ));
                }
                *slot = Some(text.to_owned());
            }
            match (from, to) {
                (Some(from), Some(to)) => Some((from, to)),
                _ => return Err(ctx.err(Some(node), "`path_prefix` needs `from` and `to`")),
            }
        }
    };
    let rewrite = Rewrite {
        set_request_headers: set("set_request_headers")?,
        remove_request_headers: remove("remove_request_headers")?,
        set_response_headers: set("set_response_headers")?,
        remove_response_headers: remove("remove_response_headers")?,
        path_prefix,
    };
    if rewrite.is_empty() {
        return Err(ctx.err(
            Some(rule),
            "a rewrite needs at least one of set_request_headers, remove_request_headers, \
             set_response_headers, remove_response_headers, path_prefix",
        ));
    }
    Ok(rewrite)
}
