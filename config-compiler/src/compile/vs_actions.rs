//! What a VirtualService `http[]` route does once it matched ([VS-4]..[VS-10]): fault,
//! redirect, rewrite, header edits, CORS, mirrors, weighted destinations, timeout and retries,
//! compiled into the shared [`RuleAction`].

use super::World;
use super::clusters::{ClusterSet, cluster_name};
use super::virtual_services::expand;
use super::vs_matches::regex_problem;
use crate::resources::NsName;
use crate::resources::virtual_service::{
    CorsPolicy, Destination, Headers, HttpDirectResponse, HttpRedirect, HttpRoute, RegexRewrite,
};
use crate::route_table::{BackendTarget, RuleAction, WeightedBackend};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use std::time::Duration;
use waygate_filters::cors::OriginMatch;
use waygate_filters::fault::{Fault, Faulted, share};
use waygate_filters::{
    Cors, CorsSettings, DerivePort, DirectResponse, Filter, HeaderModifier, Mirror, PathRewrite,
    Redirect, RetryPolicy, Timeouts, UrlRewrite,
};

fn modifiers(h: &Headers, filters: &mut Vec<Filter>, at: &str) -> Result<(), String> {
    let build = |ops: &crate::resources::virtual_service::HeaderOperations| {
        HeaderModifier::new(
            ops.set.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            ops.add.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            ops.remove.iter().map(String::as_str),
        )
        .map_err(|e| format!("{at}: {e}"))
    };
    if let Some(req) = &h.request {
        filters.push(Filter::RequestHeaderModifier(build(req)?));
    }
    if let Some(resp) = &h.response {
        filters.push(Filter::ResponseHeaderModifier(build(resp)?));
    }
    Ok(())
}

fn duration(s: &str, at: &str) -> Result<Duration, String> {
    // Istio durations: `1.5s`, `100ms`, `2m`, `1h`.
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| s.split_at(i))
        .ok_or_else(|| format!("{at}: {s:?} has no unit"))?;
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{at}: {s:?} is not a duration"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{at}: {s:?} has an unknown unit")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{at}: {s:?} is out of range"))
}

/// [VS-4] A destination's cluster: a ServiceEntry host, else a Service (short name in the
/// VirtualService's namespace); the port is the given one, the service's only one, or the
/// port the request came in on (0 while validating unbound: not checked).
pub(super) fn destination(
    d: &Destination,
    ns: &str,
    request_port: u16,
    world: &World<'_>,
    clusters: &mut ClusterSet,
) -> Result<BackendTarget, String> {
    // [DR-1] A subset is its own cluster: the host's cluster narrowed by the subset's labels.
    if let Some(subset) = d.subset.as_deref() {
        let whole = Destination {
            subset: None,
            ..d.clone()
        };
        return match destination(&whole, ns, request_port, world, clusters)? {
            BackendTarget::Cluster { index, name } => Ok(BackendTarget::Cluster {
                index: clusters.intern_subset_of(index, subset),
                name: name.replacen("||", &format!("|{subset}|"), 1),
            }),
            invalid => Ok(invalid),
        };
    }
    let given = d.port.as_ref().and_then(|p| p.number);
    if let Some(e) = super::service_entries::by_host(world, &d.host, ns) {
        let port = given
            .or_else(|| (e.spec.ports.len() == 1).then(|| e.spec.ports[0].number))
            .unwrap_or(request_port);
        if port != 0 && !e.spec.ports.iter().any(|p| p.number == port) {
            return Err(format!("{} has no port {port}", d.host));
        }
        let host = d.host.to_ascii_lowercase();
        return Ok(BackendTarget::Cluster {
            name: format!("outbound|{port}||{host}"),
            index: clusters.intern_entry(e.metadata.ns_name(), &host, port),
        });
    }
    let fqdn = expand(&d.host, ns);
    let svc = fqdn
        .strip_suffix(".svc.cluster.local")
        .and_then(|s| s.split_once('.'))
        .map(|(name, ns)| NsName::new(ns, name))
        .ok_or_else(|| format!("{}: not a Service or ServiceEntry host", d.host))?;
    let service = world
        .service(&svc.namespace, &svc.name)
        .ok_or_else(|| format!("Service {svc} not found"))?;
    let ports = &service.spec.ports;
    let port = given
        .or_else(|| (ports.len() == 1).then(|| ports[0].port))
        .unwrap_or(request_port);
    if port != 0 && !ports.iter().any(|p| p.port == port) {
        return Err(format!("Service {svc} has no port {port}"));
    }
    let name = cluster_name(&svc, port);
    Ok(BackendTarget::Cluster {
        index: clusters.intern(svc, port),
        name,
    })
}

