//! Compile errors: each names the rule (index and name), the line of the offending key and the
//! problem. Every case is the second rule of a file, after a valid one, so lines are known.

use super::*;

/// Compiles a good rule 1 (lines 1-4) and a rule 2 named "bad" whose keys start at line 7;
/// returns the error text.
fn error_of(body: &str) -> String {
    let text = format!(
        "[[rule]]\nname = \"ok\"\naction = \"delay\"\nms = 1\n\n[[rule]]\nname = \"bad\"\n{body}\n"
    );
    match try_rules(&text, &[]) {
        Ok(_) => panic!("compiled:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_error_names_rule_line_and_problem() {
    // (keys of rule 2, starting at line 8; the line the error must name; words it must hold)
    let cases: &[(&str, u32, &[&str])] = &[
        // Types.
        (
            "action = \"block\"\nstatus = \"403\"",
            9,
            &["`status` must be an integer, not a string"],
        ),
        ("action = 7", 8, &["`action` must be a string"]),
        (
            "match = \"a.test\"\naction = \"block\"",
            8,
            &["`match` must be a table"],
        ),
        (
            "match = { port = \"443\" }\naction = \"block\"",
            8,
            &["`match.port` must be an integer"],
        ),
        (
            "match = { method = [1] }\naction = \"block\"",
            8,
            &["array of strings"],
        ),
        (
            "match = { header = { a = 1 } }\naction = \"block\"",
            8,
            &["`match.header.a` must be a string"],
        ),
        (
            "action = \"redirect\"\nto = \"http://a.test\"\nrewrite_host = \"yes\"",
            10,
            &["`rewrite_host` must be a boolean"],
        ),
        // Unknown and misplaced keys, actions.
        (
            "action = \"block\"\nstauts = 403",
            9,
            &["unknown key `stauts`"],
        ),
        (
            "match = { hots = \"a\" }\naction = \"block\"",
            8,
            &["unknown match key `match.hots`"],
        ),
        (
            "match = { not = { not = { port = 1 } } }\naction = \"block\"",
            8,
            &["no nested `not`"],
        ),
        (
            "action = \"block\"\nms = 5",
            9,
            &["key `ms` is not used by action \"block\"", "delay"],
        ),
        (
            "action = \"rewrite\"\nstatus = 200\nremove_request_headers = [\"a\"]",
            9,
            &["`status` is not used by action \"rewrite\""],
        ),
        ("action = \"nuke\"", 8, &["unknown action \"nuke\""]),
        ("match = {}", 6, &["missing `action`"]),
        (
            "match = { path = \"/x\" }\naction = \"intercept\"",
            8,
            &["`match.path` is not allowed for intercept/passthrough"],
        ),
        (
            "match = { not = { method = \"GET\" } }\naction = \"passthrough\"",
            8,
            &["`match.not.method` is not allowed"],
        ),
        // Patterns.
        (
            "match = { host = \"~(\" }\naction = \"block\"",
            8,
            &["bad regex \"~(\"", "unclosed group"],
        ),
        (
            "match = { path = \"~[z-a]\" }\naction = \"block\"",
            8,
            &["bad regex"],
        ),
        (
            "match = { header = { x = \"~(\" } }\naction = \"block\"",
            8,
            &["`match.header.x`: bad regex"],
        ),
        (
            "match = { host = \"\" }\naction = \"block\"",
            8,
            &["empty pattern"],
        ),
        (
            "match = { host = \"~\" }\naction = \"block\"",
            8,
            &["empty regex"],
        ),
        (
            "match = { not = {} }\naction = \"block\"",
            8,
            &["`match.not` needs at least one key"],
        ),
        (
            "match = { port = 0 }\naction = \"block\"",
            8,
            &["port 0 out of range"],
        ),
        (
            "match = { port = 70000 }\naction = \"block\"",
            8,
            &["port 70000 out of range"],
        ),
        (
            "match = { scheme = \"ftp\" }\naction = \"block\"",
            8,
            &["\"ftp\" is not \"http\" or \"https\""],
        ),
        (
            "match = { method = \"GE T\" }\naction = \"block\"",
            8,
            &["bad method"],
        ),
        (
            "match = { method = [] }\naction = \"block\"",
            8,
            &["empty method list"],
        ),
        (
            "match = { header = { \"bad name\" = \"1\" } }\naction = \"block\"",
            8,
            &["bad header name \"bad name\""],
        ),
        // Statuses and action values.
        (
            "action = \"block\"\nstatus = 999",
            9,
            &["status 999 out of range (200..=599)"],
        ),
        (
            "action = \"mock\"\nbody = \"\"\nstatus = 101",
            10,
            &["status 101 out of range"],
        ),
        (
            "action = \"mock\"\nbody = \"x\"\nfile = \"y\"",
            10,
            &["`body` and `file` are exclusive"],
        ),
        (
            "action = \"mock\"\nstatus = 200",
            6,
            &["a mock needs `body` or `file`"],
        ),
        (
            "action = \"mock\"\nfile = \"no/such/lynxio-fixture.json\"",
            9,
            &["file /no/such/lynxio-fixture.json", "No such file"],
        ),
        (
            "action = \"mock\"\nbody = \"\"\nheaders = { \"a b\" = \"1\" }",
            10,
            &["`headers`: bad header name \"a b\""],
        ),
        (
            "action = \"mock\"\nbody = \"\"\nheaders = { a = \"1\\r\\nb: 2\" }",
            10,
            &["contains CR, LF or NUL"],
        ),
        (
            "action = \"mock\"\nbody = \"\"\nheaders = { Content-Length = \"5\" }",
            10,
            &["content-length is set by lynxio"],
        ),
        (
            "action = \"mock\"\nbody = \"\"\nheaders = { X-A = \"1\", x-a = \"2\" }",
            10,
            &["x-a given twice"],
        ),
        ("action = \"redirect\"", 6, &["a redirect needs `to`"]),
        (
            "action = \"redirect\"\nto = \"ftp://a.test\"",
            9,
            &["bad `to` \"ftp://a.test\""],
        ),
        (
            "action = \"redirect\"\nto = \"http://a.test/path\"",
            9,
            &["only an origin"],
        ),
        (
            "action = \"redirect\"\nto = \"http://a.test/?q\"",
            9,
            &["only an origin"],
        ),
        (
            "action = \"redirect\"\nto = \"https://a.test:0\"",
            9,
            &["bad `to`"],
        ),
        (
            "action = \"redirect\"\nto = \"a.test:80\"",
            9,
            &["bad `to`"],
        ),
        (
            "action = \"rewrite\"",
            6,
            &["a rewrite needs at least one of"],
        ),
        (
            "action = \"rewrite\"\nset_request_headers = {}",
            6,
            &["a rewrite needs at least one of"],
        ),
        (
            "action = \"rewrite\"\nremove_request_headers = [\"Transfer-Encoding\"]",
            9,
            &["transfer-encoding is set by lynxio"],
        ),
        (
            "action = \"rewrite\"\nset_request_headers = { Connection = \"close\" }",
            9,
            &["connection is set by lynxio"],
        ),
        (
            "action = \"rewrite\"\nremove_request_headers = [\"Host\"]",
            9,
            &["needs a Host"],
        ),
        (
            "action = \"rewrite\"\nset_response_headers = { \"x:y\" = \"1\" }",
            9,
            &["bad header name \"x:y\""],
        ),
        (
            "action = \"rewrite\"\npath_prefix = { from = \"v1\", to = \"/v2\" }",
            9,
            &["`path_prefix.from` \"v1\" must start with /"],
        ),
        (
            "action = \"rewrite\"\npath_prefix = { from = \"/v1\" }",
            9,
            &["`path_prefix` needs `from` and `to`"],
        ),
        (
            "action = \"rewrite\"\npath_prefix = { from = \"/a\", to = \"/b\", x = \"/c\" }",
            9,
            &["unknown key `path_prefix.x`"],
        ),
        (
            "action = \"delay\"\nms = 0",
            9,
            &["`ms` = 0 out of range (1..=600000)"],
        ),
        ("action = \"delay\"\nms = 600001", 9, &["out of range"]),
        ("action = \"delay\"", 6, &["a delay needs `ms`"]),
    ];
    for (body, line, words) in cases {
        let err = error_of(body);
        let head = format!("line {line}: rule 2 (bad): ");
        assert!(
            err.starts_with(&head),
            "want {head:?}, got {err:?}\nfor {body}"
        );
        for w in *words {
            assert!(err.contains(w), "want {w:?} in {err:?}\nfor {body}");
        }
    }
}

#[test]
fn unnamed_and_badly_named_rules() {
    let err = try_rules("[[rule]]\naction = \"block\"\nstatus = 1\n", &[])
        .expect_err("bad status")
        .to_string();
    assert_eq!(
        err,
        "line 3: rule 1 (#1): status 1 out of range (200..=599)"
    );
    let err = try_rules("[[rule]]\nname = 5\naction = \"block\"\n", &[])
        .expect_err("bad name")
        .to_string();
    assert!(
        err.starts_with("line 2: rule 1 (#1): `name` must be a string"),
        "{err}"
    );
    let err = try_rules("[[rule]]\nname = \"\"\naction = \"block\"\n", &[])
        .expect_err("empty name")
        .to_string();
    assert!(err.contains("`name` must be 1..=128 bytes"), "{err}");
}

#[test]
fn errors_without_source_lines_and_from_flags() {
    // Specs deserialized without `attach_lines`: the rule is still named.
    #[derive(serde::Deserialize)]
    struct File {
        rule: Vec<RuleSpec>,
    }
    let file: File = toml::from_str("[[rule]]\nname = \"x\"\naction = \"bogus\"\n").expect("toml");
    let err = RuleSet::compile(&file.rule, &[], Path::new("/")).expect_err("bad action");
    assert_eq!(err.line, None);
    assert!(
        err.to_string().starts_with("rule 1 (x): unknown action"),
        "{err}"
    );
    assert!(!err.from_flag);
    // `--mitm` patterns: counted after the file's rules, named by the flag.
    let err = try_rules("[[rule]]\naction = \"intercept\"\n", &["a.test", ""]).expect_err("empty");
    assert_eq!(err.to_string(), "rule 3 (--mitm ): empty pattern");
    assert!(err.from_flag);
    let err = try_rules("", &["~)"]).expect_err("bad regex");
    assert!(err.to_string().contains("bad regex"), "{err}");
}

#[test]
fn rules_that_are_not_tables_are_toml_errors() {
    assert!(parse_rules("rule = 5\n").is_err());
    assert!(
        parse_rules("rule = [1]\n")
            .is_ok_and(|specs| { RuleSet::compile(&specs, &[], Path::new("/")).is_err() })
    );
}

#[test]
fn config_file_errors_name_file_line_and_rule_and_files_resolve_beside_it() {
    let dir = std::env::temp_dir().join(format!("lynxio-rules-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("user.json"), b"{}").expect("fixture");
    let config = dir.join("lynxio.toml");
    let load = |text: &str| {
        std::fs::write(&config, text).expect("config");
        crate::config::Config::from_settings(crate::config::Settings {
            config: Some(config.clone()),
            ..crate::config::Settings::default()
        })
    };
    let good =
        "workers = 1\n\n[[rule]]\nname = \"stub-user\"\naction = \"mock\"\nfile = \"user.json\"\n";
    let cfg = load(good).expect("good config");
    let r = req("a.test", "/");
    let Some(Terminal::Mock(m)) = cfg.rules.plan(&r.view()).terminal else {
        panic!("mock expected");
    };
    assert!(matches!(&m.body, MockBody::File(p) if *p == dir.join("user.json")));
    let bad = "workers = 1\n\n[[rule]]\naction = \"delay\"\nms = 1\n\n[[rule]]\nname = \"stub-user\"\n\
               match = { host = \"~(\" }\naction = \"block\"\n";
    let err = load(bad).expect_err("bad regex").to_string();
    let want = format!(
        "config file {}: line 9: rule 2 (stub-user): `match.host`: bad regex \"~(\"",
        config.display()
    );
    assert!(err.starts_with(&want), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
