//! VirtualServices bound to an ingress Gateway (`gateways: [ns/name]`) end to end: written
//! order, merging of VirtualServices for one host, match-level `gateways`, `allowedRoutes`,
//! and HTTPRoutes on the same host taking precedence.

mod common;

use common::*;
use waygate_conformance::echo::EchoServer;

/// A Gateway `infra/gw`: port 80 open to every namespace, port 8080 to `infra` only; and
/// `infra/private`, port 9090, open to `infra` only.
const GATEWAY: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: istio
  listeners:
  - {name: open, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
  - {name: own, port: 8080, protocol: HTTP, hostname: "*.internal.example"}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: private, namespace: infra}
spec:
  gatewayClassName: istio
  listeners:
  - {name: own, port: 9090, protocol: HTTP}
"#;

fn vs(ns: &str, name: &str, created: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: {ns}, creationTimestamp: \"{created}\"}}\nspec:\n{spec}"
    )
}

struct Shop {
    gw: std::sync::Arc<waygate::gateway::Gateway>,
    _backends: Vec<EchoServer>,
}

async fn shop(extra: &str) -> Shop {
    let web = echo("shop", "web", "web-1").await;
    let api = echo("shop", "api", "api-1").await;
    let canary = echo("shop", "canary", "canary-1").await;
    let yaml = GATEWAY.to_string()
        + &service_yaml("shop", "web", &[web.addr])
        + &service_yaml("shop", "api", &[api.addr])
        + &service_yaml("shop", "canary", &[canary.addr])
        + extra;
    Shop {
        gw: start_inline(yaml).await,
        _backends: vec![web, api, canary],
    }
}

/// The `Accepted` condition (status, message) of VirtualService `ns/name` in `/status`.
async fn vs_accepted(gw: &waygate::gateway::Gateway, ns: &str, name: &str) -> (String, String) {
    let status = admin_get(gw, "/status").await.json();
    let o = status
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "VirtualService" && o["namespace"] == ns && o["name"] == name)
        .unwrap_or_else(|| panic!("no status for {ns}/{name}: {status}"))
        .clone();
    let c = o["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Accepted")
        .unwrap_or_else(|| panic!("no Accepted condition: {o}"))
        .clone();
    (
        c["status"].as_str().unwrap().to_string(),
        c["message"].as_str().unwrap_or("").to_string(),
    )
}

