//! VirtualService ([VS-1]..[VS-11]) at the waypoint: a Service or ServiceEntry port that no
//! HTTPRoute/GRPCRoute is attached to takes the `http` routes of the first VirtualService
//! (oldest, then namespace/name) whose `hosts` name it and whose `gateways` include `mesh`
//! (or are empty). Routes keep their written order: the first match wins. The binding to
//! Gateways is in `vs_gateways`; both share the compilation of matches and actions here.

use super::World;
use super::clusters::{ClusterSet, cluster_name};
use crate::request_match::{
    HeaderMatch, PathMatch, QueryMatch, RequestMatch, StringMatch, anchored_regex,
};
use crate::resources::virtual_service::{
    CorsPolicy, Destination, Headers, HttpMatch, HttpRoute, StringMatch as VsMatch,
};
use crate::resources::{NsName, Resources, Sourced, VirtualService};
use crate::route_table::{
    BackendTarget, RouteEntry, RouteId, RouteTable, RuleAction, VirtualHost, WeightedBackend,
};
use crate::snapshot::{GatewayIr, PrecedenceNote};
use crate::status::{Condition, Conditions, ObjectStatus};
use std::sync::Arc;
use std::time::Duration;
use waygate_filters::cors::OriginMatch;
use waygate_filters::fault::{Fault, Faulted, share};
use waygate_filters::{
    Cors, CorsSettings, Filter, HeaderModifier, Mirror, PathRewrite, Redirect, RetryPolicy,
    Timeouts, UrlRewrite,
};

/// [VS-1] A VirtualService host as an FQDN pattern: short names (and `name.ns`) live in the
/// VirtualService's namespace.
pub(super) fn expand(host: &str, ns: &str) -> String {
    let h = host.to_ascii_lowercase();
    if h.starts_with('*') {
        return h;
    }
    match h.matches('.').count() {
        0 => format!("{h}.{ns}.svc.cluster.local"),
        1 if !h.ends_with(".local") => format!("{h}.svc.cluster.local"),
        _ => h,
    }
}

/// [VS-1] Whether a VirtualService host names `host`: as expanded in the VirtualService's
/// namespace or, when it has a dot, as written (as Istio takes it), so that a two-label name
/// that is not `name.ns`, like a ServiceEntry's `httpbin.example`, still names itself.
fn names(vs_host: &str, ns: &str, host: &str) -> bool {
    host_matches(&expand(vs_host, ns), host)
        || (vs_host.contains('.') && host_matches(&vs_host.to_ascii_lowercase(), host))
}

fn host_matches(pattern: &str, host: &str) -> bool {
    pattern == "*"
        || pattern == host
        || pattern
            .strip_prefix('*')
            .is_some_and(|suffix| host.ends_with(suffix))
}

/// The VirtualServices in precedence order (oldest, then namespace/name) and what happened to
/// each, gathered over the gateway and waypoint passes and reported once.
pub(super) struct VsBook<'a> {
    /// VirtualServices in precedence order.
    pub order: Vec<&'a Sourced<VirtualService>>,
    /// Field-named problems per VirtualService.
    pub problems: Vec<Vec<String>>,
    /// Whether each was applied somewhere.
    pub used: Vec<bool>,
    /// Where Gateway API routes took precedence over each (not an error: reported).
    pub overridden: Vec<Vec<String>>,
    /// The same, for `/config_dump`.
    pub notes: Vec<PrecedenceNote>,
}

