//! Route attachment (HTTPRoute and GRPCRoute): parentRefs to listeners, allowedRoutes, hostname
//! intersection, and the per-parent status ([HR-1], [HR-2], [HR-4], [HS-1], [GW-6], [GR-1]).

use super::clusters::ClusterSet;
use super::gateways::{CompiledGateway, ListenerState};
use super::rules::{CompiledRule, RefProblem, RuleError, compile_rule};
use super::{CONTROLLER_NAME, GATEWAY_GROUP, World};
use crate::hostname;
use crate::resources::http_route::ParentRef;
use crate::resources::{NsName, ObjectMeta, Resources, Source};
use crate::route_table::{BackendTarget, RouteEntry, RouteId};
use crate::status::{Condition, Conditions, ObjectStatus, ParentStatus};

/// Attach every HTTPRoute to the compiled Gateways; returns each route's status.
pub(super) fn attach_routes(
    r: &Resources,
    world: &World<'_>,
    gateways: &mut [CompiledGateway],
    clusters: &mut ClusterSet,
) -> Vec<ObjectStatus> {
    let mut out = Vec::new();
    for route in &r.http_routes {
        let (o, id) = (&route.object, route.object.metadata.ns_name());
        let view = RouteView {
            kind: "HTTPRoute",
            meta: &o.metadata,
            source: &route.source,
            parent_refs: &o.spec.parent_refs,
            hostnames: &o.spec.hostnames,
            rule_names: o.spec.rules.iter().map(|r| r.name.clone()).collect(),
        };
        let mut compile = |i: usize, clusters: &mut ClusterSet, problems: &mut Vec<RefProblem>| {
            compile_rule(
                "HTTPRoute",
                &id,
                i,
                &o.spec.rules[i],
                world,
                clusters,
                problems,
            )
        };
        if let Some(s) = attach_route(&view, &mut compile, world, gateways, clusters) {
            out.push(s);
        }
    }
    for route in &r.grpc_routes {
        let (o, id) = (&route.object, route.object.metadata.ns_name());
        let view = RouteView {
            kind: "GRPCRoute",
            meta: &o.metadata,
            source: &route.source,
            parent_refs: &o.spec.parent_refs,
            hostnames: &o.spec.hostnames,
            rule_names: o.spec.rules.iter().map(|r| r.name.clone()).collect(),
        };
        let mut compile = |i: usize, clusters: &mut ClusterSet, problems: &mut Vec<RefProblem>| {
            super::grpc::compile_grpc_rule(&id, i, &o.spec.rules[i], world, clusters, problems)
        };
        if let Some(s) = attach_route(&view, &mut compile, world, gateways, clusters) {
            out.push(s);
        }
    }
    for route in &r.tls_routes {
        let (o, id) = (&route.object, route.object.metadata.ns_name());
        let view = RouteView {
            kind: "TLSRoute",
            meta: &o.metadata,
            source: &route.source,
            parent_refs: &o.spec.parent_refs,
            hostnames: &o.spec.hostnames,
            rule_names: o.spec.rules.iter().map(|r| r.name.clone()).collect(),
        };
        let mut compile = |i: usize, clusters: &mut ClusterSet, problems: &mut Vec<RefProblem>| {
            // A TLSRoute rule is backends only: compiled as a rule that matches everything.
            let rule = &o.spec.rules[i];
            let as_http = crate::resources::http_route::HttpRouteRule {
                name: rule.name.clone(),
                backend_refs: rule.backend_refs.clone(),
                ..Default::default()
            };
            compile_rule("TLSRoute", &id, i, &as_http, world, clusters, problems)
        };
        if let Some(s) = attach_route(&view, &mut compile, world, gateways, clusters) {
            out.push(s);
        }
    }
    out
}

/// What attachment needs from a route, whatever its kind.
struct RouteView<'a> {
    kind: &'static str,
    meta: &'a ObjectMeta,
    source: &'a Source,
    parent_refs: &'a [ParentRef],
    hostnames: &'a [String],
    rule_names: Vec<Option<String>>,
}

/// Compiles rule `i` of the route.
type RuleCompiler<'c> =
    dyn FnMut(usize, &mut ClusterSet, &mut Vec<RefProblem>) -> Result<CompiledRule, RuleError> + 'c;

