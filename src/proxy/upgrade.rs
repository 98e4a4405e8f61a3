//! What an exchange becomes after its `101 Switching Protocols` (a WebSocket handshake that the
//! origin accepted): a relay between the client connection and the origin connection, with
//! the bytes each side sent right behind the handshake delivered first, half-close, the tunnel
//! idle timeout, and the bytes each way recorded on the flow. Two modes:
//! - relay: when nobody reads events and both ends are plain TCP sockets it is the CONNECT
//!   tunnels' relay (zero-copy splice through the worker's pipes); with TLS on either side, a
//!   copying relay over the connections' halves;
//! - inspect (someone reads events: capture or live subscribers): the copying relay with a
//!   [`FrameInspector`] tapping each direction — every byte still forwarded unchanged, but
//!   each message, ping/pong and close becomes an event, and a protocol error (RFC 6455) ends
//!   the session with a close frame (1002/1007) sent to both sides, logged and counted.

use std::cell::{Cell, RefCell};
use std::hash::{BuildHasher, Hasher};

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, Splitable};
use monoio::net::TcpStream;

use crate::observe::event::UpgradeInfo;
use crate::observe::metrics::{ErrorKind, TunnelKind};
use crate::tunnel::{self, Half, TunnelEnd, TunnelStats};
use crate::ws::{self, Direction, FrameInspector, Observed, ProtocolError};

use super::body::write_within;
use super::ctx::flow::{Outcome, Side as FlowSide};
use super::ctx::{Client, Flow, Upstream, Worker, WsHandshake};
use super::report;
use super::stream::{UpRead, UpWrite};

/// Relay an upgraded connection whose client is a plain TCP socket (`pending`: bytes it sent
/// behind the handshake): spliced when the origin connection is plain TCP too and nobody
/// inspects.
pub async fn relay_tcp(
    worker: &Worker,
    mut client: TcpStream,
    pending: Vec<u8>,
    up: Upstream,
    handshake: &WsHandshake,
    flow: &mut Flow,
) {
    report::ws_open(worker, flow, handshake);
    let Upstream { r, w, mut buf, .. } = up;
    let (r, w) = match (r, w) {
        (UpRead::Tcp(r), UpWrite::Tcp(w)) if worker.events().is_none() => {
            let origin = match r.reunite(w) {
                Ok(origin) => origin,
                // Cannot happen: both halves come from one `into_split`.
                Err(_) => {
                    tracing::error!(id = %flow.id, "cannot reunite origin halves; closing");
                    return;
                }
            };
            let gauge = worker.metrics.tunnel(TunnelKind::WebSocket);
            gauge.inc();
            // What the origin sent right behind its 101 goes to the client first.
            let early = buf.bytes().to_vec();
            let early_len = early.len() as u64;
            buf.consume(early.len());
            let sent = if early.is_empty() {
                Ok(())
            } else {
                let write = async { client.write_all(early).await.0.map(|_| ()) };
                write_within(worker.cfg.timeouts.tunnel_idle, write).await
            };
            let (stats, end) = match sent {
                Ok(()) => {
                    tunnel::relay(
                        client,
                        pending,
                        origin,
                        &worker.tunnel_cfg,
                        &worker.tunnel_pools,
                    )
                    .await
                }
                Err(e) => (TunnelStats::default(), TunnelEnd::ClientError(e)),
            };
            gauge.dec();
            let down = stats.origin_to_client + early_len;
            record(flow, stats.client_to_origin, down, end, None);
            return;
        }
        (r, w) => (r, w),
    };
    let (cr, cw) = client.into_split();
    // The fd is only read by the pool's liveness peek; this connection never goes back there.
    let mut up = Upstream::from_parts(r, w, -1);
    up.buf = buf;
    let buf = crate::net::ReadBuf::from_prefix(pending);
    let mut client = Client::new(cr, cw, buf, flow.peer);
    copy_relay(worker, &mut client, up, handshake, flow).await;
}

/// Relay the upgraded connection of a client that is not a plain socket (decrypted TLS).
pub async fn relay<R: AsyncReadRent, W: AsyncWriteRent>(
    worker: &Worker,
    client: &mut Client<R, W>,
    up: Upstream,
    handshake: &WsHandshake,
    flow: &mut Flow,
) {
    report::ws_open(worker, flow, handshake);
    copy_relay(worker, client, up, handshake, flow).await;
}

