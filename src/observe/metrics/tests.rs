//! Rendering: every family with HELP/TYPE lines, one sample per worker and label value (zeros
//! included), values read from the atomics, exact sample names, and the `# EOF` terminator.

use std::collections::{BTreeMap, HashMap};

use super::*;

/// One parsed exposition: samples keyed by (name, sorted `k=v` labels), and the HELP/TYPE/UNIT
/// lines keyed by family name.
#[derive(Debug, Default)]
struct Parsed {
    samples: HashMap<(String, BTreeMap<String, String>), i64>,
    help: HashMap<String, String>,
    types: HashMap<String, String>,
    units: HashMap<String, String>,
    /// Sample names in order of appearance, deduplicated.
    names: Vec<String>,
}

impl Parsed {
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> i64 {
        let key = (
            name.to_string(),
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        match self.samples.get(&key) {
            Some(v) => *v,
            None => panic!("no sample {name}{labels:?}"),
        }
    }

    fn count(&self, name: &str) -> usize {
        self.samples.keys().filter(|(n, _)| n == name).count()
    }
}

/// Parses `name{k="v",...} value` lines and `# HELP|TYPE|UNIT name text` comments. Label
/// values here never contain `"`, `,` or `\`, so a plain split is enough.
fn parse(text: &str) -> Parsed {
    let mut out = Parsed::default();
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            if comment == "EOF" {
                continue;
            }
            let mut parts = comment.splitn(3, ' ');
            let (kind, name, rest) = (parts.next(), parts.next(), parts.next());
            let (Some(kind), Some(name), Some(rest)) = (kind, name, rest) else {
                panic!("bad comment line {line:?}");
            };
            let map = match kind {
                "HELP" => &mut out.help,
                "TYPE" => &mut out.types,
                "UNIT" => &mut out.units,
                _ => panic!("unknown comment {line:?}"),
            };
            assert!(
                map.insert(name.to_string(), rest.to_string()).is_none(),
                "{line}"
            );
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample line has a value");
        let value: i64 = value.parse().expect("integer value");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').expect("labels end with }");
                let labels: BTreeMap<String, String> = inner
                    .split(',')
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').expect("label is k=v");
                        let v = v
                            .strip_prefix('"')
                            .and_then(|v| v.strip_suffix('"'))
                            .expect("quoted value");
                        (k.to_string(), v.to_string())
                    })
                    .collect();
                (name, labels)
            }
            None => (series, BTreeMap::new()),
        };
        if !out.names.iter().any(|n| n == name) {
            out.names.push(name.to_string());
        }
        let dup = out.samples.insert((name.to_string(), labels), value);
        assert!(dup.is_none(), "duplicate series {line:?}");
    }
    out
}

fn bumped() -> Registry {
    let reg = Registry::new(2);
    let (w0, w1) = (&reg.workers[0], &reg.workers[1]);
    w0.request(MethodClass::Get);
    w0.request(MethodClass::Get);
    w0.request(MethodClass::Connect);
    w1.request(MethodClass::Other);
    w0.response(200);
    w0.response(204);
    w1.response(503);
    w1.response(101);
    w1.error(ErrorKind::ConnectTimeout);
    w0.bytes_in.add(1234);
    w1.bytes_out.add(98765);
    w0.client_connections.inc();
    w0.client_connections.inc();
    w1.client_connections.inc();
    w1.client_connections.dec();
    w1.client_connections.dec();
    w1.tunnel(TunnelKind::HttpUpgrade).inc();
    w0.pool_hits.add(7);
    w1.pool_misses.inc();
    w0.pool_evictions.add(4);
    w1.dns_coalesced.add(6);
    w0.dns_hits.add(3);
    w1.dns_misses.add(2);
    w1.leaf_hits.add(5);
    w0.leaf_mints.inc();
    w1.events_dropped.add(11);
    w0.connection_limit_reached.add(2);
    w0.tls_handshake(TlsSide::Client, false);
    w0.tls_handshake(TlsSide::Client, true);
    w0.tls_handshake(TlsSide::Client, true);
    w1.tls_handshake(TlsSide::Origin, true);
    reg
}

