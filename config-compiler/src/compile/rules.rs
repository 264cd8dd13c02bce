//! One HTTPRoute rule → route entries' shared parts: matches, filters, weighted backends,
//! timeouts and retries ([HR-6], [HR-7], [HF-0..5], [HB-1], [HB-2], [HT-1], [HT-2]).

use super::clusters::{ClusterSet, cluster_name};
use super::filters::compile_filters;
use super::{GATEWAY_GROUP, World};
use crate::request_match::{
    HeaderMatch, MethodMatch, PathMatch, QueryMatch, RequestMatch, StringMatch, anchored_regex,
};
use crate::resources::NsName;
use crate::resources::http_route::{BackendObjectRef, HttpHeaderMatch, HttpRouteRule};
use crate::route_table::{BackendTarget, RuleAction, WeightedBackend};
use http::{HeaderName, Method};
use std::sync::Arc;
use waygate_filters::{Filter, RetryPolicy, Timeouts};

/// A compiled rule.
pub(super) struct CompiledRule {
    pub matches: Vec<RequestMatch>,
    pub action: Arc<RuleAction>,
}

/// A rule that cannot be served, and why (reason is a Gateway API condition reason).
pub(super) struct RuleError {
    pub reason: &'static str,
    pub message: String,
}

impl RuleError {
    /// Prefix the message with the field path it concerns.
    pub(super) fn at(mut self, field: String) -> Self {
        self.message = format!("{field}: {}", self.message);
        self
    }
}

/// A backend reference that did not resolve ([HB-2]).
pub(super) struct RefProblem {
    pub reason: &'static str,
    pub message: String,
}

/// A regex error on one line: the parser's multi-line report ends with the actual complaint.
pub(super) fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    last.trim().trim_start_matches("error: ").to_string()
}

pub(super) fn invalid(reason: &'static str, message: impl Into<String>) -> RuleError {
    RuleError {
        reason,
        message: message.into(),
    }
}

/// Compile one rule of the `route_kind` route `route` (namespace/name).
pub(super) fn compile_rule(
    route_kind: &str,
    route: &NsName,
    rule_index: usize,
    rule: &HttpRouteRule,
    world: &World<'_>,
    clusters: &mut ClusterSet,
    problems: &mut Vec<RefProblem>,
) -> Result<CompiledRule, RuleError> {
    let matches = if rule.matches.is_empty() {
        vec![RequestMatch::path(PathMatch::PathPrefix("/".into()))]
    } else {
        rule.matches
            .iter()
            .enumerate()
            .map(|(i, m)| {
                compile_match(m).map_err(|e| e.at(format!("spec.rules[{rule_index}].matches[{i}]")))
            })
            .collect::<Result<Vec<_>, _>>()?
    };
    let mut refs = RefContext {
        route_kind,
        route,
        world,
        clusters,
        problems,
    };
    let filters = compile_filters(
        &rule.filters,
        &matches,
        false,
        &format!("spec.rules[{rule_index}].filters"),
        &mut refs,
    )?;
    let redirects = filters
        .iter()
        .any(|f| matches!(f, Filter::RequestRedirect(_)));
    if redirects && !rule.backend_refs.is_empty() {
        return Err(invalid(
            "UnsupportedValue",
            "RequestRedirect cannot be combined with backendRefs",
        )
        .at(format!("spec.rules[{rule_index}]")));
    }
    let timeouts = match &rule.timeouts {
        None => Timeouts::default(),
        Some(t) => {
            Timeouts::new(t.request.as_deref(), t.backend_request.as_deref()).map_err(|e| {
                invalid("UnsupportedValue", e.to_string())
                    .at(format!("spec.rules[{rule_index}].timeouts"))
            })?
        }
    };
    let retry = match &rule.retry {
        None => None,
        Some(r) => Some(
            RetryPolicy::new(&r.codes, r.attempts, r.backoff.as_deref()).map_err(|e| {
                invalid("UnsupportedValue", e.to_string())
                    .at(format!("spec.rules[{rule_index}].retry"))
            })?,
        ),
    };
    let mut backends = Vec::with_capacity(rule.backend_refs.len());
    for (bi, b) in rule.backend_refs.iter().enumerate() {
        let field = format!("spec.rules[{rule_index}].backendRefs[{bi}]");
        let target = refs.resolve(&b.object_ref()).unwrap_or_else(|mut p| {
            p.message = format!("{field}: {}", p.message);
            let reason = p.message.clone();
            refs.problems.push(p);
            BackendTarget::Invalid { reason }
        });
        let filters = compile_filters(
            &b.filters,
            &matches,
            true,
            &format!("{field}.filters"),
            &mut refs,
        )?;
        backends.push(WeightedBackend {
            weight: b.weight.unwrap_or(1),
            target,
            filters,
        });
    }
    let total_weight = backends
        .iter()
        .try_fold(0u32, |sum, b| sum.checked_add(b.weight))
        .ok_or_else(|| {
            invalid(
                "UnsupportedValue",
                "the weights add up to more than 4294967295",
            )
            .at(format!("spec.rules[{rule_index}].backendRefs"))
        })?;
    Ok(CompiledRule {
        matches,
        action: Arc::new(RuleAction {
            filters,
            backends,
            total_weight,
            timeouts,
            retry,
        }),
    })
}

