//! The workloads behind a ServiceEntry's `workloadSelector` ([SE-3]) — Pods and WorkloadEntries
//! of its namespace — and which of its endpoints are mesh workloads ([SE-1] `location`).

use super::World;
use super::mesh::{DATAPLANE_MODE, pod_identity};
use crate::resources::service_entry::{ServiceEntry, ServiceEntryPort, WorkloadEntrySpec};
use crate::snapshot::{MeshEndpoint, WorkloadIdentity};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

/// Add the endpoints (and mesh endpoints) of the Pods and WorkloadEntries of `e`'s namespace
/// that `selector` (and `subset`, if any) select, on entry port `p`.
pub(super) fn selected(
    world: &World<'_>,
    e: &ServiceEntry,
    selector: &BTreeMap<String, String>,
    p: &ServiceEntryPort,
    subset: Option<&BTreeMap<String, String>>,
    (endpoints, mesh_endpoints): (&mut Vec<SocketAddr>, &mut Vec<MeshEndpoint>),
    warnings: &mut Vec<String>,
) {
    let ns = e.metadata.namespace();
    let internal = e.spec.location.as_deref() == Some("MESH_INTERNAL");
    let mut pods: Vec<_> = world
        .pods_in(ns)
        .filter(|pod| super::clusters::labels_match(selector, Some(&pod.metadata.labels)))
        .filter(|pod| {
            subset
                .is_none_or(|want| super::clusters::labels_match(want, Some(&pod.metadata.labels)))
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
    for we in world.workload_entries_in(ns) {
        let spec = &we.spec;
        let labels = &we.metadata.labels;
        let mut all = labels.clone();
        all.extend(spec.labels.clone());
        if !super::clusters::labels_match(selector, Some(&all))
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
/// ambient mesh; its identity is then its `serviceAccount` (else `default`) in the entry's
/// namespace. A `MESH_EXTERNAL` entry's endpoints never are, whatever their namespace says.
pub(super) fn entry_endpoint_in_mesh(
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
    // Without a `serviceAccount` the workload runs as `default`, as a Pod would: the peer must
    // still prove an identity of this namespace, not just any one of the trust domain.
    (mode.as_deref() == Some("ambient")).then(|| {
        Some(WorkloadIdentity {
            namespace: ns.to_string(),
            service_account: ep
                .service_account
                .clone()
                .unwrap_or_else(|| "default".to_string()),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::super::service_entries::cluster;
    use super::*;
    use crate::load_str;
    use crate::resources::NsName;

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
}
