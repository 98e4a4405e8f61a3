//! The types every step of the pipeline shares, so the steps call down into this module rather
//! than around into each other: the worker's shared-nothing state ([`Worker`]), a client
//! connection ([`Client`], where its requests come from: [`ConnCtx`]), an origin connection
//! ([`Upstream`]), where a request goes ([`Route`]), and the record of one exchange or tunnel
//! ([`flow::Flow`]) whose named fields decide what a step may still do.

pub mod flow;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use monoio::io::{AsyncReadRent, AsyncWriteRent, Splitable};
use monoio::net::TcpStream;
use monoio::net::tcp::{TcpOwnedReadHalf, TcpOwnedWriteHalf};

use crate::config::Config;
use crate::mitm::Interceptor;
use crate::mitm::leaf::{CertifiedLeaf, LEAF_CACHE_CAPACITY, LeafCache};
use crate::mitm::resume::OriginConfigs;
use crate::net::{ActiveDriver, Permit, Pool, Pooled, ReadBuf, Resolver};
use crate::observe::event::FlowId;
use crate::observe::hub::Tap;
use crate::observe::metrics::WorkerMetrics;
use crate::tunnel::{TunnelConfig, TunnelPools};

use super::access::{AccessLog, LogOutput};
use super::live::{LiveRules, WorkerRules};
use super::stream::{UpRead, UpWrite};

pub use flow::Flow;

/// Read buffer each client connection starts with (grows for big heads, up to the head limit).
pub const CLIENT_BUF_SIZE: usize = 8 * 1024;
/// Read buffer each upstream connection starts with.
pub const UPSTREAM_BUF_SIZE: usize = 16 * 1024;

/// Per-worker state. Lives on one thread; nothing in it is shared or locked (the metrics are
/// atomics this worker alone writes; the admin thread only reads them).
pub struct Worker {
    pub index: usize,
    /// The event driver this worker's runtime runs on.
    pub driver: ActiveDriver,
    pub cfg: Arc<Config>,
    pub dns: Resolver,
    pub pool: RefCell<Pool<Upstream>>,
    /// How CONNECT tunnels relay, and the worker's pipes and buffers they borrow while bytes flow.
    pub tunnel_cfg: TunnelConfig,
    pub tunnel_pools: TunnelPools,
    /// Interception (CA, origin TLS config) when a rule can intercept; shared read-only.
    pub mitm: Arc<Interceptor>,
    /// The rules in force (reloaded on SIGHUP).
    pub rules: WorkerRules,
    /// This worker's minted leaf certificates (and its client-side session-ID store).
    pub leaves: RefCell<LeafCache>,
    /// This worker's TLS client configurations for origins, with its origin session store.
    pub origins: OriginConfigs,
    pub metrics: Arc<WorkerMetrics>,
    /// This worker's access-log lines, handed to the log writer in batches.
    pub access: AccessLog,
    /// This worker's end of the event queue (capture file, live subscribers), if any.
    pub events: Option<Tap>,
    /// Set when shutdown starts: finish the current request, then close.
    pub shutting_down: Cell<bool>,
    /// Requests between their first byte and their last response byte.
    in_flight: Cell<usize>,
    next_conn_id: Cell<u64>,
    next_flow: Cell<u64>,
}

/// Marks a request in flight for the drain logic while it lives.
pub struct InFlight<'a>(&'a Worker);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.set(self.0.in_flight.get() - 1);
    }
}

impl Worker {
    #[allow(clippy::too_many_arguments)] // one call site: the worker's start
    pub fn new(
        index: usize,
        driver: ActiveDriver,
        cfg: Arc<Config>,
        mitm: Arc<Interceptor>,
        rules: &Arc<LiveRules>,
        metrics: Arc<WorkerMetrics>,
        events: Option<Tap>,
        log: &LogOutput,
    ) -> Self {
        let tunnel_cfg = TunnelConfig {
            idle_timeout: cfg.timeouts.tunnel_idle,
            pipe_size: cfg.pipe_size,
            splice: cfg.splice,
        };
        Worker {
            index,
            driver,
            dns: Resolver::new(&cfg.resolve, cfg.dns_ttl, cfg.timeouts.connect),
            pool: RefCell::new(upstream_pool(&cfg, &metrics)),
            tunnel_pools: TunnelPools::new(&tunnel_cfg),
            rules: rules.for_worker(),
            leaves: RefCell::new(LeafCache::with_tickets(
                LEAF_CACHE_CAPACITY,
                mitm.tickets.clone(),
            )),
            origins: OriginConfigs::new(mitm.upstream.clone()),
            metrics,
            access: AccessLog::new(log),
            events,
            mitm,
            tunnel_cfg,
            cfg,
            shutting_down: Cell::new(false),
            in_flight: Cell::new(0),
            next_conn_id: Cell::new(0),
            next_flow: Cell::new(0),
        }
    }

