//! The AuthorizationPolicy decision table: policy YAML, request, expected decision — every
//! field, the `not…` twins, the value forms, the evaluation order and the TCP rules ([AP-3] to
//! [AP-10]).

use super::authz::compile_policy;
use crate::resources::AuthorizationPolicy;
use std::net::IpAddr;
use waygate_filters::authz::{Policy, Request, evaluate, normalize_path};

/// A request, owned; `base()` is a mesh client `apps/curl` doing `GET /` on port 80.
#[derive(Clone)]
struct Req {
    http: bool,
    method: &'static str,
    path: &'static str,
    host: &'static str,
    port: u16,
    headers: http::HeaderMap,
    source_ip: Option<IpAddr>,
    remote_ip: Option<IpAddr>,
    principal: Option<&'static str>,
    sni: Option<&'static str>,
}

fn base() -> Req {
    Req {
        http: true,
        method: "GET",
        path: "/",
        host: "shop.example.com",
        port: 80,
        headers: http::HeaderMap::new(),
        source_ip: "10.0.0.5".parse().ok(),
        remote_ip: "203.0.113.9".parse().ok(),
        principal: Some("cluster.local/ns/apps/sa/curl"),
        sni: None,
    }
}

fn policy(ns: &str, spec: &str) -> Policy {
    let yaml = format!(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: p, namespace: {ns}}}\nspec: {spec}\n"
    );
    let r = crate::load_str("ap.yaml", &yaml).expect("policy YAML loads");
    let ap: &AuthorizationPolicy = &r.authorization_policies[0].object;
    compile_policy(ap).0
}

fn decide(policies: &[(&str, &str)], req: &Req) -> bool {
    let compiled: Vec<Policy> = policies.iter().map(|(ns, s)| policy(ns, s)).collect();
    let refs: Vec<&Policy> = compiled.iter().collect();
    let path = normalize_path(req.path);
    let r = Request {
        http: req.http,
        method: req.method,
        path: &path,
        host: req.host,
        headers: Some(&req.headers),
        port: req.port,
        destination_ip: "10.96.0.10".parse().ok(),
        source_ip: req.source_ip,
        remote_ip: req.remote_ip,
        principal: req.principal,
        sni: req.sni,
    };
    evaluate(&refs, &r).allowed
}

fn with(f: impl Fn(&mut Req)) -> Req {
    let mut r = base();
    f(&mut r);
    r
}

