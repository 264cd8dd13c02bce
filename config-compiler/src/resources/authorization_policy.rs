//! Istio's AuthorizationPolicy (`security.istio.io` v1, v1beta1), as users write it.

use super::meta::ObjectMeta;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An AuthorizationPolicy.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct AuthorizationPolicy {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Spec.
    #[serde(default)]
    pub spec: AuthorizationPolicySpec,
}

/// The spec.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationPolicySpec {
    /// Workloads by label (gateways: `istio.io/gateway-name`).
    #[serde(default)]
    pub selector: Option<WorkloadSelector>,
    /// One target (deprecated form of `targetRefs`).
    #[serde(default)]
    pub target_ref: Option<PolicyTargetRef>,
    /// Targets: Gateway, GatewayClass, Service, ServiceEntry.
    #[serde(default)]
    pub target_refs: Vec<PolicyTargetRef>,
    /// `ALLOW` (default), `DENY`, `AUDIT`, `CUSTOM`.
    #[serde(default)]
    pub action: Option<String>,
    /// The CUSTOM provider.
    #[serde(default)]
    pub provider: Option<serde_json::Value>,
    /// Rules; none matches nothing.
    #[serde(default)]
    pub rules: Vec<AuthzRule>,
}

/// `selector`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSelector {
    /// Labels the workload must carry.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

/// A policy target.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct PolicyTargetRef {
    /// API group (`gateway.networking.k8s.io`, `""`, `networking.istio.io`).
    #[serde(default)]
    pub group: Option<String>,
    /// Kind.
    #[serde(default)]
    pub kind: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Namespace (must be the policy's).
    #[serde(default)]
    pub namespace: Option<String>,
}

/// One rule.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct AuthzRule {
    /// Sources (ORed).
    #[serde(default)]
    pub from: Vec<AuthzFrom>,
    /// Operations (ORed).
    #[serde(default)]
    pub to: Vec<AuthzTo>,
    /// Conditions (ANDed).
    #[serde(default)]
    pub when: Vec<AuthzCondition>,
}

/// `from[]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct AuthzFrom {
    /// The source.
    #[serde(default)]
    pub source: AuthzSource,
}

/// `to[]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct AuthzTo {
    /// The operation.
    #[serde(default)]
    pub operation: AuthzOperation,
}

/// `from[].source`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthzSource {
    /// Peer identities without `spiffe://`.
    #[serde(default)]
    pub principals: Vec<String>,
    /// Negated.
    #[serde(default)]
    pub not_principals: Vec<String>,
    /// JWT `iss/sub`.
    #[serde(default)]
    pub request_principals: Vec<String>,
    /// Negated.
    #[serde(default)]
    pub not_request_principals: Vec<String>,
    /// Peer namespaces.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Negated.
    #[serde(default)]
    pub not_namespaces: Vec<String>,
    /// `ns/sa` or `sa`.
    #[serde(default)]
    pub service_accounts: Vec<String>,
    /// Negated.
    #[serde(default)]
    pub not_service_accounts: Vec<String>,
    /// Connection source IPs/CIDRs.
    #[serde(default)]
    pub ip_blocks: Vec<String>,
    /// Negated.
    #[serde(default)]
    pub not_ip_blocks: Vec<String>,
    /// Original client IPs/CIDRs.
    #[serde(default)]
    pub remote_ip_blocks: Vec<String>,
    /// Negated.
    #[serde(default)]
    pub not_remote_ip_blocks: Vec<String>,
}

/// `to[].operation`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthzOperation {
    /// Hosts.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Negated.
    #[serde(default)]
    pub not_hosts: Vec<String>,
    /// Ports (strings).
    #[serde(default)]
    pub ports: Vec<String>,
    /// Negated.
    #[serde(default)]
    pub not_ports: Vec<String>,
    /// Methods.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Negated.
    #[serde(default)]
    pub not_methods: Vec<String>,
    /// Paths.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Negated.
    #[serde(default)]
    pub not_paths: Vec<String>,
}

/// `when[]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthzCondition {
    /// The attribute.
    #[serde(default)]
    pub key: String,
    /// Accepted values.
    #[serde(default)]
    pub values: Vec<String>,
    /// Refused values.
    #[serde(default)]
    pub not_values: Vec<String>,
}