/// What filter compilation needs to resolve a mirror's backendRef and report it.
pub(super) struct RefContext<'r, 'w, 'a> {
    pub(super) route_kind: &'r str,
    pub(super) route: &'r NsName,
    pub(super) world: &'r World<'w>,
    pub(super) clusters: &'a mut ClusterSet,
    pub(super) problems: &'a mut Vec<RefProblem>,
}

impl RefContext<'_, '_, '_> {
    pub(super) fn resolve(&mut self, b: &BackendObjectRef) -> Result<BackendTarget, RefProblem> {
        resolve_backend(self.route_kind, self.route, b, self.world, self.clusters)
    }
}

fn compile_match(
    m: &crate::resources::http_route::HttpRouteMatch,
) -> Result<RequestMatch, RuleError> {
    let kind = m
        .path
        .as_ref()
        .and_then(|p| p.kind.as_deref())
        .unwrap_or("PathPrefix");
    let value = m
        .path
        .as_ref()
        .and_then(|p| p.value.clone())
        .unwrap_or_else(|| "/".into());
    let path = match kind {
        "Exact" | "PathPrefix" => {
            if !value.starts_with('/') || value.contains("//") {
                return Err(invalid(
                    "UnsupportedValue",
                    format!("path {value:?} must start with '/' and contain no '//'"),
                ));
            }
            if kind == "Exact" {
                PathMatch::Exact(value)
            } else {
                PathMatch::PathPrefix(value)
            }
        }
        "RegularExpression" => {
            PathMatch::RegularExpression(anchored_regex(&value).map_err(|e| {
                invalid(
                    "UnsupportedValue",
                    format!("invalid path regex {value:?}: {}", regex_error(&e)),
                )
            })?)
        }
        other => {
            return Err(invalid(
                "UnsupportedValue",
                format!("unknown path match type {other:?}"),
            ));
        }
    };
    let method = match m.method.as_deref() {
        None => None,
        Some(s) => match s {
            "GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "CONNECT" | "OPTIONS" | "TRACE"
            | "PATCH" => Some(
                Method::from_bytes(s.as_bytes())
                    .map_err(|_| invalid("UnsupportedValue", "bad method"))?,
            ),
            other => {
                return Err(invalid(
                    "UnsupportedValue",
                    format!("unknown method {other:?}"),
                ));
            }
        },
    };
    let mut headers: Vec<HeaderMatch> = Vec::new();
    for h in &m.headers {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| {
            invalid(
                "UnsupportedValue",
                format!("invalid header name {:?}", h.name),
            )
        })?;
        // [HR-7] the same header named twice: only the first entry counts.
        if headers.iter().any(|x| x.name == name) {
            continue;
        }
        headers.push(HeaderMatch::new(name, string_match(h, "header")?));
    }
    let mut query: Vec<QueryMatch> = Vec::new();
    for q in &m.query_params {
        if query.iter().any(|x| x.name == q.name) {
            continue;
        }
        query.push(QueryMatch {
            name: q.name.clone(),
            value: string_match(q, "query parameter")?,
        });
    }
    Ok(RequestMatch {
        method: method.map(MethodMatch::Exact),
        headers,
        query,
        ..RequestMatch::path(path)
    })
}

fn string_match(h: &HttpHeaderMatch, what: &str) -> Result<StringMatch, RuleError> {
    match h.kind.as_deref().unwrap_or("Exact") {
        "Exact" => Ok(StringMatch::Exact(h.value.clone())),
        "RegularExpression" => anchored_regex(&h.value)
            .map(StringMatch::RegularExpression)
            .map_err(|e| {
                invalid(
                    "UnsupportedValue",
                    format!("invalid {what} regex {:?}: {}", h.value, regex_error(&e)),
                )
            }),
        other => Err(invalid(
            "UnsupportedValue",
            format!("unknown {what} match type {other:?}"),
        )),
    }
}

