//! GatewayClass acceptance, Gateway selection, listener validation and conflicts ([GC-*], [GW-*]).

use super::listener_sets::{ListenerSetState, set_statuses};
use super::{CompileOptions, GATEWAY_GROUP, World};
use crate::hostname;
use crate::resources::gateway::{AllowedListeners, ListenerSpec};
use crate::resources::{Gateway, NsName, Resources};
use crate::route_table::{RouteEntry, RouteTable, VirtualHost};
use crate::snapshot::{ClientValidation, GatewayIr, ListenerIr, ListenerTls, PortIr};
use crate::status::{Condition, Conditions, ListenerStatus, ObjectStatus, StatusReport};
use crate::tls_material::ServerCert;
use std::collections::BTreeMap;

/// Istio's controllers that this proxy serves ([GC-2]).
pub const ISTIO_CONTROLLERS: [&str; 2] =
    ["istio.io/gateway-controller", "istio.io/mesh-controller"];

/// Istio's built-in class names, served even without a GatewayClass object ([GC-2]).
pub const ISTIO_CLASSES: [&str; 2] = ["istio", "istio-waypoint"];

/// Route kinds an HTTP-family listener can hold in this build.
const HTTP_KINDS: [&str; 2] = ["HTTPRoute", "GRPCRoute"];

/// The route kinds this build supports on a listener of `protocol` ([GW-6]): HTTPRoute and
/// GRPCRoute on HTTP(S) (and HBONE), TLSRoute on TLS; none on TCP, UDP (their route kinds are not
/// supported yet) or an unknown protocol.
fn kinds_for(protocol: &str) -> &'static [&'static str] {
    match protocol {
        "HTTP" | "HTTPS" | "HBONE" => &HTTP_KINDS,
        "TLS" => &["TLSRoute"],
        _ => &[],
    }
}

/// Status of the GatewayClasses that name one of our controllers ([GC-1]).
pub(super) fn class_status(r: &Resources) -> Vec<ObjectStatus> {
    r.gateway_classes
        .iter()
        .filter(|c| ISTIO_CONTROLLERS.contains(&c.object.spec.controller_name.as_str()))
        .map(|c| {
            let m = &c.object.metadata;
            let mut s = ObjectStatus::new("GatewayClass", "", &m.name);
            s.conditions.set(Condition::new(
                "Accepted",
                true,
                "Accepted",
                "Handled by waygate",
            ));
            s.conditions.observe(m.generation);
            s
        })
        .collect()
}

/// Whether a Gateway's class is one of Istio's.
fn is_ours(r: &Resources, gw: &Gateway) -> bool {
    let class = gw.spec.gateway_class_name.as_str();
    match r
        .gateway_classes
        .iter()
        .find(|c| c.object.metadata.name == class)
    {
        Some(c) => ISTIO_CONTROLLERS.contains(&c.object.spec.controller_name.as_str()),
        None => ISTIO_CLASSES.contains(&class),
    }
}

