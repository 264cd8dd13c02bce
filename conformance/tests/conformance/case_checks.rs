//! The status checks of the case file schema (`checks:` in `conformance/cases/*.yaml`); see
//! `conformance/README.md`.

use crate::listener_sets as ls;
use serde::{Deserialize, Deserializer};

/// One status assertion. Exactly one of the assertion fields is set; each mirrors one upstream
/// helper, including its check that conditions carry the object's current generation.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Check {
    /// Set: not checked, and why.
    #[serde(default)]
    pub skip: Option<String>,
    /// Every Gateway in these namespaces (unless annotated `gateway-api/skip-this-for-readiness`)
    /// is Accepted and Programmed at its current generation.
    #[serde(default)]
    pub ready: Option<Vec<String>>,
    /// The Gateway has an address and all its listeners are Accepted, ResolvedRefs and
    /// Programmed; each route has exactly one Accepted parent entry per listener named (one if
    /// none) for that Gateway.
    #[serde(default)]
    pub accepted: Option<AcceptedCheck>,
    /// Some parent entry of the route for the Gateway has the condition.
    #[serde(default)]
    pub route_condition: Option<RouteConditionCheck>,
    /// The route's parent entries are exactly these, in order.
    #[serde(default)]
    pub route_parents: Option<RouteParentsCheck>,
    /// The route has no parent entries, or a single one that is not Accepted.
    #[serde(default)]
    pub no_accepted_parents: Option<String>,
    /// The Gateway has no listener status, or a single listener with no attached routes.
    #[serde(default)]
    pub zero_routes: Option<String>,
    /// The Gateway's listener statuses are exactly these (by name, in any order).
    #[serde(default)]
    pub listeners: Option<ListenersCheck>,
    /// The Gateway has the condition.
    #[serde(default)]
    pub gateway_condition: Option<GatewayConditionCheck>,
    /// Every condition of the object carries its current generation.
    #[serde(default)]
    pub latest: Option<ObjectRef>,
    /// The GatewayClass has an Accepted condition (with this status, if given) at its current
    /// generation.
    #[serde(default)]
    pub class_accepted: Option<ClassAcceptedCheck>,
    /// The Gateway's `attachedListenerSets` is exactly this.
    #[serde(default)]
    pub attached_listener_sets: Option<ls::AttachedCheck>,
    /// The ListenerSet has these conditions.
    #[serde(default)]
    pub listener_set_condition: Option<ls::ConditionCheck>,
    /// The ListenerSet's listener statuses.
    #[serde(default)]
    pub listener_set_listeners: Option<ls::ListenersCheck>,
    /// `namespace/gateway/listener`: the Gateway's `status.addresses` has an IP address, and the
    /// listener is reachable there (`WaitForGatewayAddress`).
    #[serde(default)]
    pub gateway_address: Option<String>,
    /// The BackendTLSPolicy's ancestor entry for the Gateway has the condition.
    #[serde(default)]
    pub policy_condition: Option<PolicyConditionCheck>,
}

/// See [`Check::accepted`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AcceptedCheck {
    /// `namespace/name`.
    pub gateway: String,
    /// The routes' kind: `HTTPRoute` (default) or `GRPCRoute`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Routes, `namespace/name`.
    #[serde(default)]
    pub routes: Vec<String>,
    /// Listener names the routes attach to, one parent entry each.
    #[serde(default)]
    pub listeners: Vec<String>,
}

/// See [`Check::route_condition`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RouteConditionCheck {
    /// `namespace/name`.
    pub route: String,
    /// The route's kind (default `HTTPRoute`).
    #[serde(default)]
    pub route_kind: Option<String>,
    /// `namespace/name`.
    pub gateway: String,
    /// Condition type.
    #[serde(rename = "type")]
    pub kind: String,
    /// `True`, `False`, or empty for any.
    #[serde(default, deserialize_with = "status_string")]
    pub status: String,
    /// Reason, or empty for any.
    #[serde(default)]
    pub reason: String,
}

