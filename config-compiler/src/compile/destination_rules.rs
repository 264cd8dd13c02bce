//! DestinationRule ([DR-1]..[DR-5]): which rule applies to a host, which of its blocks apply to
//! one port and subset, the traffic policy they compile to, and each rule's status.
//!
//! Precedence, as Istio's `MergeTrafficPolicy` has it: the top-level policy; its
//! `portLevelSettings` entry for the port replaces all four blocks (`loadBalancer`,
//! `connectionPool`, `outlierDetection`, `tls`; one it leaves out takes its defaults: "port level
//! policies do not inherit"); the subset's policy then overrides block by block; the subset's
//! own `portLevelSettings` entry again replaces all four. A block replaces the one below whole:
//! fields it leaves out take their defaults, not the lower block's values.
//!
//! A block with a bad value is a problem on the rule's status (`Accepted=False`, naming the
//! field) and is left out of the compiled policy, so its defaults apply; the rest of the rule
//! (its TLS in particular) still applies. The blocks themselves compile in `traffic_policy`.

use super::World;
use super::authz::ROOT_NAMESPACE;
use super::traffic_policy::{Findings, connection_pool, load_balancer, outlier_detection};
use crate::resources::destination_rule::{
    ClientTlsSettings, ConnectionPoolSettings, DestinationRule, LoadBalancerSettings,
    OutlierDetection as OutlierSettings, TrafficPolicy as PolicySpec,
};
use crate::resources::{NsName, Sourced};
use crate::status::{Condition, Conditions, ObjectStatus};
use crate::traffic_policy::TrafficPolicy;

/// How well a DestinationRule `host` matches an FQDN: exact beats wildcard, a longer wildcard
/// beats a shorter one; `None` when it does not match ([DR-1]).
fn host_score(dr: &DestinationRule, fqdn: &str) -> Option<usize> {
    let ns = dr.metadata.namespace();
    let host = dr.spec.host.to_ascii_lowercase();
    let full = if host.contains('.') || host.starts_with('*') {
        host
    } else {
        format!("{host}.{ns}.svc.cluster.local")
    };
    if full == fqdn {
        return Some(usize::MAX);
    }
    if full == "*" {
        return Some(0);
    }
    let suffix = full.strip_prefix('*')?;
    fqdn.ends_with(suffix).then_some(suffix.len())
}

/// Whether a rule is exported to a client namespace (`exportTo`; empty means everywhere).
fn exported_to(dr: &DestinationRule, client: &str) -> bool {
    let own = dr.metadata.namespace();
    dr.spec.export_to.is_empty()
        || dr
            .spec
            .export_to
            .iter()
            .any(|x| x == "*" || x == client || (x == "." && own == client))
}

/// The rule for host `fqdn` (a Service or ServiceEntry host defined in `home_ns`) as seen by
/// the proxies in `clients` (the Gateways sending to it), as Istio looks it up ([DR-1]): the
/// most specific host among the rules in a client's own namespace; else among those of the
/// host's namespace exported to the client; else among those of the root namespace exported to
/// it. Rules in other namespaces never apply. With no client known, the host's namespace, then
/// the root namespace. Ties go to the oldest rule (then namespace/name).
pub(super) fn for_host<'a>(
    world: &World<'a>,
    fqdn: &str,
    home_ns: &str,
    clients: &[NsName],
) -> Option<&'a Sourced<DestinationRule>> {
    let best_in = |ns: &str, client: Option<&str>| {
        world
            .destination_rules()
            .iter()
            .filter(|d| d.object.metadata.namespace() == ns)
            .filter(|d| client.is_none_or(|c| exported_to(&d.object, c)))
            .filter_map(|d| host_score(&d.object, fqdn).map(|s| (s, d)))
            .min_by_key(|(score, d)| {
                let m = &d.object.metadata;
                (
                    std::cmp::Reverse(*score),
                    m.creation_timestamp.clone().unwrap_or_default(),
                    m.name.clone(),
                )
            })
            .map(|(_, d)| d)
    };
    if clients.is_empty() {
        return best_in(home_ns, None).or_else(|| best_in(ROOT_NAMESPACE, None));
    }
    clients
        .iter()
        .find_map(|c| best_in(&c.namespace, None))
        .or_else(|| {
            clients
                .iter()
                .find_map(|c| best_in(home_ns, Some(&c.namespace)))
        })
        .or_else(|| {
            clients
                .iter()
                .find_map(|c| best_in(ROOT_NAMESPACE, Some(&c.namespace)))
        })
}

