//! `ReferenceGrant`: permission, held in the target namespace, for references from other namespaces.

use super::meta::ObjectMeta;
use serde::{Deserialize, Serialize};

/// A ReferenceGrant (`v1` or `v1beta1`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ReferenceGrant {
    /// Metadata; the namespace is the target namespace.
    pub metadata: ObjectMeta,
    /// Spec.
    #[serde(default)]
    pub spec: ReferenceGrantSpec,
}

/// Who may refer (`from`) to what (`to`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ReferenceGrantSpec {
    /// Referring objects.
    #[serde(default)]
    pub from: Vec<GrantFrom>,
    /// Referable objects.
    #[serde(default)]
    pub to: Vec<GrantTo>,
}

/// A `from` entry.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct GrantFrom {
    /// API group of the referrer (`gateway.networking.k8s.io`).
    #[serde(default)]
    pub group: String,
    /// Kind of the referrer.
    pub kind: String,
    /// Namespace of the referrer.
    pub namespace: String,
}

/// A `to` entry.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct GrantTo {
    /// API group of the target (`""` for core).
    #[serde(default)]
    pub group: String,
    /// Kind of the target.
    pub kind: String,
    /// Name of the target; unset means every object of that kind.
    #[serde(default)]
    pub name: Option<String>,
}

impl ReferenceGrant {
    /// Whether this grant lets (`from_group`, `from_kind`, `from_ns`) refer to (`to_group`, `to_kind`, `to_name`).
    pub fn permits(&self, from: (&str, &str, &str), to: (&str, &str, &str)) -> bool {
        let (fg, fk, fns) = from;
        let (tg, tk, tn) = to;
        self.spec
            .from
            .iter()
            .any(|f| f.group == fg && f.kind == fk && f.namespace == fns)
            && self
                .spec
                .to
                .iter()
                .any(|t| t.group == tg && t.kind == tk && t.name.as_deref().is_none_or(|n| n == tn))
    }
}
