//! GRPCRoute rules: a gRPC call is an HTTP/2 POST to `/<service>/<method>`, so each method match
//! becomes a path match on the same index HTTPRoutes use ([GR-1], [GR-2]).

use super::World;
use super::clusters::ClusterSet;
use super::rules::{CompiledRule, RefProblem, RuleError, compile_rule};
use crate::resources::NsName;
use crate::resources::grpc_route::{GrpcMethodMatch, GrpcRouteRule};
use crate::resources::http_route::{HttpPathMatch, HttpRouteMatch, HttpRouteRule};

/// Filter types a GRPCRoute may use ([GR-4]).
const GRPC_FILTERS: [&str; 4] = [
    "RequestHeaderModifier",
    "ResponseHeaderModifier",
    "RequestMirror",
    "ExtensionRef",
];

/// Compile rule `rule_index` of a GRPCRoute through the HTTPRoute rule compiler.
pub(super) fn compile_grpc_rule(
    route: &NsName,
    rule_index: usize,
    rule: &GrpcRouteRule,
    world: &World<'_>,
    clusters: &mut ClusterSet,
    problems: &mut Vec<RefProblem>,
) -> Result<CompiledRule, RuleError> {
    let filter_ok = |kind: &str| GRPC_FILTERS.contains(&kind);
    let bad_filter = rule
        .filters
        .iter()
        .chain(rule.backend_refs.iter().flat_map(|b| &b.filters))
        .find(|f| !filter_ok(&f.kind));
    if let Some(f) = bad_filter {
        return Err(RuleError {
            reason: "UnsupportedValue",
            message: format!(
                "spec.rules[{rule_index}].filters: filter {} is not allowed on a GRPCRoute",
                f.kind
            ),
        });
    }
    let matches = rule
        .matches
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let path = match &m.method {
                None => None,
                Some(method) => Some(method_path(method).map_err(|message| RuleError {
                    reason: "UnsupportedValue",
                    message: format!("spec.rules[{rule_index}].matches[{i}].method: {message}"),
                })?),
            };
            Ok(HttpRouteMatch {
                path,
                headers: m.headers.clone(),
                ..Default::default()
            })
        })
        .collect::<Result<Vec<_>, RuleError>>()?;
    let as_http = HttpRouteRule {
        name: rule.name.clone(),
        matches,
        filters: rule.filters.clone(),
        backend_refs: rule.backend_refs.clone(),
        ..Default::default()
    };
    compile_rule(
        "GRPCRoute",
        route,
        rule_index,
        &as_http,
        world,
        clusters,
        problems,
    )
}

/// The path condition for a method match ([GR-2]).
fn method_path(m: &GrpcMethodMatch) -> Result<HttpPathMatch, String> {
    let service = m.service.as_deref().filter(|s| !s.is_empty());
    let method = m.method.as_deref().filter(|s| !s.is_empty());
    let path = |kind: &str, value: String| HttpPathMatch {
        kind: Some(kind.to_string()),
        value: Some(value),
    };
    match m.kind.as_deref().unwrap_or("Exact") {
        "Exact" => {
            for v in [service, method].into_iter().flatten() {
                if v.contains('/') {
                    return Err(format!("{v:?} must not contain '/'"));
                }
            }
            match (service, method) {
                (Some(s), Some(m)) => Ok(path("Exact", format!("/{s}/{m}"))),
                (Some(s), None) => Ok(path("PathPrefix", format!("/{s}"))),
                (None, Some(m)) => Ok(path(
                    "RegularExpression",
                    format!("/[^/]+/{}", regex::escape(m)),
                )),
                (None, None) => Err("service or method must be set".into()),
            }
        }
        "RegularExpression" => {
            let s = service.unwrap_or("[^/]+");
            let m = method.unwrap_or("[^/]+");
            Ok(path("RegularExpression", format!("/(?:{s})/(?:{m})")))
        }
        other => Err(format!("unknown method match type {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(
        kind: Option<&str>,
        service: Option<&str>,
        method: Option<&str>,
    ) -> Result<(String, String), String> {
        method_path(&GrpcMethodMatch {
            kind: kind.map(str::to_string),
            service: service.map(str::to_string),
            method: method.map(str::to_string),
        })
        .map(|p| (p.kind.unwrap_or_default(), p.value.unwrap_or_default()))
    }

    #[test]
    fn method_matches_become_paths_gr_2() {
        // [GR-2] service+method → exact path; service only → that service's prefix;
        // method only → any service with that method; regexes apply to each part.
        let exact = |k: &str, v: &str| Ok((k.to_string(), v.to_string()));
        assert_eq!(
            m(None, Some("pkg.Svc"), Some("Get")),
            exact("Exact", "/pkg.Svc/Get")
        );
        assert_eq!(
            m(None, Some("pkg.Svc"), None),
            exact("PathPrefix", "/pkg.Svc")
        );
        assert_eq!(
            m(None, None, Some("Get.X")),
            exact("RegularExpression", "/[^/]+/Get\\.X")
        );
        assert_eq!(
            m(Some("RegularExpression"), Some("pkg\\..*"), None),
            exact("RegularExpression", "/(?:pkg\\..*)/(?:[^/]+)")
        );
        assert!(m(None, None, None).is_err());
        assert!(m(None, Some("a/b"), Some("c")).is_err());
    }
}
