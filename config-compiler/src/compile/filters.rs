//! Filters of a rule or a backendRef, compiled from what users wrote: header modifiers, redirect,
//! URL rewrite, mirror, CORS ([HF-0..5]).

use super::rules::{RefContext, RefProblem, RuleError, invalid};
use crate::request_match::RequestMatch;
use crate::resources::http_route::{HttpPathModifier, HttpRouteFilter};
use crate::route_table::BackendTarget;
use waygate_filters::{
    Cors, CorsSettings, Filter, HeaderModifier, Mirror, PathRewrite, Redirect, UrlRewrite,
};

pub(super) fn compile_filters(
    specs: &[HttpRouteFilter],
    matches: &[RequestMatch],
    on_backend: bool,
    field: &str,
    refs: &mut RefContext<'_, '_, '_>,
) -> Result<Vec<Filter>, RuleError> {
    let mut out = Vec::with_capacity(specs.len());
    let mut seen: Vec<&str> = Vec::new();
    for (i, f) in specs.iter().enumerate() {
        let at = |e: RuleError| e.at(format!("{field}[{i}]"));
        // [HF-0] each filter type at most once, except RequestMirror and ExtensionRef.
        if seen.contains(&f.kind.as_str())
            && !matches!(f.kind.as_str(), "RequestMirror" | "ExtensionRef")
        {
            return Err(at(invalid(
                "UnsupportedValue",
                format!("filter {} appears more than once", f.kind),
            )));
        }
        seen.push(&f.kind);
        // [HF-0] URLRewrite together with RequestRedirect is invalid, whatever their order.
        if seen.contains(&"URLRewrite") && seen.contains(&"RequestRedirect") {
            return Err(at(invalid(
                "IncompatibleFilters",
                "URLRewrite and RequestRedirect cannot be combined",
            )));
        }
        if let Some(compiled) = compile_filter(f, matches, on_backend, refs).map_err(at)? {
            out.push(compiled);
        }
    }
    Ok(out)
}

/// One filter; `Ok(None)` for a mirror whose backend did not resolve (reported, not configured).
fn compile_filter(
    f: &HttpRouteFilter,
    matches: &[RequestMatch],
    on_backend: bool,
    refs: &mut RefContext<'_, '_, '_>,
) -> Result<Option<Filter>, RuleError> {
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
        "URLRewrite" => {
            let spec = f.url_rewrite.as_ref().ok_or_else(missing)?;
            Filter::UrlRewrite(url_rewrite(spec, matches)?)
        }
        "RequestMirror" => {
            let spec = f.request_mirror.as_ref().ok_or_else(missing)?;
            // [HF-4] an unresolvable mirror sets ResolvedRefs=False and is not configured.
            let (index, name) = match refs.resolve(&spec.backend_ref) {
                Ok(BackendTarget::Cluster { index, name }) => (index, name),
                Ok(BackendTarget::Invalid { reason }) => {
                    refs.problems.push(RefProblem {
                        reason: "BackendNotFound",
                        message: format!("RequestMirror backendRef: {reason}"),
                    });
                    return Ok(None);
                }
                Err(mut p) => {
                    p.message = format!("RequestMirror backendRef: {}", p.message);
                    refs.problems.push(p);
                    return Ok(None);
                }
            };
            let fraction = spec
                .fraction
                .as_ref()
                .map(|fr| (fr.numerator, fr.denominator));
            Filter::RequestMirror(
                Mirror::new(index, name, spec.percent, fraction)
                    .map_err(|e| invalid("UnsupportedValue", e.to_string()))?,
            )
        }
        // CORS answers preflights before a backend is chosen, so it belongs to the rule.
        "CORS" if !on_backend => {
            let spec = f.cors.as_ref().ok_or_else(missing)?;
            Filter::Cors(
                Cors::new(&CorsSettings {
                    allow_origins: &spec.allow_origins,
                    allow_methods: &spec.allow_methods,
                    allow_headers: &spec.allow_headers,
                    expose_headers: &spec.expose_headers,
                    max_age: spec.max_age,
                    allow_credentials: spec.allow_credentials.unwrap_or(false),
                    ..Default::default()
                })
                .map_err(|e| invalid("UnsupportedValue", e.to_string()))?,
            )
        }
        other @ ("RequestRedirect" | "CORS") => {
            return Err(invalid(
                "UnsupportedValue",
                format!("filter {other} is not supported on a backendRef"),
            ));
        }
        other => {
            return Err(invalid(
                "UnsupportedValue",
                format!("filter {other} is not supported by this build yet"),
            ));
        }
    };
    Ok(Some(compiled))
}

/// A path modifier. `ReplacePrefixMatch` needs PathPrefix matches only; `single_prefix` asks
/// for exactly one (as RequestRedirect does, [HF-2]).
fn path_modifier(
    p: &HttpPathModifier,
    matches: &[RequestMatch],
    single_prefix: bool,
) -> Result<PathRewrite, RuleError> {
    match p.kind.as_str() {
        "ReplaceFullPath" => {
            let path = p.replace_full_path.clone().unwrap_or_else(|| "/".into());
            check_path(&path)?;
            Ok(PathRewrite::ReplaceFullPath(path))
        }
        "ReplacePrefixMatch" => {
            let all_prefixes = matches.iter().all(|m| m.matched_prefix().is_some());
            if !all_prefixes || matches.is_empty() || (single_prefix && matches.len() != 1) {
                let want = if single_prefix {
                    "exactly one PathPrefix match"
                } else {
                    "PathPrefix matches only"
                };
                return Err(invalid(
                    "UnsupportedValue",
                    format!("ReplacePrefixMatch needs {want}"),
                ));
            }
            let replacement = p.replace_prefix_match.clone().unwrap_or_default();
            if !replacement.is_empty() {
                check_path(&replacement)?;
            }
            Ok(PathRewrite::ReplacePrefixMatch(replacement))
        }
        other => Err(invalid(
            "UnsupportedValue",
            format!("unknown path modifier {other:?}"),
        )),
    }
}

/// A replacement path must be an absolute path that can go into a request line.
fn check_path(path: &str) -> Result<(), RuleError> {
    let ok = path.starts_with('/')
        && !path.contains(['?', '#'])
        && path.parse::<http::uri::PathAndQuery>().is_ok();
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "UnsupportedValue",
            format!("path {path:?} is not an absolute path"),
        ))
    }
}

fn url_rewrite(
    spec: &crate::resources::http_route::UrlRewriteSpec,
    matches: &[RequestMatch],
) -> Result<UrlRewrite, RuleError> {
    if let Some(h) = spec.hostname.as_deref() {
        // A PreciseHostname: no wildcard, valid as a Host header.
        let precise = crate::hostname::validate(h).is_ok()
            && !h.contains('*')
            && http::HeaderValue::from_str(h).is_ok();
        if !precise {
            return Err(invalid(
                "UnsupportedValue",
                format!("URLRewrite hostname {h:?} must be a precise hostname"),
            ));
        }
    }
    let path = spec
        .path
        .as_ref()
        .map(|p| path_modifier(p, matches, false))
        .transpose()?;
    Ok(UrlRewrite {
        hostname: spec.hostname.clone(),
        path,
    })
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
    let path = spec
        .path
        .as_ref()
        .map(|p| path_modifier(p, matches, true))
        .transpose()?;
    Ok(Redirect {
        scheme: spec.scheme.clone(),
        hostname: spec.hostname.clone(),
        port: spec.port,
        derive_port: None,
        path,
        status,
    })
}
