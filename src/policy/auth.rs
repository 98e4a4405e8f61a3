//! Proxy authentication: `--auth USER:PASS` (repeatable) and `auth_file` (`user:pass` lines,
//! `#` comments) become a [`Credentials`] set. A request is allowed only with a
//! `Proxy-Authorization: Basic` value that decodes to one of them; every comparison runs in
//! constant time over all entries, so the time taken says nothing about which user or how much
//! of a password matched. The header's value is never logged, forwarded or captured (the
//! pipeline redacts and strips it).

use std::path::Path;

use base64::Engine;
use subtle::ConstantTimeEq;

/// Longest `Proxy-Authorization` value looked at (a longer one is refused unread).
pub const MAX_AUTH_HEADER: usize = 4096;
/// Longest user or password accepted in a configured credential.
pub const MAX_CREDENTIAL_LEN: usize = 1024;
/// The realm announced in `Proxy-Authenticate`.
pub const REALM: &str = "lynxio";

/// The accepted `user:pass` pairs.
#[derive(Clone)]
pub struct Credentials {
    /// Each entry as the decoded `user:pass` bytes a client's header must equal.
    pairs: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a secret, even in a debug dump of the config.
        write!(f, "Credentials({} users)", self.pairs.len())
    }
}

/// A credential that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{origin}: expected USER:PASS (a colon between a non-empty user and a password)")]
    Malformed { origin: String },
    #[error("{origin}: user or password longer than {MAX_CREDENTIAL_LEN} bytes")]
    TooLong { origin: String },
    #[error("cannot read auth file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
}

/// Why a request's credentials were not accepted (for the log; the client gets a plain 407).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `Proxy-Authorization` field.
    Missing,
    /// Not `Basic`, not base64, or not `user:pass`.
    Malformed,
    /// Well-formed but no such user and password.
    Wrong,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Missing => "no Proxy-Authorization",
            Refusal::Malformed => "malformed Proxy-Authorization",
            Refusal::Wrong => "wrong user or password",
        }
    }
}

impl Credentials {
    /// Builds the set from `--auth` values and the lines of an auth file; `None` when both are
    /// empty (no authentication).
    pub fn load(flags: &[String], file: Option<&Path>) -> Result<Option<Credentials>, AuthError> {
        let mut pairs = Vec::new();
        for (i, f) in flags.iter().enumerate() {
            pairs.push(parse_pair(f, || format!("--auth #{}", i + 1))?);
        }
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
                path: path.display().to_string(),
                source,
            })?;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                pairs.push(parse_pair(line, || {
                    format!("{} line {}", path.display(), n + 1)
                })?);
            }
        }
        Ok((!pairs.is_empty()).then_some(Credentials { pairs }))
    }

    /// Users configured.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Checks a request's `Proxy-Authorization` value (`None`: absent).
    pub fn check(&self, header: Option<&[u8]>) -> Result<(), Refusal> {
        let value = header.ok_or(Refusal::Missing)?;
        if value.len() > MAX_AUTH_HEADER {
            return Err(Refusal::Malformed);
        }
        let value = trim(value);
        let (scheme, token) = match value.iter().position(|&b| b == b' ') {
            Some(i) => (&value[..i], trim(&value[i + 1..])),
            None => return Err(Refusal::Malformed),
        };
        if !scheme.eq_ignore_ascii_case(b"basic") {
            return Err(Refusal::Malformed);
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(token)
            .map_err(|_| Refusal::Malformed)?;
        if !decoded.contains(&b':') {
            return Err(Refusal::Malformed);
        }
        // Compare against every entry without stopping early.
        let mut found = subtle::Choice::from(0u8);
        for pair in &self.pairs {
            found |= pair.as_slice().ct_eq(&decoded);
        }
        if bool::from(found) {
            Ok(())
        } else {
            Err(Refusal::Wrong)
        }
    }
}

fn parse_pair(text: &str, origin: impl Fn() -> String) -> Result<Vec<u8>, AuthError> {
    let Some((user, pass)) = text.split_once(':') else {
        return Err(AuthError::Malformed { origin: origin() });
    };
    if user.is_empty() || user.contains(|c: char| c.is_control()) {
        return Err(AuthError::Malformed { origin: origin() });
    }
    if user.len() > MAX_CREDENTIAL_LEN || pass.len() > MAX_CREDENTIAL_LEN {
        return Err(AuthError::TooLong { origin: origin() });
    }
    Ok(text.as_bytes().to_vec())
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    b.get(start..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(flags: &[&str]) -> Credentials {
        let flags: Vec<String> = flags.iter().map(|s| (*s).to_owned()).collect();
        Credentials::load(&flags, None)
            .expect("valid")
            .expect("some")
    }

    fn basic(user_pass: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        )
        .into_bytes()
    }

    #[test]
    fn accepts_configured_pairs_only() {
        let c = creds(&["alice:s3cret", "bob:pa:ss"]);
        assert_eq!(c.check(Some(&basic("alice:s3cret"))), Ok(()));
        assert_eq!(c.check(Some(&basic("bob:pa:ss"))), Ok(()));
        assert_eq!(c.check(Some(&basic("alice:wrong"))), Err(Refusal::Wrong));
        assert_eq!(c.check(Some(&basic("alice:s3cre"))), Err(Refusal::Wrong));
        assert_eq!(c.check(Some(&basic("eve:s3cret"))), Err(Refusal::Wrong));
        assert_eq!(c.check(None), Err(Refusal::Missing));
    }

    #[test]
    fn scheme_is_case_insensitive_and_others_are_malformed() {
        let c = creds(&["u:p"]);
        let lower = basic("u:p").to_ascii_lowercase();
        // base64 is case-sensitive: only the scheme may change case.
        let mut v = b"bAsIc ".to_vec();
        v.extend_from_slice(&basic("u:p")[6..]);
        assert_eq!(c.check(Some(&v)), Ok(()));
        assert_ne!(c.check(Some(&lower)), Ok(()));
        for bad in [
            &b"Bearer abc"[..],
            b"Basic",
            b"Basic !!!",
            b"",
            b"Basic dXNlcg==",
        ] {
            assert_eq!(c.check(Some(bad)), Err(Refusal::Malformed), "{bad:?}");
        }
        assert_eq!(
            c.check(Some(&vec![b'a'; MAX_AUTH_HEADER + 1])),
            Err(Refusal::Malformed)
        );
    }

    #[test]
    fn file_lines_and_errors() {
        let dir = std::env::temp_dir().join(format!("lynxio-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("users.txt");
        std::fs::write(&file, "# users\nalice:one\n\n  bob:two  \n").expect("write");
        let c = Credentials::load(&[], Some(&file))
            .expect("valid")
            .expect("some");
        assert_eq!(c.len(), 2);
        assert_eq!(c.check(Some(&basic("bob:two"))), Ok(()));
        std::fs::write(&file, "alice:one\nnocolon\n").expect("write");
        let err = Credentials::load(&[], Some(&file)).expect_err("line 2 is bad");
        assert!(err.to_string().contains("line 2"), "{err}");
        assert!(Credentials::load(&[":x".into()], None).is_err());
        assert!(Credentials::load(&[], None).expect("ok").is_none());
        let _ = std::fs::remove_dir_all(&dir);
        assert!(format!("{c:?}").contains("2 users") && !format!("{c:?}").contains("one"));
    }
}