/// `corsPolicy` as the CORS filter ([HF-5] semantics, Istio's origin matches and its
/// default of forwarding preflights from origins it does not allow).
fn cors(c: &CorsPolicy) -> Result<Cors, String> {
    let mut origins = Vec::new();
    for (k, o) in c.allow_origins.iter().enumerate() {
        origins.push(match (&o.exact, &o.prefix, &o.regex) {
            (Some(e), None, None) => OriginMatch::Exact(e.clone()),
            (None, Some(p), None) => OriginMatch::Prefix(p.clone()),
            (None, None, Some(r)) => OriginMatch::Regex(r.clone()),
            _ => {
                return Err(format!(
                    ".corsPolicy.allowOrigins[{k}]: set exactly one of exact, prefix and regex"
                ));
            }
        });
    }
    origins.extend(c.allow_origin.iter().cloned().map(OriginMatch::Exact));
    let max_age = c
        .max_age
        .as_deref()
        .map(|a| duration(a, ".corsPolicy.maxAge").map(|d| d.as_secs() as i64))
        .transpose()?;
    let forward = match c.unmatched_preflights.as_deref() {
        None | Some("FORWARD" | "UNSPECIFIED") => true,
        Some("IGNORE") => false,
        Some(other) => {
            return Err(format!(
                ".corsPolicy.unmatchedPreflights: unknown value {other:?} (FORWARD or IGNORE)"
            ));
        }
    };
    Cors::new(&CorsSettings {
        allow_methods: &c.allow_methods,
        allow_headers: &c.allow_headers,
        expose_headers: &c.expose_headers,
        max_age,
        allow_credentials: c.allow_credentials.unwrap_or(false),
        origin_matches: &origins,
        forward_unmatched_preflights: forward,
        no_default_max_age: true,
        ..Default::default()
    })
    .map_err(|e| format!(".corsPolicy: {e}"))
}

/// [VS-6] `redirect`: `uri` replaces the whole path (Istio has no prefix form); `port` and
/// `derivePort` are alternatives; the code (any 3xx, as Istio validates) defaults to 301.
fn redirect(r: &HttpRedirect) -> Result<Redirect, String> {
    let derive_port = match r.derive_port.as_deref() {
        None => None,
        Some("FROM_PROTOCOL_DEFAULT") => Some(DerivePort::FromProtocolDefault),
        Some("FROM_REQUEST_PORT") => Some(DerivePort::FromRequestPort),
        Some(other) => {
            return Err(format!(
                ".redirect.derivePort: unknown value {other:?} (FROM_PROTOCOL_DEFAULT or FROM_REQUEST_PORT)"
            ));
        }
    };
    if r.port.is_some() && derive_port.is_some() {
        return Err(".redirect: set only one of port and derivePort".into());
    }
    let status = r.redirect_code.unwrap_or(301);
    if !(300..=399).contains(&status) {
        return Err(format!(
            ".redirect.redirectCode: {status} is not a redirect status (3xx)"
        ));
    }
    Ok(Redirect {
        scheme: r.scheme.clone(),
        hostname: r.authority.clone(),
        port: r.port,
        derive_port,
        path: r.uri.clone().map(PathRewrite::ReplaceFullPath),
        status,
    })
}

/// [VS-6] `directResponse`: a status from 200 to 599 and an optional text or base64 body.
fn direct_response(d: &HttpDirectResponse) -> Result<DirectResponse, String> {
    let status = d
        .status
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (200..=599).contains(s))
        .ok_or(".directResponse.status: needs a status between 200 and 599")?;
    let body = match d.body.as_ref().map(|b| (&b.string, &b.bytes)) {
        None | Some((None, None)) => Bytes::new(),
        Some((Some(text), None)) => Bytes::from(text.clone()),
        Some((None, Some(b64))) => BASE64
            .decode(b64.trim())
            .map(Bytes::from)
            .map_err(|e| format!(".directResponse.body.bytes: not base64: {e}"))?,
        Some((Some(_), Some(_))) => {
            return Err(".directResponse.body: set only one of string and bytes".into());
        }
    };
    Ok(DirectResponse { status, body })
}

