//! One HTTPRoute rule → route entries' shared parts: matches, filters, weighted backends ([HR-6],
//! [HR-7], [HF-0..2], [HB-1], [HB-2]).

use super::clusters::{ClusterSet, cluster_name};
use super::{GATEWAY_GROUP, World};
use crate::request_match::{
    HeaderMatch, PathMatch, QueryMatch, RequestMatch, StringMatch, anchored_regex,
};
use crate::resources::NsName;
use crate::resources::http_route::{
    HttpBackendRef, HttpHeaderMatch, HttpRouteFilter, HttpRouteRule,
};
use crate::route_table::{BackendTarget, RuleAction, WeightedBackend};
use http::{HeaderName, Method};
use std::sync::Arc;
use waygate_filters::{Filter, HeaderModifier, PathRewrite, Redirect};

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
    fn at(mut self, field: String) -> Self {
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
fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    last.trim().trim_start_matches("error: ").to_string()
}

fn invalid(reason: &'static str, message: impl Into<String>) -> RuleError {
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
        vec![RequestMatch {
            path: PathMatch::PathPrefix("/".into()),
            method: None,
            headers: vec![],
            query: vec![],
        }]
    } else {
        rule.matches
            .iter()
            .enumerate()
            .map(|(i, m)| {
                compile_match(m).map_err(|e| e.at(format!("spec.rules[{rule_index}].matches[{i}]")))
            })
            .collect::<Result<Vec<_>, _>>()?
    };
    let filters = compile_filters(&rule.filters, &matches, false)
        .map_err(|e| e.at(format!("spec.rules[{rule_index}].filters")))?;
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
    let mut backends = Vec::with_capacity(rule.backend_refs.len());
    for (bi, b) in rule.backend_refs.iter().enumerate() {
        let field = format!("spec.rules[{rule_index}].backendRefs[{bi}]");
        let target =
            resolve_backend(route_kind, route, b, world, clusters).unwrap_or_else(|mut p| {
                p.message = format!("{field}: {}", p.message);
                let reason = p.message.clone();
                problems.push(p);
                BackendTarget::Invalid { reason }
            });
        backends.push(WeightedBackend {
            weight: b.weight.unwrap_or(1),
            target,
            filters: compile_filters(&b.filters, &matches, true)
                .map_err(|e| e.at(format!("{field}.filters")))?,
        });
    }
    let total_weight = backends.iter().map(|b| b.weight).sum();
    Ok(CompiledRule {
        matches,
        action: Arc::new(RuleAction {
            filters,
            backends,
            total_weight,
        }),
    })
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
        headers.push(HeaderMatch {
            name,
            value: string_match(h, "header")?,
        });
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
        path,
        method,
        headers,
        query,
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

