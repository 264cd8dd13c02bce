//! VirtualService at the waypoint end to end (issue 7, scenarios 3 and 4): written-order
//! matching, a 90/10 weighted split, header edits, rewrite, fault delay and abort shares, and
//! an HTTPRoute on the same service taking precedence ([VS-11]).

mod common;

use common::*;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use waygate::gateway::Gateway;
use waygate_conformance::echo::EchoServer;
use waygate_conformance::hbone::HboneClient;

/// A Service `apps/name` (VIP `vip`, port 9080) bound to the waypoint, one endpoint.
fn bound(name: &str, vip: &str, ep: SocketAddr) -> String {
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: apps\n  labels: {{istio.io/use-waypoint: waypoint}}\nspec:\n  clusterIP: {vip}\n  ports: [{{name: http, port: 9080}}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}-1, namespace: apps, labels: {{kubernetes.io/service-name: {name}}}}}\naddressType: IPv4\nports: [{{name: http, port: {}}}]\nendpoints: [{{addresses: [\"{}\"]}}]\n",
        ep.port(),
        ep.ip()
    )
}

struct World {
    _dir: tempfile::TempDir,
    _gw: Arc<Gateway>,
    client: HboneClient,
    _backends: Vec<EchoServer>,
}

/// A waypoint in `apps` serving reviews (v1 and v2 as their own Services) and ratings, with
/// `extra` objects, and a mesh client `apps/curl`.
async fn world(extra: &str) -> World {
    let v1 = echo("apps", "reviews-v1", "reviews-v1").await;
    let v2 = echo("apps", "reviews-v2", "reviews-v2").await;
    let ratings = echo("apps", "ratings", "ratings-1").await;
    let yaml = bound("reviews", "10.96.1.1", v1.addr)
        + &bound("reviews-v1", "10.96.1.2", v1.addr)
        + &bound("reviews-v2", "10.96.1.3", v2.addr)
        + &bound("ratings", "10.96.1.4", ratings.addr)
        + extra;
    let common::mesh::MeshWaypoint { dir, gw, client } =
        common::mesh::mesh_waypoint("apps", &yaml).await;
    World {
        _dir: dir,
        _gw: gw,
        client,
        _backends: vec![v1, v2, ratings],
    }
}

/// A GET through one tunnel; (status, headers, body).
async fn get(
    w: &World,
    dest: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, http::HeaderMap, String) {
    let tunnel = w.client.open(dest.parse().unwrap()).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tunnel))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::get(path).header("host", "reviews");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = send
        .send_request(req.body(Empty::<bytes::Bytes>::new()).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let h = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, h, String::from_utf8_lossy(&body).into_owned())
}

