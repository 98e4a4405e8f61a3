//! Chunked decoder tables: valid bodies, every framing error, limits, and split-point /
//! random-split equivalence (the decoder must give the same data however input is cut).

use super::super::ParseErrorKind;
use super::*;

/// Feeds `input` in `pieces` (lengths), re-offering unconsumed bytes like a proxy's read
/// buffer would. Returns (data, consumed total, done).
fn run(input: &[u8], cuts: &[usize]) -> Result<(Vec<u8>, usize, bool), ParseError> {
    let mut dec = ChunkedDecoder::new();
    let mut data = Vec::new();
    let mut buffered: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut consumed_total = 0;
    let mut bounds: Vec<usize> = cuts.iter().copied().filter(|&c| c <= input.len()).collect();
    bounds.push(input.len());
    for end in bounds {
        buffered.extend_from_slice(&input[fed..end.max(fed)]);
        fed = end.max(fed);
        loop {
            let step = dec.decode(&buffered)?;
            assert!(step.data.end <= step.consumed && step.data.start <= step.data.end);
            assert!(step.consumed > 0 || buffered.is_empty() || step.done);
            assert_eq!(step.done, dec.is_done());
            data.extend_from_slice(&buffered[step.data.clone()]);
            buffered.drain(..step.consumed);
            consumed_total += step.consumed;
            if step.consumed == 0 || step.done {
                break;
            }
        }
    }
    Ok((data, consumed_total, dec.is_done()))
}

fn whole(input: &[u8]) -> Result<(Vec<u8>, usize, bool), ParseErrorKind> {
    run(input, &[]).map_err(|e| e.kind)
}

