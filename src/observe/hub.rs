//! SKELETON — to be implemented (see the helper brief).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use super::event::Event;
use super::metrics::WorkerMetrics;

/// Events each worker may have queued for the writer thread before new ones are dropped.
pub const DEFAULT_QUEUE_CAPACITY: usize = 16 * 1024;

/// Where `--capture` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureTarget {
    Stdout,
    File(PathBuf),
}

/// What the hub does.
#[derive(Debug, Clone)]
pub struct HubOptions {
    pub capture: Option<CaptureTarget>,
    pub queue_capacity: usize,
}

/// Shared by all workers and the admin thread.
pub struct Hub {}

/// Why a live subscription was refused.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    #[error("too many live subscribers")]
    TooMany,
}

impl Hub {
    /// Opens the capture target and starts the writer thread. `metrics[i]` is worker i's.
    pub fn start(opts: HubOptions, metrics: &[Arc<WorkerMetrics>]) -> std::io::Result<Arc<Hub>> {
        let _ = (opts, metrics);
        todo!()
    }

    /// Worker `index`'s sending end.
    pub fn tap(&self, index: usize) -> Tap {
        let _ = index;
        todo!()
    }

    /// A live subscriber, optionally filtered by a host glob.
    pub fn subscribe(&self, host: Option<&str>) -> Result<Subscription, SubscribeError> {
        let _ = host;
        todo!()
    }

    /// Writes out everything queued, flushes, and stops the writer thread.
    pub fn shutdown(&self) {
        todo!()
    }
}

/// A worker's sending end. Never blocks.
pub struct Tap {}

impl Tap {
    /// Whether anyone reads events now (capture on, or live subscribers).
    pub fn active(&self) -> bool {
        todo!()
    }

    /// Queue `ev`; when the queue is full it is dropped and counted.
    pub fn emit(&self, ev: Event) {
        let _ = ev;
        todo!()
    }
}

/// A live subscriber's receiving end: JSON lines of matching events.
pub struct Subscription {}

impl Subscription {
    pub fn recv_timeout(&self, d: Duration) -> Result<Arc<str>, RecvTimeoutError> {
        let _ = d;
        todo!()
    }
}
