//! Who may use the proxy and where it may go, as pure data checked on the request path:
//! [`auth`] (Basic proxy credentials, compared in constant time) and [`dest`] (which resolved
//! addresses and CONNECT ports a request may reach). Built once from the configuration; no
//! sockets here.

pub mod auth;
pub mod dest;
