//! TLS origination end to end: BackendTLSPolicy and DestinationRule `tls` towards real TLS echo
//! backends — SNI, trust anchors, subject alt names, client certificates, expired and untrusted
//! servers answered with 503, and pooled connections never shared across trust settings.

mod common;

use common::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use waygate_conformance::echo::{EchoIdentity, EchoServer, PodMemory, tls::server_config};
use waygate_conformance::pki::{Issued, TestCa, ca_config_map_yaml, tls_secret_yaml};

/// An HTTPS echo serving `cert`; with `client_ca` it asks for (and checks) client certificates.
async fn tls_echo(ns: &str, svc: &str, cert: &Issued, client_ca: Option<&str>) -> EchoServer {
    EchoServer::start_tls(
        "127.0.0.1:0".parse().unwrap(),
        EchoIdentity::new(ns, svc, format!("{svc}-pod")),
        server_config(cert, client_ca).unwrap(),
        PodMemory::new(),
    )
    .await
    .unwrap()
}

/// A Service `apps/name` whose port 443 (name `https`) points at `ep`.
fn tls_service(name: &str, ep: SocketAddr) -> String {
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: apps}}\nspec:\n  ports:\n  - {{name: https, port: 443}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-0\n  namespace: apps\n  labels: {{kubernetes.io/service-name: {name}}}\naddressType: IPv4\nports:\n- {{name: https, port: {}}}\nendpoints:\n- addresses: [\"{}\"]\n",
        ep.port(),
        ep.ip()
    )
}

