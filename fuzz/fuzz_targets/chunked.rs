//! Fuzzes `lynxio::http1::ChunkedDecoder`. The first input byte seeds where the body is cut;
//! the rest is the body. The body is decoded in one piece, one byte at a time, and in
//! pseudo-random pieces (each piece appended to a read buffer from which the consumed bytes are
//! removed, as the proxy does); all three must agree exactly: the same decoded data, bytes
//! consumed and end state, or the same error. Every step must also keep its own contract:
//! `data` within `consumed`, progress unless the input is empty or the body done, `done` equal
//! to `is_done()`, nothing consumed after the end.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lynxio::http1::{ChunkedDecoder, ParseError};

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    data: Vec<u8>,
    consumed: usize,
    done: bool,
}

/// Decodes `body` fed in pieces ending at `cuts` (then the rest).
fn run(body: &[u8], cuts: impl Iterator<Item = usize>) -> Result<Outcome, ParseError> {
    let mut dec = ChunkedDecoder::new();
    let mut out = Outcome {
        data: Vec::new(),
        consumed: 0,
        done: false,
    };
    let mut buffered = Vec::new();
    let mut fed = 0;
    for end in cuts.chain(std::iter::once(body.len())) {
        let end = end.clamp(fed, body.len());
        buffered.extend_from_slice(&body[fed..end]);
        fed = end;
        loop {
            let step = dec.decode(&buffered)?;
            assert!(step.data.start <= step.data.end && step.data.end <= step.consumed);
            assert!(step.consumed <= buffered.len());
            assert!(step.consumed > 0 || buffered.is_empty() || step.done);
            assert_eq!(step.done, dec.is_done());
            if out.done {
                assert_eq!(step.consumed, 0, "consumed after the end");
            }
            out.data.extend_from_slice(&buffered[step.data.clone()]);
            buffered.drain(..step.consumed);
            out.consumed += step.consumed;
            out.done = step.done;
            if step.consumed == 0 || step.done {
                break;
            }
        }
    }
    // Once done, the decoder takes nothing more.
    if out.done {
        let step = dec.decode(b"0\r\n\r\n")?;
        assert_eq!((step.consumed, step.done), (0, true));
    }
    Ok(out)
}

/// xorshift64*: deterministic cut points from the seed byte.
fn cuts(seed: u8, len: usize) -> Vec<usize> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(seed);
    let mut at = 0;
    let mut cuts = Vec::new();
    let max_piece = 1 + (seed as usize % 17);
    while at < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        at += 1 + (r >> 33) as usize % max_piece;
        cuts.push(at);
    }
    cuts
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, body)) = data.split_first() else {
        return;
    };
    let whole = run(body, std::iter::empty());
    let bytewise = run(body, 1..body.len());
    assert_eq!(whole, bytewise, "one piece vs byte at a time");
    let random = run(body, cuts(seed, body.len()).into_iter());
    assert_eq!(whole, random, "one piece vs random pieces (seed {seed})");
    if let Ok(out) = &whole {
        assert!(out.consumed <= body.len() && out.data.len() <= out.consumed);
        if !out.done {
            assert_eq!(
                out.consumed,
                body.len(),
                "stopped early without an end or error"
            );
        }
    }
});
