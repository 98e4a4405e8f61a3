//! The host index gives the same answers as testing every rule in file order: generated rule
//! sets mixing exact hosts, `*.suffix` globs, `*`, other globs, regexes and host-less rules,
//! checked against a linear evaluator over generated hosts (bounded loops, fixed seed). Deep
//! hosts hit more suffix lists than the merge holds inline.

use std::fmt::Write as _;
use std::time::Duration;

use super::*;
use crate::testutil::Rng;

const DEEP: &str = "x.a.b.c.d.e.f.g.h.i.j.test";

const HOSTS: &[&str] = &[
    "a.x.test",
    "b.a.x.test",
    "x.test",
    "test",
    "c.y.test",
    "a1.x.test",
    "api.example.com",
    "www.example.com",
    "example.com",
    "10.0.0.1",
    "::1",
    DEEP,
    "b.c.d.e.f.g.h.i.j.test",
];

const HOST_PATTERNS: &[&str] = &[
    "a.x.test",
    "x.test",
    "api.example.com",
    "example.com",
    "10.0.0.1",
    "[::1]",
    "*.x.test",
    "*.test",
    "*.example.com",
    "*.a.x.test",
    "*",
    "a?.x.test",
    "*x.test",
    "*.example.*",
    "~^a",
    "~example\\.com$",
    "~^10\\.",
    "*.a.b.c.d.e.f.g.h.i.j.test",
    "*.b.c.d.e.f.g.h.i.j.test",
    "*.c.d.e.f.g.h.i.j.test",
    "*.d.e.f.g.h.i.j.test",
    "*.e.f.g.h.i.j.test",
    "*.f.g.h.i.j.test",
    "*.g.h.i.j.test",
    "*.h.i.j.test",
    "*.i.j.test",
    "*.j.test",
    DEEP,
];

const PATHS: &[&str] = &["/", "/api/x", "/api/y/z", "/static/a.js"];

/// A random rule: host key (or none), sometimes a path or method, sometimes a `not`.
fn gen_request_rule(rng: &mut Rng, i: usize, out: &mut String) {
    let _ = writeln!(out, "[[rule]]\nname = \"r{i}\"");
    let mut keys = Vec::new();
    if rng.chance(80) {
        keys.push(format!("host = '{}'", rng.pick(HOST_PATTERNS)));
    }
    if rng.chance(25) {
        keys.push(format!(
            "path = '{}'",
            rng.pick(&["/api/*", "~^/static/", "/"])
        ));
    }
    if rng.chance(15) {
        keys.push(format!(
            "method = {}",
            rng.pick(&["'GET'", "'POST'", "['GET', 'HEAD']", "['POST', 'GET']"])
        ));
    }
    if rng.chance(15) {
        keys.push(format!("not = {{ host = '{}' }}", rng.pick(HOST_PATTERNS)));
    }
    let _ = writeln!(out, "match = {{ {} }}", keys.join(", "));
    let action = match rng.next() % 5 {
        0 => "action = \"block\"".to_owned(),
        1 => format!("action = \"mock\"\nbody = \"m{i}\""),
        2 => "action = \"redirect\"\nto = \"http://127.0.0.1:9\"".to_owned(),
        3 => format!("action = \"rewrite\"\nset_request_headers = {{ x-r = \"{i}\" }}"),
        _ => format!("action = \"delay\"\nms = {}", 1 + i),
    };
    let _ = writeln!(out, "{action}\n");
}

/// What the linear evaluator and `plan` are compared on.
#[derive(Debug, PartialEq)]
struct Outcome {
    terminal: Option<usize>,
    rewrites: Vec<usize>,
    delay: Option<Duration>,
    label: Option<String>,
}

/// The address of a terminal's rule data, to compare identities.
fn terminal_addr(t: Terminal<'_>) -> usize {
    match t {
        Terminal::Block(b) => std::ptr::from_ref(b) as usize,
        Terminal::Mock(m) => std::ptr::from_ref(m) as usize,
        Terminal::Redirect(r) => std::ptr::from_ref(r) as usize,
    }
}

fn from_plan(p: &Plan<'_>) -> Outcome {
    Outcome {
        terminal: p.terminal.map(terminal_addr),
        rewrites: p
            .rewrites
            .iter()
            .map(|r| std::ptr::from_ref(*r) as usize)
            .collect(),
        delay: p.delay,
        label: p.rule_label().map(|l| l.to_string()),
    }
}

