//! Routes of one listener: virtual hosts by hostname, and per host an index of route entries in
//! Gateway API precedence order ([HR-5], [HR-8]).
//!
//! Lookup never scans every route: exact paths are a hash lookup, path prefixes are one hash
//! lookup per path segment from the longest to the shortest (which is also the fallback from a
//! longer prefix whose other conditions failed to a shorter one). Only regex paths are scanned.
//! (matchit cannot fall back from a longer prefix to a shorter one, so the index is our own.)

use crate::request_match::{Mismatch, PathMatch, RequestMatch, RequestView};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use waygate_filters::{Filter, RetryPolicy, Timeouts};

/// Which route, rule and match an entry came from.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RouteId {
    /// `HTTPRoute`.
    pub kind: &'static str,
    /// Route namespace.
    pub namespace: String,
    /// Route name.
    pub name: String,
    /// Rule index.
    pub rule: usize,
    /// Rule name, if set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_name: Option<String>,
    /// Match index within the rule.
    #[serde(rename = "match")]
    pub match_index: usize,
}

impl std::fmt::Display for RouteId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}/{} rule {}",
            self.kind, self.namespace, self.name, self.rule
        )?;
        if let Some(n) = &self.rule_name {
            write!(f, " ({n})")?;
        }
        write!(f, " match {}", self.match_index)
    }
}

/// One weighted backend of a rule.
#[derive(Debug, Clone, Serialize)]
pub struct WeightedBackend {
    /// Relative weight.
    pub weight: u32,
    /// Where traffic goes.
    pub target: BackendTarget,
    /// Filters that run only when this backend is chosen.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<Filter>,
}

/// A resolved backend, or the reason it could not be resolved (its share answers 500, [HB-2]).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum BackendTarget {
    /// Index into `Snapshot::clusters`, and the cluster name for humans.
    Cluster {
        /// Index in the snapshot's clusters.
        index: usize,
        /// The cluster name.
        name: String,
    },
    /// Unresolvable: requests for this share get 500.
    Invalid {
        /// Why.
        reason: String,
    },
}

/// What a matched rule does: its filters, its weighted backends, and its timeouts and retries.
/// `Default` is a rule with nothing: build with `..Default::default()` to stay clear of new fields.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleAction {
    /// Filters, in order.
    pub filters: Vec<Filter>,
    /// Backends.
    pub backends: Vec<WeightedBackend>,
    /// Sum of the weights.
    pub total_weight: u32,
    /// Request and per-attempt timeouts ([HT-1]).
    #[serde(skip_serializing_if = "Timeouts::is_empty")]
    pub timeouts: Timeouts,
    /// Retries ([HT-2]); `None` retries nothing beyond Pingora's stale-connection retry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
}

impl RuleAction {
    /// The index of the backend a uniform `roll` in `0..total_weight` selects; `None` if every
    /// weight is 0 ([HB-1]).
    pub fn pick(&self, roll: u32) -> Option<usize> {
        let mut left = roll;
        for (i, b) in self.backends.iter().enumerate() {
            if left < b.weight {
                return Some(i);
            }
            left -= b.weight;
        }
        None
    }
}

/// One match of one rule, with everything needed to serve it.
#[derive(Debug, Clone, Serialize)]
pub struct RouteEntry {
    /// Origin.
    pub id: RouteId,
    /// Conditions.
    #[serde(rename = "match")]
    pub matcher: RequestMatch,
    /// Shared by all matches of the rule.
    pub action: Arc<RuleAction>,
    /// The route's `creationTimestamp`, for precedence.
    #[serde(skip)]
    pub created: String,
    /// [VS-2] A VirtualService's position: such entries keep their written order (first match
    /// wins) instead of Gateway API precedence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<u64>,
}

impl RouteEntry {
    /// The precedence key ([HR-8]): smaller sorts first.
    pub fn precedence(&self) -> impl Ord + '_ {
        use std::cmp::Reverse;
        let m = &self.matcher;
        let (rank, len) = match &m.path {
            PathMatch::Exact(p) => (0u8, p.len()),
            PathMatch::RegularExpression(r) => (1, r.as_str().len()),
            PathMatch::PathPrefix(p) | PathMatch::CharPrefix(p) => (2, p.len()),
        };
        (
            self.order,
            rank,
            Reverse(len),
            Reverse(m.method.is_some()),
            Reverse(m.headers.len()),
            Reverse(m.query.len()),
            (
                self.created.as_str(),
                self.id.namespace.as_str(),
                self.id.name.as_str(),
            ),
            (self.id.rule, self.id.match_index),
        )
    }
}

