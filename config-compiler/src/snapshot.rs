//! The Snapshot: the immutable, indexed world the proxy serves from, built by [`crate::compile`].

use crate::hostname;
use crate::request_match::RequestView;
use crate::resources::NsName;
use crate::route_table::{RouteEntry, RouteTable, VirtualHost};
use crate::tls_material::{ServerCert, TrustAnchors};
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Everything the data plane needs, compiled and indexed. Deterministic for a given input.
#[derive(Debug, Default, Serialize)]
pub struct Snapshot {
    /// Gateways this proxy serves, sorted by namespace/name.
    pub gateways: Vec<GatewayIr>,
    /// Upstream clusters, referenced by index from route backends.
    pub clusters: Vec<Cluster>,
    /// [VS-11] Where a VirtualService was set aside because Gateway API routes serve the same
    /// host, and which routes those are.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub precedence: Vec<PrecedenceNote>,
}

/// [VS-11] One host where HTTPRoutes/GRPCRoutes took precedence over a VirtualService.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PrecedenceNote {
    /// The host (a service host at a waypoint, a listener hostname at a Gateway).
    pub host: String,
    /// Where: `waypoint <ns>/<name> port <n>` or `Gateway <ns>/<name> listener <name>`.
    pub at: String,
    /// The routes that serve it, `<Kind> <ns>/<name>`.
    pub applied: Vec<String>,
    /// The VirtualService set aside, `<ns>/<name>`.
    pub ignored: String,
}

impl Snapshot {
    /// The listeners of one Gateway on one port.
    pub fn port(&self, gateway: &NsName, port: u16) -> Option<&PortIr> {
        self.gateways
            .iter()
            .find(|g| g.namespace == gateway.namespace && g.name == gateway.name)?
            .ports
            .iter()
            .find(|p| p.port == port)
    }

    /// One served Gateway.
    pub fn gateway(&self, gateway: &NsName) -> Option<&GatewayIr> {
        self.gateways
            .iter()
            .find(|g| g.namespace == gateway.namespace && g.name == gateway.name)
    }

    /// Every (gateway, port) the proxy must listen on.
    pub fn bind_keys(&self) -> Vec<(NsName, u16)> {
        self.gateways
            .iter()
            .flat_map(|g| {
                g.ports
                    .iter()
                    .map(move |p| (NsName::new(&g.namespace, &g.name), p.port))
            })
            .collect()
    }

    /// Total number of route entries, for logs.
    pub fn route_count(&self) -> usize {
        self.gateways
            .iter()
            .flat_map(|g| &g.ports)
            .flat_map(|p| &p.listeners)
            .map(|l| l.routes.len())
            .sum()
    }
}

/// One Gateway's programmed listeners, grouped by port.
#[derive(Debug, Serialize)]
pub struct GatewayIr {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Ports.
    pub ports: Vec<PortIr>,
    /// The client certificate presented to backends that ask for one (`spec.tls.backend`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend_client_cert: Option<ServerCert>,
    /// A waypoint's Service ports, by the addresses HBONE clients name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mesh: Vec<MeshService>,
    /// [AP-1] The AuthorizationPolicies for all traffic through this proxy.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub authz: Vec<std::sync::Arc<waygate_filters::authz::Policy>>,
}

impl GatewayIr {
    /// The Service port a tunnel's destination (`VIP:port`) names.
    pub fn mesh_service(&self, dest: std::net::SocketAddr) -> Option<&MeshService> {
        self.mesh
            .iter()
            .find(|m| m.port == dest.port() && m.vips.contains(&dest.ip()))
            .or_else(|| {
                self.mesh.iter().find(|m| {
                    m.port == dest.port() && m.ranges.iter().any(|r| r.contains(dest.ip()))
                })
            })
    }
}

