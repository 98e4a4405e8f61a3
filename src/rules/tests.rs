//! Rule compilation and first-match-wins decisions, from TOML text as a user writes it.

use super::*;

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    rule: Vec<RuleSpec>,
}

fn rules(toml_text: &str, mitm: &[&str]) -> RuleSet {
    let file: File = toml::from_str(toml_text).expect("valid TOML");
    let mitm: Vec<String> = mitm.iter().map(|s| (*s).to_owned()).collect();
    RuleSet::compile(&file.rule, &mitm).expect("rules compile")
}

#[test]
fn default_is_passthrough() {
    let r = rules("", &[]);
    assert_eq!(r.decide("example.com", 443).action, Action::Passthrough);
    assert_eq!(r.decide("example.com", 443).rule, None);
    assert!(!r.may_intercept());
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
    let d = r.decide("api.example.com", 443);
    assert_eq!((d.action, d.rule), (Action::Intercept, Some("api")));
    let d = r.decide("bank.example.com", 443);
    assert_eq!((d.action, d.rule), (Action::Passthrough, Some("keep-bank")));
    // Wrong port, and the bare domain does not match `*.example.com`'s dot.
    assert_eq!(
        r.decide("api.example.com", 8443).action,
        Action::Passthrough
    );
    assert_eq!(r.decide("example.com", 443).action, Action::Passthrough);
    assert!(r.may_intercept());
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
    assert_eq!(r.decide("pinned.test", 443).action, Action::Passthrough);
    let d = r.decide("anything.test", 443);
    assert_eq!((d.action, d.rule), (Action::Intercept, Some("--mitm *")));
    // `*` matches IP literals too, v4 and v6.
    assert_eq!(r.decide("127.0.0.1", 443).action, Action::Intercept);
    assert_eq!(r.decide("::1", 443).action, Action::Intercept);
}

#[test]
fn matching_is_case_insensitive_and_ignores_a_trailing_dot() {
    let r = rules("", &["*.Example.COM."]);
    assert_eq!(r.decide("www.example.com", 443).action, Action::Intercept);
    assert_eq!(r.decide("www.example.com.", 443).action, Action::Intercept);
    let r = rules("", &["10.0.0.?"]);
    assert_eq!(r.decide("10.0.0.7", 443).action, Action::Intercept);
    assert_eq!(r.decide("10.0.0.17", 443).action, Action::Passthrough);
}

#[test]
fn a_rule_without_match_keys_matches_everything() {
    let r = rules(
        r#"
        [[rule]]
        match = {}
        action = "intercept"
        "#,
        &[],
    );
    let d = r.decide("x.test", 1);
    assert_eq!((d.action, d.rule), (Action::Intercept, Some("#1")));
}

#[test]
fn bad_rules_are_errors() {
    for (text, want) in [
        (
            "[[rule]]\nmatch = { host = \"\" }\naction = \"intercept\"\n",
            "empty host glob",
        ),
        (
            "[[rule]]\nmatch = { port = 0 }\naction = \"intercept\"\n",
            "port 0",
        ),
    ] {
        let file: File = toml::from_str(text).expect("valid TOML");
        let err = RuleSet::compile(&file.rule, &[]).expect_err(text);
        assert!(err.to_string().contains(want), "{err}");
    }
    let err = RuleSet::compile(&[], &[String::new()]).expect_err("empty --mitm");
    assert!(err.to_string().contains("--mitm"), "{err}");
    // Unknown actions and keys are TOML errors, caught when the file is read.
    for text in [
        "[[rule]]\nmatch = { host = \"a\" }\naction = \"block\"\n",
        "[[rule]]\nmatch = { hots = \"a\" }\naction = \"intercept\"\n",
        "[[rule]]\nmatch = { host = \"a\" }\naction = \"intercept\"\nextra = 1\n",
    ] {
        assert!(toml::from_str::<File>(text).is_err(), "{text}");
    }
}
