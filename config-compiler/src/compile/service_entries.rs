//! ServiceEntries in the compiled config ([SE-1]..[SE-4], [HB-W4]): the cluster of each host
//! and port (static endpoints, or names resolved by DNS when a request needs them), the
//! addresses allocated to hosts that have none, the waypoint an entry is bound to, and status.

use super::World;
use super::clusters::ClusterSet;
use super::mesh::{DATAPLANE_MODE, pod_identity};
use super::mesh::{admits, binding, waypoint_endpoints, waypoint_identity};
use crate::resources::service_entry::{ServiceEntry, WorkloadEntrySpec};
use crate::resources::{NsName, Sourced};
use crate::snapshot::{
    Cluster, DnsResolve, MeshEndpoint, MeshService, ViaWaypoint, WorkloadIdentity,
};
use crate::status::{Condition, Conditions, ObjectStatus, StatusAddress};
use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicUsize;
use waygate_filters::authz::Cidr;

/// Istio allocates ServiceEntry addresses from 240.240.0.0/16 (reserved, never routed).
const AUTO_PREFIX: [u8; 2] = [240, 240];

/// A stable slot for a key: FNV-1a, so an entry keeps its address when others come and go
/// (unless two collide, when the later one in namespace/name order probes onwards).
fn slot(key: &str) -> u16 {
    let mut h: u32 = 0x811c_9dc5;
    for b in key.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h ^ (h >> 16)) as u16
}

/// [HB-W4] An address for every non-wildcard host of an entry without `addresses`, so a
/// client can name it as a tunnel's destination.
pub(super) fn allocate(entries: &[Sourced<ServiceEntry>]) -> BTreeMap<(NsName, String), IpAddr> {
    let mut taken = HashSet::new();
    let mut out = BTreeMap::new();
    for e in entries.iter().map(|s| &s.object) {
        if !e.spec.addresses.is_empty() {
            continue;
        }
        let id = e.metadata.ns_name();
        for host in e.spec.hosts.iter().filter(|h| !h.starts_with('*')) {
            let mut s = slot(&format!("{id}/{host}"));
            // .0 and .255.255 are left alone; 65,534 hosts is the block's limit.
            while s == 0 || s == u16::MAX || !taken.insert(s) {
                if taken.len() >= usize::from(u16::MAX) - 1 {
                    break;
                }
                s = s.wrapping_add(1);
            }
            let [hi, lo] = s.to_be_bytes();
            let ip = Ipv4Addr::new(AUTO_PREFIX[0], AUTO_PREFIX[1], hi, lo);
            out.insert((id.clone(), host.to_ascii_lowercase()), IpAddr::V4(ip));
        }
    }
    out
}

/// The addresses that name one host of an entry: its `addresses` (single IPs; a wider CIDR
/// cannot be a tunnel's destination), else the allocated one.
fn addresses_of(world: &World<'_>, e: &ServiceEntry, host: &str) -> Vec<IpAddr> {
    if e.spec.addresses.is_empty() {
        return world
            .entry_vip(&e.metadata.ns_name(), &host.to_ascii_lowercase())
            .into_iter()
            .collect();
    }
    e.spec
        .addresses
        .iter()
        .filter_map(|a| {
            let (ip, len) = a.split_once('/').unwrap_or((a, ""));
            let ip: IpAddr = ip.parse().ok()?;
            let full = if ip.is_ipv4() { "32" } else { "128" };
            (len.is_empty() || len == full).then_some(ip)
        })
        .collect()
}

/// The waypoint an entry is bound to ([AM-2]: its own label beats its Namespace's), if that
/// waypoint admits the entry's namespace.
fn bound_waypoint(world: &World<'_>, e: &ServiceEntry) -> Option<NsName> {
    let ns = e.metadata.namespace();
    binding(&e.metadata.labels, ns)
        .or_else(|| binding(&world.namespace_labels(ns), ns))
        .flatten()
        .filter(|w| admits(world, w, ns))
}

