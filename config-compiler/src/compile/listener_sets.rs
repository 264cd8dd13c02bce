//! ListenerSets: which Gateway allows which ListenerSet, merging their listeners into the
//! Gateway's ports by precedence, conflicts, and the ListenerSet status.
//!
//! Rules (Gateway API v1.6 ListenerSet and `allowedListeners` docs), cited as [LS-n]:
//! - [LS-1] a Gateway takes ListenerSets only as `spec.allowedListeners.namespaces.from` says
//!   (`None`, the default, `Same`, `All`, `Selector`); others are `NotAllowed`.
//! - [LS-2] listener precedence: the Gateway's own, then ListenerSets by creation time, then by
//!   namespace/name.
//! - [LS-3] of conflicting listeners (same port with another protocol, or same port and
//!   hostname) the lower-precedence one is Conflicted, not Accepted and not Programmed; a
//!   ListenerSet with no valid listener is `ListenersNotValid`.
//! - [LS-4] a route parentRef of kind ListenerSet attaches to that set's listeners only; one of
//!   kind Gateway to the Gateway's own only; `allowedRoutes` `Same` is the set's namespace.
//! - [LS-5] ListenerSet status: Accepted/Programmed and per-listener status; the Gateway counts
//!   accepted sets in `attachedListenerSets`.

use super::gateways::{CompiledGateway, ListenerState, conflict_between, validate_listener};
use super::{GATEWAY_GROUP, World};
use crate::resources::{ListenerSet, NsName, Resources, Sourced};
use crate::status::{Condition, ListenerStatus, ObjectStatus};
use std::collections::BTreeMap;

/// A ListenerSet whose parentRef names a Gateway we serve.
pub(crate) struct ListenerSetState {
    /// Its namespace/name.
    pub id: NsName,
    source: String,
    generation: Option<i64>,
    /// Why the Gateway does not take it (`NotAllowed`), if it does not.
    not_allowed: Option<String>,
}

/// [LS-2] Precedence among ListenerSets: oldest first (a missing timestamp sorts last), then
/// namespace/name.
fn precedence(ls: &ListenerSet) -> (bool, &str, &str, &str) {
    let m = &ls.metadata;
    let created = m.creation_timestamp.as_deref();
    (
        created.is_none(),
        created.unwrap_or(""),
        m.namespace(),
        m.name.as_str(),
    )
}

/// Attach every ListenerSet to the served Gateway its parentRef names: allowed ones add their
/// listeners after the Gateway's own, in precedence order ([LS-1], [LS-2], [LS-3]).
pub(super) fn merge_listener_sets(
    r: &Resources,
    world: &World<'_>,
    gateways: &mut [CompiledGateway],
) {
    let mut sets: Vec<&Sourced<ListenerSet>> = r.listener_sets.iter().collect();
    sets.sort_by(|a, b| precedence(&a.object).cmp(&precedence(&b.object)));
    for s in sets {
        let ls = &s.object;
        let ls_ns = ls.metadata.namespace();
        let p = &ls.spec.parent_ref;
        let group = p.group.as_deref().unwrap_or(GATEWAY_GROUP);
        let kind = p.kind.as_deref().unwrap_or("Gateway");
        if group != GATEWAY_GROUP || kind != "Gateway" {
            continue;
        }
        let gw_ns = p.namespace.as_deref().unwrap_or(ls_ns);
        let Some(gw) = gateways
            .iter_mut()
            .find(|g| g.id.namespace == gw_ns && g.id.name == p.name)
        else {
            continue;
        };
        let id = ls.metadata.ns_name();
        let not_allowed = allows(gw, ls_ns, world).err();
        if not_allowed.is_none() {
            let start = gw.listeners.len();
            for spec in &ls.spec.listeners {
                let mut l = validate_listener(spec, Some(id.clone()), ls_ns, world);
                let earlier = gw
                    .listeners
                    .iter()
                    .filter(|o| !is_conflicted(o))
                    .find_map(|o| conflict_between(spec, &o.spec));
                if let Some((reason, msg)) = earlier {
                    conflicted(&mut l, reason, msg);
                } else if gw.listeners[start..]
                    .iter()
                    .any(|o| o.spec.name == spec.name)
                {
                    l.programmed = false;
                    l.status.conditions.set(Condition::new(
                        "Accepted",
                        false,
                        "UnsupportedValue",
                        format!("listener name {:?} is used twice", spec.name),
                    ));
                }
                if !l.programmed && l.status.conditions.get("Programmed").is_none() {
                    l.status.conditions.set(Condition::new(
                        "Programmed",
                        false,
                        "Invalid",
                        "Listener is not served",
                    ));
                }
                gw.listeners.push(l);
            }
        }
        gw.listener_sets.push(ListenerSetState {
            id,
            source: s.source.to_string(),
            generation: ls.metadata.generation,
            not_allowed,
        });
    }
}

