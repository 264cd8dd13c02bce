//! Enforcing AuthorizationPolicy ([AP-1]..[AP-11]) on the request path: the request's facts —
//! the principal only from a verified peer certificate, never from a header — evaluated against
//! the policies of the proxy (and, at a waypoint, of the tunnelled service).

use crate::forwarded::X_FORWARDED_FOR;
use crate::local_reply::LocalReply;
use crate::proxy_app::RequestCtx;
use pingora::proxy::Session;
use std::net::IpAddr;
use std::sync::Arc;
use waygate_filters::authz::{Policy, Request, evaluate, normalize_path};

/// Where the request is going: its port and, when known, address.
pub(crate) struct Destination {
    /// The listener's configured port, or the tunnelled service's port.
    pub(crate) port: u16,
    /// The tunnel's destination address (waypoints).
    pub(crate) ip: Option<IpAddr>,
}

/// The reply for a denied request; `None` lets it through.
pub(crate) fn check<'p>(
    policies: impl Iterator<Item = &'p Arc<Policy>>,
    session: &Session,
    ctx: &RequestCtx,
    host: &str,
    dest: Destination,
) -> Option<LocalReply> {
    let policies: Vec<&Policy> = policies.map(Arc::as_ref).collect();
    if policies.is_empty() {
        return None;
    }
    let req = session.req_header();
    let source_ip = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip());
    // The original client: the first X-Forwarded-For hop, else the connection's source.
    let remote_ip = req
        .headers
        .get(&X_FORWARDED_FOR)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().parse().ok())
        .or(source_ip);
    let tls = ctx.tls_facts();
    let principal = tls
        .and_then(|t| t.peer_identity.as_deref())
        .map(|p| p.strip_prefix("spiffe://").unwrap_or(p));
    let path = normalize_path(req.uri.path());
    let verdict = evaluate(
        &policies,
        &Request {
            http: true,
            method: req.method.as_str(),
            path: &path,
            host,
            headers: Some(&req.headers),
            port: dest.port,
            destination_ip: dest.ip,
            source_ip,
            remote_ip,
            principal,
            sni: tls.and_then(|t| t.sni.as_deref()),
        },
    );
    for p in &verdict.audited {
        tracing::info!(
            policy = p,
            principal,
            path,
            "AuthorizationPolicy AUDIT matched"
        );
    }
    for p in &verdict.dry_run {
        tracing::info!(
            policy = p,
            principal,
            path,
            "AuthorizationPolicy dry-run would change the decision"
        );
    }
    if verdict.allowed {
        return None;
    }
    tracing::info!(
        policy = verdict.policy.unwrap_or("none"),
        principal,
        method = %req.method,
        path,
        "RBAC: access denied"
    );
    Some(LocalReply::rbac_denied())
}

/// [AP-10] L4 authorization of a tunnelled TCP connection: HTTP-only fields never match an
/// ALLOW rule and always match a DENY rule.
pub(crate) fn allows_tcp<'p>(
    policies: impl Iterator<Item = &'p Arc<Policy>>,
    principal: Option<&str>,
    client: IpAddr,
    dest: std::net::SocketAddr,
) -> bool {
    let policies: Vec<&Policy> = policies.map(Arc::as_ref).collect();
    if policies.is_empty() {
        return true;
    }
    let principal = principal.map(|p| p.strip_prefix("spiffe://").unwrap_or(p));
    let verdict = evaluate(
        &policies,
        &Request {
            http: false,
            method: "",
            path: "",
            host: "",
            headers: None,
            port: dest.port(),
            destination_ip: Some(dest.ip()),
            source_ip: Some(client),
            remote_ip: Some(client),
            principal,
            sni: None,
        },
    );
    if !verdict.allowed {
        tracing::info!(
            policy = verdict.policy.unwrap_or("none"),
            principal,
            %dest,
            "RBAC: connection denied"
        );
    }
    verdict.allowed
}
