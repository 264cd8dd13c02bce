//! Upstream TLS as users write it: Gateway API `BackendTLSPolicy` and the `tls` part of Istio's
//! `DestinationRule` (the rest of DestinationRule is read and ignored until traffic policy lands).

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

/// An Istio DestinationRule (`networking.istio.io` v1, v1beta1, v1alpha3).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct DestinationRule {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Spec.
    #[serde(default)]
    pub spec: DestinationRuleSpec,
}

/// DestinationRule spec (the fields this build reads).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRuleSpec {
    /// Short name, FQDN or `*.` wildcard.
    #[serde(default)]
    pub host: String,
    /// Policy for every port.
    #[serde(default)]
    pub traffic_policy: Option<TrafficPolicy>,
}

/// `trafficPolicy`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficPolicy {
    /// TLS towards the upstream.
    #[serde(default)]
    pub tls: Option<ClientTlsSettings>,
    /// Per-port overrides.
    #[serde(default)]
    pub port_level_settings: Vec<PortTrafficPolicy>,
}

/// `portLevelSettings[]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct PortTrafficPolicy {
    /// The port.
    #[serde(default)]
    pub port: Option<PortSelector>,
    /// TLS for that port.
    #[serde(default)]
    pub tls: Option<ClientTlsSettings>,
}

/// `port: {number}`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct PortSelector {
    /// Port number.
    #[serde(default)]
    pub number: u16,
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

impl DestinationRule {
    /// Every `tls` block: the top level and each port's.
    pub fn tls_settings(&self) -> impl Iterator<Item = &ClientTlsSettings> {
        let tp = self.spec.traffic_policy.as_ref();
        tp.and_then(|t| t.tls.as_ref()).into_iter().chain(
            tp.into_iter()
                .flat_map(|t| &t.port_level_settings)
                .filter_map(|p| p.tls.as_ref()),
        )
    }
}
