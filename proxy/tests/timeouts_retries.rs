//! HTTPRoute timeouts and retries end to end ([HT-1], [HT-2]): real listeners, real backends
//! (some of them deliberately slow or failing) and real clients on loopback.

mod common;

use common::*;
use std::time::Duration;

#[tokio::test]
async fn request_timeout_answers_504_ht_1() {
    let v1 = echo("apps", "v1", "v1-pod-a").await;
    let yaml = gateway_yaml()
        + &service_yaml("apps", "v1", &[v1.addr])
        + &route(
            "apps",
            "r",
            r#"  rules:
  - matches: [{path: {value: /request}}]
    timeouts: {request: 200ms}
    backendRefs: [{name: v1, port: 8080}]
  - matches: [{path: {value: /backend}}]
    timeouts: {request: 10s, backendRequest: 200ms}
    backendRefs: [{name: v1, port: 8080}]
  - matches: [{path: {value: /disabled}}]
    timeouts: {request: 0s}
    backendRefs: [{name: v1, port: 8080}]
"#,
        );
    let gw = start_inline(yaml).await;
    let addr = gw_addr(&gw);
    let c = client();
    let delayed = |path: &'static str| {
        let c = c.clone();
        async move {
            send(&c, addr, "GET", "a.io", path, &[("x-echo-delay", "2s")])
                .await
                .unwrap()
        }
    };
    // [HT-1] a backend 2 s late under a 200 ms request timeout: 504 with Envoy's body.
    let r = delayed("/request").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (504, "upstream request timeout")
    );
    // [HT-1] the same for a per-attempt backendRequest timeout.
    let r = delayed("/backend").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (504, "upstream request timeout")
    );
    // A backend in time is served.
    let r = send(&c, addr, "GET", "a.io", "/request", &[])
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    // [HT-1] `0s` disables the timeout.
    let r = send(
        &c,
        addr,
        "GET",
        "a.io",
        "/disabled",
        &[("x-echo-delay", "300ms")],
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn request_timeout_cuts_a_slow_body_ht_1() {
    // [HT-1] `request` covers the whole exchange: a backend that sends its headers and then
    // stalls mid-body is cut off; the client sees an incomplete response, not a hang.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow_addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello")
                    .await;
                tokio::time::sleep(Duration::from_secs(5)).await;
                let _ = s.write_all(b"world").await;
            });
        }
    });
    let yaml = gateway_yaml()
        + &service_yaml("apps", "slow", &[slow_addr])
        + &route(
            "apps",
            "r",
            "  rules:\n  - timeouts: {request: 300ms}\n    backendRefs: [{name: slow, port: 8080}]\n",
        );
    let gw = start_inline(yaml).await;
    let r = send(&client(), gw_addr(&gw), "GET", "a.io", "/", &[]).await;
    assert!(
        r.is_none(),
        "the response must end early and incomplete, got {:?}",
        r.map(|r| r.body)
    );
    server.abort();
}

#[tokio::test]
async fn backend_request_longer_than_request_is_invalid_ht_1() {
    let v1 = echo("apps", "v1", "v1-pod-a").await;
    let yaml = gateway_yaml()
        + &service_yaml("apps", "v1", &[v1.addr])
        + &route(
            "apps",
            "r",
            r#"  rules:
  - timeouts: {request: 1s, backendRequest: 2s}
    backendRefs: [{name: v1, port: 8080}]
"#,
        );
    let gw = start_inline(yaml).await;
    let (status, reason) = route_condition(&gw, "apps", "r", "Accepted").await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "UnsupportedValue")
    );
    assert_eq!(get(gw_addr(&gw), "a.io", "/").await.status, 404);
}

#[tokio::test]
async fn retries_listed_codes_until_success_ht_2() {
    // The first two answers are 503, then 200.
    let flaky = Recorder::start(|n| Answer::status(if n < 2 { 503 } else { 200 })).await;
    let yaml = gateway_yaml()
        + &service_yaml("apps", "flaky", &[flaky.addr])
        + &route(
            "apps",
            "r",
            r#"  rules:
  - retry: {codes: [500, 502, 503, 504], attempts: 2, backoff: 10ms}
    backendRefs: [{name: flaky, port: 8080}]
"#,
        );
    let gw = start_inline(yaml).await;
    let r = get(gw_addr(&gw), "a.io", "/r").await;
    // [HT-2] two retries on 503 reach the 200.
    assert_eq!((r.status, r.body.as_str()), (200, "answer 2"));
    let got = flaky.requests();
    assert_eq!(got.len(), 3);
    // [EC-2] retries carry x-envoy-attempt-count.
    assert!(got[0].headers.get("x-envoy-attempt-count").is_none());
    assert_eq!(got[2].headers["x-envoy-attempt-count"], "3");
}

