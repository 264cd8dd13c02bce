//! What the proxy says about a request's client: the access log line and
//! `x-forwarded-client-cert`, both from the connection's verified identity.

use crate::proxy_app::RequestCtx;
use http::HeaderName;
use pingora::proxy::Session;

/// The tracing target of the access log (one INFO event per request).
pub const ACCESS_LOG_TARGET: &str = "waygate::access";

/// One access-log line (when the target is enabled).
pub(crate) fn log(session: &Session, ctx: &RequestCtx) {
    if !tracing::enabled!(target: ACCESS_LOG_TARGET, tracing::Level::INFO) {
        return;
    }
    let req = session.req_header();
    let authority = req
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
        .unwrap_or("-");
    let status = session.response_written().map_or(0, |r| r.status.as_u16());
    let tls = ctx.tls_facts();
    tracing::info!(
        target: ACCESS_LOG_TARGET,
        method = %req.method,
        authority,
        path = %req.uri,
        status,
        flag = ctx.flag,
        upstream = ?ctx.upstream,
        client = ?session.client_addr().and_then(|a| a.as_inet()),
        sni = tls.and_then(|t| t.sni.as_deref()).unwrap_or("-"),
        peer_identity = tls.and_then(|t| t.peer_identity.as_deref()).unwrap_or("-"),
        duration_ms = ctx.started.map_or(0, |s| s.elapsed().as_millis() as u64),
    );
}

/// Envoy's header describing the downstream client certificate.
pub(crate) static X_FORWARDED_CLIENT_CERT: HeaderName =
    HeaderName::from_static("x-forwarded-client-cert");

/// `Hash=<sha256 hex>;URI=<identity>` (or `DNS=`) for a verified client certificate.
pub(crate) fn client_cert_details(ctx: &RequestCtx) -> Option<String> {
    let digest = ctx.downstream_tls.as_ref()?;
    let identity = ctx.tls_facts()?.peer_identity.as_deref()?;
    let hash: String = digest
        .cert_digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let kind = if identity.contains("://") {
        "URI"
    } else {
        "DNS"
    };
    Some(format!("Hash={hash};{kind}={identity}"))
}
