//! `ListenerSet` as written by users (gateway.networking.k8s.io v1; x-k8s.io v1alpha1 `XListenerSet`).

use super::gateway::ListenerSpec;
use super::meta::ObjectMeta;
use serde::{Deserialize, Serialize};

/// A ListenerSet: listeners added to a parent Gateway that allows them.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ListenerSet {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Spec.
    #[serde(default)]
    pub spec: ListenerSetSpec,
}

/// ListenerSet spec.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerSetSpec {
    /// The Gateway these listeners join.
    #[serde(default)]
    pub parent_ref: ParentGatewayRef,
    /// Listeners (same shape as a Gateway's).
    #[serde(default)]
    pub listeners: Vec<ListenerSpec>,
}

/// `spec.parentRef`: a Gateway, by name and optional namespace.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ParentGatewayRef {
    /// API group; default `gateway.networking.k8s.io`.
    #[serde(default)]
    pub group: Option<String>,
    /// Kind; default `Gateway`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Gateway name.
    #[serde(default)]
    pub name: String,
    /// Gateway namespace; default the ListenerSet's.
    #[serde(default)]
    pub namespace: Option<String>,
}
