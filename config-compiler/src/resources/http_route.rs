//! `HTTPRoute` as written by users. Enum-like fields stay strings so a bad value becomes a status
//! condition on that route instead of a load error for the whole file.

use super::meta::ObjectMeta;
use serde::{Deserialize, Serialize};

/// An HTTPRoute.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct HttpRoute {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Spec.
    #[serde(default)]
    pub spec: HttpRouteSpec,
}

/// HTTPRoute spec.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    /// Parents (Gateways, later Services).
    #[serde(default)]
    pub parent_refs: Vec<ParentRef>,
    /// Hostnames.
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// Rules.
    #[serde(default)]
    pub rules: Vec<HttpRouteRule>,
}

/// A parentRef.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ParentRef {
    /// Group; default `gateway.networking.k8s.io`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind; default `Gateway`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Namespace; default the route's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// Listener name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    /// Listener port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// One rule.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRule {
    /// Optional rule name.
    #[serde(default)]
    pub name: Option<String>,
    /// Matches (ORed); empty means `PathPrefix /`.
    #[serde(default)]
    pub matches: Vec<HttpRouteMatch>,
    /// Filters, in order.
    #[serde(default)]
    pub filters: Vec<HttpRouteFilter>,
    /// Backends.
    #[serde(default)]
    pub backend_refs: Vec<HttpBackendRef>,
    /// Timeouts ([HT-1]).
    #[serde(default)]
    pub timeouts: Option<HttpRouteTimeouts>,
    /// Retries (experimental, [HT-2]).
    #[serde(default)]
    pub retry: Option<HttpRouteRetry>,
}

/// A rule's `timeouts`: Gateway API duration strings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteTimeouts {
    /// The whole exchange.
    #[serde(default)]
    pub request: Option<String>,
    /// One upstream attempt.
    #[serde(default)]
    pub backend_request: Option<String>,
}

/// A rule's `retry`. Numbers are signed so a bad value becomes a condition, not a load error.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRetry {
    /// Statuses to retry.
    #[serde(default)]
    pub codes: Vec<i64>,
    /// Most retries.
    #[serde(default)]
    pub attempts: Option<i64>,
    /// Least wait between attempts (a duration).
    #[serde(default)]
    pub backoff: Option<String>,
}

/// One match (fields ANDed).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteMatch {
    /// Path match.
    #[serde(default)]
    pub path: Option<HttpPathMatch>,
    /// Header matches.
    #[serde(default)]
    pub headers: Vec<HttpHeaderMatch>,
    /// Query parameter matches.
    #[serde(default)]
    pub query_params: Vec<HttpHeaderMatch>,
    /// Method.
    #[serde(default)]
    pub method: Option<String>,
}

/// A path match.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct HttpPathMatch {
    /// `Exact`, `PathPrefix` (default) or `RegularExpression`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// The value; default `/`.
    #[serde(default)]
    pub value: Option<String>,
}

/// A header or query-parameter match.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct HttpHeaderMatch {
    /// `Exact` (default) or `RegularExpression`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Header or parameter name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// A filter; the member named by `type` holds its settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteFilter {
    /// Filter type.
    #[serde(rename = "type")]
    pub kind: String,
    /// For `RequestHeaderModifier`.
    #[serde(default)]
    pub request_header_modifier: Option<HeaderModifierSpec>,
    /// For `ResponseHeaderModifier`.
    #[serde(default)]
    pub response_header_modifier: Option<HeaderModifierSpec>,
    /// For `RequestRedirect`.
    #[serde(default)]
    pub request_redirect: Option<RequestRedirectSpec>,
    /// For `URLRewrite`.
    #[serde(default)]
    pub url_rewrite: Option<UrlRewriteSpec>,
    /// For `RequestMirror`.
    #[serde(default)]
    pub request_mirror: Option<RequestMirrorSpec>,
    /// For `CORS`.
    #[serde(default)]
    pub cors: Option<CorsSpec>,
    /// For `ExtensionRef`.
    #[serde(default)]
    pub extension_ref: Option<serde_json::Value>,
}

