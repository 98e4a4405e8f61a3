//! ClientHello tables: the four captured hellos (SNI, ALPN, every split offset, re-framed over
//! several records), synthetic hellos for each SNI/ALPN rule, and malformed variants of every
//! layer (record, handshake header, body, extensions), all from byte slices.

use super::*;

const CHROMIUM: &[u8] = include_bytes!("../testdata/chromium-156.bin");
const CURL: &[u8] = include_bytes!("../testdata/curl-7.88-openssl3.bin");
const S_CLIENT: &[u8] = include_bytes!("../testdata/openssl-s_client-3.0.bin");
const PYTHON: &[u8] = include_bytes!("../testdata/python-3.11-ssl.bin");

/// (name, wire bytes, SNI, offers h2 + http/1.1)
const VECTORS: [(&str, &[u8], &str, bool); 4] = [
    ("chromium", CHROMIUM, "chromium.example.test", true),
    ("curl", CURL, "localhost", true),
    ("s_client", S_CLIENT, "example.test", true),
    ("python", PYTHON, "python.example.test", false),
];

fn expected(sni: &str, alpn: bool) -> ClientHello {
    ClientHello {
        sni: Some(sni.to_owned()),
        alpn: if alpn {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            Vec::new()
        },
        legacy_version: 0x0303,
    }
}

fn found(bytes: &[u8]) -> ClientHello {
    match client_hello(bytes) {
        Detect::Found(hello) => hello,
        other => panic!("expected Found, got {other:?}"),
    }
}

/// The handshake message carried by well-formed records (headers stripped).
fn message_of(mut wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let [_, _, _, hi, lo, rest @ ..] = wire {
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        out.extend_from_slice(&rest[..len]);
        wire = &rest[len..];
    }
    out
}

/// Frames `message` as handshake records of payload sizes taken from `sizes` in turn (the last
/// size repeats), all with record version `version`.
fn frame(message: &[u8], sizes: &[usize], version: u16) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = message;
    let mut i = 0;
    while !rest.is_empty() {
        let size = sizes[i.min(sizes.len() - 1)].min(rest.len());
        out.push(CONTENT_TYPE_HANDSHAKE);
        out.extend_from_slice(&version.to_be_bytes());
        out.extend_from_slice(&(size as u16).to_be_bytes());
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size..];
        i += 1;
    }
    out
}

fn record(message: &[u8]) -> Vec<u8> {
    frame(message, &[MAX_RECORD_PAYLOAD_BYTES], 0x0301)
}

fn ext(kind: u16, data: &[u8]) -> Vec<u8> {
    let mut out = kind.to_be_bytes().to_vec();
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
    out
}

fn u16_prefixed(data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(data);
    out
}

fn sni_ext(name: &[u8]) -> Vec<u8> {
    let mut entry = vec![SNI_HOST_NAME];
    entry.extend_from_slice(&u16_prefixed(name));
    ext(EXT_SERVER_NAME, &u16_prefixed(&entry))
}

fn alpn_ext(protocols: &[&[u8]]) -> Vec<u8> {
    let mut list = Vec::new();
    for p in protocols {
        list.push(p.len() as u8);
        list.extend_from_slice(p);
    }
    ext(EXT_ALPN, &u16_prefixed(&list))
}

/// A ClientHello handshake message with `extensions` (None: no extensions block at all).
fn message(extensions: Option<&[Vec<u8>]>) -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[0x11; RANDOM_LEN]);
    body.push(32);
    body.extend_from_slice(&[0x22; 32]);
    body.extend_from_slice(&[0x00, 0x04, 0x13, 0x01, 0x13, 0x02]);
    body.extend_from_slice(&[0x01, 0x00]);
    if let Some(exts) = extensions {
        body.extend_from_slice(&u16_prefixed(&exts.concat()));
    }
    let len = (body.len() as u32).to_be_bytes();
    let mut msg = vec![HANDSHAKE_CLIENT_HELLO, len[1], len[2], len[3]];
    msg.extend_from_slice(&body);
    msg
}

