//! DestinationRule traffic policy end to end ([DR-1], [DR-3], [DR-4], [DR-5]): subsets chosen by
//! Pod labels through a VirtualService at the waypoint, consistent-hash stickiness, the
//! connection-pool limit answering 503 `UO`, and outlier detection ejecting a failing endpoint
//! (and keeping it ejected across a hot reload).

mod common;

use common::*;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;

/// Service `apps/reviews` (VIP 10.96.1.1, port 9080) bound to the waypoint, one endpoint per
/// pod, each endpoint's `targetRef` naming a Pod labelled `version: <v>`.
fn reviews(pods: &[(&str, &str, SocketAddr)]) -> String {
    let mut out = "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: reviews\n  namespace: apps\n  labels: {istio.io/use-waypoint: waypoint}\nspec:\n  clusterIP: 10.96.1.1\n  ports: [{name: http, port: 9080}]\n".to_string();
    for (i, (pod, version, addr)) in pods.iter().enumerate() {
        out.push_str(&format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}, namespace: apps, labels: {{app: reviews, version: {version}}}}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: reviews-{i}, namespace: apps, labels: {{kubernetes.io/service-name: reviews}}}}\naddressType: IPv4\nports: [{{name: http, port: {}}}]\nendpoints: [{{addresses: [\"{}\"], targetRef: {{kind: Pod, name: {pod}}}}}]\n",
            addr.port(),
            addr.ip()
        ));
    }
    out
}

/// A waypoint `apps/waypoint` serving `yaml`, and a mesh client `apps/curl` tunnelling to it.
async fn waypoint(yaml: String) -> common::mesh::MeshWaypoint {
    common::mesh::mesh_waypoint("apps", &yaml).await
}

