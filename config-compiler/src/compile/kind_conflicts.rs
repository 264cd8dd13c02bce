//! [GR-3] An HTTPRoute and a GRPCRoute on one listener with intersecting hostnames: only the
//! older (then alphabetically first `namespace/name`) is served there; the other loses that
//! listener, and its parent status says `Accepted=False` once it is served on none of the
//! Gateway's listeners.

use super::gateways::CompiledGateway;
use crate::hostname;
use crate::resources::NsName;
use crate::status::{Condition, ObjectStatus};
use std::collections::{BTreeMap, BTreeSet};

/// A route on a listener: kind, namespace/name.
type RouteKey = (&'static str, NsName);

/// Whether two effective hostnames (`*` = any) can both match one request host.
fn overlap(a: &str, b: &str) -> bool {
    a == "*" || b == "*" || hostname::intersect(Some(a), b).is_some()
}

/// Drop the losing routes from each listener and mark their parent status.
pub(super) fn resolve(gateways: &mut [CompiledGateway], statuses: &mut [ObjectStatus]) {
    for gw in gateways.iter_mut() {
        // Per route: the listeners it lost and the listeners it is on.
        let mut lost: BTreeMap<RouteKey, BTreeSet<usize>> = BTreeMap::new();
        let mut on: BTreeMap<RouteKey, BTreeSet<usize>> = BTreeMap::new();
        for (li, l) in gw.listeners.iter_mut().enumerate() {
            // Each route's hosts and age on this listener.
            let mut routes: BTreeMap<RouteKey, (String, BTreeSet<String>)> = BTreeMap::new();
            for (host, entries) in &l.hosts {
                for e in entries {
                    let key = (e.id.kind, NsName::new(&e.id.namespace, &e.id.name));
                    let r = routes
                        .entry(key)
                        .or_insert_with(|| (e.created.clone(), BTreeSet::new()));
                    r.1.insert(host.clone());
                }
            }
            for key in routes.keys() {
                on.entry(key.clone()).or_default().insert(li);
            }
            let losers: BTreeSet<RouteKey> = routes
                .iter()
                .filter(|(k, _)| k.0 == "HTTPRoute")
                .flat_map(|(h, (h_age, h_hosts))| {
                    routes
                        .iter()
                        .filter(|(k, _)| k.0 == "GRPCRoute")
                        .filter(move |(_, (_, g_hosts))| {
                            h_hosts
                                .iter()
                                .any(|a| g_hosts.iter().any(|b| overlap(a, b)))
                        })
                        .map(move |(g, (g_age, _))| {
                            // Older wins; on a tie, the first namespace/name.
                            let h_first = (h_age, &h.1) <= (g_age, &g.1);
                            if h_first { g.clone() } else { h.clone() }
                        })
                })
                .collect();
            if losers.is_empty() {
                continue;
            }
            for entries in l.hosts.values_mut() {
                entries.retain(|e| {
                    !losers.contains(&(e.id.kind, NsName::new(&e.id.namespace, &e.id.name)))
                });
            }
            l.hosts.retain(|_, entries| !entries.is_empty());
            for key in losers {
                l.status.attached_routes = l.status.attached_routes.saturating_sub(1);
                lost.entry(key).or_default().insert(li);
            }
        }
        for (key, lost_on) in lost {
            let served_elsewhere = on.get(&key).is_some_and(|all| all.len() > lost_on.len());
            if served_elsewhere {
                continue;
            }
            let Some(status) = statuses.iter_mut().find(|s| {
                s.kind == key.0 && s.namespace == key.1.namespace && s.name == key.1.name
            }) else {
                continue;
            };
            for p in &mut status.parents {
                let ns = p
                    .parent_ref
                    .namespace
                    .as_deref()
                    .unwrap_or(&status.namespace);
                let is_gateway = p.parent_ref.kind.as_deref().unwrap_or("Gateway") == "Gateway";
                if is_gateway && ns == gw.id.namespace && p.parent_ref.name == gw.id.name {
                    let generation = p
                        .conditions
                        .get("Accepted")
                        .and_then(|c| c.observed_generation);
                    p.conditions.set(Condition::new(
                        "Accepted",
                        false,
                        "NotAllowedByListeners",
                        "an older route of the other kind (HTTPRoute/GRPCRoute) serves an \
                         intersecting hostname on this Gateway's listeners",
                    ));
                    p.conditions.observe(generation);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::overlap;

    #[test]
    fn hostnames_overlap_when_one_request_could_match_both() {
        assert!(overlap("*", "a.example.com"));
        assert!(overlap("*.example.com", "a.example.com"));
        assert!(overlap("a.example.com", "*.example.com"));
        assert!(overlap("*.example.com", "*.a.example.com"));
        assert!(!overlap("a.example.com", "b.example.com"));
        assert!(!overlap("*.example.com", "*.example.org"));
    }
}
