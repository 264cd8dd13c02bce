//! `compile(&Resources) -> (Snapshot, StatusReport)`: validation, reference resolution, status
//! conditions and the indexed Snapshot. Pure: no I/O, no clock.

mod authz;
#[cfg(test)]
mod authz_table;
mod backend_tls;
mod clusters;
mod destination_rules;
mod filters;
mod gateways;
mod grpc;
mod kind_conflicts;
mod listener_sets;
mod mesh;
mod mesh_routes;
mod routes;
mod rules;
mod service_entries;
mod service_entry_checks;
mod service_entry_workloads;
mod tls;
mod traffic_policy;
mod virtual_services;
mod vs_actions;
mod vs_gateways;
mod vs_matches;

use crate::resources::core::SERVICE_NAME_LABEL;
use crate::resources::{
    ConfigMap, EndpointSlice, NsName, Pod, ReferenceGrant, Resources, Secret, Service, ServiceEntry,
};
use crate::snapshot::Snapshot;
use crate::status::StatusReport;
use std::collections::{BTreeMap, HashMap};

pub use gateways::{ISTIO_CLASSES, ISTIO_CONTROLLERS};

/// The controller name written into route parent status.
pub const CONTROLLER_NAME: &str = "istio.io/gateway-controller";

/// The Gateway API group.
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

/// What to compile.
#[derive(Debug, Clone, Default)]
pub struct CompileOptions {
    /// Gateways to serve; empty means every Gateway of an Istio class ([GC-2]).
    pub gateways: Vec<NsName>,
}

/// Compile loaded resources into a Snapshot plus the status of every object we handle.
pub fn compile(resources: &Resources, options: &CompileOptions) -> (Snapshot, StatusReport) {
    let world = World::new(resources);
    let mut report = StatusReport {
        warnings: resources.skipped.clone(),
        ..Default::default()
    };
    let mut clusters = clusters::ClusterSet::default();

    report.objects.extend(gateways::class_status(resources));
    let mut gws = gateways::compile_gateways(resources, options, &world, &mut report);
    listener_sets::merge_listener_sets(resources, &world, &mut gws);
    let mut route_status = routes::attach_routes(resources, &world, &mut gws, &mut clusters);
    kind_conflicts::resolve(&mut gws, &mut route_status);
    let mut vs_book = virtual_services::VsBook::new(resources, &world);
    vs_gateways::attach(&mut vs_book, &world, &mut gws, &mut clusters);

    let mut snapshot = Snapshot::default();
    for gw in gws {
        let mesh = resources
            .gateways
            .iter()
            .find(|g| g.object.metadata.ns_name() == gw.id)
            .map(|g| mesh::services_of(resources, &world, &g.object, &mut clusters))
            .unwrap_or_default();
        let (status, sets, mut ir) = gw.finish();
        ir.mesh = mesh;
        report.objects.push(status);
        report.objects.extend(sets);
        if !ir.ports.is_empty() {
            snapshot.gateways.push(ir);
        }
    }
    mesh_routes::attach_service_routes(
        resources,
        &world,
        &mut snapshot.gateways,
        &mut clusters,
        &mut route_status,
    );
    virtual_services::attach(&mut vs_book, &world, &mut snapshot.gateways, &mut clusters);
    snapshot.precedence = std::mem::take(&mut vs_book.notes);
    vs_book.statuses(&mut route_status);
    report.objects.extend(route_status);
    let (policies, policy_status) = authz::compile_all(resources);
    report.objects.extend(policy_status);
    authz::attach(&policies, &mut snapshot.gateways, |g| {
        world
            .gateway(&g.namespace, &g.name)
            .map(|gw| gw.spec.gateway_class_name.clone())
    });
    record_users(&snapshot, &mut clusters);
    let users = clusters.users();
    let (mut tls, policy_status) =
        backend_tls::resolve(resources, &world, &users, &mut report.warnings);
    report.objects.extend(policy_status);
    report.objects.extend(service_entries::statuses(&world));
    report
        .objects
        .extend(destination_rules::statuses(&world, &mut report.warnings));
    report
        .warnings
        .extend(mesh::binding_warnings(resources, &world));
    snapshot.clusters = clusters.finish(&world, &mut report.warnings);
    for (i, c) in snapshot.clusters.iter_mut().enumerate() {
        match tls.remove(&i) {
            Some(Ok(t)) => c.tls = Some(t),
            Some(Err(e)) => c.tls_error = Some(e),
            None => {}
        }
    }
    (snapshot, report)
}