    /// A worker-unique id (connections, intercepted sessions).
    pub fn next_id(&self) -> u64 {
        let id = self.next_conn_id.get();
        self.next_conn_id.set(id + 1);
        id
    }

    /// A process-unique flow id (worker index + this worker's sequence).
    pub fn next_flow_id(&self) -> FlowId {
        let seq = self.next_flow.get();
        self.next_flow.set(seq + 1);
        FlowId {
            worker: self.index as u32,
            seq,
        }
    }

    /// Count a request as in flight until the guard drops.
    pub fn begin_request(&self) -> InFlight<'_> {
        self.in_flight.set(self.in_flight.get() + 1);
        InFlight(self)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.get()
    }

    /// The events queue when someone reads events now (else building them is wasted work).
    pub fn events(&self) -> Option<&Tap> {
        self.events.as_ref().filter(|t| t.active())
    }

    /// The TLS client configuration for origins on `port`: this worker's own, resuming
    /// sessions from its own store (keyed by port and server name).
    pub fn origin_config(&self, port: u16) -> Arc<rustls::ClientConfig> {
        self.origins.for_port(port)
    }

    /// The leaf certificate for `host` from this worker's cache, minting it on a miss.
    pub fn leaf(&self, host: &str) -> Result<Arc<CertifiedLeaf>, String> {
        let ca = self.mitm.ca().map_err(|e| e.to_string())?;
        let mut leaves = self.leaves.borrow_mut();
        let minted = leaves.minted();
        let leaf = leaves.get_or_mint(ca, host).map_err(|e| e.to_string())?;
        if leaves.minted() == minted {
            self.metrics.leaf_hits.inc();
        } else {
            self.metrics.leaf_mints.inc();
        }
        Ok(leaf)
    }
}

/// The worker's idle upstream pool: the per-origin and per-worker caps from the config,
/// evictions counted.
fn upstream_pool(cfg: &Config, metrics: &Arc<WorkerMetrics>) -> Pool<Upstream> {
    let metrics = metrics.clone();
    Pool::new(
        cfg.pool_max_per_host,
        cfg.pool_max_idle,
        cfg.timeouts.upstream_idle,
    )
    .max_open_per_host(cfg.pool_max_open_per_host)
    .on_evict(move || metrics.pool_evictions.inc())
}

/// The two ends of a client connection as the worker accepted it.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub client: SocketAddr,
    pub listener: SocketAddr,
}

/// One client connection's halves and buffers.
pub struct Client<R, W> {
    pub r: R,
    pub w: W,
    pub buf: ReadBuf,
    /// Scratch for serialized heads, reused across requests.
    pub out: Vec<u8>,
    pub peer: Peer,
    /// Body bytes of the exchanges served so far: (client → origin, origin → client).
    pub moved: (u64, u64),
    /// The socket under `r` and `w` when they are plain TCP (bodies may be spliced).
    pub socket: Option<RawFd>,
}

impl<R: AsyncReadRent, W: AsyncWriteRent> Client<R, W> {
    pub fn new(r: R, w: W, buf: ReadBuf, peer: Peer) -> Self {
        Client {
            r,
            w,
            buf,
            out: Vec::with_capacity(1024),
            peer,
            moved: (0, 0),
            socket: None,
        }
    }
}

impl Client<TcpOwnedReadHalf, TcpOwnedWriteHalf> {
    /// A client connection on a plain TCP socket, split into its halves.
    pub fn tcp(stream: TcpStream, buf: ReadBuf, peer: Peer) -> Self {
        let socket = stream.as_raw_fd();
        let (r, w) = stream.into_split();
        Client {
            socket: Some(socket),
            ..Client::new(r, w, buf, peer)
        }
    }
}

