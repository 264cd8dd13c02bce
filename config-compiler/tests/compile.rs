//! Compilation as the spec digest states it: attachment, hostnames, references and status, as
//! tables of (config, expected condition) rows.

use waygate_config::{CompileOptions, Snapshot, StatusReport, compile, load_str};

const BASE: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: infra, labels: {tier: infra}}
---
apiVersion: v1
kind: Namespace
metadata: {name: apps, labels: {tier: apps}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra, generation: 3}
spec:
  gatewayClassName: istio
  listeners:
  - {name: same, port: 80, protocol: HTTP, hostname: same.io}
  - {name: all, port: 80, protocol: HTTP, hostname: "*.all.io", allowedRoutes: {namespaces: {from: All}}}
  - {name: sel, port: 8080, protocol: HTTP, allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {tier: apps}}}}}
---
apiVersion: v1
kind: Service
metadata: {name: svc, namespace: apps}
spec: {ports: [{name: http, port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: other, namespace: infra}
spec: {ports: [{name: http, port: 8080}]}
"#;

fn build(extra: &str) -> (Snapshot, StatusReport) {
    let r = load_str("t.yaml", &format!("{BASE}\n---\n{extra}")).unwrap();
    compile(&r, &CompileOptions::default())
}

fn route(ns: &str, parent: &str, hostnames: &str, backend: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r, namespace: {ns}, generation: 7}}\nspec:\n  parentRefs: [{parent}]\n  hostnames: {hostnames}\n  rules:\n  - backendRefs: [{backend}]\n"
    )
}

/// (Accepted status, reason) and (ResolvedRefs status, reason) of the route's first parent.
fn route_conditions(report: &StatusReport, ns: &str) -> ((String, String), (String, String)) {
    let r = report.find("HTTPRoute", ns, "r").expect("route status");
    let c = &r.parents[0].conditions;
    let pick = |t: &str| {
        let c = c.get(t).unwrap();
        (c.status.clone(), c.reason.clone())
    };
    (pick("Accepted"), pick("ResolvedRefs"))
}

#[test]
fn attachment_table_hr_1_hr_2_gw_6() {
    let svc = "{name: svc, port: 8080}";
    type Row<'a> = (
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        (&'a str, &'a str),
        (&'a str, &'a str),
    );
    let rows: &[Row] = &[
        // (route ns, parentRef, hostnames, backend, Accepted, ResolvedRefs)
        (
            "apps",
            "{name: gw, namespace: infra, sectionName: all}",
            "[a.all.io]",
            svc,
            ("True", "Accepted"),
            ("True", "ResolvedRefs"),
        ),
        (
            "apps",
            "{name: gw, namespace: infra, sectionName: same}",
            "[]",
            svc,
            ("False", "NotAllowedByListeners"),
            ("True", "ResolvedRefs"),
        ),
        (
            "apps",
            "{name: gw, namespace: infra, sectionName: nope}",
            "[]",
            svc,
            ("False", "NoMatchingParent"),
            ("True", "ResolvedRefs"),
        ),
        (
            "apps",
            "{name: gw, namespace: infra, port: 9999}",
            "[]",
            svc,
            ("False", "NoMatchingParent"),
            ("True", "ResolvedRefs"),
        ),
        (
            "apps",
            "{name: gw, namespace: infra, sectionName: all}",
            "[b.other.io]",
            svc,
            ("False", "NoMatchingListenerHostname"),
            ("True", "ResolvedRefs"),
        ),
        (
            "apps",
            "{name: gw, namespace: infra, sectionName: sel}",
            "[]",
            svc,
            ("True", "Accepted"),
            ("True", "ResolvedRefs"),
        ),
        (
            "infra",
            "{name: gw, sectionName: sel}",
            "[]",
            "{name: other, port: 8080}",
            ("False", "NotAllowedByListeners"),
            ("True", "ResolvedRefs"),
        ),
        (
            "apps",
            "{name: gw, namespace: infra, port: 8080}",
            "[]",
            "{name: missing, port: 8080}",
            ("True", "Accepted"),
            ("False", "BackendNotFound"),
        ),
        (
            "apps",
            "{name: gw, namespace: infra, port: 8080}",
            "[]",
            "{name: other, namespace: infra, port: 8080}",
            ("True", "Accepted"),
            ("False", "RefNotPermitted"),
        ),
        (
            "apps",
            "{name: gw, namespace: infra, port: 8080}",
            "[]",
            "{kind: Pod, name: svc, port: 8080}",
            ("True", "Accepted"),
            ("False", "InvalidKind"),
        ),
        (
            "apps",
            "{name: gw, namespace: infra, port: 8080}",
            "[]",
            "{name: svc, port: 1}",
            ("True", "Accepted"),
            ("False", "BackendNotFound"),
        ),
    ];
    for (i, (ns, parent, hosts, backend, accepted, resolved)) in rows.iter().enumerate() {
        let (_, report) = build(&route(ns, parent, hosts, backend));
        let (a, r) = route_conditions(&report, ns);
        assert_eq!((a.0.as_str(), a.1.as_str()), *accepted, "row {i}: Accepted");
        assert_eq!(
            (r.0.as_str(), r.1.as_str()),
            *resolved,
            "row {i}: ResolvedRefs"
        );
    }
}