/// [DR-1] Which Gateways (the proxies, by namespace) send to each cluster, from every route
/// and default mesh routing in the Snapshot: DestinationRule lookup and `exportTo` depend on it.
fn record_users(snapshot: &Snapshot, clusters: &mut clusters::ClusterSet) {
    use crate::route_table::{BackendTarget, RouteTable};
    use waygate_filters::Filter;
    let record = |t: &RouteTable, gw: &NsName, clusters: &mut clusters::ClusterSet| {
        for e in t.virtual_hosts.iter().flat_map(|v| &v.entries) {
            let mirrors = e.action.filters.iter().filter_map(|f| match f {
                Filter::RequestMirror(m) => Some(m.cluster),
                _ => None,
            });
            let backends = e.action.backends.iter().flat_map(|b| {
                let own = match &b.target {
                    BackendTarget::Cluster { index, .. } => Some(*index),
                    _ => None,
                };
                own.into_iter()
                    .chain(b.filters.iter().filter_map(|f| match f {
                        Filter::RequestMirror(m) => Some(m.cluster),
                        _ => None,
                    }))
            });
            for index in mirrors.chain(backends) {
                clusters.used_by(index, gw);
            }
        }
    };
    for g in &snapshot.gateways {
        let gw = NsName::new(&g.namespace, &g.name);
        for l in g.ports.iter().flat_map(|p| &p.listeners) {
            record(&l.routes, &gw, clusters);
        }
        for m in &g.mesh {
            clusters.used_by(m.cluster, &gw);
            for t in m
                .routes
                .iter()
                .chain(m.consumer_routes.iter().map(|c| &c.routes))
            {
                record(t, &gw, clusters);
            }
        }
    }
}

/// Lookups over the input that compilation needs repeatedly.
pub(crate) struct World<'a> {
    namespace_labels: HashMap<&'a str, &'a BTreeMap<String, String>>,
    services: HashMap<(&'a str, &'a str), &'a Service>,
    slices: HashMap<(&'a str, &'a str), Vec<&'a EndpointSlice>>,
    grants: HashMap<&'a str, Vec<&'a ReferenceGrant>>,
    secrets: HashMap<(&'a str, &'a str), &'a Secret>,
    config_maps: HashMap<(&'a str, &'a str), &'a ConfigMap>,
    service_entries: &'a [crate::resources::Sourced<ServiceEntry>],
    /// ServiceEntries Istio's validation refuses: reported, never served.
    invalid_entries: std::collections::HashSet<NsName>,
    workload_entries: &'a [crate::resources::Sourced<crate::resources::WorkloadEntry>],
    destination_rules: &'a [crate::resources::Sourced<crate::resources::DestinationRule>],
    pods: HashMap<(&'a str, &'a str), &'a Pod>,
    gateways: HashMap<(&'a str, &'a str), &'a crate::resources::Gateway>,
    /// (route kind, route) → the Services its parentRefs name (GEP-1294).
    service_parents: HashMap<(&'static str, NsName), Vec<NsName>>,
    pods_by_ip: HashMap<std::net::IpAddr, &'a Pod>,
    /// Addresses allocated to ServiceEntry hosts that have none ([HB-W4]).
    entry_vips: BTreeMap<(NsName, String), std::net::IpAddr>,
}

