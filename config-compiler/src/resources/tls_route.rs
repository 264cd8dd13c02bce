//! `TLSRoute` as users write it (gateway.networking.k8s.io v1, v1alpha3, v1alpha2): SNI
//! hostnames to weighted backends, for TLS listeners (passthrough or terminate).

use super::http_route::{HttpBackendRef, ParentRef};
use super::meta::ObjectMeta;
use serde::{Deserialize, Serialize};

/// A TLSRoute.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct TlsRoute {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Spec.
    #[serde(default)]
    pub spec: TlsRouteSpec,
}

/// TLSRoute spec.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsRouteSpec {
    /// Listeners (or ListenerSets) to attach to.
    #[serde(default)]
    pub parent_refs: Vec<ParentRef>,
    /// SNI hostnames this route serves.
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// Rules: backends only.
    #[serde(default)]
    pub rules: Vec<TlsRouteRule>,
}

/// One rule.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsRouteRule {
    /// Optional rule name.
    #[serde(default)]
    pub name: Option<String>,
    /// Weighted backends.
    #[serde(default)]
    pub backend_refs: Vec<HttpBackendRef>,
}