/// (name, policies as (namespace, spec), request, allowed).
type Row = (&'static str, Vec<(&'static str, &'static str)>, Req, bool);

const ALLOW_ALL: &str = "{rules: [{}]}";

#[test]
fn the_decision_table() {
    let plain = with(|r| r.principal = None);
    let post = with(|r| r.method = "POST");
    let tcp = with(|r| r.http = false);
    let header = with(|r| {
        r.headers
            .insert("x-user", http::HeaderValue::from_static("alice"));
    });
    #[rustfmt::skip]
    let rows: Vec<Row> = vec![
        // Evaluation order [AP-3], [AP-4].
        ("no policy allows", vec![], base(), true),
        ("spec {} denies everything", vec![("apps", "{}")], base(), false),
        ("rules [{}] allows everything", vec![("apps", ALLOW_ALL)], base(), true),
        ("a DENY without rules never matches", vec![("apps", "{action: DENY}")], base(), true),
        ("a DENY with rules [{}] denies", vec![("apps", "{action: DENY, rules: [{}]}")], base(), false),
        ("DENY beats a matching ALLOW", vec![("apps", ALLOW_ALL), ("apps", "{action: DENY, rules: [{}]}")], base(), false),
        ("an ALLOW that does not match denies", vec![("apps", "{rules: [{to: [{operation: {paths: [/admin]}}]}]}")], base(), false),
        ("any matching ALLOW is enough", vec![("apps", "{rules: [{to: [{operation: {paths: [/admin]}}]}]}"), ("apps", ALLOW_ALL)], base(), true),
        ("AUDIT decides nothing", vec![("apps", "{action: AUDIT, rules: [{}]}")], base(), true),
        ("CUSTOM fails closed", vec![("apps", "{action: CUSTOM, provider: {name: ext}, rules: [{}]}")], base(), false),
        ("a DENY that does not match leaves the default allow", vec![("apps", "{action: DENY, rules: [{to: [{operation: {methods: [DELETE]}}]}]}")], base(), true),
        // Source [AP-7], values [AP-6].
        ("principals exact", vec![("apps", "{rules: [{from: [{source: {principals: [cluster.local/ns/apps/sa/curl]}}]}]}")], base(), true),
        ("principals exact, other identity", vec![("apps", "{rules: [{from: [{source: {principals: [cluster.local/ns/apps/sa/other]}}]}]}")], base(), false),
        ("principals prefix", vec![("apps", "{rules: [{from: [{source: {principals: [\"cluster.local/ns/apps/*\"]}}]}]}")], base(), true),
        ("principals suffix", vec![("apps", "{rules: [{from: [{source: {principals: [\"*/sa/curl\"]}}]}]}")], base(), true),
        ("principals presence needs a peer certificate", vec![("apps", "{rules: [{from: [{source: {principals: [\"*\"]}}]}]}")], plain.clone(), false),
        ("DENY notPrincipals * refuses plaintext", vec![("apps", "{action: DENY, rules: [{from: [{source: {notPrincipals: [\"*\"]}}]}]}")], plain.clone(), false),
        ("DENY notPrincipals * lets mTLS through", vec![("apps", "{action: DENY, rules: [{from: [{source: {notPrincipals: [\"*\"]}}]}]}")], base(), true),
        ("namespaces", vec![("apps", "{rules: [{from: [{source: {namespaces: [apps]}}]}]}")], base(), true),
        ("notNamespaces", vec![("apps", "{rules: [{from: [{source: {notNamespaces: [apps]}}]}]}")], base(), false),
        ("serviceAccounts ns/sa", vec![("apps", "{rules: [{from: [{source: {serviceAccounts: [apps/curl]}}]}]}")], base(), true),
        ("serviceAccounts sa is in the policy's namespace", vec![("other", "{rules: [{from: [{source: {serviceAccounts: [curl]}}]}]}")], base(), false),
        ("ipBlocks CIDR", vec![("apps", "{rules: [{from: [{source: {ipBlocks: [10.0.0.0/24]}}]}]}")], base(), true),
        ("ipBlocks other CIDR", vec![("apps", "{rules: [{from: [{source: {ipBlocks: [10.1.0.0/16]}}]}]}")], base(), false),
        ("notIpBlocks single address", vec![("apps", "{rules: [{from: [{source: {notIpBlocks: [10.0.0.5]}}]}]}")], base(), false),
        ("remoteIpBlocks is the original client", vec![("apps", "{rules: [{from: [{source: {remoteIpBlocks: [203.0.113.0/24]}}]}]}")], base(), true),
        ("requestPrincipals without JWT support match nothing in ALLOW", vec![("apps", "{rules: [{from: [{source: {requestPrincipals: [\"*\"]}}]}]}")], base(), false),
        ("requestPrincipals without JWT support match everything in DENY", vec![("apps", "{action: DENY, rules: [{from: [{source: {requestPrincipals: [\"*\"]}}]}]}")], base(), false),
        ("a bad CIDR fails an ALLOW rule closed", vec![("apps", "{rules: [{from: [{source: {ipBlocks: [10.0.0.0/40]}}]}]}")], base(), false),
        // Operation [AP-8].
        ("hosts compare case-insensitively", vec![("apps", "{rules: [{to: [{operation: {hosts: [SHOP.Example.com]}}]}]}")], base(), true),
        ("hosts wildcard", vec![("apps", "{rules: [{to: [{operation: {hosts: [\"*.example.com\"]}}]}]}")], base(), true),
        ("notHosts", vec![("apps", "{rules: [{to: [{operation: {notHosts: [shop.example.com]}}]}]}")], base(), false),
        ("ports", vec![("apps", "{rules: [{to: [{operation: {ports: [\"80\"]}}]}]}")], base(), true),
        ("ports other", vec![("apps", "{rules: [{to: [{operation: {ports: [\"8080\"]}}]}]}")], base(), false),
        ("methods", vec![("apps", "{rules: [{to: [{operation: {methods: [GET]}}]}]}")], base(), true),
        ("methods other", vec![("apps", "{rules: [{to: [{operation: {methods: [GET]}}]}]}")], post.clone(), false),
        ("notMethods", vec![("apps", "{rules: [{to: [{operation: {notMethods: [POST]}}]}]}")], post.clone(), false),
        ("paths prefix", vec![("apps", "{rules: [{to: [{operation: {paths: [\"/api/*\"]}}]}]}")], with(|r| r.path = "/api/v1?x=1"), true),
        ("paths suffix", vec![("apps", "{rules: [{to: [{operation: {paths: [\"*/info\"]}}]}]}")], with(|r| r.path = "/x/info"), true),
        ("paths template", vec![("apps", "{rules: [{to: [{operation: {paths: [\"/store/{*}/items\"]}}]}]}")], with(|r| r.path = "/store/7/items"), true),
        ("paths are normalised before a DENY", vec![("apps", "{action: DENY, rules: [{to: [{operation: {paths: [/admin]}}]}]}")], with(|r| r.path = "/public/../admin"), false),
        ("notPaths", vec![("apps", "{rules: [{to: [{operation: {notPaths: [\"/private*\"]}}]}]}")], with(|r| r.path = "/private/x"), false),
        // Conditions [AP-9].
        ("when header", vec![("apps", "{rules: [{when: [{key: \"request.headers[X-User]\", values: [alice]}]}]}")], header.clone(), true),
        ("when header absent", vec![("apps", "{rules: [{when: [{key: \"request.headers[x-user]\", values: [alice]}]}]}")], base(), false),
        ("when source.ip", vec![("apps", "{rules: [{when: [{key: source.ip, values: [10.0.0.0/8]}]}]}")], base(), true),
        ("when remote.ip notValues", vec![("apps", "{rules: [{when: [{key: remote.ip, notValues: [203.0.113.9]}]}]}")], base(), false),
        ("when source.namespace", vec![("apps", "{rules: [{when: [{key: source.namespace, values: [apps]}]}]}")], base(), true),
        ("when source.principal", vec![("apps", "{rules: [{when: [{key: source.principal, values: [cluster.local/ns/apps/sa/curl]}]}]}")], base(), true),
        ("when destination.port", vec![("apps", "{rules: [{when: [{key: destination.port, values: [\"80\"]}]}]}")], base(), true),
        ("when destination.ip", vec![("apps", "{rules: [{when: [{key: destination.ip, values: [10.96.0.0/16]}]}]}")], base(), true),
        ("when connection.sni", vec![("apps", "{rules: [{when: [{key: connection.sni, values: [shop.example.com]}]}]}")], with(|r| r.sni = Some("shop.example.com")), true),
        ("when request.auth.claims without JWT support", vec![("apps", "{rules: [{when: [{key: \"request.auth.claims[group]\", values: [admin]}]}]}")], base(), false),
        ("when with an unknown key fails closed", vec![("apps", "{rules: [{when: [{key: request.bogus, values: [x]}]}]}")], base(), false),
        // AND / OR [AP-5].
        ("from entries are ORed", vec![("apps", "{rules: [{from: [{source: {namespaces: [other]}}, {source: {namespaces: [apps]}}]}]}")], base(), true),
        ("fields of one source are ANDed", vec![("apps", "{rules: [{from: [{source: {principals: [\"*\"], namespaces: [other]}}]}]}")], base(), false),
        ("from AND to", vec![("apps", "{rules: [{from: [{source: {namespaces: [apps]}}], to: [{operation: {methods: [POST]}}]}]}")], base(), false),
        ("every when must hold", vec![("apps", "{rules: [{when: [{key: source.namespace, values: [apps]}, {key: destination.port, values: [\"443\"]}]}]}")], base(), false),
        // TCP [AP-10].
        ("on TCP an HTTP field never matches an ALLOW", vec![("apps", "{rules: [{to: [{operation: {methods: [GET]}}]}]}")], tcp.clone(), false),
        ("on TCP an HTTP field always matches a DENY", vec![("apps", "{action: DENY, rules: [{to: [{operation: {paths: [/admin]}}]}]}")], tcp.clone(), false),
        ("on TCP ports still decide", vec![("apps", "{rules: [{to: [{operation: {ports: [\"80\"]}}]}]}")], tcp.clone(), true),
    ];
    assert!(rows.len() >= 40, "{} rows", rows.len());
    let mut failures = Vec::new();
    for (name, policies, req, expected) in &rows {
        if decide(policies, req) != *expected {
            failures.push(format!(
                "{name}: expected {}",
                if *expected { "allow" } else { "deny" }
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn dry_run_policies_are_evaluated_but_not_enforced() {
    let yaml = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: apps, annotations: {istio.io/dry-run: \"true\"}}\nspec: {action: DENY, rules: [{}]}\n";
    let r = crate::load_str("ap.yaml", yaml).unwrap();
    let p = compile_policy(&r.authorization_policies[0].object).0;
    let path = normalize_path("/");
    let req = Request {
        http: true,
        method: "GET",
        path: &path,
        host: "h",
        headers: None,
        port: 80,
        destination_ip: None,
        source_ip: None,
        remote_ip: None,
        principal: None,
        sni: None,
    };
    let list = [&p];
    let v = evaluate(&list, &req);
    assert!(v.allowed);
    assert_eq!(v.dry_run, vec!["apps.p"]);
}

#[test]
fn problems_name_the_field() {
    let yaml = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: apps}\nspec:\n  selector: {matchLabels: {app: x}}\n  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: gw}]\n  rules:\n  - to: [{operation: {ports: [http], paths: [\"/a/{**}/b\"]}}]\n    when: [{key: source.ip, values: [300.1.1.1]}]\n";
    let r = crate::load_str("ap.yaml", yaml).unwrap();
    let problems = compile_policy(&r.authorization_policies[0].object).1;
    let joined = problems.join("\n");
    for want in [
        "spec.selector: cannot be combined with spec.targetRefs",
        "spec.rules[0].to[0].operation.ports[0]: \"http\" is not a port number",
        "spec.rules[0].to[0].operation.paths[0]",
        "spec.rules[0].when[0].values[0]",
    ] {
        assert!(joined.contains(want), "missing {want:?} in\n{joined}");
    }
}
