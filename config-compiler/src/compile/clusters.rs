//! Upstream clusters: one per referenced Service port, with endpoints from its EndpointSlices,
//! and one per referenced ServiceEntry host and port ([SE-2], [SE-3]).

use super::World;
use crate::resources::NsName;
use crate::resources::core::IntOrString;
use crate::snapshot::{Cluster, MeshEndpoint};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
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

    /// Resolve endpoints for every cluster.
    pub(crate) fn finish(self, world: &World<'_>, warnings: &mut Vec<String>) -> Vec<Cluster> {
        self.order
            .into_iter()
            .map(|key| match key {
                ClusterKey::Service(svc, port) => build(world, svc, port, warnings),
                ClusterKey::Entry { entry, host, port } => {
                    super::service_entries::cluster(world, entry, &host, port, warnings)
                }
            })
            .collect()
    }
}

fn build(world: &World<'_>, svc: NsName, port: u16, warnings: &mut Vec<String>) -> Cluster {
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
    }
}