fn synthetic(extensions: &[Vec<u8>]) -> Vec<u8> {
    record(&message(Some(extensions)))
}

/// Offset of the first extension's type in a single-record vector.
fn first_extension(wire: &[u8]) -> usize {
    let mut at = RECORD_HEADER_LEN + HANDSHAKE_HEADER_LEN + 2 + RANDOM_LEN;
    at += 1 + usize::from(wire[at]);
    at += 2 + usize::from(u16::from_be_bytes([wire[at], wire[at + 1]]));
    at += 1 + usize::from(wire[at]);
    at + 2
}

fn set_u16(bytes: &mut [u8], at: usize, value: u16) {
    bytes[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

#[test]
fn vectors_give_sni_and_alpn() {
    for (name, wire, sni, alpn) in VECTORS {
        assert_eq!(found(wire), expected(sni, alpn), "{name}");
    }
}

#[test]
fn every_strict_prefix_needs_more() {
    for (name, wire, _, _) in VECTORS {
        for cut in 0..wire.len() {
            assert_eq!(
                client_hello(&wire[..cut]),
                Detect::NeedMore,
                "{name} cut at {cut}"
            );
        }
    }
}

#[test]
fn bytes_after_the_hello_are_ignored() {
    for (name, wire, sni, alpn) in VECTORS {
        // A TLS 1.3 client may send change_cipher_spec right after its hello; or anything.
        for tail in [&[0x14, 0x03, 0x03, 0x00, 0x01, 0x01][..], &[0xff; 100]] {
            let mut bytes = wire.to_vec();
            bytes.extend_from_slice(tail);
            assert_eq!(found(&bytes), expected(sni, alpn), "{name}");
        }
    }
}

#[test]
fn reframed_over_several_records() {
    let splits: [&[usize]; 9] = [
        &[512],
        &[1],
        &[3],
        &[4, 100_000],
        &[1, 2, 3, 4, 5],
        &[100, 200, 300],
        &[700, 50],
        &[16, 16_384],
        &[2000],
    ];
    for (name, wire, sni, alpn) in VECTORS {
        let msg = message_of(wire);
        for sizes in splits {
            for version in [0x0301, 0x0303, 0x0304] {
                let bytes = frame(&msg, sizes, version);
                assert_eq!(found(&bytes), expected(sni, alpn), "{name} {sizes:?}");
            }
        }
    }
}

#[test]
fn reframed_prefixes_need_more() {
    for (name, wire, _, _) in VECTORS {
        for sizes in [&[512][..], &[7, 300]] {
            let bytes = frame(&message_of(wire), sizes, 0x0303);
            for cut in 0..bytes.len() {
                assert_eq!(
                    client_hello(&bytes[..cut]),
                    Detect::NeedMore,
                    "{name} {cut}"
                );
            }
        }
    }
}

#[test]
fn records_may_mix_versions() {
    let msg = message_of(CHROMIUM);
    let mut bytes = frame(&msg[..1000], &[1000], 0x0301);
    bytes.extend_from_slice(&frame(&msg[1000..], &[512], 0x0303));
    assert_eq!(found(&bytes), expected("chromium.example.test", true));
}

#[test]
fn hello_without_extensions() {
    let hello = found(&record(&message(None)));
    assert_eq!(
        hello,
        ClientHello {
            legacy_version: 0x0303,
            ..ClientHello::default()
        }
    );
    let hello = found(&synthetic(&[ext(0x000a, &[0, 2, 0, 0x1d])]));
    assert_eq!(hello.sni, None);
    assert!(hello.alpn.is_empty());
}

#[test]
fn host_names_are_lowercased_and_checked() {
    let good: [(&[u8], &str); 6] = [
        (b"Example.COM", "example.com"),
        (b"a", "a"),
        (b"10.0.0.1", "10.0.0.1"),
        (b"_srv.my-host.internal", "_srv.my-host.internal"),
        (&[b'a'; 63], &"a".repeat(63)),
        (b"xn--bcher-kva.example", "xn--bcher-kva.example"),
    ];
    for (name, want) in good {
        let hello = found(&synthetic(&[sni_ext(name)]));
        assert_eq!(hello.sni.as_deref(), Some(want));
    }
    let long_label = [b'a'; 64];
    let long_name = [b"a.".repeat(127).as_slice(), b"ab"].concat(); // 256 bytes
    let max_name = [b"a.".repeat(127).as_slice(), b"a"].concat(); // 255 bytes
    assert_eq!(
        found(&synthetic(&[sni_ext(&max_name)]))
            .sni
            .map(|s| s.len()),
        Some(255)
    );
    let bad: [&[u8]; 12] = [
        b"",
        b"exa\0mple.com",
        b"example.com\0",
        b"example.com.",
        b".example.com",
        b"a..b",
        b"has space.com",
        b"caf\xc3\xa9.example",
        b"[::1]",
        b"host:443",
        &long_label,
        &long_name,
    ];
    for name in bad {
        let bytes = synthetic(&[sni_ext(name)]);
        assert_eq!(
            client_hello(&bytes),
            Detect::NotThis,
            "{:?}",
            String::from_utf8_lossy(name)
        );
    }
}

#[test]
fn bad_host_name_is_rejected_before_it_is_complete() {
    let bytes = synthetic(&[sni_ext(b"exa\0mple.com"), alpn_ext(&[b"h2"])]);
    let nul = bytes
        .windows(4)
        .position(|w| w == b"exa\0")
        .expect("name in hello")
        + 3;
    assert_eq!(client_hello(&bytes[..nul]), Detect::NeedMore);
    assert_eq!(client_hello(&bytes[..=nul]), Detect::NotThis);
}

#[test]
fn server_name_list_shapes() {
    let two_names = {
        let mut list = vec![SNI_HOST_NAME];
        list.extend_from_slice(&u16_prefixed(b"a.test"));
        list.push(SNI_HOST_NAME);
        list.extend_from_slice(&u16_prefixed(b"b.test"));
        ext(EXT_SERVER_NAME, &u16_prefixed(&list))
    };
    let other_type = {
        let mut list = vec![1];
        list.extend_from_slice(&u16_prefixed(b"a.test"));
        ext(EXT_SERVER_NAME, &u16_prefixed(&list))
    };
    let list_shorter_than_extension = {
        let mut e = sni_ext(b"a.test");
        e.push(0);
        let len = (e.len() - 4) as u16;
        set_u16(&mut e, 2, len);
        e
    };
    for bad in [
        two_names,
        other_type,
        list_shorter_than_extension,
        ext(EXT_SERVER_NAME, &[]),
        ext(EXT_SERVER_NAME, &[0, 0]),
        ext(EXT_SERVER_NAME, &[0, 3, 0, 0, 0]),
        ext(EXT_SERVER_NAME, &[0, 9, 0, 0, 1, b'a']),
    ] {
        assert_eq!(
            client_hello(&synthetic(std::slice::from_ref(&bad))),
            Detect::NotThis,
            "{bad:?}"
        );
    }
}

#[test]
fn alpn_lists() {
    let hello = found(&synthetic(&[alpn_ext(&[b"h2", b"http/1.1", b"\xff\x00"])]));
    assert_eq!(
        hello.alpn,
        vec![b"h2".to_vec(), b"http/1.1".to_vec(), vec![0xff, 0]]
    );
    for bad in [
        ext(EXT_ALPN, &[]),
        ext(EXT_ALPN, &[0, 0]),
        ext(EXT_ALPN, &[0, 3, 0, 1, b'a']),
        ext(EXT_ALPN, &[0, 3, 3, b'h', b'2']),
        ext(EXT_ALPN, &[0, 3, 5, b'h', b'2']),
        ext(EXT_ALPN, &[0, 2, 1, b'a', 0]),
    ] {
        assert_eq!(
            client_hello(&synthetic(std::slice::from_ref(&bad))),
            Detect::NotThis,
            "{bad:?}"
        );
    }
}

#[test]
fn duplicate_extensions_are_rejected() {
    for exts in [
        vec![sni_ext(b"a.test"), sni_ext(b"b.test")],
        vec![alpn_ext(&[b"h2"]), alpn_ext(&[b"h2"])],
        vec![ext(0x0a0a, &[]), ext(0x0a0a, &[])],
        vec![ext(0xffff, &[1]), sni_ext(b"a.test"), ext(0xffff, &[])],
    ] {
        assert_eq!(client_hello(&synthetic(&exts)), Detect::NotThis);
    }
    let distinct = vec![ext(0x0a0a, &[]), sni_ext(b"a.test"), ext(0x1a1a, &[0])];
    assert_eq!(found(&synthetic(&distinct)).sni.as_deref(), Some("a.test"));
}

#[test]
fn record_layer_violations() {
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    for (content_type, what) in [(0x17, "application data"), (0x15, "alert"), (0x14, "ccs")] {
        let mut b = CURL.to_vec();
        b[0] = content_type;
        cases.push((what, b));
    }
    for version in [0x0200, 0x0300, 0x0305, 0x0303 ^ 0x0100, 0xfeff] {
        let mut b = CURL.to_vec();
        set_u16(&mut b, 1, version);
        cases.push(("record version", b));
    }
    for len in [0, 0x4001, 0xffff] {
        let mut b = CURL.to_vec();
        set_u16(&mut b, 3, len);
        cases.push(("record length", b));
    }
    for (name, wire, _, _) in VECTORS {
        // One byte short: the hello's last byte is then read as the next record's type.
        let mut b = wire.to_vec();
        let len = u16::from_be_bytes([b[3], b[4]]);
        set_u16(&mut b, 3, len - 1);
        cases.push((name, b));
    }
    let msg = message_of(CHROMIUM);
    let mut zero_in_middle = frame(&msg[..10], &[10], 0x0303);
    zero_in_middle.extend_from_slice(&[CONTENT_TYPE_HANDSHAKE, 3, 3, 0, 0]);
    zero_in_middle.extend_from_slice(&frame(&msg[10..], &[512], 0x0303));
    cases.push(("zero-length record in the middle", zero_in_middle));
    let mut other_type_in_middle = frame(&msg[..10], &[10], 0x0303);
    other_type_in_middle.extend_from_slice(&[0x17, 3, 3, 0, 1, 0]);
    cases.push(("application data in the middle", other_type_in_middle));
    // SSLv2-compatible hello (RFC 5246 appendix E.2): a 2-byte length with the high bit set.
    cases.push((
        "sslv2",
        vec![
            0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10,
        ],
    ));
    for (what, bytes) in cases {
        assert_eq!(client_hello(&bytes), Detect::NotThis, "{what}");
    }
    assert_eq!(
        client_hello(&[0x16, 0x03, 0x01, 0x00, 0x00]),
        Detect::NotThis
    );
    assert_eq!(client_hello(&[0x16, 0x02]), Detect::NotThis);
    assert_eq!(client_hello(&[0x16, 0x03, 0x05]), Detect::NotThis);
    assert_eq!(client_hello(&[0x16, 0x03, 0x01, 0x40]), Detect::NeedMore);
}

#[test]
fn handshake_header_violations() {
    let mut server_hello = CURL.to_vec();
    server_hello[5] = 2;
    assert_eq!(client_hello(&server_hello[..6]), Detect::NotThis);
    for (what, len) in [
        ("too small", MIN_CLIENT_HELLO_BYTES - 1),
        ("too large", MAX_CLIENT_HELLO_BYTES + 1),
        ("one more than carried", 0x01fc + 1),
        ("one less than carried", 0x01fc - 1),
    ] {
        let mut b = CURL.to_vec();
        let len = (len as u32).to_be_bytes();
        b[6..9].copy_from_slice(&len[1..]);
        assert_eq!(client_hello(&b), Detect::NotThis, "{what}");
    }
}

#[test]
fn body_violations() {
    let at_version = RECORD_HEADER_LEN + HANDSHAKE_HEADER_LEN;
    let at_session = at_version + 2 + RANDOM_LEN;
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut b = S_CLIENT.to_vec();
    set_u16(&mut b, at_version, 0x0200);
    cases.push(("legacy version", b));
    let mut b = S_CLIENT.to_vec();
    b[at_session] = 33;
    cases.push(("session id too long", b));
    let mut b = S_CLIENT.to_vec();
    b[at_session] = 0xff;
    cases.push(("session id overruns", b));
    let at_suites = at_session + 1 + usize::from(S_CLIENT[at_session]);
    for (what, value) in [
        ("suites odd", 1),
        ("no suites", 0),
        ("suites overrun", 0xfffe),
    ] {
        let mut b = S_CLIENT.to_vec();
        set_u16(&mut b, at_suites, value);
        cases.push((what, b));
    }
    for (name, wire, _, _) in VECTORS {
        let first = first_extension(wire);
        let mut b = wire.to_vec();
        set_u16(&mut b, first + 2, 0xffff);
        cases.push((name, b));
        let mut b = wire.to_vec();
        let block = u16::from_be_bytes([b[first - 2], b[first - 1]]);
        set_u16(&mut b, first - 2, block + 1);
        cases.push((name, b));
        let mut b = wire.to_vec();
        set_u16(&mut b, first - 2, block - 1);
        cases.push((name, b));
        let mut b = wire.to_vec();
        b[first - 4] = 0;
        cases.push(("no compression", b));
    }
    let mut no_compression = message(Some(&[]));
    no_compression[4 + 2 + RANDOM_LEN + 1 + 32 + 2 + 4] = 0;
    cases.push(("zero compression methods", record(&no_compression)));
    for (what, bytes) in cases {
        assert_eq!(client_hello(&bytes), Detect::NotThis, "{what}");
    }
}

#[test]
fn size_limits() {
    // A maximal hello (padding extension) fits in MAX_SNIFF_BYTES with room for its headers.
    let fill = MAX_CLIENT_HELLO_BYTES - (message(Some(&[])).len() - HANDSHAKE_HEADER_LEN) - 4;
    let big = message(Some(&[ext(21, &vec![0; fill])]));
    assert_eq!(big.len(), MAX_CLIENT_HELLO_BYTES + HANDSHAKE_HEADER_LEN);
    let framed = frame(&big, &[MAX_RECORD_PAYLOAD_BYTES], 0x0303);
    assert!(framed.len() <= MAX_SNIFF_BYTES);
    assert_eq!(found(&framed).legacy_version, 0x0303);
    assert_eq!(client_hello(&framed[..framed.len() - 1]), Detect::NeedMore);
    let framed = frame(&big, &[2048], 0x0303);
    assert!(framed.len() <= MAX_SNIFF_BYTES);
    assert!(matches!(client_hello(&framed), Detect::Found(_)));
    // The same hello in 512-byte records needs more than MAX_SNIFF_BYTES: rejected as soon as
    // the record headers make that certain, long before the limit.
    let framed = frame(&big, &[512], 0x0303);
    assert!(framed.len() > MAX_SNIFF_BYTES);
    assert_eq!(client_hello(&framed), Detect::NotThis);
    assert_eq!(client_hello(&framed[..40_000]), Detect::NotThis);
    assert_eq!(client_hello(&framed[..30_000]), Detect::NeedMore);
    // A small hello in 1-byte records is fine (6 wire bytes per message byte).
    let tiny = frame(&message_of(S_CLIENT), &[1], 0x0301);
    assert_eq!(found(&tiny), expected("example.test", true));
}
