//! Upstream clusters: one per referenced Service port, with endpoints from its EndpointSlices,
//! one per referenced ServiceEntry host and port ([SE-2], [SE-3]), and one per referenced
//! DestinationRule subset of either ([DR-1]); each with its DestinationRule traffic policy.

use super::World;
use super::destination_rules;
use crate::resources::NsName;
use crate::resources::core::IntOrString;
use crate::snapshot::{Cluster, MeshEndpoint};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

/// What a cluster sends to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ClusterKey {
    /// A Service port.
    Service(NsName, u16),
    /// One host and port of a ServiceEntry.
    Entry {
        /// The ServiceEntry.
        entry: NsName,
        /// One of its hosts.
        host: String,
        /// One of its port numbers.
        port: u16,
    },
    /// A DestinationRule subset of a Service or ServiceEntry cluster.
    Subset {
        /// The whole cluster.
        base: Box<ClusterKey>,
        /// The subset's name.
        subset: String,
    },
}

/// The host, port and subset a cluster sends to, as DestinationRules name them.
pub(crate) struct Upstream<'k> {
    /// The host's FQDN (lowercase).
    pub fqdn: String,
    /// The namespace the host is defined in.
    pub home_ns: &'k str,
    /// The port.
    pub port: u16,
    /// The subset, if any.
    pub subset: Option<&'k str>,
}

impl ClusterKey {
    /// The whole cluster and the subset, if this is one.
    pub(crate) fn split(&self) -> (&ClusterKey, Option<&str>) {
        match self {
            ClusterKey::Subset { base, subset } => (base.split().0, Some(subset.as_str())),
            k => (k, None),
        }
    }

    /// What DestinationRules know this cluster by.
    pub(crate) fn upstream(&self) -> Upstream<'_> {
        let (base, subset) = self.split();
        let (fqdn, home_ns, port) = match base {
            ClusterKey::Service(svc, port) => (
                format!("{}.{}.svc.cluster.local", svc.name, svc.namespace),
                svc.namespace.as_str(),
                *port,
            ),
            ClusterKey::Entry { entry, host, port } => {
                (host.to_ascii_lowercase(), entry.namespace.as_str(), *port)
            }
            // `split` never returns a subset as the base.
            ClusterKey::Subset { .. } => (String::new(), "", 0),
        };
        Upstream {
            fqdn,
            home_ns,
            port,
            subset,
        }
    }
}

/// Clusters referenced so far, in first-reference order (deterministic for sorted input).
#[derive(Default)]
pub(crate) struct ClusterSet {
    order: Vec<ClusterKey>,
    index: HashMap<ClusterKey, usize>,
    /// The Gateways whose routes send to each cluster (policy status ancestors).
    used_by: HashMap<usize, Vec<NsName>>,
}

/// The Envoy-style cluster name Istio users read in logs and config dumps.
pub(crate) fn cluster_name(svc: &NsName, port: u16) -> String {
    format!(
        "outbound|{port}||{}.{}.svc.cluster.local",
        svc.name, svc.namespace
    )
}

impl ClusterSet {
    /// The index of the cluster for a Service port, adding it if new.
    pub(crate) fn intern(&mut self, svc: NsName, port: u16) -> usize {
        self.intern_key(ClusterKey::Service(svc, port))
    }

    /// The index of the cluster for a ServiceEntry host and port, adding it if new.
    pub(crate) fn intern_entry(&mut self, entry: NsName, host: &str, port: u16) -> usize {
        self.intern_key(ClusterKey::Entry {
            entry,
            host: host.to_string(),
            port,
        })
    }

    /// The index of the cluster for DestinationRule subset `subset` of cluster `base`, adding
    /// it if new.
    pub(crate) fn intern_subset_of(&mut self, base: usize, subset: &str) -> usize {
        let Some(key) = self.order.get(base).cloned() else {
            return base;
        };
        self.intern_key(ClusterKey::Subset {
            base: Box::new(key.split().0.clone()),
            subset: subset.to_string(),
        })
    }

    fn intern_key(&mut self, key: ClusterKey) -> usize {
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        let i = self.order.len();
        self.order.push(key.clone());
        self.index.insert(key, i);
        i
    }

    /// Record that a Gateway's route sends to cluster `index`.
    pub(crate) fn used_by(&mut self, index: usize, gateway: &NsName) {
        let v = self.used_by.entry(index).or_default();
        if !v.contains(gateway) {
            v.push(gateway.clone());
        }
    }

