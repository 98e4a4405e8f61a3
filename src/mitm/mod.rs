//! TLS interception: the root CA, minted leaf certificates (cached), and TLS streams to the
//! client and the origin over rustls' sans-IO connection. It knows nothing of rules. [`ca`] loads
//! or creates the root CA on disk; [`leaf`] mints per-host leaf certificates and their rustls
//! server configs into a per-worker LRU cache; [`tls`] drives rustls over monoio sockets;
//! [`upstream`] builds the verified client configuration for origins (with [`pinned`]
//! certificates) and words origin TLS failures; [`resume`] makes handshakes on both sides
//! resumable (client tickets and session IDs bound to a host, per-worker origin sessions).

pub mod ca;
pub mod leaf;
pub mod pinned;
pub mod resume;
pub mod tls;
pub mod upstream;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

/// What interception needs at run time, shared by the workers: the template of the TLS client
/// configuration for origins (built at start; each worker derives its own, with its own session
/// store: [`resume::OriginConfigs`]), the ticket key for client sessions (one per process, so a
/// ticket resumes on any worker), and the
/// root CA that signs leaves — loaded, or created, on first use, so a proxy that never
/// intercepts and never serves the CA page never touches the CA directory, while one that turns
/// interception on by a config reload, or a user fetching the CA page first, still gets it.
#[derive(Debug)]
pub struct Interceptor {
    pub upstream: Arc<rustls::ClientConfig>,
    /// Encrypts and decrypts the session tickets given to clients (rotating key).
    pub tickets: Arc<dyn rustls::server::ProducesTickets>,
    ca_dir: PathBuf,
    ca: OnceLock<ca::CertificateAuthority>,
    /// Serialises loading: two workers asking at once must not both create a CA.
    loading: Mutex<()>,
}

impl Interceptor {
    /// Fails only if no ticket key can be made (the system's random generator failed).
    pub fn new(
        ca_dir: PathBuf,
        upstream: Arc<rustls::ClientConfig>,
    ) -> Result<Interceptor, rustls::Error> {
        Ok(Interceptor {
            upstream,
            tickets: resume::ticketer()?,
            ca_dir,
            ca: OnceLock::new(),
            loading: Mutex::new(()),
        })
    }

    /// The root CA, loaded or created now if this is the first use. A failure is returned, not
    /// kept: the next use tries again (the directory may have been fixed).
    pub fn ca(&self) -> Result<&ca::CertificateAuthority, ca::CaError> {
        if let Some(ca) = self.ca.get() {
            return Ok(ca);
        }
        // A poisoned lock only means another loader panicked; loading again is safe.
        let _guard = self.loading.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ca) = self.ca.get() {
            return Ok(ca);
        }
        let ca = ca::load_or_create(&self.ca_dir)?;
        if ca.created() {
            tracing::warn!(path = %ca.cert_path().display(), "created a new root CA: trust it in clients (lynxio ca export, or http://lynxio.ca/ through the proxy)");
        } else {
            tracing::info!(path = %ca.cert_path().display(), "loaded the root CA");
        }
        Ok(self.ca.get_or_init(|| ca))
    }
}
