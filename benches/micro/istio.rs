//! The cost of Istio's request-path objects: a VirtualService's written-order routes at a
//! Gateway (tried one by one, so the cost grows with the position of the matching route), and
//! AuthorizationPolicy evaluation (a DENY policy, then ALLOW rules, the last one matching).

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, Method};
use std::hint::black_box;
use waygate_config::{CompileOptions, NsName, RequestView, compile, load_str};
use waygate_filters::authz::{Policy, Request, evaluate};

const BASE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: istio
  listeners: [{name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}]
---
apiVersion: v1
kind: Service
metadata: {name: svc, namespace: apps}
spec: {ports: [{name: http, port: 8080}]}
"#;

/// A VirtualService with `n` routes, route i matching `uri.prefix: /p{i}/api`.
fn virtual_service(n: usize) -> String {
    let mut y = String::from(
        "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs, namespace: apps}\nspec:\n  hosts: [shop.example.com]\n  gateways: [infra/gw]\n  http:\n",
    );
    for i in 0..n {
        y.push_str(&format!(
            "  - match: [{{uri: {{prefix: /p{i}/api}}}}]\n    route: [{{destination: {{host: svc}}}}]\n"
        ));
    }
    y
}

fn vs_lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("virtual_service_lookup");
    for n in [10usize, 100, 1_000] {
        let r = load_str("bench.yaml", &(BASE.to_string() + &virtual_service(n))).expect("yaml");
        let (snapshot, _) = compile(&r, &CompileOptions::default());
        let port = snapshot
            .port(&NsName::new("infra", "gw"), 80)
            .expect("port 80");
        let headers = HeaderMap::new();
        let method = Method::GET;
        let first = "/p0/api/items".to_string();
        let last = format!("/p{}/api/items", n - 1);
        for (label, path) in [("first", first.as_str()), ("last", last.as_str())] {
            group.bench_function(format!("{label}/{n}"), |b| {
                b.iter(|| {
                    let req = RequestView {
                        method: &method,
                        host: "shop.example.com",
                        path: black_box(path),
                        query: None,
                        headers: &headers,
                        scheme: "http",
                        source_namespace: None,
                    };
                    black_box(port.route(&req).ok().map(|m| m.entry.id.rule))
                })
            });
        }
    }
    group.finish();
}

/// A DENY policy on a header, and an ALLOW policy with `n` rules (principal + method + path
/// prefix), all on the Gateway.
fn policies(n: usize) -> String {
    let mut y = String::from(
        "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny-bots, namespace: infra}\nspec:\n  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: gw}]\n  action: DENY\n  rules: [{when: [{key: \"request.headers[user-agent]\", values: [\"*bot\"]}]}]\n---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: allow, namespace: infra}\nspec:\n  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: gw}]\n  action: ALLOW\n  rules:\n",
    );
    for i in 0..n {
        y.push_str(&format!(
            "  - from: [{{source: {{principals: [cluster.local/ns/apps/sa/app{i}]}}}}]\n    to: [{{operation: {{methods: [GET, POST], paths: [\"/p{i}/*\"]}}}}]\n"
        ));
    }
    y
}

fn authz(c: &mut Criterion) {
    let mut group = c.benchmark_group("authorization_policy");
    for n in [1usize, 10, 100] {
        let r = load_str("bench.yaml", &(BASE.to_string() + &policies(n))).expect("yaml");
        let (snapshot, _) = compile(&r, &CompileOptions::default());
        let gw = snapshot
            .gateway(&NsName::new("infra", "gw"))
            .expect("gateway");
        let refs: Vec<&Policy> = gw.authz.iter().map(|p| p.as_ref()).collect();
        assert_eq!(refs.len(), 2, "both policies attach");
        let mut headers = HeaderMap::new();
        headers.insert("user-agent", "curl/8".parse().expect("header"));
        let principal = format!("cluster.local/ns/apps/sa/app{}", n - 1);
        let path = format!("/p{}/items", n - 1);
        let req = Request {
            http: true,
            method: "GET",
            path: &path,
            host: "shop.example.com",
            headers: Some(&headers),
            port: 80,
            destination_ip: None,
            source_ip: Some("10.0.0.1".parse().expect("ip")),
            remote_ip: Some("10.0.0.1".parse().expect("ip")),
            principal: Some(&principal),
            sni: None,
        };
        assert!(evaluate(&refs, &req).allowed, "the last rule allows it");
        group.bench_function(format!("allowed_by_last_rule/{n}"), |b| {
            b.iter(|| black_box(evaluate(black_box(&refs), black_box(&req)).allowed))
        });
    }
    group.finish();
}

criterion_group!(benches, vs_lookup, authz);
criterion_main!(benches);