/// Whether an entry is visible from namespace `from` (`exportTo`; empty means everywhere).
fn visible(e: &ServiceEntry, from: &str) -> bool {
    let own = e.metadata.namespace();
    e.spec.export_to.is_empty()
        || e.spec
            .export_to
            .iter()
            .any(|x| x == "*" || x == from || (x == "." && own == from))
}

/// [SE-4] The entry a route in `from` means by a host name (`kind: Hostname`): one in the
/// route's namespace first, then any that is exported to it.
pub(super) fn by_host<'a>(world: &World<'a>, host: &str, from: &str) -> Option<&'a ServiceEntry> {
    let host = host.to_ascii_lowercase();
    let has = |e: &&ServiceEntry| e.spec.hosts.iter().any(|h| h.eq_ignore_ascii_case(&host));
    world
        .service_entries()
        .filter(has)
        .find(|e| e.metadata.namespace() == from)
        .or_else(|| {
            world
                .service_entries()
                .filter(has)
                .find(|e| visible(e, from))
        })
}

/// The cluster of one host and port of an entry ([SE-2], [SE-3]); `subset`: only the
/// endpoints carrying these labels.
pub(super) fn cluster(
    world: &World<'_>,
    entry: NsName,
    host: &str,
    port: u16,
    subset: Option<&BTreeMap<String, String>>,
    warnings: &mut Vec<String>,
) -> Cluster {
    let se = world.service_entry(&entry.namespace, &entry.name);
    let se_port = se.and_then(|e| e.spec.ports.iter().find(|p| p.number == port));
    let mut endpoints = Vec::new();
    let mut names = Vec::new();
    let resolution = se
        .and_then(|e| e.spec.resolution.as_deref())
        .unwrap_or("NONE");
    let mut mesh_endpoints = Vec::new();
    if let (Some(e), Some(p)) = (se, se_port) {
        let internal = e.spec.location.as_deref() == Some("MESH_INTERNAL");
        // [SE-3] `workloadSelector`: the selected Pods of the entry's namespace.
        if let Some(sel) = &e.spec.workload_selector {
            let mut pods: Vec<_> = world
                .pods_in(&entry.namespace)
                .filter(|pod| {
                    super::clusters::labels_match(&sel.labels, Some(&pod.metadata.labels))
                })
                .filter(|pod| {
                    subset.is_none_or(|want| {
                        super::clusters::labels_match(want, Some(&pod.metadata.labels))
                    })
                })
                .collect();
            pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
            for pod in pods {
                for ip in pod_ips(pod) {
                    let addr = SocketAddr::new(ip, p.target_for(None));
                    endpoints.push(addr);
                    if internal && let Some(identity) = pod_in_mesh(world, pod) {
                        mesh_endpoints.push(MeshEndpoint { addr, identity });
                    }
                }
            }
            // WorkloadEntries are selected the same way, by their own labels.
            for we in world.workload_entries_in(&entry.namespace) {
                let spec = &we.spec;
                let labels = &we.metadata.labels;
                let mut all = labels.clone();
                all.extend(spec.labels.clone());
                if !super::clusters::labels_match(&sel.labels, Some(&all))
                    || subset.is_some_and(|want| !super::clusters::labels_match(want, Some(&all)))
                {
                    continue;
                }
                let Some(ip) = spec
                    .address
                    .as_deref()
                    .and_then(|a| a.parse::<IpAddr>().ok())
                else {
                    warnings.push(format!(
                        "WorkloadEntry {}/{}: spec.address is not an IP address; skipped",
                        we.metadata.namespace(),
                        we.metadata.name
                    ));
                    continue;
                };
                let addr = SocketAddr::new(ip, p.target_for(Some(spec)));
                endpoints.push(addr);
                if internal && let Some(identity) = entry_endpoint_in_mesh(world, e, spec, ip) {
                    mesh_endpoints.push(MeshEndpoint { addr, identity });
                }
            }
        }
        for ep in &e.spec.endpoints {
            let Some(address) = ep.address.as_deref() else {
                continue;
            };
            if subset.is_some_and(|want| !super::clusters::labels_match(want, Some(&ep.labels))) {
                continue;
            }
            let target = p.target_for(Some(ep));
            match address.parse::<IpAddr>() {
                Ok(ip) => {
                    let addr = SocketAddr::new(ip, target);
                    endpoints.push(addr);
                    if internal && let Some(identity) = entry_endpoint_in_mesh(world, e, ep, ip) {
                        mesh_endpoints.push(MeshEndpoint { addr, identity });
                    }
                }
                Err(_) if resolution.starts_with("DNS") => names.push((address.to_string(), target)),
                Err(_) => warnings.push(format!(
                    "ServiceEntry {entry}: endpoint address {address:?} is not an IP and resolution is {resolution}; skipped"
                )),
            }
        }
        if e.spec.endpoints.is_empty()
            && !host.starts_with('*')
            && matches!(resolution, "DNS" | "DNS_ROUND_ROBIN" | "DYNAMIC_DNS")
        {
            names.push((host.to_string(), p.target_for(None)));
        }
    }
    // [SE-2] NONE: the client already resolved the name; send where it addressed.
    let original_destination_port = se_port
        .filter(|_| resolution == "NONE" && se.is_some_and(|e| e.spec.endpoints.is_empty()))
        .map(|p| p.target_for(None));
    endpoints.sort();
    endpoints.dedup();
    mesh_endpoints.sort();
    mesh_endpoints.dedup();
    let app_protocol = se_port
        .and_then(|p| p.protocol.as_deref())
        .filter(|p| p.eq_ignore_ascii_case("HTTP2") || p.eq_ignore_ascii_case("GRPC"))
        .map(|_| "kubernetes.io/h2c".to_string());
    let via_waypoint = se.and_then(|e| {
        // [AM-4] as for Services: only with the ingress label.
        if !super::mesh::ingress_uses_waypoint(world, &e.metadata.labels, &entry.namespace) {
            return None;
        }
        let waypoint = bound_waypoint(world, e)?;
        Some(ViaWaypoint {
            endpoints: waypoint_endpoints(world, &waypoint),
            identity: waypoint_identity(world, &waypoint),
            waypoint,
            target: addresses_of(world, e, host)
                .first()
                .map(|ip| SocketAddr::new(*ip, port)),
        })
    });
    Cluster {
        name: format!("outbound|{port}||{host}"),
        service: entry,
        port,
        app_protocol,
        endpoints,
        tls: None,
        tls_error: None,
        mesh_endpoints,
        via_waypoint,
        resolve: (!names.is_empty()).then_some(DnsResolve {
            names,
            first_only: resolution == "DNS_ROUND_ROBIN",
        }),
        cursor: AtomicUsize::new(0),
        subset: None,
        original_destination_port,
        policy: None,
    }
}