/// Where a connection's requests come from, which decides how origin-form requests and
/// CONNECT are treated.
#[derive(Debug, Clone, Copy)]
pub enum ConnCtx<'a> {
    /// A client talking to the proxy directly: absolute-form requests and CONNECT.
    Proxy,
    /// HTTP/1 found inside a CONNECT tunnel to `origin`: origin-form requests go there.
    Tunnel { origin: &'a TunnelOrigin },
    /// Decrypted HTTP/1 from an intercepted TLS tunnel: requests go to `origin` over TLS.
    Intercepted {
        origin: &'a TunnelOrigin,
        session: &'a InterceptSession,
    },
}

/// An intercepted client session's link to its origin.
#[derive(Debug)]
pub struct InterceptSession {
    /// Worker-unique id; keys the session's private origin connections in the pool.
    pub id: u64,
    /// SNI (and certificate name) for the origin: the client's SNI, else the CONNECT host.
    pub server_name: rustls::pki_types::ServerName<'static>,
    pub tls: Arc<rustls::ClientConfig>,
    /// The rule that chose to intercept; it acted on every exchange of the session.
    pub rule: Option<Arc<str>>,
}

/// The `host:port` a CONNECT tunnel was opened to.
#[derive(Debug, Clone)]
pub struct TunnelOrigin {
    /// Lowercased host (IPv6 without brackets), as dialed.
    pub host: String,
    pub port: u16,
    /// The CONNECT target exactly as the client wrote it: the default `Host` value.
    pub authority: Vec<u8>,
}

/// Where a request goes.
#[derive(Debug)]
pub struct Route<'a> {
    pub host: std::borrow::Cow<'a, str>,
    pub port: u16,
    /// Host header value to send (the authority exactly as the client wrote it, unless a rule
    /// changed it).
    pub authority: std::borrow::Cow<'a, [u8]>,
    /// origin-form target to send.
    pub path: std::borrow::Cow<'a, [u8]>,
    /// How lynxio reaches the origin.
    pub hop: Hop,
}

/// How lynxio reaches a request's origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// As the request arrived: plain TCP for plain requests and plain tunnels, lynxio's own TLS
    /// (on the session's private connections) inside an intercepted session.
    AsReceived,
    /// A redirect rule chose a plain `http://` origin.
    Plain,
    /// A redirect rule chose an `https://` origin: lynxio's own verified TLS, on connections
    /// pooled for every client.
    Tls,
}

/// What an origin's `101` agreed to for a WebSocket session (for inspection and events).
#[derive(Debug, Clone, Default)]
pub struct WsHandshake {
    /// `Sec-WebSocket-Protocol` of the 101.
    pub subprotocol: Option<String>,
    /// `Sec-WebSocket-Extensions` of the 101.
    pub extensions: Option<String>,
}

impl WsHandshake {
    /// Whether permessage-deflate was negotiated (frames may carry RSV1).
    pub fn deflate(&self) -> bool {
        self.extensions
            .as_deref()
            .is_some_and(|e| e.to_ascii_lowercase().contains("permessage-deflate"))
    }
}

/// A connection to an origin, split so a request body and the response can flow at once.
pub struct Upstream {
    pub r: UpRead,
    pub w: UpWrite,
    pub buf: ReadBuf,
    pub fd: RawFd,
    /// Taken from the pool rather than freshly dialed.
    pub reused: bool,
    /// Its place under the origin's cap on open connections (none for connections not dialed
    /// through `upstream::get`); dropped with the connection, or when it leaves HTTP (upgrade).
    pub permit: Option<Permit<Upstream>>,
}

impl Upstream {
    /// The socket under the halves when they are plain TCP (bodies may be spliced), not TLS.
    pub fn plain_socket(&self) -> Option<RawFd> {
        (matches!(self.r, UpRead::Tcp(_)) && self.fd >= 0).then_some(self.fd)
    }

    pub fn new(stream: TcpStream) -> Self {
        let fd = stream.as_raw_fd();
        let (r, w) = stream.into_split();
        Upstream::from_parts(UpRead::Tcp(r), UpWrite::Tcp(w), fd)
    }

    /// An origin connection from already-split halves (TLS) and its socket's fd.
    pub fn from_parts(r: UpRead, w: UpWrite, fd: RawFd) -> Self {
        Upstream {
            r,
            w,
            buf: ReadBuf::with_capacity(UPSTREAM_BUF_SIZE),
            fd,
            reused: false,
            permit: None,
        }
    }
}

impl Pooled for Upstream {
    /// An idle origin connection keeps only a default-sized read buffer.
    fn on_idle(&mut self) {
        self.buf.shrink_idle(UPSTREAM_BUF_SIZE);
    }
}
