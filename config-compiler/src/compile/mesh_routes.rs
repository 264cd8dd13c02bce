//! [HR-1], [HR-3] Routes whose parentRefs name a Service (`group: ""`, `kind: Service`, optional
//! `port`) or a ServiceEntry ([SE-4]) apply to that destination's traffic through its waypoint. Their rules become the bound
//! Service port's route table; each such parent gets `Accepted`/`ResolvedRefs` in the route's
//! status, next to what its Gateway parents report. Route hostnames do not narrow mesh traffic:
//! the Service is the destination.

use super::clusters::ClusterSet;
use super::rules::{CompiledRule, RefProblem, RuleError};
use super::{CONTROLLER_NAME, World};
use crate::resources::http_route::ParentRef;
use crate::resources::{NsName, ObjectMeta, Resources, Source};
use crate::route_table::{RouteEntry, RouteId, RouteTable, VirtualHost};
use crate::snapshot::{ConsumerRoutes, GatewayIr};
use crate::status::{Condition, Conditions, ObjectStatus, ParentStatus};
use std::collections::BTreeMap;

/// Whether a parentRef names a Service.
fn is_service_ref(p: &ParentRef) -> bool {
    p.group.as_deref() == Some("") && p.kind.as_deref() == Some("Service")
}

/// Whether a parentRef names a ServiceEntry ([SE-4]).
fn is_entry_ref(p: &ParentRef) -> bool {
    p.group.as_deref() == Some("networking.istio.io") && p.kind.as_deref() == Some("ServiceEntry")
}

/// Whether a parentRef names a Service or a ServiceEntry: a waypoint-served destination.
fn is_service(p: &ParentRef) -> bool {
    is_service_ref(p) || is_entry_ref(p)
}

/// A route with Service parents, its rules compiled.
struct ServiceRoute<'a> {
    kind: &'static str,
    meta: &'a ObjectMeta,
    source: &'a Source,
    parents: &'a [ParentRef],
    /// (rule index, rule name, compiled rule).
    rules: Vec<(usize, Option<String>, CompiledRule)>,
    problems: Vec<RefProblem>,
}

/// Compile every rule of a route with `compile`, keeping the valid ones.
fn compile_rules<'a, R>(
    kind: &'static str,
    meta: &'a ObjectMeta,
    source: &'a Source,
    parents: &'a [ParentRef],
    rules: &[R],
    name_of: impl Fn(&R) -> Option<String>,
    mut compile: impl FnMut(usize, &R, &mut Vec<RefProblem>) -> Result<CompiledRule, RuleError>,
) -> ServiceRoute<'a> {
    let mut problems = Vec::new();
    let compiled = rules
        .iter()
        .enumerate()
        .filter_map(|(i, r)| Some((i, name_of(r), compile(i, r, &mut problems).ok()?)))
        .collect();
    ServiceRoute {
        kind,
        meta,
        source,
        parents,
        rules: compiled,
        problems,
    }
}

