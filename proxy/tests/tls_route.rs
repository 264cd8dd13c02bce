//! TLS listeners and TLSRoute end to end: passthrough by SNI (bytes untouched, the client's TLS
//! session ends at the backend), weights, terminate to a plaintext backend, terminate,
//! passthrough and HTTPS sharing one port, and connections nothing serves closed without an
//! alert.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use waygate_config::NsName;
use waygate_conformance::echo::{EchoIdentity, EchoServer, PodMemory, tls::server_config};
use waygate_conformance::pki::{self, Issued, TestCa, client_config, tls_secret_yaml};

const PORT: u16 = 8443;

/// A Gateway with the given listeners on port 8443 (each YAML flow mapping).
fn gateway(listeners: &[String]) -> String {
    let mut out = String::from(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: infra}\nspec:\n  gatewayClassName: istio\n  listeners:\n",
    );
    for l in listeners {
        out.push_str(&format!("  - {l}\n"));
    }
    out
}

fn passthrough(name: &str, host: &str) -> String {
    format!(
        "{{name: {name}, port: {PORT}, protocol: TLS, hostname: \"{host}\", tls: {{mode: Passthrough}}, allowedRoutes: {{namespaces: {{from: All}}}}}}"
    )
}

fn terminate(name: &str, host: &str, secret: &str) -> String {
    format!(
        "{{name: {name}, port: {PORT}, protocol: TLS, hostname: \"{host}\", tls: {{mode: Terminate, certificateRefs: [{{name: {secret}}}]}}, allowedRoutes: {{namespaces: {{from: All}}}}}}"
    )
}

/// A TLSRoute on listener `section` for `host` to weighted Services (port 443).
fn tls_route(name: &str, section: &str, host: &str, backends: &[(&str, u32)]) -> String {
    let refs: Vec<String> = backends
        .iter()
        .map(|(s, w)| format!("{{name: {s}, port: 443, weight: {w}}}"))
        .collect();
    format!(
        "---\napiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TLSRoute\nmetadata: {{name: {name}, namespace: apps}}\nspec:\n  parentRefs: [{{name: gw, namespace: infra, sectionName: {section}}}]\n  hostnames: [\"{host}\"]\n  rules: [{{backendRefs: [{}]}}]\n",
        refs.join(", ")
    )
}

/// Service `apps/name` port 443 to `ep`.
fn svc(name: &str, ep: SocketAddr) -> String {
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: apps}}\nspec:\n  ports: [{{name: tcp, port: 443}}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}-0, namespace: apps, labels: {{kubernetes.io/service-name: {name}}}}}\naddressType: IPv4\nports: [{{name: tcp, port: {}}}]\nendpoints: [{{addresses: [\"{}\"]}}]\n",
        ep.port(),
        ep.ip()
    )
}

async fn tls_echo(name: &str, cert: &Issued) -> EchoServer {
    EchoServer::start_tls(
        "127.0.0.1:0".parse().unwrap(),
        EchoIdentity::new("apps", name, format!("{name}-pod")),
        server_config(cert, None).unwrap(),
        PodMemory::new(),
    )
    .await
    .unwrap()
}

fn port_addr(gw: &waygate::gateway::Gateway) -> SocketAddr {
    gw.bound_addr(&NsName::new("infra", "gw"), PORT).unwrap()
}

/// A TCP server that records every byte of each connection and answers nothing.
async fn recorder() -> (SocketAddr, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut all = Vec::new();
                let _ = s.read_to_end(&mut all).await;
                log.lock().unwrap().push(all);
            });
        }
    });
    (addr, seen)
}

