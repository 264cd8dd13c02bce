//! Routing a request: route lookup, request filters (CORS preflight, redirect, direct response,
//! URL rewrite, header modifiers, mirrors) and the choice of backend and endpoint, as one decision.

use crate::forwarded::{X_FORWARDED_FOR, append_xff};
use crate::headers::RequestHeaders;
use crate::local_reply::LocalReply;
use crate::mirror::{MirrorCopy, Mirrorer};
use crate::proxy_app::{GatewayProxy, RequestCtx};
use crate::request_ctx::PendingMirror;
use crate::tls::DownstreamTls;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use pingora::proxy::Session;
use std::net::SocketAddr;
use waygate_config::hostname::normalize_host;
use waygate_config::route_table::{BackendTarget, RuleAction};
use waygate_config::snapshot::MeshEndpoint;
use waygate_config::{RequestView, Snapshot};
use waygate_filters::{Filter, RedirectInput};

static ORIGIN: HeaderName = http::header::ORIGIN;
static REQUEST_METHOD: HeaderName = http::header::ACCESS_CONTROL_REQUEST_METHOD;
static REQUEST_HEADERS: HeaderName = http::header::ACCESS_CONTROL_REQUEST_HEADERS;

/// What the request filter decided.
pub(crate) enum Decision {
    /// Answer locally.
    Reply(LocalReply),
    /// Forward to the chosen endpoint.
    Forward,
}