impl<'a> VsBook<'a> {
    /// Every VirtualService, oldest first, each validated whether or not it binds anywhere
    /// (so `waygate check` names a bad field of one that is not used here).
    pub(super) fn new(r: &'a Resources, world: &World<'_>) -> Self {
        let mut order: Vec<&Sourced<VirtualService>> = r.virtual_services.iter().collect();
        order.sort_by(|a, b| {
            let key = |v: &Sourced<VirtualService>| {
                let m = &v.object.metadata;
                (
                    m.creation_timestamp.clone().unwrap_or_default(),
                    m.namespace().to_string(),
                    m.name.clone(),
                )
            };
            key(a).cmp(&key(b))
        });
        let mut scratch = ClusterSet::default();
        let problems = order
            .iter()
            .map(|v| {
                let mut problems = Vec::new();
                let ns = v.object.metadata.namespace();
                for (i, h) in v.object.spec.http.iter().enumerate() {
                    for (j, m) in h.matches.iter().enumerate() {
                        if let Err(e) = compile_match(m) {
                            problems.push(format!("spec.http[{i}].match[{j}]{e}"));
                        }
                    }
                    if let Err(e) = compile_action(h, None, ns, 0, world, &mut scratch) {
                        problems.push(format!("spec.http[{i}]{e}"));
                    }
                }
                problems.extend(unknown_subsets(&v.object, world));
                problems
            })
            .collect();
        let n = order.len();
        Self {
            order,
            problems,
            used: vec![false; n],
            overridden: vec![Vec::new(); n],
            notes: Vec::new(),
        }
    }

    /// [VS-11] Record that routes `applied` serve `host` at `at` instead of VirtualService `i`.
    pub(super) fn set_aside(&mut self, i: usize, host: &str, at: String, applied: Vec<String>) {
        let m = &self.order[i].object.metadata;
        self.overridden[i].push(format!(
            "not applied to {host} at {at}: {} serve it and take precedence",
            applied.join(", ")
        ));
        self.notes.push(PrecedenceNote {
            host: host.to_string(),
            at,
            applied,
            ignored: format!("{}/{}", m.namespace(), m.name),
        });
    }

    /// One status per VirtualService: Accepted=False naming the first problem's field.
    pub(super) fn statuses(self, statuses: &mut Vec<ObjectStatus>) {
        for (i, v) in self.order.iter().enumerate() {
            let m = &v.object.metadata;
            let mut s = ObjectStatus::new("VirtualService", m.namespace(), &m.name);
            s.source = Some(v.source.to_string());
            let mut c = Conditions::default();
            let mut problems: Vec<&String> = Vec::new();
            for p in &self.problems[i] {
                if !problems.contains(&p) {
                    problems.push(p);
                }
            }
            let all = problems
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            let overridden = self.overridden[i].join("; ");
            c.set(match (problems.first(), self.used[i]) {
                (Some(_), _) => Condition::new("Accepted", false, "Invalid", all),
                (None, true) if overridden.is_empty() => {
                    Condition::new("Accepted", true, "Accepted", "applied")
                }
                (None, true) => Condition::new(
                    "Accepted",
                    true,
                    "Accepted",
                    format!("applied; {overridden}"),
                ),
                (None, false) if !overridden.is_empty() => {
                    Condition::new("Accepted", true, "Overridden", overridden)
                }
                (None, false) => Condition::new(
                    "Accepted",
                    true,
                    "NotBound",
                    "no Gateway or waypoint served here carries one of its hosts",
                ),
            });
            c.observe(m.generation);
            s.conditions = c;
            statuses.push(s);
        }
    }
}

/// Attach VirtualServices bound to `mesh` to waypoint services.
pub(super) fn attach(
    book: &mut VsBook<'_>,
    world: &World<'_>,
    gateways: &mut [GatewayIr],
    clusters: &mut ClusterSet,
) {
    for g in gateways.iter_mut() {
        let waypoint = g
            .ports
            .iter()
            .any(|p| p.listeners.iter().any(|l| l.protocol == "HBONE"));
        if !waypoint {
            continue;
        }
        for m in g.mesh.iter_mut().filter(|m| m.pinned.is_none()) {
            let host = m.host.to_ascii_lowercase();
            let Some(i) = book.order.iter().position(|v| {
                let vs = &v.object;
                let ns = vs.metadata.namespace();
                binds_mesh(&vs.spec.gateways) && vs.spec.hosts.iter().any(|h| names(h, ns, &host))
            }) else {
                continue;
            };
            // [VS-11] Gateway API routes attached to the service win.
            if m.routes.is_some() || !m.consumer_routes.is_empty() {
                let tables = m
                    .routes
                    .iter()
                    .chain(m.consumer_routes.iter().map(|c| &c.routes));
                let at = format!("waypoint {}/{} port {}", g.namespace, g.name, m.port);
                book.set_aside(i, &m.host, at, route_names(tables));
                continue;
            }
            book.used[i] = true;
            let entries = entries_for(
                book.order[i],
                0,
                &Binding::Mesh,
                m.port,
                world,
                clusters,
                &mut book.problems[i],
            );
            m.routes = Some(RouteTable::new(vec![VirtualHost::new("*".into(), entries)]));
        }
    }
}

