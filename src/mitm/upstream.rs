//! The TLS client side of interception: how lynxio verifies the origins it connects to on a
//! client's behalf. Roots are the Mozilla set compiled into `webpki-roots` (the same on every
//! machine, independent of a system store the user may not control) plus the PEM certificates
//! of `--upstream-ca`, which are pinned too (trusted as an origin's own certificate: see
//! [`super::pinned`]); `--insecure-upstream` replaces verification with acceptance of any
//! certificate (handshake signatures are still checked) and is logged loudly at start. Built
//! once as a template without session resumption; each worker derives its configurations from
//! it with its own session store ([`super::resume::OriginConfigs`]), so no session store is
//! shared between workers.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use super::ca;
use super::pinned::{Pin, PinningVerifier};

/// ALPN offered to origins: lynxio speaks HTTP/1.1 on both sides.
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Why the origin-side TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamTlsError {
    #[error("cannot read --upstream-ca {path}: {message}")]
    Roots { path: String, message: String },
    #[error("--upstream-ca {path} holds no certificate")]
    NoRoots { path: String },
    #[error("TLS client configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("TLS certificate verifier: {0}")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
}

/// The client configuration for connections to intercepted origins. Every certificate of
/// `extra_roots` is a trusted root and also pinned (trusted as an origin's own certificate
/// as it is: see [`super::pinned`]).
pub fn client_config(
    extra_roots: &[std::path::PathBuf],
    insecure: bool,
) -> Result<Arc<ClientConfig>, UpstreamTlsError> {
    let provider = ca::provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let mut config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let mut pins = Vec::new();
        for path in extra_roots {
            let shown = path.display().to_string();
            let fail = |message: String| UpstreamTlsError::Roots {
                path: shown.clone(),
                message,
            };
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| fail(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| fail(e.to_string()))?;
            if certs.is_empty() {
                return Err(UpstreamTlsError::NoRoots { path: shown });
            }
            for cert in certs {
                roots.add(cert.clone()).map_err(|e| fail(e.to_string()))?;
                pins.push(Pin::new(cert).map_err(fail)?);
            }
        }
        if pins.is_empty() {
            builder.with_root_certificates(roots).with_no_client_auth()
        } else {
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider).build()?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinningVerifier::new(pins, webpki)))
                .with_no_client_auth()
        }
    };
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    // Resumption is per worker (resume::OriginConfigs): the template keeps no sessions.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// Why lynxio could not speak TLS with an origin, as a sentence for the 502 body: certificate
/// rejections in plain words with what to do, other TLS failures with rustls' text. The one
/// place rustls errors are worded.
pub fn explain(error: &rustls::Error) -> String {
    const CERT: &str = "the origin's certificate";
    let rustls::Error::InvalidCertificate(cert) = error else {
        return match error {
            rustls::Error::AlertReceived(alert) => {
                format!("the origin refused the TLS handshake (alert {alert:?})")
            }
            rustls::Error::PeerIncompatible(_) => {
                format!("the origin's TLS settings are not compatible with lynxio's: {error}")
            }
            _ => format!("the TLS handshake with the origin failed: {error}"),
        };
    };
    match cert {
        CertificateError::UnknownIssuer => format!(
            "{CERT} is not trusted (unknown issuer); pass its CA with --upstream-ca (or the \
             certificate itself, to pin it)"
        ),
        CertificateError::NotValidForName => format!("{CERT} is for other names"),
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => {
            let names: Vec<&str> = presented.iter().map(|n| plain_name(n)).collect();
            format!(
                "{CERT} is for other names ({}), not {}",
                names.join(", "),
                expected.to_str()
            )
        }
        CertificateError::Expired => format!("{CERT} has expired"),
        CertificateError::ExpiredContext { not_after, .. } => {
            format!("{CERT} expired on {}", date(*not_after))
        }
        CertificateError::NotValidYet => format!("{CERT} is not valid yet"),
        CertificateError::NotValidYetContext { not_before, .. } => {
            format!("{CERT} is not valid before {}", date(*not_before))
        }
        CertificateError::Revoked => format!("{CERT} has been revoked"),
        CertificateError::BadEncoding => format!("{CERT} is malformed"),
        CertificateError::BadSignature => format!("{CERT} has an invalid signature"),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            format!("{CERT} is not meant for TLS servers (extended key usage)")
        }
        CertificateError::UnhandledCriticalExtension => {
            format!("{CERT} has a critical extension lynxio does not understand")
        }
        CertificateError::UnsupportedSignatureAlgorithmContext { .. }
        | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            format!("{CERT} is signed with an algorithm lynxio does not support")
        }
        CertificateError::Other(other)
            if other.0.downcast_ref::<webpki::Error>()
                == Some(&webpki::Error::CaUsedAsEndEntity) =>
        {
            format!(
                "{CERT} is a CA certificate (CA:TRUE, as `openssl req -x509` makes); to trust \
                 exactly this certificate, pass it with --upstream-ca"
            )
        }
        other => format!("{CERT} was rejected: {other:?}"),
    }
}

/// `DnsName("a.test")` / `IpAddress(127.0.0.1)` (how webpki lists presented names) → the
/// name alone.
fn plain_name(presented: &str) -> &str {
    presented
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .map_or(presented, |inner| inner.trim_matches('"'))
}

/// A certificate time as an RFC 3339 date and time (UTC, seconds).
fn date(time: UnixTime) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(time.as_secs());
    humantime::format_rfc3339_seconds(at).to_string()
}

/// `--insecure-upstream`: any certificate is accepted; signatures over the handshake are still
/// verified, so the connection is at least to whoever holds the presented key.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests;