/// A GET to `reviews` through one tunnel; (status, body).
async fn tunnel_get(
    w: &common::mesh::MeshWaypoint,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let tunnel = w
        .client
        .open("10.96.1.1:9080".parse().unwrap())
        .await
        .unwrap();
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
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn pod_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body).unwrap_or_default()["pod"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

const SUBSETS: &str = r#"---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: apps}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
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
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_virtual_service_subset_sends_to_the_pods_with_its_labels_dr_1() {
    let v1 = echo("apps", "reviews", "reviews-v1").await;
    let v2a = echo("apps", "reviews", "reviews-v2a").await;
    let v2b = echo("apps", "reviews", "reviews-v2b").await;
    let w = waypoint(
        reviews(&[
            ("reviews-v1", "v1", v1.addr),
            ("reviews-v2a", "v2", v2a.addr),
            ("reviews-v2b", "v2", v2b.addr),
        ]) + SUBSETS,
    )
    .await;
    for i in 0..10 {
        let (status, body) = tunnel_get(&w, &format!("/p/{i}"), &[]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(pod_of(&body), "reviews-v1");
    }
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..10 {
        let (status, body) = tunnel_get(&w, "/p", &[("end-user", "jason")]).await;
        assert_eq!(status, 200, "{body}");
        seen.insert(pod_of(&body));
    }
    // Round robin over the subset's two endpoints, never the v1 pod.
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        vec!["reviews-v2a".to_string(), "reviews-v2b".to_string()]
    );
    // A subset no DestinationRule defines: no healthy upstream, as Istio answers.
    let (status, body) = tunnel_get(&w, "/v3", &[]).await;
    assert_eq!((status, body.as_str()), (503, "no healthy upstream"));
    drop((v1, v2a, v2b));
}

/// A DestinationRule `apps/<name>` for Service `apps/<host>` with `policy` as its spec's
/// `trafficPolicy` (flow YAML).
fn rule(name: &str, host: &str, policy: &str) -> String {
    format!(
        "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, namespace: apps}}\nspec:\n  host: {host}\n  trafficPolicy: {policy}\n"
    )
}

/// An HTTPRoute sending `/<svc>` to Service `apps/<svc>` port 8080.
fn route_to(svc: &str) -> String {
    route(
        "apps",
        svc,
        &format!(
            "  rules:\n  - matches: [{{path: {{type: PathPrefix, value: /{svc}}}}}]\n    backendRefs: [{{name: {svc}, port: 8080}}]\n"
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_hash_cookie_keeps_a_client_on_its_first_endpoint_dr_5() {
    let pods = [
        echo("apps", "web", "web-1").await,
        echo("apps", "web", "web-2").await,
        echo("apps", "web", "web-3").await,
    ];
    let addrs: Vec<SocketAddr> = pods.iter().map(|p| p.addr).collect();
    let gw = start_inline(
        gateway_yaml()
            + &service_yaml("apps", "web", &addrs)
            + &route_to("web")
            + &rule(
                "web",
                "web",
                "{loadBalancer: {consistentHash: {httpCookie: {name: affinity, path: /web, ttl: 60s}}}}",
            ),
    )
    .await;
    let addr = gw_addr(&gw);
    let c = client();
    let mut homes = std::collections::BTreeSet::new();
    for _ in 0..12 {
        // A new client: no cookie, so one is generated for the endpoint it lands on.
        let first = send(&c, addr, "GET", "shop", "/web", &[]).await.unwrap();
        assert_eq!(first.status, 200, "{}", first.body);
        let set = first
            .headers
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no Set-Cookie: {:?}", first.headers))
            .to_string();
        assert!(
            set.starts_with("affinity=") && set.contains("; Path=/web; Max-Age=60; HttpOnly"),
            "{set}"
        );
        let pair = set.split(';').next().unwrap().to_string();
        for _ in 0..4 {
            let r = send(&c, addr, "GET", "shop", "/web", &[("cookie", &pair)])
                .await
                .unwrap();
            assert_eq!(r.pod(), first.pod(), "{pair} moved");
            assert!(
                r.headers.get("set-cookie").is_none(),
                "a cookie only when missing"
            );
        }
        homes.insert(first.pod());
    }
    // 12 new clients over 3 endpoints all landing on one: (1/3)^11 — cookies really spread.
    assert!(homes.len() > 1, "every client went to {homes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_on_a_header_keeps_each_user_on_one_endpoint_dr_5() {
    let pods = [
        echo("apps", "web", "web-1").await,
        echo("apps", "web", "web-2").await,
        echo("apps", "web", "web-3").await,
    ];
    let addrs: Vec<SocketAddr> = pods.iter().map(|p| p.addr).collect();
    let gw = start_inline(
        gateway_yaml()
            + &service_yaml("apps", "web", &addrs)
            + &route_to("web")
            + &rule(
                "web",
                "web",
                "{loadBalancer: {consistentHash: {httpHeaderName: x-user}}}",
            ),
    )
    .await;
    let addr = gw_addr(&gw);
    let c = client();
    let mut homes = std::collections::BTreeSet::new();
    for u in 0..20 {
        let user = format!("user-{u}");
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..5 {
            let r = send(&c, addr, "GET", "shop", "/web", &[("x-user", &user)])
                .await
                .unwrap();
            assert_eq!(r.status, 200, "{}", r.body);
            seen.insert(r.pod());
        }
        assert_eq!(seen.len(), 1, "{user} moved between {seen:?}");
        homes.extend(seen);
    }
    // 20 users over 3 endpoints all hashing to one: (1/3)^19 — the keys really spread.
    assert!(homes.len() > 1, "every user went to {homes:?}");
    // The effective policy is in /config_dump.
    let dump = admin_get(&gw, "/config_dump").await.json();
    let cluster = dump["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "outbound|8080||web.apps.svc.cluster.local")
        .cloned()
        .unwrap();
    assert_eq!(
        cluster["policy"]["loadBalancer"],
        serde_json::json!({"CONSISTENT_HASH": {"header": "x-user"}}),
        "{cluster}"
    );
    assert_eq!(cluster["policy"]["source"], "DestinationRule apps/web");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_connection_pool_limit_answers_503_uo_dr_3() {
    captured_logs();
    // The first request is held for a while (a bound, not a measurement): while it is in
    // flight the cluster is at its limit of one.
    let slow = Recorder::start(|n| Answer {
        status: 200,
        delay: std::time::Duration::from_secs(if n == 0 { 5 } else { 0 }),
    })
    .await;
    let gw = start_inline(
        gateway_yaml()
            + &service_yaml("apps", "slow", &[slow.addr])
            + &route_to("slow")
            + &rule(
                "slow",
                "slow.apps.svc.cluster.local",
                "{connectionPool: {http: {http2MaxRequests: 1, maxRequestsPerConnection: 1}}}",
            ),
    )
    .await;
    let addr = gw_addr(&gw);
    let first = tokio::spawn(async move { get(addr, "shop", "/slow/held").await });
    slow.wait_for(1).await;
    assert_eq!(slow.count(), 1, "the first request must be in flight");
    let second = get(addr, "shop", "/slow/overflow").await;
    assert_eq!(second.status, 503);
    assert_eq!(
        second.body,
        "upstream connect error or disconnect/reset before headers. reset reason: overflow"
    );
    let line = log_line_with(&["/slow/overflow", "flag=\"UO\""]).await;
    assert!(line.is_some(), "no access-log line with flag UO");
    assert_eq!(first.await.unwrap().status, 200);
    // Once the first is done there is room again.
    assert_eq!(get(addr, "shop", "/slow/after").await.status, 200);
    assert_eq!(
        slow.count(),
        2,
        "the refused request never reached the upstream"
    );
    // maxRequestsPerConnection 1: every upstream request asks for its connection to close.
    for r in slow.requests() {
        assert_eq!(
            r.headers.get("connection").map(|v| v.as_bytes()),
            Some(&b"close"[..]),
            "{}",
            r.path
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_is_ejected_after_consecutive_5xx_dr_4() {
    let bad = Recorder::start(|_| Answer::status(500)).await;
    let good = echo("apps", "api", "api-good").await;
    let gw = start_inline(
        gateway_yaml()
            + &service_yaml("apps", "api", &[bad.addr, good.addr])
            + &route_to("api")
            // The default maxEjectionPercent (10) still lets one of two endpoints go.
            + &rule(
                "api",
                "api",
                "{outlierDetection: {consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 5m}}",
            ),
    )
    .await;
    let addr = gw_addr(&gw);
    let c = client();
    let mut errors = 0;
    // Round robin: within six requests the bad endpoint has failed three times in a row.
    for i in 0..6 {
        let r = send(&c, addr, "GET", "shop", &format!("/api/{i}"), &[])
            .await
            .unwrap();
        if r.status == 500 {
            errors += 1;
        } else {
            assert_eq!(r.pod(), "api-good");
        }
    }
    assert_eq!((errors, bad.count()), (3, 3));
    // Ejected: everything goes to the good endpoint now.
    for i in 0..20 {
        let r = send(&c, addr, "GET", "shop", &format!("/api/after-{i}"), &[])
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.pod(), "api-good");
    }
    assert_eq!(bad.count(), 3, "an ejected endpoint gets no requests");
    // A hot reload builds a new Snapshot; the unchanged endpoint stays ejected.
    let generation = gw.state().status().generation;
    gw.reload().await.unwrap();
    assert_eq!(gw.state().status().generation, generation + 1);
    for i in 0..10 {
        let r = send(&c, addr, "GET", "shop", &format!("/api/reloaded-{i}"), &[])
            .await
            .unwrap();
        assert_eq!(r.pod(), "api-good", "{}", r.body);
    }
    assert_eq!(bad.count(), 3, "the ejection survived the reload");
}