/// A Service port a waypoint serves.
#[derive(Debug, Serialize)]
pub struct MeshService {
    /// The Service (or ServiceEntry, when `entry`).
    pub service: NsName,
    /// The destination is a ServiceEntry host, not a Service.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub entry: bool,
    /// Its FQDN.
    pub host: String,
    /// Its virtual IPs.
    pub vips: Vec<std::net::IpAddr>,
    /// [SE-1] Address blocks (a ServiceEntry's CIDR `addresses`): any destination inside one
    /// is this service, when no virtual IP matched.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<waygate_filters::authz::Cidr>,
    /// The Service port.
    pub port: u16,
    /// The cluster of its endpoints (default routing).
    pub cluster: usize,
    /// Routes attached to the Service (parentRef `kind: Service`) from its own namespace (producer
    /// routes); `None`: default routing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routes: Option<RouteTable>,
    /// [GEP-1294] Routes attached from other namespaces (consumer routes): for callers from
    /// that namespace they replace the producer routes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub consumer_routes: Vec<ConsumerRoutes>,
    /// [AP-1] The AuthorizationPolicies targeting this Service or ServiceEntry (waypoint).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub authz: Vec<std::sync::Arc<waygate_filters::authz::Policy>>,
    /// Not HTTP (by `appProtocol` or port name): tunnels are spliced to an endpoint as TCP.
    pub opaque: bool,
    /// Workload addressing (`istio.io/waypoint-for: workload`/`all`): this entry is one
    /// endpoint, by its own address, and its traffic goes to that endpoint only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned: Option<SocketAddr>,
}

/// The routes one namespace attached to another namespace's Service.
#[derive(Debug, Serialize)]
pub struct ConsumerRoutes {
    /// The routes' (and their callers') namespace.
    pub namespace: String,
    /// The routes.
    pub routes: RouteTable,
}

impl MeshService {
    /// The routes for a caller from namespace `caller`: its own consumer routes, else the
    /// producer routes.
    pub fn routes_for(&self, caller: Option<&str>) -> Option<&RouteTable> {
        caller
            .and_then(|ns| self.consumer_routes.iter().find(|c| c.namespace == ns))
            .map(|c| &c.routes)
            .or(self.routes.as_ref())
    }
}

/// The listeners sharing one port, most specific hostname first ([GW-3]).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortIr {
    /// The port as configured on the Gateway.
    pub port: u16,
    /// Listeners.
    pub listeners: Vec<ListenerIr>,
    /// Client-certificate validation for the TLS handshakes on this port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_validation: Option<ClientValidation>,
}

/// How clients must prove who they are on an HTTPS port (`spec.tls.frontend`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientValidation {
    /// The CAs a client certificate must chain to.
    pub anchors: TrustAnchors,
    /// `AllowInsecureFallback`: clients without a valid certificate are still served (without
    /// an identity).
    pub insecure_fallback: bool,
}

/// What a TLS-family listener does with the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TlsMode {
    /// The proxy completes the handshake with its own certificate.
    Terminate,
    /// The bytes go to the backend untouched; SNI picks the route.
    Passthrough,
}

/// An HTTPS or TLS listener's TLS settings.
#[derive(Debug, Clone, Serialize)]
pub struct ListenerTls {
    /// Terminate or pass through.
    pub mode: TlsMode,
    /// Certificates for `Terminate`, in `certificateRefs` order (the first one is served).
    pub certificates: Vec<ServerCert>,
}

/// Why a request found no route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRoute {
    /// No listener on the port takes this host.
    NoListener,
    /// The listener has no routes for this host.
    NoHost,
    /// The host has routes but none matched.
    NoMatch,
}

/// A successful route lookup.
#[derive(Debug, Clone, Copy)]
pub struct RouteMatch<'a> {
    /// The listener that took the request.
    pub listener: &'a ListenerIr,
    /// The virtual host.
    pub virtual_host: &'a VirtualHost,
    /// The winning entry.
    pub entry: &'a RouteEntry,
}

impl PortIr {
    /// The listener that takes a normalised host: the most specific whose hostname matches.
    pub fn listener(&self, host: &str) -> Option<&ListenerIr> {
        self.listeners.iter().find(|l| match l.hostname.as_deref() {
            None => true,
            Some(h) => hostname::matches(h, host),
        })
    }

    /// Route a request: listener by host, virtual host, then the first matching entry.
    pub fn route<'a>(&'a self, req: &RequestView<'_>) -> Result<RouteMatch<'a>, NoRoute> {
        let listener = self.listener(req.host).ok_or(NoRoute::NoListener)?;
        let virtual_host = listener
            .routes
            .virtual_host(req.host)
            .ok_or(NoRoute::NoHost)?;
        let entry = virtual_host.find(req).ok_or(NoRoute::NoMatch)?;
        Ok(RouteMatch {
            listener,
            virtual_host,
            entry,
        })
    }
}

/// One programmed listener.
#[derive(Debug, Serialize)]
pub struct ListenerIr {
    /// Listener name.
    pub name: String,
    /// Hostname, if any.
    pub hostname: Option<String>,
    /// Protocol (`HTTP`).
    pub protocol: String,
    /// Port as configured.
    pub port: u16,
    /// TLS settings of an HTTPS or TLS listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
    /// Routes.
    pub routes: RouteTable,
}

