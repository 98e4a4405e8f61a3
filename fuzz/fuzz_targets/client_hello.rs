//! Fuzzes the CONNECT-tunnel sniffer (`lynxio::sniff`) on arbitrary bytes: no input may panic,
//! `detect` must agree with `client_hello` and `http1_request`, and answers must be stable over
//! prefixes (a prefix of a decided input is `NeedMore` or the same decision).

#![no_main]

use libfuzzer_sys::fuzz_target;
use lynxio::sniff::{self, Detect, Protocol};

fuzz_target!(|data: &[u8]| {
    let data = data.get(..sniff::MAX_SNIFF_BYTES).unwrap_or(data);
    let hello = sniff::client_hello(data);
    let http = sniff::http1_request(data);
    let detected = sniff::detect(data);
    match (&hello, &http) {
        (Detect::Found(h), _) => assert_eq!(detected, Detect::Found(Protocol::Tls(h.clone()))),
        (_, Detect::Found(())) => assert_eq!(detected, Detect::Found(Protocol::Http1)),
        (Detect::NotThis, Detect::NotThis) => {
            assert_eq!(detected, Detect::Found(Protocol::Unknown))
        }
        _ => {}
    }
    if let Detect::Found(h) = &hello {
        if let Some(sni) = &h.sni {
            assert!(!sni.is_empty() && sni.len() <= sniff::MAX_HOST_NAME_BYTES);
            assert!(
                sni.bytes()
                    .all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase())
            );
        }
    }
    for cut in [data.len() / 2, data.len().saturating_sub(1), 5, 9] {
        let Some(prefix) = data.get(..cut) else {
            continue;
        };
        let part = sniff::client_hello(prefix);
        assert!(
            part == Detect::NeedMore || part == hello,
            "client_hello prefix {cut}"
        );
        let part = sniff::http1_request(prefix);
        assert!(
            part == Detect::NeedMore || part == http,
            "http1_request prefix {cut}"
        );
        let part = sniff::detect(prefix);
        assert!(
            part == Detect::NeedMore || part == detected,
            "detect prefix {cut}"
        );
    }
});