/// [VS-5] `uriRegexRewrite{match, rewrite}`: Envoy's regex substitution on the path.
fn regex_rewrite(r: &RegexRewrite) -> Result<PathRewrite, String> {
    let at = ".rewrite.uriRegexRewrite";
    let pattern = r
        .pattern
        .as_deref()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| format!("{at}.match: required"))?;
    let rewrite = r
        .rewrite
        .as_deref()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| format!("{at}.rewrite: required"))?;
    let re = regex::Regex::new(pattern)
        .map_err(|e| regex_problem(pattern, &format!("{at}.match"), &e))?;
    PathRewrite::regex_replace(re, rewrite).map_err(|e| format!("{at}.rewrite: {rewrite:?}: {e}"))
}

/// Every retryable status `retryOn` names ([VS-9]).
fn retry_codes(on: &str) -> Vec<i64> {
    let mut codes = Vec::new();
    for part in on.split(',').map(str::trim) {
        match part {
            "5xx" => codes.extend(500..=599),
            "gateway-error" => codes.extend([502, 503, 504]),
            "retriable-4xx" => codes.push(409),
            "unavailable" => codes.push(503),
            p => codes.extend(p.parse::<i64>().ok()),
        }
    }
    codes.sort_unstable();
    codes.dedup();
    codes
}