/// One block and the field path it was written at.
pub(super) type At<'a, T> = Option<(&'a T, String)>;

/// The blocks that apply to one port (and subset) of a host.
#[derive(Default)]
pub(super) struct Blocks<'a> {
    /// `tls`.
    pub tls: At<'a, ClientTlsSettings>,
    /// `loadBalancer`.
    pub load_balancer: At<'a, LoadBalancerSettings>,
    /// `connectionPool`.
    pub connection_pool: At<'a, ConnectionPoolSettings>,
    /// `outlierDetection`.
    pub outlier_detection: At<'a, OutlierSettings>,
}

impl<'a> Blocks<'a> {
    /// Lay one policy level over the blocks chosen so far.
    #[allow(clippy::type_complexity)]
    fn over(
        &mut self,
        at: String,
        (tls, lb, pool, outlier): (
            Option<&'a ClientTlsSettings>,
            Option<&'a LoadBalancerSettings>,
            Option<&'a ConnectionPoolSettings>,
            Option<&'a OutlierSettings>,
        ),
    ) {
        if let Some(b) = tls {
            self.tls = Some((b, format!("{at}.tls")));
        }
        if let Some(b) = lb {
            self.load_balancer = Some((b, format!("{at}.loadBalancer")));
        }
        if let Some(b) = pool {
            self.connection_pool = Some((b, format!("{at}.connectionPool")));
        }
        if let Some(b) = outlier {
            self.outlier_detection = Some((b, format!("{at}.outlierDetection")));
        }
    }

    /// Replace all four blocks: port-level settings do not inherit; a block they leave out
    /// takes its defaults (Istio's `MergeTrafficPolicy`).
    fn replace(
        &mut self,
        at: String,
        pl: &'a crate::resources::destination_rule::PortTrafficPolicy,
    ) {
        *self = Blocks::default();
        self.over(
            at,
            (
                pl.tls.as_ref(),
                pl.load_balancer.as_ref(),
                pl.connection_pool.as_ref(),
                pl.outlier_detection.as_ref(),
            ),
        );
    }

    /// Lay a policy, then its override for `port`.
    fn over_policy(&mut self, p: &'a PolicySpec, at: &str, port: u16) {
        self.over(
            at.to_string(),
            (
                p.tls.as_ref(),
                p.load_balancer.as_ref(),
                p.connection_pool.as_ref(),
                p.outlier_detection.as_ref(),
            ),
        );
        if let Some((i, pl)) = p
            .port_level_settings
            .iter()
            .enumerate()
            .find(|(_, s)| s.port.as_ref().is_some_and(|s| s.number == i64::from(port)))
        {
            self.replace(format!("{at}.portLevelSettings[{i}]"), pl);
        }
    }
}

/// The blocks of `dr` that apply to `port` and, when given, `subset` (see the module doc).
pub(super) fn blocks<'a>(dr: &'a DestinationRule, port: u16, subset: Option<&str>) -> Blocks<'a> {
    let mut b = Blocks::default();
    if let Some(tp) = &dr.spec.traffic_policy {
        b.over_policy(tp, "spec.trafficPolicy", port);
    }
    if let Some(name) = subset
        && let Some((i, s)) = dr
            .spec
            .subsets
            .iter()
            .enumerate()
            .find(|(_, s)| s.name == name)
        && let Some(tp) = &s.traffic_policy
    {
        b.over_policy(tp, &format!("spec.subsets[{i}].trafficPolicy"), port);
    }
    b
}

/// The traffic policy for one port (and subset) of a host under rule `dr`. Bad blocks are
/// left out (their problems are reported by [`statuses`]).
pub(super) fn policy(
    dr: &Sourced<DestinationRule>,
    port: u16,
    subset: Option<&str>,
) -> TrafficPolicy {
    let b = blocks(&dr.object, port, subset);
    let mut f = Findings::default();
    let m = &dr.object.metadata;
    TrafficPolicy {
        source: format!("DestinationRule {}/{}", m.namespace(), m.name),
        load_balancer: b
            .load_balancer
            .and_then(|(lb, at)| load_balancer(lb, &at, &mut f))
            .unwrap_or_default(),
        connection_pool: b
            .connection_pool
            .and_then(|(p, at)| connection_pool(p, &at, &mut f))
            .unwrap_or_default(),
        outlier_detection: b
            .outlier_detection
            .and_then(|(o, at)| outlier_detection(o, &at, &mut f)),
    }
}