/// Resolve a backendRef of a `route_kind` route to a cluster, or say why not ([HB-1], [HB-2],
/// [RG-1]). Shared by HTTPRoute and GRPCRoute.
pub(super) fn resolve_backend(
    route_kind: &str,
    route: &NsName,
    b: &BackendObjectRef,
    world: &World<'_>,
    clusters: &mut ClusterSet,
) -> Result<BackendTarget, RefProblem> {
    let group = b.group.as_deref().unwrap_or("");
    let kind = b.kind.as_deref().unwrap_or("Service");
    if group == ISTIO_NETWORKING && matches!(kind, "Hostname" | "ServiceEntry") {
        return resolve_entry(route_kind, route, b, kind, world, clusters);
    }
    if !group.is_empty() || kind != "Service" {
        return Err(RefProblem {
            reason: "InvalidKind",
            message: format!("backend kind {group}/{kind} is not supported"),
        });
    }
    let ns = b.namespace.as_deref().unwrap_or(&route.namespace);
    if ns != route.namespace
        && !world.is_service_parent(route_kind, route, &NsName::new(ns, &b.name))
        && !world.permitted(
            (GATEWAY_GROUP, route_kind, &route.namespace),
            ns,
            ("", "Service", &b.name),
        )
    {
        return Err(RefProblem {
            reason: "RefNotPermitted",
            message: format!(
                "no ReferenceGrant in {ns} allows {route_kind}s from {} to use Service {}",
                route.namespace, b.name
            ),
        });
    }
    let Some(svc) = world.service(ns, &b.name) else {
        return Err(RefProblem {
            reason: "BackendNotFound",
            message: format!("Service {ns}/{} not found", b.name),
        });
    };
    let Some(port) = b.port else {
        return Err(RefProblem {
            reason: "BackendNotFound",
            message: format!("backendRef to Service {ns}/{} needs a port", b.name),
        });
    };
    if !svc.spec.ports.iter().any(|p| p.port == port) {
        return Err(RefProblem {
            reason: "BackendNotFound",
            message: format!("Service {ns}/{} has no port {port}", b.name),
        });
    }
    let id = NsName::new(ns, &b.name);
    let name = cluster_name(&id, port);
    Ok(BackendTarget::Cluster {
        index: clusters.intern(id, port),
        name,
    })
}

/// Istio's networking API group.
const ISTIO_NETWORKING: &str = "networking.istio.io";

/// [SE-4] A backendRef to a ServiceEntry: `kind: Hostname` names one of its hosts (an entry in
/// the route's namespace, or one exported to it), `kind: ServiceEntry` names the entry (its
/// first host) in the route's namespace (elsewhere with a ReferenceGrant); `port` is one of its port numbers.
fn resolve_entry(
    route_kind: &str,
    route: &NsName,
    b: &BackendObjectRef,
    kind: &str,
    world: &World<'_>,
    clusters: &mut ClusterSet,
) -> Result<BackendTarget, RefProblem> {
    let not_found = |message: String| RefProblem {
        reason: "BackendNotFound",
        message,
    };
    let (entry, host) = if kind == "Hostname" {
        let e =
            super::service_entries::by_host(world, &b.name, &route.namespace).ok_or_else(|| {
                not_found(format!("no ServiceEntry visible here has host {}", b.name))
            })?;
        (e, b.name.to_ascii_lowercase())
    } else {
        let ns = b.namespace.as_deref().unwrap_or(&route.namespace);
        if ns != route.namespace
            && !world.permitted(
                (GATEWAY_GROUP, route_kind, &route.namespace),
                ns,
                (ISTIO_NETWORKING, "ServiceEntry", &b.name),
            )
        {
            return Err(RefProblem {
                reason: "RefNotPermitted",
                message: format!(
                    "no ReferenceGrant in {ns} allows {route_kind}s from {} to use ServiceEntry {}",
                    route.namespace, b.name
                ),
            });
        }
        let e = world
            .service_entry(ns, &b.name)
            .ok_or_else(|| not_found(format!("ServiceEntry {ns}/{} not found", b.name)))?;
        let host = e
            .spec
            .hosts
            .first()
            .ok_or_else(|| not_found(format!("ServiceEntry {ns}/{} has no hosts", b.name)))?;
        (e, host.to_ascii_lowercase())
    };
    let id = entry.metadata.ns_name();
    let Some(port) = b.port else {
        return Err(not_found(format!(
            "backendRef to ServiceEntry {id} needs a port"
        )));
    };
    if !entry.spec.ports.iter().any(|p| p.number == port) {
        return Err(not_found(format!("ServiceEntry {id} has no port {port}")));
    }
    Ok(BackendTarget::Cluster {
        name: format!("outbound|{port}||{host}"),
        index: clusters.intern_entry(id, &host, port),
    })
}