/// The copying relay over both connections' halves, inspecting frames when someone reads
/// events. Runs until either side is done, it idles out, or a side breaks the protocol.
async fn copy_relay<R: AsyncReadRent, W: AsyncWriteRent>(
    worker: &Worker,
    client: &mut Client<R, W>,
    mut up: Upstream,
    handshake: &WsHandshake,
    flow: &mut Flow,
) {
    let gauge = worker.metrics.tunnel(TunnelKind::WebSocket);
    gauge.inc();
    let from_client = client.buf.bytes().to_vec();
    client.buf.consume(from_client.len());
    let from_origin = up.buf.bytes().to_vec();
    up.buf.consume(from_origin.len());
    let inspect = worker.events().is_some();
    let (keep, deflate) = (worker.cfg.capture_bodies, handshake.deflate());
    let up_side = Side::new(Direction::ClientToServer, deflate, keep);
    let down_side = Side::new(Direction::ServerToClient, deflate, keep);
    let (stats, end) = {
        let flow: &Flow = flow;
        let mut up_tap = |bytes: &[u8]| up_side.feed(worker, flow, bytes);
        let mut down_tap = |bytes: &[u8]| down_side.feed(worker, flow, bytes);
        tunnel::relay_halves(
            Half {
                r: &mut client.r,
                w: &mut client.w,
                pending: from_client,
                tap: inspect.then_some(&mut up_tap as tunnel::Tap<'_>),
            },
            Half {
                r: &mut up.r,
                w: &mut up.w,
                pending: from_origin,
                tap: inspect.then_some(&mut down_tap as tunnel::Tap<'_>),
            },
            worker.cfg.timeouts.tunnel_idle,
        )
        .await
    };
    let refused = match &end {
        TunnelEnd::Refused { from_client: true } => up_side.error.take(),
        TunnelEnd::Refused { from_client: false } => down_side.error.take(),
        _ => None,
    };
    if let (TunnelEnd::Refused { from_client }, Some(e)) = (&end, &refused) {
        let from = if *from_client { "client" } else { "server" };
        tracing::warn!(id = %flow.id, from, code = e.code, reason = e.reason, "WebSocket protocol error; closing both sides");
        worker.metrics.error(ErrorKind::WebSocketProtocol);
        flow.outcome = Outcome::Aborted {
            by: if *from_client {
                FlowSide::Client
            } else {
                FlowSide::Origin
            },
            reason: format!("WebSocket protocol error: {} ({})", e.reason, e.code),
        };
        report::ws_error(worker, flow, from, e);
        close_both(worker, client, &mut up, e).await;
    }
    gauge.dec();
    let messages = inspect.then(|| (up_side.messages.get(), down_side.messages.get()));
    record(
        flow,
        stats.client_to_origin,
        stats.origin_to_client,
        end,
        messages,
    );
}

/// One direction's inspector, the messages it saw, and the error it stopped on.
struct Side {
    from: &'static str,
    inspector: RefCell<FrameInspector>,
    observed: RefCell<Vec<Observed>>,
    messages: Cell<u64>,
    error: Cell<Option<ProtocolError>>,
}

impl Side {
    fn new(dir: Direction, deflate: bool, keep: usize) -> Side {
        Side {
            from: match dir {
                Direction::ClientToServer => "client",
                Direction::ServerToClient => "server",
            },
            inspector: RefCell::new(FrameInspector::new(dir, deflate, keep)),
            observed: RefCell::new(Vec::new()),
            messages: Cell::new(0),
            error: Cell::new(None),
        }
    }

    /// The tap: inspect `bytes`, report what completed; false on a protocol error.
    fn feed(&self, worker: &Worker, flow: &Flow, bytes: &[u8]) -> bool {
        let mut observed = self.observed.borrow_mut();
        let result = self.inspector.borrow_mut().feed(bytes, &mut observed);
        for o in observed.drain(..) {
            if !matches!(o, Observed::Close { .. }) {
                self.messages.set(self.messages.get() + 1);
            }
            report::ws_observed(worker, flow, self.from, o);
        }
        match result {
            Ok(()) => true,
            Err(e) => {
                self.error.set(Some(e));
                false
            }
        }
    }
}

/// Sends a close frame with the error's code to both sides (masked toward the origin, as a
/// client's frames must be), then shuts both write sides. Best effort: either may be gone.
async fn close_both<R, W: AsyncWriteRent>(
    worker: &Worker,
    client: &mut Client<R, W>,
    up: &mut Upstream,
    e: &ProtocolError,
) {
    let limit = worker.cfg.timeouts.client_idle;
    let to_client = ws::close_frame(e.code, e.reason, None);
    let to_origin = ws::close_frame(e.code, e.reason, Some(mask()));
    let _ = write_within(limit, async {
        client.w.write_all(to_client).await.0.map(|_| ())
    })
    .await;
    let _ = write_within(limit, async {
        up.w.write_all(to_origin).await.0.map(|_| ())
    })
    .await;
    let _ = write_within(limit, client.w.shutdown()).await;
    let _ = write_within(limit, up.w.shutdown()).await;
}

/// A masking key for a frame lynxio sends to an origin (RFC 6455 §5.3: unpredictable); the
/// standard library's per-instance random hash keys are enough for a one-off close frame.
fn mask() -> [u8; 4] {
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let b = bits.to_le_bytes();
    [b[0], b[1], b[2], b[3]]
}

/// What the relay moved, and how it ended, on the flow.
fn record(flow: &mut Flow, up: u64, down: u64, end: TunnelEnd, messages: Option<(u64, u64)>) {
    let (end, error) = match end {
        TunnelEnd::Done => ("done", None),
        TunnelEnd::IdleTimeout => ("idle timeout", None),
        TunnelEnd::ClientError(e) => ("client failed", Some(e.to_string())),
        TunnelEnd::OriginError(e) => ("origin failed", Some(e.to_string())),
        TunnelEnd::Refused { from_client: true } => ("client protocol error", None),
        TunnelEnd::Refused { from_client: false } => ("origin protocol error", None),
    };
    flow.upgrade = Some(UpgradeInfo {
        protocol: "websocket",
        bytes_up: up,
        bytes_down: down,
        end,
        error,
        messages_up: messages.map(|m| m.0),
        messages_down: messages.map(|m| m.1),
    });
}
