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
    /// TLS settings, kept as written until TLS support lands.
    #[serde(default)]
    pub tls: Option<serde_json::Value>,
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
