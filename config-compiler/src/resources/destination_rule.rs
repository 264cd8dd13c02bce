//! Istio's DestinationRule as users write it ([DR-1]..[DR-5]): traffic policy (load balancing,
//! connection pool, outlier detection, TLS), per-port overrides, subsets and `exportTo`.
//!
//! Enumerations, numbers and durations are kept as written (strings, signed integers) so that a
//! bad value is a compile problem naming its field rather than a load error for the whole file.

use super::meta::ObjectMeta;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An Istio DestinationRule (`networking.istio.io` v1, v1beta1, v1alpha3).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct DestinationRule {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Spec.
    #[serde(default)]
    pub spec: DestinationRuleSpec,
}

/// DestinationRule spec.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRuleSpec {
    /// Short name, FQDN or `*.` wildcard.
    #[serde(default)]
    pub host: String,
    /// Policy for every port and subset.
    #[serde(default)]
    pub traffic_policy: Option<TrafficPolicy>,
    /// Named groups of the host's endpoints, by label.
    #[serde(default)]
    pub subsets: Vec<Subset>,
    /// Namespaces the rule is visible to (`.`: its own, `*`: all); empty means all.
    #[serde(default)]
    pub export_to: Vec<String>,
}

/// `subsets[]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Subset {
    /// The name a VirtualService destination's `subset` uses.
    #[serde(default)]
    pub name: String,
    /// Endpoint labels (Pod labels, ServiceEntry endpoint labels), all of which must match.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Overrides the rule's top-level policy for this subset.
    #[serde(default)]
    pub traffic_policy: Option<TrafficPolicy>,
}

/// `trafficPolicy`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficPolicy {
    /// Load-balancing algorithm.
    #[serde(default)]
    pub load_balancer: Option<LoadBalancerSettings>,
    /// Connection and request limits.
    #[serde(default)]
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// Ejection of failing endpoints.
    #[serde(default)]
    pub outlier_detection: Option<OutlierDetection>,
    /// TLS towards the upstream.
    #[serde(default)]
    pub tls: Option<ClientTlsSettings>,
    /// Per-port overrides.
    #[serde(default)]
    pub port_level_settings: Vec<PortTrafficPolicy>,
}

/// `portLevelSettings[]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortTrafficPolicy {
    /// The port.
    #[serde(default)]
    pub port: Option<PortSelector>,
    /// Load balancing for that port.
    #[serde(default)]
    pub load_balancer: Option<LoadBalancerSettings>,
    /// Connection pool for that port.
    #[serde(default)]
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// Outlier detection for that port.
    #[serde(default)]
    pub outlier_detection: Option<OutlierDetection>,
    /// TLS for that port.
    #[serde(default)]
    pub tls: Option<ClientTlsSettings>,
}

/// `port: {number}`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct PortSelector {
    /// Port number.
    #[serde(default)]
    pub number: i64,
}

/// `loadBalancer`: `simple` or `consistentHash` (one of them).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerSettings {
    /// `ROUND_ROBIN`, `LEAST_REQUEST`, `LEAST_CONN`, `RANDOM`, `PASSTHROUGH`, `UNSPECIFIED`.
    #[serde(default)]
    pub simple: Option<String>,
    /// Session affinity by a request property.
    #[serde(default)]
    pub consistent_hash: Option<ConsistentHash>,
    /// Locality-weighted balancing (read, not applied).
    #[serde(default)]
    pub locality_lb_setting: Option<serde_json::Value>,
    /// Slow start (read, not applied).
    #[serde(default)]
    pub warmup_duration_secs: Option<serde_json::Value>,
}

/// `consistentHash`: exactly one key.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsistentHash {
    /// Hash on this request header.
    #[serde(default)]
    pub http_header_name: Option<String>,
    /// Hash on this cookie.
    #[serde(default)]
    pub http_cookie: Option<HttpCookie>,
    /// Hash on the client's IP address.
    #[serde(default)]
    pub use_source_ip: Option<bool>,
    /// Hash on this query parameter.
    #[serde(default)]
    pub http_query_parameter_name: Option<String>,
    /// Envoy ring-hash tuning (read; the hash here needs no ring).
    #[serde(default)]
    pub ring_hash: Option<serde_json::Value>,
    /// Envoy Maglev tuning (read; the hash here needs no table).
    #[serde(default)]
    pub maglev: Option<serde_json::Value>,
    /// Deprecated ring size (read, not applied).
    #[serde(default)]
    pub minimum_ring_size: Option<serde_json::Value>,
}

/// `httpCookie`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct HttpCookie {
    /// Cookie name.
    #[serde(default)]
    pub name: String,
    /// Cookie path.
    #[serde(default)]
    pub path: Option<String>,
    /// Cookie lifetime (for a generated cookie).
    #[serde(default)]
    pub ttl: Option<String>,
}

/// `connectionPool`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ConnectionPoolSettings {
    /// TCP-level limits.
    #[serde(default)]
    pub tcp: Option<TcpSettings>,
    /// HTTP-level limits.
    #[serde(default)]
    pub http: Option<HttpSettings>,
}

