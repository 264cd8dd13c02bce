//! Gateway API `BackendTLSPolicy` as users write it (Istio's DestinationRule `tls` is in
//! [`super::destination_rule`]).

use super::meta::ObjectMeta;
use serde::{Deserialize, Serialize};

/// A BackendTLSPolicy (`v1`, `v1alpha3`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct BackendTlsPolicy {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Spec.
    #[serde(default)]
    pub spec: BackendTlsPolicySpec,
}

/// BackendTLSPolicy spec.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendTlsPolicySpec {
    /// Services (optionally one port, by name) the policy applies to.
    #[serde(default)]
    pub target_refs: Vec<PolicyTargetRef>,
    /// How the backend's certificate is verified.
    #[serde(default)]
    pub validation: BackendTlsValidation,
}

/// A target of a policy in the policy's namespace.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PolicyTargetRef {
    /// Group (`""` for a Service).
    #[serde(default)]
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// A Service port name.
    #[serde(default)]
    pub section_name: Option<String>,
}

/// `validation`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendTlsValidation {
    /// CA bundles (ConfigMap key `ca.crt`).
    #[serde(default)]
    pub ca_certificate_refs: Vec<LocalObjectReference>,
    /// `System`: the OS trust store.
    #[serde(default)]
    pub well_known_ca_certificates: Option<String>,
    /// The SNI, and the name to verify when `subjectAltNames` is empty.
    #[serde(default)]
    pub hostname: String,
    /// Names one of which the certificate must carry.
    #[serde(default)]
    pub subject_alt_names: Vec<SubjectAltName>,
}

/// A reference to an object in the same namespace.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct LocalObjectReference {
    /// Group.
    #[serde(default)]
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
}

/// One expected subject alternative name.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct SubjectAltName {
    /// `Hostname` or `URI`.
    #[serde(rename = "type")]
    pub kind: String,
    /// For `Hostname`.
    #[serde(default)]
    pub hostname: Option<String>,
    /// For `URI`.
    #[serde(default)]
    pub uri: Option<String>,
}
