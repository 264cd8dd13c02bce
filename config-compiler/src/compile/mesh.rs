//! What a waypoint serves ([AM-2], [AM-3], [HB-W4]): the Services bound to it with
//! `istio.io/use-waypoint` (on the Service, else on its Namespace; `none` opts out), by the
//! virtual IPs and ports an HBONE client names as the CONNECT authority.

use super::World;
use super::clusters::ClusterSet;
use crate::resources::{Gateway, NsName, Resources};
use crate::snapshot::{MeshService, WorkloadIdentity};
use std::net::IpAddr;

/// The label that binds a Namespace, Service or ServiceEntry to a waypoint.
pub const USE_WAYPOINT: &str = "istio.io/use-waypoint";
/// The label naming the waypoint's namespace when it is not the object's.
pub const USE_WAYPOINT_NAMESPACE: &str = "istio.io/use-waypoint-namespace";
/// The Gateway label saying what traffic the waypoint accepts.
pub const WAYPOINT_FOR: &str = "istio.io/waypoint-for";

/// [AM-2] Whether waypoint `waypoint` takes objects from namespace `ns`: its own, or one its
/// HBONE listener's `allowedRoutes.namespaces` admits. A waypoint not in the config (a
/// gateway's view of a waypoint it only reaches) is taken on trust.
pub(super) fn admits(world: &World<'_>, waypoint: &NsName, ns: &str) -> bool {
    if waypoint.namespace == ns {
        return true;
    }
    let Some(gw) = world.gateway(&waypoint.namespace, &waypoint.name) else {
        return true;
    };
    gw.spec
        .listeners
        .iter()
        .filter(|l| l.protocol == "HBONE")
        .any(|l| {
            let from = l
                .allowed_routes
                .as_ref()
                .and_then(|a| a.namespaces.as_ref());
            match from.and_then(|n| n.from.as_deref()).unwrap_or("Same") {
                "All" => true,
                "Selector" => from
                    .and_then(|n| n.selector.as_ref())
                    .is_some_and(|sel| sel.matches(&world.namespace_labels(ns)).unwrap_or(false)),
                _ => false,
            }
        })
}

/// [AM-5] One warning per Service or ServiceEntry that names a waypoint which does not take
/// its namespace (its traffic does not go through any waypoint), and per bound Service without
/// a `clusterIP` (no tunnel can name it).
pub(super) fn binding_warnings(r: &Resources, world: &World<'_>) -> Vec<String> {
    let no_vip = r
        .services
        .iter()
        .map(|s| &s.object)
        .filter(|s| s.spec.cluster_ip.is_none() && s.spec.cluster_ips.is_empty())
        .filter(|s| bound_waypoint(world, s).is_some())
        .map(|s| {
            format!(
                "Service {}: bound to a waypoint but has no clusterIP, so no HBONE client can address it",
                s.metadata.ns_name()
            )
        });
    let labelled = r
        .services
        .iter()
        .map(|s| ("Service", &s.object.metadata))
        .chain(
            r.service_entries
                .iter()
                .map(|e| ("ServiceEntry", &e.object.metadata)),
        );
    labelled
        .filter_map(|(kind, m)| {
            let ns = m.namespace();
            let w = binding(&m.labels, ns)
                .or_else(|| binding(&world.namespace_labels(ns), ns))
                .flatten()?;
            (!admits(world, &w, ns)).then(|| {
                format!(
                    "{kind} {ns}/{}: waypoint {w} does not take namespace {ns} (its HBONE listener's allowedRoutes.namespaces); its traffic does not go through a waypoint",
                    m.name
                )
            })
        })
        .chain(no_vip)
        .collect()
}

/// The waypoint a set of labels binds to, if any: `Some(None)` opts out (`none`).
pub(super) fn binding(
    labels: &std::collections::BTreeMap<String, String>,
    own_ns: &str,
) -> Option<Option<NsName>> {
    let name = labels.get(USE_WAYPOINT)?;
    if name == "none" {
        return Some(None);
    }
    let ns = labels
        .get(USE_WAYPOINT_NAMESPACE)
        .map_or(own_ns, String::as_str);
    Some(Some(NsName::new(ns, name)))
}

