//! TLS interception: the root CA, minted leaf certificates (cached), and TLS streams to the
//! client and the origin over rustls' sans-IO connection. It knows nothing of rules. Not built
//! yet: it arrives with the MITM issue, after CONNECT tunnels.
