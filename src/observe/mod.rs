//! The readers of finished flows, below the proxy: the event schema ([`event`]), the hub that
//! moves events off the workers to the capture file and live subscribers ([`hub`]), per-worker
//! counters and their Prometheus rendering ([`metrics`]), and the capture → HAR 1.2 converter
//! ([`har`]). Nothing here slows traffic: workers only bump their own counters and push owned
//! events into bounded queues; everything else runs on other threads.

pub mod event;
pub mod har;
pub mod hub;
pub mod metrics;
