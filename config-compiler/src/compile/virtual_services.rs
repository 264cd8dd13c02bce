//! VirtualService ([VS-1]..[VS-11]) at the waypoint: a Service or ServiceEntry port that no
//! HTTPRoute/GRPCRoute is attached to takes the `http` routes of the first VirtualService
//! (oldest, then namespace/name) whose `hosts` name it and whose `gateways` include `mesh`
//! (or are empty). Routes keep their written order: the first match wins. The binding to
//! Gateways is in `vs_gateways`; both share `vs_matches` and `vs_actions`.

use super::World;
use super::clusters::ClusterSet;
use super::vs_actions::compile_action;
use super::vs_matches::compile_match;
use crate::resources::virtual_service::HttpMatch;
use crate::resources::{NsName, Resources, Sourced, VirtualService};
use crate::route_table::{RouteEntry, RouteId, RouteTable, RuleAction, VirtualHost};
use crate::snapshot::{GatewayIr, PrecedenceNote};
use crate::status::{Condition, Conditions, ObjectStatus};
use std::sync::Arc;

/// [VS-1] A VirtualService host as an FQDN pattern: short names (and `name.ns`) live in the
/// VirtualService's namespace.
pub(super) fn expand(host: &str, ns: &str) -> String {
    let h = host.to_ascii_lowercase();
    if h.starts_with('*') {
        return h;
    }
    match h.matches('.').count() {
        0 => format!("{h}.{ns}.svc.cluster.local"),
        1 if !h.ends_with(".local") => format!("{h}.svc.cluster.local"),
        _ => h,
    }
}

/// [VS-1] Whether a VirtualService host names `host`: as expanded in the VirtualService's
/// namespace or, when it has a dot, as written (as Istio takes it), so that a two-label name
/// that is not `name.ns`, like a ServiceEntry's `httpbin.example`, still names itself.
fn names(vs_host: &str, ns: &str, host: &str) -> bool {
    host_matches(&expand(vs_host, ns), host)
        || (vs_host.contains('.') && host_matches(&vs_host.to_ascii_lowercase(), host))
}

fn host_matches(pattern: &str, host: &str) -> bool {
    pattern == "*"
        || pattern == host
        || pattern
            .strip_prefix('*')
            .is_some_and(|suffix| host.ends_with(suffix))
}

/// The VirtualServices in precedence order (oldest, then namespace/name) and what happened to
/// each, gathered over the gateway and waypoint passes and reported once.
pub(super) struct VsBook<'a> {
    /// VirtualServices in precedence order.
    pub order: Vec<&'a Sourced<VirtualService>>,
    /// Field-named problems per VirtualService.
    pub problems: Vec<Vec<String>>,
    /// Whether each was applied somewhere.
    pub used: Vec<bool>,
    /// Where Gateway API routes took precedence over each (not an error: reported).
    pub overridden: Vec<Vec<String>>,
    /// The same, for `/config_dump`.
    pub notes: Vec<PrecedenceNote>,
}

impl<'a> VsBook<'a> {
    /// Every VirtualService, oldest first, each validated whether or not it binds anywhere
    /// (so `waygate check` names a bad field of one that is not used here).
    pub(super) fn new(r: &'a Resources, world: &World<'_>) -> Self {
        let mut order: Vec<&Sourced<VirtualService>> = r.virtual_services.iter().collect();
        order.sort_by(|a, b| {
            let key = |v: &Sourced<VirtualService>| {
                let m = &v.object.metadata;
                (
                    m.creation_timestamp.clone().unwrap_or_default(),
                    m.namespace().to_string(),
                    m.name.clone(),
                )
            };
            key(a).cmp(&key(b))
        });
        let mut scratch = ClusterSet::default();
        let problems = order
            .iter()
            .map(|v| {
                let mut problems = Vec::new();
                let ns = v.object.metadata.namespace();
                for (i, h) in v.object.spec.http.iter().enumerate() {
                    for (j, m) in h.matches.iter().enumerate() {
                        if let Err(e) = compile_match(m) {
                            problems.push(format!("spec.http[{i}].match[{j}]{e}"));
                        }
                    }
                    if let Err(e) = compile_action(h, None, ns, 0, world, &mut scratch) {
                        problems.push(format!("spec.http[{i}]{e}"));
                    }
                }
                let spec = &v.object.spec;
                for (field, routes) in [("tcp", spec.tcp.len()), ("tls", spec.tls.len())] {
                    if routes > 0 {
                        problems.push(format!(
                            "spec.{field}: not supported ({field} routes are ignored)"
                        ));
                    }
                }
                problems.extend(unknown_subsets(&v.object, world));
                problems
            })
            .collect();
        let n = order.len();
        Self {
            order,
            problems,
            used: vec![false; n],
            overridden: vec![Vec::new(); n],
            notes: Vec::new(),
        }
    }

