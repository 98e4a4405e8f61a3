//! Rule engine tests, from TOML text as a user writes it: CONNECT decisions (this file),
//! request match keys, plans (terminal and non-terminal rules), the host index against a
//! linear scan, and compile errors.

use super::*;

mod errors;
mod index;
mod matching;
mod plan;

/// Compiles `[[rule]]` tables (plus `--mitm` globs), `file`s resolved against `/`.
fn rules(toml_text: &str, mitm: &[&str]) -> RuleSet {
    try_rules(toml_text, mitm).unwrap_or_else(|e| panic!("rules compile: {e}"))
}

fn try_rules(toml_text: &str, mitm: &[&str]) -> Result<RuleSet, RuleError> {
    let specs = parse_rules(toml_text).expect("valid TOML");
    let mitm: Vec<String> = mitm.iter().map(|s| (*s).to_owned()).collect();
    RuleSet::compile(&specs, &mitm, Path::new("/"))
}

/// An owned request to take [`RequestView`]s of.
struct Req {
    scheme: Scheme,
    host: String,
    port: u16,
    method: String,
    path: String,
    headers: Headers,
}

/// `GET https://host:443/path`.
fn req(host: &str, path: &str) -> Req {
    Req {
        scheme: Scheme::Https,
        host: host.to_owned(),
        port: 443,
        method: "GET".to_owned(),
        path: path.to_owned(),
        headers: Headers::default(),
    }
}

impl Req {
    fn method(mut self, m: &str) -> Req {
        self.method = m.to_owned();
        self
    }

    fn http(mut self, port: u16) -> Req {
        self.scheme = Scheme::Http;
        self.port = port;
        self
    }

    fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.push(name.as_bytes(), value.as_bytes());
        self
    }

    fn view(&self) -> RequestView<'_> {
        RequestView {
            scheme: self.scheme,
            host: &self.host,
            port: self.port,
            method: &self.method,
            path: &self.path,
            headers: &self.headers,
        }
    }
}

/// The label of the plan for `r` (`None`: no rule acted).
fn label(set: &RuleSet, r: &Req) -> Option<String> {
    set.plan(&r.view()).rule_label().map(|l| l.to_string())
}

#[test]
fn default_is_passthrough() {
    let r = rules("", &[]);
    assert_eq!(
        r.decide_tls("example.com", None, 443).action,
        Action::Passthrough
    );
    assert_eq!(r.decide_tls("example.com", None, 443).rule, None);
    assert!(!r.may_intercept());
    assert!(!r.has_request_rules());
    assert!(r.is_empty());
}

#[test]
fn first_match_wins_with_host_and_port() {
    let r = rules(
        r#"
        [[rule]]
        name = "keep-bank"
        match = { host = "bank.example.com" }
        action = "passthrough"

        [[rule]]
        name = "api"
        match = { host = "*.example.com", port = 443 }
        action = "intercept"
        "#,
        &[],
    );
    let d = r.decide_tls("api.example.com", None, 443);
    assert_eq!((d.action, d.rule), (Action::Intercept, Some("api")));
    let d = r.decide_tls("bank.example.com", None, 443);
    assert_eq!((d.action, d.rule), (Action::Passthrough, Some("keep-bank")));
    // Wrong port, and the bare domain does not match `*.example.com`'s dot.
    let d = r.decide_tls("api.example.com", None, 8443);
    assert_eq!(d.action, Action::Passthrough);
    assert_eq!(
        r.decide_tls("example.com", None, 443).action,
        Action::Passthrough
    );
    assert!(r.may_intercept());
    assert_eq!(r.first_intercept_rule(), Some("api"));
    assert!(!r.has_request_rules());
    assert_eq!(r.len(), 2);
}

#[test]
fn mitm_globs_come_after_file_rules() {
    let r = rules(
        r#"
        [[rule]]
        match = { host = "pinned.test" }
        action = "passthrough"
        "#,
        &["*"],
    );
    assert_eq!(
        r.decide_tls("pinned.test", None, 443).action,
        Action::Passthrough
    );
    let d = r.decide_tls("anything.test", None, 443);
    assert_eq!((d.action, d.rule), (Action::Intercept, Some("--mitm *")));
    // `*` matches IP literals too, v4 and v6.
    assert_eq!(
        r.decide_tls("127.0.0.1", None, 443).action,
        Action::Intercept
    );
    assert_eq!(r.decide_tls("::1", None, 443).action, Action::Intercept);
}

