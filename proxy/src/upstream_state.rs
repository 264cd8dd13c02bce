//! Runtime state of upstream clusters that must outlive one Snapshot ([DR-3], [DR-4], [DR-5]):
//! per cluster the active-request count (connection-pool limits) and round-robin position; per
//! endpoint the in-flight requests (least-request balancing) and outlier state.
//!
//! The state is keyed by cluster name (and owner) and endpoint address. When a Snapshot is
//! published, [`UpstreamStates::carry`] builds the table for it (indexed like `Snapshot::clusters`),
//! reusing the previous table's `Arc`s for every cluster name and endpoint address that is
//! still there, so a hot reload keeps ejections and counts of unchanged endpoints. Requests
//! already in flight hold `Arc`s to what they counted against, so their releases land on the
//! same counters whatever was published since. Nothing here takes a lock.

use crate::outlier::OutlierState;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Instant;
use waygate_config::Snapshot;

/// One endpoint's state.
#[derive(Debug)]
pub struct EndpointState {
    /// Its address.
    pub addr: SocketAddr,
    in_flight: AtomicU32,
    /// Outlier detection.
    pub outlier: OutlierState,
}

impl EndpointState {
    fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            in_flight: AtomicU32::new(0),
            outlier: OutlierState::default(),
        }
    }

    /// Requests sent to it and not finished.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// Counters of a whole cluster.
#[derive(Debug, Default)]
pub struct ClusterCounters {
    active: AtomicU32,
    /// Round-robin position.
    pub(crate) cursor: AtomicUsize,
}

/// One cluster's state, its endpoints in `Cluster::endpoints` order.
#[derive(Debug)]
pub struct ClusterState {
    /// The cluster's name and owner (`<name> <ns>/<service or entry>`): two ServiceEntries
    /// of one host in different namespaces share a name but not their state.
    pub name: String,
    counters: Arc<ClusterCounters>,
    endpoints: Vec<Arc<EndpointState>>,
}

impl ClusterState {
    /// The state of endpoint `i` (in the Snapshot cluster's order).
    pub fn endpoint(&self, i: usize) -> Option<&Arc<EndpointState>> {
        self.endpoints.get(i)
    }

    /// The state of the endpoint at `addr`.
    pub fn endpoint_at(&self, addr: SocketAddr) -> Option<&Arc<EndpointState>> {
        self.endpoints.iter().find(|e| e.addr == addr)
    }

    /// Every endpoint's state.
    pub fn endpoints(&self) -> &[Arc<EndpointState>] {
        &self.endpoints
    }

    /// The cluster-wide counters.
    pub fn counters(&self) -> &ClusterCounters {
        &self.counters
    }

    /// [DR-3] Admit one more request unless `max` are active already.
    pub fn admit(&self, max: u32) -> Option<Admitted> {
        let before = self.counters.active.fetch_add(1, Ordering::AcqRel);
        if before >= max {
            self.counters.active.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Admitted(self.counters.clone()))
    }

    /// Requests admitted and not finished.
    pub fn active(&self) -> u32 {
        self.counters.active.load(Ordering::Relaxed)
    }
}

