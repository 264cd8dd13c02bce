//! Status checks: each mirrors one upstream assertion helper, read against the gateway's status
//! report instead of the Kubernetes API.

use crate::case::{
    AcceptedCheck, Check, ClassAcceptedCheck, CondExpect, GatewayConditionCheck, ListenersCheck,
    ObjectRef, PolicyConditionCheck, RouteConditionCheck, RouteParentsCheck,
};
use crate::listener_sets;
use crate::world::{SKIP_READINESS, World};
use waygate::gateway::Gateway;
use waygate_config::NsName;
use waygate_config::StatusReport;
use waygate_config::compile::{CONTROLLER_NAME, GATEWAY_GROUP};
use waygate_config::status::{Conditions, ObjectStatus, ParentStatus};

/// What a check reads.
pub struct Ctx<'a> {
    /// The gateway's current status.
    pub report: &'a StatusReport,
    /// The objects as applied.
    pub world: &'a World,
    /// The running gateway (for addresses).
    pub gateway: &'a Gateway,
}

type Outcome = Result<(), String>;

/// Run one check.
pub fn run(ctx: &Ctx<'_>, check: &Check) -> Outcome {
    match check.set_fields().as_slice() {
        [_] => {}
        other => {
            return Err(format!(
                "a check must set exactly one assertion, this one sets {other:?}"
            ));
        }
    }
    if let Some(ns) = &check.ready {
        return ready(ctx, ns);
    }
    if let Some(c) = &check.accepted {
        return accepted(ctx, c);
    }
    if let Some(c) = &check.route_condition {
        return route_condition(ctx, c);
    }
    if let Some(c) = &check.route_parents {
        return route_parents(ctx, c);
    }
    if let Some(r) = &check.no_accepted_parents {
        return no_accepted_parents(ctx, r);
    }
    if let Some(g) = &check.zero_routes {
        return zero_routes(ctx, g);
    }
    if let Some(g) = &check.gateway_address {
        return gateway_address(ctx, g);
    }
    if let Some(c) = &check.listeners {
        return listeners(ctx, c);
    }
    if let Some(c) = &check.gateway_condition {
        return gateway_condition(ctx, c);
    }
    if let Some(c) = &check.latest {
        return latest(ctx, c);
    }
    if let Some(c) = &check.class_accepted {
        return class_accepted(ctx, c);
    }
    if let Some(c) = &check.attached_listener_sets {
        return listener_sets::attached(ctx, c);
    }
    if let Some(c) = &check.listener_set_condition {
        return listener_sets::condition(ctx, c);
    }
    if let Some(c) = &check.listener_set_listeners {
        return listener_sets::listeners(ctx, c);
    }
    if let Some(c) = &check.policy_condition {
        return policy_condition(ctx, c);
    }
    Err("empty check".into())
}

/// A one-line description of a check for failure messages.
pub fn describe(check: &Check) -> String {
    if let Some(ns) = &check.ready {
        return format!("ready {ns:?}");
    }
    if let Some(c) = &check.accepted {
        return format!(
            "accepted gateway={} routes={:?} listeners={:?}",
            c.gateway, c.routes, c.listeners
        );
    }
    if let Some(c) = &check.route_condition {
        return format!(
            "routeCondition {} on {}: {}={} ({})",
            c.route, c.gateway, c.kind, c.status, c.reason
        );
    }
    if let Some(c) = &check.route_parents {
        return format!("routeParents {}", c.route);
    }
    if let Some(r) = &check.no_accepted_parents {
        return format!("noAcceptedParents {r}");
    }
    if let Some(g) = &check.zero_routes {
        return format!("zeroRoutes {g}");
    }
    if let Some(g) = &check.gateway_address {
        return format!("gatewayAddress {g}");
    }
    if let Some(c) = &check.listeners {
        return format!("listeners {}", c.gateway);
    }
    if let Some(c) = &check.gateway_condition {
        return format!(
            "gatewayCondition {}: {}={} ({})",
            c.gateway, c.kind, c.status, c.reason
        );
    }
    if let Some(c) = &check.latest {
        return format!("latest {} {}", c.kind, c.name);
    }
    if let Some(c) = &check.class_accepted {
        return format!("classAccepted {} {}", c.name, c.status);
    }
    if let Some(c) = &check.attached_listener_sets {
        return format!("attachedListenerSets {} = {}", c.gateway, c.count);
    }
    if let Some(c) = &check.listener_set_condition {
        return format!("listenerSetCondition {}", c.listener_set);
    }
    if let Some(c) = &check.listener_set_listeners {
        return format!("listenerSetListeners {}", c.listener_set);
    }
    if let Some(c) = &check.policy_condition {
        return format!(
            "policyCondition {} on {}: {}={} ({})",
            c.policy, c.gateway, c.kind, c.status, c.reason
        );
    }
    format!("{check:?}")
}

