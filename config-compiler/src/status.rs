//! Status conditions per object, in the shape the Gateway API defines and `/status` shows.

use crate::resources::http_route::ParentRef;
use serde::Serialize;

/// One condition (`type`, `status`, `reason`, `message`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. `Accepted`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// CamelCase reason.
    pub reason: String,
    /// Human-readable detail.
    pub message: String,
    /// The object's `metadata.generation`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl Condition {
    /// A condition with status `True`/`False` from a bool.
    pub fn new(kind: &str, ok: bool, reason: &str, message: impl Into<String>) -> Self {
        Self {
            kind: kind.to_string(),
            status: if ok { "True" } else { "False" }.to_string(),
            reason: reason.to_string(),
            message: message.into(),
            observed_generation: None,
        }
    }

    /// Whether the status is `True`.
    pub fn is_true(&self) -> bool {
        self.status == "True"
    }
}

/// Conditions keyed by type: setting a type replaces the previous condition of that type ([GW-9]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Conditions(pub Vec<Condition>);

impl Conditions {
    /// Set (or replace) the condition of this type.
    pub fn set(&mut self, c: Condition) {
        match self.0.iter_mut().find(|x| x.kind == c.kind) {
            Some(slot) => *slot = c,
            None => self.0.push(c),
        }
    }
    /// The condition of this type.
    pub fn get(&self, kind: &str) -> Option<&Condition> {
        self.0.iter().find(|c| c.kind == kind)
    }
    /// Stamp every condition with the object's generation.
    pub fn observe(&mut self, generation: Option<i64>) {
        for c in &mut self.0 {
            c.observed_generation = generation;
        }
    }
}

/// Status of one route parent.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentStatus {
    /// The parentRef as written.
    pub parent_ref: ParentRef,
    /// Our controller's name.
    pub controller_name: String,
    /// Accepted, ResolvedRefs, …
    pub conditions: Conditions,
}

/// Status of one Gateway listener.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    /// Listener name.
    pub name: String,
    /// The listener's port (not part of the Gateway API status shape).
    #[serde(skip)]
    pub port: u16,
    /// Routes attached.
    pub attached_routes: u32,
    /// Route kinds this listener supports (shown as `[{group, kind}]`, the Gateway API shape).
    #[serde(serialize_with = "ser_kinds")]
    pub supported_kinds: Vec<String>,
    /// Accepted, Programmed, ResolvedRefs, Conflicted.
    pub conditions: Conditions,
}

/// Status of one object.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStatus {
    /// Kind.
    pub kind: String,
    /// Namespace (empty for cluster-scoped kinds).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// File and document it was read from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Object-level conditions.
    pub conditions: Conditions,
    /// Per-parent conditions (routes).
    pub parents: Vec<ParentStatus>,
    /// Per-listener conditions (Gateways, ListenerSets).
    pub listeners: Vec<ListenerStatus>,
    /// ListenerSets accepted onto this Gateway (Gateways only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attached_listener_sets: Option<u32>,
    /// Where a Gateway is reachable (`status.addresses`), filled in by the data plane, which
    /// knows what it bound.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<StatusAddress>,
}

/// One `status.addresses` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusAddress {
    /// `IPAddress` or `Hostname` (empty for a ServiceEntry's allocated address).
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// The address.
    pub value: String,
    /// The host it was allocated to (ServiceEntry).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl ObjectStatus {
    /// An empty status for an object.
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        Self {
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            source: None,
            conditions: Conditions::default(),
            parents: Vec::new(),
            listeners: Vec::new(),
            attached_listener_sets: None,
            addresses: Vec::new(),
        }
    }
}

/// Everything compilation has to say about the input.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StatusReport {
    /// One entry per GatewayClass, Gateway, ListenerSet and route we handle.
    pub objects: Vec<ObjectStatus>,
    /// Warnings (skipped kinds, ignored fields).
    pub warnings: Vec<String>,
}

impl StatusReport {
    /// The status of one object.
    pub fn find(&self, kind: &str, namespace: &str, name: &str) -> Option<&ObjectStatus> {
        self.objects
            .iter()
            .find(|o| o.kind == kind && o.namespace == namespace && o.name == name)
    }

    /// Every False condition that means the object (or part of it) is not served, as text lines.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for o in &self.objects {
            let mut who = if o.namespace.is_empty() {
                format!("{} {}", o.kind, o.name)
            } else {
                format!("{} {}/{}", o.kind, o.namespace, o.name)
            };
            if let Some(src) = &o.source {
                who = format!("{src}: {who}");
            }
            let bad = |c: &Condition| {
                (c.status == "False" && c.kind != "Conflicted")
                    || (c.status == "True"
                        && matches!(c.kind.as_str(), "Conflicted" | "PartiallyInvalid"))
            };
            for c in o.conditions.0.iter().filter(|c| bad(c)) {
                out.push(format!("{who}: {} {}: {}", c.kind, c.reason, c.message));
            }
            for l in &o.listeners {
                for c in l.conditions.0.iter().filter(|c| bad(c)) {
                    out.push(format!(
                        "{who}: listener {}: {} {}: {}",
                        l.name, c.kind, c.reason, c.message
                    ));
                }
            }
            for p in &o.parents {
                for c in p.conditions.0.iter().filter(|c| bad(c)) {
                    out.push(format!(
                        "{who}: parent {}: {} {}: {}",
                        p.parent_ref.name, c.kind, c.reason, c.message
                    ));
                }
            }
        }
        out
    }
}

fn ser_kinds<S: serde::Serializer>(kinds: &[String], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(
        kinds
            .iter()
            .map(|k| serde_json::json!({"group": crate::compile::GATEWAY_GROUP, "kind": k})),
    )
}
