//! AuthorizationPolicy evaluation ([AP-2]..[AP-11]): policies compiled once (by the config
//! compiler) and evaluated per request against the facts the proxy knows about it. The source
//! principal is only ever the verified peer certificate's identity.

pub mod matchers;
#[cfg(test)]
mod tests;

pub use matchers::{Cidr, PathMatch, StrMatch, normalize_path};
use serde::Serialize;
use std::net::IpAddr;

/// What a matching policy does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Action {
    /// Allow (and make everything no ALLOW policy matches denied).
    Allow,
    /// Deny.
    Deny,
    /// Tag only.
    Audit,
    /// An external authorizer this build does not have: fails closed (denies what it matches).
    Custom,
}

/// One compiled policy.
#[derive(Debug, Clone, Serialize)]
pub struct Policy {
    /// `namespace.name`, as in Envoy's `rbac_access_denied_matched_policy[…]`.
    pub name: String,
    /// Its action.
    pub action: Action,
    /// Its rules; none matches nothing.
    pub rules: Vec<Rule>,
    /// `istio.io/dry-run: "true"`: evaluated and logged, never enforced.
    pub dry_run: bool,
}

/// [AP-5] A rule: some `from` AND some `to` AND every `when`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Rule {
    /// Sources; empty matches any.
    pub from: Vec<Source>,
    /// Operations; empty matches any.
    pub to: Vec<Operation>,
    /// Conditions; all must hold.
    pub when: Vec<Condition>,
    /// Set when the rule uses something that cannot be evaluated (e.g. JWT claims without
    /// RequestAuthentication): an ALLOW rule then matches nothing, a DENY rule everything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsupported: Option<String>,
}

/// A list field with its `not…` twin; unset when both are empty.
#[derive(Debug, Clone, Serialize)]
pub struct Values<T> {
    /// Must match one of these (when any).
    pub values: Vec<T>,
    /// Must match none of these.
    pub not_values: Vec<T>,
}

impl<T> Default for Values<T> {
    fn default() -> Self {
        Self {
            values: Vec::new(),
            not_values: Vec::new(),
        }
    }
}

impl<T> Values<T> {
    /// A field with both lists.
    pub fn new(values: Vec<T>, not_values: Vec<T>) -> Self {
        Self { values, not_values }
    }

    fn is_set(&self) -> bool {
        !self.values.is_empty() || !self.not_values.is_empty()
    }

    /// Whether a value satisfies the field.
    fn check(&self, m: impl Fn(&T) -> bool) -> bool {
        (self.values.is_empty() || self.values.iter().any(&m)) && !self.not_values.iter().any(&m)
    }
}

/// [AP-7] `from.source`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Source {
    /// Peer principals (`td/ns/N/sa/S`).
    pub principals: Values<StrMatch>,
    /// Peer namespaces.
    pub namespaces: Values<StrMatch>,
    /// Connection source IPs.
    pub ip_blocks: Values<Cidr>,
    /// Original client IPs (X-Forwarded-For).
    pub remote_ip_blocks: Values<Cidr>,
}

/// [AP-8] `to.operation`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Operation {
    /// Hosts (lowercased).
    pub hosts: Values<StrMatch>,
    /// Destination ports.
    pub ports: Values<u16>,
    /// Methods.
    pub methods: Values<StrMatch>,
    /// Paths.
    pub paths: Values<PathMatch>,
}

/// [AP-9] One `when` condition.
#[derive(Debug, Clone, Serialize)]
pub struct Condition {
    /// What it tests.
    pub key: Key,
    /// Its values (CIDRs for IP keys are parsed into `ips`).
    pub values: Values<StrMatch>,
    /// IP keys: the blocks.
    pub ips: Values<Cidr>,
}

/// A `when` key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Key {
    /// `request.headers[name]` (lowercased name).
    Header(String),
    /// `source.ip`.
    SourceIp,
    /// `remote.ip`.
    RemoteIp,
    /// `source.namespace`.
    SourceNamespace,
    /// `source.principal`.
    SourcePrincipal,
    /// `destination.ip`.
    DestinationIp,
    /// `destination.port`.
    DestinationPort,
    /// `connection.sni`.
    ConnectionSni,
}

/// What the proxy knows about one request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// HTTP attributes are known (false for TCP: [AP-10]).
    pub http: bool,
    /// Method.
    pub method: &'a str,
    /// Normalised path without query.
    pub path: &'a str,
    /// Host without port, lowercased.
    pub host: &'a str,
    /// Headers.
    pub headers: Option<&'a http::HeaderMap>,
    /// Destination port (the listener's or the tunnelled service's).
    pub port: u16,
    /// Destination IP, if known.
    pub destination_ip: Option<IpAddr>,
    /// The connection's source IP.
    pub source_ip: Option<IpAddr>,
    /// The original client IP (first X-Forwarded-For hop, else the source).
    pub remote_ip: Option<IpAddr>,
    /// The verified peer principal without `spiffe://`, if any.
    pub principal: Option<&'a str>,
    /// TLS SNI, if any.
    pub sni: Option<&'a str>,
}

impl Request<'_> {
    /// The principal's namespace (`…/ns/<ns>/…`).
    fn namespace(&self) -> &str {
        let Some(p) = self.principal else { return "" };
        let mut parts = p.split('/');
        while let Some(s) = parts.next() {
            if s == "ns" {
                return parts.next().unwrap_or("");
            }
        }
        ""
    }
}

