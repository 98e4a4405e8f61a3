//! HTTP/1 request-line sniffing: recognises `METHOD SP request-target SP HTTP/1.` after at most
//! a few empty lines (RFC 9112 §2.2 lets a server ignore CRLFs before the request line). The
//! method is any RFC 9110 token of bounded length (methods are case-sensitive, so `get` is a
//! valid, unknown method), the target must start like one of the four request-target forms and
//! consist of visible ASCII or obs-text (the bytes `httparse` accepts), and the version must
//! begin `HTTP/1.` — so the h2c preface `PRI * HTTP/2.0`, an SSH banner or binary data are
//! rejected. It decides as early as the bytes allow: at `HTTP/1.`, or once a target of valid
//! bytes is long enough to be convincing on its own, which bounds what a caller buffers for it.

use super::Detect;

/// Longest method token accepted (real methods are far shorter; WebDAV's longest is 16).
pub const MAX_METHOD_BYTES: usize = 32;
/// Most bytes of empty lines (`CRLF` or bare `LF`) skipped before the request line.
pub const MAX_LEADING_NEWLINE_BYTES: usize = 16;
/// A request-target of this many valid bytes without its end in sight is decided as HTTP.
pub const HTTP_DECIDE_TARGET_BYTES: usize = 2048;

/// What the version token must start with.
const VERSION_PREFIX: &[u8] = b"HTTP/1.";

pub(super) fn request(prefix: &[u8]) -> Detect<()> {
    let line = match skip_empty_lines(prefix) {
        Ok(line) => line,
        Err(outcome) => return outcome,
    };

    // Method token, then SP.
    let Some(method_len) = line
        .iter()
        .take(MAX_METHOD_BYTES.saturating_add(1))
        .position(|&b| !is_tchar(b))
    else {
        return need_more_if(line.len() <= MAX_METHOD_BYTES);
    };
    let Some(target) = after_space(line, method_len).filter(|_| method_len > 0) else {
        return Detect::NotThis;
    };

    // Request-target, then SP.
    match target.first() {
        None => return Detect::NeedMore,
        Some(&b) if is_target_start(b) => {}
        Some(_) => return Detect::NotThis,
    }
    let Some(target_len) = target
        .iter()
        .take(HTTP_DECIDE_TARGET_BYTES)
        .position(|&b| !is_target_byte(b))
    else {
        return found_if(target.len() >= HTTP_DECIDE_TARGET_BYTES);
    };
    let Some(version) = after_space(target, target_len) else {
        return Detect::NotThis;
    };

    // HTTP-version: decided once `HTTP/1.` is there.
    let seen = version.len().min(VERSION_PREFIX.len());
    if version.get(..seen) != VERSION_PREFIX.get(..seen) {
        Detect::NotThis
    } else {
        found_if(seen == VERSION_PREFIX.len())
    }
}

/// What follows the SP that must sit at `at`, or `None` when another byte is there.
fn after_space(bytes: &[u8], at: usize) -> Option<&[u8]> {
    bytes.get(at..)?.strip_prefix(b" ")
}

/// Skips leading `CRLF` / `LF` lines and returns the rest; `Err` carries the answer when that
/// already decides.
fn skip_empty_lines(prefix: &[u8]) -> Result<&[u8], Detect<()>> {
    let mut rest = prefix;
    loop {
        rest = match rest {
            [] | [b'\r'] => return Err(Detect::NeedMore),
            [b'\n', tail @ ..] | [b'\r', b'\n', tail @ ..] => tail,
            [b'\r', ..] => return Err(Detect::NotThis),
            _ => return Ok(rest),
        };
        if prefix.len().saturating_sub(rest.len()) > MAX_LEADING_NEWLINE_BYTES {
            return Err(Detect::NotThis);
        }
    }
}

fn found_if(found: bool) -> Detect<()> {
    if found {
        Detect::Found(())
    } else {
        Detect::NeedMore
    }
}

fn need_more_if(still_valid: bool) -> Detect<()> {
    if still_valid {
        Detect::NeedMore
    } else {
        Detect::NotThis
    }
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Visible ASCII or obs-text: the request-target bytes `httparse` (the HTTP pipeline's parser)
/// accepts, so the sniffer never hands it a line it would refuse for its target bytes alone.
fn is_target_byte(b: u8) -> bool {
    b.is_ascii_graphic() || b >= 0x80
}

/// The first byte of an origin-form (`/`), asterisk-form (`*`), absolute-form (scheme: ALPHA)
/// or authority-form (host: reg-name, IPv4 or `[` IP-literal) request-target.
fn is_target_start(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"/*[%-._~".contains(&b)
}

#[cfg(test)]
mod tests;
