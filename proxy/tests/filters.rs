//! HTTPRoute extended filters end to end: URLRewrite, RequestMirror, CORS and backend-level
//! filters, with real listeners, real backends and real clients on loopback. Timeouts and retries
//! are in `timeouts_retries.rs`.

mod common;

use common::*;
use std::time::Duration;

#[tokio::test]
async fn url_rewrite_hostname_and_path_hf_3() {
    let v1 = echo("apps", "v1", "v1-pod-a").await;
    let yaml = gateway_yaml()
        + &service_yaml("apps", "v1", &[v1.addr])
        + &route(
            "apps",
            "r",
            r#"  rules:
  - matches: [{path: {value: /prefix/one}}]
    filters:
    - type: URLRewrite
      urlRewrite:
        hostname: one.example.org
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /one}
    backendRefs: [{name: v1, port: 8080}]
  - matches: [{path: {value: /full}}]
    filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /replaced}}
    backendRefs: [{name: v1, port: 8080}]
  - matches: [{path: {value: /strip}}]
    filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}
    backendRefs: [{name: v1, port: 8080}]
"#,
        );
    let gw = start_inline(yaml).await;
    let addr = gw_addr(&gw);

    // [HF-3] hostname replaces the upstream Host; the matched prefix is swapped; query kept.
    let r = get(addr, "a.io", "/prefix/one/two?q=1").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["host"], "one.example.org");
    assert_eq!(r.json()["path"], "/one/two?q=1");
    let r = get(addr, "a.io", "/prefix/one").await;
    assert_eq!(r.json()["path"], "/one");
    // [HF-3] ReplaceFullPath replaces the whole path; Host is forwarded unchanged ([HR-5]).
    let r = get(addr, "a.io", "/full/deep/path?x=y").await;
    assert_eq!(r.json()["path"], "/replaced?x=y");
    assert_eq!(r.json()["host"], "a.io");
    // [HF-3] `/strip/three` with prefix `/strip` and replacement `/` → `/three`.
    let r = get(addr, "a.io", "/strip/three").await;
    assert_eq!(r.json()["path"], "/three");
    let r = get(addr, "a.io", "/strip").await;
    assert_eq!(r.json()["path"], "/");
}

#[tokio::test]
async fn url_rewrite_hostname_over_h2c_hf_3() {
    // [HF-3] an HTTP/2 request carries :authority, not Host; the rewrite must still win.
    let v1 = echo("apps", "v1", "v1-pod-a").await;
    let yaml = gateway_yaml()
        + &service_yaml("apps", "v1", &[v1.addr])
        + &route(
            "apps",
            "r",
            r#"  rules:
  - filters:
    - type: URLRewrite
      urlRewrite: {hostname: rewritten.example.org, path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}
    backendRefs: [{name: v1, port: 8080}]
"#,
        );
    let gw = start_inline(yaml).await;
    let addr = gw_addr(&gw);
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri(format!("http://h2.example.com:{}/old", addr.port()))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    use http_body_util::BodyExt;
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["host"], "rewritten.example.org");
    assert_eq!(json["path"], "/new/old");
}

#[tokio::test]
async fn backend_filters_run_only_for_their_backend_hf_0() {
    // [HF-0] filters on a backendRef run only when that backend is chosen: request and response
    // header modifiers and URLRewrite.
    let v1 = echo("apps", "v1", "v1-pod-a").await;
    let v2 = echo("apps", "v2", "v2-pod-a").await;
    let yaml = gateway_yaml()
        + &service_yaml("apps", "v1", &[v1.addr])
        + &service_yaml("apps", "v2", &[v2.addr])
        + &route(
            "apps",
            "r",
            r#"  rules:
  - matches: [{path: {value: /split}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-rule, value: rule}]}
    backendRefs:
    - name: v1
      port: 8080
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier: {set: [{name: x-backend, value: v1}]}
      - type: ResponseHeaderModifier
        responseHeaderModifier: {add: [{name: x-served-by, value: v1}]}
      - type: URLRewrite
        urlRewrite: {hostname: v1.example.org}
    - name: v2
      port: 8080
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier: {set: [{name: x-backend, value: v2}]}
      - type: ResponseHeaderModifier
        responseHeaderModifier: {add: [{name: x-served-by, value: v2}]}
      - type: URLRewrite
        urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2-only}}
