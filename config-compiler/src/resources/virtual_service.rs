//! Istio's VirtualService (`networking.istio.io` v1, v1beta1, v1alpha3), the HTTP part.

use super::meta::ObjectMeta;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A VirtualService.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct VirtualService {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Spec.
    #[serde(default)]
    pub spec: VirtualServiceSpec,
}

/// The spec (the fields this build reads).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServiceSpec {
    /// FQDNs, `*.` wildcards or short names (in the VirtualService's namespace).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// `ns/name` of Gateways, or `mesh`; empty means `mesh`.
    #[serde(default)]
    pub gateways: Vec<String>,
    /// HTTP routes, in order.
    #[serde(default)]
    pub http: Vec<HttpRoute>,
    /// TCP routes (not supported: read only to be reported).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tcp: Vec<serde_json::Value>,
    /// TLS routes (not supported: read only to be reported).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls: Vec<serde_json::Value>,
}

/// One `http[]` route.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRoute {
    /// Its name.
    #[serde(default)]
    pub name: Option<String>,
    /// Conditions (ORed); none matches everything.
    #[serde(default, rename = "match")]
    pub matches: Vec<HttpMatch>,
    /// Destinations with weights.
    #[serde(default)]
    pub route: Vec<RouteDestination>,
    /// Redirect instead of forwarding.
    #[serde(default)]
    pub redirect: Option<HttpRedirect>,
    /// Answer with a fixed status and body instead of forwarding.
    #[serde(default)]
    pub direct_response: Option<HttpDirectResponse>,
    /// Rewrite before forwarding.
    #[serde(default)]
    pub rewrite: Option<HttpRewrite>,
    /// Whole-request timeout.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Retries.
    #[serde(default)]
    pub retries: Option<HttpRetry>,
    /// Fault injection.
    #[serde(default)]
    pub fault: Option<HttpFault>,
    /// Mirror destination.
    #[serde(default)]
    pub mirror: Option<Destination>,
    /// Share of requests mirrored.
    #[serde(default)]
    pub mirror_percentage: Option<Percent>,
    /// Header edits.
    #[serde(default)]
    pub headers: Option<Headers>,
    /// Several mirrors, each with its own share.
    #[serde(default)]
    pub mirrors: Vec<HttpMirrorPolicy>,
    /// Cross-origin resource sharing.
    #[serde(default)]
    pub cors_policy: Option<CorsPolicy>,
}

/// `mirrors[]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct HttpMirrorPolicy {
    /// Where copies go.
    #[serde(default)]
    pub destination: Destination,
    /// Share mirrored (default 100).
    #[serde(default)]
    pub percentage: Option<Percent>,
}

/// `corsPolicy`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CorsPolicy {
    /// Origins allowed, each an exact/prefix/regex match on the whole `Origin`.
    #[serde(default)]
    pub allow_origins: Vec<StringMatch>,
    /// Deprecated exact origins.
    #[serde(default)]
    pub allow_origin: Vec<String>,
    /// `Access-Control-Allow-Methods`.
    #[serde(default)]
    pub allow_methods: Vec<String>,
    /// `Access-Control-Allow-Headers`.
    #[serde(default)]
    pub allow_headers: Vec<String>,
    /// `Access-Control-Expose-Headers`.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// `Access-Control-Max-Age`, as a duration.
    #[serde(default)]
    pub max_age: Option<String>,
    /// `Access-Control-Allow-Credentials`.
    #[serde(default)]
    pub allow_credentials: Option<bool>,
    /// `FORWARD` (default) or `IGNORE` a preflight from an origin not allowed.
    #[serde(default)]
    pub unmatched_preflights: Option<String>,
}

/// `match[]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpMatch {
    /// Its name.
    #[serde(default)]
    pub name: Option<String>,
    /// Path.
    #[serde(default)]
    pub uri: Option<StringMatch>,
    /// `http` or `https`.
    #[serde(default)]
    pub scheme: Option<StringMatch>,
    /// Method.
    #[serde(default)]
    pub method: Option<StringMatch>,
    /// Host.
    #[serde(default)]
    pub authority: Option<StringMatch>,
    /// Headers (`{}`: present).
    #[serde(default)]
    pub headers: BTreeMap<String, StringMatch>,
    /// Headers that must be absent (or not match).
    #[serde(default)]
    pub without_headers: BTreeMap<String, StringMatch>,
    /// Query parameters.
    #[serde(default)]
    pub query_params: BTreeMap<String, StringMatch>,
    /// The destination port.
    #[serde(default)]
    pub port: Option<u16>,
    /// Case-insensitive `uri`.
    #[serde(default)]
    pub ignore_uri_case: bool,
    /// Which proxies (not a runtime condition).
    #[serde(default)]
    pub gateways: Vec<String>,
    /// The labels of the workloads the route applies to (not supported: reported).
    #[serde(default)]
    pub source_labels: BTreeMap<String, String>,
    /// The namespace of the workloads the route applies to: at a waypoint, the caller's.
    #[serde(default)]
    pub source_namespace: Option<String>,
}

