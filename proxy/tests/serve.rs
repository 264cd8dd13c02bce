//! The data plane end to end: real listeners on loopback, real echo backends, a real HTTP client.

mod common;

use common::*;

#[tokio::test]
async fn routes_by_host_and_path_preserving_host_hr_7_hr_9() {
    let v1 = echo("apps", "v1", "v1-pod-a").await;
    let v2 = echo("apps", "v2", "v2-pod-a").await;
    let yaml = gateway_yaml()
        + &service_yaml("apps", "v1", &[v1.addr])
        + &service_yaml("apps", "v2", &[v2.addr])
        + &route(
            "apps",
            "r",
            r#"  hostnames: [app.example.com]
  rules:
  - matches: [{path: {type: Exact, value: /exact}}]
    backendRefs: [{name: v2, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /v2}}]
    backendRefs: [{name: v2, port: 8080}]
  - backendRefs: [{name: v1, port: 8080}]
"#,
        );
    let gw = start_inline(yaml).await;
    let addr = gw_addr(&gw);

    let r = get(addr, "app.example.com", "/exact").await;
    assert_eq!((r.status, r.pod().as_str()), (200, "v2-pod-a"));
    let r = get(addr, "app.example.com", "/exact/more").await;
    assert_eq!(r.pod(), "v1-pod-a", "Exact does not match a longer path");
    let r = get(addr, "app.example.com", "/v2/x?q=1").await;
    assert_eq!(r.pod(), "v2-pod-a");
    assert_eq!(r.json()["path"], "/v2/x?q=1");
    let r = get(addr, "app.example.com", "/v2x").await;
    assert_eq!(r.pod(), "v1-pod-a", "PathPrefix is segment-wise");
    let r = get(addr, "APP.example.com:80", "/").await;
    assert_eq!(r.status, 200, "host match ignores case and port");
    assert_eq!(
        r.json()["host"],
        "APP.example.com:80",
        "Host is forwarded unchanged"
    );
    assert_eq!(
        r.seen_header("x-forwarded-for").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(r.seen_header("x-forwarded-proto").as_deref(), Some("http"));

    let r = get(addr, "other.example.com", "/").await;
    assert_eq!((r.status, r.body.as_str()), (404, ""));
}

#[tokio::test]
async fn header_modifier_and_redirect_hf_1_hf_2() {
    let v1 = echo("apps", "v1", "v1-pod-a").await;
    let yaml = gateway_yaml()
        + &service_yaml("apps", "v1", &[v1.addr])
        + &route(
            "apps",
            "r",
            r#"  rules:
  - matches: [{path: {value: /mod}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: X-Set, value: set}]
        add: [{name: X-Add, value: added}]
        remove: [X-Remove]
    backendRefs: [{name: v1, port: 8080}]
  - matches: [{path: {value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {hostname: new.example.com, statusCode: 301}
"#,
        );
    let gw = start_inline(yaml).await;
    let addr = gw_addr(&gw);
    let c = client();
    let r = send(
        &c,
        addr,
        "GET",
        "a.io",
        "/mod",
        &[("x-set", "orig"), ("x-add", "first"), ("x-remove", "gone")],
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.seen_header("x-set").as_deref(), Some("set"));
    assert_eq!(r.seen_header("x-add").as_deref(), Some("first,added"));
    assert_eq!(r.seen_header("x-remove"), None);

    let r = get(addr, "a.io:80", "/old/page?x=1").await;
    assert_eq!(r.status, 301);
    assert_eq!(r.headers["location"], "http://new.example.com/old/page?x=1");
}

#[tokio::test]
async fn balances_across_ready_endpoints_and_skips_not_ready() {
    let a = echo("apps", "v1", "v1-pod-a").await;
    let b = echo("apps", "v1", "v1-pod-b").await;
    let down = echo("apps", "v1", "v1-pod-notready").await;
    let mut yaml = gateway_yaml() + &service_yaml("apps", "v1", &[a.addr, b.addr]);
    yaml += &format!(
        "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: v1-nr, namespace: apps, labels: {{kubernetes.io/service-name: v1}}}}\nports: [{{name: http, port: {}}}]\nendpoints:\n- addresses: [\"127.0.0.1\"]\n  conditions: {{ready: false}}\n",
        down.addr.port()
    );
    yaml += &route(
        "apps",
        "r",
        "  rules:\n  - backendRefs: [{name: v1, port: 8080}]\n",
    );
    let gw = start_inline(yaml).await;
    let addr = gw_addr(&gw);
    let c = client();
    for _ in 0..40 {
        assert_eq!(
            send(&c, addr, "GET", "a.io", "/", &[])
                .await
                .unwrap()
                .status,
            200
        );
    }
    assert_eq!(
        a.request_count(),
        20,
        "round-robin over two ready endpoints"
    );
    assert_eq!(b.request_count(), 20);
    assert_eq!(down.request_count(), 0, "a not-ready endpoint gets nothing");
}

#[tokio::test]
async fn weights_zero_and_invalid_backend_share_hb_1_hb_2() {
    let v1 = echo("apps", "v1", "v1-pod-a").await;
    let v2 = echo("apps", "v2", "v2-pod-a").await;
    let yaml = gateway_yaml()
        + &service_yaml("apps", "v1", &[v1.addr])
        + &service_yaml("apps", "v2", &[v2.addr])
        + &route(
            "apps",
            "r",
            r#"  rules:
  - matches: [{path: {value: /zero}}]
    backendRefs: [{name: v1, port: 8080, weight: 1}, {name: v2, port: 8080, weight: 0}]
  - matches: [{path: {value: /half}}]
    backendRefs: [{name: v1, port: 8080}, {name: missing, port: 8080}]
"#,
        );
    let gw = start_inline(yaml).await;
    let addr = gw_addr(&gw);
    let c = client();
    for _ in 0..100 {
        send(&c, addr, "GET", "a.io", "/zero", &[]).await.unwrap();
    }
    assert_eq!(v2.request_count(), 0, "weight 0 is never chosen");
    let mut errors = 0;
    let n = 400;
    for _ in 0..n {
        let r = send(&c, addr, "GET", "a.io", "/half", &[]).await.unwrap();
        match r.status {
            500 => errors += 1,
            200 => {}
            s => panic!("unexpected status {s}"),
        }
    }
    // 50% ± 15 points: far outside what chance produces for 400 draws, far inside a broken split.
    assert!(
        (140..=260).contains(&errors),
        "invalid backend share answered 500 {errors}/{n} times"
    );
    let status = admin_get(&gw, "/status").await.json();
    let route = status
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "HTTPRoute")
        .unwrap();
    let resolved = route["parents"][0]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "ResolvedRefs")
        .unwrap();
    assert_eq!(resolved["status"], "False");
    assert_eq!(resolved["reason"], "BackendNotFound");
}

#[tokio::test]
async fn no_endpoints_and_connect_failure_answer_503() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let yaml = gateway_yaml()
        + &service_yaml("apps", "empty", &[])
        + &service_yaml("apps", "dead", &[closed])
        + &route(
            "apps",
            "r",
            r#"  rules:
  - matches: [{path: {value: /empty}}]
    backendRefs: [{name: empty, port: 8080}]
  - matches: [{path: {value: /dead}}]
    backendRefs: [{name: dead, port: 8080}]
"#,
        );
    let gw = start_inline(yaml).await;
    let addr = gw_addr(&gw);
    let r = get(addr, "a.io", "/empty").await;
    assert_eq!((r.status, r.body.as_str()), (503, "no healthy upstream"));
    let r = get(addr, "a.io", "/dead").await;
    assert_eq!(r.status, 503);
    assert!(r.body.contains("connection failure"), "{}", r.body);
}

