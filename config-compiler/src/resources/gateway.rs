//! `GatewayClass` and `Gateway` as written by users (gateway.networking.k8s.io v1/v1beta1).

use super::meta::{LabelSelector, ObjectMeta};
use serde::{Deserialize, Serialize};

/// A GatewayClass.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct GatewayClass {
    /// Metadata (cluster-scoped: no namespace).
    pub metadata: ObjectMeta,
    /// Spec.
    #[serde(default)]
    pub spec: GatewayClassSpec,
}

/// GatewayClass spec.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayClassSpec {
    /// The controller that handles this class.
    #[serde(default)]
    pub controller_name: String,
}

/// A Gateway.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Gateway {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Spec.
    #[serde(default)]
    pub spec: GatewaySpec,
}

/// Gateway spec.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    /// The class; picks the controller.
    #[serde(default)]
    pub gateway_class_name: String,
    /// Listeners.
    #[serde(default)]
    pub listeners: Vec<ListenerSpec>,
    /// Infrastructure settings (labels, annotations, parametersRef).
    #[serde(default)]
    pub infrastructure: Option<GatewayInfrastructure>,
    /// Which ListenerSets may add listeners (absent: none).
    #[serde(default)]
    pub allowed_listeners: Option<AllowedListeners>,
    /// Gateway-wide TLS: client-certificate validation and the backend client certificate.
    #[serde(default)]
    pub tls: Option<GatewayTlsConfig>,
}

/// A reference to a Secret (or another kind holding key material).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct SecretObjectReference {
    /// API group; default `""` (core).
    #[serde(default)]
    pub group: Option<String>,
    /// Kind; default `Secret`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Name.
    pub name: String,
    /// Namespace; default the referring object's.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// A reference to an object by group, kind, name and optional namespace (all required but ns).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct ObjectReference {
    /// API group (`""` for core).
    #[serde(default)]
    pub group: String,
    /// Kind, e.g. `ConfigMap`.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace; default the referring object's.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// `listeners[].tls`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ListenerTlsConfig {
    /// `Terminate` (default) or `Passthrough`.
    #[serde(default)]
    pub mode: Option<String>,
    /// Certificates for `Terminate`.
    #[serde(default)]
    pub certificate_refs: Vec<SecretObjectReference>,
    /// Implementation-specific options.
    #[serde(default)]
    pub options: std::collections::BTreeMap<String, String>,
}

/// `spec.tls`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct GatewayTlsConfig {
    /// TLS towards backends (the Gateway's client certificate).
    #[serde(default)]
    pub backend: Option<GatewayBackendTls>,
    /// TLS towards clients (client-certificate validation).
    #[serde(default)]
    pub frontend: Option<FrontendTlsConfig>,
}

/// `spec.tls.backend`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayBackendTls {
    /// The client certificate the Gateway presents to backends that ask for one.
    #[serde(default)]
    pub client_certificate_ref: Option<SecretObjectReference>,
}

/// `spec.tls.frontend`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FrontendTlsConfig {
    /// Applies to every HTTPS port without a `perPort` entry.
    #[serde(default)]
    pub default: FrontendTlsSettings,
    /// Per-port overrides.
    #[serde(default)]
    pub per_port: Vec<FrontendTlsPort>,
}

/// One port's frontend settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct FrontendTlsPort {
    /// The port.
    pub port: u16,
    /// Its settings.
    #[serde(default)]
    pub tls: FrontendTlsSettings,
}

/// Frontend TLS settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct FrontendTlsSettings {
    /// Client-certificate validation.
    #[serde(default)]
    pub validation: Option<FrontendTlsValidation>,
}

/// `validation`: trust anchors and mode.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FrontendTlsValidation {
    /// ConfigMaps (key `ca.crt`) or Secrets holding the CA bundle.
    #[serde(default)]
    pub ca_certificate_refs: Vec<ObjectReference>,
    /// `AllowValidOnly` (default) or `AllowInsecureFallback`.
    #[serde(default)]
    pub mode: Option<String>,
}

/// `spec.allowedListeners`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct AllowedListeners {
    /// Namespaces ListenerSets may come from.
    #[serde(default)]
    pub namespaces: Option<ListenerNamespaces>,
}

/// `spec.allowedListeners.namespaces`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ListenerNamespaces {
    /// `None` (default), `Same`, `All` or `Selector`.
    #[serde(default)]
    pub from: Option<String>,
    /// Namespace label selector for `Selector`.
    #[serde(default)]
    pub selector: Option<LabelSelector>,
}

/// `spec.infrastructure`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayInfrastructure {
    /// Implementation-specific parameters.
    #[serde(default)]
    pub parameters_ref: Option<LocalParametersRef>,
}

/// A reference to a parameters object in the Gateway's namespace.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct LocalParametersRef {
    /// API group.
    #[serde(default)]
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
}

/// One Gateway listener.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerSpec {
    /// Unique name within the Gateway.
    pub name: String,
    /// Hostname (may start with `*.`).
    #[serde(default)]
    pub hostname: Option<String>,
    /// Port.
    pub port: u16,
    /// `HTTP`, `HTTPS`, `TLS`, `TCP`, `UDP`, `HBONE`.
    pub protocol: String,
    /// TLS settings (HTTPS and TLS listeners).
    #[serde(default)]
    pub tls: Option<ListenerTlsConfig>,
    /// Which routes may attach.
    #[serde(default)]
    pub allowed_routes: Option<AllowedRoutes>,
}

/// `allowedRoutes`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct AllowedRoutes {
    /// Namespaces routes may come from.
    #[serde(default)]
    pub namespaces: Option<RouteNamespaces>,
    /// Route kinds allowed.
    #[serde(default)]
    pub kinds: Option<Vec<RouteGroupKind>>,
}

/// `allowedRoutes.namespaces`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct RouteNamespaces {
    /// `Same` (default), `All`, `Selector` or `None`.
    #[serde(default)]
    pub from: Option<String>,
    /// Namespace label selector for `Selector`.
    #[serde(default)]
    pub selector: Option<LabelSelector>,
}

/// A route group/kind.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct RouteGroupKind {
    /// Group; default `gateway.networking.k8s.io`.
    #[serde(default)]
    pub group: Option<String>,
    /// Kind.
    pub kind: String,
}