impl<'a> World<'a> {
    pub(crate) fn new(r: &'a Resources) -> Self {
        let mut slices: HashMap<_, Vec<_>> = HashMap::new();
        for s in &r.endpoint_slices {
            if let Some(svc) = s.object.metadata.labels.get(SERVICE_NAME_LABEL) {
                slices
                    .entry((s.object.metadata.namespace(), svc.as_str()))
                    .or_default()
                    .push(&s.object);
            }
        }
        let mut grants: HashMap<_, Vec<_>> = HashMap::new();
        for g in &r.reference_grants {
            grants
                .entry(g.object.metadata.namespace())
                .or_default()
                .push(&g.object);
        }
        Self {
            namespace_labels: r
                .namespaces
                .iter()
                .map(|n| (n.object.metadata.name.as_str(), &n.object.metadata.labels))
                .collect(),
            services: r
                .services
                .iter()
                .map(|s| {
                    let m = &s.object.metadata;
                    ((m.namespace(), m.name.as_str()), &s.object)
                })
                .collect(),
            slices,
            grants,
            secrets: r
                .secrets
                .iter()
                .map(|s| {
                    let m = &s.object.metadata;
                    ((m.namespace(), m.name.as_str()), &s.object)
                })
                .collect(),
            config_maps: r
                .config_maps
                .iter()
                .map(|c| {
                    let m = &c.object.metadata;
                    ((m.namespace(), m.name.as_str()), &c.object)
                })
                .collect(),
            service_entries: &r.service_entries,
            invalid_entries: r
                .service_entries
                .iter()
                .filter(|e| !service_entry_checks::validate(&e.object).is_empty())
                .map(|e| e.object.metadata.ns_name())
                .collect(),
            workload_entries: &r.workload_entries,
            destination_rules: &r.destination_rules,
            service_parents: service_parents(r),
            gateways: r
                .gateways
                .iter()
                .map(|g| {
                    let m = &g.object.metadata;
                    ((m.namespace(), m.name.as_str()), &g.object)
                })
                .collect(),
            pods: r
                .pods
                .iter()
                .map(|p| {
                    let m = &p.object.metadata;
                    ((m.namespace(), m.name.as_str()), &p.object)
                })
                .collect(),
            pods_by_ip: r
                .pods
                .iter()
                .flat_map(|p| {
                    let s = &p.object.status;
                    s.pod_ip
                        .iter()
                        .chain(s.pod_ips.iter().map(|i| &i.ip))
                        .filter_map(|ip| ip.parse().ok())
                        .map(move |ip| (ip, &p.object))
                })
                .collect(),
            entry_vips: service_entries::allocate(&r.service_entries),
        }
    }