/// Route the request, run request filters, and pick the backend and endpoint.
pub(crate) fn decide(
    app: &GatewayProxy,
    snapshot: &Snapshot,
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> Decision {
    let req = session.req_header();
    let raw_host = req
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
        .unwrap_or("");
    let host = normalize_host(raw_host);
    let path = req.uri.path();
    ctx.downstream_tls = session.digest().and_then(|d| d.ssl_digest.clone());
    // A handle of our own on the TLS facts, so that the view can borrow them while `ctx`
    // changes below.
    let tls = ctx.downstream_tls.clone();
    let facts = tls
        .as_ref()
        .and_then(|d| d.extension.get::<DownstreamTls>());
    let hbone = facts.is_some_and(|t| t.hbone);
    // [GEP-1294], [VS-3] The caller's namespace, from its verified SPIFFE ID (mesh only).
    let caller = facts
        .filter(|t| t.hbone)
        .and_then(|t| t.peer_identity.as_deref())
        .and_then(spiffe_namespace);
    let view = RequestView {
        method: &req.method,
        host: &host,
        path,
        query: req.uri.query(),
        headers: &req.headers,
        scheme: request_scheme(tls.is_some(), facts, &req.headers),
        source_namespace: caller,
    };
    // [HB-W4] A request inside an HBONE tunnel goes to the Service its CONNECT named: with the
    // routes attached to that Service, else straight to its endpoints.
    let (entry, listener_port) = if hbone {
        let dest = tunnel_destination(session);
        let Some((waypoint, service)) = dest.and_then(|d| app.mesh_target(snapshot, d)) else {
            return Decision::Reply(LocalReply::no_route());
        };
        let to = crate::authz::Destination {
            port: service.port,
            ip: dest.map(|d| d.ip()),
        };
        let policies = waypoint.authz.iter().chain(&service.authz);
        if let Some(denied) = crate::authz::check(policies, session, ctx, &host, to) {
            return Decision::Reply(denied);
        }
        // [GEP-1294] The caller's namespace picks its consumer routes over the producer's.
        let Some(table) = service.routes_for(caller) else {
            return mesh_default(snapshot, service, session, ctx);
        };
        let Some(entry) = table.virtual_host(&host).and_then(|vh| vh.find(&view)) else {
            return Decision::Reply(LocalReply::no_route());
        };
        (entry, service.port)
    } else {
        // [GW-3] The certificate was chosen for the SNI's listener: a Host that picks another
        // listener on this port was sent to the wrong place (HTTP/2 connection coalescing).
        if let Some(sni) = ctx.tls_facts().and_then(|t| t.sni.as_deref())
            && let Some(by_sni) = app.listener_for(snapshot, sni)
            && let Some(by_host) = app.listener_for(snapshot, &host)
            && !std::ptr::eq(by_sni, by_host)
        {
            return Decision::Reply(LocalReply::misdirected());
        }
        if let Some((gateway, port)) = app.gateway_for_host(snapshot, &host) {
            let to = crate::authz::Destination { port, ip: None };
            if let Some(denied) = crate::authz::check(gateway.authz.iter(), session, ctx, &host, to)
            {
                return Decision::Reply(denied);
            }
        }
        let Ok(found) = app.route(snapshot, &view) else {
            return Decision::Reply(LocalReply::no_route());
        };
        (found.entry, found.listener.port)
    };
    let action = entry.action.clone();
    let matched_prefix = entry.matcher.matched_prefix();
    for f in &action.filters {
        match f {
            // [VS-7] Delay and abort are rolled independently; a delayed abort waits first.
            Filter::Fault(fault) => {
                let roll = || rand::random_range(0..waygate_filters::fault::PER_MILLION);
                if let Some(d) = fault.delay.as_ref().filter(|d| d.hits(roll())) {
                    ctx.fault_delay = Some(d.what);
                    ctx.flag = "DI";
                }
                if let Some(a) = fault.abort.as_ref().filter(|a| a.hits(roll())) {
                    ctx.action = Some(action.clone());
                    return Decision::Reply(LocalReply::fault_abort(a.what));
                }
            }
            // [HF-5] a preflight is answered here: with the CORS headers for an allowed origin,
            // without any for another origin (so the browser refuses the actual request), or,
            // for a VirtualService, passed on to the backend.
            Filter::Cors(cors) => {
                let Some(origin) = req.headers.get(&ORIGIN) else {
                    continue;
                };
                let request_method = req.headers.get(&REQUEST_METHOD);
                if req.method == http::Method::OPTIONS && request_method.is_some() {
                    let headers = cors.preflight(
                        origin,
                        request_method.and_then(|v| v.to_str().ok()),
                        req.headers
                            .get(&REQUEST_HEADERS)
                            .and_then(|v| v.to_str().ok()),
                    );
                    match headers {
                        // Istio's default: a preflight the policy does not allow is the
                        // backend's to answer.
                        None if cors.forwards_unmatched_preflights() => continue,
                        headers => {
                            return Decision::Reply(LocalReply::cors_preflight(
                                headers.unwrap_or_default(),
                            ));
                        }
                    }
                } else if let Some(headers) = cors.response_headers(origin) {
                    ctx.cors = headers;
                }
            }
            // Redirect is answered locally and needs the request as it arrived.
            Filter::RequestRedirect(r) => {
                let input = RedirectInput {
                    scheme: view.scheme,
                    host: &host,
                    listener_port,
                    path,
                    query: view.query,
                    matched_prefix,
                };
                return Decision::Reply(LocalReply::redirect(r.status, r.location(&input)));
            }
            Filter::DirectResponse(d) => {
                // The route's response header edits apply to its direct response, as Envoy's do.
                let mut edits = http::HeaderMap::new();
                for f in &action.filters {
                    if let Filter::ResponseHeaderModifier(m) = f {
                        m.apply(&mut edits);
                    }
                }
                let mut reply = LocalReply::direct(d.status, d.body.clone());
                reply
                    .headers
                    .extend(edits.iter().map(|(n, v)| (n.clone(), v.clone())));
                return Decision::Reply(reply);
            }
            _ => {}
        }
    }
    let chosen = if action.total_weight == 0 {
        None
    } else {
        action
            .pick(rand::random_range(0..action.total_weight))
            .and_then(|i| action.backends.get(i).map(|b| (i, b)))
    };
    // [HF-3] URLRewrite, rule then backend (a later one wins); a path rewrite always starts
    // from the path as it arrived, which is what the rule's prefix matched.
    let backend_filters = chosen.map(|(_, b)| b.filters.as_slice()).unwrap_or(&[]);
    for f in action.filters.iter().chain(backend_filters) {
        if let Filter::UrlRewrite(rw) = f {
            if let Some(h) = rw
                .hostname
                .as_deref()
                .and_then(|h| HeaderValue::from_str(h).ok())
            {
                ctx.upstream_host = Some(h);
            }
            if let Some(pq) = rw.path_and_query(path, view.query, matched_prefix) {
                ctx.upstream_path = Some(pq);
            }
        }
    }
    let req = session.req_header_mut();
    for f in &action.filters {
        if let Filter::RequestHeaderModifier(m) = f {
            m.apply(&mut RequestHeaders(req));
        }
    }
    let Some((index, backend)) = chosen else {
        ctx.action = Some(action);
        return Decision::Reply(LocalReply::invalid_backend());
    };
    for f in &backend.filters {
        if let Filter::RequestHeaderModifier(m) = f {
            m.apply(&mut RequestHeaders(req));
        }
    }
    let reply = match &backend.target {
        BackendTarget::Invalid { .. } => Some(LocalReply::invalid_backend()),
        BackendTarget::Cluster { index: c, .. } => {
            let cluster = snapshot.clusters.get(*c);
            ctx.h2c_upstream = entry.id.kind == "GRPCRoute"
                || cluster.and_then(|c| c.app_protocol.as_deref()) == Some("kubernetes.io/h2c");
            ctx.upstream_tls = cluster.and_then(|c| c.tls.clone());
            // [HB-W5] A Service with a waypoint is reached through it (fail closed).
            if let Some(via) = cluster.and_then(|c| c.via_waypoint.as_ref())
                && !app.is_waypoint(snapshot)
            {
                ctx.upstream_tls = None;
                ctx.hbone_target = via.target;
                ctx.hbone_peer = via.identity.clone();
                let n = via.endpoints.len();
                let waypoint = (n > 0)
                    .then(|| via.endpoints.get(rand::random_range(0..n)).copied())
                    .flatten();
                return match (waypoint, via.target) {
                    (Some(w), Some(_)) => {
                        ctx.upstream = Some(w);
                        ctx.backend = index;
                        ctx.action = Some(action);
                        Decision::Forward
                    }
                    _ => Decision::Reply(LocalReply::no_healthy_upstream()),
                };
            }
            let endpoint =
                match crate::endpoint_choice::admit_and_pick(ctx, snapshot, *c, session, None) {
                    Ok(e) => e,
                    Err(overflow) => {
                        ctx.backend = index;
                        ctx.action = Some(action);
                        return Decision::Reply(overflow);
                    }
                };
            if let Some(m) = cluster.zip(endpoint).and_then(|(c, e)| c.mesh_endpoint(e)) {
                ctx.backend = index;
                ctx.action = Some(action);
                return in_mesh_endpoint(m, ctx);
            }
            let tls_error = cluster.and_then(|c| c.tls_error.as_deref());
            match endpoint {
                _ if tls_error.is_some() => {
                    tracing::debug!(error = tls_error, "upstream TLS not usable");
                    Some(LocalReply::upstream_tls_unusable())
                }
                Some(addr) => {
                    ctx.upstream = Some(addr);
                    None
                }
                None if cluster.is_some_and(|c| c.resolve.is_some()) => {
                    ctx.resolve = Some(*c);
                    None
                }
                None => match cluster.and_then(|c| c.original_destination_port) {
                    Some(port) => match original_destination(session, ctx, port) {
                        Ok(addr) => {
                            ctx.upstream = Some(addr);
                            None
                        }
                        Err(why) => {
                            tracing::debug!(why, "resolution NONE");
                            Some(LocalReply::no_healthy_upstream())
                        }
                    },
                    None => Some(LocalReply::no_healthy_upstream()),
                },
            }
        }
    };
    ctx.backend = index;
    if reply.is_none() {
        start_mirrors(
            &app.mirror,
            snapshot,
            session,
            ctx,
            &action,
            &backend.filters,
        );
    }
    ctx.action = Some(action);
    match reply {
        Some(r) => Decision::Reply(r),
        None => Decision::Forward,
    }
}

/// [SE-2] `resolution: NONE`: the address the client's tunnel named, on the entry's target
/// port. An address we allocated ([HB-W4]) leads nowhere, and an ingress has no such address.
fn original_destination(
    session: &Session,
    ctx: &RequestCtx,
    port: u16,
) -> Result<SocketAddr, &'static str> {
    // Only a tunnel's CONNECT names one: on an ordinary socket the digest's original
    // destination is the kernel's (SO_ORIGINAL_DST), i.e. this gateway's own address.
    let dest = ctx
        .tls_facts()
        .is_some_and(|t| t.hbone)
        .then(|| tunnel_destination(session))
        .flatten()
        .ok_or("no original destination: the request did not arrive through an HBONE tunnel")?;
    match dest.ip() {
        std::net::IpAddr::V4(v4) if v4.octets()[..2] == [240, 240] => {
            Err("the original destination is an allocated address, not the upstream's own")
        }
        ip => Ok(SocketAddr::new(ip, port)),
    }
}