    /// [VS-11] Record that routes `applied` serve `host` at `at` instead of VirtualService `i`.
    pub(super) fn set_aside(&mut self, i: usize, host: &str, at: String, applied: Vec<String>) {
        let m = &self.order[i].object.metadata;
        self.overridden[i].push(format!(
            "not applied to {host} at {at}: {} serve it and take precedence",
            applied.join(", ")
        ));
        self.notes.push(PrecedenceNote {
            host: host.to_string(),
            at,
            applied,
            ignored: format!("{}/{}", m.namespace(), m.name),
        });
    }

    /// One status per VirtualService: Accepted=False naming the first problem's field.
    pub(super) fn statuses(self, statuses: &mut Vec<ObjectStatus>) {
        for (i, v) in self.order.iter().enumerate() {
            let m = &v.object.metadata;
            let mut s = ObjectStatus::new("VirtualService", m.namespace(), &m.name);
            s.source = Some(v.source.to_string());
            let mut c = Conditions::default();
            let mut problems: Vec<&String> = Vec::new();
            for p in &self.problems[i] {
                if !problems.contains(&p) {
                    problems.push(p);
                }
            }
            let all = problems
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            let overridden = self.overridden[i].join("; ");
            c.set(match (problems.first(), self.used[i]) {
                (Some(_), _) => Condition::new("Accepted", false, "Invalid", all),
                (None, true) if overridden.is_empty() => {
                    Condition::new("Accepted", true, "Accepted", "applied")
                }
                (None, true) => Condition::new(
                    "Accepted",
                    true,
                    "Accepted",
                    format!("applied; {overridden}"),
                ),
                (None, false) if !overridden.is_empty() => {
                    Condition::new("Accepted", true, "Overridden", overridden)
                }
                (None, false) => Condition::new(
                    "Accepted",
                    true,
                    "NotBound",
                    "no Gateway or waypoint served here carries one of its hosts",
                ),
            });
            c.observe(m.generation);
            s.conditions = c;
            statuses.push(s);
        }
    }
}

/// Attach VirtualServices bound to `mesh` to waypoint services.
pub(super) fn attach(
    book: &mut VsBook<'_>,
    world: &World<'_>,
    gateways: &mut [GatewayIr],
    clusters: &mut ClusterSet,
) {
    for g in gateways.iter_mut() {
        let waypoint = g
            .ports
            .iter()
            .any(|p| p.listeners.iter().any(|l| l.protocol == "HBONE"));
        if !waypoint {
            continue;
        }
        for m in g.mesh.iter_mut().filter(|m| m.pinned.is_none()) {
            let host = m.host.to_ascii_lowercase();
            let Some(i) = book.order.iter().position(|v| {
                let vs = &v.object;
                let ns = vs.metadata.namespace();
                binds_mesh(&vs.spec.gateways) && vs.spec.hosts.iter().any(|h| names(h, ns, &host))
            }) else {
                continue;
            };
            // [VS-11] Gateway API routes attached to the service win.
            if m.routes.is_some() || !m.consumer_routes.is_empty() {
                let tables = m
                    .routes
                    .iter()
                    .chain(m.consumer_routes.iter().map(|c| &c.routes));
                let at = format!("waypoint {}/{} port {}", g.namespace, g.name, m.port);
                book.set_aside(i, &m.host, at, route_names(tables));
                continue;
            }
            book.used[i] = true;
            let entries = entries_for(
                book.order[i],
                0,
                &Binding::Mesh,
                m.port,
                world,
                clusters,
                &mut book.problems[i],
            );
            m.routes = Some(RouteTable::new(vec![VirtualHost::new("*".into(), entries)]));
        }
    }
}