#[cfg(test)]
mod tests {
    use crate::route_table::RuleAction;
    use crate::{CompileOptions, Snapshot, StatusReport, compile, load_str};
    use std::time::Duration;
    use waygate_filters::Filter;

    const BASE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: istio
  listeners:
  - {name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
---
apiVersion: v1
kind: Service
metadata: {name: svc, namespace: apps}
spec: {ports: [{name: http, port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: shadow, namespace: other}
spec: {ports: [{name: http, port: 8080}]}
"#;

    /// Compile one route `apps/r` whose spec continues with `rules`.
    fn build(rules: &str) -> (Snapshot, StatusReport) {
        let route = format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r, namespace: apps}}\nspec:\n  parentRefs: [{{name: gw, namespace: infra}}]\n  rules:\n{rules}"
        );
        let r = load_str("t.yaml", &format!("{BASE}\n---\n{route}")).unwrap();
        compile(&r, &CompileOptions::default())
    }

    fn condition(report: &StatusReport, kind: &str) -> (String, String, String) {
        let c = report.find("HTTPRoute", "apps", "r").unwrap().parents[0]
            .conditions
            .get(kind)
            .unwrap()
            .clone();
        (c.status, c.reason, c.message)
    }

    fn first_action(s: &Snapshot) -> &RuleAction {
        &s.gateways[0].ports[0].listeners[0].routes.virtual_hosts[0].entries[0].action
    }

    #[test]
    fn url_rewrite_and_redirect_are_incompatible_in_either_order_hf_0() {
        // [HF-0] URLRewrite together with RequestRedirect → IncompatibleFilters.
        for filters in [
            "[{type: URLRewrite, urlRewrite: {hostname: a.io}}, {type: RequestRedirect, requestRedirect: {hostname: b.io}}]",
            "[{type: RequestRedirect, requestRedirect: {hostname: b.io}}, {type: URLRewrite, urlRewrite: {hostname: a.io}}]",
        ] {
            let (_, report) = build(&format!("  - filters: {filters}\n"));
            let (status, reason, message) = condition(&report, "Accepted");
            assert_eq!(
                (status.as_str(), reason.as_str()),
                ("False", "IncompatibleFilters")
            );
            assert!(message.contains("spec.rules[0].filters[1]"), "{message}");
        }
    }

    #[test]
    fn url_rewrite_validation_hf_3() {
        // [HF-3] ReplacePrefixMatch needs PathPrefix matches; hostnames are precise.
        let bad = [
            "  - matches: [{path: {type: Exact, value: /a}}]\n    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}}]\n    backendRefs: [{name: svc, port: 8080}]\n",
            "  - filters: [{type: URLRewrite, urlRewrite: {hostname: \"*.a.io\"}}]\n    backendRefs: [{name: svc, port: 8080}]\n",
            "  - filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: no-slash}}}]\n    backendRefs: [{name: svc, port: 8080}]\n",
            "  - filters: [{type: URLRewrite, urlRewrite: {path: {type: Other}}}]\n    backendRefs: [{name: svc, port: 8080}]\n",
        ];
        for rules in bad {
            let (_, report) = build(rules);
            let (status, reason, _) = condition(&report, "Accepted");
            assert_eq!(
                (status.as_str(), reason.as_str()),
                ("False", "UnsupportedValue"),
                "{rules}"
            );
        }
        // Two PathPrefix matches are fine for URLRewrite (each request knows its prefix).
        let (s, report) = build(
            "  - matches: [{path: {value: /a}}, {path: {value: /b}}]\n    filters: [{type: URLRewrite, urlRewrite: {hostname: x.io, path: {type: ReplacePrefixMatch, replacePrefixMatch: /c}}}]\n    backendRefs: [{name: svc, port: 8080}]\n",
        );
        assert_eq!(condition(&report, "Accepted").0, "True");
        assert!(matches!(first_action(&s).filters[0], Filter::UrlRewrite(_)));
    }

