//! What an exchange becomes after its `101 Switching Protocols` (a WebSocket handshake that the
//! origin accepted): a byte relay between the client connection and the origin connection, in
//! whatever form each has (plain TCP, HTTP inside a tunnel, decrypted TLS), with the bytes each
//! side sent right behind the handshake delivered first, half-close, the tunnel idle timeout,
//! and the bytes each way recorded on the flow.

use monoio::io::{AsyncReadRent, AsyncWriteRent};

use crate::observe::event::UpgradeInfo;
use crate::observe::metrics::TunnelKind;
use crate::tunnel::{self, Half, TunnelEnd};

use super::ctx::{Client, Flow, Upstream, Worker};

/// Relay the upgraded connection until either side is done or it idles out.
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
    let (end, error) = match end {
        TunnelEnd::Done => ("done", None),
        TunnelEnd::IdleTimeout => ("idle timeout", None),
        TunnelEnd::ClientError(e) => ("client failed", Some(e.to_string())),
        TunnelEnd::OriginError(e) => ("origin failed", Some(e.to_string())),
    };
    flow.upgrade = Some(UpgradeInfo {
        protocol: "websocket",
        bytes_up: stats.client_to_origin,
        bytes_down: stats.origin_to_client,
        end,
        error,
    });
}