/// A request counted against its cluster's limit until dropped.
#[derive(Debug)]
pub struct Admitted(Arc<ClusterCounters>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An attempt counted as in flight at its endpoint until dropped.
#[derive(Debug)]
pub struct InFlight(pub Arc<EndpointState>);

impl InFlight {
    /// Count one attempt at `endpoint`.
    pub fn start(endpoint: Arc<EndpointState>) -> Self {
        endpoint.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(endpoint)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The state of every cluster of one Snapshot, indexed like `Snapshot::clusters`.
#[derive(Debug)]
pub struct UpstreamStates {
    clusters: Vec<Arc<ClusterState>>,
    /// The clock's zero, shared by every table built from this one.
    epoch: Instant,
}

impl Default for UpstreamStates {
    fn default() -> Self {
        Self {
            clusters: Vec::new(),
            epoch: Instant::now(),
        }
    }
}

impl UpstreamStates {
    /// The table for `snapshot`, keeping `previous`'s state for every cluster name and
    /// endpoint address they share.
    pub fn carry(snapshot: &Snapshot, previous: &UpstreamStates) -> Self {
        let old: HashMap<&str, &ClusterState> = previous
            .clusters
            .iter()
            .map(|c| (c.name.as_str(), c.as_ref()))
            .collect();
        let key = |c: &waygate_config::snapshot::Cluster| {
            format!("{} {}/{}", c.name, c.service.namespace, c.service.name)
        };
        let clusters = snapshot
            .clusters
            .iter()
            .map(|c| {
                let name = key(c);
                let before = old.get(name.as_str());
                let endpoints = c
                    .endpoints
                    .iter()
                    .map(|addr| {
                        before
                            .and_then(|b| b.endpoint_at(*addr))
                            .cloned()
                            .unwrap_or_else(|| Arc::new(EndpointState::new(*addr)))
                    })
                    .collect();
                Arc::new(ClusterState {
                    name,
                    counters: before.map(|b| b.counters.clone()).unwrap_or_default(),
                    endpoints,
                })
            })
            .collect();
        Self {
            clusters,
            epoch: previous.epoch,
        }
    }

    /// The state of cluster `index`.
    pub fn cluster(&self, index: usize) -> Option<&Arc<ClusterState>> {
        self.clusters.get(index)
    }

    /// Milliseconds since the epoch: the clock outlier detection runs on.
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(clusters: &[(&str, &[&str])]) -> Snapshot {
        let mut s = Snapshot::default();
        for (name, eps) in clusters {
            s.clusters.push(waygate_config::snapshot::Cluster {
                name: name.to_string(),
                service: waygate_config::NsName::new("ns", name),
                port: 80,
                app_protocol: None,
                endpoints: eps.iter().map(|e| e.parse().unwrap()).collect(),
                tls: None,
                tls_error: None,
                mesh_endpoints: Vec::new(),
                via_waypoint: None,
                resolve: None,
                cursor: AtomicUsize::new(0),
                subset: None,
                original_destination_port: None,
                policy: None,
            });
        }
        s
    }

    #[test]
    fn state_survives_a_reload_for_unchanged_clusters_and_endpoints() {
        let first = UpstreamStates::carry(
            &snapshot(&[
                ("a", &["10.0.0.1:80", "10.0.0.2:80"]),
                ("b", &["10.0.0.9:80"]),
            ]),
            &UpstreamStates::default(),
        );
        let a = first.cluster(0).unwrap();
        let held = a.admit(10).unwrap();
        let flight = InFlight::start(a.endpoint(1).unwrap().clone());
        // Reload: `b` goes, `a` loses one endpoint and gains another, and moves to index 1.
        let second = UpstreamStates::carry(
            &snapshot(&[
                ("c", &["10.0.0.5:80"]),
                ("a", &["10.0.0.2:80", "10.0.0.3:80"]),
            ]),
            &first,
        );
        let a2 = second.cluster(1).unwrap();
        assert_eq!(a2.active(), 1, "the cluster's count carried over");
        assert_eq!(
            a2.endpoint(0).unwrap().in_flight(),
            1,
            "10.0.0.2 kept its state"
        );
        assert_eq!(a2.endpoint(1).unwrap().in_flight(), 0, "10.0.0.3 is new");
        assert!(Arc::ptr_eq(a2.endpoint(0).unwrap(), a.endpoint(1).unwrap()));
        // Releasing what was taken before the reload lands on the carried counters.
        drop((held, flight));
        assert_eq!(a2.active(), 0);
        assert_eq!(a2.endpoint(0).unwrap().in_flight(), 0);
        assert_eq!(second.cluster(0).unwrap().active(), 0);
    }

    #[test]
    fn admit_refuses_over_the_limit_dr_3() {
        let t = UpstreamStates::carry(
            &snapshot(&[("a", &["10.0.0.1:80"])]),
            &UpstreamStates::default(),
        );
        let a = t.cluster(0).unwrap();
        let one = a.admit(1);
        assert!(one.is_some());
        assert!(a.admit(1).is_none());
        assert_eq!(a.active(), 1);
        drop(one);
        assert!(a.admit(1).is_some());
    }
}
