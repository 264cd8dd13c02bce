//! TLS references of Gateways and listeners: `certificateRefs`, frontend client-certificate
//! validation and the backend client certificate, resolved into key material with the
//! listener and Gateway conditions the spec asks for ([GW-4], [GW-7], [GW-8]).

use super::gateways::ListenerState;
use super::{GATEWAY_GROUP, World};
use crate::resources::Gateway;
use crate::resources::gateway::{FrontendTlsValidation, ObjectReference, SecretObjectReference};
use crate::snapshot::{ClientValidation, ListenerTls, TlsMode};
use crate::status::Condition;
use crate::tls_material::{self, ServerCert, TrustAnchors};
use std::collections::BTreeMap;

/// A reference that did not resolve: the condition reason and a message naming the object.
#[derive(Debug, Clone)]
pub(super) struct RefError {
    pub reason: &'static str,
    pub message: String,
}

impl RefError {
    fn new(reason: &'static str, message: String) -> Self {
        Self { reason, message }
    }
}

/// Where a reference is written: the referring kind and its namespace (for ReferenceGrant).
#[derive(Debug, Clone, Copy)]
pub(super) struct Referrer<'a> {
    pub kind: &'a str,
    pub namespace: &'a str,
}

/// A Secret of type `kubernetes.io/tls` named by a `certificateRefs` or `clientCertificateRef`.
fn tls_secret(
    world: &World<'_>,
    r: &SecretObjectReference,
    from: Referrer<'_>,
    bad_ref: &'static str,
) -> Result<ServerCert, RefError> {
    let group = r.group.as_deref().unwrap_or("");
    let kind = r.kind.as_deref().unwrap_or("Secret");
    if !group.is_empty() || kind != "Secret" {
        return Err(RefError::new(
            bad_ref,
            format!(
                "{group}/{kind} {:?}: only core Secrets hold certificates",
                r.name
            ),
        ));
    }
    let ns = r.namespace.as_deref().unwrap_or(from.namespace);
    if ns != from.namespace
        && !world.permitted(
            (GATEWAY_GROUP, from.kind, from.namespace),
            ns,
            ("", "Secret", &r.name),
        )
    {
        return Err(RefError::new(
            "RefNotPermitted",
            format!(
                "Secret {ns}/{} is in another namespace and no ReferenceGrant allows it",
                r.name
            ),
        ));
    }
    let secret = world
        .secret(ns, &r.name)
        .ok_or_else(|| RefError::new(bad_ref, format!("Secret {ns}/{} not found", r.name)))?;
    let invalid = |m: String| RefError::new(bad_ref, format!("Secret {ns}/{}: {m}", r.name));
    if let Some(t) = secret.secret_type.as_deref()
        && t != "kubernetes.io/tls"
    {
        return Err(invalid(format!("type {t:?} is not kubernetes.io/tls")));
    }
    let cert = secret
        .value("tls.crt")
        .map_err(invalid)?
        .ok_or_else(|| invalid("has no tls.crt".into()))?;
    let key = secret
        .value("tls.key")
        .map_err(invalid)?
        .ok_or_else(|| invalid("has no tls.key".into()))?;
    ServerCert::from_pem(format!("{ns}/{}", r.name), &cert, &key).map_err(invalid)
}

