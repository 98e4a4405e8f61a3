//! Certificate pinning for intercepted origins: a certificate given with `--upstream-ca` is
//! also trusted *as the origin's own certificate*, byte for byte. That is what a self-signed
//! server certificate needs — `openssl req -x509` marks it CA:TRUE, so webpki refuses it as an
//! end entity (`CaUsedAsEndEntity`) even when it is a trusted root.
//!
//! What is checked for a pinned certificate: the DER is identical to a given one; the name
//! the origin is reached by is one the certificate is for (its subjectAltName DNS/IP entries,
//! as for any certificate; only when it has no subjectAltName extension at all, its subject
//! common names, exactly and case-insensitively); and the handshake signatures (the origin
//! holds the key). Not checked: chain, CA flag, key usage, validity dates — the user vouched
//! for these exact bytes. Every other certificate goes to the normal webpki verification.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// A certificate trusted as an origin's end-entity certificate as it is.
#[derive(Debug)]
pub struct Pin {
    der: CertificateDer<'static>,
    /// The subject's common names when the certificate has no subjectAltName extension
    /// (`None`: it has one, and names are checked against it alone).
    common_names: Option<Vec<String>>,
}

impl Pin {
    /// Parses `der` for its names; `Err` says why it is not a usable certificate.
    pub fn new(der: CertificateDer<'static>) -> Result<Pin, String> {
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| format!("cannot parse a certificate: {e}"))?;
        let has_san = cert
            .subject_alternative_name()
            .map_err(|e| format!("bad subjectAltName: {e}"))?
            .is_some();
        let common_names = (!has_san).then(|| {
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(str::to_owned)
                .collect()
        });
        Ok(Pin { der, common_names })
    }

    /// Whether the certificate is for `name` (see the module doc).
    fn check_name(&self, name: &ServerName<'_>) -> Result<(), rustls::Error> {
        let Some(common_names) = &self.common_names else {
            let parsed = ParsedCertificate::try_from(&self.der)?;
            return rustls::client::verify_server_name(&parsed, name);
        };
        let wanted = name.to_str();
        if common_names
            .iter()
            .any(|cn| cn.trim_end_matches('.').eq_ignore_ascii_case(&wanted))
        {
            return Ok(());
        }
        Err(CertificateError::NotValidForNameContext {
            expected: name.to_owned(),
            presented: common_names.clone(),
        }
        .into())
    }
}

/// Accepts an origin whose end-entity certificate is pinned (name and signatures checked),
/// else verifies it the normal way with `inner`.
#[derive(Debug)]
pub struct PinningVerifier {
    pins: Vec<Pin>,
    inner: Arc<WebPkiServerVerifier>,
}

impl PinningVerifier {
    pub fn new(pins: Vec<Pin>, inner: Arc<WebPkiServerVerifier>) -> PinningVerifier {
        PinningVerifier { pins, inner }
    }
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .pins
            .iter()
            .find(|p| p.der.as_ref() == end_entity.as_ref())
        {
            Some(pin) => pin
                .check_name(server_name)
                .map(|()| ServerCertVerified::assertion()),
            None => self.inner.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
        }
    }

    // Handshake signatures are checked the same way for pinned and other certificates: with
    // the end entity's public key and the provider's algorithms (what `inner` does).
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