/// Check every block of one policy level (and its port overrides).
fn check_policy(p: &PolicySpec, at: &str, f: &mut Findings) {
    if let Some(lb) = &p.load_balancer {
        load_balancer(lb, &format!("{at}.loadBalancer"), f);
    }
    if let Some(c) = &p.connection_pool {
        connection_pool(c, &format!("{at}.connectionPool"), f);
    }
    if let Some(o) = &p.outlier_detection {
        outlier_detection(o, &format!("{at}.outlierDetection"), f);
    }
    for (i, pl) in p.port_level_settings.iter().enumerate() {
        let at = format!("{at}.portLevelSettings[{i}]");
        match pl.port.as_ref().map(|p| p.number) {
            Some(n) if (1..=65535).contains(&n) => {}
            Some(n) => f
                .problems
                .push(format!("{at}.port.number: {n} is not a port number")),
            None => f.problems.push(format!("{at}.port: required")),
        }
        if let Some(lb) = &pl.load_balancer {
            load_balancer(lb, &format!("{at}.loadBalancer"), f);
        }
        if let Some(c) = &pl.connection_pool {
            connection_pool(c, &format!("{at}.connectionPool"), f);
        }
        if let Some(o) = &pl.outlier_detection {
            outlier_detection(o, &format!("{at}.outlierDetection"), f);
        }
    }
}

/// Everything wrong (or not applied) in one rule, with field paths.
pub(super) fn check(dr: &DestinationRule) -> Findings {
    let mut f = Findings::default();
    if dr.spec.host.is_empty() {
        f.problems.push("spec.host: required".into());
    }
    if let Some(tp) = &dr.spec.traffic_policy {
        check_policy(tp, "spec.trafficPolicy", &mut f);
    }
    let mut names: Vec<&str> = Vec::new();
    for (i, s) in dr.spec.subsets.iter().enumerate() {
        let at = format!("spec.subsets[{i}]");
        if s.name.is_empty() {
            f.problems.push(format!("{at}.name: required"));
        } else if names.contains(&s.name.as_str()) {
            f.problems.push(format!(
                "{at}.name: {:?} is used by an earlier subset",
                s.name
            ));
        }
        names.push(&s.name);
        if let Some(tp) = &s.traffic_policy {
            check_policy(tp, &format!("{at}.trafficPolicy"), &mut f);
        }
    }
    for (i, x) in dr.spec.export_to.iter().enumerate() {
        if x.is_empty() || x == "~" {
            f.problems.push(format!(
                "spec.exportTo[{i}]: {x:?} is not \".\", \"*\" or a namespace"
            ));
        }
    }
    f
}