#[test]
fn valid_bodies() {
    let table: &[(&str, &[u8], &[u8])] = &[
        ("empty", b"0\r\n\r\n", b""),
        ("one", b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
        ("two", b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", b"abcde"),
        ("hex upper", b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
        ("hex lower", b"a\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
        ("leading zeros", b"0005\r\nhello\r\n000\r\n\r\n", b"hello"),
        ("16 digits", b"0000000000000003\r\nabc\r\n0\r\n\r\n", b"abc"),
        ("ext", b"3;name=val\r\nabc\r\n0;x\r\n\r\n", b"abc"),
        (
            "ext quoted",
            b"3;n=\"a b\\\"c\"\r\nabc\r\n0\r\n\r\n",
            b"abc",
        ),
        (
            "ext obs-text tab",
            b"3;n=\xff\tx\r\nabc\r\n0\r\n\r\n",
            b"abc",
        ),
        ("BWS before ;", b"3 \t;x\r\nabc\r\n0 ;y\r\n\r\n", b"abc"),
        ("data with CRLF", b"4\r\n\r\n\r\n\r\n0\r\n\r\n", b"\r\n\r\n"),
        ("trailer", b"1\r\nx\r\n0\r\nExpires: never\r\n\r\n", b"x"),
        (
            "trailers",
            b"1\r\nx\r\n0\r\nA: 1\r\nB-c:\r\nD:\t\xc3\xa9 \r\n\r\n",
            b"x",
        ),
    ];
    for (name, input, expected) in table {
        let (data, consumed, done) = whole(input).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(
            (&data[..], consumed, done),
            (*expected, input.len(), true),
            "{name}"
        );
    }
}

#[test]
fn framing_errors() {
    let table: &[(&str, &[u8])] = &[
        ("no digits", b"\r\n"),
        ("ext without size", b";x\r\n"),
        ("space before size", b" 5\r\nhello\r\n0\r\n\r\n"),
        ("sign", b"+5\r\nhello\r\n0\r\n\r\n"),
        ("0x", b"0x5\r\nhello\r\n0\r\n\r\n"),
        ("non-hex", b"5g\r\nhello\r\n0\r\n\r\n"),
        ("17 digits", b"00000000000000005\r\nhello\r\n0\r\n\r\n"),
        ("overflow", b"10000000000000000\r\n"),
        ("ws then CRLF", b"5 \r\nhello\r\n0\r\n\r\n"),
        ("ws then digit", b"5 5\r\nhello\r\n0\r\n\r\n"),
        ("bare LF size", b"5\nhello\r\n0\r\n\r\n"),
        ("bare CR size", b"5\rhello\r\n0\r\n\r\n"),
        ("bare LF ext", b"5;x\nhello\r\n0\r\n\r\n"),
        ("CTL in ext", b"5;x\x01\r\nhello\r\n0\r\n\r\n"),
        ("DEL in ext", b"5;x\x7f\r\nhello\r\n0\r\n\r\n"),
        ("NUL in ext", b"5;\0\r\nhello\r\n0\r\n\r\n"),
        ("data too long", b"5\r\nhello!\r\n0\r\n\r\n"),
        ("data bare LF", b"5\r\nhello\n0\r\n\r\n"),
        ("data no CRLF", b"5\r\nhello0\r\n\r\n"),
        ("data CR CR", b"5\r\nhello\r\r\n0\r\n\r\n"),
        ("last bare LF", b"0\n\r\n"),
        ("final bare LF", b"0\r\n\n"),
        ("final CR CR", b"0\r\n\r\r"),
        ("trailer obs-fold", b"0\r\nA: 1\r\n 2\r\n\r\n"),
        ("trailer no name", b"0\r\n: 1\r\n\r\n"),
        ("trailer SP name", b"0\r\nA : 1\r\n\r\n"),
        ("trailer no colon", b"0\r\nA\r\n\r\n"),
        ("trailer bad name", b"0\r\nA(: 1\r\n\r\n"),
        ("trailer CTL", b"0\r\nA: \x01\r\n\r\n"),
        ("trailer bare LF", b"0\r\nA: 1\n\r\n"),
        ("trailer bare CR", b"0\r\nA: 1\rB\r\n\r\n"),
    ];
    for (name, input) in table {
        assert_eq!(
            whole(input).unwrap_err(),
            ParseErrorKind::BadChunk,
            "{name}"
        );
    }
}

#[test]
fn incomplete_is_not_done() {
    let input = b"3\r\nabc\r\n0\r\nA: b\r\n\r\n";
    for i in 0..input.len() {
        let (_, consumed, done) = whole(&input[..i]).unwrap();
        assert_eq!((consumed, done), (i, false), "prefix {i}");
    }
}

#[test]
fn stops_after_done() {
    let mut dec = ChunkedDecoder::new();
    let input = b"2\r\nab\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
    // Framing after the data segment is consumed in the same step, up to the final CRLF.
    let step = dec.decode(input).unwrap();
    assert_eq!(
        step,
        ChunkStep {
            consumed: 12,
            data: 3..5,
            done: true
        }
    );
    let step = dec.decode(&input[12..]).unwrap();
    assert_eq!(
        step,
        ChunkStep {
            consumed: 0,
            data: 0..0,
            done: true
        }
    );
    assert_eq!(dec.decode(b"").unwrap().consumed, 0);
}

#[test]
fn one_data_segment_per_step() {
    let mut dec = ChunkedDecoder::new();
    let input = b"1\r\na\r\n1\r\nb\r\n0\r\n\r\n";
    let steps: Vec<_> = std::iter::from_fn(|| {
        let s = dec.decode(&input[..]).ok()?;
        Some(s)
    })
    .take(1)
    .collect();
    assert_eq!(
        steps[0],
        ChunkStep {
            consumed: 9,
            data: 3..4,
            done: false
        }
    );
    let mut dec = ChunkedDecoder::new();
    let mut off = 0;
    let mut segments = Vec::new();
    while !dec.is_done() {
        let s = dec.decode(&input[off..]).unwrap();
        segments.push(input[off..][s.data].to_vec());
        off += s.consumed;
    }
    assert_eq!(segments, vec![b"a".to_vec(), b"b".to_vec()]);
    assert_eq!(off, input.len());
}

#[test]
fn large_chunk_is_one_range() {
    let mut input = b"100000\r\n".to_vec();
    input.extend(std::iter::repeat_n(b'z', 0x10_0000));
    input.extend_from_slice(b"\r\n0\r\n\r\n");
    let mut dec = ChunkedDecoder::new();
    let s = dec.decode(&input).unwrap();
    assert_eq!(s.data, 8..8 + 0x10_0000);
    assert_eq!(s.consumed, input.len());
    assert!(s.done);
}

#[test]
fn huge_declared_size_streams() {
    let mut dec = ChunkedDecoder::new();
    let s = dec.decode(b"ffffffffffffffff\r\nabc").unwrap();
    assert_eq!(
        s,
        ChunkStep {
            consumed: 21,
            data: 18..21,
            done: false
        }
    );
    let s = dec.decode(b"def").unwrap();
    assert_eq!(
        s,
        ChunkStep {
            consumed: 3,
            data: 0..3,
            done: false
        }
    );
}

#[test]
fn limits() {
    let mut line = b"1;".to_vec();
    line.resize(MAX_CHUNK_LINE_BYTES, b'x');
    line.extend_from_slice(b"\r\na\r\n0\r\n\r\n");
    assert!(whole(&line).is_ok());
    let mut long = b"1;".to_vec();
    long.resize(MAX_CHUNK_LINE_BYTES + 1, b'x');
    long.extend_from_slice(b"\r\na\r\n0\r\n\r\n");
    assert_eq!(whole(&long).unwrap_err(), ParseErrorKind::BadChunk);

    let trailer = |value_len: usize| {
        let mut t = b"0\r\nX: ".to_vec();
        t.resize(6 + value_len, b'v');
        t.extend_from_slice(b"\r\n\r\n");
        t
    };
    // Trailer section = everything after "0\r\n": "X: " + value + CRLF + CRLF.
    let fits = MAX_TRAILER_BYTES - 7;
    assert!(whole(&trailer(fits)).is_ok());
    assert_eq!(
        whole(&trailer(fits + 1)).unwrap_err(),
        ParseErrorKind::BadChunk
    );
}

const BODY: &[u8] = b"4\r\nWiki\r\n5;e=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nT: v\r\n\r\n";
const BODY_DATA: &[u8] = b"Wikipedia in\r\n\r\nchunks.";

#[test]
fn every_split_point() {
    for i in 0..=BODY.len() {
        let (data, consumed, done) = run(BODY, &[i]).unwrap();
        assert_eq!(
            (&data[..], consumed, done),
            (BODY_DATA, BODY.len(), true),
            "split {i}"
        );
    }
    for i in 0..=BODY.len() {
        for j in i..=BODY.len() {
            let (data, _, done) = run(BODY, &[i, j]).unwrap();
            assert!(done && data == BODY_DATA, "splits {i} {j}");
        }
    }
}

#[test]
fn byte_at_a_time() {
    let cuts: Vec<usize> = (0..BODY.len()).collect();
    let (data, consumed, done) = run(BODY, &cuts).unwrap();
    assert_eq!((&data[..], consumed, done), (BODY_DATA, BODY.len(), true));
}

/// xorshift64: deterministic pseudo-random numbers without a dependency.
fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn random_bodies_random_splits() {
    let mut seed = 0x2545_f491_4f6c_dd1d;
    for _ in 0..500 {
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for _ in 0..rng(&mut seed) % 6 {
            let len = (rng(&mut seed) % 300 + 1) as usize;
            let chunk: Vec<u8> = (0..len).map(|_| rng(&mut seed) as u8).collect();
            wire.extend_from_slice(format!("{len:x}").as_bytes());
            if rng(&mut seed).is_multiple_of(3) {
                wire.extend_from_slice(b";ext=1");
            }
            wire.extend_from_slice(b"\r\n");
            wire.extend_from_slice(&chunk);
            wire.extend_from_slice(b"\r\n");
            expected.extend_from_slice(&chunk);
        }
        wire.extend_from_slice(b"0\r\n");
        if rng(&mut seed).is_multiple_of(2) {
            wire.extend_from_slice(b"Trailer-A: x\r\n");
        }
        wire.extend_from_slice(b"\r\n");
        let mut cuts: Vec<usize> = (0..rng(&mut seed) % 12)
            .map(|_| (rng(&mut seed) as usize) % (wire.len() + 1))
            .collect();
        cuts.sort_unstable();
        let (data, consumed, done) = run(&wire, &cuts).unwrap();
        assert_eq!((data, consumed, done), (expected, wire.len(), true));
    }
}

#[test]
fn random_garbage_never_panics() {
    let mut seed = 0x9e37_79b9_7f4a_7c15;
    let alphabet = b"0123456789abcdefABCDEFxg;= \t\r\n:\x00\x7f\xff";
    for _ in 0..20_000 {
        let len = (rng(&mut seed) % 40) as usize;
        let input: Vec<u8> = (0..len)
            .map(|_| alphabet[(rng(&mut seed) as usize) % alphabet.len()])
            .collect();
        let mut dec = ChunkedDecoder::new();
        let mut off = 0;
        while let Ok(step) = dec.decode(&input[off..]) {
            assert!(step.data.end <= step.consumed);
            off += step.consumed;
            if step.consumed == 0 {
                break;
            }
        }
    }
}
