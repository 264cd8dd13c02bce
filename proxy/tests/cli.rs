//! `waygate check` and `waygate explain` as a user runs them: the real binary on real files.

mod common;

use common::*;
use std::process::Command;
use waygate::BindPlan;
use waygate::gateway::{ConfigSource, Gateway, GatewayOptions};

const BAD_REGEX_ROUTE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bad-regex, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules:
  - matches: [{path: {type: RegularExpression, value: "/v[0-9+"}}]
    backendRefs: [{name: a, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: good, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules:
  - matches: [{path: {value: /good}}]
    backendRefs: [{name: a, port: 8080}]
"#;

fn waygate(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_waygate"))
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn check_reports_broken_yaml_and_bad_regex_then_run_serves_the_rest() {
    let a = echo("apps", "a", "a-pod").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("gateway.yaml"),
        gateway_yaml() + &service_yaml("apps", "a", &[a.addr]),
    )
    .unwrap();
    std::fs::write(dir.path().join("routes.yaml"), BAD_REGEX_ROUTE).unwrap();
    std::fs::write(
        dir.path().join("broken.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: x, namespace: apps}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: y\n   namespace: bad-indent\n",
    )
    .unwrap();
    let path = dir.path().to_str().unwrap();

    let (code, out) = waygate(&["check", "--config", path]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("broken.yaml: document 1: ") && out.contains("not valid YAML"),
        "{out}"
    );
    assert!(
        out.contains("routes.yaml (document 0): HTTPRoute apps/bad-regex")
            && out.contains("spec.rules[0].matches[0]: invalid path regex \"/v[0-9+\""),
        "{out}"
    );
    assert!(
        out.contains("Accepted=True Accepted"),
        "the good route is listed as accepted:\n{out}"
    );

    // Without the broken file: `run` serves the valid route, the bad-regex one is not accepted.
    std::fs::remove_file(dir.path().join("broken.yaml")).unwrap();
    let gw = Gateway::start(GatewayOptions {
        source: ConfigSource::Path(dir.path().to_path_buf()),
        bind: BindPlan::Ephemeral("127.0.0.1".parse().unwrap()),
        admin: Some("127.0.0.1:0".parse().unwrap()),
        gateways: vec![],
        watch: false,
        dns_server: None,
        identity: None,
    })
    .await
    .unwrap();
    assert_eq!(get(gw_addr(&gw), "a.io", "/good").await.status, 200);
    let status = gw.state().status();
    let bad = status
        .report
        .find("HTTPRoute", "apps", "bad-regex")
        .unwrap();
    let accepted = bad.parents[0].conditions.get("Accepted").unwrap();
    assert_eq!(
        (accepted.status.as_str(), accepted.reason.as_str()),
        ("False", "UnsupportedValue")
    );
    assert!(accepted.message.contains("invalid path regex"));

    let (code, out) = waygate(&["check", "--config", path]);
    assert_eq!(code, 1, "the bad regex alone still fails check:\n{out}");
}

#[test]
fn explain_names_the_winner_and_the_first_failed_condition() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.yaml");
    std::fs::write(
        &file,
        gateway_yaml()
            + &service_yaml("apps", "a", &[])
            + r#"---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  hostnames: [shop.example.com]
  rules:
  - matches: [{path: {value: /api}, method: POST}]
    backendRefs: [{name: a, port: 8080}]
  - matches: [{path: {value: /}}]
    backendRefs: [{name: a, port: 8080}]
"#,
    )
    .unwrap();
    let (code, out) = waygate(&[
        "explain",
        "--config",
        file.to_str().unwrap(),
        "--listener",
        "infra/gw/http",
        "GET http://shop.example.com/api/items",
        "-H",
        "x-test: 1",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("routed by HTTPRoute apps/api rule 1 match 0"),
        "{out}"
    );
    assert!(
        out.contains("rule 0 match 0 [PathPrefix /api, method POST]: method is not POST"),
        "{out}"
    );
}

#[test]
fn the_demo_example_checks_clean() {
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/demo");
    let (code, out) = waygate(&["check", "--config", demo]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("HTTPRoute demo/shop"), "{out}");
}

#[test]
fn every_example_checks_clean() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_dir() {
            continue;
        }
        let (code, out) = waygate(&["check", "--config", path.to_str().unwrap()]);
        assert_eq!(code, 0, "{}:\n{out}", path.display());
        assert!(!out.contains("warning:"), "{}:\n{out}", path.display());
        checked += 1;
    }
    assert!(checked >= 6, "only {checked} example folders");
}

/// Istio objects Istio's validation refuses, one bad field each (and one object with several).
const BAD_ISTIO: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bad-vs, namespace: apps}
spec:
  hosts: [a.example.com]
  http:
  - match: [{uri: {regex: "/v[0-9+"}}]
    route: [{destination: {host: a}}]
  - match: [{uri: {exact: /x, prefix: /y}}]
    redirect: {uri: /z}
    route: [{destination: {host: a}}]
  - route: [{destination: {host: a, subset: v9}}]
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: bad-se, namespace: apps}
spec:
  hosts: [ext.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: STATIC
  workloadSelector: {labels: {app: ext}}
  endpoints: [{address: 192.0.2.1}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: bad-ap, namespace: apps}
spec:
  action: ALLOW
  rules: [{to: [{operation: {methods: [GET], ports: [http]}}]}]
"#;

#[test]
fn check_names_the_file_object_and_field_of_invalid_istio_objects() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("istio.yaml"), BAD_ISTIO).unwrap();
    let path = dir.path().to_str().unwrap();
    let (code, out) = waygate(&["check", "--config", path]);
    assert_eq!(code, 1, "{out}");
    let errors: Vec<&str> = out.lines().filter(|l| l.starts_with("error: ")).collect();
    let find = |object: &str| {
        errors
            .iter()
            .find(|l| l.contains(object))
            .unwrap_or_else(|| panic!("no error for {object}:\n{out}"))
            .to_string()
    };
    let vs = find("VirtualService apps/bad-vs");
    assert!(vs.contains("istio.yaml (document 0)"), "{vs}");
    assert!(
        vs.contains(
            "spec.http[0].match[0].uri.regex: \"/v[0-9+\" is not a valid regular expression"
        ),
        "{vs}"
    );
    assert!(
        vs.contains("spec.http[1].match[0].uri: set only one of exact, prefix and regex"),
        "{vs}"
    );
    assert!(
        vs.contains("spec.http[1].redirect: cannot be combined with rewrite or route"),
        "{vs}"
    );
    assert!(
        vs.contains("spec.http[2].route[0].destination.subset"),
        "an unknown subset is named: {vs}"
    );
    let se = find("ServiceEntry apps/bad-se");
    assert!(se.contains("istio.yaml (document 1)"), "{se}");
    assert!(
        se.contains("spec.workloadSelector: cannot be combined with spec.endpoints"),
        "{se}"
    );
    let ap = find("AuthorizationPolicy apps/bad-ap");
    assert!(ap.contains("istio.yaml (document 2)"), "{ap}");
    assert!(
        ap.contains("spec.rules[0].to[0].operation.ports[0]: \"http\" is not a port number"),
        "{ap}"
    );
}
