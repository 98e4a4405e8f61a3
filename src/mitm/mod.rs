//! TLS interception: the root CA, minted leaf certificates (cached), and TLS streams to the
//! client and the origin over rustls' sans-IO connection. It knows nothing of rules. [`ca`] loads
//! or creates the root CA on disk; [`leaf`] mints per-host leaf certificates and their rustls
//! server configs into a per-worker LRU cache.

pub mod ca;
pub mod leaf;
pub mod tls;
