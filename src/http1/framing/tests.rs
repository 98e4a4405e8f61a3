//! Field-value grammar used by the framing rules: lists, Content-Length and Transfer-Encoding
//! folding, the hop-by-hop list; and the end-to-end request smuggling table (the response
//! framing table, which depends on method and status, lives with responses).

use super::super::{BodyKind, HeadLimits, ParseErrorKind, parse_request};
use super::*;
use ParseErrorKind::*;

fn parse(wire: &[u8]) -> Result<Option<(super::super::RequestHead, usize)>, ParseError> {
    parse_request(wire, &HeadLimits::default())
}

#[test]
fn list_elements() {
    let table: &[(&[u8], &[&[u8]])] = &[
        (b"", &[]),
        (b"a", &[b"a"]),
        (b" a ,\tb\t, ,,c", &[b"a", b"b", b"c"]),
        (b",", &[]),
    ];
    for (value, expected) in table {
        assert_eq!(list(value).collect::<Vec<_>>(), *expected);
    }
}

#[test]
fn content_length_values() {
    type Row = (&'static [&'static [u8]], Result<Option<u64>, &'static str>);
    let table: &[Row] = &[
        (&[b"0"], Ok(Some(0))),
        (&[b"42"], Ok(Some(42))),
        (&[b"42, 42", b"42"], Ok(Some(42))),
        (&[b"42", b"43"], Err("differing Content-Length values")),
        (&[b"4 2"], Err("invalid Content-Length")),
        (&[b"-1"], Err("invalid Content-Length")),
        (&[b""], Err("empty Content-Length")),
        (&[b"1,,1"], Err("empty Content-Length")),
        (&[b"99999999999999999999"], Err("Content-Length overflows")),
    ];
    for (values, expected) in table {
        let mut acc = None;
        let got = values
            .iter()
            .try_for_each(|v| content_length(v, &mut acc))
            .map(|()| acc)
            .map_err(|e| e.detail);
        assert_eq!(got, *expected, "{values:?}");
    }
}

#[test]
fn transfer_encoding_values() {
    type Row = (&'static [&'static [u8]], Result<bool, &'static str>);
    let table: &[Row] = &[
        (&[b"chunked"], Ok(true)),
        (&[b"gzip"], Ok(false)),
        (&[b"gzip;q=1, CHUNKED"], Ok(true)),
        (&[b"gzip", b"chunked"], Ok(true)),
        (
            &[b"chunked", b"gzip"],
            Err("chunked is not the final transfer coding"),
        ),
        (
            &[b"chunked", b"chunked"],
            Err("chunked is not the final transfer coding"),
        ),
        (&[b"chunked;a=b"], Err("chunked with parameters")),
        (&[b"chunked ;a=b"], Err("chunked with parameters")),
        (&[b"gz ip"], Err("invalid transfer coding")),
        (&[b";x"], Err("invalid transfer coding")),
    ];
    for (values, expected) in table {
        let mut seen = false;
        let got = values
            .iter()
            .try_for_each(|v| transfer_encoding(v, &mut seen))
            .map(|()| seen)
            .map_err(|e| e.detail);
        assert_eq!(got, *expected, "{values:?}");
    }
}

#[test]
fn hop_by_hop_list() {
    for name in [
        "Connection",
        "proxy-connection",
        "Keep-Alive",
        "TE",
        "Trailer",
        "Upgrade",
        "Proxy-Authorization",
    ] {
        assert!(is_static_hop_by_hop(name.as_bytes()), "{name}");
    }
    for name in [
        "Host",
        "Transfer-Encoding",
        "Content-Length",
        "Trailers",
        "Via",
        "T",
    ] {
        assert!(!is_static_hop_by_hop(name.as_bytes()), "{name}");
    }
}

#[test]
fn underscore_framing_names() {
    assert!(is_underscore_framing_field(b"Content_Length"));
    assert!(is_underscore_framing_field(b"transfer_encoding"));
    assert!(!is_underscore_framing_field(b"Content-Length"));
    assert!(!is_underscore_framing_field(b"X_Content_Lengt"));
    assert!(!is_underscore_framing_field(b"Transfer_Encoding_X"));
}

#[test]
fn tokens() {
    assert!(is_token(b"close") && is_token(b"x-a.b_c~!#$%&'*+^`|"));
    assert!(!is_token(b"") && !is_token(b"a b") && !is_token(b"a\"") && !is_token(b"a,b"));
}