/// Attach Service-parented routes to the waypoints' Service ports and report their status.
pub(super) fn attach_service_routes(
    r: &Resources,
    world: &World<'_>,
    gateways: &mut [GatewayIr],
    clusters: &mut ClusterSet,
    statuses: &mut Vec<ObjectStatus>,
) {
    let mut routes = Vec::new();
    for hr in r
        .http_routes
        .iter()
        .filter(|h| h.object.spec.parent_refs.iter().any(is_service))
    {
        let o = &hr.object;
        let id = o.metadata.ns_name();
        routes.push(compile_rules(
            "HTTPRoute",
            &o.metadata,
            &hr.source,
            &o.spec.parent_refs,
            &o.spec.rules,
            |rule| rule.name.clone(),
            |i, rule, problems| {
                super::rules::compile_rule("HTTPRoute", &id, i, rule, world, clusters, problems)
            },
        ));
    }
    for gr in r
        .grpc_routes
        .iter()
        .filter(|g| g.object.spec.parent_refs.iter().any(is_service))
    {
        let o = &gr.object;
        let id = o.metadata.ns_name();
        routes.push(compile_rules(
            "GRPCRoute",
            &o.metadata,
            &gr.source,
            &o.spec.parent_refs,
            &o.spec.rules,
            |rule| rule.name.clone(),
            |i, rule, problems| {
                super::grpc::compile_grpc_rule(&id, i, rule, world, clusters, problems)
            },
        ));
    }

    // (is an entry, destination, port, consumer namespace) → entries.
    type Key = (bool, NsName, u16, Option<String>);
    let mut tables: BTreeMap<Key, Vec<RouteEntry>> = BTreeMap::new();
    for route in &routes {
        let route_ns = route.meta.namespace();
        let mut parent_status = Vec::new();
        for p in route.parents.iter().filter(|p| is_service(p)) {
            let svc = NsName::new(p.namespace.as_deref().unwrap_or(route_ns), &p.name);
            let entry = is_entry_ref(p);
            let kind = if entry { "ServiceEntry" } else { "Service" };
            let ports: Vec<u16> = gateways
                .iter()
                .flat_map(|g| &g.mesh)
                .filter(|m| m.pinned.is_none() && m.entry == entry)
                .filter(|m| m.service == svc && p.port.is_none_or(|port| port == m.port))
                .map(|m| m.port)
                .collect();
            let exists = if entry {
                world.service_entry(&svc.namespace, &svc.name).is_some()
            } else {
                world.service(&svc.namespace, &svc.name).is_some()
            };
            let mut c = Conditions::default();
            c.set(if !exists {
                Condition::new(
                    "Accepted",
                    false,
                    "NoMatchingParent",
                    format!("{kind} {svc} not found"),
                )
            } else if ports.is_empty() {
                Condition::new(
                    "Accepted",
                    false,
                    "NoMatchingParent",
                    format!(
                        "no waypoint served here carries {kind} {svc} (port {:?})",
                        p.port
                    ),
                )
            } else {
                Condition::new("Accepted", true, "Accepted", "Route is accepted")
            });
            for port in ports {
                let consumer = (route_ns != svc.namespace).then(|| route_ns.to_string());
                let entries = tables
                    .entry((entry, svc.clone(), port, consumer))
                    .or_default();
                entries.extend(entries_of(route));
            }
            c.set(match route.problems.first() {
                None => Condition::new(
                    "ResolvedRefs",
                    true,
                    "ResolvedRefs",
                    "All references resolved",
                ),
                Some(pr) => Condition::new("ResolvedRefs", false, pr.reason, pr.message.clone()),
            });
            c.observe(route.meta.generation);
            parent_status.push(ParentStatus {
                parent_ref: p.clone(),
                controller_name: CONTROLLER_NAME.to_string(),
                conditions: c,
            });
        }
        let existing = statuses
            .iter_mut()
            .find(|s| s.kind == route.kind && s.namespace == route_ns && s.name == route.meta.name);
        match existing {
            Some(s) => s.parents.extend(parent_status),
            None => {
                let mut s = ObjectStatus::new(route.kind, route_ns, &route.meta.name);
                s.source = Some(route.source.to_string());
                s.parents = parent_status;
                statuses.push(s);
            }
        }
    }

    // Workload-addressed entries go to their endpoint; Service routes do not apply to them.
    for m in gateways
        .iter_mut()
        .flat_map(|g| &mut g.mesh)
        .filter(|m| m.pinned.is_none())
    {
        let table =
            |entries: Vec<RouteEntry>| RouteTable::new(vec![VirtualHost::new("*".into(), entries)]);
        let own = (m.entry, m.service.clone(), m.port);
        let theirs = tables
            .range((own.0, own.1.clone(), own.2, None)..)
            .take_while(|((e, s, p, _), _)| (*e, s, *p) == (own.0, &own.1, own.2));
        for ((_, _, _, consumer), entries) in theirs {
            match consumer {
                None => m.routes = Some(table(entries.clone())),
                Some(ns) => m.consumer_routes.push(ConsumerRoutes {
                    namespace: ns.clone(),
                    routes: table(entries.clone()),
                }),
            }
        }
    }
}

/// The route entries of every match of every valid rule.
fn entries_of(route: &ServiceRoute<'_>) -> Vec<RouteEntry> {
    let created = route.meta.creation_timestamp.clone().unwrap_or_default();
    route
        .rules
        .iter()
        .flat_map(|(rule_index, rule_name, rule)| {
            rule.matches.iter().enumerate().map(|(mi, m)| RouteEntry {
                id: RouteId {
                    kind: route.kind,
                    namespace: route.meta.namespace().to_string(),
                    name: route.meta.name.clone(),
                    rule: *rule_index,
                    rule_name: rule_name.clone(),
                    match_index: mi,
                },
                matcher: m.clone(),
                action: rule.action.clone(),
                created: created.clone(),
                order: None,
            })
        })
        .collect()
}