"#,
        );
    let gw = start_inline(yaml).await;
    let addr = gw_addr(&gw);
    let c = client();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let r = send(&c, addr, "GET", "a.io", "/split/x", &[])
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        let pod = r.pod();
        assert_eq!(r.seen_header("x-rule").as_deref(), Some("rule"));
        match pod.as_str() {
            "v1-pod-a" => {
                assert_eq!(r.seen_header("x-backend").as_deref(), Some("v1"));
                assert_eq!(r.headers["x-served-by"], "v1");
                assert_eq!(r.json()["host"], "v1.example.org");
                assert_eq!(r.json()["path"], "/split/x");
            }
            "v2-pod-a" => {
                assert_eq!(r.seen_header("x-backend").as_deref(), Some("v2"));
                assert_eq!(r.headers["x-served-by"], "v2");
                assert_eq!(r.json()["host"], "a.io");
                assert_eq!(r.json()["path"], "/v2-only/x");
            }
            other => panic!("unexpected pod {other}"),
        }
        seen.insert(pod);
    }
    assert_eq!(seen.len(), 2, "both backends were chosen at least once");
}

#[tokio::test]
async fn url_rewrite_with_redirect_is_incompatible_hf_0() {
    // [HF-0] URLRewrite with RequestRedirect in one rule: the rule is dropped, IncompatibleFilters.
    let v1 = echo("apps", "v1", "v1-pod-a").await;
    let yaml = gateway_yaml()
        + &service_yaml("apps", "v1", &[v1.addr])
        + &route(
            "apps",
            "bad",
            r#"  rules:
  - filters:
    - type: RequestRedirect
      requestRedirect: {hostname: x.io}
    - type: URLRewrite
      urlRewrite: {hostname: y.io}
"#,
        );
    let gw = start_inline(yaml).await;
    let (status, reason) = route_condition(&gw, "apps", "bad", "Accepted").await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "IncompatibleFilters")
    );
    assert_eq!(get(gw_addr(&gw), "a.io", "/").await.status, 404);
}

#[tokio::test]
async fn mirror_copies_method_path_headers_and_body_hf_4() {
    let v1 = echo("apps", "v1", "v1-pod-a").await;
    let mirror = Recorder::start(|_| Answer::status(200)).await;
    let second = Recorder::start(|_| Answer::status(500)).await;
    let yaml = gateway_yaml()
        + &service_yaml("apps", "v1", &[v1.addr])
        + &service_yaml("apps", "mirror", &[mirror.addr])
        + &service_yaml("apps", "second", &[second.addr])
        + &route(
            "apps",
            "r",
            r#"  rules:
  - matches: [{path: {value: /mirror}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-modified, value: "yes"}]}
    - type: URLRewrite
      urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /rewritten}}
    - type: RequestMirror
      requestMirror: {backendRef: {name: mirror, port: 8080}}
    - type: RequestMirror
      requestMirror: {backendRef: {name: second, port: 8080}, fraction: {numerator: 1, denominator: 1}}
    backendRefs: [{name: v1, port: 8080}]
"#,
        );
    let gw = start_inline(yaml).await;
    let addr = gw_addr(&gw);

    // [HF-4] the primary answers as if there were no mirror (the mirrors' 500 is dropped).
    let r = send(
        &client(),
        addr,
        "GET",
        "a.io",
        "/mirror/a?q=1",
        &[("x-test", "t")],
    )
    .await
    .unwrap();
    assert_eq!((r.status, r.pod().as_str()), (200, "v1-pod-a"));
    let got = mirror.wait_for(1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].method, "GET");
    assert_eq!(got[0].path, "/rewritten/a?q=1", "the path after URLRewrite");
    assert_eq!(got[0].headers["x-test"], "t");
    assert_eq!(
        got[0].headers["x-modified"], "yes",
        "after header modifiers"
    );
    assert_eq!(got[0].headers["host"], "a.io-shadow");
    assert!(got[0].body.is_empty());
    // [HF-4] multiple mirrors are allowed: the second one got its copy too.
    assert_eq!(second.wait_for(1).await.len(), 1);

    // A request with a (small) body is copied with its body.
    let r = send_body(
        &body_client(),
        addr,
        "POST",
        "a.io",
        "/mirror/p",
        &[],
        "hello mirror",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    let got = mirror.wait_for(2).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].method, "POST");
    assert_eq!(got[1].path, "/rewritten/p");
    assert_eq!(&got[1].body[..], b"hello mirror");
    assert_eq!(got[1].headers["content-length"], "12");
}

