//! The per-request head path of the proxy: parse a browser's absolute-form request head,
//! classify its target, serialize the forwarded head into a reused buffer; and parse + rewrite
//! a small origin response head. `cargo bench --bench head_path`.
//!
//! The `baseline_httparse_*` cases parse the same bytes with bare `httparse` (no framing rules,
//! no owned head, no output): the floor any httparse-based proxy pays. BENCHMARKS.md reports
//! lynxio's head path as a ratio to that floor, measured in the same run.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lynxio::http1::*;

/// A Chrome-like navigation request through a forward proxy (~700 bytes, 13 fields).
const REQUEST: &[u8] = b"GET http://www.example.com/articles/2024/rust-io-uring?utm_source=news&ref=home HTTP/1.1\r\n\
Host: www.example.com\r\n\
Proxy-Connection: keep-alive\r\n\
Upgrade-Insecure-Requests: 1\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7\r\n\
Accept-Encoding: gzip, deflate\r\n\
Accept-Language: en-US,en;q=0.9,fr;q=0.8\r\n\
Cache-Control: max-age=0\r\n\
Referer: http://www.example.com/\r\n\
Cookie: session=3f1c9a7be24d4e0c; theme=dark; _ga=GA1.2.1234567890.1700000000; consent=yes\r\n\
DNT: 1\r\n\
If-None-Match: \"5f2b-61a8c3e0d1c2a\"\r\n\
If-Modified-Since: Tue, 12 Nov 2024 08:15:30 GMT\r\n\
\r\n";

/// An origin response head for a 100-byte body.
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
Date: Mon, 25 Nov 2024 03:43:00 GMT\r\n\
Server: nginx/1.26.2\r\n\
Content-Type: text/html; charset=utf-8\r\n\
Content-Length: 100\r\n\
Connection: keep-alive\r\n\
Cache-Control: private, max-age=60\r\n\
ETag: \"5f2b-61a8c3e0d1c2b\"\r\n\
Vary: Accept-Encoding\r\n\
\r\n";

fn request_path(limits: &HeadLimits, out: &mut Vec<u8>, wire: &[u8]) -> usize {
    let Ok(Some((head, n))) = parse_request(wire, limits) else {
        panic!("bench request must parse");
    };
    let Ok(Target::Absolute {
        authority, path, ..
    }) = parse_target(&head.method, head.target())
    else {
        panic!("bench target must be absolute-form");
    };
    out.clear();
    write_request(
        out,
        &head,
        &RequestRewrite {
            path: &path,
            host: authority,
            via: b"1.1 lynxio",
            keep_upgrade: false,
        },
    );
    n + out.len()
}

fn response_path(limits: &HeadLimits, out: &mut Vec<u8>, wire: &[u8]) -> usize {
    let Ok(Some((head, n))) = parse_response(wire, limits) else {
        panic!("bench response must parse");
    };
    let Ok(BodyKind::Length(len)) = head.body_kind(&Method::Get) else {
        panic!("bench response must have a length");
    };
    out.clear();
    write_response(
        out,
        &head,
        &ResponseRewrite {
            via: b"1.1 lynxio",
            connection: ConnectionHeader::None,
            strip_transfer_encoding: false,
            keep_upgrade: false,
        },
    );
    n + out.len() + len as usize
}

fn head_path(c: &mut Criterion) {
    let limits = HeadLimits::default();
    let mut out = Vec::with_capacity(4096);
    let mut group = c.benchmark_group("head_path");

    group.throughput(Throughput::Bytes(REQUEST.len() as u64));
    group.bench_function("request_parse_target_write", |b| {
        b.iter(|| request_path(&limits, &mut out, black_box(REQUEST)))
    });
    group.bench_function("request_parse_only", |b| {
        b.iter(|| parse_request(black_box(REQUEST), &limits).map(|r| r.map(|(_, n)| n)))
    });
    group.bench_function("baseline_httparse_request", |b| {
        b.iter(|| {
            let mut fields = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut fields);
            req.parse(black_box(REQUEST)).map(|s| s.is_complete())
        })
    });

    group.throughput(Throughput::Bytes(RESPONSE.len() as u64));
    group.bench_function("response_parse_write", |b| {
        b.iter(|| response_path(&limits, &mut out, black_box(RESPONSE)))
    });
    group.bench_function("baseline_httparse_response", |b| {
        b.iter(|| {
            let mut fields = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut fields);
            resp.parse(black_box(RESPONSE)).map(|s| s.is_complete())
        })
    });
    group.finish();
}

criterion_group!(benches, head_path);
criterion_main!(benches);