/// Every rule, in file order, no index.
fn linear(set: &RuleSet, req: &RequestView<'_>) -> Outcome {
    let mut out = Outcome {
        terminal: None,
        rewrites: Vec::new(),
        delay: None,
        label: None,
    };
    let mut names = Vec::new();
    for rule in &set.rules {
        let matches = rule.cond.matches(req, req.host, req.path)
            && !rule
                .not
                .as_ref()
                .is_some_and(|n| n.matches(req, req.host, req.path));
        if !matches {
            continue;
        }
        match &rule.kind {
            Kind::Tls(_) => continue,
            Kind::Block(b) if out.terminal.is_none() => {
                out.terminal = Some(terminal_addr(Terminal::Block(b)));
            }
            Kind::Mock(m) if out.terminal.is_none() => {
                out.terminal = Some(terminal_addr(Terminal::Mock(m)));
            }
            Kind::Redirect(r) if out.terminal.is_none() => {
                out.terminal = Some(terminal_addr(Terminal::Redirect(r)));
            }
            Kind::Block(_) | Kind::Mock(_) | Kind::Redirect(_) => continue,
            Kind::Rewrite(r) => out.rewrites.push(std::ptr::from_ref(r) as usize),
            Kind::Delay(d) => out.delay = Some(out.delay.unwrap_or_default() + *d),
        }
        names.push(rule.name.to_string());
    }
    out.label = (!names.is_empty()).then(|| names.join("+"));
    out
}

#[test]
fn plan_equals_a_linear_scan() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut compared = 0;
    let mut acted = 0;
    for round in 0..60 {
        let count = 1 + (rng.next() % 40) as usize;
        let mut text = String::new();
        for i in 0..count {
            gen_request_rule(&mut rng, i, &mut text);
        }
        let set = rules(&text, &[]);
        assert_eq!(set.len(), count);
        for host in HOSTS {
            for path in PATHS {
                for method in ["GET", "POST", "HEAD"] {
                    let r = req(host, path).method(method);
                    let view = r.view();
                    let want = linear(&set, &view);
                    assert_eq!(
                        from_plan(&set.plan(&view)),
                        want,
                        "round {round} {host}{path}\n{text}"
                    );
                    compared += 1;
                    acted += usize::from(want.label.is_some());
                }
            }
        }
    }
    // The generator produces both outcomes in quantity.
    assert!(
        acted > compared / 5 && acted < compared,
        "{acted}/{compared}"
    );
}

/// Every CONNECT rule in file order, no index.
fn linear_tls<'a>(set: &'a RuleSet, host: &str, sni: Option<&str>, port: u16) -> Decision<'a> {
    for rule in &set.rules {
        if let Kind::Tls(action) = rule.kind
            && rule.cond.matches_tls(host, sni, port)
            && !rule
                .not
                .as_ref()
                .is_some_and(|n| n.matches_tls(host, sni, port))
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

#[test]
fn decide_tls_equals_a_linear_scan() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for round in 0..60 {
        let count = 1 + (rng.next() % 30) as usize;
        let mut text = String::new();
        for i in 0..count {
            let _ = writeln!(text, "[[rule]]\nname = \"t{i}\"");
            let mut keys = Vec::new();
            if rng.chance(85) {
                keys.push(format!("host = '{}'", rng.pick(HOST_PATTERNS)));
            }
            if rng.chance(20) {
                keys.push(format!("port = {}", rng.pick(&["443", "8443"])));
            }
            if rng.chance(15) {
                keys.push(format!("not = {{ host = '{}' }}", rng.pick(HOST_PATTERNS)));
            }
            let action = rng.pick(&["intercept", "passthrough"]);
            let _ = writeln!(
                text,
                "match = {{ {} }}\naction = \"{action}\"\n",
                keys.join(", ")
            );
        }
        let set = rules(&text, &[]);
        for host in HOSTS {
            for sni in [None, Some("a.x.test"), Some("api.example.com"), Some(DEEP)] {
                for port in [443, 8443] {
                    assert_eq!(
                        set.decide_tls(host, sni, port),
                        linear_tls(&set, host, sni.filter(|s| s != host), port),
                        "round {round} {host} {sni:?} {port}\n{text}"
                    );
                }
            }
        }
    }
}

#[test]
fn merge_yields_sorted_unique_and_spills() {
    let lists: Vec<Vec<u32>> = (0..20u32)
        .map(|k| (0..5).map(|j| j * 7 + k % 9).collect())
        .collect();
    let mut merge = index::Merge::default();
    for l in &lists {
        merge.push(l);
    }
    let got: Vec<u32> = merge.collect();
    let mut want: Vec<u32> = lists.concat();
    want.sort_unstable();
    want.dedup();
    assert_eq!(got, want);
    let mut empty = index::Merge::default();
    empty.push(&[]);
    assert_eq!(empty.next(), None);
}