fn compile_filters(
    specs: &[HttpRouteFilter],
    matches: &[RequestMatch],
    on_backend: bool,
) -> Result<Vec<Filter>, RuleError> {
    let mut out = Vec::with_capacity(specs.len());
    let mut seen: Vec<&str> = Vec::new();
    for f in specs {
        // [HF-0] each filter type at most once, except RequestMirror and ExtensionRef.
        if seen.contains(&f.kind.as_str())
            && !matches!(f.kind.as_str(), "RequestMirror" | "ExtensionRef")
        {
            return Err(invalid(
                "UnsupportedValue",
                format!("filter {} appears more than once", f.kind),
            ));
        }
        seen.push(&f.kind);
        let missing = || {
            invalid(
                "UnsupportedValue",
                format!("filter {} has no settings", f.kind),
            )
        };
        let modifier = |m: &crate::resources::http_route::HeaderModifierSpec| {
            HeaderModifier::new(
                m.set.iter().map(|h| (h.name.as_str(), h.value.as_str())),
                m.add.iter().map(|h| (h.name.as_str(), h.value.as_str())),
                m.remove.iter().map(String::as_str),
            )
            .map_err(|e| invalid("UnsupportedValue", format!("filter {}: {e}", f.kind)))
        };
        let compiled = match f.kind.as_str() {
            "RequestHeaderModifier" => Filter::RequestHeaderModifier(modifier(
                f.request_header_modifier.as_ref().ok_or_else(missing)?,
            )?),
            "ResponseHeaderModifier" => Filter::ResponseHeaderModifier(modifier(
                f.response_header_modifier.as_ref().ok_or_else(missing)?,
            )?),
            "RequestRedirect" if !on_backend => Filter::RequestRedirect(redirect(
                f.request_redirect.as_ref().ok_or_else(missing)?,
                matches,
            )?),
            "URLRewrite" if seen.contains(&"RequestRedirect") => {
                return Err(invalid(
                    "IncompatibleFilters",
                    "URLRewrite and RequestRedirect cannot be combined",
                ));
            }
            "RequestRedirect" if seen.contains(&"URLRewrite") => {
                return Err(invalid(
                    "IncompatibleFilters",
                    "URLRewrite and RequestRedirect cannot be combined",
                ));
            }
            other => {
                return Err(invalid(
                    "UnsupportedValue",
                    format!("filter {other} is not supported by this build yet"),
                ));
            }
        };
        out.push(compiled);
    }
    Ok(out)
}

fn redirect(
    spec: &crate::resources::http_route::RequestRedirectSpec,
    matches: &[RequestMatch],
) -> Result<Redirect, RuleError> {
    let status = spec.status_code.unwrap_or(302);
    if !matches!(status, 301 | 302 | 303 | 307 | 308) {
        return Err(invalid(
            "UnsupportedValue",
            format!("redirect statusCode {status} is not allowed"),
        ));
    }
    if let Some(s) = spec.scheme.as_deref()
        && !matches!(s, "http" | "https")
    {
        return Err(invalid(
            "UnsupportedValue",
            format!("redirect scheme {s:?} is not http or https"),
        ));
    }
    let path = match &spec.path {
        None => None,
        Some(p) => match p.kind.as_str() {
            "ReplaceFullPath" => Some(PathRewrite::ReplaceFullPath(
                p.replace_full_path.clone().unwrap_or_else(|| "/".into()),
            )),
            "ReplacePrefixMatch" => {
                // [HF-2] needs exactly one PathPrefix match.
                let prefixes = matches
                    .iter()
                    .filter(|m| m.matched_prefix().is_some())
                    .count();
                if prefixes != 1 || matches.len() != 1 {
                    return Err(invalid(
                        "UnsupportedValue",
                        "ReplacePrefixMatch needs exactly one PathPrefix match",
                    ));
                }
                Some(PathRewrite::ReplacePrefixMatch(
                    p.replace_prefix_match.clone().unwrap_or_default(),
                ))
            }
            other => {
                return Err(invalid(
                    "UnsupportedValue",
                    format!("unknown path modifier {other:?}"),
                ));
            }
        },
    };
    Ok(Redirect {
        scheme: spec.scheme.clone(),
        hostname: spec.hostname.clone(),
        port: spec.port,
        path,
        status,
    })
}

/// Resolve a backendRef of a `route_kind` route to a cluster, or say why not ([HB-1], [HB-2],
/// [RG-1]). Shared by HTTPRoute and GRPCRoute.
pub(super) fn resolve_backend(
    route_kind: &str,
    route: &NsName,
    b: &HttpBackendRef,
    world: &World<'_>,
    clusters: &mut ClusterSet,
) -> Result<BackendTarget, RefProblem> {
    let group = b.group.as_deref().unwrap_or("");
    let kind = b.kind.as_deref().unwrap_or("Service");
    if !group.is_empty() || kind != "Service" {
        return Err(RefProblem {
            reason: "InvalidKind",
            message: format!("backend kind {group}/{kind} is not supported"),
        });
    }
    let ns = b.namespace.as_deref().unwrap_or(&route.namespace);
    if ns != route.namespace
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
