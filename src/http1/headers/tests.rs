//! Header storage: lookup, iteration order, push/remove and span bookkeeping.

use super::*;

fn sample() -> Headers {
    let mut h = Headers::default();
    h.push(b"Host", b"a");
    h.push(b"X-Dup", b"1");
    h.push(b"x-dup", b"2");
    h.push(b"Empty", b"");
    h
}

#[test]
fn lookup_is_case_insensitive_and_ordered() {
    let h = sample();
    assert_eq!(h.len(), 4);
    assert!(!h.is_empty());
    assert_eq!(h.get("HOST"), Some(&b"a"[..]));
    assert_eq!(h.get("x-DUP"), Some(&b"1"[..]));
    assert_eq!(
        h.get_all("X-Dup").collect::<Vec<_>>(),
        vec![&b"1"[..], &b"2"[..]]
    );
    assert_eq!(h.get("empty"), Some(&b""[..]));
    assert_eq!(h.get("missing"), None);
    assert!(h.contains("Empty") && !h.contains("Emptyx"));
    let names: Vec<&[u8]> = h.iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec![&b"Host"[..], b"X-Dup", b"x-dup", b"Empty"]);
}

#[test]
fn remove_and_push_again() {
    let mut h = sample();
    assert_eq!(h.remove("X-DUP"), 2);
    assert_eq!(h.remove("X-DUP"), 0);
    assert_eq!(h.len(), 2);
    h.push(b"X-New", b"v");
    assert_eq!(h.iter().last(), Some((&b"X-New"[..], &b"v"[..])));
    assert_eq!(h.get("host"), Some(&b"a"[..]));
    assert!(Headers::default().is_empty());
}

#[test]
fn push_ignores_unsafe_fields() {
    let mut h = Headers::default();
    for (name, value) in [
        (&b"X"[..], &b"a\r\nInjected: 1"[..]),
        (b"X", b"a\nb"),
        (b"X", b"a\0"),
        (b"X Y", b"v"),
        (b"", b"v"),
        (b"X:", b"v"),
    ] {
        h.push(name, value);
    }
    assert!(h.is_empty());
    h.push(b"X", b"tab\tand obs-text \xff ok");
    assert_eq!(h.len(), 1);
}

#[test]
fn spans() {
    let base = b"abcdef";
    assert_eq!(Span::of(base, &base[2..4]).map(|s| s.range()), Some(2..4));
    assert_eq!(Span::of(base, &base[6..]).map(|s| s.range()), Some(6..6));
    assert_eq!(Span::of(&base[1..], &base[..2]), None);
    assert_eq!(Span::of(&base[..3], &base[2..5]), None);
    #[allow(clippy::reversed_empty_ranges)]
    let reversed = 3..2;
    assert_eq!(Span::from_range(reversed), None);
    let h = sample();
    assert_eq!(h.slice(Span::from_range(1000..1001).unwrap()), b"");
}
