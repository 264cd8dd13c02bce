//! ListenerSet compilation as the ListenerSet rules in `compile/listener_sets.rs` state them
//! ([LS-1] allowedListeners, [LS-2] precedence, [LS-3] conflicts, [LS-4] route attachment,
//! [LS-5] status), as tables of (config, expected condition) rows.

use waygate_config::status::ObjectStatus;
use waygate_config::{CompileOptions, NsName, Snapshot, StatusReport, compile, load_str};

const NAMESPACES: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: infra}
---
apiVersion: v1
kind: Namespace
metadata: {name: apps, labels: {team: apps}}
---
apiVersion: v1
kind: Namespace
metadata: {name: other}
---
apiVersion: v1
kind: Service
metadata: {name: svc, namespace: infra}
spec: {ports: [{name: http, port: 8080}]}
"#;

fn gateway(allowed: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: infra, generation: 2}}\nspec:\n  gatewayClassName: istio\n  {allowed}\n  listeners:\n  - {{name: main, port: 80, protocol: HTTP, hostname: gw.io, allowedRoutes: {{namespaces: {{from: All}}}}}}\n"
    )
}

fn listener_set(ns: &str, name: &str, listeners: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: ListenerSet\nmetadata: {{name: {name}, namespace: {ns}, generation: 4}}\nspec:\n  parentRef: {{name: gw, namespace: infra}}\n  listeners:\n{listeners}"
    )
}

fn http(name: &str, host: &str) -> String {
    format!("  - {{name: {name}, port: 80, protocol: HTTP, hostname: {host}}}\n")
}

fn build(docs: &[String]) -> (Snapshot, StatusReport) {
    let text = std::iter::once(NAMESPACES.to_string())
        .chain(docs.iter().cloned())
        .collect::<Vec<_>>()
        .join("\n---\n");
    let r = load_str("t.yaml", &text).unwrap();
    compile(&r, &CompileOptions::default())
}

fn ls<'a>(report: &'a StatusReport, ns: &str, name: &str) -> &'a ObjectStatus {
    report
        .find("ListenerSet", ns, name)
        .expect("ListenerSet status")
}

fn cond(o: &ObjectStatus, kind: &str) -> (String, String) {
    let c = o.conditions.get(kind).expect("condition");
    (c.status.clone(), c.reason.clone())
}

fn listener_cond(o: &ObjectStatus, listener: &str, kind: &str) -> (String, String) {
    let l = o.listeners.iter().find(|l| l.name == listener).unwrap();
    let c = l.conditions.get(kind).expect("condition");
    (c.status.clone(), c.reason.clone())
}

fn pair(s: &str, r: &str) -> (String, String) {
    (s.to_string(), r.to_string())
}

fn attached(report: &StatusReport) -> Option<u32> {
    report
        .find("Gateway", "infra", "gw")
        .unwrap()
        .attached_listener_sets
}

