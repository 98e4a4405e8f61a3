//! Plans: the first matching terminal rule wins (in either order of narrow and broad rules),
//! every matching rewrite and delay applies in file order (also those after the terminal),
//! labels, and what each action compiles to (defaults, mock files, redirect origins).

use std::time::Duration;

use super::*;

fn terminal_status(p: &Plan<'_>) -> Option<u16> {
    match p.terminal? {
        Terminal::Block(b) => Some(b.status),
        Terminal::Mock(m) => Some(m.status),
        Terminal::Redirect(_) => Some(0),
    }
}

#[test]
fn first_terminal_wins_narrow_before_broad() {
    let set = rules(
        r#"
        [[rule]]
        name = "narrow"
        match = { host = "api.example.com", path = "/v1/*" }
        action = "mock"
        status = 201
        body = "narrow"

        [[rule]]
        name = "broad"
        match = { host = "*.example.com" }
        action = "block"
        "#,
        &[],
    );
    let r = req("api.example.com", "/v1/x");
    let p = set.plan(&r.view());
    assert_eq!(terminal_status(&p), Some(201));
    assert_eq!(p.rule_label().as_deref(), Some("narrow"));
    let r = req("api.example.com", "/v2/x");
    assert_eq!(label(&set, &r).as_deref(), Some("broad"));
    assert_eq!(terminal_status(&set.plan(&r.view())), Some(403));
}

#[test]
fn first_terminal_wins_broad_before_narrow() {
    let set = rules(
        r#"
        [[rule]]
        name = "broad"
        match = { host = "*.example.com" }
        action = "block"
        status = 451

        [[rule]]
        name = "narrow"
        match = { host = "api.example.com", path = "/v1/*" }
        action = "mock"
        body = "never"
        "#,
        &[],
    );
    // The broad rule shadows the narrow one entirely.
    let r = req("api.example.com", "/v1/x");
    let p = set.plan(&r.view());
    assert_eq!(terminal_status(&p), Some(451));
    assert_eq!(p.rule_label().as_deref(), Some("broad"));
}

#[test]
fn non_terminals_all_apply_in_file_order_around_the_terminal() {
    let set = rules(
        r#"
        [[rule]]
        name = "tag-1"
        match = { host = "*.example.com" }
        action = "rewrite"
        set_request_headers = { "x-tag" = "first", "x-one" = "1" }

        [[rule]]
        name = "slow"
        match = { path = "/api/*" }
        action = "delay"
        ms = 150

        [[rule]]
        name = "stub"
        match = { host = "api.example.com" }
        action = "mock"
        body = "{}"

        [[rule]]
        name = "tag-2"
        match = { host = "api.example.com" }
        action = "rewrite"
        set_request_headers = { "X-Tag" = "second" }
        remove_response_headers = ["Server"]

        [[rule]]
        name = "slower"
        action = "delay"
        ms = 50

        [[rule]]
        name = "stub-2"
        match = { host = "api.example.com" }
        action = "block"
        "#,
        &[],
    );
    let r = req("api.example.com", "/api/x");
    let p = set.plan(&r.view());
    assert!(!p.is_noop());
    assert_eq!(p.delay, Some(Duration::from_millis(200)));
    assert!(matches!(p.terminal, Some(Terminal::Mock(_))));
    // The pipeline applies rewrites in this order, so the later `x-tag` wins.
    let sets: Vec<_> = p
        .rewrites
        .iter()
        .flat_map(|r| &r.set_request_headers)
        .collect();
    assert_eq!(
        sets,
        [
            &("x-tag".to_owned(), "first".to_owned()),
            &("x-one".to_owned(), "1".to_owned()),
            &("x-tag".to_owned(), "second".to_owned()),
        ]
    );
    assert_eq!(p.rewrites[1].remove_response_headers, ["server"]);
    assert_eq!(
        p.rule_label().as_deref(),
        Some("tag-1+slow+stub+tag-2+slower")
    );
    // Another host: only the catch-all delay.
    let r = req("other.test", "/");
    let p = set.plan(&r.view());
    assert_eq!(p.delay, Some(Duration::from_millis(50)));
    assert!(p.terminal.is_none() && p.rewrites.is_empty());
    assert_eq!(p.rule_label().as_deref(), Some("slower"));
}

#[test]
fn no_match_is_a_noop() {
    let set = rules(
        "[[rule]]\nmatch = { host = \"a.test\" }\naction = \"delay\"\nms = 5\n",
        &["*"],
    );
    let r = req("b.test", "/");
    let p = set.plan(&r.view());
    assert!(p.is_noop());
    assert_eq!(p.rule_label(), None);
    assert_eq!(p.delay, None);
    assert_eq!(p.rewrites.capacity(), 0);
    // CONNECT rules never show up in plans.
    assert!(rules("", &["*"]).plan(&r.view()).is_noop());
}