/// The label that puts a Namespace in the ambient mesh ([AM-1]).
pub const DATAPLANE_MODE: &str = "istio.io/dataplane-mode";

/// [AM-1] Whether an endpoint is in the ambient mesh — its Pod's `istio.io/dataplane-mode`
/// (`ambient` or `none`), else its Namespace's — and, if so, the identity its Pod runs as
/// (`None` when the Pod is unknown: then any workload of the trust domain is accepted).
pub(super) fn endpoint_in_mesh(
    world: &World<'_>,
    slice_ns: &str,
    ep: &crate::resources::core::EndpointSpec,
) -> Option<Option<WorkloadIdentity>> {
    let pod = world.pod_of(slice_ns, ep);
    let ns = pod.map_or(slice_ns, |p| p.metadata.namespace());
    let mode = pod
        .and_then(|p| p.metadata.labels.get(DATAPLANE_MODE).cloned())
        .or_else(|| world.namespace_labels(ns).get(DATAPLANE_MODE).cloned());
    if mode.as_deref() != Some("ambient") {
        return None;
    }
    Some(pod.map(pod_identity))
}

/// The identity a Pod runs as.
pub(super) fn pod_identity(p: &crate::resources::Pod) -> WorkloadIdentity {
    WorkloadIdentity {
        namespace: p.metadata.namespace().to_string(),
        service_account: p
            .spec
            .service_account_name
            .clone()
            .unwrap_or_else(|| "default".into()),
    }
}

/// The HBONE port of a waypoint.
pub const HBONE_PORT: u16 = 15008;

/// The waypoint a Service is bound to, if any (a label on the Service beats its Namespace's),
/// and if that waypoint admits the Service's namespace.
fn bound_waypoint(world: &World<'_>, svc: &crate::resources::Service) -> Option<NsName> {
    let ns = svc.metadata.namespace();
    binding(&svc.metadata.labels, ns)
        .or_else(|| binding(&world.namespace_labels(ns), ns))
        .flatten()
        .filter(|w| admits(world, w, ns))
}

/// [AM-2] How to reach Service port `svc:port` through its waypoint: the waypoint's own
/// Service (named like the Gateway, as Istio creates it) has the HBONE endpoints; the CONNECT
/// authority is the Service's virtual IP and port.
pub(super) fn via_waypoint(
    world: &World<'_>,
    svc: &NsName,
    port: u16,
) -> Option<crate::snapshot::ViaWaypoint> {
    let service = world.service(&svc.namespace, &svc.name)?;
    // An ingress gateway always goes through the waypoint, so L7 policy there always applies
    // (stricter than Istio, where only `istio.io/ingress-use-waypoint` [AM-4] sends it there).
    let waypoint = bound_waypoint(world, service)?;
    let endpoints = waypoint_endpoints(world, &waypoint);
    let target = service
        .spec
        .cluster_ips
        .iter()
        .chain(service.spec.cluster_ip.iter())
        .find_map(|ip| ip.parse::<IpAddr>().ok())
        .map(|ip| std::net::SocketAddr::new(ip, port));
    Some(crate::snapshot::ViaWaypoint {
        identity: waypoint_identity(world, &waypoint),
        waypoint,
        endpoints,
        target,
    })
}

/// A waypoint's HBONE endpoints: the ready addresses of its own Service (named like the
/// Gateway, as Istio creates it), on its `mesh`/15008 port.
pub(super) fn waypoint_endpoints(
    world: &World<'_>,
    waypoint: &NsName,
) -> Vec<std::net::SocketAddr> {
    let mut endpoints = Vec::new();
    for slice in world.slices(&waypoint.namespace, &waypoint.name) {
        let target = slice
            .ports
            .iter()
            .find_map(|p| {
                p.port
                    .filter(|n| *n == HBONE_PORT || p.name.as_deref() == Some("mesh"))
            })
            .unwrap_or(HBONE_PORT);
        for ep in slice
            .endpoints
            .iter()
            .filter(|e| e.conditions.ready != Some(false))
        {
            endpoints.extend(
                ep.addresses
                    .iter()
                    .filter_map(|a| a.parse::<IpAddr>().ok())
                    .map(|ip| std::net::SocketAddr::new(ip, target)),
            );
        }
    }
    endpoints
}