/// `exact`, `prefix` or `regex` (none set: present).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct StringMatch {
    /// Equal.
    #[serde(default)]
    pub exact: Option<String>,
    /// Starts with (characters).
    #[serde(default)]
    pub prefix: Option<String>,
    /// Whole-string RE2.
    #[serde(default)]
    pub regex: Option<String>,
}

/// `route[]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct RouteDestination {
    /// Where.
    pub destination: Destination,
    /// Relative weight.
    #[serde(default)]
    pub weight: Option<u32>,
    /// Header edits when this destination is chosen.
    #[serde(default)]
    pub headers: Option<Headers>,
}

/// A destination.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Destination {
    /// A Service (short or FQDN) or ServiceEntry host.
    #[serde(default)]
    pub host: String,
    /// A DestinationRule subset.
    #[serde(default)]
    pub subset: Option<String>,
    /// The port.
    #[serde(default)]
    pub port: Option<PortSelector>,
}

/// `port`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct PortSelector {
    /// The number.
    #[serde(default)]
    pub number: Option<u16>,
}

/// `headers`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Headers {
    /// Request edits.
    #[serde(default)]
    pub request: Option<HeaderOperations>,
    /// Response edits.
    #[serde(default)]
    pub response: Option<HeaderOperations>,
}

/// `set`, `add`, `remove`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct HeaderOperations {
    /// Overwrite.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Append.
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    /// Delete.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// `redirect`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRedirect {
    /// Whole new path.
    #[serde(default)]
    pub uri: Option<String>,
    /// New Host.
    #[serde(default)]
    pub authority: Option<String>,
    /// New port.
    #[serde(default)]
    pub port: Option<u16>,
    /// `FROM_PROTOCOL_DEFAULT` or `FROM_REQUEST_PORT`, instead of `port`.
    #[serde(default)]
    pub derive_port: Option<String>,
    /// New scheme.
    #[serde(default)]
    pub scheme: Option<String>,
    /// Status (default 301).
    #[serde(default)]
    pub redirect_code: Option<u16>,
}

/// `rewrite`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRewrite {
    /// New path (or prefix, when the match was a prefix).
    #[serde(default)]
    pub uri: Option<String>,
    /// New Host.
    #[serde(default)]
    pub authority: Option<String>,
    /// Regular-expression substitution on the path.
    #[serde(default)]
    pub uri_regex_rewrite: Option<RegexRewrite>,
}

/// `rewrite.uriRegexRewrite`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct RegexRewrite {
    /// RE2 pattern, searched for anywhere in the path.
    #[serde(default, rename = "match")]
    pub pattern: Option<String>,
    /// Replacement; `\1` names a capture group.
    #[serde(default)]
    pub rewrite: Option<String>,
}

/// `directResponse`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct HttpDirectResponse {
    /// The status.
    #[serde(default)]
    pub status: Option<u32>,
    /// The body.
    #[serde(default)]
    pub body: Option<HttpBody>,
}

/// `directResponse.body`: text or base64 bytes.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct HttpBody {
    /// Text.
    #[serde(default)]
    pub string: Option<String>,
    /// Base64-encoded bytes.
    #[serde(default)]
    pub bytes: Option<String>,
}

/// `retries`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRetry {
    /// Retries after the first attempt.
    #[serde(default)]
    pub attempts: Option<i64>,
    /// Per-attempt timeout.
    #[serde(default)]
    pub per_try_timeout: Option<String>,
    /// Comma list of conditions.
    #[serde(default)]
    pub retry_on: Option<String>,
}

/// `fault`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct HttpFault {
    /// Delay.
    #[serde(default)]
    pub delay: Option<FaultDelay>,
    /// Abort.
    #[serde(default)]
    pub abort: Option<FaultAbort>,
}

/// `fault.delay`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultDelay {
    /// How long.
    #[serde(default)]
    pub fixed_delay: Option<String>,
    /// Share of requests.
    #[serde(default)]
    pub percentage: Option<Percent>,
}

/// `fault.abort`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultAbort {
    /// The status.
    #[serde(default)]
    pub http_status: Option<u16>,
    /// Share of requests.
    #[serde(default)]
    pub percentage: Option<Percent>,
}

/// `{value: 0..100}`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Percent {
    /// Percent, a float.
    #[serde(default)]
    pub value: f64,
}
