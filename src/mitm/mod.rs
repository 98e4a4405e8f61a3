//! TLS interception: the root CA, minted leaf certificates (cached), and TLS streams to the
//! client and the origin over rustls' sans-IO connection. It knows nothing of rules. [`ca`] loads
//! or creates the root CA on disk; [`leaf`] mints per-host leaf certificates and their rustls
//! server configs into a per-worker LRU cache; [`tls`] drives rustls over monoio sockets;
//! [`upstream`] builds the verified client configuration for origins.

pub mod ca;
pub mod leaf;
pub mod tls;
pub mod upstream;

use std::sync::Arc;

/// What interception needs at run time, built once at start and shared by the workers: the
/// root CA that signs leaves, and the TLS client configuration for origins.
#[derive(Debug)]
pub struct Interceptor {
    pub ca: ca::CertificateAuthority,
    pub upstream: Arc<rustls::ClientConfig>,
}