    pub(crate) fn secret(&self, ns: &str, name: &str) -> Option<&'a Secret> {
        self.secrets.get(&(ns, name)).copied()
    }

    pub(crate) fn config_map(&self, ns: &str, name: &str) -> Option<&'a ConfigMap> {
        self.config_maps.get(&(ns, name)).copied()
    }

    /// A namespace's labels, including the `kubernetes.io/metadata.name` label Kubernetes adds.
    pub(crate) fn namespace_labels(&self, ns: &str) -> BTreeMap<String, String> {
        let mut labels = self
            .namespace_labels
            .get(ns)
            .map(|l| (*l).clone())
            .unwrap_or_default();
        labels.insert("kubernetes.io/metadata.name".into(), ns.to_string());
        labels
    }

    pub(crate) fn service(&self, ns: &str, name: &str) -> Option<&'a Service> {
        self.services.get(&(ns, name)).copied()
    }

    /// The Pods of a namespace.
    pub(crate) fn pods_in(&self, ns: &str) -> impl Iterator<Item = &'a Pod> + use<'a, '_> {
        let ns = ns.to_string();
        self.pods
            .iter()
            .filter(move |((n, _), _)| *n == ns)
            .map(|(_, p)| *p)
    }

    /// The WorkloadEntries of a namespace, in namespace/name order.
    pub(crate) fn workload_entries_in(
        &self,
        ns: &str,
    ) -> impl Iterator<Item = &'a crate::resources::WorkloadEntry> + use<'a, '_> {
        let ns = ns.to_string();
        self.workload_entries
            .iter()
            .map(|w| &w.object)
            .filter(move |w| w.metadata.namespace() == ns)
    }

    /// The Pod with this address, if known.
    pub(crate) fn pod_by_ip(&self, ip: std::net::IpAddr) -> Option<&'a Pod> {
        self.pods_by_ip.get(&ip).copied()
    }

    /// The Pod behind an endpoint: its `targetRef`, else the Pod with one of its addresses.
    pub(crate) fn pod_of(
        &self,
        slice_ns: &str,
        ep: &crate::resources::core::EndpointSpec,
    ) -> Option<&'a Pod> {
        if let Some(t) = ep
            .target_ref
            .as_ref()
            .filter(|t| t.kind.as_deref().is_none_or(|k| k == "Pod"))
        {
            let ns = t.namespace.as_deref().unwrap_or(slice_ns);
            return self.pods.get(&(ns, t.name.as_str())).copied();
        }
        ep.addresses
            .iter()
            .filter_map(|a| a.parse::<std::net::IpAddr>().ok())
            .find_map(|ip| self.pods_by_ip.get(&ip).copied())
    }

    /// [GEP-1294] A route may send to a Service it is attached to (a consumer route naming a
    /// Service of another namespace) without a ReferenceGrant.
    pub(crate) fn is_service_parent(&self, route_kind: &str, route: &NsName, svc: &NsName) -> bool {
        let kind = match route_kind {
            "HTTPRoute" => "HTTPRoute",
            "GRPCRoute" => "GRPCRoute",
            _ => return false,
        };
        self.service_parents
            .get(&(kind, route.clone()))
            .is_some_and(|parents| parents.contains(svc))
    }

    pub(crate) fn gateway(&self, ns: &str, name: &str) -> Option<&'a crate::resources::Gateway> {
        self.gateways.get(&(ns, name)).copied()
    }

    pub(crate) fn service_entry(&self, ns: &str, name: &str) -> Option<&'a ServiceEntry> {
        self.service_entries()
            .find(|e| e.metadata.namespace() == ns && e.metadata.name == name)
    }

    /// The valid ServiceEntries, sorted by namespace/name.
    pub(crate) fn service_entries(&self) -> impl Iterator<Item = &'a ServiceEntry> + use<'a, '_> {
        self.service_entries
            .iter()
            .map(|s| &s.object)
            .filter(|e| !self.invalid_entries.contains(&e.metadata.ns_name()))
    }

    /// Every ServiceEntry, valid or not, with the file and document it came from.
    pub(crate) fn sourced_service_entries(
        &self,
    ) -> impl Iterator<Item = &'a crate::resources::Sourced<ServiceEntry>> + use<'a> {
        self.service_entries.iter()
    }

    /// The DestinationRules, sorted by namespace/name.
    pub(crate) fn destination_rules(
        &self,
    ) -> &'a [crate::resources::Sourced<crate::resources::DestinationRule>] {
        self.destination_rules
    }

    /// The address allocated to a ServiceEntry host without `addresses`.
    pub(crate) fn entry_vip(&self, entry: &NsName, host: &str) -> Option<std::net::IpAddr> {
        self.entry_vips
            .get(&(entry.clone(), host.to_string()))
            .copied()
    }

    pub(crate) fn slices(&self, ns: &str, service: &str) -> Vec<&'a EndpointSlice> {
        self.slices.get(&(ns, service)).cloned().unwrap_or_default()
    }

    /// Whether a ReferenceGrant in `to_ns` permits the reference ([RG-1]).
    pub(crate) fn permitted(
        &self,
        from: (&str, &str, &str),
        to_ns: &str,
        to: (&str, &str, &str),
    ) -> bool {
        self.grants
            .get(to_ns)
            .is_some_and(|gs| gs.iter().any(|g| g.permits(from, to)))
    }
}

/// The Services each HTTPRoute and GRPCRoute names as parents.
fn service_parents(r: &Resources) -> HashMap<(&'static str, NsName), Vec<NsName>> {
    let services = |ns: &str, refs: &[crate::resources::http_route::ParentRef]| -> Vec<NsName> {
        refs.iter()
            .filter(|p| p.group.as_deref() == Some("") && p.kind.as_deref() == Some("Service"))
            .map(|p| NsName::new(p.namespace.as_deref().unwrap_or(ns), &p.name))
            .collect()
    };
    let http = r.http_routes.iter().map(|h| {
        let m = &h.object.metadata;
        (
            ("HTTPRoute", m.ns_name()),
            services(m.namespace(), &h.object.spec.parent_refs),
        )
    });
    let grpc = r.grpc_routes.iter().map(|g| {
        let m = &g.object.metadata;
        (
            ("GRPCRoute", m.ns_name()),
            services(m.namespace(), &g.object.spec.parent_refs),
        )
    });
    http.chain(grpc).filter(|(_, v)| !v.is_empty()).collect()
}
