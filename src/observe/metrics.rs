//! Per-worker counters. Each worker owns one [`WorkerMetrics`] and is its only writer, so a
//! bump is a relaxed load and store (no locked instruction); the admin thread reads them all
//! at scrape time and renders Prometheus text with one sample per worker (`worker` label), so
//! an imbalance between workers is visible.
//!
//! SKELETON: rendering to be implemented (see the helper brief).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// A monotonically increasing count with a single writer (its worker).
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    #[inline]
    pub fn add(&self, n: u64) {
        // Single writer: a plain load and store is enough and avoids a locked add.
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down, with a single writer (its worker).
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    #[inline]
    pub fn inc(&self) {
        self.0
            .store(self.0.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    #[inline]
    pub fn dec(&self) {
        self.0
            .store(self.0.load(Ordering::Relaxed) - 1, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Request method classes (`method` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodClass {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Patch,
    Options,
    Connect,
    Other,
}

impl MethodClass {
    pub const ALL: [MethodClass; 9] = [
        MethodClass::Get,
        MethodClass::Head,
        MethodClass::Post,
        MethodClass::Put,
        MethodClass::Delete,
        MethodClass::Patch,
        MethodClass::Options,
        MethodClass::Connect,
        MethodClass::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            MethodClass::Get => "GET",
            MethodClass::Head => "HEAD",
            MethodClass::Post => "POST",
            MethodClass::Put => "PUT",
            MethodClass::Delete => "DELETE",
            MethodClass::Patch => "PATCH",
            MethodClass::Options => "OPTIONS",
            MethodClass::Connect => "CONNECT",
            MethodClass::Other => "other",
        }
    }
}

/// Errors lynxio answers or ends an exchange with (`kind` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    NotProxyRequest,
    Refused,
    HeadTimeout,
    ClientBody,
    Resolve,
    Connect,
    ConnectTimeout,
    Certificate,
    UpstreamTls,
    ResponseTimeout,
    BadResponse,
    UpstreamIo,
    ClientIo,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 14] = [
        ErrorKind::BadRequest,
        ErrorKind::NotProxyRequest,
        ErrorKind::Refused,
        ErrorKind::HeadTimeout,
        ErrorKind::ClientBody,
        ErrorKind::Resolve,
        ErrorKind::Connect,
        ErrorKind::ConnectTimeout,
        ErrorKind::Certificate,
        ErrorKind::UpstreamTls,
        ErrorKind::ResponseTimeout,
        ErrorKind::BadResponse,
        ErrorKind::UpstreamIo,
        ErrorKind::ClientIo,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::NotProxyRequest => "not_proxy_request",
            ErrorKind::Refused => "refused",
            ErrorKind::HeadTimeout => "head_timeout",
            ErrorKind::ClientBody => "client_body",
            ErrorKind::Resolve => "resolve",
            ErrorKind::Connect => "connect",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::Certificate => "certificate",
            ErrorKind::UpstreamTls => "upstream_tls",
            ErrorKind::ResponseTimeout => "response_timeout",
            ErrorKind::BadResponse => "bad_response",
            ErrorKind::UpstreamIo => "upstream_io",
            ErrorKind::ClientIo => "client_io",
        }
    }
}

/// Tunnel kinds (`kind` label), as sniffed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelKind {
    Tls,
    Intercepted,
    Http,
    HttpUpgrade,
    Opaque,
}

impl TunnelKind {
    pub const ALL: [TunnelKind; 5] = [
        TunnelKind::Tls,
        TunnelKind::Intercepted,
        TunnelKind::Http,
        TunnelKind::HttpUpgrade,
        TunnelKind::Opaque,
    ];

    pub fn label(self) -> &'static str {
        match self {
            TunnelKind::Tls => "tls",
            TunnelKind::Intercepted => "intercepted",
            TunnelKind::Http => "http",
            TunnelKind::HttpUpgrade => "http-upgrade",
            TunnelKind::Opaque => "opaque",
        }
    }
}

/// One worker's counters.
#[derive(Debug, Default)]
pub struct WorkerMetrics {
    /// Requests by method class (CONNECT included), counted when the head is read.
    pub requests: [Counter; MethodClass::ALL.len()],
    /// Final responses sent to clients by status class: index 0 = 1xx … 4 = 5xx.
    pub responses: [Counter; 5],
    /// Errors by kind (answered with a status, or ending an exchange).
    pub errors: [Counter; ErrorKind::ALL.len()],
    /// Body bytes received from clients (request bodies, tunnel bytes up).
    pub bytes_in: Counter,
    /// Body bytes sent to clients (response bodies, tunnel bytes down).
    pub bytes_out: Counter,
    /// Client connections open now.
    pub client_connections: Gauge,
    /// Tunnels open now, by kind.
    pub tunnels: [Gauge; TunnelKind::ALL.len()],
    pub pool_hits: Counter,
    pub pool_misses: Counter,
    pub dns_hits: Counter,
    pub dns_misses: Counter,
    pub leaf_hits: Counter,
    pub leaf_mints: Counter,
    /// Events the capture/live queue had no room for.
    pub events_dropped: Counter,
}

impl WorkerMetrics {
    pub fn request(&self, class: MethodClass) {
        self.requests[class as usize].inc();
    }

    pub fn response(&self, status: u16) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.responses[class].inc();
    }

    pub fn error(&self, kind: ErrorKind) {
        self.errors[kind as usize].inc();
    }

    pub fn tunnel(&self, kind: TunnelKind) -> &Gauge {
        &self.tunnels[kind as usize]
    }
}

/// Every worker's counters, for rendering.
#[derive(Debug, Clone)]
pub struct Registry {
    pub workers: Vec<Arc<WorkerMetrics>>,
}

impl Registry {
    pub fn new(workers: usize) -> Registry {
        Registry {
            workers: (0..workers).map(|_| Arc::default()).collect(),
        }
    }
}