#[test]
fn matching_is_case_insensitive_and_ignores_a_trailing_dot() {
    let r = rules("", &["*.Example.COM."]);
    assert_eq!(
        r.decide_tls("www.example.com", None, 443).action,
        Action::Intercept
    );
    assert_eq!(
        r.decide_tls("www.example.com.", None, 443).action,
        Action::Intercept
    );
    assert_eq!(
        r.decide_tls("WWW.Example.com", None, 443).action,
        Action::Intercept
    );
    let r = rules("", &["10.0.0.?"]);
    assert_eq!(
        r.decide_tls("10.0.0.7", None, 443).action,
        Action::Intercept
    );
    assert_eq!(
        r.decide_tls("10.0.0.17", None, 443).action,
        Action::Passthrough
    );
    let r = rules("", &["[::1]"]);
    assert_eq!(r.decide_tls("::1", None, 443).action, Action::Intercept);
}

#[test]
fn a_rule_without_match_keys_matches_everything() {
    for text in [
        "[[rule]]\nmatch = {}\naction = \"intercept\"\n",
        "[[rule]]\naction = \"intercept\"\n",
    ] {
        let set = rules(text, &[]);
        let d = set.decide_tls("x.test", None, 1);
        assert_eq!((d.action, d.rule), (Action::Intercept, Some("#1")));
    }
}

#[test]
fn intercept_by_sni_or_connect_host() {
    let r = rules(
        r#"
        [[rule]]
        name = "by-name"
        match = { host = "api.example.com" }
        action = "intercept"

        [[rule]]
        name = "by-suffix"
        match = { host = "*.cdn.test" }
        action = "intercept"

        [[rule]]
        name = "by-regex"
        match = { host = '~^svc-\d+\.internal$' }
        action = "intercept"
        "#,
        &[],
    );
    // CONNECT to an IP literal, the name only in the SNI.
    let d = r.decide_tls("93.184.216.34", Some("api.example.com"), 443);
    assert_eq!((d.action, d.rule), (Action::Intercept, Some("by-name")));
    let d = r.decide_tls("10.0.0.1", Some("img.cdn.test"), 443);
    assert_eq!(d.rule, Some("by-suffix"));
    let d = r.decide_tls("10.0.0.1", Some("SVC-12.internal"), 443);
    assert_eq!(d.rule, Some("by-regex"));
    // And the CONNECT host alone still decides.
    let d = r.decide_tls("api.example.com", Some("other.test"), 443);
    assert_eq!(d.rule, Some("by-name"));
    let d = r.decide_tls("10.0.0.1", Some("other.test"), 443);
    assert_eq!((d.action, d.rule), (Action::Passthrough, None));
}

#[test]
fn connect_rules_honour_not_and_file_order_across_host_and_sni() {
    let r = rules(
        r#"
        [[rule]]
        name = "all-but-bank"
        match = { host = "*.example.com", not = { host = "bank.example.com" } }
        action = "intercept"

        [[rule]]
        name = "sni-pinned"
        match = { host = "pinned.test" }
        action = "passthrough"

        [[rule]]
        name = "rest"
        match = { port = 443 }
        action = "intercept"
        "#,
        &[],
    );
    let d = r.decide_tls("www.example.com", None, 443);
    assert_eq!(d.rule, Some("all-but-bank"));
    // `not` sees the SNI as well: the bank is excluded whichever names it.
    let d = r.decide_tls("bank.example.com", None, 443);
    assert_eq!(d.rule, Some("rest"));
    let d = r.decide_tls("www.example.com", Some("bank.example.com"), 443);
    assert_eq!(d.rule, Some("rest"));
    // Host via SNI (rule 2) comes before the catch-all (rule 3).
    let d = r.decide_tls("10.1.1.1", Some("pinned.test"), 443);
    assert_eq!(
        (d.action, d.rule),
        (Action::Passthrough, Some("sni-pinned"))
    );
    assert_eq!(r.decide_tls("10.1.1.1", None, 80).rule, None);
}

#[test]
fn request_rules_do_not_take_part_in_connect_decisions() {
    let r = rules(
        "[[rule]]\nmatch = { host = \"a.test\" }\naction = \"block\"\n",
        &[],
    );
    assert_eq!(r.decide_tls("a.test", None, 443).rule, None);
    assert!(r.has_request_rules());
    assert!(!r.may_intercept());
}