/// The routes for one effective hostname.
#[derive(Debug, Serialize)]
pub struct VirtualHost {
    /// The hostname (`*` for any, or `*.suffix`).
    pub hostname: String,
    /// Entries in precedence order.
    pub entries: Vec<RouteEntry>,
    #[serde(skip)]
    index: PathIndex,
}

#[derive(Debug, Default)]
struct PathIndex {
    exact: HashMap<String, Vec<u32>>,
    prefix: HashMap<String, Vec<u32>>,
    regex: Vec<u32>,
}

impl VirtualHost {
    /// Build from entries in any order; sorts them by precedence and indexes them.
    pub fn new(hostname: String, mut entries: Vec<RouteEntry>) -> Self {
        entries.sort_by(|a, b| a.precedence().cmp(&b.precedence()));
        let mut index = PathIndex::default();
        for (i, e) in entries.iter().enumerate() {
            let i = i as u32;
            // Ordered entries are tried one by one, in order.
            if e.order.is_some() {
                index.regex.push(i);
                continue;
            }
            match &e.matcher.path {
                PathMatch::Exact(p) => index.exact.entry(p.clone()).or_default().push(i),
                PathMatch::PathPrefix(p) => index
                    .prefix
                    .entry(PathMatch::prefix_key(p).to_string())
                    .or_default()
                    .push(i),
                // Not segment-aligned, so not in the prefix index: scanned like regexes.
                PathMatch::RegularExpression(_) | PathMatch::CharPrefix(_) => index.regex.push(i),
            }
        }
        Self {
            hostname,
            entries,
            index,
        }
    }

    /// The first entry, in precedence order, that matches the request.
    pub fn find(&self, req: &RequestView<'_>) -> Option<&RouteEntry> {
        let try_bucket = |ids: &[u32]| {
            ids.iter()
                .map(|&i| &self.entries[i as usize])
                .find(|e| e.matcher.check(req).is_ok())
        };
        if let Some(ids) = self.index.exact.get(req.path)
            && let Some(e) = try_bucket(ids)
        {
            return Some(e);
        }
        if let Some(e) = try_bucket(&self.index.regex) {
            return Some(e);
        }
        if self.index.prefix.is_empty() {
            return None;
        }
        prefix_candidates(req.path)
            .filter_map(|p| self.index.prefix.get(p))
            .find_map(|ids| try_bucket(ids))
    }

    /// Every entry with the first condition it fails (`None` = matches), in precedence order.
    pub fn evaluate<'a>(
        &'a self,
        req: &'a RequestView<'_>,
    ) -> impl Iterator<Item = (&'a RouteEntry, Result<(), Mismatch>)> + 'a {
        self.entries.iter().map(move |e| (e, e.matcher.check(req)))
    }
}

/// Prefix keys a path can match, longest first: the path itself (unless it ends in `/`), each
/// part before a `/`, and finally the root (`""`).
fn prefix_candidates(path: &str) -> impl Iterator<Item = &str> {
    let whole = (!path.ends_with('/')).then_some(path);
    let cuts = path
        .char_indices()
        .rev()
        .filter(|&(i, c)| c == '/' && i > 0)
        .map(move |(i, _)| &path[..i]);
    whole.into_iter().chain(cuts).chain(std::iter::once(""))
}

/// The virtual hosts of a listener, indexed by hostname ([HR-5]).
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteTable {
    /// Virtual hosts.
    pub virtual_hosts: Vec<VirtualHost>,
    #[serde(skip)]
    exact: HashMap<String, usize>,
    /// `(suffix including the leading '.', vhost)`, longest suffix first.
    #[serde(skip)]
    wildcard: Vec<(String, usize)>,
    #[serde(skip)]
    any: Option<usize>,
}

impl RouteTable {
    /// Index virtual hosts by hostname.
    pub fn new(mut virtual_hosts: Vec<VirtualHost>) -> Self {
        virtual_hosts.sort_by(|a, b| {
            crate::hostname::specificity(Some(&a.hostname))
                .cmp(&crate::hostname::specificity(Some(&b.hostname)))
                .then_with(|| a.hostname.cmp(&b.hostname))
        });
        let mut t = Self::default();
        for (i, vh) in virtual_hosts.iter().enumerate() {
            if vh.hostname == "*" {
                t.any = Some(i);
            } else if let Some(suffix) = vh.hostname.strip_prefix('*') {
                t.wildcard.push((suffix.to_string(), i));
            } else {
                t.exact.insert(vh.hostname.clone(), i);
            }
        }
        t.virtual_hosts = virtual_hosts;
        t
    }