/// An upstream cluster: one Service port and its ready endpoints (Envoy's vocabulary).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    /// `outbound|<port>|<subset>|<service>.<namespace>.svc.cluster.local`.
    pub name: String,
    /// The Service.
    pub service: NsName,
    /// The Service port.
    pub port: u16,
    /// The port's `appProtocol`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
    /// Ready endpoints.
    pub endpoints: Vec<SocketAddr>,
    /// TLS towards the endpoints (BackendTLSPolicy or DestinationRule).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<std::sync::Arc<crate::upstream_tls::UpstreamTls>>,
    /// Set when TLS is required but its settings are unusable: requests fail rather than go
    /// out in plaintext.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_error: Option<String>,
    /// [AM-1] The endpoints in the ambient mesh (their Pod, else their Namespace, is labelled
    /// `istio.io/dataplane-mode: ambient`), sorted: each is reached over HBONE at
    /// `<endpoint IP>:15008`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mesh_endpoints: Vec<MeshEndpoint>,
    /// Set when the Service is bound to a waypoint: a gateway sends its traffic there over
    /// HBONE instead of to the endpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via_waypoint: Option<ViaWaypoint>,
    /// [SE-2] `resolution: DNS`: the endpoints are whatever these names resolve to when a
    /// request needs one (`endpoints` is then empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolve: Option<DnsResolve>,
    /// Round-robin cursor (the only mutable thing, an atomic).
    #[serde(skip)]
    pub cursor: AtomicUsize,
    /// [DR-1] The DestinationRule subset these endpoints are (`outbound|<port>|<subset>|<host>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    /// [SE-2] `resolution: NONE` without endpoints: requests go to the destination the client
    /// addressed (a waypoint's HBONE `CONNECT` target), on this port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_destination_port: Option<u16>,
    /// [DR-3]..[DR-5] The effective DestinationRule traffic policy; `None`: no rule applies
    /// (round robin, no limits, no outlier detection).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<std::sync::Arc<crate::traffic_policy::TrafficPolicy>>,
}

/// An endpoint in the ambient mesh and the workload identity its node's ztunnel must present
/// for it ([HB-W5]), when its Pod is known.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshEndpoint {
    /// The endpoint.
    pub addr: SocketAddr,
    /// The Pod's namespace and service account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<WorkloadIdentity>,
}

/// A workload's namespace and service account: `spiffe://<trust domain>/ns/<ns>/sa/<sa>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct WorkloadIdentity {
    /// Namespace.
    pub namespace: String,
    /// Service account.
    pub service_account: String,
}

impl WorkloadIdentity {
    /// The SPIFFE ID in `trust_domain`.
    pub fn spiffe_id(&self, trust_domain: &str) -> String {
        format!(
            "spiffe://{trust_domain}/ns/{}/sa/{}",
            self.namespace, self.service_account
        )
    }
}

/// [SE-2] Endpoints found by DNS at request time.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsResolve {
    /// Each name to resolve, with the port its addresses are reached on.
    pub names: Vec<(String, u16)>,
    /// `DNS_ROUND_ROBIN`: only the first address of a name is used.
    pub first_only: bool,
}

/// How to reach a Service through its waypoint ([AM-2], [HB-W1]).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ViaWaypoint {
    /// The waypoint Gateway.
    pub waypoint: NsName,
    /// The waypoint's HBONE endpoints (its Service's EndpointSlices, port 15008).
    pub endpoints: Vec<SocketAddr>,
    /// The `CONNECT` authority: the Service's virtual IP and port.
    pub target: Option<SocketAddr>,
    /// The identity the waypoint's Pods run as, when they are known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<WorkloadIdentity>,
}

impl Cluster {
    /// The mesh entry of an endpoint, if it is in the ambient mesh.
    pub fn mesh_endpoint(&self, addr: SocketAddr) -> Option<&MeshEndpoint> {
        self.mesh_endpoints
            .binary_search_by(|m| m.addr.cmp(&addr))
            .ok()
            .and_then(|i| self.mesh_endpoints.get(i))
    }

    /// The next endpoint, round-robin; `None` when there are no ready endpoints.
    pub fn next_endpoint(&self) -> Option<SocketAddr> {
        if self.endpoints.is_empty() {
            return None;
        }
        let i = self.cursor.fetch_add(1, Ordering::Relaxed);
        self.endpoints.get(i % self.endpoints.len()).copied()
    }
}
