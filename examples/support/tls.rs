//! TLS set-up shared by the load examples (included with `#[path]`): a throwaway origin CA and
//! an ECDSA P-256 leaf for `localhost` and 127.0.0.1, and rustls configs for both ends.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn err<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> String {
    move |e| format!("{what}: {e}")
}

/// An origin's PKI as PEM: its leaf (ECDSA P-256, `localhost` and 127.0.0.1), the leaf's key,
/// and the CA that signed it — for an origin lynxio does not run itself (nginx).
#[allow(dead_code)] // used by mitm_load only; the module is shared with ws_load
pub struct OriginPems {
    pub cert: String,
    pub key: String,
    pub ca: String,
}

/// [`OriginPems`] for a fresh throwaway CA named `ca_name`.
#[allow(dead_code)] // used by mitm_load only; the module is shared with ws_load
pub fn origin_pems(ca_name: &str) -> Result<OriginPems, String> {
    let (leaf, leaf_key, ca) = origin_pki(ca_name)?;
    Ok(OriginPems {
        cert: leaf.pem(),
        key: leaf_key.serialize_pem(),
        ca: ca.pem(),
    })
}

/// A throwaway CA named `ca_name` and a leaf it signed for `localhost` and 127.0.0.1.
fn origin_pki(
    ca_name: &str,
) -> Result<
    (
        rcgen::Certificate,
        KeyPair,
        CertifiedIssuer<'static, KeyPair>,
    ),
    String,
> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err("ca params"))?;
    ca_params.distinguished_name = DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().map_err(err("ca key"))?;
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(err("ca cert"))?;
    let leaf_key = KeyPair::generate().map_err(err("leaf key"))?;
    let mut leaf_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .map_err(err("leaf params"))?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let leaf = leaf_params
        .signed_by(&leaf_key, &ca)
        .map_err(err("leaf cert"))?;
    Ok((leaf, leaf_key, ca))
}

/// A server config for `localhost`/127.0.0.1 (ALPN http/1.1) and the PEM of the CA that signed
/// its leaf.
pub fn origin_config(ca_name: &str) -> Result<(Arc<ServerConfig>, String), String> {
    let (leaf, leaf_key, ca) = origin_pki(ca_name)?;
    let key = PrivatePkcs8KeyDer::from(leaf_key.serialize_der());
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(err("versions"))?
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], PrivateKeyDer::Pkcs8(key))
        .map_err(err("server config"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(cfg), ca.pem()))
}

/// A client config (ALPN http/1.1) trusting only the roots in `pem` (PEM text).
pub fn client_config(pem: &[u8]) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(pem) {
        roots
            .add(der.map_err(err("parse CA PEM"))?)
            .map_err(err("add root"))?;
    }
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(err("versions"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}
