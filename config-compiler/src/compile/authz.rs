//! AuthorizationPolicy ([AP-1]..[AP-11]): each policy compiled once into the evaluator's form
//! and attached where Istio applies it — an ingress/egress gateway takes root-namespace,
//! namespace-wide, selector (`istio.io/gateway-name`) and Gateway/GatewayClass-targeted
//! policies; a waypoint only targeted ones (itself, its class, or one of its Services or
//! ServiceEntries). A field that cannot be honoured fails closed and is named in the status.

use crate::resources::authorization_policy::{
    AuthorizationPolicy, AuthzCondition, AuthzOperation, AuthzRule, AuthzSource, PolicyTargetRef,
};
use crate::resources::{NsName, Resources, Sourced};
use crate::snapshot::GatewayIr;
use crate::status::{Condition, Conditions, ObjectStatus};
use std::sync::Arc;
use waygate_filters::authz::{
    Action, Cidr, Condition as When, Key, Operation, PathMatch, Policy, Rule, Source, StrMatch,
    Values,
};

/// Istio's root namespace: its policies without a selector apply mesh-wide.
pub const ROOT_NAMESPACE: &str = "istio-system";

/// The gateway label Istio puts on gateway pods (what `selector` matches).
const GATEWAY_NAME_LABELS: [&str; 2] = [
    "istio.io/gateway-name",
    "gateway.networking.k8s.io/gateway-name",
];

/// A compiled policy with its source object.
pub(super) struct Compiled<'a> {
    object: &'a AuthorizationPolicy,
    policy: Arc<Policy>,
}

/// Compile every policy; report each one's status.
pub(super) fn compile_all(r: &Resources) -> (Vec<Compiled<'_>>, Vec<ObjectStatus>) {
    let mut out = Vec::new();
    let mut statuses = Vec::new();
    for Sourced { source, object } in &r.authorization_policies {
        let (policy, problems) = compile_policy(object);
        let m = &object.metadata;
        let mut s = ObjectStatus::new("AuthorizationPolicy", m.namespace(), &m.name);
        s.source = Some(source.to_string());
        let mut c = Conditions::default();
        c.set(match problems.first() {
            None => Condition::new("Accepted", true, "Accepted", "policy is enforced"),
            Some(first) => Condition::new(
                "Accepted",
                false,
                "Invalid",
                format!(
                    "{first}{}; the affected rules fail closed (an ALLOW rule matches nothing, a DENY rule everything)",
                    if problems.len() > 1 {
                        format!(" (and {} more)", problems.len() - 1)
                    } else {
                        String::new()
                    }
                ),
            ),
        });
        c.observe(m.generation);
        s.conditions = c;
        statuses.push(s);
        out.push(Compiled {
            object,
            policy: Arc::new(policy),
        });
    }
    (out, statuses)
}

fn targets(p: &AuthorizationPolicy) -> Vec<&PolicyTargetRef> {
    p.spec
        .target_refs
        .iter()
        .chain(p.spec.target_ref.iter())
        .collect()
}