/// Every address of a Pod.
fn pod_ips(pod: &crate::resources::Pod) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = pod
        .status
        .pod_ips
        .iter()
        .filter_map(|p| p.ip.parse().ok())
        .chain(pod.status.pod_ip.iter().filter_map(|ip| ip.parse().ok()))
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

/// [AM-1] A Pod in the ambient mesh (its label, else its Namespace's), with its identity.
fn pod_in_mesh(world: &World<'_>, pod: &crate::resources::Pod) -> Option<Option<WorkloadIdentity>> {
    let mode = pod
        .metadata
        .labels
        .get(DATAPLANE_MODE)
        .cloned()
        .or_else(|| {
            world
                .namespace_labels(pod.metadata.namespace())
                .remove(DATAPLANE_MODE)
        });
    (mode.as_deref() == Some("ambient")).then(|| Some(pod_identity(pod)))
}

/// [SE-1] An endpoint of a `MESH_INTERNAL` entry is a mesh workload, reached over HBONE, when
/// its Pod is (by address), else when its own labels or the entry's Namespace put it in the
/// ambient mesh; its identity is then its `serviceAccount` in the entry's namespace. A
/// `MESH_EXTERNAL` entry's endpoints never are, whatever their namespace says.
fn entry_endpoint_in_mesh(
    world: &World<'_>,
    e: &ServiceEntry,
    ep: &WorkloadEntrySpec,
    ip: IpAddr,
) -> Option<Option<WorkloadIdentity>> {
    if let Some(pod) = world.pod_by_ip(ip) {
        return pod_in_mesh(world, pod);
    }
    let ns = e.metadata.namespace();
    let mode = ep
        .labels
        .get(DATAPLANE_MODE)
        .cloned()
        .or_else(|| world.namespace_labels(ns).remove(DATAPLANE_MODE));
    (mode.as_deref() == Some("ambient")).then(|| {
        ep.service_account.as_ref().map(|sa| WorkloadIdentity {
            namespace: ns.to_string(),
            service_account: sa.clone(),
        })
    })
}

