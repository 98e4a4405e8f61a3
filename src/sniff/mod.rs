//! First-byte protocol detection for CONNECT tunnels: pure functions over a bounded prefix that
//! say recognised / need more bytes / not this protocol for a TLS ClientHello (with SNI and ALPN)
//! and an HTTP/1 request. Not built yet: it arrives with the CONNECT issue.
