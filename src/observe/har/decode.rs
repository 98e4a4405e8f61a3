//! Header and URL values in HAR shapes: `Cookie` and `Set-Cookie` (with cookie dates), query
//! strings and form bodies, reason phrases.

use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};

use super::{Precision, iso};

/// `name=value` with surrounding whitespace trimmed; a piece without `=` is a nameless value
/// (as browsers read it). `None` for an empty piece.
pub(super) fn split_pair(pair: &str) -> Option<(&str, &str)> {
    let pair = pair.trim();
    if pair.is_empty() {
        return None;
    }
    Some(match pair.split_once('=') {
        Some((name, value)) => (name.trim(), value.trim()),
        None => ("", pair),
    })
}

/// `a=1&b=x+y` (query string or form body) as HAR name/value pairs, percent-decoded with `+`
/// as space. A piece without `=` is a name with an empty value.
pub(super) fn form_pairs(query: &str) -> Vec<Value> {
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            json!({ "name": form_decode(name), "value": form_decode(value) })
        })
        .collect()
}

/// Percent-decoding with `+` as space; a `%` not followed by two hex digits stays as it is,
/// and bytes that do not form UTF-8 become U+FFFD.
pub(super) fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escaped = match (b, bytes.get(i + 1..i + 3)) {
            (b'%', Some(&[hi, lo])) => hex(hi).zip(hex(lo)).map(|(h, l)| (h << 4) | l),
            _ => None,
        };
        match (b, escaped) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (_, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// A `Set-Cookie` value as a HAR cookie. `received` is when the response head arrived, the
/// base for `Max-Age` (which wins over `Expires`).
pub(super) fn set_cookie(value: &str, received: SystemTime) -> Option<Value> {
    let mut parts = value.split(';');
    let (name, val) = split_pair(parts.next()?)?;
    let mut cookie = Map::new();
    cookie.insert("name".into(), json!(name));
    cookie.insert("value".into(), json!(val));
    let mut expires = None;
    let mut max_age = None;
    for attr in parts {
        let Some((key, arg)) = split_pair(attr) else {
            continue;
        };
        // A bare attribute (`Secure`) comes back as a nameless value.
        let (key, arg) = if key.is_empty() {
            (arg, "")
        } else {
            (key, arg)
        };
        let (field, value) = match key.to_ascii_lowercase().as_str() {
            "path" => ("path", json!(arg)),
            "domain" => ("domain", json!(arg)),
            "httponly" => ("httpOnly", json!(true)),
            "secure" => ("secure", json!(true)),
            "expires" => {
                expires = cookie_date(arg);
                continue;
            }
            "max-age" => {
                max_age = arg.parse::<i64>().ok().or(max_age);
                continue;
            }
            _ => continue,
        };
        cookie.insert(field.into(), value);
    }
    let expires = match max_age {
        Some(secs) => {
            let at = received.checked_add(Duration::from_secs(secs.max(0).unsigned_abs()));
            at.and_then(|at| iso(at, Precision::Seconds))
        }
        None => expires,
    };
    if let Some(expires) = expires {
        cookie.insert("expires".into(), json!(expires));
    }
    Some(Value::Object(cookie))
}

/// A cookie date (`Wed, 21 Oct 2015 07:28:00 GMT` and the older variants, read the lenient
/// RFC 6265 §5.1.1 way) as ISO 8601 UTC; `None` when it is not one.
pub(super) fn cookie_date(s: &str) -> Option<String> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let (mut time, mut day, mut month, mut year) = (None, None, None, None);
    let tokens = s.split(|c: char| !(c.is_ascii_alphanumeric() || c == ':'));
    let digits =
        |t: &str, max: usize| (1..=max).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit());
    for token in tokens.filter(|t| !t.is_empty()) {
        if time.is_none() && token.contains(':') {
            let mut hms = token.split(':');
            let mut next = || hms.next().filter(|t| digits(t, 2))?.parse::<u32>().ok();
            if let (Some(h), Some(m), Some(s), None) = (next(), next(), next(), hms.next()) {
                time = Some((h, m, s));
                continue;
            }
        }
        if day.is_none() && digits(token, 2) {
            day = token.parse::<u32>().ok();
            continue;
        }
        let prefix = token.get(..3).map(str::to_ascii_lowercase);
        let named = prefix.and_then(|p| MONTHS.iter().position(|m| *m == p));
        if month.is_none()
            && let Some(i) = named
        {
            month = u32::try_from(i + 1).ok();
            continue;
        }
        if year.is_none() && digits(token, 4) {
            year = token.parse::<u32>().ok();
        }
    }
    let (h, m, sec) = time?;
    let (day, month) = (day?, month?);
    let year = match year? {
        y @ 0..=69 => y + 2000,
        y @ 70..=99 => y + 1900,
        y => y,
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if year < 1601 || day == 0 || day > month_days || h > 23 || m > 59 || sec > 59 {
        return None;
    }
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{sec:02}Z"
    ))
}

/// The reason phrase for `status`, or `""` for unregistered codes.
pub(super) fn status_text(status: u16) -> &'static str {
    match crate::http1::reason_phrase(status) {
        "" => match status {
            102 => "Processing",
            203 => "Non-Authoritative Information",
            205 => "Reset Content",
            207 => "Multi-Status",
            208 => "Already Reported",
            226 => "IM Used",
            300 => "Multiple Choices",
            305 => "Use Proxy",
            402 => "Payment Required",
            406 => "Not Acceptable",
            412 => "Precondition Failed",
            416 => "Range Not Satisfiable",
            418 => "I'm a teapot",
            422 => "Unprocessable Content",
            423 => "Locked",
            424 => "Failed Dependency",
            425 => "Too Early",
            428 => "Precondition Required",
            451 => "Unavailable For Legal Reasons",
            506 => "Variant Also Negotiates",
            507 => "Insufficient Storage",
            508 => "Loop Detected",
            510 => "Not Extended",
            511 => "Network Authentication Required",
            _ => "",
        },
        phrase => phrase,
    }
}
