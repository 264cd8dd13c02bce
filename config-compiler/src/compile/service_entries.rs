//! ServiceEntries in the compiled config ([SE-1]..[SE-4], [HB-W4]): the cluster of each host
//! and port (static endpoints, or names resolved by DNS when a request needs them), the
//! addresses allocated to hosts that have none, the waypoint an entry is bound to, and status.

use super::World;
use super::clusters::ClusterSet;
use super::mesh::{admits, binding, waypoint_endpoints, waypoint_identity};
use crate::resources::service_entry::ServiceEntry;
use crate::resources::{NsName, Sourced};
use crate::snapshot::{Cluster, DnsResolve, MeshEndpoint, MeshService, ViaWaypoint};
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
        // [SE-3] `workloadSelector`: the selected Pods and WorkloadEntries.
        if let Some(sel) = &e.spec.workload_selector {
            super::service_entry_workloads::selected(
                world,
                e,
                &sel.labels,
                p,
                subset,
                (&mut endpoints, &mut mesh_endpoints),
                warnings,
            );
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
                    if internal && let Some(identity) = super::service_entry_workloads::entry_endpoint_in_mesh(world, e, ep, ip) {
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
            let problems = super::service_entry_checks::validate(e);
            let mut c = Conditions::default();
            c.set(if problems.is_empty() {
                Condition::new("Accepted", true, "Accepted", "valid")
            } else {
                Condition::new(
                    "Accepted",
                    false,
                    "Invalid",
                    format!("{}; the entry is not served", problems.join("; ")),
                )
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
    fn slots_avoid_the_block_edges() {
        let r = load_str("se.yaml", ENTRIES).unwrap();
        for ip in allocate(&r.service_entries).values() {
            let IpAddr::V4(v) = ip else { panic!("{ip}") };
            assert_ne!(&v.octets()[2..], &[0, 0]);
            assert_ne!(&v.octets()[2..], &[255, 255]);
        }
    }
}
