//! Issue 4's combined check: one rule with a mirror, a header modifier, a URL rewrite and a 70/30
//! split, exercised with 1,000 requests.

mod common;

use common::*;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_modifier_rewrite_and_split_together_hf_1_hf_3_hf_4_hb_1() {
    let a = echo("apps", "a", "a-pod").await;
    let b = echo("apps", "b", "b-pod").await;
    let shadow = echo("apps", "shadow", "shadow-pod").await;
    let yaml = gateway_yaml()
        + &service_yaml("apps", "a", &[a.addr])
        + &service_yaml("apps", "b", &[b.addr])
        + &service_yaml("apps", "shadow", &[shadow.addr])
        + r#"---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /shop}}]
    filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: shadow, port: 8080}}
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-route, value: shop}]}
    - type: URLRewrite
      urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /store}}
    backendRefs:
    - {name: a, port: 8080, weight: 70}
    - {name: b, port: 8080, weight: 30}
"#;
    let gw = start_inline(yaml).await;
    let addr = gw_addr(&gw);
    let c = client();
    let n = 1_000u64;
    let (mut to_a, mut to_b) = (0u64, 0u64);
    for i in 0..n {
        let r = send(
            &c,
            addr,
            "GET",
            "shop.example.com",
            &format!("/shop/item/{i}?q=1"),
            &[],
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(
            r.json()["path"],
            format!("/store/item/{i}?q=1"),
            "[HF-3] prefix rewritten, query kept"
        );
        assert_eq!(r.seen_header("x-route").as_deref(), Some("shop"), "[HF-1]");
        match r.pod().as_str() {
            "a-pod" => to_a += 1,
            "b-pod" => to_b += 1,
            other => panic!("unexpected backend {other}"),
        }
    }
    // [HB-1] 70/30 within ±5 points: more than 3 standard deviations for 1,000 draws.
    let share_a = to_a as f64 / n as f64;
    assert!((0.65..=0.75).contains(&share_a), "a got {to_a} of {n}");
    assert_eq!(to_a + to_b, n);
    // [HF-4] every request is mirrored; copies are fire-and-forget, so wait (bounded) for them.
    let deadline = Instant::now() + Duration::from_secs(10);
    while shadow.request_count() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        shadow.request_count(),
        n,
        "every request reached the mirror"
    );
}
