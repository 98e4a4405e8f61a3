//! lynxio: a forward HTTP(S) debugging and interception proxy on io_uring.
//!
//! The crate is a library plus a thin binary (`main.rs` only parses flags and starts workers).
//! Layering, top to bottom: [`proxy`] orchestrates (accept → head → decide → forward); it is the
//! only module that knows the order of steps. Below it sit the codecs and mechanisms, which do not
//! import each other: [`http1`] (HTTP/1.x heads, framing, hop-by-hop rules; bytes only, no
//! sockets), [`ws`] (WebSocket frame inspection; bytes only), [`tunnel`], [`sniff`], [`mitm`]
//! and [`rules`]. At the bottom [`net`] owns runtimes, workers,
//! listeners, dialing, DNS and buffers. [`observe`] holds what finished flows feed (events,
//! counters), and [`admin`] serves them (`/healthz`, `/metrics`, `/events`) from its own
//! threads, off the workers. See ARCHITECTURE.md for the data flow.

pub mod admin;
pub mod config;
pub mod error;
pub mod http1;
pub mod install;
pub mod mitm;
pub mod net;
pub mod observe;
pub mod policy;
pub mod proxy;
pub mod rules;
pub mod sniff;
pub mod tunnel;
pub mod ws;

#[cfg(test)]
mod testutil;
