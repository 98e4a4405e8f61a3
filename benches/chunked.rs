//! The chunked body decoder on one MiB of body data framed in chunks of 100 B, 8 KiB and
//! 64 KiB: `http1::ChunkedDecoder` validating every framing byte and reporting the data ranges,
//! as the proxy runs it over a response it relays. `cargo bench --bench chunked`.
//!
//! Two baselines see the same encoded bytes in the same run: `memchr` counting the line feeds
//! (one pass that reads every byte: the cheapest "look at all of it") and a `memcpy` of the
//! whole buffer (what forwarding the bytes through user space costs at least). BENCHMARKS.md
//! reports the decoder as a ratio to both.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lynxio::http1::ChunkedDecoder;

/// Body data per encoded buffer.
const BODY_BYTES: usize = 1024 * 1024;

/// `BODY_BYTES` of data as chunks of `chunk` bytes (the last may be shorter), a chunk
/// extension on every tenth chunk, the last chunk, one trailer field and the final CRLF.
fn encode(chunk: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(BODY_BYTES + BODY_BYTES / chunk * 16 + 64);
    let mut left = BODY_BYTES;
    let mut i = 0u32;
    while left > 0 {
        let n = chunk.min(left);
        out.extend_from_slice(format!("{n:x}").as_bytes());
        if i % 10 == 9 {
            out.extend_from_slice(b";ext=1");
        }
        out.extend_from_slice(b"\r\n");
        out.extend((0..n).map(|k| b'a' + (k % 26) as u8));
        out.extend_from_slice(b"\r\n");
        left -= n;
        i += 1;
    }
    out.extend_from_slice(b"0\r\nx-checksum: 1234\r\n\r\n");
    out
}

/// Decode all of `wire`; returns the data bytes seen.
fn decode(wire: &[u8]) -> usize {
    let mut dec = ChunkedDecoder::new();
    let mut pos = 0;
    let mut data = 0;
    while !dec.is_done() {
        let Some(rest) = wire.get(pos..) else { break };
        let Ok(step) = dec.decode(rest) else {
            panic!("bench body must decode")
        };
        data += step.data.len();
        pos += step.consumed;
    }
    data
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("chunked");
    let mut copy = vec![0u8; 2 * BODY_BYTES];
    for (label, chunk) in [("100B", 100), ("8KiB", 8 * 1024), ("64KiB", 64 * 1024)] {
        let wire = encode(chunk);
        assert_eq!(decode(&wire), BODY_BYTES);
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_function(format!("decode_{label}_chunks"), |b| {
            b.iter(|| decode(black_box(&wire)))
        });
        group.bench_function(format!("baseline_memchr_{label}_chunks"), |b| {
            b.iter(|| memchr::memchr_iter(b'\n', black_box(&wire)).count())
        });
        group.bench_function(format!("baseline_memcpy_{label}_chunks"), |b| {
            b.iter(|| {
                let dst = &mut copy[..wire.len()];
                dst.copy_from_slice(black_box(&wire));
                black_box(dst.first().copied())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
