//! TLS termination end to end: certificates by SNI (wildcards included), ALPN h2/http1.1,
//! client-certificate validation and the identity it yields, Secret hot reload, and broken
//! Secrets that take down only their own listener. Real rustls and curl clients on loopback.

mod common;

use common::*;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use waygate::BindPlan;
use waygate::gateway::{ConfigSource, Gateway, GatewayOptions};
use waygate_config::NsName;
use waygate_conformance::pki::{
    self, Issued, TestCa, ca_config_map_yaml, client_config, https_get, tls_secret_yaml,
};

/// Two HTTPS listeners on 443 (exact and wildcard hostname, each with its own certificate
/// Secret) routing to `a` and `w`, plus an HTTP listener on 80 routing to `a`.
fn tls_world(a: SocketAddr, w: SocketAddr, exact: &Issued, wild: &Issued, extra: &str) -> String {
    let gateway = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: istio
  listeners:
  - name: exact
    port: 443
    protocol: HTTPS
    hostname: a.example.com
    allowedRoutes: {namespaces: {from: All}}
    tls: {certificateRefs: [{name: exact-cert}]}
  - name: wild
    port: 443
    protocol: HTTPS
    hostname: "*.example.com"
    allowedRoutes: {namespaces: {from: All}}
    tls: {certificateRefs: [{name: wild-cert}]}
  - {name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
"#;
    let routes = "
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: to-a, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra, sectionName: exact}, {name: gw, namespace: infra, sectionName: http}]
  rules: [{backendRefs: [{name: a, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: to-w, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra, sectionName: wild}]
  rules: [{backendRefs: [{name: w, port: 8080}]}]
";
    gateway.to_string()
        + extra
        + routes
        + &tls_secret_yaml("infra", "exact-cert", exact)
        + &tls_secret_yaml("infra", "wild-cert", wild)
        + &service_yaml("apps", "a", &[a])
        + &service_yaml("apps", "w", &[w])
}

fn https_addr(gw: &Gateway) -> SocketAddr {
    gw.bound_addr(&NsName::new("infra", "gw"), 443).unwrap()
}

struct World {
    ca: TestCa,
    exact: Issued,
    _a: waygate_conformance::echo::EchoServer,
    _w: waygate_conformance::echo::EchoServer,
    yaml: String,
}

async fn world(extra: &str) -> World {
    let ca = TestCa::new("test ca").unwrap();
    let exact = ca.server(&["a.example.com"]).unwrap();
    let wild = ca.server(&["*.example.com"]).unwrap();
    let a = echo("apps", "a", "a-pod").await;
    let w = echo("apps", "w", "w-pod").await;
    let yaml = tls_world(a.addr, w.addr, &exact, &wild, extra);
    World {
        ca,
        exact,
        _a: a,
        _w: w,
        yaml,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_the_listener_certificate_and_unknown_names_fail_the_handshake() {
    let w = world("").await;
    let gw = start_inline(w.yaml.clone()).await;
    let addr = https_addr(&gw);
    let cfg = client_config(&w.ca.pem, None, &[]).unwrap();

    let s = pki::connect(addr, Some("a.example.com"), "a.example.com", cfg.clone())
        .await
        .unwrap();
    assert_eq!(pki::presented_names(&s), vec!["a.example.com"]);
    let r = pki::get_over(s, "a.example.com", "/x").await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.contains("a-pod"), "{}", r.body);
    assert_eq!(seen(&r, "x-forwarded-proto").as_deref(), Some("https"));

    // The wildcard certificate and listener for any other name under example.com.
    let s = pki::connect(addr, Some("b.example.com"), "b.example.com", cfg.clone())
        .await
        .unwrap();
    assert_eq!(pki::presented_names(&s), vec!["*.example.com"]);
    let r = pki::get_over(s, "b.example.com", "/").await.unwrap();
    assert!(r.body.contains("w-pod"), "{}", r.body);

    // No listener takes example.org, and without SNI only a hostname-less listener would.
    assert!(
        pki::connect(addr, Some("example.org"), "example.org", cfg.clone())
            .await
            .is_err()
    );
    assert!(
        pki::connect(addr, None, "a.example.com", cfg.clone())
            .await
            .is_err()
    );
}

/// A request header the echo backend saw.
fn seen(r: &pki::HttpsReply, name: &str) -> Option<String> {
    Reply {
        status: r.status,
        headers: r.headers.clone(),
        body: r.body.clone(),
    }
    .seen_header(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_chooses_http2_or_http11() {
    let w = world("").await;
    let gw = start_inline(w.yaml.clone()).await;
    let addr = https_addr(&gw);
    for (alpn, want) in [
        (vec![&b"h2"[..], &b"http/1.1"[..]], http::Version::HTTP_2),
        (vec![&b"http/1.1"[..]], http::Version::HTTP_11),
        (vec![], http::Version::HTTP_11),
    ] {
        let cfg = client_config(&w.ca.pem, None, &alpn).unwrap();
        let r = https_get(addr, Some("a.example.com"), "a.example.com", "/", cfg)
            .await
            .unwrap();
        assert_eq!((r.status, r.version), (200, want), "alpn {alpn:?}");
        assert!(r.body.contains("a-pod"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_is_served_over_http11_and_http2() {
    let w = world("").await;
    let gw = start_inline(w.yaml.clone()).await;
    let addr = https_addr(&gw);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &w.ca.pem).unwrap();
    for flag in ["--http1.1", "--http2"] {
        let out = tokio::process::Command::new("curl")
            .args(["-sS", flag, "--cacert"])
            .arg(&ca)
            .args([
                "--resolve",
                &format!("b.example.com:{}:127.0.0.1", addr.port()),
                "-w",
                "\n%{http_version} %{http_code}",
                &format!("https://b.example.com:{}/curl", addr.port()),
            ])
            .output()
            .await
            .expect("curl is installed (scripts/install-deps.sh)");
        let text = String::from_utf8_lossy(&out.stdout);
        let want = if flag == "--http2" {
            "2 200"
        } else {
            "1.1 200"
        };
        assert!(text.ends_with(want), "{flag}: {text} {:?}", out.stderr);
        assert!(text.contains("w-pod"), "{text}");
    }
}

/// Frontend validation on port 443 with the given mode.
fn frontend(mode: &str) -> String {
    format!(
        "  tls:\n    frontend:\n      default:\n        validation:\n          mode: {mode}\n          caCertificateRefs: [{{group: \"\", kind: ConfigMap, name: client-ca}}]\n"
    )
}

/// The Gateway YAML with `spec.tls` spliced in after `gatewayClassName`.
fn with_gateway_tls(yaml: &str, tls: &str) -> String {
    yaml.replacen(
        "  gatewayClassName: istio\n",
        &format!("  gatewayClassName: istio\n{tls}"),
        1,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_client_certificate_is_the_identity_and_others_fail_the_handshake() {
    let log = captured_logs();
    let w = world("").await;
    let client_ca = TestCa::new("client ca").unwrap();
    let other_ca = TestCa::new("other ca").unwrap();
    let yaml = with_gateway_tls(&w.yaml, &frontend("AllowValidOnly"))
        + &ca_config_map_yaml("infra", "client-ca", &client_ca.pem);
    let gw = start_inline(yaml).await;
    let addr = https_addr(&gw);
    let id = "spiffe://cluster.local/ns/shop/sa/checkout";
    let good = client_ca.client(id).unwrap();
    let cfg = client_config(&w.ca.pem, Some(&good), &[]).unwrap();
    let r = https_get(addr, Some("a.example.com"), "a.example.com", "/who", cfg)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    // The backend learns the identity from the proxy (x-forwarded-client-cert), never from
    // the client: a forged header is replaced.
    let xfcc = seen(&r, "x-forwarded-client-cert").unwrap_or_default();
    assert!(
        xfcc.starts_with("Hash=") && xfcc.ends_with(&format!(";URI={id}")),
        "{xfcc}"
    );

    let forged = client_config(&w.ca.pem, Some(&good), &[]).unwrap();
    let s = pki::connect(addr, Some("a.example.com"), "a.example.com", forged)
        .await
        .unwrap();
    let r = forged_xfcc(s).await;
    assert!(!r.contains("URI=spiffe://evil"), "{r}");
    assert!(r.contains(&format!("URI={id}")), "{r}");

    // A certificate from another CA, or none, fails the handshake (AllowValidOnly).
    let untrusted = other_ca.client(id).unwrap();
    for identity in [Some(&untrusted), None] {
        let cfg = client_config(&w.ca.pem, identity, &[]).unwrap();
        let r = https_get(addr, Some("a.example.com"), "a.example.com", "/", cfg).await;
        assert!(r.is_err(), "served without a trusted certificate: {r:?}");
    }

    // The access log names the identity for the request that had one.
    let mut found = false;
    for _ in 0..50 {
        let text = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
        if text
            .lines()
            .any(|l| l.contains("/who") && l.contains("peer_identity") && l.contains(id))
        {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        found,
        "no access-log line with the peer identity: {}",
        String::from_utf8_lossy(&log.lock().unwrap())
    );
}

/// Send a request carrying a forged x-forwarded-client-cert; return the echoed body.
async fn forged_xfcc(s: tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = s;
    s.write_all(
        b"GET /forged HTTP/1.1\r\nhost: a.example.com\r\nx-forwarded-client-cert: URI=spiffe://evil\r\nconnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_fallback_serves_everyone_but_names_only_the_verified() {
    let w = world("").await;
    let client_ca = TestCa::new("client ca").unwrap();
    let other_ca = TestCa::new("other ca").unwrap();
    let yaml = with_gateway_tls(&w.yaml, &frontend("AllowInsecureFallback"))
        + &ca_config_map_yaml("infra", "client-ca", &client_ca.pem);
    let gw = start_inline(yaml).await;
    let addr = https_addr(&gw);
    let good = client_ca
        .client("spiffe://cluster.local/ns/a/sa/good")
        .unwrap();
    let bad = other_ca
        .client("spiffe://cluster.local/ns/a/sa/bad")
        .unwrap();
    for (identity, named) in [(Some(&good), true), (Some(&bad), false), (None, false)] {
        let cfg = client_config(&w.ca.pem, identity, &[]).unwrap();
        let r = https_get(addr, Some("a.example.com"), "a.example.com", "/", cfg)
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        let xfcc = seen(&r, "x-forwarded-client-cert");
        assert_eq!(xfcc.is_some(), named, "{xfcc:?}");
        assert!(!r.body.contains("sa/bad"));
    }
    let status = admin_get(&gw, "/status").await.json();
    let gw_status = status
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "Gateway" && o["name"] == "gw")
        .unwrap();
    assert!(
        gw_status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "InsecureFrontendValidationMode" && c["status"] == "True"),
        "{gw_status}"
    );
}

/// Write a file the way config management tools do: a temp file renamed over the target.
fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_secret_is_served_to_new_handshakes_without_dropping_open_connections() {
    let w = world("").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    write_atomic(&file, &w.yaml);
    let gw = Gateway::start(GatewayOptions {
        source: ConfigSource::Path(file.clone()),
        bind: BindPlan::Ephemeral("127.0.0.1".parse().unwrap()),
        admin: Some("127.0.0.1:0".parse().unwrap()),
        gateways: vec![],
        watch: true,
        dns_server: None,
        identity: None,
    })
    .await
    .unwrap();
    let addr = https_addr(&gw);
    let cfg = client_config(&w.ca.pem, None, &[b"h2"]).unwrap();

    // An HTTP/2 connection opened before the change.
    let s = pki::connect(addr, Some("a.example.com"), "a.example.com", cfg.clone())
        .await
        .unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(s),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let get = |path: &str| {
        http::Request::get(format!("https://a.example.com{path}"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap()
    };
    assert_eq!(
        send.send_request(get("/before")).await.unwrap().status(),
        200
    );

    // Rotate the exact listener's certificate: same name, new key.
    let rotated =
        w.ca.server(&["a.example.com", "rotated.example.com"])
            .unwrap();
    let new_yaml = w.yaml.replace(
        &tls_secret_yaml("infra", "exact-cert", &w.exact),
        &tls_secret_yaml("infra", "exact-cert", &rotated),
    );
    assert_ne!(new_yaml, w.yaml);
    write_atomic(&file, &new_yaml);
    let mut rotated_seen = false;
    for _ in 0..200 {
        let s = pki::connect(addr, Some("a.example.com"), "a.example.com", cfg.clone())
            .await
            .unwrap();
        if pki::presented_names(&s).contains(&"rotated.example.com".to_string()) {
            rotated_seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        rotated_seen,
        "new handshakes never got the rotated certificate"
    );
    // The connection from before the change still serves requests.
    assert_eq!(
        send.send_request(get("/after")).await.unwrap().status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_secret_unresolves_only_its_listener() {
    let w = world("").await;
    // The wildcard listener's Secret goes missing; the exact one is cut in half.
    let yaml = w
        .yaml
        .replace("name: wild-cert}", "name: no-such-secret}")
        .replace(
            &tls_secret_yaml("infra", "exact-cert", &w.exact),
            &tls_secret_yaml(
                "infra",
                "exact-cert",
                &Issued {
                    cert_pem: w.exact.cert_pem[..w.exact.cert_pem.len() / 2].to_string(),
                    key_pem: w.exact.key_pem.clone(),
                },
            ),
        );
    let gw = start_inline(yaml).await;
    let status = admin_get(&gw, "/status").await.json();
    let gw_status = status
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "Gateway" && o["name"] == "gw")
        .unwrap()
        .clone();
    let listener = |name: &str, kind: &str| {
        let l = gw_status["listeners"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == name)
            .unwrap();
        let c = l["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == kind)
            .unwrap();
        (
            c["status"].as_str().unwrap().to_string(),
            c["reason"].as_str().unwrap().to_string(),
        )
    };
    for name in ["exact", "wild"] {
        assert_eq!(
            listener(name, "ResolvedRefs"),
            ("False".into(), "InvalidCertificateRef".into())
        );
        assert_eq!(listener(name, "Programmed").0, "False");
    }
    assert_eq!(listener("http", "Programmed").0, "True");
    // The HTTP listener keeps serving.
    let r = get(gw_addr(&gw), "a.example.com", "/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.pod(), "a-pod");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_in_another_namespace_needs_a_reference_grant() {
    let w = world("").await;
    let moved = w.yaml.replace(
        "tls: {certificateRefs: [{name: exact-cert}]}",
        "tls: {certificateRefs: [{name: exact-cert, namespace: certs}]}",
    ) + &tls_secret_yaml("certs", "exact-cert", &w.exact);
    let grant = "
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: gateways-read-certs, namespace: certs}
spec:
  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: infra}]
  to: [{group: \"\", kind: Secret}]
";
    let cfg = client_config(&w.ca.pem, None, &[]).unwrap();

    // Without the grant the exact listener is not served: a.example.com falls to the wildcard
    // listener and its certificate.
    let gw = start_inline(moved.clone()).await;
    let s = pki::connect(
        https_addr(&gw),
        Some("a.example.com"),
        "a.example.com",
        cfg.clone(),
    )
    .await
    .unwrap();
    assert_eq!(pki::presented_names(&s), vec!["*.example.com"]);
    let r = pki::get_over(s, "a.example.com", "/").await.unwrap();
    assert!(r.body.contains("w-pod"), "{}", r.body);
    drop(gw);

    let gw = start_inline(moved + grant).await;
    let s = pki::connect(https_addr(&gw), Some("a.example.com"), "a.example.com", cfg)
        .await
        .unwrap();
    assert_eq!(pki::presented_names(&s), vec!["a.example.com"]);
    let r = pki::get_over(s, "a.example.com", "/").await.unwrap();
    assert!(r.body.contains("a-pod"), "{}", r.body);
}