fn attach_route(
    route: &RouteView<'_>,
    compile: &mut RuleCompiler<'_>,
    world: &World<'_>,
    gateways: &mut [CompiledGateway],
    clusters: &mut ClusterSet,
) -> Option<ObjectStatus> {
    let meta = route.meta;
    let route_ns = meta.namespace();
    // Only parents that are Gateways we serve (or ListenerSets on them) get status from us.
    let ours: Vec<(usize, Option<NsName>, &ParentRef)> = route
        .parent_refs
        .iter()
        .filter_map(|p| {
            let group = p.group.as_deref().unwrap_or(GATEWAY_GROUP);
            let kind = p.kind.as_deref().unwrap_or("Gateway");
            let ns = p.namespace.as_deref().unwrap_or(route_ns);
            match (group, kind) {
                (GATEWAY_GROUP, "Gateway") => gateways
                    .iter()
                    .position(|g| g.id.namespace == ns && g.id.name == p.name)
                    .map(|i| (i, None, p)),
                // [LS-4] a ListenerSet parent: the listeners of that set on its Gateway.
                (GATEWAY_GROUP, "ListenerSet") => gateways
                    .iter()
                    .position(|g| {
                        g.listener_sets
                            .iter()
                            .any(|s| s.id.namespace == ns && s.id.name == p.name)
                    })
                    .map(|i| (i, Some(NsName::new(ns, &p.name)), p)),
                _ => None,
            }
        })
        .collect();
    if ours.is_empty() {
        return None;
    }

    // Compile the rules once; invalid ones are dropped ([HS-1]).
    let mut problems: Vec<RefProblem> = Vec::new();
    let mut rules: Vec<(usize, CompiledRule)> = Vec::new();
    let mut dropped: Vec<String> = Vec::new();
    let mut drop_reason = "UnsupportedValue";
    for i in 0..route.rule_names.len() {
        match compile(i, clusters, &mut problems) {
            Ok(c) => rules.push((i, c)),
            Err(e) => {
                drop_reason = e.reason;
                dropped.push(e.message);
            }
        }
    }
    let mut invalid_spec: Vec<String> = route
        .hostnames
        .iter()
        .filter_map(|h| hostname::validate(h).err())
        .collect();
    // [HS-2] rule names are unique within a route (the API server's validation would refuse it).
    let mut names: Vec<&str> = route
        .rule_names
        .iter()
        .flatten()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        invalid_spec.push(format!("rule name {:?} is used more than once", w[0]));
    }

    let mut status = ObjectStatus::new(route.kind, route_ns, &meta.name);
    status.source = Some(route.source.to_string());
    for (gi, set, parent) in ours {
        let mut conditions = Conditions::default();
        let accepted = if !invalid_spec.is_empty() {
            Condition::new(
                "Accepted",
                false,
                "UnsupportedValue",
                invalid_spec.join("; "),
            )
        } else if rules.is_empty() && !route.rule_names.is_empty() {
            Condition::new(
                "Accepted",
                false,
                drop_reason,
                format!("No valid rule: {}", dropped.join("; ")),
            )
        } else {
            match attach_to_gateway(
                route,
                parent,
                set.as_ref(),
                &mut gateways[gi],
                world,
                &rules,
            ) {
                Ok(()) => {
                    let gw_id = gateways[gi].id.clone();
                    for (_, rule) in &rules {
                        for b in &rule.action.backends {
                            if let BackendTarget::Cluster { index, .. } = b.target {
                                clusters.used_by(index, &gw_id);
                            }
                        }
                    }
                    Condition::new("Accepted", true, "Accepted", "Route is accepted")
                }
                Err((reason, msg)) => Condition::new("Accepted", false, reason, msg),
            }
        };
        conditions.set(accepted);
        conditions.set(match problems.first() {
            None => Condition::new(
                "ResolvedRefs",
                true,
                "ResolvedRefs",
                "All references resolved",
            ),
            Some(p) => Condition::new("ResolvedRefs", false, p.reason, p.message.clone()),
        });
        if !dropped.is_empty() && !rules.is_empty() {
            conditions.set(Condition::new(
                "PartiallyInvalid",
                true,
                "UnsupportedValue",
                format!("Dropped Rule(s): {}", dropped.join("; ")),
            ));
        }
        conditions.observe(meta.generation);
        let mut parent_ref = parent.clone();
        parent_ref
            .group
            .get_or_insert_with(|| GATEWAY_GROUP.to_string());
        parent_ref.kind.get_or_insert_with(|| "Gateway".to_string());
        status.parents.push(ParentStatus {
            parent_ref,
            controller_name: CONTROLLER_NAME.to_string(),
            conditions,
        });
    }
    Some(status)
}