/// `<Kind> <ns>/<name>` of every route in some tables, each once, in order.
pub(super) fn route_names<'t>(tables: impl Iterator<Item = &'t RouteTable>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in tables {
        for e in t.virtual_hosts.iter().flat_map(|v| &v.entries) {
            let name = format!("{} {}/{}", e.id.kind, e.id.namespace, e.id.name);
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// [VS-1] Empty `gateways` means `mesh`.
fn binds_mesh(gateways: &[String]) -> bool {
    gateways.is_empty() || gateways.iter().any(|g| g == "mesh")
}

/// Where a VirtualService's routes are being installed: match-level `gateways` ([VS-3]) choose
/// which of its matches apply there.
pub(super) enum Binding<'a> {
    /// A waypoint.
    Mesh,
    /// An ingress or egress Gateway, by namespace/name.
    Gateway(&'a NsName),
}

impl Binding<'_> {
    /// Whether a `gateways` list (VS-level or match-level, in namespace `ns`) names this place.
    pub(super) fn named_by(&self, gateways: &[String], ns: &str) -> bool {
        match self {
            Binding::Mesh => binds_mesh(gateways),
            Binding::Gateway(id) => gateways.iter().any(|g| names_gateway(g, ns, id)),
        }
    }
}

/// `ns/name` or `name` (the VirtualService's namespace) naming a Gateway; Istio's generated
/// name for a Kubernetes Gateway (`<name>-istio-autogenerated-k8s-gateway`) is accepted too.
fn names_gateway(reference: &str, vs_ns: &str, id: &NsName) -> bool {
    let (ns, name) = reference.split_once('/').unwrap_or((vs_ns, reference));
    let name = name
        .strip_suffix("-istio-autogenerated-k8s-gateway")
        .unwrap_or(name);
    ns == id.namespace && name == id.name
}

/// The route entries of one VirtualService for one service port, in written order.
pub(super) fn entries_for(
    v: &Sourced<VirtualService>,
    rank: u32,
    binding: &Binding<'_>,
    request_port: u16,
    world: &World<'_>,
    clusters: &mut ClusterSet,
    problems: &mut Vec<String>,
) -> Vec<RouteEntry> {
    let vs = &v.object;
    let meta = &vs.metadata;
    let mut out = Vec::new();
    for (i, h) in vs.spec.http.iter().enumerate() {
        let at = format!("spec.http[{i}]");
        let catch_all = [HttpMatch::default()];
        let matches: &[HttpMatch] = if h.matches.is_empty() {
            &catch_all
        } else {
            &h.matches
        };
        for (j, m) in matches.iter().enumerate() {
            if m.port.is_some_and(|p| p != request_port)
                || (!m.gateways.is_empty() && !binding.named_by(&m.gateways, meta.namespace()))
            {
                continue;
            }
            let matcher = match compile_match(m) {
                Ok(x) => x,
                Err(e) => {
                    problems.push(format!("{at}.match[{j}]{e}"));
                    continue;
                }
            };
            let prefix = m.uri.as_ref().and_then(|u| u.prefix.clone());
            let action = compile_action(h, prefix, meta.namespace(), request_port, world, clusters)
                .unwrap_or_else(|e| {
                    problems.push(format!("{at}{e}"));
                    RuleAction::default()
                });
            out.push(RouteEntry {
                id: RouteId {
                    kind: "VirtualService",
                    namespace: meta.namespace().to_string(),
                    name: meta.name.clone(),
                    rule: i,
                    rule_name: h.name.clone(),
                    match_index: j,
                },
                matcher,
                action: Arc::new(action),
                created: meta.creation_timestamp.clone().unwrap_or_default(),
                order: Some(
                    (u64::from(rank) << 32) | ((i as u64 & 0xffff) << 16) | (j as u64 & 0xffff),
                ),
            });
        }
    }
    out
}

fn regex(pattern: &str, what: &str) -> Result<regex::Regex, String> {
    anchored_regex(pattern).map_err(|e| {
        // The parser's message draws a caret under the anchored pattern over several lines;
        // its last line says what is wrong.
        let text = e.to_string();
        let why = text
            .lines()
            .last()
            .unwrap_or("")
            .trim_start_matches("error: ");
        format!(".{what}.regex: {pattern:?} is not a valid regular expression: {why}")
    })
}

/// A VirtualService string match as a value condition ([VS-3]); `None` fields: present.
fn value_match(m: &VsMatch, what: &str, ignore_case: bool) -> Result<StringMatch, String> {
    let ci = if ignore_case { "(?i)" } else { "" };
    match (&m.exact, &m.prefix, &m.regex) {
        (Some(e), None, None) if !ignore_case => Ok(StringMatch::Exact(e.clone())),
        (Some(e), None, None) => Ok(StringMatch::RegularExpression(regex(
            &format!("{ci}{}", regex::escape(e)),
            what,
        )?)),
        (None, Some(p), None) => Ok(StringMatch::RegularExpression(regex(
            &format!("{ci}{}.*", regex::escape(p)),
            what,
        )?)),
        (None, None, Some(r)) => Ok(StringMatch::RegularExpression(regex(
            &format!("{ci}{r}"),
            what,
        )?)),
        (None, None, None) => Ok(StringMatch::RegularExpression(regex(".*", what)?)),
        _ => Err(format!(".{what}: set only one of exact, prefix and regex")),
    }
}

fn compile_match(m: &HttpMatch) -> Result<RequestMatch, String> {
    let path = match &m.uri {
        None => PathMatch::PathPrefix("/".into()),
        Some(u) => match value_match(u, "uri", m.ignore_uri_case)? {
            StringMatch::Exact(e) => PathMatch::Exact(e),
            StringMatch::RegularExpression(r) => PathMatch::RegularExpression(r),
        },
    };
    let method = match &m.method {
        None => None,
        Some(VsMatch {
            exact: Some(e),
            prefix: None,
            regex: None,
        }) => Some(
            http::Method::from_bytes(e.as_bytes())
                .map_err(|_| format!(".method.exact: {e:?} is not a method"))?,
        ),
        Some(_) => return Err(".method: only exact is supported".into()),
    };
    let mut headers = Vec::new();
    for (name, v) in &m.headers {
        let at = format!("headers[{name}]");
        headers.push(HeaderMatch {
            name: http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!(".{at}: not a header name"))?,
            value: value_match(v, &at, false)?,
        });
    }
    if let Some(a) = &m.authority {
        headers.push(HeaderMatch {
            name: http::header::HOST,
            value: value_match(a, "authority", false)?,
        });
    }
    if !m.without_headers.is_empty() {
        return Err(".withoutHeaders: not supported yet".into());
    }
    let query = m
        .query_params
        .iter()
        .map(|(name, v)| {
            Ok(QueryMatch {
                name: name.clone(),
                value: value_match(v, &format!("queryParams[{name}]"), false)?,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(RequestMatch {
        path,
        method,
        headers,
        query,
    })
}

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
fn destination(
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
        ..Default::default()
    })
    .map_err(|e| format!(".corsPolicy: {e}"))
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

fn compile_action(
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
    if let Some(r) = &h.redirect {
        if h.rewrite.is_some() || !h.route.is_empty() {
            return Err(".redirect: cannot be combined with rewrite or route".into());
        }
        filters.push(Filter::RequestRedirect(Redirect {
            scheme: r.scheme.clone(),
            hostname: r.authority.clone(),
            port: r.port,
            path: r.uri.clone().map(PathRewrite::ReplaceFullPath),
            status: r.redirect_code.unwrap_or(301),
        }));
    }
    if let Some(rw) = &h.rewrite {
        let path = rw.uri.clone().map(|uri| match &matched_prefix {
            Some(prefix) => PathRewrite::ReplaceCharPrefix {
                prefix: prefix.clone(),
                with: uri,
            },
            None => PathRewrite::ReplaceFullPath(uri),
        });
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
    let total_weight = backends.iter().map(|b| b.weight).sum();
    Ok(RuleAction {
        filters,
        backends,
        total_weight,
        timeouts,
        retry,
    })
}

/// [DR-1] `subset`s that no DestinationRule for their host defines (requests to them get 503
/// `UH`, as in Istio).
fn unknown_subsets(vs: &VirtualService, world: &World<'_>) -> Vec<String> {
    let ns = vs.metadata.namespace();
    let mut out = Vec::new();
    for (i, h) in vs.spec.http.iter().enumerate() {
        let routes = h.route.iter().enumerate().map(|(k, r)| {
            (
                format!("spec.http[{i}].route[{k}].destination"),
                &r.destination,
            )
        });
        let mirror = h
            .mirror
            .iter()
            .map(|m| (format!("spec.http[{i}].mirror"), m))
            .chain(h.mirrors.iter().enumerate().map(|(k, m)| {
                (
                    format!("spec.http[{i}].mirrors[{k}].destination"),
                    &m.destination,
                )
            }));
        for (at, d) in routes.chain(mirror) {
            let Some(name) = d.subset.as_deref() else {
                continue;
            };
            let (fqdn, home) = match super::service_entries::by_host(world, &d.host, ns) {
                Some(e) => (
                    d.host.to_ascii_lowercase(),
                    e.metadata.namespace().to_string(),
                ),
                None => {
                    let fqdn = expand(&d.host, ns);
                    let home = fqdn
                        .strip_suffix(".svc.cluster.local")
                        .and_then(|s| s.split_once('.'))
                        .map(|(_, n)| n.to_string())
                        .unwrap_or_default();
                    (fqdn, home)
                }
            };
            let defined = super::destination_rules::for_host(world, &fqdn, &home, &[])
                .is_some_and(|dr| dr.object.subset(name).is_some());
            if !defined {
                out.push(format!(
                    "{at}.subset: {name:?} is not defined by a DestinationRule for {fqdn}; requests to it get 503 (no healthy upstream)"
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_expand_in_the_virtual_services_namespace_vs_1() {
        assert_eq!(expand("reviews", "x"), "reviews.x.svc.cluster.local");
        assert_eq!(expand("reviews.y", "x"), "reviews.y.svc.cluster.local");
        assert_eq!(expand("Api.Example.com", "x"), "api.example.com");
        assert!(host_matches(
            &expand("*.example.com", "x"),
            "api.example.com"
        ));
        assert!(!host_matches(
            "reviews.x.svc.cluster.local",
            "reviews.y.svc.cluster.local"
        ));
    }

    #[test]
    fn gateway_references_name_a_gateway_or_mesh() {
        let id = NsName::new("infra", "gw");
        let at = Binding::Gateway(&id);
        assert!(at.named_by(&["infra/gw".into()], "apps"));
        assert!(at.named_by(&["gw".into()], "infra"));
        assert!(!at.named_by(&["gw".into()], "apps"));
        assert!(at.named_by(&["infra/gw-istio-autogenerated-k8s-gateway".into()], "apps"));
        assert!(!at.named_by(&[], "infra"));
        assert!(!at.named_by(&["mesh".into()], "infra"));
        assert!(Binding::Mesh.named_by(&[], "apps"));
        assert!(Binding::Mesh.named_by(&["infra/gw".into(), "mesh".into()], "apps"));
        assert!(!Binding::Mesh.named_by(&["infra/gw".into()], "apps"));
    }

    #[test]
    fn a_two_label_service_entry_host_names_itself_vs_1() {
        // `httpbin.example` could be `name.ns`; it still names the ServiceEntry host.
        assert!(names("httpbin.example", "egress", "httpbin.example"));
        assert!(names(
            "httpbin.example",
            "egress",
            "httpbin.example.svc.cluster.local"
        ));
        assert!(names("reviews", "x", "reviews.x.svc.cluster.local"));
        assert!(!names("reviews", "x", "reviews"));
        assert!(!names("httpbin.example", "egress", "other.example"));
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
