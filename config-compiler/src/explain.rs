//! Why a request did or did not match: the listener, host, route, rule and match that won, and
//! for the routes that lost, the first condition that failed. Uses the request path's own matcher.

use crate::hostname::normalize_host;
use crate::request_match::{PathMatch, RequestMatch, RequestView};
use crate::resources::NsName;
use crate::route_table::{BackendTarget, RouteEntry, RuleAction};
use crate::snapshot::Snapshot;
use http::{HeaderMap, Method};
use serde::Serialize;
use std::fmt;

/// A request to explain.
#[derive(Debug, Clone)]
pub struct ExplainRequest {
    /// The Gateway.
    pub gateway: NsName,
    /// The listener named by the user (its port is where the request arrives).
    pub listener: String,
    /// Method.
    pub method: Method,
    /// Host (may carry a port).
    pub host: String,
    /// Path without query.
    pub path: String,
    /// Query without `?`.
    pub query: Option<String>,
    /// Headers.
    pub headers: HeaderMap,
    /// `http` or `https`, from the URL.
    pub scheme: String,
}

impl ExplainRequest {
    /// Parse `METHOD URL` (e.g. `GET http://host/path?q=1`); the method may be omitted.
    pub fn parse(
        gateway: NsName,
        listener: String,
        request: &str,
        headers: HeaderMap,
    ) -> Result<Self, String> {
        let (method, url) = match request.trim().split_once(' ') {
            Some((m, u)) => (m.trim(), u.trim()),
            None => ("GET", request.trim()),
        };
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| format!("invalid method {method:?}"))?;
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
        let host = headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .or_else(|| uri.authority().map(|a| a.as_str().to_string()))
            .ok_or_else(|| format!("URL {url:?} has no host and no Host header was given"))?;
        Ok(Self {
            gateway,
            listener,
            method,
            host,
            path: uri.path().to_string(),
            query: uri.query().map(str::to_string),
            headers,
            scheme: match uri.scheme_str() {
                Some(s) if s.eq_ignore_ascii_case("https") => "https".into(),
                _ => "http".into(),
            },
        })
    }
}

/// One route entry's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// `HTTPRoute ns/name rule R match M`.
    pub route: String,
    /// The match, summarised.
    #[serde(rename = "match")]
    pub summary: String,
    /// `won`, `lost` or `failed`.
    pub outcome: &'static str,
    /// Why.
    pub reason: String,
}

/// The full answer.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// The request as understood.
    pub request: String,
    /// The listener chosen, or why none.
    pub listener: String,
    /// The virtual host chosen, or why none.
    pub virtual_host: Option<String>,
    /// The outcome in one line (`routed to …`, `404 …`).
    pub result: String,
    /// The winner first, then the nearest entries that did not win.
    pub routes: Vec<Verdict>,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "request:      {}", self.request)?;
        writeln!(f, "listener:     {}", self.listener)?;
        if let Some(v) = &self.virtual_host {
            writeln!(f, "virtual host: {v}")?;
        }
        writeln!(f, "result:       {}", self.result)?;
        for v in &self.routes {
            let mark = match v.outcome {
                "won" => "✓",
                "lost" => "~",
                _ => "✗",
            };
            writeln!(f, "  {mark} {} [{}]: {}", v.route, v.summary, v.reason)?;
        }
        Ok(())
    }
}

/// How many losing entries to show.
const NEAREST: usize = 12;

