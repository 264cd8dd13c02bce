//! ListenerSet status checks: each mirrors one upstream helper (`GatewayMustHaveAttachedListeners`,
//! `ListenerSetMustHaveCondition`, `ListenerSetStatusMustHaveListeners`,
//! `ListenerSetListenersMustHaveConditions`), read against the gateway's status report.

use crate::case::CondExpect;
use crate::checks::{Ctx, at_generation, generation, require, status};
use serde::Deserialize;

type Outcome = Result<(), String>;

/// See `Check::attached_listener_sets`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AttachedCheck {
    /// `namespace/name`.
    pub gateway: String,
    /// Exact `status.attachedListenerSets`.
    pub count: u32,
}

/// See `Check::listener_set_condition`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConditionCheck {
    /// `namespace/name`.
    pub listener_set: String,
    /// Conditions that must be present.
    pub conditions: Vec<CondExpect>,
}

/// See `Check::listener_set_listeners`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListenersCheck {
    /// `namespace/name`.
    pub listener_set: String,
    /// Exact number of listener statuses, when set.
    #[serde(default)]
    pub count: Option<usize>,
    /// Expected listener statuses (by name).
    pub listeners: Vec<ListenerExpect>,
}

/// One expected ListenerSet listener status.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListenerExpect {
    /// Listener name.
    pub name: String,
    /// Kinds that must be supported.
    #[serde(default)]
    pub supported_kinds: Vec<String>,
    /// Exact attached route count, when set.
    #[serde(default)]
    pub attached_routes: Option<u32>,
    /// Conditions that must be present.
    #[serde(default)]
    pub conditions: Vec<CondExpect>,
}

/// GatewayMustHaveAttachedListeners: conditions at the current generation and
/// `attachedListenerSets` equal to the count.
pub fn attached(ctx: &Ctx<'_>, c: &AttachedCheck) -> Outcome {
    let s = status(ctx, "Gateway", &c.gateway)?;
    let what = format!("Gateway {}", c.gateway);
    at_generation(
        &what,
        &s.conditions,
        generation(ctx, "Gateway", &c.gateway)?,
    )?;
    let have = s.attached_listener_sets.unwrap_or(0);
    if have == c.count {
        Ok(())
    } else {
        Err(format!(
            "{what}: attachedListenerSets {have}, want {}",
            c.count
        ))
    }
}

/// ListenerSetMustHaveCondition (each wanted condition, at the current generation).
pub fn condition(ctx: &Ctx<'_>, c: &ConditionCheck) -> Outcome {
    let s = status(ctx, "ListenerSet", &c.listener_set)?;
    let what = format!("ListenerSet {}", c.listener_set);
    at_generation(
        &what,
        &s.conditions,
        generation(ctx, "ListenerSet", &c.listener_set)?,
    )?;
    for w in &c.conditions {
        require(&what, &s.conditions, w)?;
    }
    Ok(())
}

/// ListenerSetStatusMustHaveListeners / ListenerSetListenersMustHaveConditions.
pub fn listeners(ctx: &Ctx<'_>, c: &ListenersCheck) -> Outcome {
    let s = status(ctx, "ListenerSet", &c.listener_set)?;
    let what = format!("ListenerSet {}", c.listener_set);
    let generation = generation(ctx, "ListenerSet", &c.listener_set)?;
    if let Some(n) = c.count
        && s.listeners.len() != n
    {
        return Err(format!(
            "{what}: {} listener statuses {:?}, want {n}",
            s.listeners.len(),
            s.listeners.iter().map(|l| &l.name).collect::<Vec<_>>()
        ));
    }
    for want in &c.listeners {
        let what = format!("{what} listener {}", want.name);
        let l = s
            .listeners
            .iter()
            .find(|l| l.name == want.name)
            .ok_or_else(|| format!("{what}: no status"))?;
        at_generation(&what, &l.conditions, generation)?;
        for k in &want.supported_kinds {
            if !l.supported_kinds.contains(k) {
                return Err(format!(
                    "{what}: supportedKinds {:?} lacks {k}",
                    l.supported_kinds
                ));
            }
        }
        if let Some(n) = want.attached_routes
            && l.attached_routes != n
        {
            return Err(format!(
                "{what}: attachedRoutes {}, want {n}",
                l.attached_routes
            ));
        }
        for w in &want.conditions {
            require(&what, &l.conditions, w)?;
        }
    }
    Ok(())
}