fn split(id: &str) -> Result<(&str, &str), String> {
    id.split_once('/')
        .ok_or_else(|| format!("{id:?} is not namespace/name"))
}

pub fn status<'a>(ctx: &'a Ctx<'_>, kind: &str, id: &str) -> Result<&'a ObjectStatus, String> {
    let (ns, name) = if kind == "GatewayClass" {
        ("", id)
    } else {
        split(id)?
    };
    ctx.report
        .find(kind, ns, name)
        .ok_or_else(|| format!("{kind} {id} has no status"))
}

pub fn generation(ctx: &Ctx<'_>, kind: &str, id: &str) -> Result<i64, String> {
    ctx.world
        .object(kind, id)
        .map(|o| o.generation)
        .ok_or_else(|| format!("{kind} {id} is not in the manifests"))
}

fn show(conds: &Conditions) -> String {
    let parts: Vec<String> = conds
        .0
        .iter()
        .map(|c| {
            let gen_ = c
                .observed_generation
                .map_or_else(|| "-".to_string(), |g| g.to_string());
            format!("{}={}/{}@{gen_}", c.kind, c.status, c.reason)
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

/// Every condition carries `generation` as its observedGeneration.
pub fn at_generation(what: &str, conds: &Conditions, generation: i64) -> Outcome {
    let stale: Vec<String> = conds
        .0
        .iter()
        .filter(|c| c.observed_generation != Some(generation))
        .map(|c| c.kind.clone())
        .collect();
    if stale.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{what}: conditions {stale:?} do not carry generation {generation}: {}",
            show(conds)
        ))
    }
}

fn has(conds: &Conditions, want: &CondExpect) -> bool {
    conds.0.iter().any(|c| {
        c.kind == want.kind
            && (want.status.is_empty() || c.status == want.status)
            && (want.reason.is_empty() || c.reason == want.reason)
    })
}

pub fn require(what: &str, conds: &Conditions, want: &CondExpect) -> Outcome {
    if has(conds, want) {
        Ok(())
    } else {
        let reason = if want.reason.is_empty() {
            "any reason"
        } else {
            want.reason.as_str()
        };
        let status = if want.status.is_empty() {
            "any status"
        } else {
            want.status.as_str()
        };
        Err(format!(
            "{what}: want {}={status} ({reason}), have {}",
            want.kind,
            show(conds)
        ))
    }
}

fn cond(kind: &str, status: &str, reason: &str) -> CondExpect {
    CondExpect {
        kind: kind.into(),
        status: status.into(),
        reason: reason.into(),
    }
}

/// Whether a parent entry refers to this Gateway: the name matches, and the namespace matches or
/// (unless required) is omitted.
fn refers_to(p: &ParentStatus, gw_ns: &str, gw_name: &str, namespace_required: bool) -> bool {
    p.parent_ref.name == gw_name
        && match p.parent_ref.namespace.as_deref() {
            Some(ns) => ns == gw_ns,
            None => !namespace_required,
        }
}