/// See [`Check::policy_condition`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyConditionCheck {
    /// The BackendTLSPolicy, `namespace/name`.
    pub policy: String,
    /// The ancestor Gateway, `namespace/name`.
    pub gateway: String,
    /// Condition type.
    #[serde(rename = "type")]
    pub kind: String,
    /// `True`, `False`, or empty for any.
    #[serde(default, deserialize_with = "status_string")]
    pub status: String,
    /// Reason, or empty for any.
    #[serde(default)]
    pub reason: String,
}

/// See [`Check::route_parents`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RouteParentsCheck {
    /// `namespace/name`.
    pub route: String,
    /// The parentRef must name the Gateway's namespace even if it is the route's.
    #[serde(default)]
    pub namespace_required: bool,
    /// Expected entries.
    pub parents: Vec<ParentExpect>,
}

/// One expected route parent entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ParentExpect {
    /// `namespace/name` of the parent.
    pub gateway: String,
    /// The parent's kind: `Gateway` (default) or `ListenerSet`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Conditions that must be present.
    #[serde(default)]
    pub conditions: Vec<CondExpect>,
}

/// See [`Check::listeners`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListenersCheck {
    /// `namespace/name`.
    pub gateway: String,
    /// Expected listener statuses.
    pub listeners: Vec<ListenerExpect>,
}

/// One expected listener status.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListenerExpect {
    /// Listener name.
    pub name: String,
    /// Kinds that must be supported; empty means none may be.
    pub supported_kinds: Vec<String>,
    /// Exact count.
    pub attached_routes: u32,
    /// Conditions that must be present.
    #[serde(default)]
    pub conditions: Vec<CondExpect>,
}

/// See [`Check::gateway_condition`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GatewayConditionCheck {
    /// `namespace/name`.
    pub gateway: String,
    /// Condition type.
    #[serde(rename = "type")]
    pub kind: String,
    /// `True`, `False`, or empty for any.
    #[serde(default, deserialize_with = "status_string")]
    pub status: String,
    /// Reason, or empty for any.
    #[serde(default)]
    pub reason: String,
}

/// See [`Check::latest`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectRef {
    /// `Gateway`, `HTTPRoute`, `GRPCRoute`, `GatewayClass` or `BackendTLSPolicy`.
    pub kind: String,
    /// `namespace/name`, or just `name` for a GatewayClass.
    pub name: String,
}

/// See [`Check::class_accepted`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClassAcceptedCheck {
    /// GatewayClass name.
    pub name: String,
    /// `True`, `False`, or empty for any.
    #[serde(default, deserialize_with = "status_string")]
    pub status: String,
}

/// An expected condition; an empty status or reason matches any.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CondExpect {
    /// Condition type.
    #[serde(rename = "type")]
    pub kind: String,
    /// `True`, `False`, or empty for any.
    #[serde(default, deserialize_with = "status_string")]
    pub status: String,
    /// Reason, or empty for any.
    #[serde(default)]
    pub reason: String,
}

/// A condition status written as `"True"`/`"False"` or as a YAML boolean.
fn status_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum S {
        B(bool),
        S(String),
    }
    Ok(match S::deserialize(d)? {
        S::B(true) => "True".into(),
        S::B(false) => "False".into(),
        S::S(s) => s,
    })
}

impl Check {
    /// The names of the assertion fields that are set (must be exactly one).
    pub fn set_fields(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut add = |set: bool, name| {
            if set {
                out.push(name);
            }
        };
        add(self.ready.is_some(), "ready");
        add(self.accepted.is_some(), "accepted");
        add(self.route_condition.is_some(), "routeCondition");
        add(self.route_parents.is_some(), "routeParents");
        add(self.no_accepted_parents.is_some(), "noAcceptedParents");
        add(self.zero_routes.is_some(), "zeroRoutes");
        add(self.gateway_address.is_some(), "gatewayAddress");
        add(self.listeners.is_some(), "listeners");
        add(self.gateway_condition.is_some(), "gatewayCondition");
        add(self.latest.is_some(), "latest");
        add(self.class_accepted.is_some(), "classAccepted");
        add(
            self.attached_listener_sets.is_some(),
            "attachedListenerSets",
        );
        add(
            self.listener_set_condition.is_some(),
            "listenerSetCondition",
        );
        add(
            self.listener_set_listeners.is_some(),
            "listenerSetListeners",
        );
        add(self.policy_condition.is_some(), "policyCondition");
        out
    }
}
