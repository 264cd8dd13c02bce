//! `GRPCRoute` as written by users (gateway.networking.k8s.io v1). Filters and backendRefs share
//! HTTPRoute's shapes; which filter types are allowed is checked when compiling.

use super::http_route::{HttpBackendRef, HttpHeaderMatch, HttpRouteFilter, ParentRef};
use super::meta::ObjectMeta;
use serde::{Deserialize, Serialize};

/// A GRPCRoute.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct GrpcRoute {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Spec.
    #[serde(default)]
    pub spec: GrpcRouteSpec,
}

/// GRPCRoute spec.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRouteSpec {
    /// Parents.
    #[serde(default)]
    pub parent_refs: Vec<ParentRef>,
    /// Hostnames.
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// Rules.
    #[serde(default)]
    pub rules: Vec<GrpcRouteRule>,
}

/// One rule.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRouteRule {
    /// Optional rule name.
    #[serde(default)]
    pub name: Option<String>,
    /// Matches (ORed); empty matches every call.
    #[serde(default)]
    pub matches: Vec<GrpcRouteMatch>,
    /// Filters, in order.
    #[serde(default)]
    pub filters: Vec<HttpRouteFilter>,
    /// Backends.
    #[serde(default)]
    pub backend_refs: Vec<HttpBackendRef>,
}

/// One match: method and headers, ANDed.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct GrpcRouteMatch {
    /// Service/method condition.
    #[serde(default)]
    pub method: Option<GrpcMethodMatch>,
    /// Header conditions.
    #[serde(default)]
    pub headers: Vec<HttpHeaderMatch>,
}

/// A gRPC method match ([GR-2]).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct GrpcMethodMatch {
    /// `Exact` (default) or `RegularExpression`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Service, e.g. `gateway_api_conformance.echo_basic.grpcecho.GrpcEcho`.
    #[serde(default)]
    pub service: Option<String>,
    /// Method, e.g. `Echo`.
    #[serde(default)]
    pub method: Option<String>,
}