/// [HB-W5] An in-mesh endpoint is reached over HBONE through its node's ztunnel
/// (`<endpoint IP>:15008`, `CONNECT <endpoint IP>:<target port>`), which must present the
/// endpoint's workload identity when its Pod is known; DestinationRule TLS does not apply in
/// the mesh.
fn in_mesh_endpoint(m: &MeshEndpoint, ctx: &mut RequestCtx) -> Decision {
    ctx.upstream_tls = None;
    ctx.hbone_target = Some(m.addr);
    ctx.hbone_peer = m.identity.clone();
    ctx.upstream = Some(SocketAddr::new(m.addr.ip(), HBONE_PORT));
    Decision::Forward
}

/// `https` when this proxy terminated TLS for the request; inside an HBONE tunnel the
/// waypoint's mTLS is not the request's scheme: the mesh sender's `x-forwarded-proto` (say,
/// an ingress that terminated HTTPS) stands, and without one it is the client's plain HTTP.
fn request_scheme(
    terminated_tls: bool,
    facts: Option<&DownstreamTls>,
    headers: &http::HeaderMap,
) -> &'static str {
    let https = match facts {
        Some(t) if t.hbone => headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https")),
        _ => terminated_tls,
    };
    if https { "https" } else { "http" }
}

/// The namespace of a SPIFFE ID `spiffe://<trust domain>/ns/<ns>/sa/<sa>`.
fn spiffe_namespace(id: &str) -> Option<&str> {
    let path = id.strip_prefix("spiffe://")?.split_once('/')?.1;
    let mut parts = path.split('/');
    (parts.next()? == "ns").then_some(())?;
    parts.next().filter(|ns| !ns.is_empty())
}