/// Explain how the Snapshot routes this request.
pub fn explain(snapshot: &Snapshot, req: &ExplainRequest) -> Explanation {
    let host = normalize_host(&req.host).into_owned();
    let view = RequestView {
        method: &req.method,
        host: &host,
        path: &req.path,
        query: req.query.as_deref(),
        headers: &req.headers,
        scheme: &req.scheme,
        // Explain has no caller identity: a sourceNamespace condition reports as failed.
        source_namespace: None,
    };
    let request = format!(
        "{} {}://{}{}{}",
        req.method,
        req.scheme,
        req.host,
        req.path,
        req.query
            .as_ref()
            .map(|q| format!("?{q}"))
            .unwrap_or_default()
    );
    let mut out = Explanation {
        request,
        listener: String::new(),
        virtual_host: None,
        result: String::new(),
        routes: vec![],
    };
    let gw = &req.gateway;
    let Some(g) = snapshot
        .gateways
        .iter()
        .find(|g| g.namespace == gw.namespace && g.name == gw.name)
    else {
        out.listener = format!(
            "Gateway {gw} is not served (not in the config, not an Istio class, or no valid listener)"
        );
        out.result = "no such gateway".into();
        return out;
    };
    let Some(port) = g
        .ports
        .iter()
        .find(|p| p.listeners.iter().any(|l| l.name == req.listener))
    else {
        out.listener = format!(
            "Gateway {gw} has no served listener named {:?}",
            req.listener
        );
        out.result = "no such listener".into();
        return out;
    };
    let Some(listener) = port.listener(&host) else {
        let names: Vec<String> = port
            .listeners
            .iter()
            .map(|l| {
                format!(
                    "{} (hostname {})",
                    l.name,
                    l.hostname.as_deref().unwrap_or("*")
                )
            })
            .collect();
        out.listener = format!(
            "no listener on port {} takes host {host:?}: {}",
            port.port,
            names.join(", ")
        );
        out.result = "404: no listener hostname matches the host".into();
        return out;
    };
    out.listener = format!(
        "{gw}/{} (port {}, hostname {})",
        listener.name,
        listener.port,
        listener.hostname.as_deref().unwrap_or("*")
    );
    if listener.name != req.listener {
        out.listener.push_str(&format!(
            " — chosen over {:?} because its hostname is more specific for {host:?}",
            req.listener
        ));
    }
    let Some(vhost) = listener.routes.virtual_host(&host) else {
        let hosts: Vec<&str> = listener
            .routes
            .virtual_hosts
            .iter()
            .map(|v| v.hostname.as_str())
            .collect();
        out.result = format!("404: no route on this listener has a hostname matching {host:?}");
        for v in listener
            .routes
            .virtual_hosts
            .iter()
            .flat_map(|v| v.entries.iter().map(move |e| (v, e)))
            .take(NEAREST)
        {
            out.routes.push(Verdict {
                route: v.1.id.to_string(),
                summary: summarise(&v.1.matcher),
                outcome: "failed",
                reason: format!(
                    "hostname {} does not match {host:?} (route hostnames here: {})",
                    v.0.hostname,
                    hosts.join(", ")
                ),
            });
        }
        return out;
    };
    out.virtual_host = Some(vhost.hostname.clone());
    let winner = vhost.find(&view);
    out.result = match winner {
        Some(e) => format!("routed by {} → {}", e.id, describe_action(&e.action)),
        None => "404: no rule matched".into(),
    };
    let mut losers = Vec::new();
    for (e, result) in vhost.evaluate(&view) {
        let is_winner = winner.is_some_and(|w| std::ptr::eq(w, e));
        let verdict = match (&result, is_winner) {
            (_, true) => Verdict {
                route: e.id.to_string(),
                summary: summarise(&e.matcher),
                outcome: "won",
                reason: "first match in precedence order: ".to_string() + &why_first(e),
            },
            (Ok(()), false) => Verdict {
                route: e.id.to_string(),
                summary: summarise(&e.matcher),
                outcome: "lost",
                reason: match winner {
                    Some(w) => format!(
                        "also matches, but lower precedence than {}: {}",
                        w.id,
                        precedence_gap(w, e)
                    ),
                    None => "matches".into(),
                },
            },
            (Err(m), false) => Verdict {
                route: e.id.to_string(),
                summary: summarise(&e.matcher),
                outcome: "failed",
                reason: m.to_string(),
            },
        };
        if is_winner {
            out.routes.insert(0, verdict);
        } else {
            losers.push(verdict);
        }
    }
    out.routes.extend(losers.into_iter().take(NEAREST));
    for other in listener
        .routes
        .virtual_hosts
        .iter()
        .filter(|v| !std::ptr::eq(*v, vhost))
    {
        if out.routes.len() > NEAREST {
            break;
        }
        if let Some(e) = other.entries.first() {
            out.routes.push(Verdict {
                route: e.id.to_string(),
                summary: summarise(&e.matcher),
                outcome: "failed",
                reason: format!(
                    "hostname {} does not cover {host:?} (virtual host {} was chosen)",
                    other.hostname, vhost.hostname
                ),
            });
        }
    }
    out
}

