//! Patterns and the match conditions built from them. A pattern is a glob (`*` any run of
//! characters, `?` one character) or, with a `~` prefix, a regular expression (`regex` crate
//! syntax, unanchored search: anchor with `^` and `$`). Host patterns are case-insensitive and
//! ignore a trailing dot; the simple host shapes (an exact name, `*.suffix`, `*`) are kept apart
//! so that the [index](super::index) can file rules under them and test them without a glob.

use std::borrow::Cow;

use regex::{Regex, RegexBuilder};
use wildmatch::WildMatch;

use super::{RequestView, Scheme};

/// Longest pattern text accepted (glob or regex source).
pub const MAX_PATTERN_LEN: usize = 4096;
/// Compiled size limit of one regex (`RegexBuilder::size_limit`), so a config cannot make the
/// proxy build a huge automaton.
pub const MAX_REGEX_SIZE: usize = 1 << 20;

/// A glob or a regex over a string.
#[derive(Debug)]
pub(super) enum Pattern {
    Glob(WildMatch),
    Regex(Regex),
}

impl Pattern {
    /// Parses `text` (`~` prefix: regex). Glob matching is case-sensitive.
    pub(super) fn parse(text: &str) -> Result<Pattern, String> {
        check_len(text)?;
        match text.strip_prefix('~') {
            Some(re) => regex(re, false).map(Pattern::Regex),
            None => Ok(Pattern::Glob(WildMatch::new(text))),
        }
    }

    pub(super) fn matches(&self, s: &str) -> bool {
        match self {
            Pattern::Glob(g) => g.matches(s),
            Pattern::Regex(r) => r.is_match(s),
        }
    }
}

fn check_len(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("empty pattern".into());
    }
    if text.len() > MAX_PATTERN_LEN {
        return Err(format!(
            "pattern is {} bytes long (at most {MAX_PATTERN_LEN})",
            text.len()
        ));
    }
    Ok(())
}

fn regex(source: &str, case_insensitive: bool) -> Result<Regex, String> {
    if source.is_empty() {
        return Err("empty regex after `~`".into());
    }
    RegexBuilder::new(source)
        .case_insensitive(case_insensitive)
        .size_limit(MAX_REGEX_SIZE)
        .build()
        .map_err(|e| format!("bad regex {:?}: {e}", format!("~{source}")))
}

/// A host pattern. Hosts it is tested against are lowercased, without a trailing dot.
#[derive(Debug)]
pub(super) enum HostPattern {
    /// `*`: every host.
    Any,
    /// A glob without wildcards: this host only.
    Exact(Box<str>),
    /// `*.suffix` (suffix without wildcards): hosts ending in `.suffix`.
    Suffix(Box<str>),
    /// Any other glob, lowercased, and the same glob as an anchored regex (for the index's
    /// prefilter).
    Glob(WildMatch, String),
    /// `~regex`, case-insensitive.
    Regex(Regex),
}

impl HostPattern {
    pub(super) fn parse(text: &str) -> Result<HostPattern, String> {
        check_len(text)?;
        if let Some(re) = text.strip_prefix('~') {
            return regex(re, true).map(HostPattern::Regex);
        }
        let glob = text.trim_end_matches('.').to_ascii_lowercase();
        // `[::1]` as users write IPv6 literals; hosts are compared without brackets.
        let glob = match glob.strip_prefix('[').and_then(|g| g.strip_suffix(']')) {
            Some(inner) => inner.to_owned(),
            None => glob,
        };
        if glob.is_empty() {
            return Err("empty host pattern".into());
        }
        let wild = |s: &str| s.contains(['*', '?']);
        Ok(if glob.bytes().all(|b| b == b'*') {
            HostPattern::Any
        } else if !wild(&glob) {
            HostPattern::Exact(glob.into())
        } else if let Some(suffix) = glob
            .strip_prefix("*.")
            .filter(|s| !s.is_empty() && !wild(s))
        {
            HostPattern::Suffix(suffix.into())
        } else {
            HostPattern::Glob(WildMatch::new(&glob), glob_to_regex(&glob))
        })
    }

    /// The regex source of a glob or regex host pattern, for the index's prefilter.
    pub(super) fn regex_source(&self) -> Option<&str> {
        match self {
            HostPattern::Glob(_, re) => Some(re),
            HostPattern::Regex(r) => Some(r.as_str()),
            _ => None,
        }
    }

    pub(super) fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Exact(h) => **h == *host,
            HostPattern::Suffix(s) => has_label_suffix(host, s),
            HostPattern::Glob(g, _) => g.matches(host),
            HostPattern::Regex(r) => r.is_match(host),
        }
    }
}

/// `glob` as an anchored regex source (`*` → `.*`, `?` → `.`, everything else literal).
fn glob_to_regex(glob: &str) -> String {
    let mut re = String::with_capacity(glob.len() + 8);
    re.push('^');
    for c in glob.chars() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            c => re.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
        }
    }
    re.push('$');
    re
}

/// Whether `host` is `<anything>.suffix` (what the glob `*.suffix` matches).
pub(super) fn has_label_suffix(host: &str, suffix: &str) -> bool {
    host.len() > suffix.len()
        && host.ends_with(suffix)
        && host.as_bytes().get(host.len() - suffix.len() - 1) == Some(&b'.')
}

/// A host as the patterns expect it: without a trailing dot, lowercased (allocating only when
/// the caller broke the "already lowercase" contract).
pub(super) fn normalize_host(host: &str) -> Cow<'_, str> {
    let host = host.trim_end_matches('.');
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// The match keys of a rule (or of its `not` table); an absent key matches anything.
#[derive(Debug, Default)]
pub(super) struct Cond {
    pub(super) host: Option<HostPattern>,
    pub(super) port: Option<u16>,
    pub(super) scheme: Option<Scheme>,
    /// Accepted methods (empty: any).
    pub(super) methods: Vec<String>,
    pub(super) path: Option<Pattern>,
    /// Lowercase header name and the pattern one of its values must match.
    pub(super) headers: Vec<(String, Pattern)>,
}

impl Cond {
    /// Whether the request satisfies every key. `host` and `path` are the request's, already
    /// normalized by the caller.
    pub(super) fn matches(&self, req: &RequestView<'_>, host: &str, path: &str) -> bool {
        self.port.is_none_or(|p| p == req.port)
            && self.scheme.is_none_or(|s| s == req.scheme)
            && (self.methods.is_empty() || self.methods.iter().any(|m| m == req.method))
            && self.host.as_ref().is_none_or(|h| h.matches(host))
            && self.path.as_ref().is_none_or(|p| p.matches(path))
            && self.headers.iter().all(|(name, pattern)| {
                req.headers
                    .get_all(name)
                    .any(|v| pattern.matches(&String::from_utf8_lossy(v)))
            })
    }

    /// The CONNECT form: the host pattern may match the CONNECT host or the SNI.
    pub(super) fn matches_tls(&self, host: &str, sni: Option<&str>, port: u16) -> bool {
        self.port.is_none_or(|p| p == port)
            && self
                .host
                .as_ref()
                .is_none_or(|h| h.matches(host) || sni.is_some_and(|s| h.matches(s)))
    }

    /// Whether any key is set.
    pub(super) fn is_empty(&self) -> bool {
        self.host.is_none()
            && self.port.is_none()
            && self.scheme.is_none()
            && self.methods.is_empty()
            && self.path.is_none()
            && self.headers.is_empty()
    }
}
