//! A cluster's effective DestinationRule traffic policy as the data plane runs it ([DR-3],
//! [DR-4], [DR-5]): load balancing, connection-pool limits and outlier detection. Built by the
//! compiler (`compile::destination_rules`), shown in `/config_dump`.

use serde::{Serialize, Serializer};
use std::time::Duration;

/// Istio's "unlimited" for connection-pool limits (2³²−1).
pub const UNLIMITED: u32 = u32::MAX;

/// The policy of one cluster (a Service or ServiceEntry port, optionally one subset).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficPolicy {
    /// `DestinationRule <ns>/<name>` it came from.
    pub source: String,
    /// How an endpoint is picked.
    pub load_balancer: LoadBalancer,
    /// Request and connection limits.
    pub connection_pool: ConnectionPool,
    /// Ejection of failing endpoints; `None`: no outlier detection (Envoy's default too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
}

/// [DR-5] `loadBalancer`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LoadBalancer {
    /// Each endpoint in turn (the default).
    #[default]
    RoundRobin,
    /// A uniformly random endpoint.
    Random,
    /// The less busy of two random endpoints (`LEAST_REQUEST`, `LEAST_CONN`).
    LeastRequest,
    /// The endpoint a request property hashes to (session affinity).
    ConsistentHash(HashKey),
}

/// What `consistentHash` hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum HashKey {
    /// A request header (lowercase name).
    Header(String),
    /// A cookie's value.
    Cookie {
        /// Cookie name.
        name: String,
        /// Set: a request without the cookie gets one generated (`Set-Cookie` on the
        /// response) that sticks it to the endpoint chosen; zero makes it a session cookie.
        #[serde(skip_serializing_if = "Option::is_none")]
        ttl: Option<std::time::Duration>,
        /// The generated cookie's `Path`.
        #[serde(skip_serializing_if = "Option::is_none")]
        path: Option<String>,
    },
    /// The client's IP address.
    SourceIp,
    /// A query parameter's value.
    QueryParameter(String),
}

/// [DR-3] `connectionPool`, as limits on the cluster (all its endpoints together, per proxy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionPool {
    /// Concurrent requests allowed to the cluster before new ones get 503 `UO`: the smaller of
    /// `http2MaxRequests` and `maxConnections + http1MaxPendingRequests` (an HTTP/1.1
    /// connection carries one request at a time; the rest wait in the pending queue).
    pub max_requests: u32,
    /// `tcp.maxConnections` as written (enforced through `max_requests`).
    pub max_connections: u32,
    /// `http.http1MaxPendingRequests` as written (enforced through `max_requests`).
    pub max_pending_requests: u32,
    /// `http.maxRequestsPerConnection`; 1: close the connection after each request; 0 and
    /// values above 1: unlimited (only 1 is enforced).
    pub max_requests_per_connection: u32,
    /// `tcp.connectTimeout`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_duration"
    )]
    pub connect_timeout: Option<Duration>,
    /// `http.idleTimeout`, else `tcp.idleTimeout`: how long a pooled connection may sit idle.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_duration"
    )]
    pub idle_timeout: Option<Duration>,
}

impl Default for ConnectionPool {
    fn default() -> Self {
        Self {
            max_requests: UNLIMITED,
            max_connections: UNLIMITED,
            max_pending_requests: UNLIMITED,
            max_requests_per_connection: 0,
            connect_timeout: None,
            idle_timeout: None,
        }
    }
}

/// [DR-4] `outlierDetection`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutlierDetection {
    /// Consecutive 5xx responses or connection errors that eject an endpoint (0: off).
    #[serde(rename = "consecutive5xxErrors")]
    pub consecutive_5xx: u32,
    /// Consecutive 502/503/504 responses or connection errors that eject one (0: off).
    pub consecutive_gateway_errors: u32,
    /// How often ejections are reconsidered; an ejection count decays by one per quiet interval.
    #[serde(serialize_with = "ser_duration")]
    pub interval: Duration,
    /// An ejection lasts this times the endpoint's ejection count.
    #[serde(serialize_with = "ser_duration")]
    pub base_ejection_time: Duration,
    /// Most endpoints ejected at once, in percent; one may always be ejected (see `outlier`).
    pub max_ejection_percent: u32,
    /// Below this share of available endpoints, ejections are ignored (panic); 0: never.
    pub min_health_percent: u32,
}

impl Default for OutlierDetection {
    fn default() -> Self {
        Self {
            consecutive_5xx: 5,
            consecutive_gateway_errors: 0,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_percent: 10,
            min_health_percent: 0,
        }
    }
}

fn ser_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{d:?}"))
}

fn ser_opt_duration<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser_duration(d, s),
        None => s.serialize_none(),
    }
}
