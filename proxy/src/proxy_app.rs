//! The `ProxyHttp` implementation: each phase asks the Snapshot one question and hands the answer
//! to a filter or the upstream layer.
//!
//! Timeouts ([HT-1]): the request deadline starts when routing starts. Each upstream attempt gets
//! a budget, the smaller of `backendRequest` and what is left of `request`, which becomes the
//! peer's connect, read and write timeouts; the budget is checked again when response headers
//! arrive and with every response body chunk, so a slow body is cut off too (the downstream
//! response is then truncated, as nothing else can be said once headers went out). A body that
//! stalls completely is cut by the read timeout, so it can overrun the deadline by at most one
//! budget. Expiry before the response starts answers 504 `upstream request timeout`.
//!
//! Retries ([HT-2]) use Pingora's retry loop: an error marked retryable makes Pingora call
//! `upstream_peer` again, where we wait the backoff and pick the next endpoint. Connection
//! errors and attempts that outlive `backendRequest` are marked in `fail_to_connect` /
//! `error_while_proxy`. A retriable status is turned into an error in `upstream_response_filter`,
//! which runs before anything is written downstream, so the response is discarded and the
//! attempt repeated; when no retry is left the status is passed through unchanged. When the
//! request deadline leaves no room for the backoff, the answer is 504 at once (as Envoy's would be
//! when its timer fires during the backoff). A retry happens only while nothing was sent
//! downstream and the request body, if any, is still whole in Pingora's 64 KiB retry buffer.

use crate::forwarded::{X_FORWARDED_FOR, append_xff};
use crate::headers::ResponseHeaders;
use crate::local_reply::LocalReply;
use crate::mirror::{MIRROR_BODY_LIMIT, Mirrorer};
use crate::outlier::Outcome;
use crate::routing::{Decision, decide};
use crate::state::SharedState;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, ProxyWarnLogContext, Session};
use pingora::{Error, ErrorSource, ErrorType};
use std::sync::Arc;
use std::time::{Duration, Instant};
use waygate_config::NsName;
use waygate_config::route_table::BackendTarget;
use waygate_filters::Filter;

pub use crate::access_log::ACCESS_LOG_TARGET;
pub use crate::request_ctx::RequestCtx;

/// The most retries Pingora's loop allows with the `ServerConf` the listeners use (16 tries).
const MAX_RETRIES: u32 = 15;

/// The proxy app serving one socket: the (gateway, port) pairs bound to it.
pub struct GatewayProxy {
    /// Which Gateway ports this socket serves; swapped when a reload regroups listeners.
    pub keys: Arc<ArcSwap<Vec<(NsName, u16)>>>,
    /// The live state.
    pub state: Arc<SharedState>,
    /// Sends RequestMirror copies ([HF-4]).
    pub mirror: Arc<Mirrorer>,
    /// Mesh identity and HBONE pool.
    pub mesh: Arc<crate::mesh::MeshContext>,
    /// Resolves ServiceEntry hosts with `resolution: DNS`.
    pub dns: Arc<crate::dns::Dns>,
}

impl GatewayProxy {
    /// [SE-2] Pick an endpoint of cluster `index` from what its names resolve to now.
    async fn resolve_endpoint(&self, ctx: &mut RequestCtx, index: usize) -> Decision {
        let snapshot = ctx.snapshot.clone();
        let cluster = snapshot.as_ref().and_then(|s| s.clusters.get(index));
        let Some((cluster, names)) = cluster.and_then(|c| Some((c, c.resolve.as_ref()?))) else {
            return Decision::Reply(LocalReply::no_healthy_upstream());
        };
        match self.dns.next_endpoint(names).await {
            Ok(addr) => {
                ctx.upstream = Some(addr);
                Decision::Forward
            }
            Err(e) => {
                tracing::info!(cluster = %cluster.name, "DNS: {e}");
                Decision::Reply(LocalReply::no_healthy_upstream())
            }
        }
    }
}

/// A timeout error, attributed to the upstream.
fn timeout_error(what: &'static str) -> Box<Error> {
    Error::explain(ErrorType::ReadTimedout, what).into_up()
}

/// Whether another attempt may be made ([HT-2]): a policy with retries left, the request
/// deadline not passed, nothing sent downstream yet, and the request body (if any) still whole
/// in the retry buffer.
fn retry_allowed(session: &Session, ctx: &RequestCtx) -> bool {
    let Some(policy) = ctx.retry_policy() else {
        return false;
    };
    let retries_done = ctx.attempts.saturating_sub(1);
    if retries_done >= policy.attempts.min(MAX_RETRIES) {
        return false;
    }
    if ctx.deadline.is_some_and(|d| Instant::now() >= d) {
        return false;
    }
    session.response_written().is_none() && !session.retry_buffer_truncated()
}