/// [HB-W4] The entry hosts and ports bound to waypoint `me`, by their addresses.
pub(super) fn mesh_entries(
    world: &World<'_>,
    me: &NsName,
    clusters: &mut ClusterSet,
) -> Vec<MeshService> {
    let mut out = Vec::new();
    for e in world.service_entries() {
        if bound_waypoint(world, e).as_ref() != Some(me) {
            continue;
        }
        let id = e.metadata.ns_name();
        // [SE-1] CIDR `addresses` take any destination inside them (the first host stands for
        // the entry, wildcard or not); single addresses are virtual IPs.
        let ranges: Vec<Cidr> = e
            .spec
            .addresses
            .iter()
            .filter(|a| a.contains('/'))
            .filter_map(|a| Cidr::parse(a).ok())
            .filter(|c| c.len < if c.addr.is_ipv4() { 32 } else { 128 })
            .collect();
        for (k, host) in e.spec.hosts.iter().enumerate() {
            let vips = if host.starts_with('*') {
                Vec::new()
            } else {
                addresses_of(world, e, host)
            };
            let ranges = if k == 0 { ranges.clone() } else { Vec::new() };
            if vips.is_empty() && ranges.is_empty() {
                continue;
            }
            for p in &e.spec.ports {
                out.push(MeshService {
                    service: id.clone(),
                    entry: true,
                    host: host.clone(),
                    vips: vips.clone(),
                    ranges: ranges.clone(),
                    port: p.number,
                    cluster: clusters.intern_entry(id.clone(), host, p.number),
                    routes: None,
                    consumer_routes: Vec::new(),
                    authz: Vec::new(),
                    opaque: p.is_opaque(),
                    pinned: None,
                });
            }
        }
    }
    out
}

/// Every entry's status: the addresses allocated to its hosts.
pub(super) fn statuses(world: &World<'_>) -> Vec<ObjectStatus> {
    world
        .sourced_service_entries()
        .map(|sourced| {
            let e = &sourced.object;
            let m = &e.metadata;
            let mut s = ObjectStatus::new("ServiceEntry", m.namespace(), &m.name);
            s.source = Some(sourced.source.to_string());
            let problems = validate(e);
            let mut c = Conditions::default();
            c.set(if problems.is_empty() {
                Condition::new("Accepted", true, "Accepted", "valid")
            } else {
                Condition::new("Accepted", false, "Invalid", problems.join("; "))
            });
            c.observe(m.generation);
            s.conditions = c;
            s.addresses = e
                .spec
                .hosts
                .iter()
                .filter_map(|h| {
                    let ip = world.entry_vip(&m.ns_name(), &h.to_ascii_lowercase())?;
                    Some(StatusAddress {
                        kind: String::new(),
                        value: ip.to_string(),
                        host: Some(h.clone()),
                    })
                })
                .collect();
            s
        })
        .collect()
}