/// [GW-4] Resolve an HTTPS or TLS listener's `tls`: mode and certificates, with `ResolvedRefs`.
/// A listener left with no usable certificate is not served; one bad ref among good ones only
/// sets the condition.
pub(super) fn resolve_listener_tls(l: &mut ListenerState, world: &World<'_>) {
    if !matches!(l.spec.protocol.as_str(), "HTTPS" | "TLS") || !l.programmed {
        return;
    }
    let Some(tls) = l.spec.tls.clone() else {
        reject(
            l,
            "UnsupportedValue",
            "tls is required on this protocol".into(),
        );
        return;
    };
    let mode = match tls.mode.as_deref().unwrap_or("Terminate") {
        "Terminate" => TlsMode::Terminate,
        "Passthrough" if l.spec.protocol == "TLS" => TlsMode::Passthrough,
        other => {
            reject(
                l,
                "UnsupportedValue",
                format!(
                    "tls.mode {other:?} is not valid on a {} listener",
                    l.spec.protocol
                ),
            );
            return;
        }
    };
    let mut certificates = Vec::new();
    if mode == TlsMode::Terminate {
        let from = Referrer {
            kind: if l.owner.is_some() {
                "ListenerSet"
            } else {
                "Gateway"
            },
            namespace: &l.namespace.clone(),
        };
        let mut first_error = None;
        for r in &tls.certificate_refs {
            match tls_secret(world, r, from, "InvalidCertificateRef") {
                Ok(c) => certificates.push(c),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if tls.certificate_refs.is_empty() {
            first_error = Some(RefError::new(
                "InvalidCertificateRef",
                "tls.certificateRefs is empty".into(),
            ));
        }
        if let Some(e) = first_error {
            unresolved(l, e);
        }
        if certificates.is_empty() {
            l.programmed = false;
        }
    }
    l.tls = Some(ListenerTls { mode, certificates });
}

fn reject(l: &mut ListenerState, reason: &str, msg: String) {
    l.programmed = false;
    l.status
        .conditions
        .set(Condition::new("Accepted", false, reason, msg));
}

/// Set `ResolvedRefs=False`, unless an earlier problem (route kinds) already did.
fn unresolved(l: &mut ListenerState, e: RefError) {
    let already = l
        .status
        .conditions
        .get("ResolvedRefs")
        .is_some_and(|c| !c.is_true());
    if !already {
        l.status
            .conditions
            .set(Condition::new("ResolvedRefs", false, e.reason, e.message));
    }
}

/// One CA bundle named by `caCertificateRefs`: a ConfigMap (core support) or a Secret, key
/// `ca.crt`.
fn ca_bundle(
    world: &World<'_>,
    r: &ObjectReference,
    from: Referrer<'_>,
) -> Result<(String, Vec<u8>), RefError> {
    let bad = "InvalidCACertificateRef";
    if !r.group.is_empty() || !matches!(r.kind.as_str(), "ConfigMap" | "Secret") {
        return Err(RefError::new(
            "InvalidCACertificateKind",
            format!(
                "{}/{} {:?}: CA certificates come from a ConfigMap or Secret",
                r.group, r.kind, r.name
            ),
        ));
    }
    let ns = r.namespace.as_deref().unwrap_or(from.namespace);
    if ns != from.namespace
        && !world.permitted(
            (GATEWAY_GROUP, from.kind, from.namespace),
            ns,
            ("", &r.kind, &r.name),
        )
    {
        return Err(RefError::new(
            "RefNotPermitted",
            format!(
                "{} {ns}/{} is in another namespace and no ReferenceGrant allows it",
                r.kind, r.name
            ),
        ));
    }
    let label = format!("{} {ns}/{}", r.kind, r.name);
    let pem = if r.kind == "ConfigMap" {
        world
            .config_map(ns, &r.name)
            .ok_or_else(|| RefError::new(bad, format!("{label} not found")))?
            .data
            .get("ca.crt")
            .map(|s| s.as_bytes().to_vec())
    } else {
        world
            .secret(ns, &r.name)
            .ok_or_else(|| RefError::new(bad, format!("{label} not found")))?
            .value("ca.crt")
            .map_err(|m| RefError::new(bad, format!("{label}: {m}")))?
    };
    let pem = pem.ok_or_else(|| RefError::new(bad, format!("{label} has no ca.crt")))?;
    tls_material::parse_certs(&pem).map_err(|m| RefError::new(bad, format!("{label}: {m}")))?;
    Ok((label, pem))
}

/// Trust anchors from a list of CA references: the good ones, and the first error if any.
pub(super) fn trust_anchors(
    world: &World<'_>,
    refs: &[ObjectReference],
    from: Referrer<'_>,
) -> (Option<TrustAnchors>, Option<RefError>) {
    let mut sources = Vec::new();
    let mut pem = Vec::new();
    let mut first_error = None;
    for r in refs {
        match ca_bundle(world, r, from) {
            Ok((label, bytes)) => {
                sources.push(label);
                pem.extend_from_slice(&bytes);
                pem.push(b'\n');
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let anchors = if sources.is_empty() {
        None
    } else {
        match TrustAnchors::from_pem(sources, &pem) {
            Ok(anchors) => Some(anchors),
            Err(m) => {
                first_error.get_or_insert(RefError::new("InvalidCACertificateRef", m));
                None
            }
        }
    };
    (anchors, first_error)
}

/// The frontend validation that applies to a port: its `perPort` entry, else `default`.
fn validation_for(gw: &Gateway, port: u16) -> Option<&FrontendTlsValidation> {
    let frontend = gw.spec.tls.as_ref()?.frontend.as_ref()?;
    match frontend.per_port.iter().find(|p| p.port == port) {
        Some(p) => p.tls.validation.as_ref(),
        None => frontend.default.validation.as_ref(),
    }
}

/// Client-certificate validation per HTTPS port ([GW-8]). Bad CA references set
/// `ResolvedRefs=False` on that port's HTTPS listeners; when none is usable those listeners
/// are `Accepted=False`/`NoValidCACertificate` and not served. Also returns whether any port
/// uses `AllowInsecureFallback`.
pub(super) fn frontend_validation(
    gw: &Gateway,
    listeners: &mut [ListenerState],
    world: &World<'_>,
) -> (BTreeMap<u16, ClientValidation>, bool) {
    let mut out = BTreeMap::new();
    let mut insecure = false;
    let ports: std::collections::BTreeSet<u16> = listeners
        .iter()
        .filter(|l| l.spec.protocol == "HTTPS")
        .map(|l| l.spec.port)
        .collect();
    let from = Referrer {
        kind: "Gateway",
        namespace: gw.metadata.namespace(),
    };
    for port in ports {
        let Some(v) = validation_for(gw, port) else {
            continue;
        };
        let fallback = v.mode.as_deref() == Some("AllowInsecureFallback");
        insecure |= fallback;
        let (anchors, error) = trust_anchors(world, &v.ca_certificate_refs, from);
        let on_port = listeners
            .iter_mut()
            .filter(|l| l.spec.protocol == "HTTPS" && l.spec.port == port);
        for l in on_port {
            if let Some(e) = &error {
                unresolved(l, e.clone());
            }
            if anchors.is_none() {
                reject(
                    l,
                    "NoValidCACertificate",
                    "no usable CA certificate for client validation".into(),
                );
            }
        }
        if let Some(anchors) = anchors {
            out.insert(
                port,
                ClientValidation {
                    anchors,
                    insecure_fallback: fallback,
                },
            );
        }
    }
    (out, insecure)
}

/// `spec.tls.backend.clientCertificateRef`: the certificate the Gateway presents to backends.
pub(super) fn backend_client_cert(
    gw: &Gateway,
    world: &World<'_>,
) -> Result<Option<ServerCert>, RefError> {
    let Some(r) = gw
        .spec
        .tls
        .as_ref()
        .and_then(|t| t.backend.as_ref())
        .and_then(|b| b.client_certificate_ref.as_ref())
    else {
        return Ok(None);
    };
    let from = Referrer {
        kind: "Gateway",
        namespace: gw.metadata.namespace(),
    };
    tls_secret(world, r, from, "InvalidClientCertificateRef").map(Some)
}