/// `connectionPool.tcp`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TcpSettings {
    /// Most connections to the destination.
    #[serde(default)]
    pub max_connections: Option<i64>,
    /// Connect timeout (default 10s).
    #[serde(default)]
    pub connect_timeout: Option<String>,
    /// TCP keepalive (read, not applied).
    #[serde(default)]
    pub tcp_keepalive: Option<serde_json::Value>,
    /// Longest life of a connection.
    #[serde(default)]
    pub max_connection_duration: Option<String>,
    /// Idle time before a connection is closed.
    #[serde(default)]
    pub idle_timeout: Option<String>,
}

/// `connectionPool.http`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpSettings {
    /// Most requests waiting for a connection.
    #[serde(default)]
    pub http1_max_pending_requests: Option<i64>,
    /// Most concurrent requests.
    #[serde(default)]
    pub http2_max_requests: Option<i64>,
    /// Requests per connection (0: unlimited, 1: no keep-alive).
    #[serde(default)]
    pub max_requests_per_connection: Option<i64>,
    /// Most concurrent retries.
    #[serde(default)]
    pub max_retries: Option<i64>,
    /// Idle time before a connection is closed.
    #[serde(default)]
    pub idle_timeout: Option<String>,
    /// `DEFAULT`, `DO_NOT_UPGRADE`, `UPGRADE`.
    #[serde(default)]
    pub h2_upgrade_policy: Option<String>,
    /// Speak the client's protocol upstream.
    #[serde(default)]
    pub use_client_protocol: Option<bool>,
    /// Most concurrent streams per HTTP/2 connection.
    #[serde(default)]
    pub max_concurrent_streams: Option<i64>,
}

/// `outlierDetection`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutlierDetection {
    /// Consecutive 5xx (and connection errors) before ejection (default 5; 0 = off).
    #[serde(default, rename = "consecutive5xxErrors")]
    pub consecutive_5xx_errors: Option<i64>,
    /// Consecutive 502/503/504 (and connection errors) before ejection (default off).
    #[serde(default)]
    pub consecutive_gateway_errors: Option<i64>,
    /// Deprecated spelling of `consecutiveGatewayErrors`.
    #[serde(default)]
    pub consecutive_errors: Option<i64>,
    /// Sweep interval (default 10s).
    #[serde(default)]
    pub interval: Option<String>,
    /// Base ejection time (default 30s), multiplied by the host's ejection count.
    #[serde(default)]
    pub base_ejection_time: Option<String>,
    /// Most endpoints ejected at once, in percent (default 10).
    #[serde(default)]
    pub max_ejection_percent: Option<i64>,
    /// Below this share of healthy endpoints ejection is ignored (default 0).
    #[serde(default)]
    pub min_health_percent: Option<i64>,
    /// Count connection errors separately (read, not applied).
    #[serde(default)]
    pub split_external_local_origin_errors: Option<bool>,
    /// Consecutive local-origin failures (read, not applied).
    #[serde(default)]
    pub consecutive_local_origin_failures: Option<i64>,
}

/// Istio `ClientTLSSettings`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientTlsSettings {
    /// `DISABLE`, `SIMPLE`, `MUTUAL`, `ISTIO_MUTUAL`.
    #[serde(default)]
    pub mode: Option<String>,
    /// File path of the client certificate (MUTUAL).
    #[serde(default)]
    pub client_certificate: Option<String>,
    /// File path of its key (MUTUAL).
    #[serde(default)]
    pub private_key: Option<String>,
    /// File path of the CA bundle.
    #[serde(default)]
    pub ca_certificates: Option<String>,
    /// A Secret with `tls.crt`/`tls.key`/`ca.crt` (or `cert`/`key`/`cacert`).
    #[serde(default)]
    pub credential_name: Option<String>,
    /// Names one of which the certificate must carry (default: the SNI).
    #[serde(default)]
    pub subject_alt_names: Vec<String>,
    /// SNI (default: the request's Host).
    #[serde(default)]
    pub sni: Option<String>,
    /// Skip CA and name checks.
    #[serde(default)]
    pub insecure_skip_verify: Option<bool>,
}

impl ClientTlsSettings {
    /// The files this setting names, for the loader to read.
    pub fn files(&self) -> impl Iterator<Item = &str> {
        [
            &self.client_certificate,
            &self.private_key,
            &self.ca_certificates,
        ]
        .into_iter()
        .filter_map(|f| f.as_deref())
    }
}

impl TrafficPolicy {
    /// This policy's `tls` and each of its ports'.
    fn tls_blocks(&self) -> impl Iterator<Item = &ClientTlsSettings> {
        self.tls.iter().chain(
            self.port_level_settings
                .iter()
                .filter_map(|p| p.tls.as_ref()),
        )
    }

    /// The override for `port`, if one is written.
    pub fn port(&self, port: u16) -> Option<&PortTrafficPolicy> {
        self.port_level_settings
            .iter()
            .find(|p| p.port.as_ref().is_some_and(|s| s.number == i64::from(port)))
    }
}

impl DestinationRule {
    /// Every `tls` block: the top level, each port's, and each subset's.
    pub fn tls_settings(&self) -> impl Iterator<Item = &ClientTlsSettings> {
        self.spec
            .traffic_policy
            .iter()
            .chain(
                self.spec
                    .subsets
                    .iter()
                    .filter_map(|s| s.traffic_policy.as_ref()),
            )
            .flat_map(TrafficPolicy::tls_blocks)
    }

    /// The subset called `name`.
    pub fn subset(&self, name: &str) -> Option<&Subset> {
        self.spec.subsets.iter().find(|s| s.name == name)
    }
}
