//! The `ProxyHttp` implementation: each phase asks the Snapshot one question and hands the answer
//! to a filter or the upstream layer.

use crate::forwarded::{X_FORWARDED_FOR, append_xff};
use crate::headers::{RequestHeaders, ResponseHeaders};
use crate::local_reply::LocalReply;
use crate::state::SharedState;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorSource, ErrorType};
use std::net::SocketAddr;
use std::sync::Arc;
use waygate_config::hostname::normalize_host;
use waygate_config::route_table::{BackendTarget, RuleAction};
use waygate_config::snapshot::{NoRoute, RouteMatch};
use waygate_config::{NsName, RequestView, Snapshot};
use waygate_filters::{Filter, RedirectInput};

/// The proxy app serving one socket: the (gateway, port) pairs bound to it.
pub struct GatewayProxy {
    /// Which Gateway ports this socket serves; swapped when a reload regroups listeners.
    pub keys: Arc<ArcSwap<Vec<(NsName, u16)>>>,
    /// The live state.
    pub state: Arc<SharedState>,
}

/// Per-request state: the Snapshot the request started on, and what routing chose.
#[derive(Default)]
pub struct RequestCtx {
    snapshot: Option<Arc<Snapshot>>,
    action: Option<Arc<RuleAction>>,
    backend: usize,
    upstream: Option<SocketAddr>,
    flag: &'static str,
}

impl GatewayProxy {
    fn route<'s>(
        &self,
        snapshot: &'s Snapshot,
        req: &RequestView<'_>,
    ) -> Result<RouteMatch<'s>, NoRoute> {
        let keys = self.keys.load();
        let mut best = NoRoute::NoListener;
        for (gw, port) in keys.iter() {
            let Some(p) = snapshot.port(gw, *port) else {
                continue;
            };
            match p.route(req) {
                Ok(m) => return Ok(m),
                // Isolation ([GW-3]): once a listener took the host, its answer stands.
                Err(NoRoute::NoListener) => {}
                Err(e) => best = e,
            }
        }
        Err(best)
    }
}

/// What the request filter decided.
enum Decision {
    Reply(LocalReply),
    Forward,
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
        let snapshot = self.state.snapshot();
        let decision = decide(self, &snapshot, session, ctx);
        ctx.snapshot = Some(snapshot);
        match decision {
            Decision::Forward => Ok(false),
            Decision::Reply(reply) => {
                ctx.flag = reply.flag;
                reply.send(session).await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<Box<HttpPeer>> {
        let addr = ctx
            .upstream
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no upstream chosen"))?;
        Ok(Box::new(HttpPeer::new(addr, false, String::new())))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        _ctx: &mut Self::CTX,
    ) -> pingora::Result<()> {
        // HTTP/2 clients send :authority instead of Host; HTTP/1.1 upstreams need Host.
        if upstream.headers.get(http::header::HOST).is_none()
            && let Some(auth) = upstream.uri.authority().map(|a| a.as_str().to_string())
        {
            upstream.insert_header(http::header::HOST, auth)?;
        }
        if let Some(peer) = session.client_addr().and_then(|a| a.as_inet())
            && let Some(xff) = append_xff(upstream.headers.get(&X_FORWARDED_FOR), peer.ip())
        {
            upstream.insert_header("x-forwarded-for", xff)?;
        }
        upstream.insert_header("x-forwarded-proto", "http")?;
        Ok(())
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
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut Self::CTX,
    ) -> FailToProxy {
        let reply = match e.etype() {
            ErrorType::ConnectTimedout
            | ErrorType::ConnectRefused
            | ErrorType::ConnectNoRoute
            | ErrorType::ConnectError
            | ErrorType::TLSHandshakeFailure => Some(LocalReply::connect_failure()),
            _ if *e.esource() == ErrorSource::Upstream => Some(LocalReply {
                status: 503,
                body: "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
                flag: "UC",
                header: None,
            }),
            ErrorType::HTTPStatus(code) => Some(LocalReply {
                status: *code,
                body: "",
                flag: "",
                header: None,
            }),
            _ if *e.esource() == ErrorSource::Downstream => None,
            _ => Some(LocalReply {
                status: 500,
                body: "",
                flag: "",
                header: None,
            }),
        };
        if reply.is_some() {
            let req = session.req_header();
            tracing::warn!(
                method = %req.method,
                path = req.uri.path(),
                upstream = ?ctx.upstream,
                "proxy failed: {e}"
            );
        }
        let code = match reply {
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

/// Route the request, run request filters, and pick the backend and endpoint.
fn decide(
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
    let view = RequestView {
        method: &req.method,
        host: &host,
        path,
        query: req.uri.query(),
        headers: &req.headers,
    };
    let Ok(found) = app.route(snapshot, &view) else {
        return Decision::Reply(LocalReply::no_route());
    };
    let action = found.entry.action.clone();
    // Redirect is answered locally and needs the request as it arrived.
    for f in &action.filters {
        if let Filter::RequestRedirect(r) = f {
            let input = RedirectInput {
                scheme: "http",
                host: &host,
                listener_port: found.listener.port,
                path,
                query: view.query,
                matched_prefix: found.entry.matcher.matched_prefix(),
            };
            return Decision::Reply(LocalReply::redirect(r.status, r.location(&input)));
        }
    }
    let chosen = if action.total_weight == 0 {
        None
    } else {
        action
            .pick(rand::random_range(0..action.total_weight))
            .and_then(|i| action.backends.get(i).map(|b| (i, b)))
    };
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
            match snapshot.clusters.get(*c).and_then(|c| c.next_endpoint()) {
                Some(addr) => {
                    ctx.upstream = Some(addr);
                    None
                }
                None => Some(LocalReply::no_healthy_upstream()),
            }
        }
    };
    ctx.backend = index;
    ctx.action = Some(action);
    match reply {
        Some(r) => Decision::Reply(r),
        None => Decision::Forward,
    }
}
