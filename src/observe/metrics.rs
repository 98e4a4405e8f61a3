//! Per-worker counters. Each worker owns one [`WorkerMetrics`] and is its only writer, so a
//! bump is a relaxed load and store (no locked instruction); the admin thread reads them all
//! at scrape time and renders Prometheus text with one sample per worker (`worker` label), so
//! an imbalance between workers is visible. Rendering goes through `prometheus-client` as a
//! [`Collector`] that reads the atomics at scrape time, so the hot path never touches a
//! `prometheus-client` object.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

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
    /// Every connection allowed to the origin stayed busy (`--pool-max-open-per-host`).
    OriginBusy,
    Certificate,
    UpstreamTls,
    ResponseTimeout,
    BadResponse,
    UpstreamIo,
    ClientIo,
    /// A client's TLS handshake with an intercepting lynxio failed.
    ClientTls,
    /// A WebSocket peer broke the protocol (inspected sessions).
    WebSocketProtocol,
    /// A mock rule's file could not be read.
    MockFile,
    /// No valid proxy credentials (407).
    Auth,
    /// The destination policy refused the target (403).
    DestPolicy,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 20] = [
        ErrorKind::BadRequest,
        ErrorKind::NotProxyRequest,
        ErrorKind::Refused,
        ErrorKind::HeadTimeout,
        ErrorKind::ClientBody,
        ErrorKind::Resolve,
        ErrorKind::Connect,
        ErrorKind::ConnectTimeout,
        ErrorKind::OriginBusy,
        ErrorKind::Certificate,
        ErrorKind::UpstreamTls,
        ErrorKind::ResponseTimeout,
        ErrorKind::BadResponse,
        ErrorKind::UpstreamIo,
        ErrorKind::ClientIo,
        ErrorKind::ClientTls,
        ErrorKind::WebSocketProtocol,
        ErrorKind::MockFile,
        ErrorKind::Auth,
        ErrorKind::DestPolicy,
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
            ErrorKind::OriginBusy => "origin_busy",
            ErrorKind::Certificate => "certificate",
            ErrorKind::UpstreamTls => "upstream_tls",
            ErrorKind::ResponseTimeout => "response_timeout",
            ErrorKind::BadResponse => "bad_response",
            ErrorKind::UpstreamIo => "upstream_io",
            ErrorKind::ClientIo => "client_io",
            ErrorKind::ClientTls => "client_tls",
            ErrorKind::WebSocketProtocol => "websocket_protocol",
            ErrorKind::MockFile => "mock_file",
            ErrorKind::Auth => "auth",
            ErrorKind::DestPolicy => "dest_policy",
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
    /// An HTTP exchange upgraded to WebSocket, relayed.
    WebSocket,
}

impl TunnelKind {
    pub const ALL: [TunnelKind; 6] = [
        TunnelKind::Tls,
        TunnelKind::Intercepted,
        TunnelKind::Http,
        TunnelKind::HttpUpgrade,
        TunnelKind::Opaque,
        TunnelKind::WebSocket,
    ];

    pub fn label(self) -> &'static str {
        match self {
            TunnelKind::Tls => "tls",
            TunnelKind::Intercepted => "intercepted",
            TunnelKind::Http => "http",
            TunnelKind::HttpUpgrade => "http-upgrade",
            TunnelKind::Opaque => "opaque",
            TunnelKind::WebSocket => "websocket",
        }
    }
}

/// The two ends of an intercepted session (`side` label): lynxio as the TLS server of the
/// client, and as the TLS client of the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsSide {
    Client,
    Origin,
}

impl TlsSide {
    pub const ALL: [TlsSide; 2] = [TlsSide::Client, TlsSide::Origin];

    pub fn label(self) -> &'static str {
        match self {
            TlsSide::Client => "client",
            TlsSide::Origin => "origin",
        }
    }
}

