//! Request match keys one by one: host (exact, suffix glob, other glob, regex), port, scheme,
//! method (string and list), path (glob and regex, query ignored), header (name case, several
//! values, glob and regex) and `not`.

use super::*;

/// One block rule named "r" with the given match table.
fn one(match_table: &str) -> RuleSet {
    rules(
        &format!("[[rule]]\nname = \"r\"\nmatch = {match_table}\naction = \"block\"\n"),
        &[],
    )
}

fn hit(set: &RuleSet, r: &Req) -> bool {
    label(set, r).is_some()
}

#[test]
fn host_exact_suffix_glob_and_regex() {
    let exact = one(r#"{ host = "API.Example.com." }"#);
    assert!(hit(&exact, &req("api.example.com", "/")));
    assert!(hit(&exact, &req("api.example.com.", "/")));
    assert!(!hit(&exact, &req("x.api.example.com", "/")));

    let suffix = one(r#"{ host = "*.example.com" }"#);
    assert!(hit(&suffix, &req("a.example.com", "/")));
    assert!(hit(&suffix, &req("a.b.example.com", "/")));
    assert!(!hit(&suffix, &req("example.com", "/")));
    assert!(!hit(&suffix, &req("badexample.com", "/")));

    let glob = one(r#"{ host = "api-?.*.test" }"#);
    assert!(hit(&glob, &req("api-1.eu.test", "/")));
    assert!(hit(&glob, &req("api-2.x.y.test", "/")));
    assert!(!hit(&glob, &req("api-12.eu.test", "/")));

    // Unanchored unless anchored; case-insensitive.
    let re = one(r#"{ host = '~^(www|m)\.example\.(com|org)$' }"#);
    assert!(hit(&re, &req("www.example.org", "/")));
    assert!(hit(&re, &req("M.EXAMPLE.COM", "/")));
    assert!(!hit(&re, &req("wwww.example.com", "/")));
    let loose = one(r#"{ host = '~tracker' }"#);
    assert!(hit(&loose, &req("ads.tracker.example", "/")));

    let ipv6 = one(r#"{ host = "[::1]" }"#);
    assert!(hit(&ipv6, &req("::1", "/")));
}

#[test]
fn port_and_scheme() {
    let set = one(r#"{ port = 8080, scheme = "http" }"#);
    assert!(hit(&set, &req("a.test", "/").http(8080)));
    assert!(!hit(&set, &req("a.test", "/").http(80)));
    let mut https = req("a.test", "/");
    https.port = 8080;
    assert!(!hit(&set, &https));
    let set = one(r#"{ scheme = "https" }"#);
    assert!(hit(&set, &req("a.test", "/")));
    assert!(!hit(&set, &req("a.test", "/").http(80)));
}

#[test]
fn method_string_or_list_exact_case() {
    let set = one(r#"{ method = "POST" }"#);
    assert!(hit(&set, &req("a.test", "/").method("POST")));
    assert!(!hit(&set, &req("a.test", "/").method("post")));
    assert!(!hit(&set, &req("a.test", "/")));
    let set = one(r#"{ method = ["PUT", "PATCH"] }"#);
    assert!(hit(&set, &req("a.test", "/").method("PATCH")));
    assert!(hit(&set, &req("a.test", "/").method("PUT")));
    assert!(!hit(&set, &req("a.test", "/").method("GET")));
}

#[test]
fn path_glob_and_regex_without_query() {
    let set = one(r#"{ path = "/api/user/*" }"#);
    assert!(hit(&set, &req("a.test", "/api/user/1")));
    assert!(hit(&set, &req("a.test", "/api/user/1/photos")));
    assert!(hit(&set, &req("a.test", "/api/user/1?x=/y")));
    assert!(!hit(&set, &req("a.test", "/api/users")));
    assert!(!hit(&set, &req("a.test", "/API/user/1")));
    let set = one(r#"{ path = "/v?/items" }"#);
    assert!(hit(&set, &req("a.test", "/v2/items")));
    assert!(!hit(&set, &req("a.test", "/v10/items")));
    let set = one(r#"{ path = '~^/api/v\d+/' }"#);
    assert!(hit(&set, &req("a.test", "/api/v12/x")));
    assert!(!hit(&set, &req("a.test", "/x/api/v1/")));
    let set = one(r#"{ path = '~\.json$' }"#);
    assert!(hit(&set, &req("a.test", "/a/b.json")));
    assert!(!hit(&set, &req("a.test", "/a/b.json5")));
}

#[test]
fn header_names_any_case_any_value() {
    let set = one(r#"{ header = { "X-Env" = "dev*" } }"#);
    assert!(hit(
        &set,
        &req("a.test", "/").header("x-env", "development")
    ));
    assert!(hit(&set, &req("a.test", "/").header("X-ENV", "dev")));
    assert!(!hit(&set, &req("a.test", "/").header("x-env", "prod")));
    assert!(!hit(&set, &req("a.test", "/")));
    // Any of several values (several fields of the same name).
    let multi = req("a.test", "/")
        .header("x-env", "prod")
        .header("X-Env", "dev-2");
    assert!(hit(&set, &multi));
    // Regex over the value; non-UTF-8 bytes do not stop a match.
    let set = one(r#"{ header = { "cookie" = '~(^|; )session=[0-9a-f]+' } }"#);
    assert!(hit(
        &set,
        &req("a.test", "/").header("Cookie", "a=1; session=3f1c")
    ));
    assert!(!hit(
        &set,
        &req("a.test", "/").header("Cookie", "xsession=3f")
    ));
    let mut odd = req("a.test", "/");
    odd.headers.push(b"cookie", b"\xff; session=ab");
    assert!(hit(&set, &odd));
    // Every listed header must match.
    let set = one(r#"{ header = { "a" = "1", "b" = "2" } }"#);
    assert!(hit(
        &set,
        &req("a.test", "/").header("a", "1").header("b", "2")
    ));
    assert!(!hit(&set, &req("a.test", "/").header("a", "1")));
}

#[test]
fn not_excludes_only_when_it_fully_matches() {
    let set = one(
        r#"{ host = "*.example.com", not = { header = { "x-real" = "1" }, method = "POST" } }"#,
    );
    assert!(hit(&set, &req("a.example.com", "/")));
    // Only half of `not` holds: still a match.
    assert!(hit(&set, &req("a.example.com", "/").header("x-real", "1")));
    assert!(hit(&set, &req("a.example.com", "/").method("POST")));
    let both = req("a.example.com", "/")
        .method("POST")
        .header("X-Real", "1");
    assert!(!hit(&set, &both));
    let set = one(r#"{ not = { path = "/health*" } }"#);
    assert!(hit(&set, &req("any.test", "/api")));
    assert!(!hit(&set, &req("any.test", "/healthz")));
    let set = one(r#"{ not = { host = '~\.internal$' } }"#);
    assert!(!hit(&set, &req("db.internal", "/")));
    assert!(hit(&set, &req("db.external", "/")));
}

#[test]
fn all_keys_together() {
    let set = one(
        r#"{ host = "*.example.com", port = 443, scheme = "https", method = "GET", path = "/api/user/*", header = { "x-env" = "dev" }, not = { header = { "x-real" = "1" } } }"#,
    );
    let good = || req("api.example.com", "/api/user/7").header("x-env", "dev");
    assert!(hit(&set, &good()));
    assert!(!hit(&set, &good().method("HEAD")));
    assert!(!hit(&set, &good().http(443)));
    assert!(!hit(&set, &good().header("x-real", "1")));
    assert!(!hit(&set, &req("api.example.com", "/api/user/7")));
    assert!(!hit(
        &set,
        &req("api.example.org", "/api/user/7").header("x-env", "dev")
    ));
}