/// The identity of a waypoint's Pods (the first known Pod behind its Service).
pub(super) fn waypoint_identity(world: &World<'_>, waypoint: &NsName) -> Option<WorkloadIdentity> {
    world
        .slices(&waypoint.namespace, &waypoint.name)
        .iter()
        .flat_map(|s| &s.endpoints)
        .find_map(|ep| world.pod_of(&waypoint.namespace, ep))
        .map(pod_identity)
}

/// Istio's protocol selection for a Service port: `appProtocol`, else the port name's
/// `<protocol>[-<suffix>]` prefix. Only a protocol that is clearly not HTTP makes the port
/// opaque TCP; anything else (including unnamed ports) is served as HTTP.
pub fn is_opaque(port: &crate::resources::core::ServicePort) -> bool {
    let declared = port
        .app_protocol
        .as_deref()
        .or_else(|| {
            port.name
                .as_deref()
                .map(|n| n.split('-').next().unwrap_or(n))
        })
        .unwrap_or("")
        .to_ascii_lowercase();
    matches!(
        declared.as_str(),
        "tcp" | "tls" | "mongo" | "mysql" | "redis" | "kafka" | "zookeeper" | "postgres"
    )
}

/// [AM-3] What a waypoint accepts: (service-addressed, workload-addressed) traffic.
fn accepts(gw: &Gateway) -> (bool, bool) {
    if !gw.spec.listeners.iter().any(|l| l.protocol == "HBONE") {
        return (false, false);
    }
    match gw
        .metadata
        .labels
        .get(WAYPOINT_FOR)
        .map_or("service", String::as_str)
    {
        "service" => (true, false),
        "workload" => (false, true),
        "all" => (true, true),
        _ => (false, false),
    }
}

/// The Service ports this waypoint serves, with their clusters.
pub(super) fn services_of(
    r: &Resources,
    world: &World<'_>,
    gw: &Gateway,
    clusters: &mut ClusterSet,
) -> Vec<MeshService> {
    let (services, workloads) = accepts(gw);
    if !services && !workloads {
        return Vec::new();
    }
    let me = gw.metadata.ns_name();
    let mut out = Vec::new();
    for s in &r.services {
        let svc = &s.object;
        if bound_waypoint(world, svc).as_ref() != Some(&me) {
            continue;
        }
        let vips: Vec<IpAddr> = svc
            .spec
            .cluster_ips
            .iter()
            .chain(svc.spec.cluster_ip.iter())
            .filter_map(|ip| ip.parse().ok())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let id = svc.metadata.ns_name();
        for p in &svc.spec.ports {
            let service_port = MeshService {
                host: format!("{}.{}.svc.cluster.local", id.name, id.namespace),
                vips: vips.clone(),
                ranges: Vec::new(),
                port: p.port,
                cluster: clusters.intern(id.clone(), p.port),
                service: id.clone(),
                entry: false,
                routes: None,
                consumer_routes: Vec::new(),
                authz: Vec::new(),
                opaque: is_opaque(p),
                pinned: None,
            };
            if workloads {
                // Each endpoint, addressed by its own IP and target port, goes to that endpoint.
                for ep in endpoints_of(world, &id, p.name.as_deref()) {
                    out.push(MeshService {
                        vips: vec![ep.ip()],
                        port: ep.port(),
                        pinned: Some(ep),
                        host: service_port.host.clone(),
                        service: id.clone(),
                        routes: None,
                        consumer_routes: Vec::new(),
                        authz: Vec::new(),
                        ranges: Vec::new(),
                        ..service_port
                    });
                }
            }
            // Without a virtual IP no tunnel can name it, but its routes still attach (and
            // `binding_warnings` says why nothing arrives).
            if services {
                out.push(service_port);
            }
        }
    }
    if services {
        out.extend(super::service_entries::mesh_entries(world, &me, clusters));
    }
    out
}

