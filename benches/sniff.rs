//! ClientHello sniffing on real clients' wire bytes: `sniff::detect` deciding what a CONNECT
//! tunnel's client speaks (the TLS parse with SNI and ALPN, as the proxy runs it on a tunnel's
//! first bytes) for Chromium 156 (1,993 bytes, two records), curl 7.88, `openssl s_client` and
//! Python 3.11 (`src/sniff/testdata/`, the captures of `/work/shared/vectors/clienthello`).
//! `cargo bench --bench sniff`.
//!
//! Two baselines see the same bytes in the same run: reading the TLS record header (content
//! type, version, length, the handshake type), the least any sniffer does before it can say
//! "TLS", and one `memchr` pass over the whole ClientHello (touching every byte once, as any
//! parser that finds the SNI must). BENCHMARKS.md reports `detect` as a ratio to both.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use lynxio::sniff::{Detect, Protocol, detect};

const HELLOS: [(&str, &[u8]); 4] = [
    (
        "chromium-156",
        include_bytes!("../src/sniff/testdata/chromium-156.bin"),
    ),
    (
        "curl-7.88",
        include_bytes!("../src/sniff/testdata/curl-7.88-openssl3.bin"),
    ),
    (
        "openssl-3.0",
        include_bytes!("../src/sniff/testdata/openssl-s_client-3.0.bin"),
    ),
    (
        "python-3.11",
        include_bytes!("../src/sniff/testdata/python-3.11-ssl.bin"),
    ),
];

/// Content type 22, a plausible record version, the record length, and a ClientHello (1) as
/// the first handshake message: `Some(record length)`.
fn record_header(b: &[u8]) -> Option<u16> {
    let [22, 3, minor, hi, lo, 1, ..] = *b else {
        return None;
    };
    (minor <= 4).then_some(u16::from_be_bytes([hi, lo]))
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("sniff");
    for (name, hello) in HELLOS {
        let Detect::Found(Protocol::Tls(found)) = detect(hello) else {
            panic!("{name}: must sniff as TLS")
        };
        assert!(found.sni.is_some(), "{name}: SNI");
        assert!(record_header(hello).is_some(), "{name}: record header");
        group.bench_function(format!("detect_{name}"), |b| {
            b.iter(|| matches!(detect(black_box(hello)), Detect::Found(_)))
        });
        group.bench_function(format!("baseline_record_header_{name}"), |b| {
            b.iter(|| record_header(black_box(hello)))
        });
        group.bench_function(format!("baseline_scan_{name}"), |b| {
            b.iter(|| memchr::memchr_iter(0, black_box(hello)).count())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
