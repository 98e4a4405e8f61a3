//! The TLS client side of interception: how lynxio verifies the origins it connects to on a
//! client's behalf. Roots are the Mozilla set compiled into `webpki-roots` (the same on every
//! machine, independent of a system store the user may not control) plus the PEM certificates
//! of `--upstream-ca`; `--insecure-upstream` replaces verification with acceptance of any
//! certificate (handshake signatures are still checked) and is logged loudly at start. Built
//! once and shared by all workers.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::ca;

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
}

/// The client configuration for connections to intercepted origins.
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
        for path in extra_roots {
            let shown = path.display().to_string();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| UpstreamTlsError::Roots {
                    path: shown.clone(),
                    message: e.to_string(),
                })?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| UpstreamTlsError::Roots {
                    path: shown.clone(),
                    message: e.to_string(),
                })?;
            if certs.is_empty() {
                return Err(UpstreamTlsError::NoRoots { path: shown });
            }
            for cert in certs {
                roots.add(cert).map_err(|e| UpstreamTlsError::Roots {
                    path: shown.clone(),
                    message: e.to_string(),
                })?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
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