#[test]
fn block_defaults_and_mock_headers() {
    let set = rules(
        r#"
        [[rule]]
        name = "no-ads"
        match = { host = "ads.test" }
        action = "block"

        [[rule]]
        match = { host = "m.test" }
        action = "mock"
        status = 404
        headers = { "Content-Type" = "application/json", "x-mock" = "yes" }
        body = '{"error":"nope"}'

        [[rule]]
        match = { host = "teapot.test" }
        action = "block"
        status = 418
        body = "short and stout"
        "#,
        &[],
    );
    let r = req("ads.test", "/");
    let Some(Terminal::Block(b)) = set.plan(&r.view()).terminal else {
        panic!("block expected");
    };
    assert_eq!(
        (b.status, &b.body[..]),
        (403, &b"blocked by lynxio rule no-ads\n"[..])
    );
    let r = req("m.test", "/");
    let p = set.plan(&r.view());
    let Some(Terminal::Mock(m)) = p.terminal else {
        panic!("mock expected");
    };
    assert_eq!(m.status, 404);
    assert_eq!(
        m.headers,
        [
            ("content-type".to_owned(), "application/json".to_owned()),
            ("x-mock".to_owned(), "yes".to_owned())
        ]
    );
    assert!(matches!(&m.body, MockBody::Inline(b) if &b[..] == b"{\"error\":\"nope\"}"));
    assert_eq!(p.rule_label().as_deref(), Some("#2"));
    let r = req("teapot.test", "/");
    let Some(Terminal::Block(b)) = set.plan(&r.view()).terminal else {
        panic!("block expected");
    };
    assert_eq!((b.status, &b.body[..]), (418, &b"short and stout"[..]));
}

#[test]
fn mock_file_is_resolved_against_the_base_dir() {
    let dir = std::env::temp_dir().join(format!("lynxio-rules-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("fixtures")).expect("temp dir");
    std::fs::write(dir.join("fixtures/user.json"), b"{\"id\":1}").expect("fixture");
    let specs = parse_rules(
        "[[rule]]\nmatch = { path = \"/user\" }\naction = \"mock\"\nfile = \"fixtures/user.json\"\n",
    )
    .expect("toml");
    let set = RuleSet::compile(&specs, &[], &dir).expect("compiles");
    let r = req("a.test", "/user");
    let Some(Terminal::Mock(m)) = set.plan(&r.view()).terminal else {
        panic!("mock expected");
    };
    assert!(matches!(&m.body, MockBody::File(p) if *p == dir.join("fixtures/user.json")));
    assert_eq!(m.status, 200);
    // A folder is not a file; a missing file is an error naming the resolved path.
    let specs = parse_rules("[[rule]]\nname = \"dir\"\naction = \"mock\"\nfile = \"fixtures\"\n")
        .expect("toml");
    let err = RuleSet::compile(&specs, &[], &dir).expect_err("a folder");
    assert!(err.to_string().contains("not a regular file"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn redirect_origins() {
    let set = rules(
        r#"
        [[rule]]
        match = { host = "a.test" }
        action = "redirect"
        to = "http://127.0.0.1:8080"

        [[rule]]
        match = { host = "b.test" }
        action = "redirect"
        to = "HTTPS://Staging.Example.com/"
        rewrite_host = true

        [[rule]]
        match = { host = "c.test" }
        action = "redirect"
        to = "https://[::1]:8443"

        [[rule]]
        match = { host = "d.test" }
        action = "redirect"
        to = "http://x.test:80"
        "#,
        &[],
    );
    let expect = [
        ("a.test", false, "127.0.0.1", 8080, false, "127.0.0.1:8080"),
        (
            "b.test",
            true,
            "staging.example.com",
            443,
            true,
            "staging.example.com",
        ),
        ("c.test", true, "::1", 8443, false, "[::1]:8443"),
        ("d.test", false, "x.test", 80, false, "x.test"),
    ];
    for (host, tls, to_host, port, rewrite_host, authority) in expect {
        let r = req(host, "/");
        let Some(Terminal::Redirect(d)) = set.plan(&r.view()).terminal else {
            panic!("redirect expected for {host}");
        };
        assert_eq!(
            (d.tls, d.host.as_str(), d.port, d.rewrite_host),
            (tls, to_host, port, rewrite_host)
        );
        assert_eq!(d.authority(), authority);
    }
}

#[test]
fn rewrite_path_prefix_and_lists() {
    let set = rules(
        r#"
        [[rule]]
        name = "v2"
        match = { host = "api.test" }
        action = "rewrite"
        path_prefix = { from = "/v1/", to = "/v2/" }
        remove_request_headers = ["Cookie", "authorization"]
        set_response_headers = { "Access-Control-Allow-Origin" = "*" }
        "#,
        &[],
    );
    let r = req("api.test", "/v1/items");
    let p = set.plan(&r.view());
    let [rw] = p.rewrites[..] else {
        panic!("one rewrite expected");
    };
    assert_eq!(rw.path_prefix, Some(("/v1/".to_owned(), "/v2/".to_owned())));
    assert_eq!(rw.remove_request_headers, ["cookie", "authorization"]);
    assert_eq!(
        rw.set_response_headers,
        [("access-control-allow-origin".to_owned(), "*".to_owned())]
    );
    assert!(p.terminal.is_none() && p.delay.is_none());
}

#[test]
fn rule_names_are_shared_not_copied() {
    let set = rules("[[rule]]\nname = \"n\"\naction = \"delay\"\nms = 1\n", &[]);
    let r = req("a.test", "/");
    let a = set.plan(&r.view()).rule_label().expect("label");
    let b = set.plan(&r.view()).rule_label().expect("label");
    assert!(Arc::ptr_eq(&a, &b));
}