/// `kind` label values of [`WorkerMetrics::tls_handshakes`], in index order: 0 = full
/// (certificate sent and verified, key exchange), 1 = resumed (ticket or session ID).
const HANDSHAKE_KINDS: [&str; 2] = ["full", "resumed"];

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
    /// Idle upstream connections closed to make room (per-origin or per-worker idle cap).
    pub pool_evictions: Counter,
    pub dns_hits: Counter,
    pub dns_misses: Counter,
    /// Lookups that joined one already running for the same name.
    pub dns_coalesced: Counter,
    pub leaf_hits: Counter,
    pub leaf_mints: Counter,
    /// Completed TLS handshakes by side ([`TlsSide`] index), then full (0) or resumed (1).
    pub tls_handshakes: [[Counter; 2]; TlsSide::ALL.len()],
    /// Events the capture/live queue had no room for.
    pub events_dropped: Counter,
    /// Times the worker reached its connection limit and stopped accepting (once per episode).
    pub connection_limit_reached: Counter,
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

    /// Count a completed TLS handshake on `side`, full or resumed.
    pub fn tls_handshake(&self, side: TlsSide, resumed: bool) {
        self.tls_handshakes[side as usize][usize::from(resumed)].inc();
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

    /// Every metric in the OpenMetrics text format (ending with `# EOF`), one sample per
    /// worker and label value, zeros included. Reads the counters as they are now; called by
    /// the admin thread, never by a worker.
    pub fn render(&self) -> String {
        let mut families = prometheus_client::registry::Registry::default();
        families.register_collector(Box::new(Scrape {
            workers: self.workers.clone(),
        }));
        let mut out = String::with_capacity(RENDER_CAPACITY_PER_WORKER * self.workers.len().max(1));
        // Writing to a String cannot fail and `Scrape` only fails when its writer does.
        if prometheus_client::encoding::text::encode(&mut out, &families).is_err() {
            tracing::warn!("rendering metrics failed");
        }
        out
    }
}

/// Rough size of one worker's share of the rendered text, to size the buffer once.
const RENDER_CAPACITY_PER_WORKER: usize = 4 * 1024;

/// Status class label values, in [`WorkerMetrics::responses`] order.
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// A plain per-worker counter (no label besides `worker`): name without `_total` (the encoder
/// appends it), help, and where it lives.
type PlainCounter = (&'static str, &'static str, fn(&WorkerMetrics) -> &Counter);

const PLAIN_COUNTERS: [PlainCounter; 10] = [
    (
        "lynxio_upstream_pool_hits",
        "Upstream requests sent on a pooled idle connection.",
        |m| &m.pool_hits,
    ),
    (
        "lynxio_upstream_pool_misses",
        "Upstream requests that needed a new connection.",
        |m| &m.pool_misses,
    ),
    (
        "lynxio_upstream_pool_evictions",
        "Idle upstream connections closed to make room (per-origin or per-worker idle cap).",
        |m| &m.pool_evictions,
    ),
    (
        "lynxio_dns_cache_hits",
        "Host name lookups answered from the DNS cache.",
        |m| &m.dns_hits,
    ),
    (
        "lynxio_dns_cache_misses",
        "Host name lookups that went to the resolver.",
        |m| &m.dns_misses,
    ),
    (
        "lynxio_dns_coalesced",
        "Host name lookups that waited for the same name's lookup already running.",
        |m| &m.dns_coalesced,
    ),
    (
        "lynxio_leaf_cache_hits",
        "Intercepted hosts served with a cached leaf certificate.",
        |m| &m.leaf_hits,
    ),
    (
        "lynxio_leaf_certificates_minted",
        "Leaf certificates minted for intercepted hosts.",
        |m| &m.leaf_mints,
    ),
    (
        "lynxio_events_dropped",
        "Flow events dropped because the capture/live queue was full.",
        |m| &m.events_dropped,
    ),
    (
        "lynxio_connection_limit_reached",
        "Times the worker reached its client connection limit and stopped accepting until a client left.",
        |m| &m.connection_limit_reached,
    ),
];

/// One scrape: reads every worker's atomics while encoding. Holds its own handles because a
/// registered collector must be `'static`.
#[derive(Debug)]
struct Scrape {
    workers: Vec<Arc<WorkerMetrics>>,
}

/// A value read from one of our atomics.
#[derive(Clone, Copy)]
enum Sample {
    Counter(u64),
    Gauge(i64),
}

impl Sample {
    fn encode(self, metric: &mut MetricEncoder<'_>) -> fmt::Result {
        match self {
            Sample::Counter(v) => metric.encode_counter::<NoLabelSet, u64, u64>(&v, None),
            Sample::Gauge(v) => metric.encode_gauge(&v),
        }
    }
}

/// Name, help, type and unit of one metric family.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    unit: Option<Unit>,
}

impl Family {
    const fn counter(name: &'static str, help: &'static str) -> Family {
        Family {
            name,
            help,
            kind: MetricType::Counter,
            unit: None,
        }
    }

    const fn gauge(name: &'static str, help: &'static str) -> Family {
        Family {
            name,
            help,
            kind: MetricType::Gauge,
            unit: None,
        }
    }

    const fn bytes(name: &'static str, help: &'static str) -> Family {
        Family {
            name,
            help,
            kind: MetricType::Counter,
            unit: Some(Unit::Bytes),
        }
    }
}