pub(super) fn compile_action(
    h: &HttpRoute,
    matched_prefix: Option<String>,
    ns: &str,
    request_port: u16,
    world: &World<'_>,
    clusters: &mut ClusterSet,
) -> Result<RuleAction, String> {
    let mut filters = Vec::new();
    if let Some(f) = &h.fault {
        let mut fault = Fault::default();
        if let Some(d) = &f.delay {
            let what = duration(
                d.fixed_delay.as_deref().unwrap_or(""),
                ".fault.delay.fixedDelay",
            )?;
            // No percentage: nothing is delayed ([VS-7]).
            let share = share(d.percentage.as_ref().map_or(0.0, |p| p.value))
                .map_err(|e| format!(".fault.delay.percentage: {e}"))?;
            fault.delay = Some(Faulted { what, share });
        }
        if let Some(a) = &f.abort {
            let what = a
                .http_status
                .filter(|s| (200..=599).contains(s))
                .ok_or(".fault.abort.httpStatus: needs a status between 200 and 599")?;
            let share = share(a.percentage.as_ref().map_or(0.0, |p| p.value))
                .map_err(|e| format!(".fault.abort.percentage: {e}"))?;
            fault.abort = Some(Faulted { what, share });
        }
        filters.push(Filter::Fault(fault));
    }
    if let Some(d) = &h.direct_response {
        if h.redirect.is_some() || !h.route.is_empty() {
            return Err(".directResponse: cannot be combined with route or redirect".into());
        }
        filters.push(Filter::DirectResponse(direct_response(d)?));
    }
    if let Some(r) = &h.redirect {
        if h.rewrite.is_some() || !h.route.is_empty() {
            return Err(".redirect: cannot be combined with rewrite or route".into());
        }
        filters.push(Filter::RequestRedirect(redirect(r)?));
    }
    if let Some(rw) = &h.rewrite {
        let path = match (&rw.uri, &rw.uri_regex_rewrite) {
            (Some(_), Some(_)) => {
                return Err(".rewrite: set only one of uri and uriRegexRewrite".into());
            }
            (None, Some(r)) => Some(regex_rewrite(r)?),
            (Some(uri), None) => Some(match &matched_prefix {
                Some(prefix) => PathRewrite::ReplaceCharPrefix {
                    prefix: prefix.clone(),
                    with: uri.clone(),
                },
                None => PathRewrite::ReplaceFullPath(uri.clone()),
            }),
            (None, None) => None,
        };
        filters.push(Filter::UrlRewrite(UrlRewrite {
            hostname: rw.authority.clone(),
            path,
        }));
    }
    if let Some(hd) = &h.headers {
        modifiers(hd, &mut filters, ".headers")?;
    }
    if let Some(c) = &h.cors_policy {
        filters.push(Filter::Cors(cors(c)?));
    }
    let mirrors = h
        .mirror
        .iter()
        .map(|d| (d, h.mirror_percentage.as_ref(), ".mirror".to_string()))
        .chain(h.mirrors.iter().enumerate().map(|(k, m)| {
            (
                &m.destination,
                m.percentage.as_ref(),
                format!(".mirrors[{k}]"),
            )
        }));
    for (d, pct, at) in mirrors {
        let target =
            destination(d, ns, request_port, world, clusters).map_err(|e| format!("{at}: {e}"))?;
        if let BackendTarget::Cluster { index, name } = target {
            let pct = pct.map_or(100.0, |p| p.value);
            let per_million = share(pct).map_err(|e| format!("{at}.percentage: {e}"))?;
            let mirror = Mirror::new(
                index,
                name,
                None,
                Some((i64::from(per_million), Some(1_000_000))),
            )
            .map_err(|e| format!("{at}: {e}"))?;
            filters.push(Filter::RequestMirror(mirror));
        }
    }
    let mut backends = Vec::new();
    let lone = h.route.len() == 1;
    for (k, d) in h.route.iter().enumerate() {
        let target = destination(&d.destination, ns, request_port, world, clusters)
            .map_err(|e| format!(".route[{k}].destination: {e}"))?;
        let mut bf = Vec::new();
        if let Some(hd) = &d.headers {
            modifiers(hd, &mut bf, &format!(".route[{k}].headers"))?;
        }
        backends.push(WeightedBackend {
            weight: if lone {
                d.weight.unwrap_or(100).max(1)
            } else {
                d.weight.unwrap_or(0)
            },
            target,
            filters: bf,
        });
    }
    let timeouts = Timeouts {
        request: h
            .timeout
            .as_deref()
            .map(|t| duration(t, ".timeout"))
            .transpose()?
            .filter(|d| !d.is_zero()),
        backend_request: h
            .retries
            .as_ref()
            .and_then(|r| r.per_try_timeout.as_deref())
            .map(|t| duration(t, ".retries.perTryTimeout"))
            .transpose()?,
    };
    let retry = match &h.retries {
        Some(r) if r.attempts.unwrap_or(0) > 0 => Some(
            RetryPolicy::new(
                &retry_codes(r.retry_on.as_deref().unwrap_or("")),
                r.attempts,
                Some("25ms"),
            )
            .map_err(|e| format!(".retries: {e}"))?,
        ),
        _ => None,
    };
    let total_weight = backends
        .iter()
        .try_fold(0u32, |sum, b| sum.checked_add(b.weight))
        .ok_or(".route: the weights add up to more than 4294967295")?;
    Ok(RuleAction {
        filters,
        backends,
        total_weight,
        timeouts,
        retry,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_that_overflow_are_a_problem_not_a_panic() {
        let yaml = r#"
apiVersion: v1
kind: Service
metadata: {name: a, namespace: apps}
spec: {ports: [{port: 80}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: heavy, namespace: apps}
spec:
  hosts: [a]
  http:
  - route:
    - {destination: {host: a}, weight: 4294967295}
    - {destination: {host: a}, weight: 1}
"#;
        let r = crate::load_str("vs.yaml", yaml).unwrap();
        let (_, report) = crate::compile(&r, &crate::CompileOptions::default());
        let c = report
            .find("VirtualService", "apps", "heavy")
            .and_then(|s| s.conditions.get("Accepted").cloned())
            .unwrap();
        assert!(!c.is_true());
        assert!(
            c.message
                .contains("spec.http[0].route: the weights add up to more than"),
            "{}",
            c.message
        );
    }

    #[test]
    fn durations_and_retry_conditions() {
        assert_eq!(duration("1.5s", "t"), Ok(Duration::from_millis(1500)));
        assert_eq!(duration("100ms", "t"), Ok(Duration::from_millis(100)));
        assert!(duration("5", "t").is_err());
        assert_eq!(
            retry_codes("gateway-error,connect-failure,429"),
            vec![429, 502, 503, 504]
        );
        assert_eq!(retry_codes("5xx").len(), 100);
    }
}
