//! HBONE inbound ([HB-W1], [HB-W4]): mutual TLS with the mesh identity, HTTP/2, and one
//! `CONNECT` stream per tunnelled connection. The authority names the destination (`VIP:port`);
//! one this waypoint does not serve is refused on that stream with 503; one it serves becomes a
//! connection for the ordinary request path, carrying the peer's identity.

use super::tunnel::H2Tunnel;
use crate::proxy_app::GatewayProxy;
use crate::state::SharedState;
use bytes::Bytes;
use pingora::apps::ServerApp;
use pingora::listeners::tls::Acceptor;
use pingora::protocols::l4::socket::SocketAddr as PingoraAddr;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{ALPN, SocketDigest, Ssl};
use pingora::proxy::HttpProxy;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use waygate_config::NsName;

/// How long the mTLS handshake and the HTTP/2 preface may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Concurrent tunnels on one connection.
const MAX_STREAMS: u32 = 10_000;
/// Per-tunnel flow-control window.
const STREAM_WINDOW: u32 = 1 << 20;
/// Connection flow-control window: many tunnels' small writes buffer at once (h2 also sizes
/// its small-frame budget from it, and closes connections that exceed that budget).
const CONNECTION_WINDOW: u32 = 16 << 20;

/// Everything one HBONE socket serves with.
#[derive(Clone)]
pub struct HboneServing {
    /// The waypoint Gateway.
    pub gateway: NsName,
    /// The live state (for the destinations the waypoint serves).
    pub state: Arc<SharedState>,
    /// The request path tunnels are served by.
    pub app: Arc<HttpProxy<GatewayProxy>>,
    /// Resolves ServiceEntry DNS endpoints of opaque ports.
    pub dns: Arc<crate::dns::Dns>,
}

/// Serve one HBONE connection until the client closes it.
pub async fn serve(
    stream: L4Stream,
    peer: SocketAddr,
    acceptor: Arc<Acceptor>,
    serving: HboneServing,
    shutdown: watch::Receiver<bool>,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.tls_handshake(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%peer, "HBONE handshake refused: {e}");
            return;
        }
        Err(_) => return,
    };
    if tls.selected_alpn_proto() != Some(ALPN::H2) {
        tracing::debug!(%peer, "HBONE needs ALPN h2");
        return;
    }
    let digest = tls.get_ssl_digest();
    // [HB-W1] HBONE is TLS 1.3 only (Pingora's settings also offer 1.2).
    if digest.as_ref().is_none_or(|d| d.version != "TLSv1_3") {
        tracing::debug!(%peer, "HBONE needs TLS 1.3");
        return;
    }
    let mut conn = match tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        h2::server::Builder::new()
            .max_concurrent_streams(MAX_STREAMS)
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .handshake::<_, Bytes>(tls),
    )
    .await
    {
        Ok(Ok(c)) => c,
        _ => return,
    };
    while let Some(accepted) = conn.accept().await {
        let (req, respond) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(%peer, "HBONE connection ended: {e}");
                break;
            }
        };
        let serving = serving.clone();
        let digest = digest.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            stream_tunnel(req, respond, peer, digest, serving, shutdown).await;
        });
    }
}

/// The destination a `CONNECT` names: `IP:port` or `[IPv6]:port`.
fn destination(req: &http::Request<h2::RecvStream>) -> Option<SocketAddr> {
    if req.method() != http::Method::CONNECT {
        return None;
    }
    req.uri().authority()?.as_str().parse().ok()
}