/// Attach each policy to the gateways and waypoint services it applies to ([AP-1]).
pub(super) fn attach(
    compiled: &[Compiled<'_>],
    gateways: &mut [GatewayIr],
    class_of: impl Fn(&NsName) -> Option<String>,
) {
    for g in gateways.iter_mut() {
        let id = NsName::new(&g.namespace, &g.name);
        let class = class_of(&id).unwrap_or_default();
        let waypoint = g
            .ports
            .iter()
            .any(|p| p.listeners.iter().any(|l| l.protocol == "HBONE"));
        for c in compiled {
            let p = c.object;
            let ns = p.metadata.namespace();
            let refs = targets(p);
            if !refs.is_empty() {
                for t in refs {
                    let group = t.group.as_deref().unwrap_or("");
                    let same_ns = t.namespace.as_deref().is_none_or(|n| n == ns);
                    match t.kind.as_str() {
                        "Gateway" if same_ns && ns == id.namespace && t.name == id.name => {
                            g.authz.push(c.policy.clone());
                        }
                        "GatewayClass" if ns == ROOT_NAMESPACE && t.name == class => {
                            g.authz.push(c.policy.clone());
                        }
                        "Service" | "ServiceEntry" if waypoint && same_ns => {
                            let entry = t.kind == "ServiceEntry";
                            if entry && group != "networking.istio.io" {
                                continue;
                            }
                            let svc = NsName::new(ns, &t.name);
                            for m in g
                                .mesh
                                .iter_mut()
                                .filter(|m| m.entry == entry && m.service == svc)
                            {
                                m.authz.push(c.policy.clone());
                            }
                        }
                        _ => {}
                    }
                }
                continue;
            }
            // A waypoint enforces only targeted policies.
            if waypoint {
                continue;
            }
            let in_scope = ns == id.namespace || ns == ROOT_NAMESPACE;
            let selected = match &p.spec.selector {
                None => true,
                Some(sel) => sel
                    .match_labels
                    .iter()
                    .all(|(k, v)| GATEWAY_NAME_LABELS.contains(&k.as_str()) && *v == id.name),
            };
            if in_scope && selected {
                g.authz.push(c.policy.clone());
            }
        }
    }
}

/// Compile one policy; the problems name the fields.
pub(super) fn compile_policy(p: &AuthorizationPolicy) -> (Policy, Vec<String>) {
    let mut problems = Vec::new();
    let spec = &p.spec;
    let action = match spec.action.as_deref().unwrap_or("ALLOW") {
        "ALLOW" => Action::Allow,
        "DENY" => Action::Deny,
        "AUDIT" => Action::Audit,
        "CUSTOM" => {
            problems.push(
                "spec.action: CUSTOM needs an external authorizer, which waygate does not support yet; the policy denies what its rules match".to_string(),
            );
            Action::Custom
        }
        other => {
            problems.push(format!(
                "spec.action: {other:?} is not ALLOW, DENY, AUDIT or CUSTOM; treated as DENY"
            ));
            Action::Deny
        }
    };
    if spec.selector.is_some() && !targets(p).is_empty() {
        problems.push("spec.selector: cannot be combined with spec.targetRefs".to_string());
    }
    for (i, t) in targets(p).iter().enumerate() {
        if !matches!(
            t.kind.as_str(),
            "Gateway" | "GatewayClass" | "Service" | "ServiceEntry"
        ) {
            problems.push(format!(
                "spec.targetRefs[{i}].kind: {:?} is not Gateway, GatewayClass, Service or ServiceEntry",
                t.kind
            ));
        }
    }
    let rules = spec
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut rule_problems = Vec::new();
            let rule = compile_rule(
                r,
                p.metadata.namespace(),
                &format!("spec.rules[{i}]"),
                &mut rule_problems,
            );
            let rule = match rule_problems.first() {
                Some(first) if rule.unsupported.is_none() => Rule {
                    unsupported: Some(first.clone()),
                    ..rule
                },
                _ => rule,
            };
            problems.extend(rule_problems);
            rule
        })
        .collect();
    let m = &p.metadata;
    let policy = Policy {
        name: format!("{}.{}", m.namespace(), m.name),
        action,
        rules,
        dry_run: m
            .annotations
            .get("istio.io/dry-run")
            .is_some_and(|v| v == "true"),
    };
    (policy, problems)
}

fn strs(v: &[String]) -> Vec<StrMatch> {
    v.iter().map(|s| StrMatch::parse(s)).collect()
}

fn cidrs(v: &[String], at: &str, problems: &mut Vec<String>) -> Vec<Cidr> {
    v.iter()
        .enumerate()
        .filter_map(|(k, s)| {
            Cidr::parse(s)
                .map_err(|e| problems.push(format!("{at}[{k}]: {e}")))
                .ok()
        })
        .collect()
}

fn compile_rule(r: &AuthzRule, ns: &str, at: &str, problems: &mut Vec<String>) -> Rule {
    let mut unsupported = None;
    let from = r
        .from
        .iter()
        .enumerate()
        .map(|(j, f)| {
            compile_source(
                &f.source,
                ns,
                &format!("{at}.from[{j}].source"),
                problems,
                &mut unsupported,
            )
        })
        .collect();
    let to = r
        .to
        .iter()
        .enumerate()
        .map(|(j, t)| compile_operation(&t.operation, &format!("{at}.to[{j}].operation"), problems))
        .collect();
    let when = r
        .when
        .iter()
        .enumerate()
        .filter_map(|(j, c)| {
            compile_condition(c, &format!("{at}.when[{j}]"), problems, &mut unsupported)
        })
        .collect();
    Rule {
        from,
        to,
        when,
        unsupported,
    }
}

const NO_JWT: &str =
    "needs a validated JWT (RequestAuthentication), which waygate does not support yet";