#[test]
fn reference_grant_permits_cross_namespace_backend_rg_1() {
    let grant = r#"
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: g, namespace: infra}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: apps}]
  to: [{group: "", kind: Service, name: other}]
"#;
    let r = route(
        "apps",
        "{name: gw, namespace: infra, port: 8080}",
        "[]",
        "{name: other, namespace: infra, port: 8080}",
    ) + grant;
    let (snapshot, report) = build(&r);
    let (_, resolved) = route_conditions(&report, "apps");
    assert_eq!(resolved.0, "True");
    assert_eq!(
        snapshot.clusters[0].name,
        "outbound|8080||other.infra.svc.cluster.local"
    );
}

#[test]
fn conditions_carry_observed_generation_gw_9() {
    let (_, report) = build(&route(
        "apps",
        "{name: gw, namespace: infra, sectionName: sel}",
        "[]",
        "{name: svc, port: 8080}",
    ));
    let gw = report.find("Gateway", "infra", "gw").unwrap();
    assert!(
        gw.conditions
            .0
            .iter()
            .all(|c| c.observed_generation == Some(3))
    );
    assert!(
        gw.listeners
            .iter()
            .flat_map(|l| &l.conditions.0)
            .all(|c| c.observed_generation == Some(3))
    );
    let r = report.find("HTTPRoute", "apps", "r").unwrap();
    assert!(
        r.parents[0]
            .conditions
            .0
            .iter()
            .all(|c| c.observed_generation == Some(7))
    );
    assert_eq!(
        r.parents[0].parent_ref.group.as_deref(),
        Some("gateway.networking.k8s.io")
    );
    assert_eq!(r.parents[0].parent_ref.kind.as_deref(), Some("Gateway"));
}

#[test]
fn attached_routes_and_effective_hostnames_hr_4() {
    let (snapshot, report) = build(&route(
        "apps",
        "{name: gw, namespace: infra}",
        "[x.all.io, \"*.all.io\", nomatch.io]",
        "{name: svc, port: 8080}",
    ));
    let gw = report.find("Gateway", "infra", "gw").unwrap();
    let attached: Vec<(String, u32)> = gw
        .listeners
        .iter()
        .map(|l| (l.name.clone(), l.attached_routes))
        .collect();
    assert_eq!(
        attached,
        [("same".into(), 0), ("all".into(), 1), ("sel".into(), 1)]
    );
    let port80 = &snapshot.gateways[0].ports[0];
    let all = port80.listeners.iter().find(|l| l.name == "all").unwrap();
    let hosts: Vec<&str> = all
        .routes
        .virtual_hosts
        .iter()
        .map(|v| v.hostname.as_str())
        .collect();
    assert_eq!(hosts, ["x.all.io", "*.all.io"]);
    // Listener order on a port: exact hostname before wildcard ([GW-3]).
    let names: Vec<&str> = port80.listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["same", "all"]);
}