#[tokio::test]
async fn mirror_percent_samples_requests_hf_4() {
    // [HF-4] percent 0 mirrors nothing; 100 (fraction 1/1 here) mirrors everything.
    let v1 = echo("apps", "v1", "v1-pod-a").await;
    let never = Recorder::start(|_| Answer::status(200)).await;
    let always = Recorder::start(|_| Answer::status(200)).await;
    let yaml = gateway_yaml()
        + &service_yaml("apps", "v1", &[v1.addr])
        + &service_yaml("apps", "never", &[never.addr])
        + &service_yaml("apps", "always", &[always.addr])
        + &route(
            "apps",
            "r",
            r#"  rules:
  - filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: never, port: 8080}, percent: 0}
    - type: RequestMirror
      requestMirror: {backendRef: {name: always, port: 8080}, fraction: {numerator: 1, denominator: 1}}
    backendRefs: [{name: v1, port: 8080}]
"#,
        );
    let gw = start_inline(yaml).await;
    let addr = gw_addr(&gw);
    let c = client();
    for _ in 0..20 {
        assert_eq!(
            send(&c, addr, "GET", "a.io", "/", &[])
                .await
                .unwrap()
                .status,
            200
        );
    }
    assert_eq!(always.wait_for(20).await.len(), 20);
    assert_eq!(never.count(), 0);
}

#[tokio::test]
async fn slow_or_missing_mirror_never_affects_the_primary_hf_4() {
    let v1 = echo("apps", "v1", "v1-pod-a").await;
    // A mirror that takes far longer than the primary's whole-request timeout.
    let slow = Recorder::start(|_| Answer {
        status: 200,
        delay: Duration::from_secs(20),
    })
    .await;
    let yaml = gateway_yaml()
        + &service_yaml("apps", "v1", &[v1.addr])
        + &service_yaml("apps", "slow", &[slow.addr])
        + &route(
            "apps",
            "slow",
            r#"  rules:
  - matches: [{path: {value: /slow}}]
    timeouts: {request: 2s}
    filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: slow, port: 8080}}
    backendRefs: [{name: v1, port: 8080}]
"#,
        )
        + &route(
            "apps",
            "missing",
            r#"  rules:
  - matches: [{path: {value: /missing}}]
    filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: nowhere, port: 8080}}
    backendRefs: [{name: v1, port: 8080}]
"#,
        );
    let gw = start_inline(yaml).await;
    let addr = gw_addr(&gw);
    // [HF-4] the mirror must never delay the primary: had it waited for the mirror, the 2 s
    // request timeout would have answered 504.
    for _ in 0..3 {
        let r = get(addr, "a.io", "/slow").await;
        assert_eq!((r.status, r.pod().as_str()), (200, "v1-pod-a"));
    }
    assert_eq!(slow.wait_for(3).await.len(), 3);
    // [HF-4] an unresolvable mirror: ResolvedRefs=False, not configured, primary keeps working.
    let (status, reason) = route_condition(&gw, "apps", "missing", "ResolvedRefs").await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "BackendNotFound")
    );
    let (accepted, _) = route_condition(&gw, "apps", "missing", "Accepted").await;
    assert_eq!(accepted, "True");
    let r = get(addr, "a.io", "/missing").await;
    assert_eq!((r.status, r.pod().as_str()), (200, "v1-pod-a"));
}

fn cors_routes() -> String {
    route(
        "apps",
        "cors",
        r#"  rules:
  - matches: [{path: {value: /cors-1}}]
    filters:
    - type: CORS
      cors:
        allowOrigins: ["https://www.foo.com", "https://*.bar.com"]
        allowMethods: [GET, OPTIONS]
        allowHeaders: [x-header-1, x-header-2]
        exposeHeaders: [x-header-3, x-header-4]
        allowCredentials: true
        maxAge: 3600
    backendRefs: [{name: v1, port: 8080}]
  - matches: [{path: {value: /cors-2}}]
    filters:
    - type: CORS
      cors:
        allowOrigins: ["https://www.foo.com"]
        allowMethods: ["*"]
    backendRefs: [{name: v1, port: 8080}]
"#,
    )
}

