//! The root certificate authority lynxio signs its leaf certificates with. On first use
//! [`load_or_create`] makes the CA directory (mode 0700) and an ECDSA P-256 root (CN
//! `"lynxio CA <host>"`, O "lynxio", CA basic constraint with path length 0, keyCertSign + cRLSign,
//! backdated a day, valid ten years), written as `ca.pem` and `ca-key.pem` (0600), each
//! atomically through a temporary file and a rename. Later runs load both files and check them:
//! the key must match the certificate and the pair must sign a leaf that rustls' webpki verifier
//! accepts. A missing half, a corrupt or unreadable file or a mismatched pair is a [`CaError`]
//! naming the file — the CA is never silently regenerated, because users have trusted it.

use std::fs::{DirBuilder, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

/// File name of the CA certificate inside the CA directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the CA private key (PKCS#8 PEM, mode 0600) inside the CA directory.
pub const CA_KEY_FILE: &str = "ca-key.pem";
/// How long a new root CA is valid.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Certificates are backdated by this much to tolerate clocks that run behind.
pub const BACKDATE: Duration = Duration::from_secs(24 * 3600);
/// The name of the probe leaf signed at load time to prove the pair works.
const PROBE_NAME: &str = "ca-check.lynxio.invalid";

/// Why the CA could not be created or loaded. Every message names the file or directory.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("cannot create CA directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a valid CA certificate: {reason}", path.display())]
    BadCert { path: PathBuf, reason: String },
    #[error("{} is not a valid private key: {reason}", path.display())]
    BadKey { path: PathBuf, reason: String },
    #[error(
        "{} does not match the CA certificate {}: {reason} (restore the right pair, or remove both \
         files to create a new CA that clients must trust again)",
        key.display(),
        cert.display()
    )]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error(
        "{} exists but {} is missing (restore it, or remove {} to create a new CA that clients \
         must trust again)",
        present.display(),
        missing.display(),
        present.display()
    )]
    Incomplete { present: PathBuf, missing: PathBuf },
    #[error("cannot generate a CA in {}: {reason}", dir.display())]
    Generate { dir: PathBuf, reason: String },
}

/// The loaded root CA: its certificate (PEM and DER) and an issuer that signs leaves.
pub struct CertificateAuthority {
    dir: PathBuf,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    created: bool,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("CertificateAuthority")
            .field("dir", &self.dir)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// The CA certificate as PEM (what `lynxio ca export` prints and users trust).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate as DER (the last element of every leaf chain).
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The signer of leaf certificates.
    pub fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }

    /// The directory holding `ca.pem` and `ca-key.pem`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the CA certificate file.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join(CA_CERT_FILE)
    }

    /// True when this load created the CA (the caller may tell the user to trust it).
    pub fn created(&self) -> bool {
        self.created
    }

    /// Verify `chain` (leaf first, then intermediates) for `host` against this CA alone, with
    /// rustls' webpki verifier at the current time. `host` is a DNS name or an IP address.
    pub fn verify(&self, chain: &[CertificateDer<'_>], host: &str) -> Result<(), rustls::Error> {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert_der.clone())?;
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        let name = ServerName::try_from(host)
            .map_err(|e| rustls::Error::General(format!("bad server name {host:?}: {e}")))?;
        let (leaf, rest) = chain
            .split_first()
            .ok_or_else(|| rustls::Error::General("empty certificate chain".into()))?;
        verifier.verify_server_cert(leaf, rest, &name, &[], UnixTime::now())?;
        Ok(())
    }
}

/// The crypto provider lynxio uses for every rustls object: ring, chosen explicitly.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A random positive 16-byte certificate serial number from the provider's CSPRNG.
pub fn random_serial(provider: &CryptoProvider) -> Result<SerialNumber, rustls::Error> {
    let mut bytes = [0u8; 16];
    provider
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| rustls::Error::FailedToGetRandomBytes)?;
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x01; // and a full 16 bytes long
    Ok(SerialNumber::from_slice(&bytes))
}

/// Set `params` validity to `[now - BACKDATE, now + lifetime - BACKDATE]` (so `lifetime` total).
pub fn set_validity(params: &mut CertificateParams, lifetime: Duration) {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    // rcgen does not re-export `time`; build the instants from its epoch helper instead.
    let now = rcgen::date_time_ymd(1970, 1, 1) + since_epoch;
    params.not_before = now - BACKDATE;
    params.not_after = now + lifetime.saturating_sub(BACKDATE);
}

/// The default CA directory: `$XDG_DATA_HOME/lynxio`, else `~/.local/share/lynxio`, else (no
/// home at all) `.lynxio` in the working directory.
pub fn default_dir() -> PathBuf {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    if let Some(data) = absolute("XDG_DATA_HOME") {
        return data.join("lynxio");
    }
    if let Some(home) = absolute("HOME") {
        return home.join(".local/share/lynxio");
    }
    PathBuf::from(".lynxio")
}

/// Load the CA in `dir`, creating the directory and a new CA when neither file exists.
pub fn load_or_create(dir: &Path) -> Result<CertificateAuthority, CaError> {
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    let cert_exists = exists(&cert_path)?;
    let key_exists = exists(&key_path)?;
    match (cert_exists, key_exists) {
        (true, true) => load(dir),
        (true, false) => Err(CaError::Incomplete {
            present: cert_path,
            missing: key_path,
        }),
        (false, true) => Err(CaError::Incomplete {
            present: key_path,
            missing: cert_path,
        }),
        (false, false) => {
            create(dir)?;
            let mut ca = load(dir)?;
            ca.created = true;
            Ok(ca)
        }
    }
}