/// The HBONE port of every in-mesh node.
const HBONE_PORT: u16 = 15008;

/// The destination an HBONE tunnel's CONNECT named.
fn tunnel_destination(session: &Session) -> Option<SocketAddr> {
    session
        .digest()
        .and_then(|d| d.socket_digest.as_ref())
        .and_then(|s| s.original_dst())
        .and_then(|a| a.as_inet())
        .copied()
}

/// Default mesh routing: the Service port's own endpoints.
fn mesh_default(
    snapshot: &Snapshot,
    service: &waygate_config::snapshot::MeshService,
    session: &Session,
    ctx: &mut RequestCtx,
) -> Decision {
    let Some(cluster) = snapshot.clusters.get(service.cluster) else {
        return Decision::Reply(LocalReply::no_route());
    };
    ctx.h2c_upstream = cluster.app_protocol.as_deref() == Some("kubernetes.io/h2c");
    let endpoint = match crate::endpoint_choice::admit_and_pick(
        ctx,
        snapshot,
        service.cluster,
        session,
        service.pinned,
    ) {
        Ok(e) => e,
        Err(overflow) => return Decision::Reply(overflow),
    };
    if let Some(m) = endpoint.and_then(|e| cluster.mesh_endpoint(e)) {
        return in_mesh_endpoint(m, ctx);
    }
    ctx.upstream_tls = cluster.tls.clone();
    if cluster.tls_error.is_some() {
        return Decision::Reply(LocalReply::upstream_tls_unusable());
    }
    match endpoint {
        Some(addr) => {
            ctx.upstream = Some(addr);
            Decision::Forward
        }
        None if cluster.resolve.is_some() => {
            ctx.resolve = Some(service.cluster);
            Decision::Forward
        }
        None => match cluster
            .original_destination_port
            .map(|port| original_destination(session, ctx, port))
        {
            Some(Ok(addr)) => {
                ctx.upstream = Some(addr);
                Decision::Forward
            }
            Some(Err(why)) => {
                tracing::debug!(why, "resolution NONE");
                Decision::Reply(LocalReply::no_healthy_upstream())
            }
            None => Decision::Reply(LocalReply::no_healthy_upstream()),
        },
    }
}