/// The request framing table (RFC 9112 §6): every smuggling-relevant combination.
#[test]
fn request_framing() {
    type Row = (
        &'static str,
        &'static [u8],
        Result<BodyKind, ParseErrorKind>,
    );
    let max = u64::MAX;
    let table: &[Row] = &[
        ("none", b"", Ok(BodyKind::Empty)),
        ("CL", b"Content-Length: 5\r\n", Ok(BodyKind::Length(5))),
        ("CL 0", b"Content-Length: 0\r\n", Ok(BodyKind::Length(0))),
        (
            "CL OWS",
            b"Content-Length:  7 \t\r\n",
            Ok(BodyKind::Length(7)),
        ),
        (
            "CL lead zero",
            b"Content-Length: 007\r\n",
            Ok(BodyKind::Length(7)),
        ),
        (
            "CL max",
            b"Content-Length: 18446744073709551615\r\n",
            Ok(BodyKind::Length(max)),
        ),
        (
            "CL list same",
            b"Content-Length: 5, 5\r\n",
            Ok(BodyKind::Length(5)),
        ),
        (
            "CL dup same",
            b"Content-Length: 5\r\ncontent-length: 5\r\n",
            Ok(BodyKind::Length(5)),
        ),
        (
            "CL dup differ",
            b"Content-Length: 5\r\nContent-Length: 6\r\n",
            Err(BadFraming),
        ),
        (
            "CL list differ",
            b"Content-Length: 5, 6\r\n",
            Err(BadFraming),
        ),
        ("CL plus", b"Content-Length: +5\r\n", Err(BadFraming)),
        ("CL minus", b"Content-Length: -5\r\n", Err(BadFraming)),
        ("CL inner SP", b"Content-Length: 5 5\r\n", Err(BadFraming)),
        ("CL hex", b"Content-Length: 0x5\r\n", Err(BadFraming)),
        ("CL suffix", b"Content-Length: 5a\r\n", Err(BadFraming)),
        ("CL empty", b"Content-Length:\r\n", Err(BadFraming)),
        ("CL empty elem", b"Content-Length: 5,\r\n", Err(BadFraming)),
        (
            "CL overflow",
            b"Content-Length: 18446744073709551616\r\n",
            Err(BadFraming),
        ),
        (
            "TE chunked",
            b"Transfer-Encoding: chunked\r\n",
            Ok(BodyKind::Chunked),
        ),
        (
            "TE case",
            b"Transfer-Encoding: ChUnKeD\r\n",
            Ok(BodyKind::Chunked),
        ),
        (
            "TE list",
            b"Transfer-Encoding: gzip, chunked\r\n",
            Ok(BodyKind::Chunked),
        ),
        (
            "TE fields",
            b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
            Ok(BodyKind::Chunked),
        ),
        (
            "TE empty elem",
            b"Transfer-Encoding: , chunked\r\n",
            Ok(BodyKind::Chunked),
        ),
        (
            "TE not last",
            b"Transfer-Encoding: chunked, gzip\r\n",
            Err(BadFraming),
        ),
        (
            "TE twice",
            b"Transfer-Encoding: chunked, chunked\r\n",
            Err(BadFraming),
        ),
        (
            "TE twice fields",
            b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            Err(BadFraming),
        ),
        (
            "TE fields order",
            b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
            Err(BadFraming),
        ),
        ("TE gzip", b"Transfer-Encoding: gzip\r\n", Err(BadFraming)),
        (
            "TE identity",
            b"Transfer-Encoding: identity\r\n",
            Err(BadFraming),
        ),
        ("TE empty", b"Transfer-Encoding:\r\n", Err(BadFraming)),
        (
            "TE params",
            b"Transfer-Encoding: chunked;q=1\r\n",
            Err(BadFraming),
        ),
        (
            "TE suffix",
            b"Transfer-Encoding: chunkedx\r\n",
            Err(BadFraming),
        ),
        (
            "TE inner SP",
            b"Transfer-Encoding: chu nked\r\n",
            Err(BadFraming),
        ),
        (
            "TE quoted",
            b"Transfer-Encoding: \"chunked\"\r\n",
            Err(BadFraming),
        ),
        (
            "CL+TE",
            b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            Err(BadFraming),
        ),
        (
            "TE+CL",
            b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
            Err(BadFraming),
        ),
        (
            "TE+bad CL",
            b"Transfer-Encoding: chunked\r\nContent-Length: x\r\n",
            Err(BadFraming),
        ),
        (
            "Conn names CL",
            b"Connection: Content-Length\r\nContent-Length: 5\r\n",
            Err(BadFraming),
        ),
        (
            "Conn names TE",
            b"Connection: close, transfer-encoding\r\n",
            Err(BadFraming),
        ),
        (
            "underscore TE",
            b"Transfer_Encoding: chunked\r\n",
            Err(BadFraming),
        ),
        ("underscore CL", b"Content_Length: 5\r\n", Err(BadFraming)),
        (
            "TE with SP name",
            b"Transfer-Encoding : chunked\r\n",
            Err(Malformed),
        ),
        (
            "TE obs-fold",
            b"Transfer-Encoding:\r\n chunked\r\n",
            Err(Malformed),
        ),
    ];
    for (name, fields, expected) in table {
        let mut wire = b"POST / HTTP/1.1\r\nHost: a\r\n".to_vec();
        wire.extend_from_slice(fields);
        wire.extend_from_slice(b"\r\n");
        let got = parse(&wire).map(|r| r.unwrap().0.body).map_err(|e| e.kind);
        assert_eq!(got, *expected, "{name}");
    }
}