/// A BackendTLSPolicy on `apps/svc` trusting ConfigMap `ca`, with SNI `hostname`.
fn policy(name: &str, svc: &str, ca: &str, hostname: &str, extra: &str) -> String {
    format!(
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\nmetadata: {{name: {name}, namespace: apps}}\nspec:\n  targetRefs: [{{group: \"\", kind: Service, name: {svc}}}]\n  validation:\n    caCertificateRefs: [{{group: \"\", kind: ConfigMap, name: {ca}}}]\n    hostname: {hostname}\n{extra}"
    )
}

/// Routes `/<svc>` to each Service's port 443.
fn routes(services: &[&str]) -> String {
    let rules: String = services
        .iter()
        .map(|s| {
            format!(
                "  - matches: [{{path: {{type: PathPrefix, value: /{s}}}}}]\n    backendRefs: [{{name: {s}, port: 443}}]\n"
            )
        })
        .collect();
    route("apps", "r", &format!("  rules:\n{rules}"))
}

/// The TLS facts the echo reported.
fn echo_tls(r: &Reply) -> serde_json::Value {
    r.json()["tls"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_tls_policy_verifies_the_backend_and_sends_its_hostname() {
    let ca = TestCa::new("backends").unwrap();
    let other = TestCa::new("someone else").unwrap();
    let cert = ca
        .server_with_uri(&["abc.example.com"], "spiffe://abc.example.com/backend")
        .unwrap();
    let good = tls_echo("apps", "good", &cert, None).await;
    let expired = tls_echo(
        "apps",
        "expired",
        &ca.expired_server(&["abc.example.com"]).unwrap(),
        None,
    )
    .await;
    let sans = |list: &str| format!("    subjectAltNames: [{list}]\n");
    let yaml = gateway_yaml()
        + &routes(&["good", "wrong-name", "by-uri", "by-bad-uri", "expired"])
        + &ca_config_map_yaml("apps", "ca", &ca.pem)
        + &ca_config_map_yaml("apps", "other-ca", &other.pem)
        + &tls_service("good", good.addr)
        + &tls_service("wrong-name", good.addr)
        + &tls_service("by-uri", good.addr)
        + &tls_service("by-bad-uri", good.addr)
        + &tls_service("expired", expired.addr)
        + &policy("good", "good", "ca", "abc.example.com", "")
        + &policy("wrong-name", "wrong-name", "ca", "xyz.example.com", "")
        + &policy(
            "by-uri",
            "by-uri",
            "ca",
            "xyz.example.com",
            &sans("{type: URI, uri: \"spiffe://abc.example.com/backend\"}"),
        )
        + &policy(
            "by-bad-uri",
            "by-bad-uri",
            "ca",
            "abc.example.com",
            &sans("{type: URI, uri: \"spiffe://evil.example.com/backend\"}"),
        )
        + &policy("expired", "expired", "ca", "abc.example.com", "");
    captured_logs();
    let gw = start_inline(yaml).await;
    let addr = gw_addr(&gw);

    let r = get(addr, "shop.example.com", "/good").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(echo_tls(&r)["serverName"], "abc.example.com");
    // The Host header is the client's, not the policy's hostname.
    assert_eq!(r.json()["host"], "shop.example.com");

    // The certificate does not name xyz.example.com; with a URI SAN listed, the URI decides.
    assert_eq!(
        get(addr, "shop.example.com", "/wrong-name").await.status,
        503
    );
    let r = get(addr, "shop.example.com", "/by-uri").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(echo_tls(&r)["serverName"], "xyz.example.com");
    assert_eq!(
        get(addr, "shop.example.com", "/by-bad-uri").await.status,
        503
    );
    let r = get(addr, "shop.example.com", "/expired").await;
    assert_eq!(r.status, 503);
    assert!(r.body.contains("upstream connect error"), "{}", r.body);
    // The log says which request failed and why.
    let line = log_line_with(&["/expired", "xpired"]).await;
    assert!(line.is_some(), "no log line naming the expired certificate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_connection_is_never_reused_by_a_route_that_must_reject_the_server() {
    let ca = TestCa::new("backends").unwrap();
    let other = TestCa::new("someone else").unwrap();
    let backend = tls_echo(
        "apps",
        "shared",
        &ca.server(&["abc.example.com"]).unwrap(),
        None,
    )
    .await;
    // Two Services, one endpoint (behind a connection-counting forwarder): one trusts the
    // backend's CA, one trusts another CA.
    let (front, connections) = counting_forwarder(backend.addr).await;
    let yaml = gateway_yaml()
        + &routes(&["trusting", "strict"])
        + &ca_config_map_yaml("apps", "ca", &ca.pem)
        + &ca_config_map_yaml("apps", "other-ca", &other.pem)
        + &tls_service("trusting", front)
        + &tls_service("strict", front)
        + &policy("trusting", "trusting", "ca", "abc.example.com", "")
        + &policy("strict", "strict", "other-ca", "abc.example.com", "");
    let gw = start_inline(yaml).await;
    let addr = gw_addr(&gw);
    // The pool is really in use: sequential requests share upstream connections. A connection
    // goes back to the pool just after its response, so a request arriving at once may still
    // open another: leave it a moment, and ask only for reuse, not for exactly one.
    for _ in 0..5 {
        assert_eq!(get(addr, "a.example.com", "/trusting").await.status, 200);
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    let opened = connections.load(Ordering::SeqCst);
    assert!(
        opened <= 2,
        "the test needs a warm pool ({opened} connections for 5 requests)"
    );
    for _ in 0..3 {
        let ok = get(addr, "a.example.com", "/trusting").await;
        assert_eq!(ok.status, 200);
        let refused = get(addr, "a.example.com", "/strict").await;
        assert_eq!(refused.status, 503, "reused a connection it must not trust");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_rule_simple_mutual_and_insecure_skip_verify() {
    let ca = TestCa::new("backends").unwrap();
    let clients = TestCa::new("clients").unwrap();
    let untrusted = TestCa::new("nobody trusts me").unwrap();
    let gateway_id = clients
        .client("spiffe://cluster.local/ns/infra/sa/gw")
        .unwrap();
    let wants_client = tls_echo(
        "apps",
        "mutual",
        &ca.server(&["mutual.apps.svc.cluster.local"]).unwrap(),
        Some(&clients.pem),
    )
    .await;
    let simple = tls_echo(
        "apps",
        "simple",
        &ca.server(&["backend.internal"]).unwrap(),
        None,
    )
    .await;
    let sketchy = tls_echo(
        "apps",
        "sketchy",
        &untrusted.server(&["whatever"]).unwrap(),
        None,
    )
    .await;
    let ca_secret = format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: backend-ca, namespace: apps}}\nstringData:\n  ca.crt: |\n{}",
        ca.pem
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    );
    let dr = |name: &str, host: &str, tls: &str| {
        format!(
            "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, namespace: apps}}\nspec:\n  host: {host}\n  trafficPolicy:\n    tls: {tls}\n"
        )
    };
    let mut mutual_secret = tls_secret_yaml("apps", "gw-client", &gateway_id);
    // A MUTUAL credential carries the CA too.
    mutual_secret.push_str(&format!("  ca.crt: {}\n", base64_of(&ca.pem)));
    let yaml = gateway_yaml()
        + &routes(&["mutual", "simple", "sketchy"])
        + &ca_secret
        + &mutual_secret
        + &tls_service("mutual", wants_client.addr)
        + &tls_service("simple", simple.addr)
        + &tls_service("sketchy", sketchy.addr)
        + &dr(
            "mutual",
            "mutual",
            "{mode: MUTUAL, credentialName: gw-client}",
        )
        + &dr(
            "simple",
            "simple.apps.svc.cluster.local",
            "{mode: SIMPLE, credentialName: backend-ca, sni: backend.internal}",
        )
        + &dr(
            "sketchy",
            "\"*.apps.svc.cluster.local\"",
            "{mode: SIMPLE, insecureSkipVerify: true}",
        );
    let gw = start_inline(yaml).await;
    let addr = gw_addr(&gw);

    // SNI defaults to the Host the backend sees; the client certificate is presented.
    let r = get(addr, "mutual.apps.svc.cluster.local", "/mutual").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let tls = echo_tls(&r);
    assert_eq!(tls["serverName"], "mutual.apps.svc.cluster.local");
    assert_eq!(
        tls["peerCertificates"][0].as_str().unwrap(),
        gateway_id.cert_pem
    );

    let r = get(addr, "shop.example.com", "/simple").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(echo_tls(&r)["serverName"], "backend.internal");
    assert_eq!(echo_tls(&r)["peerCertificates"], serde_json::json!([]));

    let r = get(addr, "whatever", "/sketchy").await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_policy_fails_closed_and_says_why() {
    let ca = TestCa::new("backends").unwrap();
    let backend = tls_echo("apps", "b", &ca.server(&["abc.example.com"]).unwrap(), None).await;
    let plain = echo("apps", "plain", "plain-pod").await;
    // The policy names a ConfigMap that does not exist: no plaintext fallback.
    let yaml = gateway_yaml()
        + &routes(&["b"])
        + &tls_service("b", backend.addr)
        + &service_yaml("apps", "plain", &[plain.addr])
        + &policy("b", "b", "missing-ca", "abc.example.com", "");
    let gw = start_inline(yaml).await;
    let r = get(gw_addr(&gw), "x", "/b").await;
    assert_eq!(r.status, 503);
    let status = admin_get(&gw, "/status").await.json();
    let p = status
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "BackendTLSPolicy")
        .unwrap()
        .clone();
    let cond = |t: &str| {
        p["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == t)
            .unwrap()
            .clone()
    };
    assert_eq!(cond("Accepted")["reason"], "NoValidCACertificate");
    assert_eq!(cond("ResolvedRefs")["reason"], "InvalidCACertificateRef");
    assert_eq!(p["parents"][0]["parentRef"]["name"], "gw");
}

/// A TCP forwarder to `to` that counts the connections it accepts.
async fn counting_forwarder(to: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (addr, count)
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}
