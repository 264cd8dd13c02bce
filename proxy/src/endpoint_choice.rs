//! A request's cluster and endpoint under its DestinationRule policy: admission against the
//! connection-pool limit ([DR-3]), the balancer's pick ([DR-5]), the move to another endpoint on
//! a retry, and each attempt's outcome counted for outlier detection ([DR-4]).

use crate::balancer;
use crate::local_reply::LocalReply;
use crate::outlier::{Outcome, ejection_allowed};
use crate::proxy_app::RequestCtx;
use crate::upstream_state::{Admitted, ClusterState, InFlight};
use pingora::proxy::Session;
use std::net::SocketAddr;
use std::sync::Arc;
use waygate_config::Snapshot;
use waygate_config::traffic_policy::{HashKey, LoadBalancer, TrafficPolicy, UNLIMITED};

/// The cluster a request was sent to and what it holds there.
#[derive(Debug)]
pub(crate) struct Chosen {
    /// The cluster's index in the request's Snapshot.
    pub(crate) index: usize,
    /// The cluster's runtime state.
    pub(crate) state: Arc<ClusterState>,
    /// Its effective DestinationRule policy.
    pub(crate) policy: Option<Arc<TrafficPolicy>>,
    /// Counted against the cluster's request limit for the whole request.
    _admitted: Option<Admitted>,
    /// The current attempt, counted at its endpoint.
    attempt: Option<InFlight>,
    /// The current attempt's outcome has been counted.
    pub(crate) recorded: bool,
}

impl Chosen {
    /// `maxRequestsPerConnection: 1`: every upstream connection carries one request.
    pub(crate) fn no_keepalive(&self) -> bool {
        self.policy
            .as_ref()
            .is_some_and(|p| p.connection_pool.max_requests_per_connection == 1)
    }
}

/// Admit the request to cluster `index` and pick its endpoint (`pinned`: that one, without
/// balancing). `Err`: the cluster is at its limit (503 `UO`); `Ok(None)`: no usable endpoint.
pub(crate) fn admit_and_pick(
    ctx: &mut RequestCtx,
    snapshot: &Snapshot,
    index: usize,
    session: &Session,
    pinned: Option<SocketAddr>,
) -> Result<Option<SocketAddr>, LocalReply> {
    let Some(cluster) = snapshot.clusters.get(index) else {
        return Ok(None);
    };
    let Some(upstreams) = ctx.upstreams.clone() else {
        return Ok(pinned.or_else(|| cluster.next_endpoint()));
    };
    let Some(state) = upstreams.cluster(index).cloned() else {
        return Ok(pinned.or_else(|| cluster.next_endpoint()));
    };
    let policy = cluster.policy.clone();
    let max = policy
        .as_ref()
        .map_or(UNLIMITED, |p| p.connection_pool.max_requests);
    let admitted = if max < UNLIMITED {
        Some(state.admit(max).ok_or_else(LocalReply::overflow)?)
    } else {
        None
    };
    let picked = match pinned {
        Some(addr) => Some((addr, state.endpoint_at(addr).cloned())),
        None => {
            let hash = match policy.as_ref().map(|p| &p.load_balancer) {
                Some(LoadBalancer::ConsistentHash(key)) => {
                    let req = session.req_header();
                    let client = session
                        .client_addr()
                        .and_then(|a| a.as_inet())
                        .map(|a| a.ip());
                    balancer::request_hash(key, &req.headers, &req.uri, client)
                        .or_else(|| generated_cookie(key, ctx))
                }
                _ => None,
            };
            balancer::pick(cluster, Some(&state), upstreams.now_ms(), hash, None)
        }
    };
    ctx.chosen = Some(Chosen {
        index,
        state,
        policy,
        _admitted: admitted,
        attempt: picked
            .as_ref()
            .and_then(|(_, e)| e.clone())
            .map(InFlight::start),
        recorded: false,
    });
    Ok(picked.map(|(addr, _)| addr))
}

/// A retry's endpoint: another one of the same cluster than `from` when there is one
/// ([VS-9] `retryIgnorePreviousHosts`), by the cluster's balancer; `None` without a cluster.
pub(crate) fn repick(ctx: &mut RequestCtx, from: Option<SocketAddr>) -> Option<SocketAddr> {
    let snapshot = ctx.snapshot.clone()?;
    let upstreams = ctx.upstreams.clone();
    let chosen = ctx.chosen.as_mut()?;
    let cluster = snapshot.clusters.get(chosen.index)?;
    let now = upstreams.as_ref().map_or(0, |u| u.now_ms());
    let (addr, endpoint) = balancer::pick(cluster, Some(&chosen.state), now, None, from)?;
    // The previous attempt is over: it stops counting at its endpoint.
    chosen.attempt = endpoint.map(InFlight::start);
    Some(addr)
}

/// Count the current attempt's outcome once, ejecting its endpoint when outlier detection says
/// so.
pub(crate) fn record(ctx: &mut RequestCtx, outcome: Outcome) {
    let Some(chosen) = ctx.chosen.as_mut() else {
        return;
    };
    if chosen.recorded {
        return;
    }
    chosen.recorded = true;
    let Some(od) = chosen
        .policy
        .as_ref()
        .and_then(|p| p.outlier_detection.as_ref())
    else {
        return;
    };
    let (Some(attempt), Some(upstreams)) = (chosen.attempt.as_ref(), ctx.upstreams.as_ref()) else {
        return;
    };
    let now = upstreams.now_ms();
    let state = &chosen.state;
    let ejected = attempt.0.outlier.record(outcome, od, now, || {
        let all = state.endpoints();
        let out = all.iter().filter(|e| e.outlier.is_ejected(now)).count();
        ejection_allowed(out, all.len(), od.max_ejection_percent)
    });
    if ejected {
        tracing::info!(
            cluster = %state.name,
            endpoint = %attempt.0.addr,
            ejections = attempt.0.outlier.ejections(),
            "outlier detection: endpoint ejected"
        );
    }
}

/// [DR-5] `httpCookie` with a `ttl` and no cookie on the request: a fresh random value, hashed
/// like a request's cookie (so it picks the endpoint now and on every later request that
/// carries it), sent back in `Set-Cookie` (Envoy's behaviour; `ttl: 0s` is a session cookie).
fn generated_cookie(key: &HashKey, ctx: &mut RequestCtx) -> Option<u64> {
    let HashKey::Cookie {
        name,
        ttl: Some(ttl),
        path,
    } = key
    else {
        return None;
    };
    let value = format!("{:016x}", rand::random::<u64>());
    let mut cookie = format!("{name}={value}; Path={}", path.as_deref().unwrap_or("/"));
    if !ttl.is_zero() {
        cookie.push_str(&format!("; Max-Age={}", ttl.as_secs().max(1)));
    }
    cookie.push_str("; HttpOnly");
    ctx.set_cookie = http::HeaderValue::from_str(&cookie).ok();
    Some(balancer::cookie_hash(&value))
}
