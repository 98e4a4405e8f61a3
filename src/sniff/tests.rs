//! `detect` tables (TLS, HTTP/1, unknown, undecided) and a bounded randomized test: mutated
//! captured hellos and requests never panic, and every function's answers over growing
//! prefixes of one input are stable — `NeedMore` until a decision, then that same decision.

use super::*;

const CHROMIUM: &[u8] = include_bytes!("testdata/chromium-156.bin");
const CURL: &[u8] = include_bytes!("testdata/curl-7.88-openssl3.bin");
const S_CLIENT: &[u8] = include_bytes!("testdata/openssl-s_client-3.0.bin");
const PYTHON: &[u8] = include_bytes!("testdata/python-3.11-ssl.bin");

const SEEDS: [&[u8]; 8] = [
    CHROMIUM,
    CURL,
    S_CLIENT,
    PYTHON,
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"\r\nCONNECT a:443 HTTP/1.1\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"SSH-2.0-OpenSSH_9.6\r\n",
];

#[test]
fn detects_tls() {
    match detect(CHROMIUM) {
        Detect::Found(Protocol::Tls(hello)) => {
            assert_eq!(hello.sni.as_deref(), Some("chromium.example.test"));
            assert_eq!(hello.alpn, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(detect(&PYTHON[..PYTHON.len() - 1]), Detect::NeedMore);
    assert_eq!(detect(&[0x16]), Detect::NeedMore);
}

#[test]
fn detects_http1() {
    for input in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"CONNECT example.com:443 HTTP/1.1\r\n\r\n",
        b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        b"get / HTTP/1.1\r\n",
    ] {
        assert_eq!(detect(input), Detect::Found(Protocol::Http1));
    }
    assert_eq!(detect(b"GET / HTTP/1"), Detect::NeedMore);
}

#[test]
fn everything_else_is_unknown() {
    for input in [
        &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..],
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"\x00\x01\x02\x03",
        b"\x80\x2e\x01\x03\x01",
        b"\x16\x03\x01\x00\x00",
        b"\x17\x03\x03\x00\x10",
        b"\r\x00",
    ] {
        assert_eq!(detect(input), Detect::Found(Protocol::Unknown));
    }
}

#[test]
fn empty_prefix_needs_more() {
    assert_eq!(detect(b""), Detect::NeedMore);
    assert_eq!(client_hello(b""), Detect::NeedMore);
    assert_eq!(http1_request(b""), Detect::NeedMore);
}

#[test]
fn max_sniff_bytes_is_enough_to_decide() {
    // The largest accepted hello needs no more than MAX_SNIFF_BYTES, and every input is
    // decided by then.
    const { assert!(MAX_SNIFF_BYTES >= MAX_CLIENT_HELLO_BYTES + 4 + 5 * 5) };
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..64 {
        let mut input = vec![0x16, 0x03, 0x03];
        input.extend((0..MAX_SNIFF_BYTES).map(|_| rng.byte()));
        assert_ne!(detect(&input[..MAX_SNIFF_BYTES]), Detect::NeedMore);
    }
}

/// xorshift64: tiny, deterministic, good enough to drive mutations.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

fn mutate(rng: &mut XorShift, seed: &[u8]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(bytes.len());
        match rng.below(6) {
            0 => bytes[at] = rng.byte(),
            1 => bytes[at] ^= 1 << rng.below(8),
            2 => bytes.truncate(at),
            3 => bytes.extend((0..rng.below(64)).map(|_| rng.byte())),
            // Length fields sit next to each other; nudge a 16-bit value by a little.
            4 if at + 1 < bytes.len() => {
                let v = u16::from_be_bytes([bytes[at], bytes[at + 1]]);
                let v = v.wrapping_add(rng.below(5) as u16).wrapping_sub(2);
                bytes[at..at + 2].copy_from_slice(&v.to_be_bytes());
            }
            _ => {
                let at = at.min(bytes.len());
                bytes.insert(at, rng.byte());
            }
        }
        if bytes.is_empty() {
            break;
        }
    }
    bytes
}

/// Answers over growing prefixes are `NeedMore*` then one constant decision.
fn assert_stable<T: PartialEq + std::fmt::Debug>(
    input: &[u8],
    cuts: &[usize],
    f: impl Fn(&[u8]) -> Detect<T>,
) {
    let full = f(input);
    let mut decided: Option<Detect<T>> = None;
    for &cut in cuts {
        let got = f(&input[..cut]);
        match &decided {
            Some(d) => assert_eq!(&got, d, "cut {cut} of {input:?}"),
            None if got != Detect::NeedMore => decided = Some(got),
            None => {}
        }
    }
    if let Some(d) = decided {
        assert_eq!(full, d, "full input {input:?}");
    }
}

#[test]
fn randomized_mutations_are_stable() {
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let mut found = 0;
    for i in 0..20_000 {
        let seed = SEEDS[i % SEEDS.len()];
        let input = mutate(&mut rng, seed);
        let mut cuts: Vec<usize> = (0..12).map(|_| rng.below(input.len() + 1)).collect();
        cuts.extend([0, 1, 5, 6, 9, input.len()].map(|c| c.min(input.len())));
        cuts.sort_unstable();
        assert_stable(&input, &cuts, client_hello);
        assert_stable(&input, &cuts, http1_request);
        assert_stable(&input, &cuts, detect);
        if matches!(
            detect(&input),
            Detect::Found(Protocol::Tls(_) | Protocol::Http1)
        ) {
            found += 1;
        }
    }
    // Most single mutations of a real hello land in ignored bytes (random, key shares).
    assert!(found > 5_000, "{found}");
}