/// [HF-4] Pick the mirrors this request is sampled into and send (bodyless request) or hold
/// (request with a body, sent from `request_body_filter`) the copy. Never blocks.
fn start_mirrors(
    mirror: &Mirrorer,
    snapshot: &Snapshot,
    session: &mut Session,
    ctx: &mut RequestCtx,
    action: &RuleAction,
    backend_filters: &[Filter],
) {
    let targets: Vec<SocketAddr> = action
        .filters
        .iter()
        .chain(backend_filters)
        .filter_map(|f| match f {
            Filter::RequestMirror(m) => Some(m),
            _ => None,
        })
        .filter(|m| m.denominator > 0 && m.sampled(rand::random_range(0..m.denominator)))
        .filter_map(|m| snapshot.clusters.get(m.cluster)?.next_endpoint())
        .collect();
    if targets.is_empty() {
        return;
    }
    let req = session.req_header();
    let host = ctx
        .upstream_host
        .as_ref()
        .or_else(|| req.headers.get(http::header::HOST))
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
        .unwrap_or("");
    let path_and_query = ctx.upstream_path.clone().unwrap_or_else(|| {
        req.uri
            .path_and_query()
            .map_or_else(|| "/".to_string(), |p| p.as_str().to_string())
    });
    let mut copy = MirrorCopy::new(req.method.clone(), path_and_query, &req.headers, host);
    if let Some(peer) = session.client_addr().and_then(|a| a.as_inet())
        && let Some(xff) = append_xff(req.headers.get(&X_FORWARDED_FOR), peer.ip())
    {
        copy = copy.with_header(X_FORWARDED_FOR.clone(), xff);
    }
    copy = copy.with_header(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static("http"),
    );
    if session.is_body_empty() {
        for target in targets {
            mirror.send(target, &copy, Bytes::new());
        }
    } else {
        ctx.mirror = Some(PendingMirror {
            copy,
            targets,
            body: Vec::new(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::spiffe_namespace;

    #[test]
    fn a_spiffe_id_names_its_namespace() {
        assert_eq!(
            spiffe_namespace("spiffe://cluster.local/ns/shop/sa/web"),
            Some("shop")
        );
        assert_eq!(spiffe_namespace("spiffe://td/sa/x"), None);
        assert_eq!(spiffe_namespace("spiffe://td/ns//sa/x"), None);
        assert_eq!(spiffe_namespace("https://td/ns/a"), None);
    }
}