    /// The virtual host for a normalised host: exact, then the longest wildcard, then any.
    pub fn virtual_host(&self, host: &str) -> Option<&VirtualHost> {
        let i = self.exact.get(host).copied().or_else(|| {
            self.wildcard
                .iter()
                .find(|(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix.as_str()))
                .map(|&(_, i)| i)
                .or(self.any)
        })?;
        self.virtual_hosts.get(i)
    }

    /// Number of route entries over all hosts.
    pub fn len(&self) -> usize {
        self.virtual_hosts.iter().map(|v| v.entries.len()).sum()
    }

    /// Whether there are no routes.
    pub fn is_empty(&self) -> bool {
        self.virtual_hosts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request_match::HeaderMatch;
    use http::{HeaderMap, HeaderName, HeaderValue, Method};

    fn entry(name: &str, path: PathMatch, headers: usize, created: &str) -> RouteEntry {
        RouteEntry {
            id: RouteId {
                kind: "HTTPRoute",
                namespace: "ns".into(),
                name: name.into(),
                rule: 0,
                rule_name: None,
                match_index: 0,
            },
            matcher: RequestMatch {
                headers: (0..headers)
                    .map(|i| {
                        HeaderMatch::new(
                            HeaderName::from_bytes(format!("h{i}").as_bytes()).unwrap(),
                            crate::request_match::StringMatch::Exact("1".into()),
                        )
                    })
                    .collect(),
                ..RequestMatch::path(path)
            },
            action: Arc::new(RuleAction::default()),
            created: created.into(),
            order: None,
        }
    }

    fn find<'a>(vh: &'a VirtualHost, path: &str, headers: &[(&str, &str)]) -> Option<&'a str> {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let m = Method::GET;
        let req = RequestView {
            method: &m,
            host: "x",
            path,
            query: None,
            headers: &h,
            scheme: "http",
            source_namespace: None,
        };
        vh.find(&req).map(|e| e.id.name.as_str())
    }

    #[test]
    fn precedence_and_prefix_fallback_hr_8() {
        // [HR-8] exact > longest prefix > more header matches > older route; a longer prefix whose
        // header condition fails falls back to a shorter prefix.
        let vh = VirtualHost::new(
            "*".into(),
            vec![
                entry("root", PathMatch::PathPrefix("/".into()), 0, "2020"),
                entry("v1", PathMatch::PathPrefix("/v1".into()), 0, "2020"),
                entry("v1-hdr", PathMatch::PathPrefix("/v1/api".into()), 1, "2020"),
                entry("exact", PathMatch::Exact("/v1/api".into()), 0, "2020"),
                entry("newer", PathMatch::PathPrefix("/v2".into()), 0, "2022"),
                entry("older", PathMatch::PathPrefix("/v2".into()), 0, "2021"),
            ],
        );
        assert_eq!(find(&vh, "/v1/api", &[]), Some("exact"));
        assert_eq!(find(&vh, "/v1/api/x", &[("h0", "1")]), Some("v1-hdr"));
        assert_eq!(
            find(&vh, "/v1/api/x", &[]),
            Some("v1"),
            "falls back to the shorter prefix"
        );
        assert_eq!(find(&vh, "/v1x", &[]), Some("root"));
        assert_eq!(find(&vh, "/v2/a", &[]), Some("older"));
        assert_eq!(find(&vh, "/", &[]), Some("root"));
    }

    #[test]
    fn candidates_are_longest_first() {
        let c: Vec<_> = prefix_candidates("/a/b/c").collect();
        assert_eq!(c, ["/a/b/c", "/a/b", "/a", ""]);
        let c: Vec<_> = prefix_candidates("/a/").collect();
        assert_eq!(c, ["/a", ""]);
    }

    #[test]
    fn virtual_host_selection_prefers_exact_then_longest_wildcard() {
        let t = RouteTable::new(vec![
            VirtualHost::new("*".into(), vec![]),
            VirtualHost::new("*.example.com".into(), vec![]),
            VirtualHost::new("*.foo.example.com".into(), vec![]),
            VirtualHost::new("a.foo.example.com".into(), vec![]),
        ]);
        let pick = |h: &str| t.virtual_host(h).map(|v| v.hostname.clone());
        assert_eq!(
            pick("a.foo.example.com").as_deref(),
            Some("a.foo.example.com")
        );
        assert_eq!(
            pick("b.foo.example.com").as_deref(),
            Some("*.foo.example.com")
        );
        assert_eq!(pick("b.example.com").as_deref(), Some("*.example.com"));
        assert_eq!(pick("example.com").as_deref(), Some("*"));
    }
}
