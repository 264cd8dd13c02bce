//! Istio's ServiceEntry ([SE-1]..[SE-4]): hosts outside (or beside) the Kubernetes Services,
//! their ports, how their endpoints are found, and the label that sends them through a waypoint.

use super::meta::ObjectMeta;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An Istio ServiceEntry (`networking.istio.io` v1, v1beta1, v1alpha3).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ServiceEntry {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Spec.
    #[serde(default)]
    pub spec: ServiceEntrySpec,
}

/// ServiceEntry spec (the fields this build reads).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceEntrySpec {
    /// FQDNs (or `*.` wildcards) the entry stands for.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Virtual IPs (or CIDRs) that address it.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Its ports.
    #[serde(default)]
    pub ports: Vec<ServiceEntryPort>,
    /// `MESH_EXTERNAL` (default) or `MESH_INTERNAL`.
    #[serde(default)]
    pub location: Option<String>,
    /// `NONE` (default), `STATIC`, `DNS`, `DNS_ROUND_ROBIN` or `DYNAMIC_DNS`.
    #[serde(default)]
    pub resolution: Option<String>,
    /// Endpoints (WorkloadEntry values).
    #[serde(default)]
    pub endpoints: Vec<WorkloadEntrySpec>,
    /// Namespaces the entry is visible to (`.` own, `*` all).
    #[serde(default)]
    pub export_to: Vec<String>,
    /// `MESH_INTERNAL` entries may select Pods/WorkloadEntries instead of listing endpoints.
    #[serde(default)]
    pub workload_selector: Option<WorkloadSelector>,
}

/// `workloadSelector`: labels of the workloads behind the entry.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct WorkloadSelector {
    /// Labels to match.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// An Istio WorkloadEntry (`networking.istio.io` v1, v1beta1, v1alpha3): a workload outside
/// Kubernetes (a VM), selected by a ServiceEntry's `workloadSelector` like a Pod.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct WorkloadEntry {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Spec.
    #[serde(default)]
    pub spec: WorkloadEntrySpec,
}

/// One ServiceEntry port.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceEntryPort {
    /// The port clients address.
    pub number: u16,
    /// Its name (endpoints map names to their own port numbers).
    #[serde(default)]
    pub name: Option<String>,
    /// `HTTP`, `HTTPS`, `GRPC`, `HTTP2`, `TCP`, `TLS`, `MONGO`, ….
    #[serde(default)]
    pub protocol: Option<String>,
    /// The port endpoints listen on when they do not say.
    #[serde(default)]
    pub target_port: Option<u16>,
}

/// A WorkloadEntry spec: one endpoint.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadEntrySpec {
    /// IP address or DNS name.
    #[serde(default)]
    pub address: Option<String>,
    /// Port name → the port this endpoint listens on.
    #[serde(default)]
    pub ports: BTreeMap<String, u16>,
    /// Labels (DestinationRule subsets; `istio.io/dataplane-mode`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The service account the workload runs as (its mesh identity, in the entry's namespace).
    #[serde(default)]
    pub service_account: Option<String>,
}

impl ServiceEntryPort {
    /// [SE-1] Traffic on this port is not HTTP: spliced as TCP.
    pub fn is_opaque(&self) -> bool {
        !matches!(
            self.protocol
                .as_deref()
                .unwrap_or("TCP")
                .to_ascii_uppercase()
                .as_str(),
            "HTTP" | "HTTP2" | "GRPC" | "GRPC-WEB"
        )
    }

    /// [SE-3] The port an endpoint is reached on: its own port for this port's name, else
    /// `targetPort`, else `number`.
    pub fn target_for(&self, endpoint: Option<&WorkloadEntrySpec>) -> u16 {
        endpoint
            .zip(self.name.as_ref())
            .and_then(|(e, n)| e.ports.get(n).copied())
            .or(self.target_port)
            .unwrap_or(self.number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(protocol: Option<&str>, target: Option<u16>) -> ServiceEntryPort {
        ServiceEntryPort {
            number: 80,
            name: Some("http".into()),
            protocol: protocol.map(str::to_string),
            target_port: target,
        }
    }

    #[test]
    fn only_http_protocols_are_served_as_http_se_1() {
        assert!(!port(Some("HTTP"), None).is_opaque());
        assert!(!port(Some("grpc"), None).is_opaque());
        assert!(port(Some("HTTPS"), None).is_opaque());
        assert!(port(Some("TLS"), None).is_opaque());
        assert!(port(None, None).is_opaque());
    }

    #[test]
    fn an_endpoint_port_beats_target_port_which_beats_the_number_se_3() {
        let ep = WorkloadEntrySpec {
            ports: [("http".to_string(), 9000)].into(),
            ..Default::default()
        };
        assert_eq!(port(None, Some(443)).target_for(Some(&ep)), 9000);
        assert_eq!(port(None, Some(443)).target_for(None), 443);
        assert_eq!(port(None, None).target_for(None), 80);
    }
}