/// Attach to the listeners of one Gateway that the parentRef selects: the Gateway's own, or those
/// of ListenerSet `set` ([LS-4]); the error is the `Accepted=False` reason and message.
fn attach_to_gateway(
    route: &RouteView<'_>,
    parent: &ParentRef,
    set: Option<&NsName>,
    gw: &mut CompiledGateway,
    world: &World<'_>,
    rules: &[(usize, CompiledRule)],
) -> Result<(), (&'static str, String)> {
    let route_ns = route.meta.namespace();
    let candidates: Vec<usize> = gw
        .listeners
        .iter()
        .enumerate()
        .filter(|(_, l)| l.owner.as_ref() == set)
        .filter(|(_, l)| {
            parent
                .section_name
                .as_ref()
                .is_none_or(|s| *s == l.spec.name)
        })
        .filter(|(_, l)| parent.port.is_none_or(|p| p == l.spec.port))
        .map(|(i, _)| i)
        .collect();
    let parent_name = match set {
        Some(s) => format!("ListenerSet {s}"),
        None => format!("Gateway {}", gw.id),
    };
    if candidates.is_empty() {
        return Err((
            "NoMatchingParent",
            format!("{parent_name} has no listener matching sectionName/port"),
        ));
    }
    let allowed: Vec<usize> = candidates
        .into_iter()
        .filter(|&i| {
            let l = &gw.listeners[i];
            l.allows_kind(route.kind) && namespace_allowed(l, route_ns, world)
        })
        .collect();
    if allowed.is_empty() {
        return Err((
            "NotAllowedByListeners",
            format!("no listener of {parent_name} allows this route"),
        ));
    }
    let mut attached = false;
    for i in allowed {
        let l = &mut gw.listeners[i];
        let effective = effective_hostnames(l.spec.hostname.as_deref(), route.hostnames);
        if effective.is_empty() {
            continue;
        }
        attached = true;
        l.status.attached_routes += 1;
        if !l.programmed {
            continue;
        }
        for host in effective {
            let bucket = l.hosts.entry(host).or_default();
            for (rule_index, rule) in rules {
                for (mi, m) in rule.matches.iter().enumerate() {
                    bucket.push(RouteEntry {
                        id: RouteId {
                            kind: route.kind,
                            namespace: route_ns.to_string(),
                            name: route.meta.name.clone(),
                            rule: *rule_index,
                            rule_name: route.rule_names[*rule_index].clone(),
                            match_index: mi,
                        },
                        matcher: m.clone(),
                        action: rule.action.clone(),
                        created: route.meta.creation_timestamp.clone().unwrap_or_default(),
                        order: None,
                    });
                }
            }
        }
    }
    if attached {
        Ok(())
    } else {
        Err((
            "NoMatchingListenerHostname",
            "no route hostname intersects a listener hostname".into(),
        ))
    }
}

/// [GW-6] allowedRoutes.namespaces; `Same` is the namespace of the Gateway or ListenerSet that
/// declares the listener ([LS-4]).
pub(super) fn namespace_allowed(l: &ListenerState, route_ns: &str, world: &World<'_>) -> bool {
    let ns = l
        .spec
        .allowed_routes
        .as_ref()
        .and_then(|a| a.namespaces.as_ref());
    match ns.and_then(|n| n.from.as_deref()).unwrap_or("Same") {
        "All" => true,
        "Same" => l.namespace == route_ns,
        "Selector" => ns.and_then(|n| n.selector.as_ref()).is_some_and(|sel| {
            sel.matches(&world.namespace_labels(route_ns))
                .unwrap_or(false)
        }),
        _ => false,
    }
}

/// [HR-4] effective hostnames of a route on a listener; `*` stands for "any host".
pub(super) fn effective_hostnames(listener: Option<&str>, route: &[String]) -> Vec<String> {
    let listener = listener.filter(|h| !h.is_empty());
    if route.is_empty() {
        return vec![listener.map_or_else(|| "*".to_string(), str::to_ascii_lowercase)];
    }
    let mut out: Vec<String> = route
        .iter()
        .filter_map(|h| hostname::intersect(listener, h))
        .collect();
    out.sort();
    out.dedup();
    out
}