fn compile_source(
    s: &AuthzSource,
    ns: &str,
    at: &str,
    problems: &mut Vec<String>,
    unsupported: &mut Option<String>,
) -> Source {
    if !s.request_principals.is_empty() || !s.not_request_principals.is_empty() {
        *unsupported = Some(format!("{at}.requestPrincipals {NO_JWT}"));
    }
    let mut principals = Values::new(strs(&s.principals), strs(&s.not_principals));
    if !s.service_accounts.is_empty() || !s.not_service_accounts.is_empty() {
        if !s.principals.is_empty()
            || !s.not_principals.is_empty()
            || !s.namespaces.is_empty()
            || !s.not_namespaces.is_empty()
        {
            problems.push(format!(
                "{at}.serviceAccounts: cannot be combined with principals or namespaces"
            ));
        }
        // [AP-7] `ns/sa` or `sa` (the policy's namespace), in any trust domain.
        let sa = |v: &String| {
            let (n, a) = v.split_once('/').unwrap_or((ns, v));
            StrMatch::Suffix(format!("/ns/{n}/sa/{a}"))
        };
        principals = Values::new(
            s.service_accounts.iter().map(sa).collect(),
            s.not_service_accounts.iter().map(sa).collect(),
        );
    }
    Source {
        principals,
        namespaces: Values::new(strs(&s.namespaces), strs(&s.not_namespaces)),
        ip_blocks: Values::new(
            cidrs(&s.ip_blocks, &format!("{at}.ipBlocks"), problems),
            cidrs(&s.not_ip_blocks, &format!("{at}.notIpBlocks"), problems),
        ),
        remote_ip_blocks: Values::new(
            cidrs(
                &s.remote_ip_blocks,
                &format!("{at}.remoteIpBlocks"),
                problems,
            ),
            cidrs(
                &s.not_remote_ip_blocks,
                &format!("{at}.notRemoteIpBlocks"),
                problems,
            ),
        ),
    }
}

fn compile_operation(o: &AuthzOperation, at: &str, problems: &mut Vec<String>) -> Operation {
    let ports = |v: &[String], field: &str, problems: &mut Vec<String>| -> Vec<u16> {
        v.iter()
            .enumerate()
            .filter_map(|(k, p)| {
                p.parse::<u16>()
                    .map_err(|_| {
                        problems.push(format!("{at}.{field}[{k}]: {p:?} is not a port number"))
                    })
                    .ok()
            })
            .collect()
    };
    let paths = |v: &[String], field: &str, problems: &mut Vec<String>| -> Vec<PathMatch> {
        v.iter()
            .enumerate()
            .filter_map(|(k, p)| {
                PathMatch::parse(p)
                    .map_err(|e| problems.push(format!("{at}.{field}[{k}]: {e}")))
                    .ok()
            })
            .collect()
    };
    let hosts = |v: &[String]| v.iter().map(|h| StrMatch::parse_lowercase(h)).collect();
    Operation {
        hosts: Values::new(hosts(&o.hosts), hosts(&o.not_hosts)),
        ports: Values::new(
            ports(&o.ports, "ports", problems),
            ports(&o.not_ports, "notPorts", problems),
        ),
        methods: Values::new(strs(&o.methods), strs(&o.not_methods)),
        paths: Values::new(
            paths(&o.paths, "paths", problems),
            paths(&o.not_paths, "notPaths", problems),
        ),
    }
}

fn compile_condition(
    c: &AuthzCondition,
    at: &str,
    problems: &mut Vec<String>,
    unsupported: &mut Option<String>,
) -> Option<When> {
    if c.values.is_empty() && c.not_values.is_empty() {
        problems.push(format!("{at}: needs values or notValues"));
        return None;
    }
    let key = match c.key.as_str() {
        "source.ip" => Key::SourceIp,
        "remote.ip" => Key::RemoteIp,
        "destination.ip" => Key::DestinationIp,
        "source.namespace" => Key::SourceNamespace,
        "source.principal" => Key::SourcePrincipal,
        "destination.port" => Key::DestinationPort,
        "connection.sni" => Key::ConnectionSni,
        k if k.starts_with("request.auth.") => {
            *unsupported = Some(format!("{at}.key: {k} {NO_JWT}"));
            return None;
        }
        k => match k
            .strip_prefix("request.headers[")
            .and_then(|h| h.strip_suffix(']'))
            .filter(|h| !h.is_empty())
        {
            Some(h) => Key::Header(h.to_ascii_lowercase()),
            None => {
                problems.push(format!("{at}.key: unknown key {k:?}"));
                return None;
            }
        },
    };
    let ip_key = matches!(key, Key::SourceIp | Key::RemoteIp | Key::DestinationIp);
    let (values, ips) = if ip_key {
        (
            Values::default(),
            Values::new(
                cidrs(&c.values, &format!("{at}.values"), problems),
                cidrs(&c.not_values, &format!("{at}.notValues"), problems),
            ),
        )
    } else {
        (
            Values::new(strs(&c.values), strs(&c.not_values)),
            Values::default(),
        )
    };
    Some(When { key, values, ips })
}