#[test]
fn listener_conflicts_and_invalid_kinds_gw_5_gw_6() {
    let text = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: istio
  listeners:
  - {name: a, port: 80, protocol: HTTP, hostname: x.io}
  - {name: b, port: 80, protocol: HTTP, hostname: x.io}
  - {name: c, port: 81, protocol: HTTP, allowedRoutes: {kinds: [{kind: InvalidRoute}]}}
  - {name: d, port: 82, protocol: HTTP, allowedRoutes: {kinds: [{kind: InvalidRoute}, {kind: HTTPRoute}]}}
  - {name: e, port: 83, protocol: SCTP}
"#;
    let (snapshot, report) = compile(
        &load_str("g.yaml", text).unwrap(),
        &CompileOptions::default(),
    );
    let gw = report.find("Gateway", "infra", "gw").unwrap();
    let cond = |l: usize, t: &str| {
        let c = gw.listeners[l].conditions.get(t).unwrap();
        (c.status.as_str(), c.reason.as_str())
    };
    assert_eq!(cond(0, "Conflicted"), ("True", "HostnameConflict"));
    assert_eq!(cond(1, "Conflicted"), ("True", "HostnameConflict"));
    assert_eq!(cond(2, "ResolvedRefs"), ("False", "InvalidRouteKinds"));
    assert!(gw.listeners[2].supported_kinds.is_empty());
    assert_eq!(cond(3, "ResolvedRefs"), ("False", "InvalidRouteKinds"));
    assert_eq!(gw.listeners[3].supported_kinds, ["HTTPRoute"]);
    assert_eq!(cond(4, "Accepted"), ("False", "UnsupportedProtocol"));
    let accepted = gw.conditions.get("Accepted").unwrap();
    assert_eq!(
        (accepted.status.as_str(), accepted.reason.as_str()),
        ("True", "ListenersNotValid")
    );
    let ports: Vec<u16> = snapshot.gateways[0].ports.iter().map(|p| p.port).collect();
    assert_eq!(
        ports,
        [81, 82],
        "conflicted and unsupported listeners are not served"
    );
}

#[test]
fn gateway_selection_by_class_and_flag_gc_2() {
    let text = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: custom}
spec: {controllerName: istio.io/mesh-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: a, namespace: x}
spec: {gatewayClassName: custom, listeners: [{name: h, port: 80, protocol: HTTP}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: b, namespace: x}
spec: {gatewayClassName: nginx, listeners: [{name: h, port: 81, protocol: HTTP}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: c, namespace: x}
spec: {gatewayClassName: istio-waypoint, listeners: [{name: h, port: 82, protocol: HTTP}]}
"#;
    let r = load_str("g.yaml", text).unwrap();
    let (snapshot, report) = compile(&r, &CompileOptions::default());
    let names: Vec<&str> = snapshot.gateways.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["a", "c"]);
    assert_eq!(
        report
            .find("GatewayClass", "", "custom")
            .unwrap()
            .conditions
            .get("Accepted")
            .unwrap()
            .status,
        "True"
    );
    let only_b = CompileOptions {
        gateways: vec![waygate_config::NsName::new("x", "b")],
    };
    let (snapshot, _) = compile(&r, &only_b);
    assert_eq!(snapshot.gateways.len(), 1);
    assert_eq!(snapshot.gateways[0].name, "b");
}

#[test]
fn compile_is_deterministic_whatever_the_document_order() {
    let extra = route(
        "apps",
        "{name: gw, namespace: infra}",
        "[]",
        "{name: svc, port: 8080}",
    );
    let a = format!("{BASE}\n---\n{extra}");
    let mut docs: Vec<&str> = a.split("\n---\n").collect();
    docs.reverse();
    let b = docs.join("\n---\n");
    let opts = CompileOptions::default();
    let (sa, ra) = compile(&load_str("a.yaml", &a).unwrap(), &opts);
    let (sb, rb) = compile(&load_str("a.yaml", &b).unwrap(), &opts);
    assert_eq!(
        serde_json::to_string(&sa).unwrap(),
        serde_json::to_string(&sb).unwrap()
    );
    // Statuses carry the document index as source; compare without it.
    let strip = |r: &StatusReport| {
        let mut v = serde_json::to_value(&r.objects).unwrap();
        for o in v.as_array_mut().unwrap() {
            o.as_object_mut().unwrap().remove("source");
        }
        v
    };
    assert_eq!(strip(&ra), strip(&rb));
}