/// `<Kind> <ns>/<name>` of every route in some tables, each once, in order.
pub(super) fn route_names<'t>(tables: impl Iterator<Item = &'t RouteTable>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in tables {
        for e in t.virtual_hosts.iter().flat_map(|v| &v.entries) {
            let name = format!("{} {}/{}", e.id.kind, e.id.namespace, e.id.name);
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// [VS-1] Empty `gateways` means `mesh`.
fn binds_mesh(gateways: &[String]) -> bool {
    gateways.is_empty() || gateways.iter().any(|g| g == "mesh")
}

/// Where a VirtualService's routes are being installed: match-level `gateways` ([VS-3]) choose
/// which of its matches apply there.
pub(super) enum Binding<'a> {
    /// A waypoint.
    Mesh,
    /// An ingress or egress Gateway, by namespace/name.
    Gateway(&'a NsName),
}

impl Binding<'_> {
    /// Whether a `gateways` list (VS-level or match-level, in namespace `ns`) names this place.
    pub(super) fn named_by(&self, gateways: &[String], ns: &str) -> bool {
        match self {
            Binding::Mesh => binds_mesh(gateways),
            Binding::Gateway(id) => gateways.iter().any(|g| names_gateway(g, ns, id)),
        }
    }
}

/// `ns/name` or `name` (the VirtualService's namespace) naming a Gateway; Istio's generated
/// name for a Kubernetes Gateway (`<name>-istio-autogenerated-k8s-gateway`) is accepted too.
fn names_gateway(reference: &str, vs_ns: &str, id: &NsName) -> bool {
    let (ns, name) = reference.split_once('/').unwrap_or((vs_ns, reference));
    let name = name
        .strip_suffix("-istio-autogenerated-k8s-gateway")
        .unwrap_or(name);
    ns == id.namespace && name == id.name
}

/// The route entries of one VirtualService for one service port, in written order.
pub(super) fn entries_for(
    v: &Sourced<VirtualService>,
    rank: u32,
    binding: &Binding<'_>,
    request_port: u16,
    world: &World<'_>,
    clusters: &mut ClusterSet,
    problems: &mut Vec<String>,
) -> Vec<RouteEntry> {
    let vs = &v.object;
    let meta = &vs.metadata;
    let mut out = Vec::new();
    for (i, h) in vs.spec.http.iter().enumerate() {
        let at = format!("spec.http[{i}]");
        let catch_all = [HttpMatch::default()];
        let matches: &[HttpMatch] = if h.matches.is_empty() {
            &catch_all
        } else {
            &h.matches
        };
        for (j, m) in matches.iter().enumerate() {
            if m.port.is_some_and(|p| p != request_port)
                || (!m.gateways.is_empty() && !binding.named_by(&m.gateways, meta.namespace()))
            {
                continue;
            }
            // [VS-3] `sourceNamespace` names the workloads a match applies to (Istio ignores it
            // when the match names `gateways`). At a waypoint those are its callers: checked
            // against the namespace of the caller's verified identity on each request. A
            // Gateway applies it as Istio does for a gateway proxy: to itself, by namespace.
            let source_ns = m
                .source_namespace
                .as_deref()
                .filter(|ns| !ns.is_empty() && m.gateways.is_empty());
            if let (Some(ns), Binding::Gateway(id)) = (source_ns, binding)
                && ns != id.namespace
            {
                continue;
            }
            let mut matcher = match compile_match(m) {
                Ok(x) => x,
                Err(e) => {
                    problems.push(format!("{at}.match[{j}]{e}"));
                    continue;
                }
            };
            if matches!(binding, Binding::Mesh) {
                matcher.source_namespace = source_ns.map(str::to_string);
            }
            let prefix = m.uri.as_ref().and_then(|u| u.prefix.clone());
            let action = compile_action(h, prefix, meta.namespace(), request_port, world, clusters)
                .unwrap_or_else(|e| {
                    problems.push(format!("{at}{e}"));
                    RuleAction::default()
                });
            out.push(RouteEntry {
                id: RouteId {
                    kind: "VirtualService",
                    namespace: meta.namespace().to_string(),
                    name: meta.name.clone(),
                    rule: i,
                    rule_name: h.name.clone(),
                    match_index: j,
                },
                matcher,
                action: Arc::new(action),
                created: meta.creation_timestamp.clone().unwrap_or_default(),
                order: Some(
                    (u64::from(rank) << 32) | ((i as u64 & 0xffff) << 16) | (j as u64 & 0xffff),
                ),
            });
        }
    }
    out
}

/// [DR-1] `subset`s that no DestinationRule for their host defines (requests to them get 503
/// `UH`, as in Istio).
fn unknown_subsets(vs: &VirtualService, world: &World<'_>) -> Vec<String> {
    let ns = vs.metadata.namespace();
    let mut out = Vec::new();
    for (i, h) in vs.spec.http.iter().enumerate() {
        let routes = h.route.iter().enumerate().map(|(k, r)| {
            (
                format!("spec.http[{i}].route[{k}].destination"),
                &r.destination,
            )
        });
        let mirror = h
            .mirror
            .iter()
            .map(|m| (format!("spec.http[{i}].mirror"), m))
            .chain(h.mirrors.iter().enumerate().map(|(k, m)| {
                (
                    format!("spec.http[{i}].mirrors[{k}].destination"),
                    &m.destination,
                )
            }));
        for (at, d) in routes.chain(mirror) {
            let Some(name) = d.subset.as_deref() else {
                continue;
            };
            let (fqdn, home) = match super::service_entries::by_host(world, &d.host, ns) {
                Some(e) => (
                    d.host.to_ascii_lowercase(),
                    e.metadata.namespace().to_string(),
                ),
                None => {
                    let fqdn = expand(&d.host, ns);
                    let home = fqdn
                        .strip_suffix(".svc.cluster.local")
                        .and_then(|s| s.split_once('.'))
                        .map(|(_, n)| n.to_string())
                        .unwrap_or_default();
                    (fqdn, home)
                }
            };
            let defined = super::destination_rules::for_host(world, &fqdn, &home, &[])
                .is_some_and(|dr| dr.object.subset(name).is_some());
            if !defined {
                out.push(format!(
                    "{at}.subset: {name:?} is not defined by a DestinationRule for {fqdn}; requests to it get 503 (no healthy upstream)"
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_expand_in_the_virtual_services_namespace_vs_1() {
        assert_eq!(expand("reviews", "x"), "reviews.x.svc.cluster.local");
        assert_eq!(expand("reviews.y", "x"), "reviews.y.svc.cluster.local");
        assert_eq!(expand("Api.Example.com", "x"), "api.example.com");
        assert!(host_matches(
            &expand("*.example.com", "x"),
            "api.example.com"
        ));
        assert!(!host_matches(
            "reviews.x.svc.cluster.local",
            "reviews.y.svc.cluster.local"
        ));
    }

    #[test]
    fn gateway_references_name_a_gateway_or_mesh() {
        let id = NsName::new("infra", "gw");
        let at = Binding::Gateway(&id);
        assert!(at.named_by(&["infra/gw".into()], "apps"));
        assert!(at.named_by(&["gw".into()], "infra"));
        assert!(!at.named_by(&["gw".into()], "apps"));
        assert!(at.named_by(&["infra/gw-istio-autogenerated-k8s-gateway".into()], "apps"));
        assert!(!at.named_by(&[], "infra"));
        assert!(!at.named_by(&["mesh".into()], "infra"));
        assert!(Binding::Mesh.named_by(&[], "apps"));
        assert!(Binding::Mesh.named_by(&["infra/gw".into(), "mesh".into()], "apps"));
        assert!(!Binding::Mesh.named_by(&["infra/gw".into()], "apps"));
    }

    #[test]
    fn a_two_label_service_entry_host_names_itself_vs_1() {
        // `httpbin.example` could be `name.ns`; it still names the ServiceEntry host.
        assert!(names("httpbin.example", "egress", "httpbin.example"));
        assert!(names(
            "httpbin.example",
            "egress",
            "httpbin.example.svc.cluster.local"
        ));
        assert!(names("reviews", "x", "reviews.x.svc.cluster.local"));
        assert!(!names("reviews", "x", "reviews"));
        assert!(!names("httpbin.example", "egress", "other.example"));
    }
}