#[tokio::test]
async fn retries_are_bounded_by_attempts_and_codes_ht_2() {
    let always_503 = Recorder::start(|_| Answer::status(503)).await;
    let always_500 = Recorder::start(|_| Answer::status(500)).await;
    let yaml = gateway_yaml()
        + &service_yaml("apps", "s503", &[always_503.addr])
        + &service_yaml("apps", "s500", &[always_500.addr])
        + &route(
            "apps",
            "r",
            r#"  rules:
  - matches: [{path: {value: /503}}]
    retry: {codes: [503], attempts: 2, backoff: 10ms}
    backendRefs: [{name: s503, port: 8080}]
  - matches: [{path: {value: /500}}]
    retry: {codes: [503], attempts: 2, backoff: 10ms}
    backendRefs: [{name: s500, port: 8080}]
"#,
        );
    let gw = start_inline(yaml).await;
    let addr = gw_addr(&gw);
    // [HT-2] at most `attempts` retries; the last answer is passed through as is.
    let r = get(addr, "a.io", "/503").await;
    assert_eq!((r.status, r.body.as_str()), (503, "answer 2"));
    assert_eq!(always_503.count(), 3);
    // [HT-2] a code not listed is not retried.
    let r = get(addr, "a.io", "/500").await;
    assert_eq!((r.status, r.body.as_str()), (500, "answer 0"));
    assert_eq!(always_500.count(), 1);
}

#[tokio::test]
async fn retries_connection_errors_on_another_endpoint_ht_2() {
    // [HT-2] connection errors are retried too: with one dead endpoint of two, every request is
    // served; without a retry policy, the dead endpoint's share fails.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let v1 = echo("apps", "half", "half-pod-a").await;
    let yaml = gateway_yaml()
        + &service_yaml("apps", "half", &[closed, v1.addr])
        + &route(
            "apps",
            "r",
            r#"  rules:
  - matches: [{path: {value: /retry}}]
    retry: {attempts: 1, backoff: 10ms}
    backendRefs: [{name: half, port: 8080}]
  - matches: [{path: {value: /plain}}]
    backendRefs: [{name: half, port: 8080}]
"#,
        );
    let gw = start_inline(yaml).await;
    let addr = gw_addr(&gw);
    let c = client();
    for _ in 0..10 {
        let r = send(&c, addr, "GET", "a.io", "/retry", &[]).await.unwrap();
        assert_eq!((r.status, r.pod().as_str()), (200, "half-pod-a"));
    }
    let mut failures = 0;
    for _ in 0..10 {
        if send(&c, addr, "GET", "a.io", "/plain", &[])
            .await
            .unwrap()
            .status
            == 503
        {
            failures += 1;
        }
    }
    assert_eq!(
        failures, 5,
        "round robin sends every other request to the dead endpoint"
    );
}

#[tokio::test]
async fn retries_a_request_with_a_small_body_ht_2() {
    // [HT-2] a request with a small (fully buffered) body is retried with the same body.
    let flaky = Recorder::start(|n| Answer::status(if n == 0 { 503 } else { 201 })).await;
    let yaml = gateway_yaml()
        + &service_yaml("apps", "flaky", &[flaky.addr])
        + &route(
            "apps",
            "r",
            "  rules:\n  - retry: {codes: [503], attempts: 1, backoff: 10ms}\n    backendRefs: [{name: flaky, port: 8080}]\n",
        );
    let gw = start_inline(yaml).await;
    let r = send_body(
        &body_client(),
        gw_addr(&gw),
        "POST",
        "a.io",
        "/p",
        &[],
        "payload",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 201);
    let got = flaky.requests();
    assert_eq!(got.len(), 2);
    assert_eq!(&got[0].body[..], b"payload");
    assert_eq!(&got[1].body[..], b"payload");
}

#[tokio::test]
async fn retries_fit_inside_the_request_timeout_ht_2() {
    let always_503 = Recorder::start(|_| Answer::status(503)).await;
    // The first attempt outlives its 200 ms budget, the second answers at once.
    let slow_then_fast = Recorder::start(|n| Answer {
        status: 200,
        delay: if n == 0 {
            Duration::from_secs(2)
        } else {
            Duration::ZERO
        },
    })
    .await;
    let yaml = gateway_yaml()
        + &service_yaml("apps", "s503", &[always_503.addr])
        + &service_yaml("apps", "slow", &[slow_then_fast.addr])
        + &route(
            "apps",
            "r",
            r#"  rules:
  - matches: [{path: {value: /no-room}}]
    timeouts: {request: 500ms}
    retry: {codes: [503], attempts: 5, backoff: 1s}
    backendRefs: [{name: s503, port: 8080}]
  - matches: [{path: {value: /per-try}}]
    timeouts: {request: 10s, backendRequest: 200ms}
    retry: {attempts: 1, backoff: 10ms}
    backendRefs: [{name: slow, port: 8080}]
"#,
        );
    let gw = start_inline(yaml).await;
    let addr = gw_addr(&gw);
    // [HT-2] all attempts must fit inside timeouts.request: the backoff alone outlasts it, so no
    // retry starts and the answer is 504.
    let r = get(addr, "a.io", "/no-room").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (504, "upstream request timeout")
    );
    assert_eq!(always_503.count(), 1);
    // [HT-2] each attempt is bounded by backendRequest; an attempt that outlives it is retried
    // (like a connection error, whatever the codes).
    let r = get(addr, "a.io", "/per-try").await;
    assert_eq!((r.status, r.body.as_str()), (200, "answer 1"));
    assert_eq!(slow_then_fast.count(), 2);
}