#[test]
fn invalid_rules_are_dropped_with_partially_invalid_hs_1() {
    let text = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra, port: 8080}]
  rules:
  - matches: [{path: {type: Exact, value: "no-slash"}}]
    backendRefs: [{name: svc, port: 8080}]
  - matches: [{method: FETCH}]
    backendRefs: [{name: svc, port: 8080}]
  - filters:
    - {type: RequestRedirect, requestRedirect: {hostname: a.io}}
    backendRefs: [{name: svc, port: 8080}]
  - backendRefs: [{name: svc, port: 8080}]
"#;
    let (snapshot, report) = build(text);
    let c = &report.find("HTTPRoute", "apps", "r").unwrap().parents[0].conditions;
    assert_eq!(c.get("Accepted").unwrap().status, "True");
    let partial = c.get("PartiallyInvalid").unwrap();
    assert_eq!(partial.status, "True");
    assert!(partial.message.starts_with("Dropped Rule"));
    assert!(
        partial.message.contains("spec.rules[0].matches[0]"),
        "{}",
        partial.message
    );
    assert!(
        partial.message.contains("unknown method \"FETCH\""),
        "{}",
        partial.message
    );
    assert!(
        partial
            .message
            .contains("spec.rules[2]: RequestRedirect cannot be combined"),
        "{}",
        partial.message
    );
    assert_eq!(snapshot.route_count(), 1);
}

#[test]
fn duplicate_rule_names_reject_the_route_hs_2() {
    let text = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra, port: 8080}]
  rules:
  - name: same
    backendRefs: [{name: svc, port: 8080}]
  - name: same
    matches: [{path: {value: /b}}]
    backendRefs: [{name: svc, port: 8080}]
"#;
    let (snapshot, report) = build(text);
    let accepted = report.find("HTTPRoute", "apps", "r").unwrap().parents[0]
        .conditions
        .get("Accepted")
        .unwrap()
        .clone();
    assert_eq!(
        (accepted.status.as_str(), accepted.reason.as_str()),
        ("False", "UnsupportedValue")
    );
    assert!(accepted.message.contains("\"same\" is used more than once"));
    assert_eq!(snapshot.route_count(), 0);
}

#[test]
fn grpc_routes_attach_and_route_by_service_and_method_gr_2() {
    let text = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra, port: 8080}]
  hostnames: [grpc.example.com]
  rules:
  - matches: [{method: {service: pkg.Echo, method: Two}}]
    backendRefs: [{name: svc, port: 8080}]
  - matches: [{method: {service: pkg.Echo}}]
    backendRefs: [{name: svc, port: 8080}]
  - matches: [{method: {method: Three}, headers: [{name: x-v, value: "1"}]}]
    backendRefs: [{name: svc, port: 8080}]
  - filters: [{type: RequestRedirect, requestRedirect: {hostname: a.io}}]
