//! The rule engine's per-request cost: `RuleSet::plan` for one request against 0, 10 and 1,000
//! rules that do not match it (exact hosts, `*.domain` globs, path-only rules on other hosts, a
//! few host and path regexes, header rules), and against 1,000 rules of which one matches.
//! Thanks to the host index the non-matching cases should cost about the same whatever the
//! rule count. `cargo bench --bench rules`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use lynxio::http1::Headers;
use lynxio::rules::{RequestView, RuleSet, Scheme, parse_rules};

/// `n` rules of realistic variety, none of which matches `www.example.com/articles/...`.
fn rules_text(n: usize) -> String {
    let mut text = String::new();
    for i in 0..n {
        let _ = writeln!(text, "[[rule]]\nname = \"r{i}\"");
        let _ = match i % 10 {
            0..=3 => writeln!(
                text,
                "match = {{ host = \"api{i}.service{}.test\" }}\naction = \"mock\"\nbody = \"{{}}\"",
                i % 37
            ),
            4 | 5 => writeln!(
                text,
                "match = {{ host = \"*.domain{i}.test\", path = \"/v1/*\" }}\naction = \"block\""
            ),
            6 => writeln!(
                text,
                "match = {{ host = \"cdn{i}.test\", path = \"/static/*\" }}\naction = \"delay\"\nms = 10"
            ),
            7 => writeln!(
                text,
                "match = {{ host = \"*.tracker{i}.test\" }}\naction = \"rewrite\"\nremove_request_headers = [\"cookie\"]"
            ),
            8 => writeln!(
                text,
                "match = {{ host = \"gw{i}.test\", header = {{ \"x-env\" = \"dev\" }} }}\naction = \"redirect\"\nto = \"http://127.0.0.1:8080\""
            ),
            // One in ten is indexed by nothing: host regexes and host-less path rules.
            _ if i % 20 == 9 => writeln!(
                text,
                "match = {{ host = '~^ads[0-9]+\\.net{i}$' }}\naction = \"block\""
            ),
            _ => writeln!(
                text,
                "match = {{ path = '~^/internal{i}/', method = \"POST\" }}\naction = \"block\""
            ),
        };
        text.push('\n');
    }
    text
}

fn compile(text: &str) -> RuleSet {
    let specs = parse_rules(text).expect("bench rules parse");
    RuleSet::compile(&specs, &[], Path::new(".")).expect("bench rules compile")
}

fn headers() -> Headers {
    let mut h = Headers::default();
    for (name, value) in [
        ("Host", "www.example.com"),
        (
            "User-Agent",
            "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0.0.0",
        ),
        ("Accept", "text/html,application/xhtml+xml,*/*;q=0.8"),
        ("Accept-Language", "en-US,en;q=0.9"),
        ("Cookie", "session=3f1c9a7be24d4e0c; theme=dark"),
    ] {
        h.push(name.as_bytes(), value.as_bytes());
    }
    h
}

fn bench(c: &mut Criterion) {
    let headers = headers();
    let request = RequestView {
        scheme: Scheme::Https,
        host: "www.example.com",
        port: 443,
        method: "GET",
        path: "/articles/2024/rust-io-uring",
        headers: &headers,
    };
    let mut group = c.benchmark_group("plan");
    for n in [0, 10, 1000] {
        let set = compile(&rules_text(n));
        assert!(set.plan(&request).is_noop());
        group.bench_function(format!("no_match_{n}_rules"), |b| {
            b.iter(|| black_box(set.plan(black_box(&request))).is_noop())
        });
    }
    let mut text = rules_text(1000);
    text.push_str(
        "[[rule]]\nname = \"hit\"\nmatch = { host = \"*.example.com\", path = \"/articles/*\" }\n\
         action = \"mock\"\nbody = \"stub\"\n",
    );
    let set = compile(&text);
    assert!(set.plan(&request).terminal.is_some());
    group.bench_function("one_match_1000_rules", |b| {
        b.iter(|| black_box(set.plan(black_box(&request))).is_noop())
    });
    // The floor: one exact-host lookup (a miss, like the no-match cases) in a map of 1,000
    // hosts with the hasher the rule index uses.
    let hosts: HashMap<String, usize, foldhash::fast::RandomState> = (0..1000)
        .map(|i| (format!("api{i}.service{}.test", i % 37), i))
        .collect();
    assert!(!hosts.contains_key(request.host));
    group.bench_function("baseline_exact_host_lookup_1000", |b| {
        b.iter(|| hosts.get(black_box(request.host)).copied())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