#[test]
fn allowed_listeners_table_ls_1() {
    // (allowedListeners, ListenerSet namespace, Accepted (status, reason))
    let rows = [
        ("", "infra", ("False", "NotAllowed")),
        (
            "allowedListeners: {namespaces: {from: None}}",
            "infra",
            ("False", "NotAllowed"),
        ),
        (
            "allowedListeners: {namespaces: {from: Same}}",
            "infra",
            ("True", "Accepted"),
        ),
        (
            "allowedListeners: {namespaces: {from: Same}}",
            "apps",
            ("False", "NotAllowed"),
        ),
        (
            "allowedListeners: {namespaces: {from: All}}",
            "other",
            ("True", "Accepted"),
        ),
        (
            "allowedListeners: {namespaces: {from: Selector, selector: {matchLabels: {team: apps}}}}",
            "apps",
            ("True", "Accepted"),
        ),
        (
            "allowedListeners: {namespaces: {from: Selector, selector: {matchLabels: {team: apps}}}}",
            "other",
            ("False", "NotAllowed"),
        ),
    ];
    for (allowed, ns, want) in rows {
        let (snap, report) = build(&[
            gateway(allowed),
            listener_set(ns, "ls", &http("extra", "ls.io")),
        ]);
        let s = ls(&report, ns, "ls");
        assert_eq!(cond(s, "Accepted"), pair(want.0, want.1), "{allowed} {ns}");
        assert_eq!(
            cond(s, "Programmed"),
            pair(
                want.0,
                if want.0 == "True" {
                    "Programmed"
                } else {
                    want.1
                }
            )
        );
        let ok = want.0 == "True";
        assert_eq!(attached(&report), Some(u32::from(ok)), "{allowed} {ns}");
        // The Gateway itself stays accepted either way.
        let gw = report.find("Gateway", "infra", "gw").unwrap();
        assert_eq!(cond(gw, "Accepted").0, "True");
        assert_eq!(
            gw.listeners.len(),
            1,
            "ListenerSet listeners are not Gateway listeners"
        );
        let served = snap
            .port(&NsName::new("infra", "gw"), 80)
            .and_then(|p| p.listener("ls.io"))
            .is_some();
        assert_eq!(served, ok, "{allowed} {ns}");
        // Conditions carry the ListenerSet's generation.
        assert!(
            s.conditions
                .0
                .iter()
                .all(|c| c.observed_generation == Some(4))
        );
    }
}

#[test]
fn precedence_and_conflicts_ls_2_ls_3() {
    let same = "allowedListeners: {namespaces: {from: Same}}";
    let tcp = "  - {name: tcp, port: 80, protocol: TCP}\n";
    let docs = [
        gateway(same),
        // `b-set` sorts after `a-set` by name; `z-old` is older than both, so it comes first.
        listener_set(
            "infra",
            "b-set",
            &(http("dup-gw", "gw.io") + &http("shared", "shared.io")),
        ),
        listener_set(
            "infra",
            "a-set",
            &(http("own", "a.io") + &http("shared", "shared.io") + tcp),
        ),
        listener_set("infra", "z-old", &http("old", "old.io")).replace(
            "generation: 4}",
            "generation: 4, creationTimestamp: \"2020-01-01T00:00:00Z\"}",
        ),
    ];
    let (snap, report) = build(&docs);
    let a = ls(&report, "infra", "a-set");
    let b = ls(&report, "infra", "b-set");
    let z = ls(&report, "infra", "z-old");
    assert_eq!(cond(z, "Accepted"), pair("True", "Accepted"));
    assert_eq!(cond(a, "Accepted"), pair("True", "Accepted"));
    assert_eq!(
        listener_cond(a, "shared", "Accepted"),
        pair("True", "Accepted")
    );
    assert_eq!(
        listener_cond(a, "tcp", "Conflicted"),
        pair("True", "ProtocolConflict")
    );
    assert_eq!(
        listener_cond(a, "tcp", "Accepted"),
        pair("False", "ProtocolConflict")
    );
    assert_eq!(
        listener_cond(a, "tcp", "Programmed"),
        pair("False", "ProtocolConflict")
    );
    // b-set loses both: to the Gateway's listener and to a-set's.
    assert_eq!(
        listener_cond(b, "dup-gw", "Conflicted"),
        pair("True", "HostnameConflict")
    );
    assert_eq!(
        listener_cond(b, "shared", "Conflicted"),
        pair("True", "HostnameConflict")
    );
    assert_eq!(cond(b, "Accepted"), pair("False", "ListenersNotValid"));
    assert_eq!(cond(b, "Programmed"), pair("False", "ListenersNotValid"));
    // The Gateway's listener is never the one conflicted.
    let gw = report.find("Gateway", "infra", "gw").unwrap();
    assert_eq!(
        listener_cond(gw, "main", "Conflicted"),
        pair("False", "NoConflicts")
    );
    assert_eq!(attached(&report), Some(2));
    let port = snap.port(&NsName::new("infra", "gw"), 80).unwrap();
    let names: Vec<&str> = port.listeners.iter().map(|l| l.name.as_str()).collect();
    for n in ["main", "old", "own", "shared"] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    assert_eq!(names.len(), 4, "{names:?}");
}