/// [LS-1] `spec.allowedListeners.namespaces.from`: `None` (the default), `Same`, `All`, `Selector`.
fn allows(gw: &CompiledGateway, ls_ns: &str, world: &World<'_>) -> Result<(), String> {
    let ns = gw
        .allowed_listeners
        .as_ref()
        .and_then(|a| a.namespaces.as_ref());
    let from = ns.and_then(|n| n.from.as_deref()).unwrap_or("None");
    let ok = match from {
        "All" => true,
        "Same" => ls_ns == gw.id.namespace,
        "Selector" => ns
            .and_then(|n| n.selector.as_ref())
            .is_some_and(|sel| sel.matches(&world.namespace_labels(ls_ns)).unwrap_or(false)),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "Gateway {} does not allow ListenerSets from namespace {ls_ns} (allowedListeners from {from})",
            gw.id
        ))
    }
}

/// Whether a listener lost a conflict.
fn is_conflicted(l: &ListenerState) -> bool {
    l.status
        .conditions
        .get("Conflicted")
        .is_some_and(|c| c.is_true())
}

/// [LS-3] A lower-precedence listener in conflict: Conflicted, not Accepted, not Programmed.
fn conflicted(l: &mut ListenerState, reason: &str, msg: String) {
    l.programmed = false;
    let c = &mut l.status.conditions;
    c.set(Condition::new("Conflicted", true, reason, msg.clone()));
    c.set(Condition::new("Accepted", false, reason, msg.clone()));
    c.set(Condition::new("Programmed", false, reason, msg));
}

/// [LS-5] The status of each ListenerSet of a Gateway from its listeners' statuses; also the
/// number of ListenerSets accepted (the Gateway's `attachedListenerSets`).
pub(super) fn set_statuses(
    sets: Vec<ListenerSetState>,
    mut listeners: BTreeMap<NsName, Vec<ListenerStatus>>,
) -> (Vec<ObjectStatus>, u32) {
    let mut attached = 0;
    let mut out = Vec::new();
    for set in sets {
        let mut status = ObjectStatus::new("ListenerSet", &set.id.namespace, &set.id.name);
        status.source = Some(set.source);
        let (ok, reason, msg) = if let Some(msg) = set.not_allowed {
            (false, "NotAllowed", msg)
        } else {
            status.listeners = listeners.remove(&set.id).unwrap_or_default();
            let programmed =
                |l: &&ListenerStatus| l.conditions.get("Programmed").is_some_and(|c| c.is_true());
            if status.listeners.iter().any(|l| programmed(&l)) {
                (true, "", String::new())
            } else {
                (
                    false,
                    "ListenersNotValid",
                    "No listener is valid".to_string(),
                )
            }
        };
        if ok {
            attached += 1;
            status.conditions.set(Condition::new(
                "Accepted",
                true,
                "Accepted",
                "ListenerSet is accepted",
            ));
            status.conditions.set(Condition::new(
                "Programmed",
                true,
                "Programmed",
                "ListenerSet is served",
            ));
        } else {
            status
                .conditions
                .set(Condition::new("Accepted", false, reason, msg.clone()));
            status
                .conditions
                .set(Condition::new("Programmed", false, reason, msg));
        }
        status.conditions.observe(set.generation);
        for l in &mut status.listeners {
            l.conditions.observe(set.generation);
        }
        out.push(status);
    }
    (out, attached)
}
