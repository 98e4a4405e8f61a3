//! What an exchange becomes after its `101 Switching Protocols` (a WebSocket handshake that the
//! origin accepted): a byte relay between the client connection and the origin connection,
//! with the bytes each side sent right behind the handshake delivered first, half-close, the
//! tunnel idle timeout, and the bytes each way recorded on the flow. When both ends are plain
//! TCP sockets it is the CONNECT tunnels' relay (zero-copy splice through the worker's pipes);
//! otherwise (decrypted TLS on either side) a copying relay over the connections' halves.

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, Splitable};
use monoio::net::TcpStream;

use crate::observe::event::UpgradeInfo;
use crate::observe::metrics::TunnelKind;
use crate::tunnel::{self, Half, TunnelEnd, TunnelStats};

use super::body::write_within;
use super::ctx::{Client, Flow, Upstream, Worker};
use super::stream::{UpRead, UpWrite};

/// Relay an upgraded connection whose client is a plain TCP socket (`pending`: bytes it sent
/// behind the handshake): spliced when the origin connection is plain TCP too.
pub async fn relay_tcp(
    worker: &Worker,
    mut client: TcpStream,
    pending: Vec<u8>,
    up: Upstream,
    flow: &mut Flow,
) {
    let Upstream { r, w, mut buf, .. } = up;
    let (r, w) = match (r, w) {
        (UpRead::Tcp(r), UpWrite::Tcp(w)) => {
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
            record(flow, stats.client_to_origin, down, end);
            return;
        }
        other => other,
    };
    // The origin side is TLS: copy through the halves.
    let (cr, cw) = client.into_split();
    // The fd is only read by the pool's liveness peek; this connection never goes back there.
    let mut up = Upstream::from_parts(r, w, -1);
    up.buf = buf;
    let buf = crate::net::ReadBuf::from_prefix(pending);
    let mut client = Client::new(cr, cw, buf, flow.peer);
    relay(worker, &mut client, up, flow).await;
}

/// Relay the upgraded connection until either side is done or it idles out (copying: either
/// side may be TLS).
pub async fn relay<R: AsyncReadRent, W: AsyncWriteRent>(
    worker: &Worker,
    client: &mut Client<R, W>,
    mut up: Upstream,
    flow: &mut Flow,
) {
    let gauge = worker.metrics.tunnel(TunnelKind::WebSocket);
    gauge.inc();
    let from_client = client.buf.bytes().to_vec();
    client.buf.consume(from_client.len());
    let from_origin = up.buf.bytes().to_vec();
    up.buf.consume(from_origin.len());
    let (stats, end) = tunnel::relay_halves(
        Half {
            r: &mut client.r,
            w: &mut client.w,
            pending: from_client,
        },
        Half {
            r: &mut up.r,
            w: &mut up.w,
            pending: from_origin,
        },
        worker.cfg.timeouts.tunnel_idle,
    )
    .await;
    gauge.dec();
    record(flow, stats.client_to_origin, stats.origin_to_client, end);
}

/// What the relay moved, and how it ended, on the flow.
fn record(flow: &mut Flow, up: u64, down: u64, end: TunnelEnd) {
    let (end, error) = match end {
        TunnelEnd::Done => ("done", None),
        TunnelEnd::IdleTimeout => ("idle timeout", None),
        TunnelEnd::ClientError(e) => ("client failed", Some(e.to_string())),
        TunnelEnd::OriginError(e) => ("origin failed", Some(e.to_string())),
    };
    flow.upgrade = Some(UpgradeInfo {
        protocol: "websocket",
        bytes_up: up,
        bytes_down: down,
        end,
        error,
    });
}
