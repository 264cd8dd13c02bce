//! Input types: the Kubernetes objects as users write them (Gateway API, core), plus the loaded set.

pub mod authorization_policy;
pub mod backend_tls;
pub mod core;
pub mod destination_rule;
pub mod gateway;
pub mod grpc_route;
pub mod http_route;
pub mod listener_set;
pub mod meta;
pub mod reference_grant;
pub mod service_entry;
pub mod tls_route;
pub mod virtual_service;

pub use self::core::{ConfigMap, EndpointSlice, Namespace, Pod, Secret, Service};
pub use authorization_policy::AuthorizationPolicy;
pub use backend_tls::BackendTlsPolicy;
pub use destination_rule::DestinationRule;
pub use gateway::{Gateway, GatewayClass};
pub use grpc_route::GrpcRoute;
pub use http_route::HttpRoute;
pub use listener_set::ListenerSet;
pub use meta::{NsName, ObjectMeta, Source};
pub use reference_grant::ReferenceGrant;
pub use service_entry::{ServiceEntry, WorkloadEntry};
pub use tls_route::TlsRoute;
pub use virtual_service::VirtualService;

/// One object plus where it was read from.
#[derive(Debug, Clone)]
pub struct Sourced<T> {
    /// File and document it came from.
    pub source: Source,
    /// The object.
    pub object: T,
}

/// Every object the loader accepted, grouped by kind, in a deterministic order.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    /// Namespaces (for their labels).
    pub namespaces: Vec<Sourced<Namespace>>,
    /// GatewayClasses.
    pub gateway_classes: Vec<Sourced<GatewayClass>>,
    /// Gateways.
    pub gateways: Vec<Sourced<Gateway>>,
    /// ListenerSets (v1, and v1alpha1 `XListenerSet`).
    pub listener_sets: Vec<Sourced<ListenerSet>>,
    /// HTTPRoutes.
    pub http_routes: Vec<Sourced<HttpRoute>>,
    /// GRPCRoutes.
    pub grpc_routes: Vec<Sourced<GrpcRoute>>,
    /// TLSRoutes.
    pub tls_routes: Vec<Sourced<TlsRoute>>,
    /// ReferenceGrants (v1 and v1beta1).
    pub reference_grants: Vec<Sourced<ReferenceGrant>>,
    /// Services.
    pub services: Vec<Sourced<Service>>,
    /// EndpointSlices.
    pub endpoint_slices: Vec<Sourced<EndpointSlice>>,
    /// Pods (labels and service accounts of endpoints).
    pub pods: Vec<Sourced<Pod>>,
    /// Secrets (certificates and keys).
    pub secrets: Vec<Sourced<Secret>>,
    /// ConfigMaps (CA bundles).
    pub config_maps: Vec<Sourced<ConfigMap>>,
    /// BackendTLSPolicies.
    pub backend_tls_policies: Vec<Sourced<BackendTlsPolicy>>,
    /// DestinationRules.
    pub destination_rules: Vec<Sourced<DestinationRule>>,
    /// ServiceEntries.
    pub service_entries: Vec<Sourced<ServiceEntry>>,
    /// WorkloadEntries.
    pub workload_entries: Vec<Sourced<WorkloadEntry>>,
    /// AuthorizationPolicies.
    pub authorization_policies: Vec<Sourced<AuthorizationPolicy>>,
    /// VirtualServices.
    pub virtual_services: Vec<Sourced<VirtualService>>,
    /// Files that objects name (DestinationRule CA and client certificates), read by the
    /// loader so compiling stays free of I/O: path → content or the read error.
    pub files: std::collections::BTreeMap<String, Result<Vec<u8>, String>>,
    /// One line per kind that was read but is not handled yet.
    pub skipped: Vec<String>,
}

impl Resources {
    /// Sort every list by namespace/name so compilation is deterministic whatever the file order.
    pub fn sort(&mut self) {
        fn by_key<T>(v: &mut [Sourced<T>], key: impl Fn(&T) -> &ObjectMeta) {
            v.sort_by(|a, b| {
                let (a, b) = (key(&a.object), key(&b.object));
                (a.namespace(), &a.name).cmp(&(b.namespace(), &b.name))
            });
        }
        by_key(&mut self.namespaces, |o| &o.metadata);
        by_key(&mut self.gateway_classes, |o| &o.metadata);
        by_key(&mut self.gateways, |o| &o.metadata);
        by_key(&mut self.listener_sets, |o| &o.metadata);
        by_key(&mut self.http_routes, |o| &o.metadata);
        by_key(&mut self.grpc_routes, |o| &o.metadata);
        by_key(&mut self.tls_routes, |o| &o.metadata);
        by_key(&mut self.reference_grants, |o| &o.metadata);
        by_key(&mut self.services, |o| &o.metadata);
        by_key(&mut self.endpoint_slices, |o| &o.metadata);
        by_key(&mut self.pods, |o| &o.metadata);
        by_key(&mut self.secrets, |o| &o.metadata);
        by_key(&mut self.config_maps, |o| &o.metadata);
        by_key(&mut self.backend_tls_policies, |o| &o.metadata);
        by_key(&mut self.destination_rules, |o| &o.metadata);
        by_key(&mut self.service_entries, |o| &o.metadata);
        by_key(&mut self.workload_entries, |o| &o.metadata);
        by_key(&mut self.authorization_policies, |o| &o.metadata);
        by_key(&mut self.virtual_services, |o| &o.metadata);
    }
}