const SHOP_VS: &str = r#"  hosts: [shop.example.com]
  gateways: [infra/gw]
  http:
  - match: [{uri: {prefix: /api}}]
    rewrite: {uri: /v2}
    route: [{destination: {host: api, port: {number: 8080}}}]
  - match: [{headers: {x-canary: {exact: "1"}}}]
    route: [{destination: {host: canary}}]
  - match: [{uri: {prefix: /mesh-only}, gateways: [mesh]}]
    route: [{destination: {host: canary}}]
  - route: [{destination: {host: web}}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_virtual_service_routes_in_written_order() {
    let s = shop(&vs("shop", "shop", "2024-01-01T00:00:00Z", SHOP_VS)).await;
    let addr = gw_addr(&s.gw);
    let c = client();

    // The first match wins even though the later header match is more specific.
    let r = send(
        &c,
        addr,
        "GET",
        "shop.example.com",
        "/api/items?x=1",
        &[("x-canary", "1")],
    )
    .await
    .unwrap();
    assert_eq!(r.pod(), "api-1");
    assert_eq!(r.json()["path"], "/v2/items?x=1", "{}", r.body);

    let r = send(
        &c,
        addr,
        "GET",
        "shop.example.com",
        "/",
        &[("x-canary", "1")],
    )
    .await
    .unwrap();
    assert_eq!(r.pod(), "canary-1");

    // A match restricted to `mesh` does not apply at a gateway: the catch-all takes it.
    assert_eq!(
        get(addr, "shop.example.com", "/mesh-only").await.pod(),
        "web-1"
    );
    assert_eq!(
        get(addr, "shop.example.com", "/anything").await.pod(),
        "web-1"
    );

    // Other hosts are not served by it.
    assert_eq!(get(addr, "other.example.com", "/").await.status, 404);
    let (ok, msg) = vs_accepted(&s.gw, "shop", "shop").await;
    assert_eq!((ok.as_str(), msg.as_str()), ("True", "applied"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_services_for_one_host_merge_oldest_first() {
    let newer = vs(
        "shop",
        "newer",
        "2024-02-01T00:00:00Z",
        "  hosts: [shop.example.com]\n  gateways: [infra/gw]\n  http:\n  - match: [{uri: {prefix: /}}]\n    route: [{destination: {host: canary}}]\n",
    );
    let older = vs(
        "shop",
        "older",
        "2024-01-01T00:00:00Z",
        "  hosts: [shop.example.com]\n  gateways: [gw-elsewhere, infra/gw]\n  http:\n  - match: [{uri: {exact: /only}}]\n    route: [{destination: {host: api}}]\n",
    );
    let s = shop(&(newer + &older)).await;
    let addr = gw_addr(&s.gw);
    // The older VirtualService's routes come first; the newer one's catch-all takes the rest.
    assert_eq!(get(addr, "shop.example.com", "/only").await.pod(), "api-1");
    assert_eq!(
        get(addr, "shop.example.com", "/only/not").await.pod(),
        "canary-1"
    );
    assert_eq!(vs_accepted(&s.gw, "shop", "newer").await.0, "True");
    assert_eq!(vs_accepted(&s.gw, "shop", "older").await.0, "True");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_httproute_on_the_same_host_wins_and_allowed_routes_are_respected() {
    let extra = vs("shop", "shop", "2024-01-01T00:00:00Z", SHOP_VS)
        + &route(
            "shop",
            "web",
            "  hostnames: [shop.example.com]\n  rules: [{backendRefs: [{name: web, port: 8080}]}]\n",
        )
        // Port 8080's listener admits only `infra`; this one is in `shop`.
        + &vs(
            "shop",
            "internal",
            "2023-01-01T00:00:00Z",
            "  hosts: [app.internal.example]\n  gateways: [infra/gw]\n  http: [{route: [{destination: {host: api}}]}]\n",
        )
        // The same from `infra`, which the listener admits.
        + &vs(
            "infra",
            "internal",
            "2024-01-01T00:00:00Z",
            "  hosts: [app.internal.example]\n  gateways: [gw]\n  http: [{route: [{destination: {host: web.shop.svc.cluster.local, port: {number: 8080}}}]}]\n",
        );
    let s = shop(&extra).await;
    let addr = gw_addr(&s.gw);
    // The HTTPRoute serves the host: the VirtualService's /api rewrite and canary are not used.
    let r = send(
        &client(),
        addr,
        "GET",
        "shop.example.com",
        "/api/x",
        &[("x-canary", "1")],
    )
    .await
    .unwrap();
    assert_eq!(r.pod(), "web-1");
    assert_eq!(r.json()["path"], "/api/x");
    // Reported, not an error: the VirtualService is valid, just not used for that host.
    let (ok, msg) = vs_accepted(&s.gw, "shop", "shop").await;
    assert_eq!(ok, "True");
    assert!(msg.contains("HTTPRoute shop/web"), "{msg}");
    let dump = admin_get(&s.gw, "/config_dump").await.json();
    let notes = dump["precedence"].as_array().cloned().unwrap_or_default();
    let note = notes
        .iter()
        .find(|n| n["host"] == "shop.example.com")
        .unwrap_or_else(|| panic!("no precedence note: {notes:?}"));
    assert_eq!(note["at"], "Gateway infra/gw listener open");
    assert_eq!(note["applied"][0], "HTTPRoute shop/web");
    assert_eq!(note["ignored"], "shop/shop");

    // Port 8080's listener admits only `infra`: there the `infra` VirtualService serves the
    // host; on port 80, which admits both, the older `shop` one comes first.
    let internal =
        s.gw.bound_addr(&waygate_config::NsName::new("infra", "gw"), 8080)
            .unwrap();
    assert_eq!(
        get(internal, "app.internal.example", "/").await.pod(),
        "web-1"
    );
    assert_eq!(get(addr, "app.internal.example", "/").await.pod(), "api-1");
    assert_eq!(vs_accepted(&s.gw, "shop", "internal").await.0, "True");
    assert_eq!(vs_accepted(&s.gw, "infra", "internal").await.0, "True");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_virtual_service_no_listener_admits_says_why() {
    let s = shop(&vs(
        "shop",
        "refused",
        "2024-01-01T00:00:00Z",
        // The private Gateway admits only `infra`.
        "  hosts: [app.internal.example]\n  gateways: [infra/private]\n  http: [{route: [{destination: {host: api}}]}]\n",
    ))
    .await;
    let private =
        s.gw.bound_addr(&waygate_config::NsName::new("infra", "private"), 9090)
            .unwrap();
    assert_eq!(get(private, "app.internal.example", "/").await.status, 404);
    let (ok, msg) = vs_accepted(&s.gw, "shop", "refused").await;
    assert_eq!(ok, "False");
    assert!(
        msg.contains("spec.gateways") && msg.contains("allowedRoutes"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_policy_answers_allowed_preflights_and_forwards_the_rest_by_default() {
    let spec = |host: &str, unmatched: &str| {
        format!(
            "  hosts: [{host}]\n  gateways: [infra/gw]\n  http:\n  - corsPolicy:\n      allowOrigins: [{{exact: \"https://a.example\"}}, {{regex: \"https://[a-z]+\\\\.b\\\\.example\"}}]\n      allowMethods: [GET, POST]\n      allowHeaders: [x-token]\n      exposeHeaders: [x-trace]\n      maxAge: 24h\n      allowCredentials: true\n{unmatched}    route: [{{destination: {{host: web}}}}]\n"
        )
    };
    let extra = vs(
        "shop",
        "cors",
        "2024-01-01T00:00:00Z",
        &spec("cors.example.com", ""),
    ) + &vs(
        "shop",
        "strict",
        "2024-01-01T00:00:00Z",
        &spec("strict.example.com", "      unmatchedPreflights: IGNORE\n"),
    );
    let s = shop(&extra).await;
    let addr = gw_addr(&s.gw);
    let c = client();
    let preflight = |host: &'static str, origin: &'static str| {
        let c = c.clone();
        async move {
            send(
                &c,
                addr,
                "OPTIONS",
                host,
                "/items",
                &[
                    ("origin", origin),
                    ("access-control-request-method", "POST"),
                    ("access-control-request-headers", "x-token"),
                ],
            )
            .await
            .unwrap()
        }
    };
    let h = |r: &Reply, name: &str| {
        r.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };

    // Allowed by exact and by regex: answered here with the policy's headers.
    for origin in ["https://a.example", "https://www.b.example"] {
        let r = preflight("cors.example.com", origin).await;
        assert_eq!(r.status, 200, "{origin}");
        assert_eq!(r.pod(), "", "answered locally: {}", r.body);
        assert_eq!(
            h(&r, "access-control-allow-origin").as_deref(),
            Some(origin)
        );
        assert_eq!(
            h(&r, "access-control-allow-methods").as_deref(),
            Some("GET, POST")
        );
        assert_eq!(
            h(&r, "access-control-allow-headers").as_deref(),
            Some("x-token")
        );
        assert_eq!(h(&r, "access-control-max-age").as_deref(), Some("86400"));
        assert_eq!(
            h(&r, "access-control-allow-credentials").as_deref(),
            Some("true")
        );
    }
    // Not allowed: Istio's default forwards the preflight to the backend.
    let r = preflight("cors.example.com", "https://evil.example").await;
    assert_eq!(r.pod(), "web-1", "{}", r.body);
    assert_eq!(h(&r, "access-control-allow-origin"), None);
    // `IGNORE`: answered here, without CORS headers.
    let r = preflight("strict.example.com", "https://evil.example").await;
    assert_eq!(r.pod(), "");
    assert_eq!(h(&r, "access-control-allow-origin"), None);

    // An actual request from an allowed origin gets the sharing headers on the backend's answer.
    let r = send(
        &c,
        addr,
        "GET",
        "cors.example.com",
        "/items",
        &[("origin", "https://a.example")],
    )
    .await
    .unwrap();
    assert_eq!(r.pod(), "web-1");
    assert_eq!(
        h(&r, "access-control-allow-origin").as_deref(),
        Some("https://a.example")
    );
    assert_eq!(
        h(&r, "access-control-expose-headers").as_deref(),
        Some("x-trace")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_copy_each_request_to_every_mirror_with_a_share() {
    let s = shop(&vs(
        "shop",
        "mirrored",
        "2024-01-01T00:00:00Z",
        "  hosts: [shop.example.com]\n  gateways: [infra/gw]\n  http:\n  - route: [{destination: {host: web}}]\n    mirrors:\n    - {destination: {host: api}, percentage: {value: 100}}\n    - {destination: {host: canary}, percentage: {value: 0}}\n",
    ))
    .await;
    let addr = gw_addr(&s.gw);
    for i in 0..5 {
        let r = get(addr, "shop.example.com", &format!("/m/{i}")).await;
        assert_eq!(r.pod(), "web-1");
    }
    let (api, canary) = (&s._backends[1], &s._backends[2]);
    for _ in 0..200 {
        if api.served().len() >= 5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let mut copies = api.served();
    copies.sort();
    assert_eq!(
        copies,
        (0..5).map(|i| format!("/m/{i}")).collect::<Vec<_>>()
    );
    assert_eq!(canary.request_count(), 0, "a 0% mirror gets nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_headers_method_patterns_scheme_and_source_namespace_vs_3() {
    let s = shop(&vs(
        "shop",
        "matches",
        "2024-01-01T00:00:00Z",
        r#"  hosts: [shop.example.com]
  gateways: [infra/gw]
  http:
  - match: [{sourceNamespace: shop, uri: {prefix: /src}}]
    route: [{destination: {host: canary}}]
  - match: [{sourceNamespace: infra, uri: {prefix: /src}}]
    route: [{destination: {host: api}}]
  - match: [{method: {prefix: P}, withoutHeaders: {x-env: {exact: prod}}}]
    route: [{destination: {host: api}}]
  - match: [{method: {regex: "GET|OPTIONS"}, withoutHeaders: {x-debug: {}}}]
    route: [{destination: {host: web}}]
  - match: [{scheme: {exact: http}, uri: {prefix: /plain}}]
    route: [{destination: {host: canary}}]
  - match: [{scheme: {exact: https}}]
    route: [{destination: {host: api}}]
"#,
    ))
    .await;
    let addr = gw_addr(&s.gw);
    let c = client();
    let pod = |method: &'static str, path: &'static str, headers: &'static [(&str, &str)]| {
        let c = c.clone();
        async move {
            let r = send(&c, addr, method, "shop.example.com", path, headers)
                .await
                .unwrap();
            if r.status == 404 {
                "404".to_string()
            } else {
                r.pod()
            }
        }
    };
    // [VS-3] method prefix, and a withoutHeaders value that the request does not carry.
    assert_eq!(pod("POST", "/", &[]).await, "api-1");
    assert_eq!(pod("PATCH", "/", &[("x-env", "staging")]).await, "api-1");
    // The negated header matches: the route is skipped; nothing else takes a PUT to `/`
    // (plain HTTP is not `https`).
    assert_eq!(pod("PUT", "/", &[("x-env", "prod")]).await, "404");
    // Method regex; `withoutHeaders: {x-debug: {}}` means the header must be absent.
    assert_eq!(pod("GET", "/", &[]).await, "web-1");
    assert_eq!(pod("OPTIONS", "/", &[]).await, "web-1");
    assert_eq!(pod("GET", "/", &[("x-debug", "")]).await, "404");
    assert_eq!(pod("GET", "/plain", &[("x-debug", "1")]).await, "canary-1");
    assert_eq!(pod("DELETE", "/x", &[]).await, "404");
    // At a Gateway, `sourceNamespace` names the gateway itself (it runs in `infra`).
    assert_eq!(pod("GET", "/src", &[]).await, "api-1");
    assert_eq!(vs_accepted(&s.gw, "shop", "matches").await.0, "True");
    // /config_dump shows the negation.
    let dump = admin_get(&s.gw, "/config_dump").await.json().to_string();
    assert!(dump.contains(r#""invert":true"#), "{dump}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_responses_and_regex_rewrites_vs_5_vs_6() {
    let good = vs(
        "shop",
        "direct",
        "2024-01-01T00:00:00Z",
        r#"  hosts: [shop.example.com]
  gateways: [infra/gw]
  http:
  - match: [{uri: {prefix: /gone}}]
    directResponse: {status: 410, body: {string: "gone for good"}}
    headers: {response: {set: {cache-control: no-store}, add: {x-why: moved}}}
  - match: [{uri: {prefix: /raw}}]
    directResponse: {status: 503, body: {bytes: "aGVsbG8="}}
  - match: [{uri: {prefix: /empty}}]
    directResponse: {status: 204}
  - match: [{uri: {prefix: /service}}]
    rewrite: {uriRegexRewrite: {match: "^/service/([^/]+)(/.*)$", rewrite: "\\2/instance/\\1"}}
    route: [{destination: {host: api}}]
"#,
    );
    let bad = vs(
        "shop",
        "bad",
        "2024-01-01T00:00:00Z",
        r#"  hosts: [bad.example.com]
  gateways: [infra/gw]
  http:
  - directResponse: {status: 200}
    route: [{destination: {host: api}}]
  - rewrite: {uri: /x, uriRegexRewrite: {match: a, rewrite: b}}
    route: [{destination: {host: api}}]
  - rewrite: {uriRegexRewrite: {match: "^/(a)$", rewrite: "\\3"}}
    route: [{destination: {host: api}}]
  - directResponse: {status: 200, body: {bytes: "not base64!"}}
"#,
    );
    let s = shop(&(good + &bad)).await;
    let addr = gw_addr(&s.gw);

    // [VS-6] Answered here with the configured status and body; no backend sees it.
    let r = get(addr, "shop.example.com", "/gone/x").await;
    assert_eq!((r.status, r.body.as_str()), (410, "gone for good"));
    // The route's response header edits apply to its direct response.
    let header = |name: &str| r.headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(header("cache-control"), Some("no-store"));
    assert_eq!(header("x-why"), Some("moved"));
    assert_eq!(
        r.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("text/plain")
    );
    let r = get(addr, "shop.example.com", "/raw").await;
    assert_eq!((r.status, r.body.as_str()), (503, "hello"));
    let r = get(addr, "shop.example.com", "/empty").await;
    assert_eq!((r.status, r.body.as_str()), (204, ""));
    assert!(
        s._backends.iter().all(|b| b.request_count() == 0),
        "a direct response never reaches a backend"
    );

    // [VS-5] Capture groups move parts of the path; the query string is kept.
    let r = get(addr, "shop.example.com", "/service/foo/v1/api?x=1").await;
    assert_eq!(r.pod(), "api-1");
    assert_eq!(r.json()["path"], "/v1/api/instance/foo?x=1", "{}", r.body);

    let (ok, msg) = vs_accepted(&s.gw, "shop", "bad").await;
    assert_eq!(ok, "False");
    for want in [
        "spec.http[0].directResponse: cannot be combined with route or redirect",
        "spec.http[1].rewrite: set only one of uri and uriRegexRewrite",
        "spec.http[2].rewrite.uriRegexRewrite.rewrite: \"\\\\3\"",
        "spec.http[3].directResponse.body.bytes: not base64",
    ] {
        assert!(msg.contains(want), "{want} in {msg}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_ports_follow_derive_port_vs_6() {
    let s = shop(&vs(
        "shop",
        "redirects",
        "2024-01-01T00:00:00Z",
        r#"  hosts: [shop.example.com]
  gateways: [infra/gw]
  http:
  - match: [{uri: {prefix: /request-port}}]
    redirect: {scheme: https, derivePort: FROM_REQUEST_PORT}
  - match: [{uri: {prefix: /protocol-default}}]
    redirect: {authority: other.example.com, derivePort: FROM_PROTOCOL_DEFAULT, redirectCode: 302}
  - match: [{uri: {prefix: /fixed}}]
    redirect: {uri: /new, port: 9443, scheme: https}
  - match: [{uri: {prefix: /scheme-only}}]
    redirect: {scheme: https}
  - match: [{uri: {prefix: /bad}}]
    redirect: {port: 1, derivePort: FROM_REQUEST_PORT}
"#,
    ))
    .await;
    let addr = gw_addr(&s.gw);
    let location = |r: &Reply| {
        r.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    // The listener's port is 80: kept across the scheme change.
    let r = get(addr, "shop.example.com", "/request-port/a?q=1").await;
    assert_eq!(r.status, 301);
    assert_eq!(
        location(&r),
        "https://shop.example.com:80/request-port/a?q=1"
    );
    let r = get(addr, "shop.example.com", "/protocol-default").await;
    assert_eq!(r.status, 302);
    assert_eq!(location(&r), "http://other.example.com/protocol-default");
    // `uri` replaces the whole path, not just the matched prefix.
    let r = get(addr, "shop.example.com", "/fixed/deep").await;
    assert_eq!(location(&r), "https://shop.example.com:9443/new");
    let r = get(addr, "shop.example.com", "/scheme-only").await;
    assert_eq!(location(&r), "https://shop.example.com/scheme-only");
    let (ok, msg) = vs_accepted(&s.gw, "shop", "redirects").await;
    assert_eq!(ok, "False");
    assert!(
        msg.contains("spec.http[4].redirect: set only one of port and derivePort"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolution_none_has_no_original_destination_at_an_ingress() {
    // The entry's targetPort is a live echo on this host: a gateway that took its own socket's
    // original destination (SO_ORIGINAL_DST, answered where conntrack is loaded) for the
    // client's would reach it.
    let ext = echo("egress", "ext", "ext-1").await;
    let s = shop(&(format!(
        "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: ext, namespace: shop}}\nspec:\n  hosts: [ext.example]\n  ports: [{{number: 80, name: http, protocol: HTTP, targetPort: {}}}]\n  resolution: NONE\n",
        ext.addr.port()
    ) + &vs(
        "shop",
        "to-ext",
        "2024-01-01T00:00:00Z",
        "  hosts: [shop.example.com]\n  gateways: [infra/gw]\n  http: [{route: [{destination: {host: ext.example}}]}]\n",
    )))
    .await;
    let r = get(gw_addr(&s.gw), "shop.example.com", "/none").await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(ext.request_count(), 0);
}
