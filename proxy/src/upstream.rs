//! The upstream peer of an attempt: plain HTTP/1.1 or h2c, TLS per the cluster's settings,
//! HBONE through a waypoint or to an in-mesh endpoint, or the upgrade connector.

use crate::proxy_app::{GatewayProxy, RequestCtx};
use pingora::prelude::HttpPeer;
use pingora::proxy::Session;
use pingora::{Error, ErrorType};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use waygate_config::hostname::normalize_host;

/// The peer for `addr` (the endpoint, or the HBONE peer), before timeouts are set.
pub(crate) fn peer_for(
    app: &GatewayProxy,
    session: &Session,
    ctx: &RequestCtx,
    addr: SocketAddr,
) -> pingora::Result<HttpPeer> {
    let mut peer = HttpPeer::new(addr, false, String::new());
    if ctx.h2c_upstream {
        // Prior knowledge over cleartext, or HTTP/2 offered by ALPN over TLS.
        peer.options.set_http_version(2, 2);
    }
    if let Some(target) = ctx.hbone_target {
        // [HB-W5] Over HBONE as ourselves: to the Service's waypoint (never around it), or
        // to an in-mesh endpoint's ztunnel.
        let Some(identity) = app.mesh.identity.load_full() else {
            return Err(Error::explain(
                ErrorType::ConnectError,
                "HBONE (a waypoint or an in-mesh endpoint) needs a mesh identity (--identity-cert)",
            ));
        };
        let client = session.client_addr().and_then(|a| a.as_inet()).copied();
        let peer_id = ctx
            .hbone_peer
            .as_ref()
            .map(|w| w.spiffe_id(&identity.trust_domain));
        // Pingora pools upstream connections by address and group key, never by connector: a
        // pooled tunnel may only carry requests for its own target, from the same client IP
        // (the waypoint authorizes by it), under the same identities.
        let mut key = std::hash::DefaultHasher::new();
        (
            crate::upgrade::UPGRADE_GROUP ^ 1,
            target,
            client.map(|c| c.ip()),
            identity.fingerprint,
            &peer_id,
        )
            .hash(&mut key);
        peer.group_key = key.finish();
        peer.options.custom_l4 = Some(Arc::new(crate::mesh::outbound::HboneConnector {
            pool: app.mesh.pool.clone(),
            identity,
            target,
            client,
            peer_id,
        }));
    } else if ctx.upstream_tls.is_none() && !ctx.h2c_upstream && session.is_upgrade_req() {
        // cloudflare/pingora#946: see `upgrade`.
        peer.group_key = crate::upgrade::UPGRADE_GROUP;
        peer.options.custom_l4 = Some(Arc::new(crate::upgrade::UpgradeConnector));
    }
    if let Some(tls) = &ctx.upstream_tls {
        // [DR-2] the SNI defaults to the Host the upstream will see.
        let sni = match (&tls.settings.sni, &ctx.upstream_host) {
            (Some(s), _) => s.clone(),
            (None, Some(h)) => normalize_host(h.to_str().unwrap_or("")).into_owned(),
            (None, None) => {
                let req = session.req_header();
                let raw = req
                    .headers
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .or_else(|| req.uri.authority().map(|a| a.as_str()))
                    .unwrap_or("");
                normalize_host(raw).into_owned()
            }
        };
        peer = crate::tls::client::tls_peer(addr, tls, sni, ctx.h2c_upstream)?;
    }
    Ok(peer)
}
