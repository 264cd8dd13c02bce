//! Which clusters originate TLS, and how: a BackendTLSPolicy on the Service (a port's own policy
//! over a whole-Service one, the oldest of conflicting ones), else the `tls` of the
//! DestinationRule for the host ([DR-1], [DR-2]). A policy that cannot be honoured makes its
//! clusters fail closed; it never falls back to plaintext.

use super::clusters::{ClusterKey, Upstream};
use super::tls::{Referrer, trust_anchors};
use super::{CONTROLLER_NAME, GATEWAY_GROUP, World};
use crate::resources::backend_tls::SubjectAltName;
use crate::resources::destination_rule::ClientTlsSettings;
use crate::resources::gateway::ObjectReference;
use crate::resources::http_route::ParentRef;
use crate::resources::{BackendTlsPolicy, NsName, Resources, Sourced};
use crate::status::{Condition, Conditions, ObjectStatus, ParentStatus};
use crate::tls_material::{ServerCert, TrustAnchors};
use crate::upstream_tls::{SanMatch, Trust, UpstreamTls, UpstreamTlsSettings};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The TLS outcome for one cluster.
pub(super) type ClusterTls = Result<Arc<UpstreamTls>, String>;

/// A policy, validated.
struct Policy<'a> {
    object: &'a Sourced<BackendTlsPolicy>,
    /// Trust and names, or the (ResolvedRefs reason, message) that makes it unusable.
    validation: Result<(Trust, Vec<SanMatch>), (&'static str, String)>,
    /// The reason/message of a partly bad CA list (some refs usable).
    partial: Option<(&'static str, String)>,
    /// Lost to an older policy on one of its targets.
    conflicted: bool,
}

fn sans(list: &[SubjectAltName]) -> Vec<SanMatch> {
    list.iter()
        .filter_map(|s| match s.kind.as_str() {
            "Hostname" => s.hostname.clone().map(SanMatch::Dns),
            "URI" => s.uri.clone().map(SanMatch::Uri),
            _ => None,
        })
        .collect()
}

fn validate<'a>(p: &'a Sourced<BackendTlsPolicy>, world: &World<'_>) -> Policy<'a> {
    let spec = &p.object.spec;
    let ns = p.object.metadata.namespace();
    let v = &spec.validation;
    let refs: Vec<ObjectReference> = v
        .ca_certificate_refs
        .iter()
        .map(|r| ObjectReference {
            group: r.group.clone(),
            kind: r.kind.clone(),
            name: r.name.clone(),
            namespace: None,
        })
        .collect();
    let mut partial = None;
    let trust = if !refs.is_empty() {
        let from = Referrer {
            kind: "BackendTLSPolicy",
            namespace: ns,
        };
        let (anchors, error) = trust_anchors(world, &refs, from);
        // BackendTLSPolicy names a bad kind `InvalidKind` (listeners say InvalidCACertificateKind).
        let error = error.map(|e| {
            let reason = if e.reason == "InvalidCACertificateKind" {
                "InvalidKind"
            } else {
                e.reason
            };
            (reason, e.message)
        });
        match anchors {
            Some(a) => {
                partial = error;
                Ok(Trust::Anchors(a))
            }
            None => {
                Err(error.unwrap_or(("InvalidCACertificateRef", "no usable CA certificate".into())))
            }
        }
    } else if v.well_known_ca_certificates.as_deref() == Some("System") {
        Ok(Trust::System)
    } else {
        Err((
            "InvalidCACertificateRef",
            "validation needs caCertificateRefs or wellKnownCACertificates: System".into(),
        ))
    };
    Policy {
        object: p,
        validation: trust.map(|t| (t, sans(&v.subject_alt_names))),
        partial,
        conflicted: false,
    }
}

/// (Service namespace, Service name, port name) a policy targets.
type Target = (String, String, Option<String>);

fn targets(p: &BackendTlsPolicy) -> Vec<Target> {
    let ns = p.metadata.namespace();
    p.spec
        .target_refs
        .iter()
        .filter(|t| t.group.is_empty() && t.kind == "Service")
        .map(|t| (ns.to_string(), t.name.clone(), t.section_name.clone()))
        .collect()
}

/// A Service port's name.
fn port_name(world: &World<'_>, svc: &NsName, port: u16) -> Option<String> {
    world
        .service(&svc.namespace, &svc.name)?
        .spec
        .ports
        .iter()
        .find(|p| p.port == port)?
        .name
        .clone()
}

/// Decide TLS for every used cluster and report BackendTLSPolicy status.
pub(super) fn resolve(
    r: &Resources,
    world: &World<'_>,
    users: &[(ClusterKey, Vec<NsName>)],
    warnings: &mut Vec<String>,
) -> (HashMap<usize, ClusterTls>, Vec<ObjectStatus>) {
    let mut policies: Vec<Policy<'_>> = r
        .backend_tls_policies
        .iter()
        .map(|p| validate(p, world))
        .collect();
    // Oldest first, then by namespace/name: the winner of a conflict comes first.
    policies.sort_by(|a, b| {
        let key = |p: &Policy<'_>| {
            let m = &p.object.object.metadata;
            (
                m.creation_timestamp.clone().unwrap_or_default(),
                m.namespace().to_string(),
                m.name.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    let mut owner: BTreeMap<Target, usize> = BTreeMap::new();
    for (i, p) in policies.iter_mut().enumerate() {
        for t in targets(&p.object.object) {
            match owner.entry(t) {
                std::collections::btree_map::Entry::Occupied(_) => p.conflicted = true,
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(i);
                }
            }
        }
    }

    let backend_certs = gateway_backend_certs(r, world);
    let mut out = HashMap::new();
    let mut ancestors: BTreeMap<usize, Vec<NsName>> = BTreeMap::new();
    for (index, (key, gateways)) in users.iter().enumerate() {
        let upstream = key.upstream();
        let (svc, port) = match key.split().0 {
            ClusterKey::Service(svc, port) => (svc, port),
            // [SE-4] An entry host's TLS comes from the DestinationRule for that host.
            _ => {
                if let Some(tls) = destination_rule_tls(r, world, &upstream, gateways, warnings) {
                    out.insert(index, tls);
                }
                continue;
            }
        };
        let pname = port_name(world, svc, *port);
        let by_port = pname
            .clone()
            .and_then(|n| owner.get(&(svc.namespace.clone(), svc.name.clone(), Some(n))));
        let whole = owner.get(&(svc.namespace.clone(), svc.name.clone(), None));
        // Every policy naming this Service port (winner or not) reports to these Gateways.
        for (i, p) in policies.iter().enumerate() {
            let names_it = targets(&p.object.object).iter().any(|(ns, name, section)| {
                *ns == svc.namespace
                    && *name == svc.name
                    && section.as_ref().is_none_or(|s| Some(s) == pname.as_ref())
            });
            if names_it {
                let list = ancestors.entry(i).or_default();
                for g in gateways {
                    if !list.contains(g) {
                        list.push(g.clone());
                    }
                }
            }
        }
        if let Some(&i) = by_port.or(whole) {
            let p = &policies[i];
            let m = &p.object.object.metadata;
            let source = format!("BackendTLSPolicy {}/{}", m.namespace(), m.name);
            let tls = match &p.validation {
                Err((_, msg)) => Err(format!("{source}: {msg}")),
                Ok((trust, sans)) => UpstreamTls::build(UpstreamTlsSettings {
                    source: source.clone(),
                    sni: Some(p.object.object.spec.validation.hostname.clone())
                        .filter(|h| !h.is_empty()),
                    trust: trust.clone(),
                    subject_alt_names: sans.clone(),
                    client_cert: gateways.iter().find_map(|g| backend_certs.get(g).cloned()),
                })
                .map(Arc::new)
                .map_err(|e| format!("{source}: {e}")),
            };
            out.insert(index, tls);
            continue;
        }
        if let Some(tls) = destination_rule_tls(r, world, &upstream, gateways, warnings) {
            out.insert(index, tls);
        }
    }

    let statuses = policies
        .iter()
        .enumerate()
        .map(|(i, p)| policy_status(p, ancestors.get(&i).map(Vec::as_slice).unwrap_or(&[])))
        .collect();
    (out, statuses)
}

/// Each Gateway's `spec.tls.backend` client certificate, where it resolves.
fn gateway_backend_certs(r: &Resources, world: &World<'_>) -> HashMap<NsName, ServerCert> {
    r.gateways
        .iter()
        .filter_map(|g| {
            let cert = super::tls::backend_client_cert(&g.object, world).ok()??;
            Some((g.object.metadata.ns_name(), cert))
        })
        .collect()
}

fn policy_status(p: &Policy<'_>, ancestors: &[NsName]) -> ObjectStatus {
    let m = &p.object.object.metadata;
    let mut c = Conditions::default();
    match &p.validation {
        Err((reason, msg)) => {
            c.set(Condition::new(
                "Accepted",
                false,
                "NoValidCACertificate",
                msg.clone(),
            ));
            c.set(Condition::new("ResolvedRefs", false, reason, msg.clone()));
        }
        Ok(_) => {
            if p.conflicted {
                c.set(Condition::new(
                    "Accepted",
                    false,
                    "Conflicted",
                    "an older BackendTLSPolicy targets the same Service port",
                ));
            } else {
                c.set(Condition::new(
                    "Accepted",
                    true,
                    "Accepted",
                    "Policy is accepted",
                ));
            }
            c.set(match &p.partial {
                Some((reason, msg)) => Condition::new("ResolvedRefs", false, reason, msg.clone()),
                None => Condition::new(
                    "ResolvedRefs",
                    true,
                    "ResolvedRefs",
                    "All references resolved",
                ),
            });
        }
    }
    c.observe(m.generation);
    let mut s = ObjectStatus::new("BackendTLSPolicy", m.namespace(), &m.name);
    s.source = Some(p.object.source.to_string());
    s.conditions = c.clone();
    s.parents = ancestors
        .iter()
        .map(|g| ParentStatus {
            parent_ref: ParentRef {
                group: Some(GATEWAY_GROUP.into()),
                kind: Some("Gateway".into()),
                namespace: Some(g.namespace.clone()),
                name: g.name.clone(),
                section_name: None,
                port: None,
            },
            controller_name: CONTROLLER_NAME.into(),
            conditions: c.clone(),
        })
        .collect();
    s
}

/// The `tls` a DestinationRule gives one port (and subset) of a Service or ServiceEntry host,
/// if any ([DR-1], [DR-2]).
fn destination_rule_tls(
    r: &Resources,
    world: &World<'_>,
    upstream: &Upstream<'_>,
    gateways: &[NsName],
    warnings: &mut Vec<String>,
) -> Option<ClusterTls> {
    let Upstream {
        fqdn, port, subset, ..
    } = upstream;
    let dr = super::destination_rules::for_host(world, fqdn, upstream.home_ns, gateways)?;
    let settings = super::destination_rules::blocks(&dr.object, *port, *subset)
        .tls?
        .0;
    let m = &dr.object.metadata;
    let source = format!("DestinationRule {}/{}", m.namespace(), m.name);
    let result = match settings.mode.as_deref().unwrap_or("DISABLE") {
        "DISABLE" => return None,
        "SIMPLE" | "MUTUAL" => dr_upstream(r, world, settings, &source, m.namespace(), gateways)
            .map(Arc::new)
            .map_err(|e| format!("{source}: {e}")),
        "ISTIO_MUTUAL" => Err(format!(
            "{source}: ISTIO_MUTUAL is what in-mesh endpoints get (over HBONE); for endpoints outside the mesh it is not supported yet"
        )),
        other => Err(format!("{source}: tls.mode {other:?} is not supported")),
    };
    if let Err(e) = &result {
        warnings.push(format!("{e}; requests to {fqdn}:{port} fail"));
    }
    Some(result)
}

fn dr_upstream(
    r: &Resources,
    world: &World<'_>,
    t: &ClientTlsSettings,
    source: &str,
    dr_ns: &str,
    gateways: &[NsName],
) -> Result<UpstreamTls, String> {
    let file = |path: &str| -> Result<Vec<u8>, String> {
        match r.files.get(path) {
            Some(Ok(b)) => Ok(b.clone()),
            Some(Err(e)) => Err(e.clone()),
            None => Err(format!("{path}: not read")),
        }
    };
    // credentialName: a Secret next to the DestinationRule, else next to the Gateway.
    let secret = match &t.credential_name {
        None => None,
        Some(name) => Some(
            std::iter::once(dr_ns)
                .chain(gateways.iter().map(|g| g.namespace.as_str()))
                .find_map(|ns| world.secret(ns, name))
                .ok_or_else(|| format!("credentialName Secret {name:?} not found"))?,
        ),
    };
    let secret_value = |keys: [&str; 2]| -> Result<Option<Vec<u8>>, String> {
        let Some(s) = secret else { return Ok(None) };
        for k in keys {
            if let Some(v) = s.value(k)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    };
    let trust = if t.insecure_skip_verify == Some(true) {
        Trust::SkipVerify
    } else {
        let (label, pem) = match (&t.ca_certificates, secret_value(["ca.crt", "cacert"])?) {
            (Some(path), _) => (format!("file {path}"), Some(file(path)?)),
            (None, Some(pem)) => (
                format!("Secret {}", t.credential_name.clone().unwrap_or_default()),
                Some(pem),
            ),
            (None, None) => (String::new(), None),
        };
        match pem {
            Some(pem) => Trust::Anchors(TrustAnchors::from_pem(vec![label], &pem)?),
            None => Trust::System,
        }
    };
    let client_cert = if t.mode.as_deref() == Some("MUTUAL") {
        let (cert, key) = match (&t.client_certificate, &t.private_key) {
            (Some(c), Some(k)) => (file(c)?, file(k)?),
            _ => (
                secret_value(["tls.crt", "cert"])?
                    .ok_or("MUTUAL needs clientCertificate or a credentialName with tls.crt")?,
                secret_value(["tls.key", "key"])?
                    .ok_or("MUTUAL needs privateKey or a credentialName with tls.key")?,
            ),
        };
        Some(ServerCert::from_pem(source.to_string(), &cert, &key)?)
    } else {
        None
    };
    UpstreamTls::build(UpstreamTlsSettings {
        source: source.to_string(),
        sni: t.sni.clone(),
        trust,
        subject_alt_names: t
            .subject_alt_names
            .iter()
            .map(|n| {
                if n.contains("://") {
                    SanMatch::Uri(n.clone())
                } else {
                    SanMatch::Dns(n.clone())
                }
            })
            .collect(),
        client_cert,
    })
}