/// Whether an error after connecting is one a retry policy covers whatever its codes: the
/// upstream connection broke, or the attempt outlived its `backendRequest` budget ([HT-2]).
/// Downstream errors (the client went away) are never retried.
fn retriable_error(e: &Error) -> bool {
    *e.esource() == ErrorSource::Upstream
        && matches!(
            e.etype(),
            ErrorType::ConnectionClosed
                | ErrorType::ReadError
                | ErrorType::WriteError
                | ErrorType::ConnectError
                | ErrorType::ConnectRefused
                | ErrorType::ConnectTimedout
                | ErrorType::ConnectNoRoute
                | ErrorType::ReadTimedout
                | ErrorType::WriteTimedout
        )
}

/// `path_and_query` on `uri`, keeping its scheme and authority (HTTP/2 requests carry them).
fn with_path(uri: &http::Uri, path_and_query: &str) -> Option<http::Uri> {
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().ok()?);
    http::Uri::from_parts(parts).ok()
}

#[async_trait]
impl ProxyHttp for GatewayProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> Self::CTX {
        RequestCtx::default()
    }

    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<bool> {
        let started = Instant::now();
        ctx.started = Some(started);
        let served = self.state.served();
        let snapshot = served.snapshot.clone();
        ctx.upstreams = Some(served.upstreams.clone());
        let decision = decide(self, &snapshot, session, ctx);
        ctx.deadline = ctx
            .action
            .as_ref()
            .and_then(|a| a.timeouts.request)
            .and_then(|t| started.checked_add(t));
        ctx.snapshot = Some(snapshot);
        if let Some(delay) = ctx.fault_delay {
            tokio::time::sleep(delay).await;
        }
        let decision = match (decision, ctx.resolve) {
            (Decision::Forward, Some(cluster)) => self.resolve_endpoint(ctx, cluster).await,
            (d, _) => d,
        };
        match decision {
            Decision::Forward => Ok(false),
            Decision::Reply(reply) => {
                ctx.flag = reply.flag;
                reply.send(session).await?;
                Ok(true)
            }
        }
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<()> {
        let Some(pending) = ctx.mirror.as_mut() else {
            return Ok(());
        };
        if let Some(chunk) = body.as_ref() {
            if pending.body.len() + chunk.len() > MIRROR_BODY_LIMIT {
                // Too big to copy whole: no copy rather than a truncated one.
                for _ in &pending.targets {
                    self.mirror.drop_copy();
                }
                ctx.mirror = None;
                return Ok(());
            }
            pending.body.extend_from_slice(chunk);
        }
        if end_of_stream && let Some(pending) = ctx.mirror.take() {
            let body = Bytes::from(pending.body);
            for target in pending.targets {
                self.mirror.send(target, &pending.copy, body.clone());
            }
        }
        Ok(())
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<Box<HttpPeer>> {
        ctx.attempts += 1;
        if ctx.attempts > 1 {
            prepare_retry(ctx).await?;
        }
        if let Some(c) = ctx.chosen.as_mut() {
            c.recorded = false;
        }
        let addr = ctx
            .upstream
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no upstream chosen"))?;
        let mut peer = crate::upstream::peer_for(self, session, ctx, addr)?;
        // The attempt's budget: backendRequest, within what is left of the request timeout.
        let now = Instant::now();
        let left = ctx.deadline.map(|d| d.saturating_duration_since(now));
        if left.is_some_and(|l| l.is_zero()) {
            ctx.timed_out = true;
            return Err(timeout_error("request timeout expired before the attempt"));
        }
        let per_try = ctx.action.as_ref().and_then(|a| a.timeouts.backend_request);
        let budget = match (left, per_try) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        ctx.attempt_deadline = budget.and_then(|b| now.checked_add(b));
        if let Some(b) = budget {
            let o = &mut peer.options;
            o.connection_timeout = Some(b);
            o.total_connection_timeout = Some(b);
            o.read_timeout = Some(b);
            o.write_timeout = Some(b);
        }
        // [DR-3] connectTimeout (within the attempt's budget) and the pool's idle timeout.
        if let Some(pool) = ctx
            .chosen
            .as_ref()
            .and_then(|c| c.policy.as_ref())
            .map(|p| &p.connection_pool)
        {
            let o = &mut peer.options;
            if let Some(t) = pool.connect_timeout {
                o.connection_timeout = Some(o.connection_timeout.map_or(t, |b| b.min(t)));
            }
            if pool.idle_timeout.is_some() {
                o.idle_timeout = pool.idle_timeout;
            }
        }
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<()> {
        // HTTP/2 clients send :authority instead of Host; HTTP/1.1 upstreams need Host.
        if upstream.headers.get(http::header::HOST).is_none()
            && let Some(auth) = upstream.uri.authority().map(|a| a.as_str().to_string())
        {
            upstream.insert_header(http::header::HOST, auth)?;
        }
        // [HF-3] Pingora re-derives the URI authority from this Host after this filter.
        if let Some(host) = &ctx.upstream_host {
            upstream.insert_header(http::header::HOST, host.clone())?;
        }
        if let Some(pq) = &ctx.upstream_path
            && let Some(uri) = with_path(&upstream.uri, pq)
        {
            upstream.set_uri(uri);
        }
        if let Some(peer) = session.client_addr().and_then(|a| a.as_inet())
            && let Some(xff) = append_xff(upstream.headers.get(&X_FORWARDED_FOR), peer.ip())
        {
            upstream.insert_header("x-forwarded-for", xff)?;
        }
        // The client certificate header is the proxy's to write (Envoy's SANITIZE_SET): a
        // client's own copy is dropped, a verified certificate is described.
        upstream.remove_header(&crate::access_log::X_FORWARDED_CLIENT_CERT);
        if let Some(xfcc) = crate::access_log::client_cert_details(ctx) {
            upstream.insert_header(crate::access_log::X_FORWARDED_CLIENT_CERT.clone(), xfcc)?;
        }
        // At the edge the scheme is ours to state. Inside an HBONE tunnel the sender is an
        // authenticated mesh workload (say, an ingress that terminated HTTPS): its
        // x-forwarded-proto stands, and a request without one is the client's own plain HTTP.
        let proto = match ctx.tls_facts() {
            Some(t) if t.hbone => {
                if upstream.headers.contains_key("x-forwarded-proto") {
                    None
                } else {
                    Some("http")
                }
            }
            _ if ctx.downstream_tls.is_some() => Some("https"),
            _ => Some("http"),
        };
        if let Some(proto) = proto {
            upstream.insert_header("x-forwarded-proto", proto)?;
        }
        if ctx.attempts > 1 {
            // [EC-2] retries carry the attempt number.
            upstream.insert_header("x-envoy-attempt-count", ctx.attempts.to_string())?;
        }
        // [DR-3] maxRequestsPerConnection: 1. Pingora's pool has no per-connection request
        // count, but it never reuses a connection whose request said `close`.
        if !ctx.h2c_upstream && ctx.chosen.as_ref().is_some_and(|c| c.no_keepalive()) {
            upstream.insert_header(http::header::CONNECTION, "close")?;
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<()> {
        if resp.status.is_informational() {
            return Ok(());
        }
        crate::endpoint_choice::record(ctx, Outcome::Status(resp.status.as_u16()));
        if ctx.attempt_deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(timeout_error("response headers arrived after the timeout"));
        }
        let code = resp.status.as_u16();
        if ctx.retry_policy().is_some_and(|p| p.retries_status(code)) && retry_allowed(session, ctx)
        {
            // Nothing has gone downstream yet: drop this answer and try again ([HT-2]).
            ctx.retry_status = Some(code);
            return Err(Error::explain(
                ErrorType::HTTPStatus(code),
                "retrying a retriable upstream status",
            ));
        }
        Ok(())
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<Option<Duration>> {
        if ctx.attempt_deadline.is_some_and(|d| Instant::now() >= d) {
            ctx.timed_out = true;
            return Err(timeout_error("response body still arriving at the timeout"));
        }
        Ok(None)
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<()> {
        let Some(action) = &ctx.action else {
            return Ok(());
        };
        let backend_filters = action
            .backends
            .get(ctx.backend)
            .map(|b| b.filters.as_slice())
            .unwrap_or(&[]);
        for f in action.filters.iter().chain(backend_filters) {
            if let Filter::ResponseHeaderModifier(m) = f {
                m.apply(&mut ResponseHeaders(resp));
            }
        }
        if !ctx.cors.is_empty() {
            for (name, value) in &ctx.cors {
                resp.insert_header(name.clone(), value.clone())?;
            }
            resp.append_header(http::header::VARY, "Origin")?;
        }
        if let Some(cookie) = ctx.set_cookie.take() {
            resp.append_header(http::header::SET_COOKIE, cookie)?;
        }
        Ok(())
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Self::CTX) {
        crate::access_log::log(session, ctx);
    }

    fn suppress_proxy_warn_log(
        &self,
        session: &Session,
        ctx: &Self::CTX,
        e: &Error,
        context: ProxyWarnLogContext,
    ) -> bool {
        // A retried status is policy at work, not a failure: log it quietly.
        let policy_retry = context == ProxyWarnLogContext::UpstreamRetry
            && matches!(e.etype(), ErrorType::HTTPStatus(_));
        if policy_retry {
            tracing::debug!(
                path = session.req_header().uri.path(),
                attempt = ctx.attempts,
                "retrying: {e}"
            );
        }
        policy_retry
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Self::CTX,
        mut e: Box<Error>,
    ) -> Box<Error> {
        crate::endpoint_choice::record(ctx, Outcome::LocalFailure);
        // [HT-2] connection errors are retried by a retry policy.
        if retry_allowed(session, ctx) {
            e.set_retry(true);
        }
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Self::CTX,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        if *e.esource() == ErrorSource::Upstream {
            // [DR-4] No status arrived (or it was counted already): a reset or a timeout.
            crate::endpoint_choice::record(ctx, Outcome::LocalFailure);
        }
        if ctx.retry_status.take().is_some() {
            // upstream_response_filter already decided.
            e.set_retry(true);
            return e;
        }
        // Pingora's default: an error on a reused keep-alive connection is retried when safe.
        if session.req_header().method.is_idempotent() && !session.retry_buffer_truncated() {
            e.retry.decide_reuse(client_reused);
        } else {
            e.set_retry(false);
        }
        if !e.retry() && retriable_error(&e) && retry_allowed(session, ctx) {
            e.set_retry(true);
        }
        e
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut Self::CTX,
    ) -> FailToProxy {
        let timed_out = ctx.timed_out
            || matches!(
                e.etype(),
                ErrorType::ReadTimedout | ErrorType::WriteTimedout
            )
            || (*e.etype() == ErrorType::ConnectTimedout && ctx.attempt_deadline.is_some());
        let reply = match e.etype() {
            _ if timed_out && *e.esource() != ErrorSource::Downstream => {
                Some(LocalReply::upstream_timeout())
            }
            ErrorType::ConnectTimedout
            | ErrorType::ConnectRefused
            | ErrorType::ConnectNoRoute
            | ErrorType::ConnectError
            | ErrorType::TLSHandshakeFailure => Some(LocalReply::connect_failure()),
            _ if *e.esource() == ErrorSource::Upstream => {
                Some(LocalReply::connection_termination())
            }
            ErrorType::HTTPStatus(code) => Some(LocalReply::status(*code)),
            _ if *e.esource() == ErrorSource::Downstream => None,
            _ => Some(LocalReply::status(500)),
        };
        if reply.is_some() {
            let req = session.req_header();
            tracing::warn!(
                method = %req.method,
                path = req.uri.path(),
                upstream = ?ctx.upstream,
                attempts = ctx.attempts,
                "proxy failed: {e}"
            );
        }
        let code = match reply {
            // Once a response has started nothing more can be said; the connection is closed.
            Some(_) if session.response_written().is_some() => 0,
            Some(r) => {
                ctx.flag = r.flag;
                // The downstream may be gone already; nothing more to do then.
                let _ = r.send(session).await;
                r.status
            }
            None => 0,
        };
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }
}

/// Before a retry: wait the backoff, move to the next endpoint of the same backend, and forget
/// any mirror body collected so far (Pingora replays the body). A backoff that would outlast the
/// request deadline ends the request with 504 now instead of sleeping until the deadline.
async fn prepare_retry(ctx: &mut RequestCtx) -> pingora::Result<()> {
    if let Some(policy) = ctx.retry_policy() {
        let wait = policy.wait(ctx.attempts - 1, rand::random_range(0..=1000));
        if ctx
            .deadline
            .is_some_and(|d| Instant::now().checked_add(wait).is_none_or(|end| end >= d))
        {
            ctx.timed_out = true;
            return Err(timeout_error(
                "request timeout expires during the retry backoff",
            ));
        }
        tokio::time::sleep(wait).await;
    }
    // An HBONE attempt keeps its tunnel target (the endpoint is behind `upstream`'s ztunnel
    // or waypoint); a plain one moves to another endpoint.
    let next = if ctx.hbone_target.is_some() {
        None
    } else if ctx.chosen.is_some() {
        let from = ctx.upstream;
        crate::endpoint_choice::repick(ctx, from)
    } else {
        ctx.snapshot
            .as_ref()
            .zip(ctx.action.as_ref())
            .and_then(|(s, a)| match &a.backends.get(ctx.backend)?.target {
                BackendTarget::Cluster { index, .. } => s.clusters.get(*index)?.next_endpoint(),
                BackendTarget::Invalid { .. } => None,
            })
    };
    if next.is_some() {
        ctx.upstream = next;
    }
    if let Some(m) = ctx.mirror.as_mut() {
        m.body.clear();
    }
    Ok(())
}