#[tokio::test]
async fn h2c_prior_knowledge_downstream() {
    let v1 = echo("apps", "v1", "v1-pod-a").await;
    let yaml = gateway_yaml()
        + &service_yaml("apps", "v1", &[v1.addr])
        + &route(
            "apps",
            "r",
            "  hostnames: [h2.example.com]\n  rules:\n  - backendRefs: [{name: v1, port: 8080}]\n",
        );
    let gw = start_inline(yaml).await;
    let addr = gw_addr(&gw);
    let req = http::Request::builder()
        .uri(format!("http://h2.example.com:{}/x", addr.port()))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    // Connect to our port but present h2.example.com as the authority.
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    use http_body_util::BodyExt;
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["pod"], "v1-pod-a");
    assert_eq!(json["host"], format!("h2.example.com:{}", addr.port()));
}

#[tokio::test]
async fn admin_ready_status_config_dump_and_explain() {
    let v1 = echo("apps", "v1", "v1-pod-a").await;
    let yaml = gateway_yaml()
        + &service_yaml("apps", "v1", &[v1.addr])
        + &route(
            "apps",
            "r",
            r#"  hostnames: [shop.example.com]
  rules:
  - matches: [{path: {value: /api}, headers: [{name: x-v, value: "2"}]}]
    backendRefs: [{name: v1, port: 8080}]
  - matches: [{path: {value: /}}]
    backendRefs: [{name: v1, port: 8080}]
"#,
        );
    let gw = start_inline(yaml).await;
    assert_eq!(admin_get(&gw, "/ready").await.status, 200);
    let status = admin_get(&gw, "/status").await.json();
    let kinds: Vec<&str> = status
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["Config", "Gateway", "HTTPRoute"]);
    let gw_status = &status[1];
    assert_eq!(gw_status["listeners"][0]["name"], "http");
    assert_eq!(gw_status["listeners"][0]["attachedRoutes"], 1);
    let dump = admin_get(&gw, "/config_dump").await.json();
    assert_eq!(
        dump["gateways"][0]["ports"][0]["listeners"][0]["routes"]["virtualHosts"][0]["hostname"],
        "shop.example.com"
    );
    let explain = admin_get(
        &gw,
        "/explain?gateway=infra/gw&listener=http&request=GET+http://shop.example.com/api/items",
    )
    .await;
    assert_eq!(explain.status, 200);
    assert!(explain.body.contains("rule 1 match 0"), "{}", explain.body);
    assert!(
        explain.body.contains("header x-v did not match"),
        "{}",
        explain.body
    );
}