/// Header modifier settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct HeaderModifierSpec {
    /// Headers to overwrite.
    #[serde(default)]
    pub set: Vec<HttpHeader>,
    /// Headers to append.
    #[serde(default)]
    pub add: Vec<HttpHeader>,
    /// Header names to delete.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// A header name and value.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct HttpHeader {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// Redirect settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRedirectSpec {
    /// `http` or `https`.
    #[serde(default)]
    pub scheme: Option<String>,
    /// Hostname.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Path modifier.
    #[serde(default)]
    pub path: Option<HttpPathModifier>,
    /// Port.
    #[serde(default)]
    pub port: Option<u16>,
    /// Status code; default 302.
    #[serde(default)]
    pub status_code: Option<u16>,
}

/// URL rewrite settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct UrlRewriteSpec {
    /// The upstream Host.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Path modifier.
    #[serde(default)]
    pub path: Option<HttpPathModifier>,
}

/// Request mirror settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestMirrorSpec {
    /// Where copies go.
    pub backend_ref: BackendObjectRef,
    /// Share of requests, 0–100.
    #[serde(default)]
    pub percent: Option<i64>,
    /// Share of requests as a fraction.
    #[serde(default)]
    pub fraction: Option<FractionSpec>,
}

/// A fraction; the denominator defaults to 100.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct FractionSpec {
    /// Numerator.
    pub numerator: i64,
    /// Denominator.
    #[serde(default)]
    pub denominator: Option<i64>,
}

/// CORS settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CorsSpec {
    /// Allowed origins (`*`, `scheme://host[:port]`, host may start with `*`).
    #[serde(default)]
    pub allow_origins: Vec<String>,
    /// Whether credentials are allowed.
    #[serde(default)]
    pub allow_credentials: Option<bool>,
    /// Allowed methods (or `*`).
    #[serde(default)]
    pub allow_methods: Vec<String>,
    /// Allowed request headers (or `*`).
    #[serde(default)]
    pub allow_headers: Vec<String>,
    /// Response headers exposed to scripts.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// Preflight cache time in seconds; default 5.
    #[serde(default)]
    pub max_age: Option<i64>,
}

/// A reference to a backend object without weight or filters (a mirror's `backendRef`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct BackendObjectRef {
    /// Group; default core (`""`).
    #[serde(default)]
    pub group: Option<String>,
    /// Kind; default `Service`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Name.
    pub name: String,
    /// Namespace; default the route's.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Service port.
    #[serde(default)]
    pub port: Option<u16>,
}

/// A path modifier (`ReplaceFullPath` or `ReplacePrefixMatch`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpPathModifier {
    /// The type.
    #[serde(rename = "type")]
    pub kind: String,
    /// For `ReplaceFullPath`.
    #[serde(default)]
    pub replace_full_path: Option<String>,
    /// For `ReplacePrefixMatch`.
    #[serde(default)]
    pub replace_prefix_match: Option<String>,
}

/// A backendRef.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpBackendRef {
    /// Group; default core (`""`).
    #[serde(default)]
    pub group: Option<String>,
    /// Kind; default `Service`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Name.
    pub name: String,
    /// Namespace; default the route's.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Service port.
    #[serde(default)]
    pub port: Option<u16>,
    /// Weight; default 1.
    #[serde(default)]
    pub weight: Option<u32>,
    /// Filters applied only when this backend is chosen.
    #[serde(default)]
    pub filters: Vec<HttpRouteFilter>,
}

impl HttpBackendRef {
    /// The object this backendRef points at.
    pub fn object_ref(&self) -> BackendObjectRef {
        BackendObjectRef {
            group: self.group.clone(),
            kind: self.kind.clone(),
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            port: self.port,
        }
    }
}
