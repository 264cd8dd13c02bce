//! Core Kubernetes kinds the gateway reads: Namespace, Service, EndpointSlice, Pod.

use super::meta::ObjectMeta;
use serde::{Deserialize, Serialize};

/// A `v1` Namespace; only its labels matter.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Namespace {
    /// Metadata (name, labels).
    pub metadata: ObjectMeta,
}

/// A `v1` Service.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Service {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Spec.
    #[serde(default)]
    pub spec: ServiceSpec,
}

/// The fields of a Service spec we read.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Ports.
    #[serde(default)]
    pub ports: Vec<ServicePort>,
    /// Virtual IP, if any.
    #[serde(default, rename = "clusterIP")]
    pub cluster_ip: Option<String>,
    /// All virtual IPs.
    #[serde(default, rename = "clusterIPs")]
    pub cluster_ips: Vec<String>,
}

/// A Service port.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    /// Port name (matches EndpointSlice port names).
    #[serde(default)]
    pub name: Option<String>,
    /// The service port.
    pub port: u16,
    /// Target port: a number or a container port name.
    #[serde(default)]
    pub target_port: Option<IntOrString>,
    /// Application protocol, e.g. `kubernetes.io/h2c`.
    #[serde(default)]
    pub app_protocol: Option<String>,
    /// `TCP` (default), `UDP` or `SCTP`.
    #[serde(default)]
    pub protocol: Option<String>,
}

/// A Kubernetes int-or-string value.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum IntOrString {
    /// A number.
    Int(u16),
    /// A name.
    String(String),
}

/// A `discovery.k8s.io/v1` EndpointSlice.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSlice {
    /// Metadata; the `kubernetes.io/service-name` label ties it to its Service.
    pub metadata: ObjectMeta,
    /// `IPv4`, `IPv6` or `FQDN`.
    #[serde(default)]
    pub address_type: Option<String>,
    /// Endpoints.
    #[serde(default)]
    pub endpoints: Vec<EndpointSpec>,
    /// Ports, named like the Service's ports.
    #[serde(default)]
    pub ports: Vec<EndpointPort>,
}

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// One endpoint of a slice.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSpec {
    /// Addresses (all the same endpoint).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Readiness.
    #[serde(default)]
    pub conditions: EndpointConditions,
    /// The object behind the endpoint (a Pod).
    #[serde(default)]
    pub target_ref: Option<EndpointTarget>,
}

/// An endpoint's `targetRef`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct EndpointTarget {
    /// Kind (`Pod`).
    #[serde(default)]
    pub kind: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Namespace (the slice's when unset).
    #[serde(default)]
    pub namespace: Option<String>,
}

/// A `v1` Pod: its labels (ambient mode, [AM-1]) and service account (its mesh identity).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Pod {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Spec.
    #[serde(default)]
    pub spec: PodSpec,
    /// Status.
    #[serde(default)]
    pub status: PodStatus,
}

/// The fields of a Pod spec we read.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    /// The service account (`default` when unset).
    #[serde(default)]
    pub service_account_name: Option<String>,
}

/// The fields of a Pod status we read.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    /// The primary IP.
    #[serde(default, rename = "podIP")]
    pub pod_ip: Option<String>,
    /// Every IP.
    #[serde(default, rename = "podIPs")]
    pub pod_ips: Vec<PodIp>,
}

/// One of `podIPs`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct PodIp {
    /// The address.
    #[serde(default)]
    pub ip: String,
}

/// Endpoint conditions; an unset `ready` counts as ready, as Kubernetes says.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct EndpointConditions {
    /// Ready to receive traffic.
    #[serde(default)]
    pub ready: Option<bool>,
}

/// A port of an EndpointSlice.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointPort {
    /// Name, matching the Service port's name (empty for an unnamed port).
    #[serde(default)]
    pub name: Option<String>,
    /// The port number on the endpoints.
    #[serde(default)]
    pub port: Option<u16>,
    /// Application protocol.
    #[serde(default)]
    pub app_protocol: Option<String>,
}

/// A `v1` Secret. `data` values are base64 as Kubernetes stores them; `stringData` is plain.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// `kubernetes.io/tls`, `Opaque`, …
    #[serde(default, rename = "type")]
    pub secret_type: Option<String>,
    /// Base64-encoded values.
    #[serde(default)]
    pub data: std::collections::BTreeMap<String, String>,
    /// Plain values (merged over `data`, as the API server does).
    #[serde(default)]
    pub string_data: std::collections::BTreeMap<String, String>,
}

impl Secret {
    /// The decoded value of `key`: `stringData` first, then base64-decoded `data`.
    pub fn value(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        use base64::Engine;
        if let Some(v) = self.string_data.get(key) {
            return Ok(Some(v.as_bytes().to_vec()));
        }
        let Some(v) = self.data.get(key) else {
            return Ok(None);
        };
        // Kubernetes accepts no line breaks inside, but YAML folding can leave some.
        let compact: String = v.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map(Some)
            .map_err(|e| format!("data.{key} is not valid base64: {e}"))
    }
}

/// A `v1` ConfigMap (CA bundles for client-certificate validation and BackendTLSPolicy).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ConfigMap {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Values.
    #[serde(default)]
    pub data: std::collections::BTreeMap<String, String>,
}