/// A ClientHello for `sni` as a real rustls client would send it.
fn client_hello(sni: &str) -> Vec<u8> {
    let ca = TestCa::new("x").unwrap();
    let cfg = client_config(&ca.pem, None, &[]).unwrap();
    let mut conn = rustls::ClientConnection::new(cfg, sni.to_string().try_into().unwrap()).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_routes_by_sni_and_leaves_the_bytes_alone() {
    let ca = TestCa::new("backends").unwrap();
    let backend = tls_echo("abc", &ca.server(&["abc.example.com"]).unwrap()).await;
    let (rec, recorded) = recorder().await;
    let yaml = gateway(&[passthrough("tls", "*.example.com")])
        + &tls_route("to-abc", "tls", "abc.example.com", &[("abc", 1)])
        + &tls_route("to-rec", "tls", "raw.example.com", &[("rec", 1)])
        + &svc("abc", backend.addr)
        + &svc("rec", rec);
    let gw = start_inline(yaml).await;
    let addr = port_addr(&gw);

    // The client's TLS session ends at the backend: its certificate, its SNI, intact records.
    let cfg = client_config(&ca.pem, None, &[]).unwrap();
    let s = pki::connect(
        addr,
        Some("abc.example.com"),
        "abc.example.com",
        cfg.clone(),
    )
    .await
    .unwrap();
    assert_eq!(pki::presented_names(&s), vec!["abc.example.com"]);
    let r = pki::get_over(s, "abc.example.com", "/through")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let echo: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(echo["pod"], "abc-pod");
    assert_eq!(echo["tls"]["serverName"], "abc.example.com");

    // Byte for byte: the hello and whatever follows arrive unchanged.
    let mut sent = client_hello("raw.example.com");
    sent.extend((0..=255u8).cycle().take(70_000));
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(&sent).await.unwrap();
    c.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest).await;
    let mut got = None;
    for _ in 0..100 {
        if let Some(b) = recorded.lock().unwrap().first().cloned() {
            got = Some(b);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        got.as_deref() == Some(&sent[..]),
        "bytes changed in passthrough"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sni_nothing_serves_is_closed_without_an_alert() {
    let ca = TestCa::new("backends").unwrap();
    let backend = tls_echo("abc", &ca.server(&["abc.example.com"]).unwrap()).await;
    let yaml = gateway(&[passthrough("tls", "*.example.com")])
        + &tls_route("to-abc", "tls", "abc.example.com", &[("abc", 1)])
        + &svc("abc", backend.addr);
    let gw = start_inline(yaml).await;
    let cfg = client_config(&ca.pem, None, &[]).unwrap();
    for sni in ["other.example.com", "abc.example.org"] {
        let e = pki::connect(port_addr(&gw), Some(sni), sni, cfg.clone())
            .await
            .unwrap_err();
        // EOF or reset, never a TLS alert from someone pretending to be the server.
        assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ),
            "{sni}: {e:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_splits_connections_by_weight() {
    let ca = TestCa::new("backends").unwrap();
    let cert = ca.server(&["abc.example.com"]).unwrap();
    let a = tls_echo("a", &cert).await;
    let b = tls_echo("b", &cert).await;
    let yaml = gateway(&[passthrough("tls", "*.example.com")])
        + &tls_route("split", "tls", "abc.example.com", &[("a", 1), ("b", 3)])
        + &svc("a", a.addr)
        + &svc("b", b.addr);
    let gw = start_inline(yaml).await;
    let cfg = client_config(&ca.pem, None, &[]).unwrap();
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..200 {
        let r = pki::https_get(
            port_addr(&gw),
            Some("abc.example.com"),
            "abc.example.com",
            "/",
            cfg.clone(),
        )
        .await
        .unwrap();
        let echo: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        *count
            .entry(echo["pod"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    // 25% / 75%: with 200 tries, outside 10%..40% for `a` is a broken split (p < 1e-5).
    let a_share = count.get("a-pod").copied().unwrap_or(0);
    assert!((20..=80).contains(&a_share), "{count:?}");
    assert_eq!(a_share + count.get("b-pod").copied().unwrap_or(0), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_passthrough_and_https_share_a_port_by_sni() {
    let ca = TestCa::new("all").unwrap();
    let plain = echo("apps", "plain", "plain-pod").await;
    let through = tls_echo("through", &ca.server(&["abc.example.com"]).unwrap()).await;
    let https_backend = echo("apps", "web", "web-pod").await;
    let https = format!(
        "{{name: web, port: {PORT}, protocol: HTTPS, hostname: web.example.com, tls: {{certificateRefs: [{{name: web-cert}}]}}, allowedRoutes: {{namespaces: {{from: All}}}}}}"
    );
    let yaml = gateway(&[
        terminate("term", "tls.example.com", "term-cert"),
        passthrough("pass", "abc.example.com"),
        https,
    ]) + &tls_route("t", "term", "tls.example.com", &[("plain", 1)])
        + &tls_route("p", "pass", "abc.example.com", &[("through", 1)])
        + &svc("plain", plain.addr)
        + &svc("through", through.addr)
        + &service_yaml("apps", "web", &[https_backend.addr])
        + "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: web, namespace: apps}\nspec:\n  parentRefs: [{name: gw, namespace: infra, sectionName: web}]\n  rules: [{backendRefs: [{name: web, port: 8080}]}]\n"
        + &tls_secret_yaml(
            "infra",
            "term-cert",
            &ca.server(&["tls.example.com"]).unwrap(),
        )
        + &tls_secret_yaml(
            "infra",
            "web-cert",
            &ca.server(&["web.example.com"]).unwrap(),
        );
    let gw = start_inline(yaml).await;
    let addr = port_addr(&gw);
    let cfg = client_config(&ca.pem, None, &[]).unwrap();

    // Terminated by the gateway: its certificate, then plaintext HTTP reaches the backend.
    let s = pki::connect(
        addr,
        Some("tls.example.com"),
        "tls.example.com",
        cfg.clone(),
    )
    .await
    .unwrap();
    assert_eq!(pki::presented_names(&s), vec!["tls.example.com"]);
    let r = pki::get_over(s, "tls.example.com", "/t").await.unwrap();
    let echo: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(echo["pod"], "plain-pod");
    assert!(echo["tls"].is_null(), "the backend leg is plaintext");

    // Passed through: the backend's certificate and TLS.
    let s = pki::connect(
        addr,
        Some("abc.example.com"),
        "abc.example.com",
        cfg.clone(),
    )
    .await
    .unwrap();
    assert_eq!(pki::presented_names(&s), vec!["abc.example.com"]);
    let r = pki::get_over(s, "abc.example.com", "/p").await.unwrap();
    let echo: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(echo["pod"], "through-pod");
    assert_eq!(echo["tls"]["serverName"], "abc.example.com");

    // HTTPS on the same port, HTTP/2 by ALPN.
    let h2 = client_config(&ca.pem, None, &[b"h2"]).unwrap();
    let r = pki::https_get(addr, Some("web.example.com"), "web.example.com", "/w", h2)
        .await
        .unwrap();
    assert_eq!((r.status, r.version), (200, http::Version::HTTP_2));
    assert!(r.body.contains("web-pod"));
}