/// Every rule's status (`Accepted=False` naming the first bad field), plus a warning per field
/// that is read but not applied.
pub(super) fn statuses(world: &World<'_>, warnings: &mut Vec<String>) -> Vec<ObjectStatus> {
    world
        .destination_rules()
        .iter()
        .map(|d| {
            let m = &d.object.metadata;
            let f = check(&d.object);
            for i in &f.ignored {
                warnings.push(format!(
                    "{}: DestinationRule {}/{}: {i}",
                    d.source,
                    m.namespace(),
                    m.name
                ));
            }
            let mut c = Conditions::default();
            c.set(match f.problems.first() {
                None => Condition::new("Accepted", true, "Accepted", "rule is applied"),
                Some(first) => {
                    let more = match f.problems.len() {
                        1 => String::new(),
                        n => format!(" (and {} more)", n - 1),
                    };
                    Condition::new(
                        "Accepted",
                        false,
                        "Invalid",
                        format!("{first}{more}; the blocks with bad values are not applied (their defaults are)"),
                    )
                }
            });
            c.observe(m.generation);
            let mut s = ObjectStatus::new("DestinationRule", m.namespace(), &m.name);
            s.source = Some(d.source.to_string());
            s.conditions = c;
            s
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic_policy::{HashKey, LoadBalancer, UNLIMITED};

    const RULE: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: apps}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: RANDOM}
    connectionPool: {http: {http2MaxRequests: 10}, tcp: {maxConnections: 3}}
    outlierDetection: {consecutive5xxErrors: 7}
    portLevelSettings:
    - port: {number: 9080}
      loadBalancer: {simple: LEAST_REQUEST}
      connectionPool: {tcp: {connectTimeout: 1s}}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer: {consistentHash: {httpHeaderName: x-user}}
      outlierDetection: {consecutive5xxErrors: 2}
      portLevelSettings:
      - port: {number: 9090}
        loadBalancer: {simple: ROUND_ROBIN}
"#;

    fn rule(yaml: &str) -> Sourced<DestinationRule> {
        let mut r = crate::load_str("dr.yaml", yaml).unwrap();
        r.destination_rules.remove(0)
    }

    #[test]
    fn port_level_then_subset_then_subset_port_level_precedence_dr_1() {
        let dr = rule(RULE);
        // Top level only.
        let p = policy(&dr, 80, None);
        assert_eq!(p.source, "DestinationRule apps/reviews");
        assert_eq!(p.load_balancer, LoadBalancer::Random);
        assert_eq!(p.connection_pool.max_requests, 10);
        assert_eq!(p.outlier_detection.map(|o| o.consecutive_5xx), Some(7));
        // The port's override replaces whole blocks: its connectionPool has no limits, and the
        // outlierDetection it leaves out is not inherited (port-level settings do not inherit).
        let p = policy(&dr, 9080, None);
        assert_eq!(p.outlier_detection, None);
        assert_eq!(p.load_balancer, LoadBalancer::LeastRequest);
        assert_eq!(p.connection_pool.max_requests, UNLIMITED);
        assert_eq!(
            p.connection_pool.connect_timeout,
            Some(std::time::Duration::from_secs(1))
        );
        // A subset without a policy inherits the host's.
        assert_eq!(
            policy(&dr, 9080, Some("v1")).load_balancer,
            LoadBalancer::LeastRequest
        );
        // The subset's policy beats the host's (and its port override); blocks it leaves out
        // come from below.
        let p = policy(&dr, 9080, Some("v2"));
        assert_eq!(
            p.load_balancer,
            LoadBalancer::ConsistentHash(HashKey::Header("x-user".into()))
        );
        assert_eq!(p.outlier_detection.map(|o| o.consecutive_5xx), Some(2));
        assert_eq!(
            p.connection_pool.connect_timeout,
            Some(std::time::Duration::from_secs(1))
        );
        // The subset's port override beats the subset, and replaces all four blocks.
        let p = policy(&dr, 9090, Some("v2"));
        assert_eq!(p.load_balancer, LoadBalancer::RoundRobin);
        assert_eq!(p.outlier_detection, None);
        assert_eq!(p.connection_pool.max_requests, UNLIMITED);
    }

    #[test]
    fn the_most_specific_visible_rule_applies_dr_1() {
        let yaml = format!(
            "{RULE}---\napiVersion: networking.istio.io/v1beta1\nkind: DestinationRule\nmetadata: {{name: all, namespace: apps}}\nspec: {{host: \"*.svc.cluster.local\", trafficPolicy: {{loadBalancer: {{simple: LEAST_CONN}}}}}}\n---\napiVersion: networking.istio.io/v1alpha3\nkind: DestinationRule\nmetadata: {{name: private, namespace: other}}\nspec: {{host: ratings.apps.svc.cluster.local, exportTo: [\".\"]}}\n"
        );
        let r = crate::load_str("dr.yaml", &yaml).unwrap();
        let world = World::new(&r);
        let name = |fqdn: &str, clients: &[NsName]| {
            for_host(&world, fqdn, "apps", clients).map(|d| d.object.metadata.name.clone())
        };
        let infra = [NsName::new("infra", "gw")];
        assert_eq!(
            name("reviews.apps.svc.cluster.local", &infra).as_deref(),
            Some("reviews")
        );
        // `private` is exported to its own namespace only.
        assert_eq!(
            name("ratings.apps.svc.cluster.local", &infra).as_deref(),
            Some("all")
        );
        let other = [NsName::new("other", "gw")];
        assert_eq!(
            name("ratings.apps.svc.cluster.local", &other).as_deref(),
            Some("private")
        );
        assert_eq!(name("example.com", &infra), None);

        // The client's own namespace comes first, however general its host; a rule in an
        // unrelated namespace never applies.
        let more = format!(
            "{yaml}---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: mine, namespace: infra}}\nspec: {{host: \"*.svc.cluster.local\"}}\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: stranger, namespace: x}}\nspec: {{host: details.apps.svc.cluster.local}}\n"
        );
        let r = crate::load_str("dr.yaml", &more).unwrap();
        let world = World::new(&r);
        let name = |fqdn: &str, clients: &[NsName]| {
            for_host(&world, fqdn, "apps", clients).map(|d| d.object.metadata.name.clone())
        };
        assert_eq!(
            name("reviews.apps.svc.cluster.local", &infra).as_deref(),
            Some("mine")
        );
        let y = [NsName::new("y", "gw")];
        assert_eq!(
            name("details.apps.svc.cluster.local", &y).as_deref(),
            Some("all"),
            "x's rule is not looked at; apps' exported wildcard is"
        );
    }

    #[test]
    fn bad_values_make_the_rule_not_accepted_naming_file_object_and_field() {
        let yaml = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: bad, namespace: apps}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: FASTEST}
  subsets:
  - name: v1
    trafficPolicy:
      outlierDetection: {baseEjectionTime: -30s}
  - name: v1