/// Load an existing CA from `dir` (both files must exist and match).
pub fn load(dir: &Path) -> Result<CertificateAuthority, CaError> {
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    let cert_pem = read(&cert_path)?;
    let key_pem = read(&key_path)?;
    let bad_cert = |reason: String| CaError::BadCert {
        path: cert_path.clone(),
        reason,
    };
    let bad_key = |reason: String| CaError::BadKey {
        path: key_path.clone(),
        reason,
    };

    let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|e| bad_cert(format!("no PEM certificate ({e})")))?;
    check_ca_cert(&cert_der).map_err(bad_cert)?;
    let key_der = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| bad_key(format!("no PEM private key ({e})")))?;
    let key_pair = KeyPair::try_from(&key_der).map_err(|e| bad_key(e.to_string()))?;
    let provider = provider();
    // Does the key belong to the certificate? (rustls compares the public keys.)
    rustls::sign::CertifiedKey::from_der(vec![cert_der.clone()], key_der, &provider).map_err(
        |e| match e {
            rustls::Error::InconsistentKeys(_) => CaError::Mismatch {
                cert: cert_path.clone(),
                key: key_path.clone(),
                reason: e.to_string(),
            },
            other => bad_cert(other.to_string()),
        },
    )?;
    let issuer = Issuer::from_ca_cert_der(&cert_der, key_pair)
        .map_err(|e| bad_cert(format!("cannot use as issuer: {e}")))?;
    let ca = CertificateAuthority {
        dir: dir.to_owned(),
        cert_pem,
        cert_der,
        issuer,
        created: false,
    };
    // Prove the pair signs leaves that a real verifier accepts (CA flag, validity, signature).
    let probe = probe_leaf(&ca, &provider).map_err(|e| bad_cert(format!("cannot sign: {e}")))?;
    ca.verify(&[probe], PROBE_NAME)
        .map_err(|e| bad_cert(format!("a leaf it signs does not verify: {e}")))?;
    if let Ok(meta) = std::fs::metadata(&key_path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %key_path.display(),
            mode = format_args!("{:o}", meta.permissions().mode() & 0o777),
            "CA private key is readable by other users; chmod 600 it"
        );
    }
    Ok(ca)
}

/// What webpki does not check on a trust anchor but browsers and OpenSSL do: the CA flag and
/// the validity period.
fn check_ca_cert(der: &CertificateDer<'_>) -> Result<(), String> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| format!("cannot parse: {e}"))?;
    if !cert.is_ca() {
        return Err("it is not a CA (basicConstraints CA:TRUE missing)".into());
    }
    let validity = cert.validity();
    if !validity.is_valid() {
        return Err(format!(
            "it is valid only from {} to {}",
            validity.not_before, validity.not_after
        ));
    }
    Ok(())
}

/// A throwaway leaf carrying the CA's own public key (no key generation needed).
fn probe_leaf(
    ca: &CertificateAuthority,
    provider: &CryptoProvider,
) -> Result<CertificateDer<'static>, String> {
    let mut params =
        CertificateParams::new(vec![PROBE_NAME.to_owned()]).map_err(|e| e.to_string())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.serial_number = Some(random_serial(provider).map_err(|e| e.to_string())?);
    set_validity(&mut params, Duration::from_secs(2 * 24 * 3600));
    let cert = params
        .signed_by(ca.issuer.key(), &ca.issuer)
        .map_err(|e| e.to_string())?;
    Ok(cert.der().clone())
}

/// Generate a new root CA and write it into `dir` (key first, each file atomically).
fn create(dir: &Path) -> Result<(), CaError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| CaError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
    let generate = |reason: String| CaError::Generate {
        dir: dir.to_owned(),
        reason,
    };
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| generate(e.to_string()))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("lynxio CA {}", ca_suffix()));
    params
        .distinguished_name
        .push(DnType::OrganizationName, "lynxio");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.serial_number = Some(random_serial(&provider()).map_err(|e| generate(e.to_string()))?);
    set_validity(&mut params, CA_VALIDITY);
    let cert = params
        .self_signed(&key)
        .map_err(|e| generate(e.to_string()))?;
    write_atomic(
        &dir.join(CA_KEY_FILE),
        key.serialize_pem().as_bytes(),
        0o600,
    )?;
    write_atomic(&dir.join(CA_CERT_FILE), cert.pem().as_bytes(), 0o644)?;
    Ok(())
}

/// The machine's host name, or a short random hex tag when it has none.
fn ca_suffix() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
        .take(40)
        .collect();
    if !host.is_empty() {
        return host;
    }
    let mut bytes = [0u8; 4];
    let _ = provider().secure_random.fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Write `bytes` to `path` via a temporary file in the same directory, fsync, then rename.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CaError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let err = |source| CaError::Write {
        path: path.to_owned(),
        source,
    };
    let result = (|| {
        let _ = std::fs::remove_file(&tmp); // a leftover from a crashed run
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    Ok(())
}

fn exists(path: &Path) -> Result<bool, CaError> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        // NotADirectory: a path component is a file; creating the directory will say so.
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => Ok(false),
        Err(source) => Err(CaError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

fn read(path: &Path) -> Result<String, CaError> {
    std::fs::read_to_string(path).map_err(|source| CaError::Read {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests;