/// A parent entry in the shape the upstream matcher demands: our controller, group and kind set.
fn parent_shape(
    what: &str,
    p: &ParentStatus,
    (kind, gw): (&str, &str),
    namespace_required: bool,
) -> Outcome {
    let (gw_ns, gw_name) = split(gw)?;
    if p.controller_name != CONTROLLER_NAME {
        return Err(format!(
            "{what}: controllerName {:?}, want {CONTROLLER_NAME:?}",
            p.controller_name
        ));
    }
    if p.parent_ref.group.as_deref() != Some(GATEWAY_GROUP) {
        return Err(format!(
            "{what}: parentRef.group {:?}, want {GATEWAY_GROUP:?}",
            p.parent_ref.group
        ));
    }
    if p.parent_ref.kind.as_deref() != Some(kind) {
        return Err(format!(
            "{what}: parentRef.kind {:?}, want {kind:?}",
            p.parent_ref.kind
        ));
    }
    if !refers_to(p, gw_ns, gw_name, namespace_required) {
        return Err(format!(
            "{what}: parentRef {:?}/{} does not name {kind} {gw}",
            p.parent_ref.namespace, p.parent_ref.name
        ));
    }
    Ok(())
}

/// NamespacesMustBeReady.
fn ready(ctx: &Ctx<'_>, namespaces: &[String]) -> Outcome {
    let mut errs = Vec::new();
    for ns in namespaces {
        for gw in ctx.world.gateways_in(ns) {
            if gw.annotations.get(SKIP_READINESS).map(String::as_str) == Some("true") {
                continue;
            }
            let what = format!("Gateway {}", gw.id());
            let r = status(ctx, "Gateway", &gw.id()).and_then(|s| {
                at_generation(&what, &s.conditions, gw.generation)?;
                require(&what, &s.conditions, &cond("Accepted", "True", ""))?;
                require(&what, &s.conditions, &cond("Programmed", "True", ""))
            });
            if let Err(e) = r {
                errs.push(e);
            }
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}

/// The port of a Gateway's first listener, where the upstream suite sends traffic.
pub fn first_listener_port(ctx_world: &World, gateway: &str) -> Option<u16> {
    let gw = ctx_world.object("Gateway", gateway)?;
    gw.value
        .get("spec")?
        .get("listeners")?
        .as_sequence()?
        .first()?
        .get("port")?
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
}

/// Whether a parent entry is the one the v1.6 matcher (`parentsForRouteMatch`) looks for: our
/// controller, group and kind set and right, the name, the namespace (omitted only when not
/// required), and every wanted condition.
fn parent_matches(
    p: &ParentStatus,
    parent: (&str, &str),
    namespace_required: bool,
    want: &[CondExpect],
) -> bool {
    parent_shape("", p, parent, namespace_required).is_ok()
        && want.iter().all(|w| has(&p.conditions, w))
}

/// The port of a Gateway's listener of this name.
fn listener_port(world: &World, gateway: &str, listener: &str) -> Option<u16> {
    let gw = world.object("Gateway", gateway)?;
    gw.value
        .get("spec")?
        .get("listeners")?
        .as_sequence()?
        .iter()
        .find(|l| l.get("name").and_then(|n| n.as_str()) == Some(listener))?
        .get("port")?
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
}

/// GatewayAndHTTPRoutesMustBeAccepted / GatewayAndRoutesMustBeAccepted (v1.6): the Gateway has an
/// address; each route has a parent entry for it that is Accepted (extra entries are fine) with
/// every entry at the route's generation; every listener of the Gateway is ResolvedRefs,
/// Accepted and Programmed.
fn accepted(ctx: &Ctx<'_>, c: &AcceptedCheck) -> Outcome {
    let (gw_ns, gw_name) = split(&c.gateway)?;
    let kind = c.kind.as_deref().unwrap_or("HTTPRoute");
    // "The Gateway has an address": the port of its first listener (or of the first listener
    // named) is bound.
    let port = match c.listeners.first() {
        Some(name) => listener_port(ctx.world, &c.gateway, name),
        None => first_listener_port(ctx.world, &c.gateway),
    }
    .ok_or_else(|| format!("Gateway {} has no such listener", c.gateway))?;
    if ctx
        .gateway
        .bound_addr(&NsName::new(gw_ns, gw_name), port)
        .is_none()
    {
        return Err(format!("Gateway {} port {port} is not bound", c.gateway));
    }
    let want = [cond("Accepted", "True", "Accepted")];
    for route in &c.routes {
        let (route_ns, _) = split(route)?;
        let s = status(ctx, kind, route)?;
        let generation = generation(ctx, kind, route)?;
        for (i, p) in s.parents.iter().enumerate() {
            at_generation(
                &format!("{kind} {route} parent {i}"),
                &p.conditions,
                generation,
            )?;
        }
        if !s
            .parents
            .iter()
            .any(|p| parent_matches(p, ("Gateway", &c.gateway), route_ns != gw_ns, &want))
        {
            let seen: Vec<String> = s
                .parents
                .iter()
                .map(|p| {
                    let shape = parent_shape("", p, ("Gateway", &c.gateway), route_ns != gw_ns)
                        .err()
                        .unwrap_or_default();
                    format!("{} {}{shape}", p.parent_ref.name, show(&p.conditions))
                })
                .collect();
            return Err(format!(
                "{kind} {route}: no Accepted parent entry for Gateway {}; entries: {seen:?}",
                c.gateway
            ));
        }
    }
    let s = status(ctx, "Gateway", &c.gateway)?;
    for l in &s.listeners {
        let what = format!("Gateway {} listener {}", c.gateway, l.name);
        for kind in ["ResolvedRefs", "Accepted", "Programmed"] {
            require(&what, &l.conditions, &cond(kind, "True", ""))?;
        }
    }
    Ok(())
}

/// HTTPRouteMustHaveCondition.
fn route_condition(ctx: &Ctx<'_>, c: &RouteConditionCheck) -> Outcome {
    let want = cond(&c.kind, &c.status, &c.reason);
    let kind = c.route_kind.as_deref().unwrap_or("HTTPRoute");
    parent_condition(ctx, (kind, &c.route), &c.gateway, &want)
}

/// BackendTLSPolicyMustHaveCondition: the policy's ancestors are the Gateways whose routes use
/// the Service it targets.
fn policy_condition(ctx: &Ctx<'_>, c: &PolicyConditionCheck) -> Outcome {
    let want = cond(&c.kind, &c.status, &c.reason);
    parent_condition(ctx, ("BackendTLSPolicy", &c.policy), &c.gateway, &want)
}

/// Every parent (or ancestor) entry of the object carries its generation, and some entry for the
/// Gateway (namespace equal or omitted) has the condition.
fn parent_condition(
    ctx: &Ctx<'_>,
    (kind, id): (&str, &str),
    gateway: &str,
    want: &CondExpect,
) -> Outcome {
    let (gw_ns, gw_name) = split(gateway)?;
    let s = status(ctx, kind, id)?;
    let generation = generation(ctx, kind, id)?;
    let mut seen = Vec::new();
    let mut found = false;
    for (i, p) in s.parents.iter().enumerate() {
        at_generation(
            &format!("{kind} {id} parent {i}"),
            &p.conditions,
            generation,
        )?;
        if refers_to(p, gw_ns, gw_name, false) {
            found |= has(&p.conditions, want);
            seen.push(show(&p.conditions));
        }
    }
    if found {
        Ok(())
    } else {
        Err(format!(
            "{kind} {id}: no parent entry for {gateway} has {}={} ({}); entries for it: {seen:?}",
            want.kind, want.status, want.reason
        ))
    }
}

/// HTTPRouteMustHaveParents (v1.6): every expected entry is among the route's parent entries
/// (order free, extra entries allowed), and every entry carries the route's generation.
fn route_parents(ctx: &Ctx<'_>, c: &RouteParentsCheck) -> Outcome {
    let s = status(ctx, "HTTPRoute", &c.route)?;
    let generation = generation(ctx, "HTTPRoute", &c.route)?;
    for (i, p) in s.parents.iter().enumerate() {
        at_generation(
            &format!("HTTPRoute {} parent {i}", c.route),
            &p.conditions,
            generation,
        )?;
    }
    for want in &c.parents {
        let kind = want.kind.as_deref().unwrap_or("Gateway");
        if !s.parents.iter().any(|p| {
            parent_matches(
                p,
                (kind, &want.gateway),
                c.namespace_required,
                &want.conditions,
            )
        }) {
            let seen: Vec<String> = s
                .parents
                .iter()
                .map(|p| {
                    let shape = parent_shape("", p, (kind, &want.gateway), c.namespace_required)
                        .err()
                        .unwrap_or_default();
                    format!("{} {}{shape}", p.parent_ref.name, show(&p.conditions))
                })
                .collect();
            return Err(format!(
                "HTTPRoute {}: no parent entry for {} with {:?}; entries: {seen:?}",
                c.route,
                want.gateway,
                want.conditions
                    .iter()
                    .map(|w| format!("{}={} ({})", w.kind, w.status, w.reason))
                    .collect::<Vec<_>>()
            ));
        }
    }
    Ok(())
}

/// HTTPRouteMustHaveNoAcceptedParents: no entries, or one entry that is not Accepted.
fn no_accepted_parents(ctx: &Ctx<'_>, route: &str) -> Outcome {
    let (ns, name) = split(route)?;
    let Some(s) = ctx.report.find("HTTPRoute", ns, name) else {
        return Ok(());
    };
    match s.parents.as_slice() {
        [] => Ok(()),
        [p] => {
            let what = format!("HTTPRoute {route}");
            at_generation(&what, &p.conditions, generation(ctx, "HTTPRoute", route)?)?;
            require(&what, &p.conditions, &cond("Accepted", "False", ""))
        }
        many => Err(format!(
            "HTTPRoute {route}: {} parent entries, want at most one",
            many.len()
        )),
    }
}

/// GatewayMustHaveZeroRoutes.
/// WaitForGatewayAddress: the first `status.addresses` entry is an IP, and the listener's port
/// is served on it.
fn gateway_address(ctx: &Ctx<'_>, which: &str) -> Outcome {
    let (gateway, listener) = which
        .rsplit_once('/')
        .ok_or_else(|| format!("{which:?} is not namespace/gateway/listener"))?;
    let s = status(ctx, "Gateway", gateway)?;
    let a = s
        .addresses
        .first()
        .ok_or_else(|| format!("Gateway {gateway} has no status.addresses"))?;
    let ip: std::net::IpAddr = a
        .value
        .parse()
        .map_err(|_| format!("status address {:?} is not an IP", a.value))?;
    if a.kind != "IPAddress" {
        return Err(format!("status address type {:?}, want IPAddress", a.kind));
    }
    let port = listener_port(ctx.world, gateway, listener)
        .ok_or_else(|| format!("Gateway {gateway} has no listener {listener}"))?;
    let (ns, name) = split(gateway)?;
    let bound = ctx
        .gateway
        .bound_addr(&NsName::new(ns, name), port)
        .ok_or_else(|| format!("Gateway {gateway} port {port} is not bound"))?;
    if bound.ip() != ip {
        return Err(format!("listener bound on {bound}, status says {ip}"));
    }
    Ok(())
}

fn zero_routes(ctx: &Ctx<'_>, gateway: &str) -> Outcome {
    let s = status(ctx, "Gateway", gateway)?;
    at_generation(
        &format!("Gateway {gateway}"),
        &s.conditions,
        generation(ctx, "Gateway", gateway)?,
    )?;
    match s.listeners.as_slice() {
        [] => Ok(()),
        [l] if l.attached_routes == 0 => Ok(()),
        ls => Err(format!(
            "Gateway {gateway}: want no listeners or one with 0 routes, have {:?}",
            ls.iter()
                .map(|l| (l.name.as_str(), l.attached_routes))
                .collect::<Vec<_>>()
        )),
    }
}

/// GatewayStatusMustHaveListeners.
fn listeners(ctx: &Ctx<'_>, c: &ListenersCheck) -> Outcome {
    let s = status(ctx, "Gateway", &c.gateway)?;
    at_generation(
        &format!("Gateway {}", c.gateway),
        &s.conditions,
        generation(ctx, "Gateway", &c.gateway)?,
    )?;
    if s.listeners.len() != c.listeners.len() {
        return Err(format!(
            "Gateway {}: {} listener statuses {:?}, want {}",
            c.gateway,
            s.listeners.len(),
            s.listeners.iter().map(|l| &l.name).collect::<Vec<_>>(),
            c.listeners.len()
        ));
    }
    for want in &c.listeners {
        let what = format!("Gateway {} listener {}", c.gateway, want.name);
        let l = s
            .listeners
            .iter()
            .find(|l| l.name == want.name)
            .ok_or_else(|| format!("{what}: no status"))?;
        if want.supported_kinds.is_empty() && !l.supported_kinds.is_empty() {
            return Err(format!(
                "{what}: supportedKinds {:?}, want none",
                l.supported_kinds
            ));
        }
        for k in &want.supported_kinds {
            if !l.supported_kinds.contains(k) {
                return Err(format!(
                    "{what}: supportedKinds {:?} lacks {k}",
                    l.supported_kinds
                ));
            }
        }
        if l.attached_routes != want.attached_routes {
            return Err(format!(
                "{what}: attachedRoutes {}, want {}",
                l.attached_routes, want.attached_routes
            ));
        }
        for w in &want.conditions {
            require(&what, &l.conditions, w)?;
        }
    }
    Ok(())
}

/// GatewayMustHaveCondition.
fn gateway_condition(ctx: &Ctx<'_>, c: &GatewayConditionCheck) -> Outcome {
    let s = status(ctx, "Gateway", &c.gateway)?;
    let what = format!("Gateway {}", c.gateway);
    at_generation(
        &what,
        &s.conditions,
        generation(ctx, "Gateway", &c.gateway)?,
    )?;
    require(&what, &s.conditions, &cond(&c.kind, &c.status, &c.reason))
}

/// GatewayMustHaveLatestConditions, HTTPRouteMustHaveLatestConditions,
/// GatewayClassMustHaveLatestConditions and BackendTLSPolicyMustHaveLatestConditions (which
/// reads the ancestor entries; here at least one must exist).
fn latest(ctx: &Ctx<'_>, c: &ObjectRef) -> Outcome {
    let s = status(ctx, &c.kind, &c.name)?;
    let generation = generation(ctx, &c.kind, &c.name)?;
    let what = format!("{} {}", c.kind, c.name);
    match c.kind.as_str() {
        "HTTPRoute" | "GRPCRoute" | "BackendTLSPolicy" => {
            if s.parents.is_empty() {
                return Err(format!("{what}: no parent entries"));
            }
            for p in &s.parents {
                at_generation(&what, &p.conditions, generation)?;
            }
            Ok(())
        }
        "Gateway" | "GatewayClass" => {
            if s.conditions.0.is_empty() {
                return Err(format!("{what}: no conditions"));
            }
            at_generation(&what, &s.conditions, generation)
        }
        other => Err(format!("latest: unsupported kind {other}")),
    }
}

/// GWCMustHaveAcceptedConditionAny / GWCMustHaveAcceptedConditionTrue.
fn class_accepted(ctx: &Ctx<'_>, c: &ClassAcceptedCheck) -> Outcome {
    let s = status(ctx, "GatewayClass", &c.name)?;
    let what = format!("GatewayClass {}", c.name);
    at_generation(
        &what,
        &s.conditions,
        generation(ctx, "GatewayClass", &c.name)?,
    )?;
    require(&what, &s.conditions, &cond("Accepted", &c.status, ""))
}