fn summarise(m: &RequestMatch) -> String {
    let mut parts = vec![match &m.path {
        PathMatch::Exact(p) => format!("Exact {p}"),
        PathMatch::PathPrefix(p) => format!("PathPrefix {p}"),
        PathMatch::RegularExpression(r) => format!("RegularExpression {}", r.as_str()),
        PathMatch::CharPrefix(p) => format!("prefix {p}"),
    }];
    if let Some(method) = &m.method {
        parts.push(format!("method {method}"));
    }
    if m.scheme.is_some() {
        parts.push("scheme".into());
    }
    for h in &m.headers {
        let not = if h.invert { "without " } else { "" };
        parts.push(format!("{not}header {}", h.name));
    }
    for q in &m.query {
        parts.push(format!("query {}", q.name));
    }
    if let Some(ns) = &m.source_namespace {
        parts.push(format!("sourceNamespace {ns}"));
    }
    parts.join(", ")
}

fn why_first(e: &RouteEntry) -> String {
    match &e.matcher.path {
        PathMatch::Exact(_) => "exact path".into(),
        PathMatch::RegularExpression(_) => {
            "regular expression path (ranked after exact, before prefixes)".into()
        }
        PathMatch::PathPrefix(p) => format!("longest matching prefix {p}"),
        PathMatch::CharPrefix(_) => "earlier in the VirtualService's written order".into(),
    }
}

/// The first precedence criterion ([HR-8]) on which `w` beats `e`.
fn precedence_gap(w: &RouteEntry, e: &RouteEntry) -> String {
    let rank = |m: &RequestMatch| match &m.path {
        PathMatch::Exact(p) => (0, p.len()),
        PathMatch::RegularExpression(r) => (1, r.as_str().len()),
        PathMatch::PathPrefix(p) | PathMatch::CharPrefix(p) => (2, p.len()),
    };
    let (wm, em) = (&w.matcher, &e.matcher);
    if rank(wm).0 != rank(em).0 {
        return "exact path beats regular expression beats prefix".into();
    }
    if rank(wm).1 != rank(em).1 {
        return "longer path wins".into();
    }
    if wm.method.is_some() != em.method.is_some() {
        return "a method match wins".into();
    }
    if wm.headers.len() != em.headers.len() {
        return format!(
            "more header matches win ({} vs {})",
            wm.headers.len(),
            em.headers.len()
        );
    }
    if wm.query.len() != em.query.len() {
        return format!(
            "more query matches win ({} vs {})",
            wm.query.len(),
            em.query.len()
        );
    }
    if w.created != e.created {
        return "the older route wins".into();
    }
    if (w.id.namespace.as_str(), w.id.name.as_str())
        != (e.id.namespace.as_str(), e.id.name.as_str())
    {
        return "alphabetical namespace/name wins".into();
    }
    "earlier rule or match in the route wins".into()
}

fn describe_action(a: &RuleAction) -> String {
    if a.filters
        .iter()
        .any(|f| matches!(f, waygate_filters::Filter::RequestRedirect(_)))
    {
        return "redirect".into();
    }
    if a.backends.is_empty() {
        return "500 (no backends)".into();
    }
    a.backends
        .iter()
        .map(|b| match &b.target {
            BackendTarget::Cluster { name, .. } => format!("{name} (weight {})", b.weight),
            BackendTarget::Invalid { reason } => format!("500 for weight {}: {reason}", b.weight),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
