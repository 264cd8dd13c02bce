//! Per-request state carried through Pingora's phases.

use crate::mirror::MirrorCopy;
use crate::tls::DownstreamTls;
use http::{HeaderName, HeaderValue};
use pingora::protocols::tls::SslDigest;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use waygate_config::Snapshot;
use waygate_config::route_table::RuleAction;
use waygate_filters::RetryPolicy;

/// Per-request state: the Snapshot the request started on, what routing chose, and the
/// bookkeeping of timeouts, retries, CORS and mirrors.
#[derive(Default)]
pub struct RequestCtx {
    pub(crate) snapshot: Option<Arc<Snapshot>>,
    pub(crate) action: Option<Arc<RuleAction>>,
    pub(crate) backend: usize,
    pub(crate) upstream: Option<SocketAddr>,
    pub(crate) flag: &'static str,
    /// When `timeouts.request` expires.
    pub(crate) deadline: Option<Instant>,
    /// When the current upstream attempt's budget expires.
    pub(crate) attempt_deadline: Option<Instant>,
    /// Upstream attempts started.
    pub(crate) attempts: u32,
    /// `upstream_response_filter` turned this retriable status into an error to retry.
    pub(crate) retry_status: Option<u16>,
    /// A deadline expired: the answer is 504.
    pub(crate) timed_out: bool,
    /// URLRewrite: the upstream Host.
    pub(crate) upstream_host: Option<HeaderValue>,
    /// URLRewrite: the upstream path and query.
    pub(crate) upstream_path: Option<String>,
    /// CORS headers for the response.
    pub(crate) cors: Vec<(HeaderName, HeaderValue)>,
    /// Mirror copies waiting for the request body.
    pub(crate) mirror: Option<PendingMirror>,
    /// Speak HTTP/2 cleartext upstream: `appProtocol: kubernetes.io/h2c`, or a GRPCRoute ([HB-3]).
    pub(crate) h2c_upstream: bool,
    /// The TLS session of the downstream connection, when it is TLS.
    pub(crate) downstream_tls: Option<Arc<SslDigest>>,
    /// When routing started (for the access log).
    pub(crate) started: Option<Instant>,
    /// TLS towards the chosen cluster's endpoints.
    pub(crate) upstream_tls: Option<Arc<waygate_config::upstream_tls::UpstreamTls>>,
    /// Over HBONE: the `CONNECT` target (a Service's `VIP:port` through its waypoint, or an
    /// in-mesh endpoint's `IP:port`); `upstream` is then the HBONE peer (`…:15008`).
    pub(crate) hbone_target: Option<SocketAddr>,
    /// The workload identity the HBONE peer must present (a known waypoint or endpoint Pod).
    pub(crate) hbone_peer: Option<waygate_config::snapshot::WorkloadIdentity>,
    /// [VS-7] An injected delay to wait before going on.
    pub(crate) fault_delay: Option<std::time::Duration>,
    /// [SE-2] The chosen cluster's endpoints come from DNS: resolve before connecting.
    pub(crate) resolve: Option<usize>,
    /// The upstream state table published with `snapshot`.
    pub(crate) upstreams: Option<Arc<crate::upstream_state::UpstreamStates>>,
    /// [DR-5] A consistent-hash cookie generated for this request, sent in `Set-Cookie`.
    pub(crate) set_cookie: Option<HeaderValue>,
    /// [DR-3]..[DR-5] The chosen cluster, its policy, and what the request holds there.
    pub(crate) chosen: Option<crate::endpoint_choice::Chosen>,
}

/// Copies to send once the request body is complete.
pub(crate) struct PendingMirror {
    pub(crate) copy: MirrorCopy,
    pub(crate) targets: Vec<SocketAddr>,
    pub(crate) body: Vec<u8>,
}

impl RequestCtx {
    pub(crate) fn retry_policy(&self) -> Option<&RetryPolicy> {
        self.action.as_ref().and_then(|a| a.retry.as_ref())
    }

    /// SNI and verified client identity of a TLS connection.
    pub fn tls_facts(&self) -> Option<&DownstreamTls> {
        self.downstream_tls
            .as_ref()?
            .extension
            .get::<DownstreamTls>()
    }
}