fn route(ns: &str, name: &str, parents: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  parentRefs: {parents}\n  rules:\n  - backendRefs: [{{name: svc, namespace: infra, port: 8080}}]\n"
    )
}

#[test]
fn route_attachment_ls_4() {
    let docs = [
        gateway("allowedListeners: {namespaces: {from: All}}"),
        listener_set("apps", "ls", &(http("same", "same.io") + &http("second", "second.io"))),
        // Same on a ListenerSet listener means the ListenerSet's namespace.
        route("apps", "to-ls", "[{kind: ListenerSet, group: gateway.networking.k8s.io, name: ls}]"),
        route("infra", "from-gw-ns", "[{kind: ListenerSet, name: ls, namespace: apps, sectionName: same}]"),
        route("apps", "section", "[{kind: ListenerSet, name: ls, sectionName: second}]"),
        // A Gateway parent does not reach ListenerSet listeners, even by sectionName.
        route("infra", "gw-section", "[{name: gw, sectionName: same}]"),
        route("infra", "gw-only", "[{name: gw}]"),
        "apiVersion: gateway.networking.k8s.io/v1\nkind: ReferenceGrant\nmetadata: {name: g, namespace: infra}\nspec:\n  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: apps}]\n  to: [{group: \"\", kind: Service}]\n".to_string(),
    ];
    let (_, report) = build(&docs);
    let parent = |ns: &str, name: &str| {
        let r = report.find("HTTPRoute", ns, name).expect("route status");
        let p = &r.parents[0];
        let c = p.conditions.get("Accepted").unwrap();
        (
            p.parent_ref.kind.clone().unwrap_or_default(),
            c.status.clone(),
            c.reason.clone(),
        )
    };
    let row = |k: &str, s: &str, r: &str| (k.to_string(), s.to_string(), r.to_string());
    assert_eq!(
        parent("apps", "to-ls"),
        row("ListenerSet", "True", "Accepted")
    );
    assert_eq!(
        parent("infra", "from-gw-ns"),
        row("ListenerSet", "False", "NotAllowedByListeners")
    );
    assert_eq!(
        parent("apps", "section"),
        row("ListenerSet", "True", "Accepted")
    );
    assert_eq!(
        parent("infra", "gw-section"),
        row("Gateway", "False", "NoMatchingParent")
    );
    assert_eq!(
        parent("infra", "gw-only"),
        row("Gateway", "True", "Accepted")
    );
    let set = ls(&report, "apps", "ls");
    let routes = |n: &str| {
        set.listeners
            .iter()
            .find(|l| l.name == n)
            .unwrap()
            .attached_routes
    };
    assert_eq!((routes("same"), routes("second")), (1, 2));
    let gw = report.find("Gateway", "infra", "gw").unwrap();
    assert_eq!(
        gw.listeners[0].attached_routes, 1,
        "only the Gateway-parent route"
    );
}

#[test]
fn x_listener_set_v1alpha1_loads_ls_5() {
    let x = listener_set("infra", "x", &http("x", "x.io")).replace(
        "gateway.networking.k8s.io/v1\nkind: ListenerSet",
        "gateway.networking.x-k8s.io/v1alpha1\nkind: XListenerSet",
    );
    let (_, report) = build(&[gateway("allowedListeners: {namespaces: {from: Same}}"), x]);
    assert_eq!(
        cond(ls(&report, "infra", "x"), "Accepted"),
        pair("True", "Accepted")
    );
    assert!(
        report.warnings.iter().all(|w| !w.contains("ListenerSet")),
        "{:?}",
        report.warnings
    );
}
