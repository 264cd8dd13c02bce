//! VirtualServices bound to ingress and egress Gateways (`gateways: [ns/name]`, [VS-1]): their
//! `http` routes join the listeners' virtual hosts for each of their hosts, in written order,
//! VirtualServices for one host merged oldest first as Istio merges them on a gateway.

use super::World;
use super::clusters::ClusterSet;
use super::gateways::CompiledGateway;
use super::routes::{effective_hostnames, namespace_allowed};
use super::virtual_services::{Binding, VsBook, entries_for, expand};

/// Add the routes of every VirtualService naming a Gateway to that Gateway's listeners that
/// admit its namespace (`allowedRoutes`). A host that HTTPRoutes or GRPCRoutes already serve
/// on a listener keeps them (as at the waypoint, [VS-11]); the VirtualService's status says so.
pub(super) fn attach(
    book: &mut VsBook<'_>,
    world: &World<'_>,
    gateways: &mut [CompiledGateway],
    clusters: &mut ClusterSet,
) {
    for gw in gateways.iter_mut() {
        let binding = Binding::Gateway(&gw.id);
        for rank in 0..book.order.len() {
            let v = book.order[rank];
            let vs = &v.object;
            let ns = vs.metadata.namespace();
            if !binding.named_by(&vs.spec.gateways, ns) {
                continue;
            }
            // `*` stands for any host; a name with a dot also stands for itself ([VS-1]), a
            // short one for a Service in the VirtualService's namespace.
            let mut hosts: Vec<String> = Vec::new();
            for h in vs.spec.hosts.iter().filter(|h| h.as_str() != "*") {
                if h.contains('.') {
                    hosts.push(h.to_ascii_lowercase());
                }
                hosts.push(expand(h, ns));
            }
            hosts.sort();
            hosts.dedup();
            let mut admitted = false;
            for l in gw.listeners.iter_mut() {
                if !l.programmed || !l.allows_kind("HTTPRoute") || !namespace_allowed(l, ns, world)
                {
                    continue;
                }
                let effective = effective_hostnames(l.spec.hostname.as_deref(), &hosts);
                if effective.is_empty() {
                    continue;
                }
                admitted = true;
                let entries = entries_for(
                    v,
                    rank as u32,
                    &binding,
                    l.spec.port,
                    world,
                    clusters,
                    &mut book.problems[rank],
                );
                for host in effective {
                    let bucket = l.hosts.entry(host.clone()).or_default();
                    if bucket.iter().any(|e| e.order.is_none()) {
                        let mut applied: Vec<String> = Vec::new();
                        for e in bucket.iter().filter(|e| e.order.is_none()) {
                            let name = format!("{} {}/{}", e.id.kind, e.id.namespace, e.id.name);
                            if !applied.contains(&name) {
                                applied.push(name);
                            }
                        }
                        let at = format!("Gateway {} listener {}", gw.id, l.spec.name);
                        book.set_aside(rank, &host, at, applied);
                        continue;
                    }
                    book.used[rank] = true;
                    bucket.extend(entries.iter().cloned());
                }
            }
            if !admitted {
                book.problems[rank].push(format!(
                    "spec.gateways: no listener of Gateway {} admits it (hostname, protocol or allowedRoutes.namespaces)",
                    gw.id
                ));
            }
        }
    }
}