#[tokio::test]
async fn cors_preflight_is_answered_locally_hf_5() {
    let v1 = echo("apps", "v1", "v1-pod-a").await;
    let yaml = gateway_yaml() + &service_yaml("apps", "v1", &[v1.addr]) + &cors_routes();
    let gw = start_inline(yaml).await;
    let addr = gw_addr(&gw);
    let c = client();
    let preflight = |origin: &'static str, path: &'static str, method: &'static str| {
        let c = c.clone();
        async move {
            send(
                &c,
                addr,
                "OPTIONS",
                "a.io",
                path,
                &[
                    ("origin", origin),
                    ("access-control-request-method", method),
                    ("access-control-request-headers", "x-header-1, x-header-2"),
                ],
            )
            .await
            .unwrap()
        }
    };
    // [HF-5] an allowed origin (exact, then wildcard subdomain at any depth): 200 from us.
    for origin in [
        "https://www.foo.com",
        "https://www.bar.com",
        "https://xpto.www.bar.com",
    ] {
        let r = preflight(origin, "/cors-1", "GET").await;
        assert_eq!(r.status, 200, "{origin}");
        let h = &r.headers;
        assert_eq!(h["access-control-allow-origin"], origin);
        assert_eq!(h["access-control-allow-methods"], "GET, OPTIONS");
        assert_eq!(h["access-control-allow-headers"], "x-header-1, x-header-2");
        assert_eq!(h["access-control-expose-headers"], "x-header-3, x-header-4");
        assert_eq!(h["access-control-max-age"], "3600");
        assert_eq!(h["access-control-allow-credentials"], "true");
    }
    // [HF-5] a disallowed origin is answered too, without CORS headers.
    let r = preflight("https://foobar.com", "/cors-1", "GET").await;
    assert_eq!(r.status, 200);
    assert!(r.headers.get("access-control-allow-origin").is_none());
    assert!(r.headers.get("access-control-allow-methods").is_none());
    assert_eq!(v1.request_count(), 0, "preflights never reach the backend");
    // [HF-5] `*` methods without credentials; no credentials header; default max age 5.
    let r = preflight("https://www.foo.com", "/cors-2", "POST").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers["access-control-allow-origin"],
        "https://www.foo.com"
    );
    assert_eq!(r.headers["access-control-allow-methods"], "*");
    assert_eq!(r.headers["access-control-max-age"], "5");
    assert!(r.headers.get("access-control-allow-credentials").is_none());
}

#[tokio::test]
async fn cors_headers_on_actual_responses_hf_5() {
    let v1 = echo("apps", "v1", "v1-pod-a").await;
    let yaml = gateway_yaml() + &service_yaml("apps", "v1", &[v1.addr]) + &cors_routes();
    let gw = start_inline(yaml).await;
    let addr = gw_addr(&gw);
    let c = client();
    // [HF-5] an allowed origin is echoed (never `*` with credentials), exposed headers listed.
    let r = send(
        &c,
        addr,
        "GET",
        "a.io",
        "/cors-1",
        &[("origin", "https://www.bar.com")],
    )
    .await
    .unwrap();
    assert_eq!((r.status, r.pod().as_str()), (200, "v1-pod-a"));
    assert_eq!(
        r.headers["access-control-allow-origin"],
        "https://www.bar.com"
    );
    assert_eq!(r.headers["access-control-allow-credentials"], "true");
    assert_eq!(
        r.headers["access-control-expose-headers"],
        "x-header-3, x-header-4"
    );
    assert_eq!(r.headers["vary"], "Origin");
    assert!(r.headers.get("access-control-max-age").is_none());
    // [HF-5] a disallowed origin: the request is served, without CORS headers.
    let r = send(
        &c,
        addr,
        "GET",
        "a.io",
        "/cors-1",
        &[("origin", "https://foobar.com")],
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.headers.get("access-control-allow-origin").is_none());
    assert!(r.headers.get("access-control-allow-credentials").is_none());
    // No Origin, no CORS.
    let r = send(&c, addr, "GET", "a.io", "/cors-1", &[]).await.unwrap();
    assert!(r.headers.get("access-control-allow-origin").is_none());
}
