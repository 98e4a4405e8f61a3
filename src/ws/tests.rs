//! Frames built by a small local encoder (and cross-checked against tungstenite's encoder) fed
//! whole, byte by byte, at every split point and in seeded random chunks; every protocol error
//! with its close code; incremental UTF-8 checking; close payloads and `close_frame` round trips.

use super::*;
use crate::testutil::Rng;

const C2S: Direction = Direction::ClientToServer;
const S2C: Direction = Direction::ServerToClient;
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Encodes one frame: `b0` is the whole first byte (FIN, RSV bits, opcode).
fn raw(b0: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut f = vec![b0];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => f.push(m | n as u8),
        n if n <= 0xffff => {
            f.push(m | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(m | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if let Some(key) = mask {
        f.extend_from_slice(&key);
    }
    let body = f.len();
    f.extend_from_slice(payload);
    if let Some(key) = mask {
        for (i, b) in f[body..].iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }
    f
}

/// A frame with FIN set or not, opcode `op`, masked for the client direction.
fn frame(dir: Direction, fin: bool, op: u8, payload: &[u8]) -> Vec<u8> {
    let b0 = if fin { 0x80 } else { 0 } | op;
    raw(b0, payload, (dir == C2S).then_some(KEY))
}

fn run_chunks(
    dir: Direction,
    deflate: bool,
    keep: usize,
    chunks: &[&[u8]],
) -> Result<Vec<Observed>, ProtocolError> {
    let mut ins = FrameInspector::new(dir, deflate, keep);
    let mut out = Vec::new();
    for c in chunks {
        ins.feed(c, &mut out)?;
    }
    Ok(out)
}

fn run(dir: Direction, keep: usize, bytes: &[u8]) -> Result<Vec<Observed>, ProtocolError> {
    run_chunks(dir, false, keep, &[bytes])
}

fn err_code(dir: Direction, deflate: bool, bytes: &[u8]) -> u16 {
    match run_chunks(dir, deflate, 16, &[bytes]) {
        Ok(out) => panic!("expected an error, got {out:?}"),
        Err(e) => e.code,
    }
}

fn text(first: &[u8], length: u64, fragments: u32, truncated: bool) -> Observed {
    Observed::Message {
        opcode: DataOpcode::Text,
        length,
        fragments,
        compressed: false,
        first: first.to_vec(),
        truncated,
    }
}

/// Several frames of every kind and length encoding, for one direction.
fn mixed_stream(dir: Direction, big: usize) -> Vec<u8> {
    let long: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
    let huge: Vec<u8> = (0..big as u32).map(|i| (i * 7 % 256) as u8).collect();
    let mut s = Vec::new();
    s.extend(frame(dir, true, 0x1, "héllo wörld €𝄞".as_bytes()));
    s.extend(frame(dir, false, 0x1, "frag".as_bytes()));
    s.extend(frame(dir, true, 0x9, b"ping!"));
    s.extend(frame(dir, false, 0x0, "mé".as_bytes()));
    s.extend(frame(dir, true, 0x0, b"nt"));
    s.extend(frame(dir, true, 0x2, &long));
    s.extend(frame(dir, true, 0xA, b""));
    s.extend(frame(dir, true, 0x2, &huge));
    s.extend(frame(dir, true, 0x1, b""));
    s.extend(frame(dir, true, 0x8, b"\x03\xe8bye"));
    s
}

#[test]
fn every_split_gives_the_same_events() {
    for dir in [C2S, S2C] {
        let stream = mixed_stream(dir, 1000);
        let whole = run(dir, 8, &stream).unwrap();
        assert_eq!(whole.len(), 8, "{whole:?}");
        let first = "héllo wörld €𝄞".as_bytes();
        assert_eq!(whole[0], text(&first[..8], first.len() as u64, 1, true));
        assert_eq!(
            whole[1],
            Observed::Ping {
                length: 5,
                first: b"ping!".to_vec()
            }
        );
        assert_eq!(whole[2], text(&"fragmént".as_bytes()[..8], 9, 3, true));
        assert_eq!(
            whole[7],
            Observed::Close {
                code: Some(1000),
                reason: "bye".into()
            }
        );
        for at in 0..=stream.len() {
            let (a, b) = stream.split_at(at);
            assert_eq!(
                run_chunks(dir, false, 8, &[a, b]).unwrap(),
                whole,
                "split {at}"
            );
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(run_chunks(dir, false, 8, &bytes).unwrap(), whole);
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        for _ in 0..50 {
            let mut chunks = Vec::new();
            let mut rest = &stream[..];
            while !rest.is_empty() {
                let n = (1 + rng.next() % 40) as usize;
                let (c, r) = rest.split_at(n.min(rest.len()));
                chunks.push(c);
                rest = r;
            }
            assert_eq!(run_chunks(dir, false, 8, &chunks).unwrap(), whole);
        }
    }
}

#[test]
fn big_frames_split_randomly_and_byte_by_byte() {
    for dir in [C2S, S2C] {
        // 70,000 bytes needs the 64-bit length form.
        let stream = mixed_stream(dir, 70_000);
        let whole = run(dir, 100, &stream).unwrap();
        match &whole[5] {
            Observed::Message {
                opcode: DataOpcode::Binary,
                length: 70_000,
                fragments: 1,
                first,
                truncated: true,
                ..
            } => {
                let want: Vec<u8> = (0..100u32).map(|i| (i * 7 % 256) as u8).collect();
                assert_eq!(first, &want);
            }
            other => panic!("{other:?}"),
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(run_chunks(dir, false, 100, &bytes).unwrap(), whole);
        let mut rng = Rng(42);
        let mut chunks = Vec::new();
        let mut rest = &stream[..];
        while !rest.is_empty() {
            let n = (1 + rng.next() % 3000) as usize;
            let (c, r) = rest.split_at(n.min(rest.len()));
            chunks.push(c);
            rest = r;
        }
        assert_eq!(run_chunks(dir, false, 100, &chunks).unwrap(), whole);
    }
}

#[test]
fn encoder_matches_tungstenite() {
    use tungstenite::protocol::frame::Frame as TFrame;
    use tungstenite::protocol::frame::coding::{Data, OpCode};
    for len in [0usize, 5, 125, 126, 300, 65_535, 65_536, 70_000] {
        let payload = vec![0x5a; len];
        for mask in [None, Some(KEY)] {
            let mut t = TFrame::message(payload.clone(), OpCode::Data(Data::Binary), true);
            t.header_mut().mask = mask;
            let mut theirs = Vec::new();
            t.format(&mut theirs).unwrap();
            assert_eq!(raw(0x82, &payload, mask), theirs, "len {len} mask {mask:?}");
        }
    }
}

#[test]
fn masked_client_messages_are_unmasked() {
    let mut s = frame(C2S, true, 0x1, b"Hello, world");
    s.extend(frame(C2S, true, 0x2, &[0, 1, 2, 3, 4, 5, 6]));
    let out = run(C2S, 5, &s).unwrap();
    assert_eq!(out[0], text(b"Hello", 12, 1, true));
    assert_eq!(
        out[1],
        Observed::Message {
            opcode: DataOpcode::Binary,
            length: 7,
            fragments: 1,
            compressed: false,
            first: vec![0, 1, 2, 3, 4],
            truncated: true,
        }
    );
    // The mask position carries across fragments split anywhere: keep all bytes.
    let mut s = frame(C2S, false, 0x2, &[9, 8, 7]);
    s.extend(frame(C2S, true, 0x0, &[6, 5, 4, 3, 2]));
    let chunks: Vec<&[u8]> = s.chunks(3).collect();
    let out = run_chunks(C2S, false, 64, &chunks).unwrap();
    assert_eq!(
        out,
        vec![Observed::Message {
            opcode: DataOpcode::Binary,
            length: 8,
            fragments: 2,
            compressed: false,
            first: vec![9, 8, 7, 6, 5, 4, 3, 2],
            truncated: false,
        }]
    );
}

#[test]
fn fragmented_text_with_interleaved_ping() {
    let mut s = frame(S2C, false, 0x1, b"one ");
    s.extend(frame(S2C, false, 0x0, b"two "));
    s.extend(frame(S2C, true, 0x9, b"p"));
    s.extend(frame(S2C, true, 0x0, b"three"));
    let out = run(S2C, 64, &s).unwrap();
    assert_eq!(
        out,
        vec![
            Observed::Ping {
                length: 1,
                first: b"p".to_vec()
            },
            text(b"one two three", 13, 3, false),
        ]
    );
}

#[test]
fn one_mib_binary_is_counted_not_kept() {
    let payload = vec![0xab; 1 << 20];
    let s = frame(C2S, true, 0x2, &payload);
    let mut ins = FrameInspector::new(C2S, false, 32);
    let mut out = Vec::new();
    assert!(ins.at_message_boundary());
    for c in s.chunks(4096) {
        ins.feed(c, &mut out).unwrap();
        if out.is_empty() {
            assert!(!ins.at_message_boundary());
        }
    }
    assert!(ins.at_message_boundary());
    assert_eq!(
        out,
        vec![Observed::Message {
            opcode: DataOpcode::Binary,
            length: 1 << 20,
            fragments: 1,
            compressed: false,
            first: vec![0xab; 32],
            truncated: true,
        }]
    );
    // keep = 0 keeps nothing; a message exactly `keep` long is not truncated.
    let out = run(S2C, 0, &frame(S2C, true, 0x1, b"abc")).unwrap();
    assert_eq!(out, vec![text(b"", 3, 1, true)]);
    let out = run(S2C, 3, &frame(S2C, true, 0x1, b"abc")).unwrap();
    assert_eq!(out, vec![text(b"abc", 3, 1, false)]);
}

#[test]
fn compressed_flag_needs_deflate() {
    // Compressed text is not UTF-8 checked: the payload is deflate data.
    let mut s = raw(0x40 | 0x01, &[0xf2, 0x48, 0xcd], Some(KEY));
    s.extend(raw(0x80, &[0xc9, 0xff], Some(KEY)));
    let out = run_chunks(C2S, true, 4, &[&s]).unwrap();
    assert_eq!(
        out,
        vec![Observed::Message {
            opcode: DataOpcode::Text,
            length: 5,
            fragments: 2,
            compressed: true,
            first: vec![0xf2, 0x48, 0xcd, 0xc9],
            truncated: true,
        }]
    );
    assert_eq!(err_code(C2S, false, &s), 1002);
    // RSV1 on a continuation or control frame is wrong even with deflate.
    let mut s = raw(0x02, b"a", None);
    s.extend(raw(0xC0, b"b", None));
    assert_eq!(err_code(S2C, true, &s), 1002);
    assert_eq!(err_code(S2C, true, &raw(0xC9, b"", None)), 1002);
}

#[test]
fn protocol_errors_and_their_codes() {
    let cases: Vec<(&str, Direction, Vec<u8>, u16)> = vec![
        ("rsv2", S2C, raw(0xA1, b"x", None), 1002),
        ("rsv3", S2C, raw(0x91, b"x", None), 1002),
        ("opcode 3", S2C, raw(0x83, b"", None), 1002),
        ("opcode 0xB", S2C, raw(0x8B, b"", None), 1002),
        ("long ping", S2C, raw(0x89, &[0; 126], None), 1002),
        ("fragmented ping", S2C, raw(0x09, b"", None), 1002),
        ("unmasked client", C2S, raw(0x81, b"hi", None), 1002),
        ("masked server", S2C, raw(0x81, b"hi", Some(KEY)), 1002),
        ("lone continuation", S2C, raw(0x80, b"hi", None), 1002),
        ("close length 1", S2C, raw(0x88, b"\x03", None), 1002),
        (
            "close code 999",
            S2C,
            raw(0x88, &999u16.to_be_bytes(), None),
            1002,
        ),
        (
            "close reason utf8",
            S2C,
            raw(0x88, b"\x03\xe8\xff", None),
            1007,
        ),
        ("text utf8", S2C, raw(0x81, b"a\xffb", None), 1007),
        (
            "text surrogate",
            S2C,
            raw(0x81, b"\xed\xa0\x80", None),
            1007,
        ),
        ("text overlong", S2C, raw(0x81, b"\xc0\xaf", None), 1007),
        ("text cut at end", S2C, raw(0x81, b"ab\xe2\x82", None), 1007),
    ];
    for (name, dir, bytes, code) in cases {
        assert_eq!(err_code(dir, false, &bytes), code, "{name}");
    }
    // A new data frame while a fragmented message is in progress.
    let mut s = raw(0x01, b"a", None);
    s.extend(raw(0x81, b"b", None));
    assert_eq!(err_code(S2C, false, &s), 1002);
    // A 64-bit length with its top bit set.
    let mut s = vec![0x82, 127];
    s.extend_from_slice(&(1u64 << 63).to_be_bytes());
    assert_eq!(err_code(S2C, false, &s), 1002);
    // Header errors are reported as soon as the first two bytes arrive.
    let mut ins = FrameInspector::new(C2S, false, 0);
    assert_eq!(ins.feed(&[0x81], &mut Vec::new()), Ok(()));
    assert_eq!(ins.feed(&[0x05], &mut Vec::new()).unwrap_err().code, 1002);
}

#[test]
fn failure_is_sticky_and_keeps_earlier_events() {
    let mut s = frame(S2C, true, 0x9, b"x");
    s.extend(raw(0x83, b"", None));
    let mut ins = FrameInspector::new(S2C, false, 4);
    let mut out = Vec::new();
    let e = ins.feed(&s, &mut out).unwrap_err();
    assert_eq!(out.len(), 1);
    assert_eq!(ins.error(), Some(e));
    assert_eq!(ins.feed(&frame(S2C, true, 0xA, b""), &mut out), Err(e));
    assert_eq!(out.len(), 1);
    assert!(!ins.at_message_boundary());
}

#[test]
fn utf8_split_anywhere_is_accepted() {
    let msg = "aé€𝄞z€é𝄞".as_bytes();
    for cut in 0..=msg.len() {
        let mut s = frame(C2S, false, 0x1, &msg[..cut]);
        s.extend(frame(C2S, true, 0x0, &msg[cut..]));
        for at in 0..=s.len() {
            let out = run_chunks(C2S, false, 64, &[&s[..at], &s[at..]]).unwrap();
            assert_eq!(out, vec![text(msg, msg.len() as u64, 2, false)]);
        }
    }
    // Invalid sequences split across fragments are still caught.
    for bad in [
        &b"\xe2\x82A"[..],
        b"\xf0\x9d\x84",
        b"\xf5\x80\x80\x80",
        b"\xe0\x80\x80",
    ] {
        for cut in 0..=bad.len() {
            let mut s = raw(0x01, &bad[..cut], None);
            s.extend(raw(0x80, &bad[cut..], None));
            let bytes: Vec<&[u8]> = s.chunks(1).collect();
            let r = run_chunks(S2C, false, 64, &bytes);
            assert_eq!(r.unwrap_err().code, 1007, "{bad:?} cut {cut}");
        }
    }
    // Binary messages are not UTF-8 checked.
    assert!(run(S2C, 4, &raw(0x82, b"\xff\xfe", None)).is_ok());
}

#[test]
fn close_payloads() {
    let out = run(
        C2S,
        0,
        &frame(C2S, true, 0x8, b"\x0f\xa0going away \xc3\xa9"),
    )
    .unwrap();
    assert_eq!(
        out,
        vec![Observed::Close {
            code: Some(4000),
            reason: "going away é".into()
        }]
    );
    let out = run(S2C, 0, &frame(S2C, true, 0x8, b"")).unwrap();
    assert_eq!(
        out,
        vec![Observed::Close {
            code: None,
            reason: String::new()
        }]
    );
    assert_eq!(err_code(S2C, false, &frame(S2C, true, 0x8, b"\x03")), 1002);
    for code in [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535,
    ] {
        let s = frame(S2C, true, 0x8, &code.to_be_bytes());
        assert_eq!(err_code(S2C, false, &s), 1002, "code {code}");
    }
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1011, 1012, 1014, 3000, 4999,
    ] {
        let s = frame(S2C, true, 0x8, &code.to_be_bytes());
        assert!(run(S2C, 0, &s).is_ok(), "code {code}");
    }
}

#[test]
fn close_frame_round_trips() {
    for (dir, mask) in [(C2S, Some(KEY)), (S2C, None)] {
        let f = close_frame(1002, "bad frame", mask);
        assert_eq!(f.len(), 2 + mask.map_or(0, |_| 4) + 2 + 9);
        let out = run(dir, 0, &f).unwrap();
        assert_eq!(
            out,
            vec![Observed::Close {
                code: Some(1002),
                reason: "bad frame".into()
            }]
        );
        // A long reason is cut at a char boundary to fit 125 payload bytes.
        let long = "é".repeat(100);
        let f = close_frame(1001, &long, mask);
        let out = run(dir, 0, &f).unwrap();
        let Observed::Close { code, reason } = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(*code, Some(1001));
        assert_eq!(reason, &"é".repeat(61));
        let e = close_frame(1000, "", mask);
        assert_eq!(e.len(), 2 + mask.map_or(0, |_| 4) + 2);
        assert!(run(dir, 0, &e).is_ok());
    }
    // The masked form is the plain encoding of code and reason.
    let f = close_frame(1000, "ok", Some(KEY));
    assert_eq!(f, raw(0x88, b"\x03\xe8ok", Some(KEY)));
}