/// Field-named problems Istio's validation would refuse ([SE-1]..[SE-3]); an entry with
/// problems is still served as far as it can be, and `waygate check` fails on them.
fn validate(e: &ServiceEntry) -> Vec<String> {
    let spec = &e.spec;
    let mut out = Vec::new();
    if spec.hosts.is_empty() {
        out.push("spec.hosts: at least one host is required".to_string());
    }
    for (i, h) in spec.hosts.iter().enumerate() {
        let bare = h.strip_prefix("*.").unwrap_or(h);
        if h == "*" || bare.is_empty() || bare.contains(['*', '/', ' ']) {
            out.push(format!(
                "spec.hosts[{i}]: {h:?} is not an FQDN or a `*.` wildcard"
            ));
        }
    }
    for (i, a) in spec.addresses.iter().enumerate() {
        let ip = a
            .split_once('/')
            .map_or(a.as_str(), |(ip, _)| ip)
            .parse::<IpAddr>();
        let max = if matches!(ip, Ok(IpAddr::V4(_))) {
            32
        } else {
            128
        };
        let prefix_ok = a
            .split_once('/')
            .is_none_or(|(_, p)| p.parse::<u8>().is_ok_and(|p| p <= max));
        if ip.is_err() || !prefix_ok {
            out.push(format!(
                "spec.addresses[{i}]: {a:?} is not an IP address or CIDR"
            ));
        }
    }
    let mut seen = HashSet::new();
    for (i, p) in spec.ports.iter().enumerate() {
        if p.number == 0 {
            out.push(format!("spec.ports[{i}].number: must be 1-65535"));
        }
        if !seen.insert(p.number) {
            out.push(format!(
                "spec.ports[{i}].number: port {} is listed twice",
                p.number
            ));
        }
        if let Some(proto) = &p.protocol {
            const KNOWN: [&str; 9] = [
                "HTTP", "HTTPS", "GRPC", "HTTP2", "MONGO", "TCP", "TLS", "UDP", "GRPC-WEB",
            ];
            if !KNOWN.iter().any(|k| k.eq_ignore_ascii_case(proto)) {
                out.push(format!(
                    "spec.ports[{i}].protocol: unknown protocol {proto:?}"
                ));
            }
        }
    }
    let resolution = spec.resolution.as_deref().unwrap_or("NONE");
    if !matches!(
        resolution,
        "NONE" | "STATIC" | "DNS" | "DNS_ROUND_ROBIN" | "DYNAMIC_DNS"
    ) {
        out.push(format!("spec.resolution: unknown value {resolution:?}"));
    }
    if let Some(l) = spec.location.as_deref()
        && !matches!(l, "MESH_EXTERNAL" | "MESH_INTERNAL")
    {
        out.push(format!("spec.location: unknown value {l:?}"));
    }
    if spec.workload_selector.is_some() && !spec.endpoints.is_empty() {
        out.push("spec.workloadSelector: cannot be combined with spec.endpoints".to_string());
    }
    if resolution == "STATIC" && spec.endpoints.is_empty() && spec.workload_selector.is_none() {
        out.push(
            "spec.endpoints: resolution STATIC needs endpoints (or a workloadSelector)".into(),
        );
    }
    if matches!(resolution, "DNS" | "DNS_ROUND_ROBIN")
        && spec.endpoints.is_empty()
        && spec.hosts.iter().any(|h| h.starts_with('*'))
    {
        out.push(format!(
            "spec.resolution: {resolution} needs endpoints or hosts without wildcards (a wildcard name cannot be resolved)"
        ));
    }
    for (i, ep) in spec.endpoints.iter().enumerate() {
        match ep.address.as_deref() {
            None | Some("") => out.push(format!("spec.endpoints[{i}].address: required")),
            Some(a) if resolution == "STATIC" && a.parse::<IpAddr>().is_err() => out.push(format!(
                "spec.endpoints[{i}].address: {a:?} must be an IP address with resolution STATIC"
            )),
            _ => {}
        }
        for name in ep.ports.keys() {
            if !spec.ports.iter().any(|p| p.name.as_deref() == Some(name)) {
                out.push(format!(
                    "spec.endpoints[{i}].ports[{name}]: no port of the entry is named {name:?}"
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load_str;

    const ENTRIES: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: egress}
spec:
  hosts: [api.example.com, "*.wild.example.com", other.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: fixed, namespace: egress}
spec:
  hosts: [fixed.example.com]
  addresses: [192.0.2.7/32]
  ports: [{number: 443, name: tls, protocol: TLS}]
"#;

    #[test]
    fn hosts_without_addresses_get_distinct_stable_ones_from_240_240() {
        let r = load_str("se.yaml", ENTRIES).unwrap();
        let a = allocate(&r.service_entries);
        let ext = NsName::new("egress", "ext");
        let api = a[&(ext.clone(), "api.example.com".to_string())];
        let other = a[&(ext.clone(), "other.example.com".to_string())];
        assert_ne!(api, other);
        for ip in [api, other] {
            assert!(
                matches!(ip, IpAddr::V4(v) if v.octets()[..2] == AUTO_PREFIX),
                "{ip}"
            );
        }
        // Wildcards and entries with addresses get none.
        assert_eq!(a.len(), 2);
        // Adding an entry leaves existing allocations alone.
        let more = format!(
            "{ENTRIES}---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: new, namespace: egress}}\nspec: {{hosts: [new.example.com], ports: [{{number: 80, name: http}}]}}\n"
        );
        let r2 = load_str("se.yaml", &more).unwrap();
        let b = allocate(&r2.service_entries);
        assert_eq!(b[&(ext, "api.example.com".to_string())], api);
        assert_eq!(b.len(), 3);
    }

    #[test]
    fn validation_names_each_bad_field() {
        let bad = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: bad, namespace: egress}
spec:
  hosts: ["*.wild.example.com", "*"]
  addresses: [10.0.0.1/40, not-an-ip]
  ports: [{number: 80, name: http, protocol: HTTPZ}, {number: 80, name: again}]
  resolution: DNS
  workloadSelector: {labels: {app: x}}
  endpoints: [{address: 10.1.1.1, ports: {nope: 8080}}]
"#;
        let r = load_str("se.yaml", bad).unwrap();
        let problems = validate(&r.service_entries[0].object);
        for field in [
            "spec.hosts[1]",
            "spec.addresses[0]",
            "spec.addresses[1]",
            "spec.ports[0].protocol",
            "spec.ports[1].number",
            "spec.workloadSelector",
            "spec.endpoints[0].ports[nope]",
        ] {
            assert!(
                problems.iter().any(|p| p.starts_with(field)),
                "{field} not named in {problems:?}"
            );
        }
        let wild = bad
            .replace("  workloadSelector: {labels: {app: x}}\n", "")
            .replace(
                "  endpoints: [{address: 10.1.1.1, ports: {nope: 8080}}]\n",
                "",
            );
        let r = load_str("se.yaml", &wild).unwrap();
        assert!(
            validate(&r.service_entries[0].object)
                .iter()
                .any(|p| p.starts_with("spec.resolution: DNS needs endpoints"))
        );
        // `fixed` is valid (`ext` resolves a wildcard by DNS, which Istio refuses too).
        let r = load_str("se.yaml", ENTRIES).unwrap();
        assert_eq!(validate(&r.service_entries[1].object), Vec::<String>::new());
    }

    #[test]
    fn location_decides_whether_endpoints_are_mesh_workloads_se_1() {
        let yaml = r#"
apiVersion: v1
kind: Namespace
metadata: {name: vm, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: vm, labels: {app: db}}
spec: {serviceAccountName: db}
status: {podIP: 10.1.0.5}
---
apiVersion: v1
kind: Pod
metadata: {name: web-0, namespace: vm, labels: {app: web}}
status: {podIP: 10.1.0.6}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-vm, namespace: vm}
spec: {address: 10.3.0.1, labels: {app: db, version: v2}, serviceAccount: vm-db, ports: {tcp: 25432}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: vm}
spec:
  hosts: [db.vm.internal]
  location: MESH_INTERNAL
  ports: [{number: 5432, name: tcp, protocol: TCP, targetPort: 15432}]
  resolution: STATIC
  workloadSelector: {labels: {app: db}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: legacy, namespace: vm}
spec:
  hosts: [legacy.vm.internal]
  location: MESH_INTERNAL
  ports: [{number: 80, name: http}]
  resolution: STATIC
  endpoints: [{address: 10.2.0.1, serviceAccount: legacy}, {address: 10.1.0.6}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: outside, namespace: vm}
spec:
  hosts: [api.example.com]
  ports: [{number: 80, name: http}]
  resolution: STATIC
  endpoints: [{address: 192.0.2.10}]
"#;
        let r = load_str("se.yaml", yaml).unwrap();
        let world = World::new(&r);
        let mut w = Vec::new();
        let db = cluster(
            &world,
            NsName::new("vm", "db"),
            "db.vm.internal",
            5432,
            None,
            &mut w,
        );
        let addr: SocketAddr = "10.1.0.5:15432".parse().unwrap();
        let vm: SocketAddr = "10.3.0.1:25432".parse().unwrap();
        assert_eq!(
            db.endpoints,
            vec![addr, vm],
            "the selected Pod and WorkloadEntry"
        );
        let vm_id = db
            .mesh_endpoint(vm)
            .and_then(|m| m.identity.clone())
            .unwrap();
        assert_eq!(vm_id.service_account, "vm-db");
        // [DR-1] A subset narrows by the same labels.
        let v2: BTreeMap<String, String> = [("version".to_string(), "v2".to_string())].into();
        let sub = cluster(
            &world,
            NsName::new("vm", "db"),
            "db.vm.internal",
            5432,
            Some(&v2),
            &mut w,
        );
        assert_eq!(sub.endpoints, vec![vm]);
        let id = db
            .mesh_endpoint(addr)
            .and_then(|m| m.identity.clone())
            .unwrap();
        assert_eq!(
            (id.namespace.as_str(), id.service_account.as_str()),
            ("vm", "db")
        );

        let legacy = cluster(
            &world,
            NsName::new("vm", "legacy"),
            "legacy.vm.internal",
            80,
            None,
            &mut w,
        );
        let vm_ep = legacy
            .mesh_endpoint("10.2.0.1:80".parse().unwrap())
            .unwrap();
        assert_eq!(vm_ep.identity.as_ref().unwrap().service_account, "legacy");
        // A known Pod keeps its own identity (here the default service account).
        let pod_ep = legacy
            .mesh_endpoint("10.1.0.6:80".parse().unwrap())
            .unwrap();
        assert_eq!(pod_ep.identity.as_ref().unwrap().service_account, "default");

        // MESH_EXTERNAL (the default): never HBONE, whatever its namespace says.
        let outside = cluster(
            &world,
            NsName::new("vm", "outside"),
            "api.example.com",
            80,
            None,
            &mut w,
        );
        assert_eq!(outside.endpoints.len(), 1);
        assert!(outside.mesh_endpoints.is_empty());
    }

    #[test]
    fn slots_avoid_the_block_edges() {
        let r = load_str("se.yaml", ENTRIES).unwrap();
        for ip in allocate(&r.service_entries).values() {
            let IpAddr::V4(v) = ip else { panic!("{ip}") };
            assert_ne!(&v.octets()[2..], &[0, 0]);
            assert_ne!(&v.octets()[2..], &[255, 255]);
        }
    }
}