/// The ready endpoints of a Service port (by the port's name in its EndpointSlices).
fn endpoints_of(
    world: &World<'_>,
    svc: &NsName,
    port_name: Option<&str>,
) -> Vec<std::net::SocketAddr> {
    let mut out = Vec::new();
    for slice in world.slices(&svc.namespace, &svc.name) {
        let Some(port) = slice
            .ports
            .iter()
            .find(|p| p.name.as_deref().unwrap_or("") == port_name.unwrap_or(""))
            .and_then(|p| p.port)
        else {
            continue;
        };
        for ep in slice
            .endpoints
            .iter()
            .filter(|e| e.conditions.ready != Some(false))
        {
            out.extend(
                ep.addresses
                    .iter()
                    .filter_map(|a| a.parse::<IpAddr>().ok())
                    .map(|ip| std::net::SocketAddr::new(ip, port)),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_waypoint_in_another_namespace_takes_only_namespaces_its_listener_admits() {
        let yaml = |from: &str| {
            format!(
                r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: waypoint, namespace: mesh}}
spec:
  gatewayClassName: istio-waypoint
  listeners: [{{name: mesh, port: 15008, protocol: HBONE, allowedRoutes: {{namespaces: {{from: {from}}}}}}}]
---
apiVersion: v1
kind: Service
metadata:
  name: reviews
  namespace: apps
  labels: {{istio.io/use-waypoint: waypoint, istio.io/use-waypoint-namespace: mesh}}
spec:
  clusterIP: 10.96.0.10
  ports: [{{name: http, port: 9080}}]
"#
            )
        };
        let served = |from: &str| {
            let r = crate::load_str("m.yaml", &yaml(from)).unwrap();
            let (snapshot, report) = crate::compile(&r, &crate::CompileOptions::default());
            let n = snapshot
                .gateways
                .iter()
                .map(|g| g.mesh.len())
                .sum::<usize>();
            let warned = report
                .warnings
                .iter()
                .any(|w| w.contains("Service apps/reviews") && w.contains("does not take"));
            (n, warned)
        };
        assert_eq!(served("All"), (1, false));
        assert_eq!(served("Same"), (0, true));
    }

    #[test]
    fn only_clearly_non_http_ports_are_opaque() {
        let port = |name: Option<&str>, app: Option<&str>| crate::resources::core::ServicePort {
            name: name.map(str::to_string),
            port: 1,
            target_port: None,
            app_protocol: app.map(str::to_string),
            protocol: None,
        };
        assert!(is_opaque(&port(Some("tcp-db"), None)));
        assert!(is_opaque(&port(Some("mysql"), None)));
        assert!(is_opaque(&port(Some("http"), Some("tcp"))));
        assert!(!is_opaque(&port(Some("tcp"), Some("http"))));
        assert!(!is_opaque(&port(Some("http-web"), None)));
        assert!(!is_opaque(&port(None, None)));
        assert!(!is_opaque(&port(Some("grpc"), Some("kubernetes.io/h2c"))));
    }

    #[test]
    fn use_waypoint_names_a_waypoint_here_or_in_another_namespace_am_2() {
        assert_eq!(binding(&labels(&[]), "a"), None);
        assert_eq!(
            binding(&labels(&[(USE_WAYPOINT, "wp")]), "a"),
            Some(Some(NsName::new("a", "wp")))
        );
        assert_eq!(
            binding(
                &labels(&[(USE_WAYPOINT, "wp"), (USE_WAYPOINT_NAMESPACE, "mesh")]),
                "a"
            ),
            Some(Some(NsName::new("mesh", "wp")))
        );
        assert_eq!(binding(&labels(&[(USE_WAYPOINT, "none")]), "a"), Some(None));
    }
}