#[test]
fn renders_every_family_per_worker() {
    let text = bumped().render();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert_eq!(text.matches("# EOF").count(), 1);
    let p = parse(&text);

    let expected = [
        "lynxio_requests_total",
        "lynxio_responses_total",
        "lynxio_errors_total",
        "lynxio_received_body_bytes_total",
        "lynxio_sent_body_bytes_total",
        "lynxio_client_connections",
        "lynxio_tunnels_open",
        "lynxio_tls_handshakes_total",
        "lynxio_upstream_pool_hits_total",
        "lynxio_upstream_pool_misses_total",
        "lynxio_upstream_pool_evictions_total",
        "lynxio_dns_cache_hits_total",
        "lynxio_dns_cache_misses_total",
        "lynxio_dns_coalesced_total",
        "lynxio_leaf_cache_hits_total",
        "lynxio_leaf_certificates_minted_total",
        "lynxio_events_dropped_total",
        "lynxio_connection_limit_reached_total",
    ];
    assert_eq!(p.names, expected);
    assert!(!text.contains("_total_total"));

    // HELP and TYPE name the family (OpenMetrics: counters without `_total`).
    for sample_name in expected {
        let (family, kind) = match sample_name.strip_suffix("_total") {
            Some(family) => (family, "counter"),
            None => (sample_name, "gauge"),
        };
        assert_eq!(
            p.types.get(family).map(String::as_str),
            Some(kind),
            "{family}"
        );
        assert!(p.help.get(family).is_some_and(|h| h.len() > 10), "{family}");
    }
    assert_eq!(p.help.len(), expected.len());
    assert_eq!(
        p.units
            .get("lynxio_received_body_bytes")
            .map(String::as_str),
        Some("bytes")
    );
    assert_eq!(
        p.units.get("lynxio_sent_body_bytes").map(String::as_str),
        Some("bytes")
    );

    // Every label combination, zeros included.
    assert_eq!(p.count("lynxio_requests_total"), 2 * MethodClass::ALL.len());
    assert_eq!(p.count("lynxio_responses_total"), 2 * 5);
    assert_eq!(p.count("lynxio_errors_total"), 2 * ErrorKind::ALL.len());
    assert_eq!(p.count("lynxio_tunnels_open"), 2 * TunnelKind::ALL.len());
    assert_eq!(p.count("lynxio_client_connections"), 2);
    assert_eq!(p.count("lynxio_events_dropped_total"), 2);
    assert_eq!(p.count("lynxio_tls_handshakes_total"), 2 * 2 * 2);
    let tls = |w, side, kind| {
        p.get(
            "lynxio_tls_handshakes_total",
            &[("kind", kind), ("side", side), ("worker", w)],
        )
    };
    assert_eq!(tls("0", "client", "full"), 1);
    assert_eq!(tls("0", "client", "resumed"), 2);
    assert_eq!(tls("0", "origin", "resumed"), 0);
    assert_eq!(tls("1", "origin", "resumed"), 1);
    assert_eq!(tls("1", "client", "full"), 0);

    let req = |w, m| p.get("lynxio_requests_total", &[("method", m), ("worker", w)]);
    assert_eq!(req("0", "GET"), 2);
    assert_eq!(req("0", "CONNECT"), 1);
    assert_eq!(req("0", "POST"), 0);
    assert_eq!(req("1", "other"), 1);
    assert_eq!(req("1", "GET"), 0);

    let resp = |w, c| p.get("lynxio_responses_total", &[("class", c), ("worker", w)]);
    assert_eq!(resp("0", "2xx"), 2);
    assert_eq!(resp("1", "5xx"), 1);
    assert_eq!(resp("1", "1xx"), 1);
    assert_eq!(resp("0", "4xx"), 0);

    let err = |w, k| p.get("lynxio_errors_total", &[("kind", k), ("worker", w)]);
    assert_eq!(err("1", "connect_timeout"), 1);
    assert_eq!(err("0", "connect_timeout"), 0);
    assert_eq!(err("0", "client_io"), 0);

    let one = |name, w| p.get(name, &[("worker", w)]);
    assert_eq!(one("lynxio_received_body_bytes_total", "0"), 1234);
    assert_eq!(one("lynxio_received_body_bytes_total", "1"), 0);
    assert_eq!(one("lynxio_sent_body_bytes_total", "1"), 98765);
    assert_eq!(one("lynxio_client_connections", "0"), 2);
    assert_eq!(one("lynxio_client_connections", "1"), -1);
    assert_eq!(one("lynxio_upstream_pool_hits_total", "0"), 7);
    assert_eq!(one("lynxio_upstream_pool_misses_total", "1"), 1);
    assert_eq!(one("lynxio_dns_cache_hits_total", "0"), 3);
    assert_eq!(one("lynxio_dns_cache_misses_total", "1"), 2);
    assert_eq!(one("lynxio_upstream_pool_evictions_total", "0"), 4);
    assert_eq!(one("lynxio_upstream_pool_evictions_total", "1"), 0);
    assert_eq!(one("lynxio_dns_coalesced_total", "1"), 6);
    assert_eq!(one("lynxio_leaf_cache_hits_total", "1"), 5);
    assert_eq!(one("lynxio_leaf_certificates_minted_total", "0"), 1);
    assert_eq!(one("lynxio_events_dropped_total", "1"), 11);
    assert_eq!(one("lynxio_events_dropped_total", "0"), 0);
    assert_eq!(one("lynxio_connection_limit_reached_total", "0"), 2);
    assert_eq!(one("lynxio_connection_limit_reached_total", "1"), 0);

    let tun = |w, k| p.get("lynxio_tunnels_open", &[("kind", k), ("worker", w)]);
    assert_eq!(tun("1", "http-upgrade"), 1);
    assert_eq!(tun("0", "tls"), 0);
}

#[test]
fn render_reads_current_values_each_time() {
    let reg = Registry::new(1);
    let before = parse(&reg.render());
    assert_eq!(
        before.get("lynxio_events_dropped_total", &[("worker", "0")]),
        0
    );
    reg.workers[0].events_dropped.add(4);
    let after = parse(&reg.render());
    assert_eq!(
        after.get("lynxio_events_dropped_total", &[("worker", "0")]),
        4
    );
}

#[test]
fn no_workers_still_has_descriptors() {
    let text = Registry::new(0).render();
    let p = parse(&text);
    assert!(p.samples.is_empty());
    assert_eq!(p.types.len(), 18);
    assert!(text.ends_with("# EOF\n"));
}