async fn stream_tunnel(
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    peer: SocketAddr,
    digest: Option<Arc<pingora::protocols::tls::SslDigest>>,
    serving: HboneServing,
    shutdown: watch::Receiver<bool>,
) {
    let refuse = |respond: &mut h2::server::SendResponse<Bytes>, status: u16| {
        if let Ok(resp) = http::Response::builder().status(status).body(()) {
            let _ = respond.send_response(resp, true);
        }
    };
    let Some(dest) = destination(&req) else {
        tracing::info!(%peer, method = %req.method(), uri = %req.uri(), "HBONE: not a CONNECT to IP:port");
        refuse(&mut respond, 400);
        return;
    };
    let snapshot = serving.state.snapshot();
    let waypoint = snapshot.gateway(&serving.gateway);
    let service = waypoint.and_then(|g| g.mesh_service(dest));
    let (Some(waypoint), Some(service)) = (waypoint, service) else {
        tracing::info!(%peer, %dest, waypoint = %serving.gateway, "HBONE: destination not served by this waypoint");
        refuse(&mut respond, 503);
        return;
    };
    // Opaque TCP: an endpoint of the Service, spliced, under L4 authorization only.
    let tcp_endpoint = if service.opaque {
        let principal = digest
            .as_ref()
            .and_then(|d| d.extension.get::<crate::tls::DownstreamTls>())
            .and_then(|t| t.peer_identity.clone());
        let client = req
            .headers()
            .get(http::header::FORWARDED)
            .and_then(|v| v.to_str().ok())
            .and_then(super::outbound::forwarded_client)
            .unwrap_or(peer);
        let allowed = crate::authz::allows_tcp(
            waypoint.authz.iter().chain(&service.authz),
            principal.as_deref(),
            client.ip(),
            dest,
        );
        if !allowed {
            // ztunnel's answer to a CONNECT that policy refuses.
            refuse(&mut respond, 401);
            return;
        }
        let cluster = snapshot.clusters.get(service.cluster);
        let mut ep = service
            .pinned
            .or_else(|| cluster.and_then(|c| c.next_endpoint()))
            .or_else(|| {
                // [SE-2] resolution NONE: where the client sent it (never an address we
                // allocated, which leads nowhere).
                let port = cluster?.original_destination_port?;
                let allocated =
                    matches!(dest.ip(), std::net::IpAddr::V4(v) if v.octets()[..2] == [240, 240]);
                (!allocated).then(|| SocketAddr::new(dest.ip(), port))
            });
        if ep.is_none()
            && let Some(names) = cluster.and_then(|c| c.resolve.as_ref())
        {
            match serving.dns.next_endpoint(names).await {
                Ok(a) => ep = Some(a),
                Err(e) => tracing::info!(%peer, %dest, "HBONE: DNS: {e}"),
            }
        }
        let Some(ep) = ep else {
            tracing::info!(%peer, %dest, "HBONE: no ready endpoint");
            refuse(&mut respond, 503);
            return;
        };
        match tokio::net::TcpStream::connect(ep).await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::info!(%peer, %dest, endpoint = %ep, "HBONE: endpoint unreachable: {e}");
                refuse(&mut respond, 503);
                return;
            }
        }
    } else {
        None
    };
    drop(snapshot);
    let Ok(ok) = http::Response::builder().status(200).body(()) else {
        return;
    };
    let Ok(send) = respond.send_response(ok, false) else {
        return;
    };
    // [HB-W2] The original client, when the tunnel's sender names it; else the sender.
    let client = req
        .headers()
        .get(http::header::FORWARDED)
        .and_then(|v| v.to_str().ok())
        .and_then(super::outbound::forwarded_client)
        .unwrap_or(peer);
    let socket = SocketDigest::from_raw_fd(-1);
    let _ = socket.peer_addr.set(Some(PingoraAddr::Inet(client)));
    let _ = socket.local_addr.set(Some(PingoraAddr::Inet(dest)));
    let _ = socket.original_dst.set(Some(PingoraAddr::Inet(dest)));
    let mut tunnel = H2Tunnel::new(req.into_body(), send, digest, socket);
    match tcp_endpoint {
        Some(mut upstream) => {
            let _ = upstream.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut tunnel, &mut upstream).await;
        }
        None => {
            serving.app.process_new(Box::new(tunnel), &shutdown).await;
        }
    }
}