    #[test]
    fn unresolvable_mirror_is_reported_and_not_configured_hf_4() {
        // [HF-4] missing or not permitted mirror backends: ResolvedRefs=False, filter absent,
        // the rule still serves.
        for (mirror, reason) in [
            ("{name: missing, port: 8080}", "BackendNotFound"),
            (
                "{name: shadow, namespace: other, port: 8080}",
                "RefNotPermitted",
            ),
            ("{name: svc, port: 9999}", "BackendNotFound"),
        ] {
            let (s, report) = build(&format!(
                "  - filters: [{{type: RequestMirror, requestMirror: {{backendRef: {mirror}}}}}]\n    backendRefs: [{{name: svc, port: 8080}}]\n"
            ));
            let (status, got, message) = condition(&report, "ResolvedRefs");
            assert_eq!(
                (status.as_str(), got.as_str()),
                ("False", reason),
                "{mirror}"
            );
            assert!(message.contains("RequestMirror"), "{message}");
            assert_eq!(condition(&report, "Accepted").0, "True");
            assert!(first_action(&s).filters.is_empty());
        }
        let (s, report) = build(
            "  - filters:\n    - {type: RequestMirror, requestMirror: {backendRef: {name: svc, port: 8080}, percent: 25}}\n    - {type: RequestMirror, requestMirror: {backendRef: {name: svc, port: 8080}}}\n    backendRefs: [{name: svc, port: 8080}]\n",
        );
        assert_eq!(condition(&report, "ResolvedRefs").0, "True");
        let mirrors: Vec<_> = first_action(&s)
            .filters
            .iter()
            .filter_map(|f| match f {
                Filter::RequestMirror(m) => Some((m.numerator, m.denominator)),
                _ => None,
            })
            .collect();
        assert_eq!(mirrors, [(25, 100), (1, 1)], "multiple mirrors are allowed");
        let (_, report) = build(
            "  - filters: [{type: RequestMirror, requestMirror: {backendRef: {name: svc, port: 8080}, percent: 101}}]\n    backendRefs: [{name: svc, port: 8080}]\n",
        );
        assert_eq!(condition(&report, "Accepted").1, "UnsupportedValue");
    }

    #[test]
    fn timeouts_and_retry_compile_into_the_action_ht_1_ht_2() {
        let (s, report) = build(
            "  - timeouts: {request: 10s, backendRequest: 500ms}\n    retry: {codes: [503], attempts: 3, backoff: 100ms}\n    backendRefs: [{name: svc, port: 8080}]\n",
        );
        assert_eq!(condition(&report, "Accepted").0, "True");
        let a = first_action(&s);
        assert_eq!(a.timeouts.request, Some(Duration::from_secs(10)));
        assert_eq!(a.timeouts.backend_request, Some(Duration::from_millis(500)));
        let retry = a.retry.as_ref().unwrap();
        assert_eq!((retry.codes.as_slice(), retry.attempts), (&[503u16][..], 3));
        // [HT-1] backendRequest > request, bad durations, [HT-2] bad codes: the rule is dropped.
        for rules in [
            "  - timeouts: {request: 1s, backendRequest: 2s}\n    backendRefs: [{name: svc, port: 8080}]\n",
            "  - timeouts: {request: 1 second}\n    backendRefs: [{name: svc, port: 8080}]\n",
            "  - retry: {codes: [200]}\n    backendRefs: [{name: svc, port: 8080}]\n",
            "  - retry: {backoff: soon}\n    backendRefs: [{name: svc, port: 8080}]\n",
        ] {
            let (_, report) = build(rules);
            let (status, reason, _) = condition(&report, "Accepted");
            assert_eq!(
                (status.as_str(), reason.as_str()),
                ("False", "UnsupportedValue"),
                "{rules}"
            );
        }
    }

    #[test]
    fn cors_compiles_on_rules_only_hf_5() {
        let (s, report) = build(
            "  - filters: [{type: CORS, cors: {allowOrigins: [\"https://*.a.io\"], allowCredentials: true}}]\n    backendRefs: [{name: svc, port: 8080}]\n",
        );
        assert_eq!(condition(&report, "Accepted").0, "True");
        assert!(matches!(first_action(&s).filters[0], Filter::Cors(_)));
        for rules in [
            "  - filters: [{type: CORS, cors: {allowOrigins: [\"*\", \"https://a.io\"]}}]\n    backendRefs: [{name: svc, port: 8080}]\n",
            "  - backendRefs: [{name: svc, port: 8080, filters: [{type: CORS, cors: {allowOrigins: [\"*\"]}}]}]\n",
        ] {
            let (_, report) = build(rules);
            assert_eq!(
                condition(&report, "Accepted").1,
                "UnsupportedValue",
                "{rules}"
            );
        }
    }
}
