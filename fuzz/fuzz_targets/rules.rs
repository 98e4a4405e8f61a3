//! Fuzzes the rules: `lynxio::rules::parse_rules` (TOML `[[rule]]` tables) then
//! `RuleSet::compile`, then matching. The input is `RULES \0 REQUEST`: the text before the
//! first NUL is the rules file, the bytes after it (if any) a request head that, when it parses,
//! is matched with `plan` and, by its host, with `decide_tls`; a fixed request is matched too.
//! Besides "never panics": a plan is a no-op exactly when it holds nothing to do, and a CONNECT
//! decision names a rule only when it is not the default.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use lynxio::http1::{HeadLimits, Headers, Target, parse_host, parse_request, parse_target};
use lynxio::rules::{RequestView, RuleSet, Scheme, parse_rules};

fn check(set: &RuleSet, view: &RequestView<'_>) {
    let plan = set.plan(view);
    let empty = plan.terminal.is_none() && plan.rewrites.is_empty() && plan.delay.is_none();
    assert_eq!(plan.is_noop(), empty, "{plan:?}");
    assert_eq!(plan.rule_label().is_none(), plan.is_noop());
    if !set.has_request_rules() {
        assert!(plan.is_noop());
    }
    let decision = set.decide_tls(view.host, Some(view.host), view.port);
    if decision.rule.is_none() {
        assert_eq!(decision.action, lynxio::rules::Action::Passthrough);
    }
    let _ = set.decide_tls(view.host, None, view.port);
}

fuzz_target!(|data: &[u8]| {
    let (text, request) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let Ok(specs) = parse_rules(text) else {
        return;
    };
    // Mock `file`s resolve against a folder that does not exist: only their absence is seen.
    let Ok(set) = RuleSet::compile(&specs, &[], Path::new("/nonexistent-lynxio-fuzz")) else {
        return;
    };
    assert!(set.len() == specs.len());
    let _ = set.may_intercept();

    let mut headers = Headers::default();
    headers.push(b"Host", b"api.example.com");
    headers.push(b"X-Env", b"dev");
    check(
        &set,
        &RequestView {
            scheme: Scheme::Https,
            host: "api.example.com",
            port: 443,
            method: "GET",
            path: "/api/user/1",
            headers: &headers,
        },
    );

    let Ok(Some((head, _))) = parse_request(request, &HeadLimits::default()) else {
        return;
    };
    let (scheme, host, port, path) = match parse_target(&head.method, head.target()) {
        Ok(Target::Absolute {
            scheme,
            host,
            port,
            path,
            ..
        }) => (scheme.into(), host, port, path.into_owned()),
        Ok(Target::Origin(path)) => {
            let Some(Ok((host, port))) = head.headers.get("host").map(parse_host) else {
                return;
            };
            (Scheme::Http, host, port.unwrap_or(80), path.to_vec())
        }
        Ok(Target::Authority { host, port }) => (Scheme::Http, host, port, b"/".to_vec()),
        _ => return,
    };
    let Ok(path) = std::str::from_utf8(&path) else {
        return;
    };
    check(
        &set,
        &RequestView {
            scheme,
            host: &host,
            port,
            method: head.method_str(),
            path,
            headers: &head.headers,
        },
    );
});