impl Scrape {
    /// Encodes `family` with one sample per worker (`worker` label only).
    fn per_worker(
        &self,
        enc: &mut DescriptorEncoder<'_>,
        family: &Family,
        value: impl Fn(&WorkerMetrics) -> Sample,
    ) -> fmt::Result {
        let mut metric =
            enc.encode_descriptor(family.name, family.help, family.unit.as_ref(), family.kind)?;
        for (index, worker) in self.workers.iter().enumerate() {
            sample(&mut metric, &[("worker", index)], value(worker))?;
        }
        Ok(())
    }

    /// Encodes `family` with one sample per worker and value of the `key` label; `value` gets
    /// the label's index in `values`.
    fn per_worker_and(
        &self,
        enc: &mut DescriptorEncoder<'_>,
        family: &Family,
        key: &'static str,
        values: &[&'static str],
        value: impl Fn(&WorkerMetrics, usize) -> Sample,
    ) -> fmt::Result {
        let mut metric =
            enc.encode_descriptor(family.name, family.help, family.unit.as_ref(), family.kind)?;
        for (index, worker) in self.workers.iter().enumerate() {
            for (i, label) in values.iter().enumerate() {
                let labels = ([("worker", index)], [(key, *label)]);
                sample(&mut metric, &labels, value(worker, i))?;
            }
        }
        Ok(())
    }

    /// `lynxio_tls_handshakes_total`: one sample per worker, side and kind.
    fn tls_handshakes(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let mut handshakes = enc.encode_descriptor(
            "lynxio_tls_handshakes",
            "TLS handshakes completed by intercepted sessions, by side (client: lynxio as the \
             server of the client; origin: lynxio as the client of the origin) and kind (full \
             or resumed).",
            None,
            MetricType::Counter,
        )?;
        for (index, worker) in self.workers.iter().enumerate() {
            for side in TlsSide::ALL {
                for (kind, label) in HANDSHAKE_KINDS.iter().enumerate() {
                    let labels = (
                        [("worker", index)],
                        [("side", side.label()), ("kind", *label)],
                    );
                    let count = &worker.tls_handshakes[side as usize][kind];
                    sample(&mut handshakes, &labels, Sample::Counter(count.get()))?;
                }
            }
        }
        Ok(())
    }
}

fn sample(
    metric: &mut MetricEncoder<'_>,
    labels: &impl EncodeLabelSet,
    value: Sample,
) -> fmt::Result {
    value.encode(&mut metric.encode_family(labels)?)
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let counter = |c: &Counter| Sample::Counter(c.get());
        let gauge = |g: &Gauge| Sample::Gauge(g.get());

        self.per_worker_and(
            &mut enc,
            &Family::counter(
                "lynxio_requests",
                "Requests read from clients, by method (CONNECT included).",
            ),
            "method",
            &MethodClass::ALL.map(MethodClass::label),
            |m, i| counter(&m.requests[i]),
        )?;
        self.per_worker_and(
            &mut enc,
            &Family::counter(
                "lynxio_responses",
                "Final responses sent to clients, by status class.",
            ),
            "class",
            &STATUS_CLASSES,
            |m, i| counter(&m.responses[i]),
        )?;
        self.per_worker_and(
            &mut enc,
            &Family::counter(
                "lynxio_errors",
                "Exchanges answered with an error or ended by one, by kind.",
            ),
            "kind",
            &ErrorKind::ALL.map(ErrorKind::label),
            |m, i| counter(&m.errors[i]),
        )?;
        self.per_worker(
            &mut enc,
            &Family::bytes(
                "lynxio_received_body",
                "Body bytes received from clients (request bodies, tunnel bytes up).",
            ),
            |m| counter(&m.bytes_in),
        )?;
        self.per_worker(
            &mut enc,
            &Family::bytes(
                "lynxio_sent_body",
                "Body bytes sent to clients (response bodies, tunnel bytes down).",
            ),
            |m| counter(&m.bytes_out),
        )?;
        self.per_worker(
            &mut enc,
            &Family::gauge("lynxio_client_connections", "Client connections open now."),
            |m| gauge(&m.client_connections),
        )?;
        self.per_worker_and(
            &mut enc,
            &Family::gauge("lynxio_tunnels_open", "Tunnels open now, by sniffed kind."),
            "kind",
            &TunnelKind::ALL.map(TunnelKind::label),
            |m, i| gauge(&m.tunnels[i]),
        )?;
        self.tls_handshakes(&mut enc)?;
        for (name, help, field) in PLAIN_COUNTERS {
            self.per_worker(&mut enc, &Family::counter(name, help), |m| {
                counter(field(m))
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