/// The outcome of evaluating a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict<'p> {
    /// Let it through.
    pub allowed: bool,
    /// The policy that decided a denial (`None`: no ALLOW matched), or that allowed.
    pub policy: Option<&'p str>,
    /// AUDIT policies that matched.
    pub audited: Vec<&'p str>,
    /// Dry-run policies whose verdict differed from what was enforced.
    pub dry_run: Vec<&'p str>,
}

/// [AP-3] Evaluate: CUSTOM (fails closed) → DENY → no ALLOW → any ALLOW → deny.
pub fn evaluate<'p>(policies: &'p [&'p Policy], req: &Request<'_>) -> Verdict<'p> {
    let mut verdict = Verdict {
        allowed: true,
        policy: None,
        audited: Vec::new(),
        dry_run: Vec::new(),
    };
    for p in policies.iter().filter(|p| p.action == Action::Audit) {
        if p.matches(req) {
            verdict.audited.push(&p.name);
        }
    }
    for p in policies
        .iter()
        .filter(|p| matches!(p.action, Action::Custom | Action::Deny))
    {
        if p.matches(req) {
            if p.dry_run {
                verdict.dry_run.push(&p.name);
                continue;
            }
            verdict.allowed = false;
            verdict.policy = Some(&p.name);
            return verdict;
        }
    }
    for p in policies
        .iter()
        .filter(|p| p.action == Action::Allow && p.dry_run)
    {
        if !p.matches(req) {
            verdict.dry_run.push(&p.name);
        }
    }
    // No allocation on the request path: one pass over the enforced ALLOW policies.
    let mut any_allow = false;
    for p in policies
        .iter()
        .filter(|p| p.action == Action::Allow && !p.dry_run)
    {
        any_allow = true;
        if p.matches(req) {
            verdict.policy = Some(&p.name);
            return verdict;
        }
    }
    verdict.allowed = !any_allow;
    verdict
}

impl Policy {
    /// Whether any rule matches.
    pub fn matches(&self, req: &Request<'_>) -> bool {
        // [AP-10] A missing attribute counts as matching in a DENY (or fail-closed CUSTOM)
        // policy and as not matching in an ALLOW or AUDIT one.
        let missing = matches!(self.action, Action::Deny | Action::Custom);
        self.rules.iter().any(|r| r.matches(req, missing))
    }
}

impl Rule {
    fn matches(&self, req: &Request<'_>, missing: bool) -> bool {
        if self.unsupported.is_some() {
            return missing;
        }
        (self.from.is_empty() || self.from.iter().any(|s| s.matches(req)))
            && (self.to.is_empty() || self.to.iter().any(|o| o.matches(req, missing)))
            && self.when.iter().all(|c| c.holds(req, missing))
    }
}

fn ip_check(v: &Values<Cidr>, ip: Option<IpAddr>) -> bool {
    match ip {
        Some(ip) => v.check(|c| c.contains(ip)),
        // No address: only a field made of `not…` values holds.
        None => v.values.is_empty(),
    }
}

impl Source {
    fn matches(&self, req: &Request<'_>) -> bool {
        let principal = req.principal.unwrap_or("");
        let namespace = req.namespace();
        (!self.principals.is_set() || self.principals.check(|m| m.matches(principal)))
            && (!self.namespaces.is_set() || self.namespaces.check(|m| m.matches(namespace)))
            && (!self.ip_blocks.is_set() || ip_check(&self.ip_blocks, req.source_ip))
            && (!self.remote_ip_blocks.is_set() || ip_check(&self.remote_ip_blocks, req.remote_ip))
    }
}

impl Operation {
    fn matches(&self, req: &Request<'_>, missing: bool) -> bool {
        let http_field = |set: bool, check: &dyn Fn() -> bool| -> bool {
            if !set {
                true
            } else if !req.http {
                missing
            } else {
                check()
            }
        };
        (!self.ports.is_set() || self.ports.check(|p| *p == req.port))
            && http_field(self.hosts.is_set(), &|| {
                self.hosts.check(|m| m.matches(req.host))
            })
            && http_field(self.methods.is_set(), &|| {
                self.methods.check(|m| m.matches(req.method))
            })
            && http_field(self.paths.is_set(), &|| {
                self.paths.check(|m| m.matches(req.path))
            })
    }
}

impl Condition {
    fn holds(&self, req: &Request<'_>, missing: bool) -> bool {
        let text = |s: &str| self.values.check(|m| m.matches(s));
        match &self.key {
            Key::Header(name) => {
                let Some(headers) = req.headers.filter(|_| req.http) else {
                    return missing;
                };
                let values: Vec<&str> = headers
                    .get_all(name.as_str())
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect();
                if values.is_empty() {
                    return text("");
                }
                text(&values.join(","))
            }
            Key::SourceIp => ip_check(&self.ips, req.source_ip),
            Key::RemoteIp => ip_check(&self.ips, req.remote_ip),
            Key::DestinationIp => ip_check(&self.ips, req.destination_ip),
            Key::SourceNamespace => text(req.namespace()),
            Key::SourcePrincipal => text(req.principal.unwrap_or("")),
            Key::DestinationPort => text(&req.port.to_string()),
            Key::ConnectionSni => text(req.sni.unwrap_or("")),
        }
    }
}