"#;
        let r = crate::load_str("dr.yaml", yaml).unwrap();
        let (_, report) = crate::compile(&r, &crate::CompileOptions::default());
        let s = report.find("DestinationRule", "apps", "bad").unwrap();
        let c = s.conditions.get("Accepted").unwrap();
        assert!(!c.is_true());
        assert!(
            c.message
                .starts_with("spec.trafficPolicy.loadBalancer.simple: \"FASTEST\""),
            "{}",
            c.message
        );
        assert!(c.message.contains("(and 2 more)"), "{}", c.message);
        let problems = report.problems();
        assert!(
            problems.iter().any(|p| p.starts_with("dr.yaml")
                && p.contains("DestinationRule apps/bad")
                && p.contains("loadBalancer.simple")),
            "{problems:?}"
        );
        let f = check(&r.destination_rules[0].object);
        assert_eq!(
            f.problems[1],
            "spec.subsets[0].trafficPolicy.outlierDetection.baseEjectionTime: \"-30s\" is negative"
        );
        assert_eq!(
            f.problems[2],
            "spec.subsets[1].name: \"v1\" is used by an earlier subset"
        );
        // The bad block is left out: round robin.
        assert_eq!(
            policy(&r.destination_rules[0], 80, None).load_balancer,
            LoadBalancer::RoundRobin
        );
    }

    #[test]
    fn a_subset_is_the_endpoints_whose_pod_labels_match_and_an_unknown_one_is_empty_dr_1() {
        let mut yaml = String::from(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint, namespace: apps}
spec:
  gatewayClassName: istio-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: apps, labels: {istio.io/use-waypoint: waypoint}}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 9080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: reviews-1, namespace: apps, labels: {kubernetes.io/service-name: reviews}}
addressType: IPv4
ports: [{name: http, port: 9080}]
endpoints:
- {addresses: ["10.0.0.1"], targetRef: {kind: Pod, name: reviews-v1}}
- {addresses: ["10.0.0.2"], targetRef: {kind: Pod, name: reviews-v2}}
- {addresses: ["10.0.0.3"], targetRef: {kind: Pod, name: reviews-v2b}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: apps}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {prefix: /v3}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - route: [{destination: {host: reviews, subset: v1}}]
"#,
        );
        for (pod, version) in [
            ("reviews-v1", "v1"),
            ("reviews-v2", "v2"),
            ("reviews-v2b", "v2"),
        ] {
            yaml.push_str(&format!(
                "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}, namespace: apps, labels: {{app: reviews, version: {version}}}}}\n"
            ));
        }
        yaml.push_str("---");
        yaml.push_str(RULE);
        let r = crate::load_str("s.yaml", &yaml).unwrap();
        let (snapshot, report) = crate::compile(&r, &crate::CompileOptions::default());
        let endpoints = |name: &str| {
            snapshot.clusters.iter().find(|c| c.name == name).map(|c| {
                c.endpoints
                    .iter()
                    .map(|e| e.ip().to_string())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(
            endpoints("outbound|9080|v2|reviews.apps.svc.cluster.local"),
            Some(vec!["10.0.0.2".to_string(), "10.0.0.3".to_string()])
        );
        assert_eq!(
            endpoints("outbound|9080|v1|reviews.apps.svc.cluster.local"),
            Some(vec!["10.0.0.1".to_string()])
        );
        // An unknown subset is a cluster without endpoints (503 UH) and a VirtualService problem.
        assert_eq!(
            endpoints("outbound|9080|v3|reviews.apps.svc.cluster.local"),
            Some(vec![])
        );
        let vs = report.find("VirtualService", "apps", "reviews").unwrap();
        let c = vs.conditions.get("Accepted").unwrap();
        assert!(!c.is_true());
        assert!(
            c.message
                .starts_with("spec.http[1].route[0].destination.subset: \"v3\" is not defined"),
            "{}",
            c.message
        );
        // The subset cluster carries the subset's effective policy.
        let v2 = snapshot
            .clusters
            .iter()
            .find(|c| c.subset.as_deref() == Some("v2"))
            .and_then(|c| c.policy.clone())
            .unwrap();
        assert_eq!(
            v2.load_balancer,
            LoadBalancer::ConsistentHash(HashKey::Header("x-user".into()))
        );
    }
}