"#;
    let (snapshot, report) = build(text);
    let parent = &report.find("GRPCRoute", "apps", "g").unwrap().parents[0];
    assert_eq!(parent.conditions.get("Accepted").unwrap().status, "True");
    let partial = parent.conditions.get("PartiallyInvalid").unwrap();
    assert!(
        partial
            .message
            .contains("RequestRedirect is not allowed on a GRPCRoute"),
        "{}",
        partial.message
    );
    let port = snapshot
        .port(&waygate_config::NsName::new("infra", "gw"), 8080)
        .unwrap();
    let route = |path: &str, headers: &[(&str, &str)]| {
        let mut h = http::HeaderMap::new();
        for (k, v) in headers {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let post = http::Method::POST;
        let req = waygate_config::RequestView {
            method: &post,
            host: "grpc.example.com",
            path,
            query: None,
            headers: &h,
            scheme: "http",
            source_namespace: None,
        };
        port.route(&req)
            .ok()
            .map(|m| (m.entry.id.kind, m.entry.id.rule))
    };
    assert_eq!(route("/pkg.Echo/Two", &[]), Some(("GRPCRoute", 0)));
    assert_eq!(route("/pkg.Echo/One", &[]), Some(("GRPCRoute", 1)));
    assert_eq!(
        route("/other.Svc/Three", &[("x-v", "1")]),
        Some(("GRPCRoute", 2))
    );
    assert_eq!(route("/other.Svc/Three", &[]), None);
}

#[test]
fn http_and_grpc_routes_with_intersecting_hostnames_keep_the_older_gr_3() {
    // (HTTPRoute created, its hostnames, GRPCRoute created, its hostnames) → (HTTP, gRPC) Accepted.
    let rows = [
        (
            "2024-01-01T00:00:00Z",
            "[a.example.com]",
            "2025-01-01T00:00:00Z",
            "[a.example.com]",
            ("True", "False"),
        ),
        (
            "2025-01-01T00:00:00Z",
            "[a.example.com]",
            "2024-01-01T00:00:00Z",
            "[\"*.example.com\"]",
            ("False", "True"),
        ),
        // Same age: apps/g sorts before apps/h.
        (
            "2024-01-01T00:00:00Z",
            "[a.example.com]",
            "2024-01-01T00:00:00Z",
            "[a.example.com]",
            ("False", "True"),
        ),
        (
            "2024-01-01T00:00:00Z",
            "[a.example.com]",
            "2025-01-01T00:00:00Z",
            "[b.example.com]",
            ("True", "True"),
        ),
    ];
    for (i, (h_time, h_hosts, g_time, g_hosts, want)) in rows.into_iter().enumerate() {
        let text = format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: h, namespace: apps, creationTimestamp: \"{h_time}\", generation: 2}}\nspec:\n  parentRefs: [{{name: gw, namespace: infra, port: 8080}}]\n  hostnames: {h_hosts}\n  rules: [{{backendRefs: [{{name: svc, port: 8080}}]}}]\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {{name: g, namespace: apps, creationTimestamp: \"{g_time}\", generation: 3}}\nspec:\n  parentRefs: [{{name: gw, namespace: infra, port: 8080}}]\n  hostnames: {g_hosts}\n  rules: [{{backendRefs: [{{name: svc, port: 8080}}]}}]\n"
        );
        let (snapshot, report) = build(&text);
        let accepted = |kind: &str, name: &str| {
            let c = report.find(kind, "apps", name).unwrap().parents[0]
                .conditions
                .get("Accepted")
                .unwrap()
                .clone();
            let generation = if kind == "HTTPRoute" { 2 } else { 3 };
            assert_eq!(c.observed_generation, Some(generation), "row {i}");
            c.status
        };
        assert_eq!(
            (
                accepted("HTTPRoute", "h").as_str(),
                accepted("GRPCRoute", "g").as_str()
            ),
            want,
            "row {i}"
        );
        // The loser is not served: a request for a.example.com reaches the winner only.
        let port = snapshot
            .port(&waygate_config::NsName::new("infra", "gw"), 8080)
            .unwrap();
        let h = http::HeaderMap::new();
        let post = http::Method::POST;
        let req = waygate_config::RequestView {
            method: &post,
            host: "a.example.com",
            path: "/pkg.Svc/M",
            query: None,
            headers: &h,
            scheme: "http",
            source_namespace: None,
        };
        let served = port.route(&req).ok().map(|m| m.entry.id.kind);
        let want_kind = if want.0 == "True" {
            "HTTPRoute"
        } else {
            "GRPCRoute"
        };
        assert_eq!(served, Some(want_kind), "row {i}");
    }
}