    /// The Gateways using each cluster, in cluster order.
    pub(crate) fn users(&self) -> Vec<(ClusterKey, Vec<NsName>)> {
        self.order
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), self.used_by.get(&i).cloned().unwrap_or_default()))
            .collect()
    }

    /// Resolve endpoints for every cluster and attach its DestinationRule traffic policy.
    pub(crate) fn finish(self, world: &World<'_>, warnings: &mut Vec<String>) -> Vec<Cluster> {
        let mut out = Vec::with_capacity(self.order.len());
        for (i, key) in self.order.into_iter().enumerate() {
            let clients = self.used_by.get(&i).map(Vec::as_slice).unwrap_or(&[]);
            let upstream = key.upstream();
            let dr = destination_rules::for_host(world, &upstream.fqdn, upstream.home_ns, clients);
            let (base, subset) = key.split();
            // A subset the rule does not define selects nothing: requests get 503 `UH`, as
            // Envoy answers for a cluster without endpoints.
            let defined = subset.map(|name| dr.and_then(|d| d.object.subset(name)));
            let missing = matches!(defined, Some(None));
            if missing {
                warnings.push(format!(
                    "subset {:?} of {}: no DestinationRule for the host defines it; requests to it get 503",
                    subset.unwrap_or_default(),
                    upstream.fqdn
                ));
            }
            let no_labels = BTreeMap::new();
            let labels = defined.map(|s| s.map_or(&no_labels, |s| &s.labels));
            let mut c = match base {
                ClusterKey::Service(svc, port) => {
                    build(world, svc.clone(), *port, labels, warnings)
                }
                ClusterKey::Entry { entry, host, port } => super::service_entries::cluster(
                    world,
                    entry.clone(),
                    host,
                    *port,
                    labels,
                    warnings,
                ),
                ClusterKey::Subset { .. } => continue,
            };
            if let Some(name) = subset {
                // Envoy's name for a subset cluster: `outbound|<port>|<subset>|<host>`.
                c.name = format!("outbound|{}|{name}|{}", upstream.port, upstream.fqdn);
                c.subset = Some(name.to_string());
                if missing {
                    c.endpoints.clear();
                    c.mesh_endpoints.clear();
                    c.resolve = None;
                }
            }
            c.policy = dr.map(|d| Arc::new(destination_rules::policy(d, upstream.port, subset)));
            out.push(c);
        }
        out
    }
}

/// Whether an endpoint's labels carry every label a subset selects.
pub(super) fn labels_match(
    want: &BTreeMap<String, String>,
    have: Option<&BTreeMap<String, String>>,
) -> bool {
    want.iter()
        .all(|(k, v)| have.and_then(|h| h.get(k)) == Some(v))
}

/// The cluster of a Service port; `subset`: only the endpoints whose Pod carries these labels.
fn build(
    world: &World<'_>,
    svc: NsName,
    port: u16,
    subset: Option<&BTreeMap<String, String>>,
    warnings: &mut Vec<String>,
) -> Cluster {
    let name = cluster_name(&svc, port);
    let service_port = world
        .service(&svc.namespace, &svc.name)
        .and_then(|s| s.spec.ports.iter().find(|p| p.port == port));
    let port_name = service_port
        .and_then(|p| p.name.clone())
        .unwrap_or_default();
    let mut endpoints = Vec::new();
    let mut mesh_endpoints = Vec::new();
    for slice in world.slices(&svc.namespace, &svc.name) {
        // The slice port with the Service port's name carries the resolved target port.
        let target = slice
            .ports
            .iter()
            .find(|p| p.name.clone().unwrap_or_default() == port_name)
            .and_then(|p| p.port)
            .or_else(|| match service_port.and_then(|p| p.target_port.as_ref()) {
                Some(IntOrString::Int(n)) => Some(*n),
                Some(IntOrString::String(_)) => None,
                None => Some(port),
            });
        let Some(target) = target else {
            warnings.push(format!(
                "EndpointSlice {}/{}: no port named {port_name:?} for Service {svc} port {port}",
                svc.namespace, slice.metadata.name
            ));
            continue;
        };
        for ep in &slice.endpoints {
            if ep.conditions.ready == Some(false) {
                continue;
            }
            if let Some(want) = subset {
                let pod = world.pod_of(&svc.namespace, ep);
                if !labels_match(want, pod.map(|p| &p.metadata.labels)) {
                    continue;
                }
            }
            let mesh = super::mesh::endpoint_in_mesh(world, &svc.namespace, ep);
            for addr in &ep.addresses {
                match addr.parse::<IpAddr>() {
                    Ok(ip) => {
                        let addr = SocketAddr::new(ip, target);
                        endpoints.push(addr);
                        if let Some(identity) = &mesh {
                            mesh_endpoints.push(MeshEndpoint {
                                addr,
                                identity: identity.clone(),
                            });
                        }
                    }
                    Err(_) => warnings.push(format!(
                        "EndpointSlice {}/{}: address {addr:?} is not an IP; skipped",
                        svc.namespace, slice.metadata.name
                    )),
                }
            }
        }
    }
    endpoints.sort();
    endpoints.dedup();
    let via_waypoint = super::mesh::via_waypoint(world, &svc, port);
    mesh_endpoints.sort();
    mesh_endpoints.dedup_by(|a, b| a.addr == b.addr);
    Cluster {
        name,
        app_protocol: service_port.and_then(|p| p.app_protocol.clone()),
        service: svc,
        port,
        endpoints,
        tls: None,
        tls_error: None,
        via_waypoint,
        mesh_endpoints,
        resolve: None,
        cursor: AtomicUsize::new(0),
        subset: None,
        original_destination_port: None,
        policy: None,
    }
}