fn pod(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body).unwrap_or_default()["pod"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

const REVIEWS_VS: &str = r#"---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: apps}
spec:
  hosts: [reviews]
  http:
  - name: jason
    match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews-v2}}]
    headers:
      request: {set: {x-route: jason}}
      response: {add: {x-served-by: vs}}
  - name: api
    match: [{uri: {prefix: /api}}]
    rewrite: {uri: /v2api}
    route: [{destination: {host: reviews-v2, port: {number: 9080}}}]
  - name: shadowed
    match: [{uri: {exact: /api-exact}}]
    route: [{destination: {host: reviews-v1}}]
  - name: split
    route:
    - {destination: {host: reviews-v1}, weight: 90}
    - {destination: {host: reviews-v2}, weight: 10, headers: {request: {add: {x-canary: "yes"}}}}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_virtual_service_routes_in_written_order_and_splits_90_10() {
    let w = world(REVIEWS_VS).await;
    // Header match first, with its header edits.
    let (status, h, body) = get(&w, "10.96.1.1:9080", "/x", &[("end-user", "jason")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(pod(&body), "reviews-v2");
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echo["headers"]["X-Route"][0], "jason", "{echo}");
    assert_eq!(h.get("x-served-by").unwrap(), "vs");
    // A character prefix (`/api` matches `/api-exact` too), rewritten: the earlier rule wins
    // over the exact one written after it.
    let (_, _, body) = get(&w, "10.96.1.1:9080", "/api-exact?q=1", &[]).await;
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(pod(&body), "reviews-v2");
    assert_eq!(echo["path"], "/v2api-exact?q=1", "{echo}");
    // The catch-all splits 90/10; the canary gets its header.
    let n = 1000;
    let mut v2 = 0;
    for i in 0..n {
        let (status, _, body) = get(&w, "10.96.1.1:9080", &format!("/split/{i}"), &[]).await;
        assert_eq!(status, 200);
        if pod(&body) == "reviews-v2" {
            v2 += 1;
            assert!(body.contains("X-Canary"), "{body}");
        }
    }
    // 10% of 1,000: σ ≈ 9.5; ±50 is over 5σ.
    assert!((50..=150).contains(&v2), "v2 took {v2} of {n}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_delay_and_abort_their_shares() {
    let logs = captured_logs();
    let w = world(
        r#"---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: apps}
spec:
  hosts: [ratings.apps.svc.cluster.local]
  http:
  - match: [{uri: {prefix: /headers}}]
    fault: {delay: {fixedDelay: 5ms, percentage: {value: 50}}}
    route: [{destination: {host: ratings}}]
  - match: [{uri: {prefix: /abort}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 30}}}
    route: [{destination: {host: ratings}}]
  - match: [{uri: {prefix: /never}}]
    fault: {abort: {httpStatus: 500}}
    route: [{destination: {host: ratings}}]
"#,
    )
    .await;
    let n = 400;
    let mut aborted = 0;
    for i in 0..n {
        let (status, _, body) = get(&w, "10.96.1.4:9080", &format!("/abort/{i}"), &[]).await;
        match status {
            503 => {
                assert_eq!(body, "fault filter abort");
                aborted += 1;
            }
            200 => {}
            s => panic!("status {s}"),
        }
    }
    // 30% of 400: σ ≈ 9.2; ±45 is about 5σ.
    assert!((75..=165).contains(&aborted), "aborted {aborted} of {n}");
    // Without a percentage nothing is faulted.
    for _ in 0..20 {
        assert_eq!(get(&w, "10.96.1.4:9080", "/never", &[]).await.0, 200);
    }
    // Delays are counted by the access log's DI flag, not by the clock.
    for i in 0..n {
        assert_eq!(
            get(&w, "10.96.1.4:9080", &format!("/headers/delay-{i}"), &[])
                .await
                .0,
            200
        );
    }
    // A line is written just after its response, so wait for the last ones.
    let count = |flagged: bool| {
        let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
        text.lines()
            .filter(|l| l.contains("/headers/delay-") && (!flagged || l.contains("flag=\"DI\"")))
            .count()
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while count(false) < n && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(count(false), n, "every delayed-path request is logged once");
    let delayed = count(true);
    // 50% of 400: σ = 10; ±50 is 5σ.
    assert!((150..=250).contains(&delayed), "delayed {delayed} of {n}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_httproute_on_the_same_service_wins_over_a_virtual_service() {
    let w = world(&format!(
        "{REVIEWS_VS}---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: reviews, namespace: apps}}\nspec:\n  parentRefs: [{{group: \"\", kind: Service, name: reviews, port: 9080}}]\n  rules: [{{backendRefs: [{{name: reviews-v1, port: 9080}}]}}]\n"
    ))
    .await;
    let (status, _, body) = get(&w, "10.96.1.1:9080", "/x", &[("end-user", "jason")]).await;
    assert_eq!(status, 200);
    assert_eq!(
        pod(&body),
        "reviews-v1",
        "the HTTPRoute, not the VirtualService"
    );
    let report = w._gw.state().status().report.clone();
    let vs = report
        .objects
        .iter()
        .find(|o| o.kind == "VirtualService" && o.name == "reviews")
        .unwrap();
    // Overridden is reported, not an error: the VirtualService itself is valid.
    let accepted = vs.conditions.get("Accepted").unwrap();
    assert_eq!(
        (accepted.status.as_str(), accepted.reason.as_str()),
        ("True", "Overridden")
    );
    assert!(
        accepted.message.contains("HTTPRoute apps/reviews serve it"),
        "{}",
        accepted.message
    );
    // `/config_dump` (the Snapshot) says which routes serve the host and what was set aside.
    let dump = serde_json::to_value(&*w._gw.state().snapshot()).unwrap();
    let notes = dump["precedence"].as_array().cloned().unwrap_or_default();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["host"], "reviews.apps.svc.cluster.local");
    assert_eq!(notes[0]["at"], "waypoint apps/waypoint port 9080");
    assert_eq!(notes[0]["applied"][0], "HTTPRoute apps/reviews");
    assert_eq!(notes[0]["ignored"], "apps/reviews");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_namespace_and_scheme_are_checked_per_caller_vs_3() {
    let w = world(
        r#"---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: apps}
spec:
  hosts: [ratings]
  http:
  - match: [{sourceNamespace: other}]
    route: [{destination: {host: reviews-v2}}]
  - match: [{sourceNamespace: apps, uri: {prefix: /mine}}]
    route: [{destination: {host: reviews-v1}}]
  - match: [{scheme: {exact: https}, uri: {prefix: /secure}}]
    directResponse: {status: 200, body: {string: "sender said https"}}
  - match: [{uri: {prefix: /secure}}]
    directResponse: {status: 200, body: {string: "plain http"}}
  - route: [{destination: {host: ratings}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: labelled, namespace: apps}
spec:
  hosts: [reviews-v2]
  http:
  - match: [{sourceLabels: {app: curl}}]
    route: [{destination: {host: reviews-v1}}]
  tcp:
  - route: [{destination: {host: reviews-v1}}]
"#,
    )
    .await;
    // The caller is `apps/curl`: the `other` route never takes it, the `apps` one does.
    let (_, _, body) = get(&w, "10.96.1.4:9080", "/mine/x", &[]).await;
    assert_eq!(pod(&body), "reviews-v1", "{body}");
    let (_, _, body) = get(&w, "10.96.1.4:9080", "/x", &[]).await;
    assert_eq!(pod(&body), "ratings-1", "{body}");
    // Inside the tunnel the scheme is the mesh sender's x-forwarded-proto, else plain http
    // (the tunnel's own mTLS is not the request's scheme).
    let (_, _, body) = get(
        &w,
        "10.96.1.4:9080",
        "/secure",
        &[("x-forwarded-proto", "https")],
    )
    .await;
    assert_eq!(body, "sender said https");
    let (_, _, body) = get(&w, "10.96.1.4:9080", "/secure", &[]).await;
    assert_eq!(body, "plain http");
    // sourceLabels and tcp routes are not supported: named in the status; the match is skipped.
    let report = w._gw.state().status().report.clone();
    let labelled = report
        .objects
        .iter()
        .find(|o| o.kind == "VirtualService" && o.name == "labelled")
        .unwrap();
    let accepted = labelled.conditions.get("Accepted").unwrap();
    assert_eq!(accepted.status, "False");
    assert!(
        accepted
            .message
            .contains("spec.http[0].match[0].sourceLabels: not supported"),
        "{}",
        accepted.message
    );
    assert!(
        accepted.message.contains("spec.tcp: not supported"),
        "{}",
        accepted.message
    );
    let (_, _, body) = get(&w, "10.96.1.3:9080", "/", &[]).await;
    assert_ne!(pod(&body), "reviews-v1", "{body}");
}