/// A Gateway being compiled: its listeners' state, filled in by route attachment.
pub(crate) struct CompiledGateway {
    pub id: NsName,
    /// Why the Gateway as a whole is not accepted (`InvalidParameters`), if it is not.
    invalid: Option<(&'static str, String)>,
    source: Option<String>,
    generation: Option<i64>,
    /// The Gateway's own listeners first, then those of accepted ListenerSets ([LS-2]).
    pub listeners: Vec<ListenerState>,
    /// `spec.allowedListeners`, as written.
    pub allowed_listeners: Option<AllowedListeners>,
    /// ListenerSets naming this Gateway, in precedence order.
    pub listener_sets: Vec<ListenerSetState>,
    /// Client-certificate validation per HTTPS port.
    client_validation: BTreeMap<u16, ClientValidation>,
    /// Some port accepts clients without a valid certificate.
    insecure_frontend: bool,
    /// `spec.tls.backend.clientCertificateRef`, resolved.
    backend_cert: Result<Option<ServerCert>, super::tls::RefError>,
}

/// One listener being compiled.
pub(crate) struct ListenerState {
    pub spec: ListenerSpec,
    /// The ListenerSet that declares it; `None` for the Gateway's own listeners.
    pub owner: Option<NsName>,
    /// Namespace of the declaring object (`allowedRoutes` `Same`, [LS-4]).
    pub namespace: String,
    /// Valid and not conflicted: it is served and routes may attach.
    pub programmed: bool,
    pub status: ListenerStatus,
    /// Resolved TLS settings of an HTTPS or TLS listener.
    pub tls: Option<ListenerTls>,
    /// Effective hostname → entries.
    pub hosts: BTreeMap<String, Vec<RouteEntry>>,
}

impl ListenerState {
    /// Whether the listener allows a route of this kind.
    pub fn allows_kind(&self, kind: &str) -> bool {
        self.status.supported_kinds.iter().any(|k| k == kind)
    }
}

/// Select and validate the Gateways this proxy serves.
pub(super) fn compile_gateways(
    r: &Resources,
    options: &CompileOptions,
    world: &World<'_>,
    report: &mut StatusReport,
) -> Vec<CompiledGateway> {
    for wanted in &options.gateways {
        let found = r
            .gateways
            .iter()
            .any(|g| g.object.metadata.ns_name() == *wanted);
        if !found {
            report
                .warnings
                .push(format!("--gateway {wanted}: no such Gateway in the config"));
        }
    }
    r.gateways
        .iter()
        .filter(|g| {
            if options.gateways.is_empty() {
                is_ours(r, &g.object)
            } else {
                options.gateways.contains(&g.object.metadata.ns_name())
            }
        })
        .map(|g| {
            let mut gw = compile_gateway(&g.object, world);
            gw.source = Some(g.source.to_string());
            gw
        })
        .collect()
}

fn compile_gateway(gw: &Gateway, world: &World<'_>) -> CompiledGateway {
    let ns = gw.metadata.namespace();
    let mut listeners: Vec<ListenerState> = gw
        .spec
        .listeners
        .iter()
        .map(|l| validate_listener(l, None, ns, world))
        .collect();
    let (client_validation, insecure_frontend) =
        super::tls::frontend_validation(gw, &mut listeners, world);
    mark_conflicts(&mut listeners);
    let mut seen = std::collections::HashSet::new();
    for l in &mut listeners {
        if !seen.insert(l.spec.name.clone()) {
            l.programmed = false;
            l.status.conditions.set(Condition::new(
                "Accepted",
                false,
                "UnsupportedValue",
                format!("listener name {:?} is used twice", l.spec.name),
            ));
        }
        if !l.programmed {
            l.status.conditions.set(Condition::new(
                "Programmed",
                false,
                "Invalid",
                "Listener is not served",
            ));
        }
    }
    CompiledGateway {
        id: gw.metadata.ns_name(),
        invalid: invalid_parameters(gw),
        source: None,
        generation: gw.metadata.generation,
        listeners,
        allowed_listeners: gw.spec.allowed_listeners.clone(),
        listener_sets: Vec::new(),
        client_validation,
        insecure_frontend,
        backend_cert: super::tls::backend_client_cert(gw, world),
    }
}

/// [GW-7] `spec.infrastructure.parametersRef`: Istio reads a ConfigMap there; this build uses
/// none of its settings, and any other kind makes the Gateway `Accepted=False/InvalidParameters`.
fn invalid_parameters(gw: &Gateway) -> Option<(&'static str, String)> {
    let r = gw.spec.infrastructure.as_ref()?.parameters_ref.as_ref()?;
    if r.group.is_empty() && r.kind == "ConfigMap" {
        return None;
    }
    Some((
        "InvalidParameters",
        format!(
            "parametersRef {}/{} {:?} is not supported (only a ConfigMap is)",
            r.group, r.kind, r.name
        ),
    ))
}

/// Validate one listener declared by the Gateway (`owner` `None`) or a ListenerSet in `namespace`.
pub(super) fn validate_listener(
    spec: &ListenerSpec,
    owner: Option<NsName>,
    namespace: &str,
    world: &World<'_>,
) -> ListenerState {
    let mut c = Conditions::default();
    let mut programmed = true;
    let reject = |c: &mut Conditions, reason: &str, msg: String| {
        c.set(Condition::new("Accepted", false, reason, msg));
    };
    match spec.protocol.as_str() {
        "HTTP" | "HTTPS" | "TLS" | "HBONE" => {}
        "TCP" | "UDP" => {
            programmed = false;
            reject(
                &mut c,
                "UnsupportedProtocol",
                format!(
                    "protocol {} is not supported by this build yet",
                    spec.protocol
                ),
            );
        }
        other => {
            programmed = false;
            reject(
                &mut c,
                "UnsupportedProtocol",
                format!("unknown protocol {other:?}"),
            );
        }
    }
    if let Some(h) = spec.hostname.as_deref().filter(|h| !h.is_empty())
        && let Err(e) = hostname::validate(h)
    {
        programmed = false;
        reject(&mut c, "UnsupportedValue", e);
    }
    if spec.protocol == "HTTP" && spec.tls.is_some() {
        programmed = false;
        reject(
            &mut c,
            "UnsupportedValue",
            "tls is not allowed on an HTTP listener".into(),
        );
    }
    if spec.port == 0 {
        programmed = false;
        reject(&mut c, "PortUnavailable", "port 0 is not valid".into());
    }
    if c.get("Accepted").is_none() {
        c.set(Condition::new(
            "Accepted",
            true,
            "Accepted",
            "Listener is valid",
        ));
    }

    // [GW-6] allowedRoutes.kinds: default by protocol; unknown kinds → InvalidRouteKinds.
    let kinds_here = kinds_for(&spec.protocol);
    let mut supported = Vec::new();
    let mut invalid = Vec::new();
    match spec.allowed_routes.as_ref().and_then(|a| a.kinds.as_ref()) {
        Some(kinds) if !kinds.is_empty() => {
            for k in kinds {
                let group = k.group.as_deref().unwrap_or(GATEWAY_GROUP);
                if group == GATEWAY_GROUP && kinds_here.contains(&k.kind.as_str()) {
                    if !supported.contains(&k.kind) {
                        supported.push(k.kind.clone());
                    }
                } else {
                    invalid.push(format!("{group}/{}", k.kind));
                }
            }
        }
        _ => supported.extend(kinds_here.iter().map(|k| k.to_string())),
    }
    if invalid.is_empty() {
        c.set(Condition::new(
            "ResolvedRefs",
            true,
            "ResolvedRefs",
            "All references resolved",
        ));
    } else {
        c.set(Condition::new(
            "ResolvedRefs",
            false,
            "InvalidRouteKinds",
            format!("unsupported route kinds: {}", invalid.join(", ")),
        ));
    }
    c.set(Condition::new(
        "Conflicted",
        false,
        "NoConflicts",
        "No conflicts",
    ));
    if programmed {
        c.set(Condition::new(
            "Programmed",
            true,
            "Programmed",
            "Listener is served",
        ));
    }
    let mut l = ListenerState {
        spec: spec.clone(),
        owner,
        namespace: namespace.to_string(),
        programmed,
        status: ListenerStatus {
            name: spec.name.clone(),
            port: spec.port,
            attached_routes: 0,
            supported_kinds: supported,
            conditions: c,
        },
        tls: None,
        hosts: BTreeMap::new(),
    };
    super::tls::resolve_listener_tls(&mut l, world);
    if !l.programmed {
        l.status.conditions.set(Condition::new(
            "Programmed",
            false,
            "Invalid",
            "Listener is not served",
        ));
    }
    l
}

/// [GW-5]: same port needs compatible protocols and distinct hostnames; conflicts are not served.
fn mark_conflicts(listeners: &mut [ListenerState]) {
    let n = listeners.len();
    let mut conflict: Vec<Option<(&'static str, String)>> = vec![None; n];
    for i in 0..n {
        for j in 0..n {
            if i == j {
                continue;
            }
            if let Some(c) = conflict_between(&listeners[i].spec, &listeners[j].spec) {
                if c.0 == "ProtocolConflict" {
                    conflict[i] = Some(c);
                } else {
                    conflict[i].get_or_insert(c);
                }
            }
        }
    }
    for (l, c) in listeners.iter_mut().zip(conflict) {
        if let Some((reason, msg)) = c {
            l.programmed = false;
            l.status
                .conditions
                .set(Condition::new("Conflicted", true, reason, msg));
        }
    }
}

/// [GW-5] Why listener `a` conflicts with listener `b`, if it does: a different protocol family
/// on the same port (`ProtocolConflict`), or the same port and hostname (`HostnameConflict`).
pub(super) fn conflict_between(
    a: &ListenerSpec,
    b: &ListenerSpec,
) -> Option<(&'static str, String)> {
    let family = |p: &str| match p {
        "HTTPS" | "TLS" => "tls",
        "HTTP" => "http",
        "TCP" => "tcp",
        "UDP" => "udp",
        _ => "other",
    };
    if a.port != b.port {
        return None;
    }
    if family(&a.protocol) != family(&b.protocol) {
        return Some((
            "ProtocolConflict",
            format!(
                "port {} is also used by listener {} with protocol {}",
                a.port, b.name, b.protocol
            ),
        ));
    }
    let same_host = a.hostname.as_deref().unwrap_or("") == b.hostname.as_deref().unwrap_or("");
    (matches!(family(&a.protocol), "tcp" | "udp") || same_host).then(|| {
        (
            "HostnameConflict",
            format!("listener {} uses the same port and hostname", b.name),
        )
    })
}

impl CompiledGateway {
    /// Gateway status and its served part.
    pub(super) fn finish(mut self) -> (ObjectStatus, Vec<ObjectStatus>, GatewayIr) {
        if let Some((_, msg)) = &self.invalid {
            // Nothing of an invalid Gateway is served.
            for l in &mut self.listeners {
                l.programmed = false;
                l.status.conditions.set(Condition::new(
                    "Programmed",
                    false,
                    "Invalid",
                    msg.clone(),
                ));
            }
        }
        let mut status = ObjectStatus::new("Gateway", &self.id.namespace, &self.id.name);
        status.source = self.source;
        let own = || self.listeners.iter().filter(|l| l.owner.is_none());
        let total = own().count();
        let good = own().filter(|l| l.programmed).count();
        let accepted = if total == 0 || good == total {
            Condition::new("Accepted", true, "Accepted", "Gateway is valid")
        } else if good > 0 {
            Condition::new(
                "Accepted",
                true,
                "ListenersNotValid",
                format!("{} of {total} listeners are not valid", total - good),
            )
        } else {
            Condition::new(
                "Accepted",
                false,
                "ListenersNotValid",
                "No listener is valid",
            )
        };
        status.conditions.set(match &self.invalid {
            Some((reason, msg)) => Condition::new("Accepted", false, reason, msg.clone()),
            None => accepted,
        });
        status.conditions.set(if good > 0 || total == 0 {
            Condition::new("Programmed", true, "Programmed", "Gateway is served")
        } else {
            Condition::new("Programmed", false, "Invalid", "No listener is served")
        });
        let unresolved = own().any(|l| {
            l.status
                .conditions
                .get("ResolvedRefs")
                .is_some_and(|c| !c.is_true())
        });
        status.conditions.set(if let Err(e) = &self.backend_cert {
            Condition::new("ResolvedRefs", false, e.reason, e.message.clone())
        } else if unresolved {
            Condition::new(
                "ResolvedRefs",
                false,
                "ListenersNotResolved",
                "Some listeners have unresolved references",
            )
        } else {
            Condition::new(
                "ResolvedRefs",
                true,
                "ResolvedRefs",
                "All references resolved",
            )
        });
        if self.insecure_frontend {
            status.conditions.set(Condition::new(
                "InsecureFrontendValidationMode",
                true,
                "ConfigurationChanged",
                "Some port accepts clients without a valid certificate (AllowInsecureFallback)",
            ));
        }
        status.conditions.observe(self.generation);

        let mut ports: BTreeMap<u16, Vec<ListenerIr>> = BTreeMap::new();
        let mut set_listeners: BTreeMap<NsName, Vec<ListenerStatus>> = BTreeMap::new();
        for mut l in self.listeners {
            match l.owner.take() {
                None => {
                    l.status.conditions.observe(self.generation);
                    status.listeners.push(l.status);
                }
                Some(set) => set_listeners.entry(set).or_default().push(l.status),
            }
            if !l.programmed {
                continue;
            }
            let vhosts = l
                .hosts
                .into_iter()
                .map(|(host, entries)| VirtualHost::new(host, entries))
                .collect();
            ports.entry(l.spec.port).or_default().push(ListenerIr {
                name: l.spec.name,
                hostname: l
                    .spec
                    .hostname
                    .filter(|h| !h.is_empty())
                    .map(|h| h.to_ascii_lowercase()),
                protocol: l.spec.protocol,
                port: l.spec.port,
                tls: l.tls,
                routes: RouteTable::new(vhosts),
            });
        }
        let ports = ports
            .into_iter()
            .map(|(port, mut listeners)| {
                listeners.sort_by(|a, b| {
                    hostname::specificity(a.hostname.as_deref())
                        .cmp(&hostname::specificity(b.hostname.as_deref()))
                });
                let client_validation = self.client_validation.get(&port).cloned();
                PortIr {
                    port,
                    listeners,
                    client_validation,
                }
            })
            .collect();
        let (set_status, attached) = set_statuses(self.listener_sets, set_listeners);
        status.attached_listener_sets = Some(attached);
        let ir = GatewayIr {
            namespace: self.id.namespace,
            name: self.id.name,
            ports,
            backend_client_cert: self.backend_cert.ok().flatten(),
            mesh: Vec::new(),
            authz: Vec::new(),
        };
        (status, set_status, ir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::gateway::{AllowedRoutes, RouteGroupKind};

    fn listener(protocol: &str, kinds: Option<&[&str]>) -> ListenerState {
        validate_listener(
            &ListenerSpec {
                name: "l".into(),
                port: 80,
                protocol: protocol.into(),
                allowed_routes: kinds.map(|ks| AllowedRoutes {
                    namespaces: None,
                    kinds: Some(
                        ks.iter()
                            .map(|k| RouteGroupKind {
                                group: None,
                                kind: k.to_string(),
                            })
                            .collect(),
                    ),
                }),
                ..Default::default()
            },
            None,
            "ns",
            &World::new(&Resources::default()),
        )
    }

    #[test]
    fn supported_kinds_follow_the_protocol_gw_6() {
        assert_eq!(
            listener("HTTP", None).status.supported_kinds,
            ["HTTPRoute", "GRPCRoute"]
        );
        assert_eq!(
            listener("HTTPS", None).status.supported_kinds,
            ["HTTPRoute", "GRPCRoute"]
        );
        assert_eq!(listener("TLS", None).status.supported_kinds, ["TLSRoute"]);
        // TCPRoute is not served here: named on a TLS listener it is an invalid kind.
        let l = listener("TLS", Some(&["TCPRoute", "TLSRoute"]));
        assert_eq!(l.status.supported_kinds, ["TLSRoute"]);
        let c = l.status.conditions.get("ResolvedRefs");
        assert_eq!(c.map(|c| c.reason.as_str()), Some("InvalidRouteKinds"));
        for p in ["TCP", "UDP", "INVALID"] {
            let l = listener(p, None);
            assert!(l.status.supported_kinds.is_empty(), "{p}");
            assert!(
                l.status
                    .conditions
                    .get("ResolvedRefs")
                    .is_some_and(|c| c.is_true())
            );
        }
        // HTTPRoute named explicitly on a TCP listener is not a kind it can hold.
        let l = listener("TCP", Some(&["HTTPRoute"]));
        assert!(l.status.supported_kinds.is_empty());
        let c = l.status.conditions.get("ResolvedRefs");
        assert_eq!(c.map(|c| c.reason.as_str()), Some("InvalidRouteKinds"));
    }
}
