//! The waypoint's HBONE inbound end to end: identities from `waygate dev-ca`, a real HBONE
//! client (mTLS 1.3 + HTTP/2 CONNECT), tunnels to the Services bound with
//! `istio.io/use-waypoint`, stream-level refusal of other destinations, handshake refusal of
//! clients without a trusted identity, and 1,000 concurrent tunnels on one connection.

mod common;

use common::*;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use waygate::BindPlan;
use waygate::gateway::{ConfigSource, Gateway, GatewayOptions};
use waygate::mesh::{IdentityFiles, dev_ca};
use waygate_config::NsName;
use waygate_conformance::hbone::{HboneClient, TunnelError, client_config};
use waygate_conformance::pki::{Issued, TestCa};

const WAYPOINT_ID: &str = "spiffe://cluster.local/ns/mesh/sa/waypoint";
const VIP: &str = "10.96.0.10";

fn issued(dir: &Path, ns: &str, sa: &str) -> Issued {
    let (cert, key) = dev_ca::issue(dir, "cluster.local", ns, sa).unwrap();
    Issued {
        cert_pem: std::fs::read_to_string(cert).unwrap(),
        key_pem: std::fs::read_to_string(key).unwrap(),
    }
}

struct Mesh {
    dir: tempfile::TempDir,
    gw: Arc<Gateway>,
    addr: SocketAddr,
    ca_pem: String,
    _echo: waygate_conformance::echo::EchoServer,
}

async fn mesh() -> Mesh {
    mesh_with("").await
}

async fn mesh_with(extra: &str) -> Mesh {
    let dir = tempfile::tempdir().unwrap();
    let ca = dev_ca::init(dir.path(), "cluster.local", false).unwrap();
    let (cert, key) = dev_ca::issue(dir.path(), "cluster.local", "mesh", "waypoint").unwrap();
    let echo = echo("apps", "reviews", "reviews-v1").await;
    let yaml = format!(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: waypoint, namespace: mesh}}
spec:
  gatewayClassName: istio-waypoint
  listeners:
  - {{name: mesh, port: 15008, protocol: HBONE, allowedRoutes: {{namespaces: {{from: All}}}}}}
---
apiVersion: v1
kind: Service
metadata:
  name: reviews
  namespace: apps
  labels: {{istio.io/use-waypoint: waypoint, istio.io/use-waypoint-namespace: mesh}}
spec:
  clusterIP: {VIP}
  ports: [{{name: http, port: 9080}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: reviews-1, namespace: apps, labels: {{kubernetes.io/service-name: reviews}}}}
addressType: IPv4
ports: [{{name: http, port: {}}}]
endpoints: [{{addresses: ["{}"]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: unbound, namespace: apps}}
spec:
  clusterIP: 10.96.0.11
  ports: [{{name: http, port: 9080}}]
"#,
        echo.addr.port(),
        echo.addr.ip()
    ) + extra;
    let gw = Gateway::start(GatewayOptions {
        source: ConfigSource::Inline {
            name: "mesh.yaml".into(),
            text: yaml,
        },
        bind: BindPlan::Ephemeral("127.0.0.1".parse().unwrap()),
        admin: Some("127.0.0.1:0".parse().unwrap()),
        gateways: vec![],
        watch: false,
        dns_server: None,
        identity: Some(IdentityFiles {
            cert,
            key,
            trust_bundle: ca.clone(),
            trust_domain: "cluster.local".into(),
        }),
    })
    .await
    .unwrap();
    let addr = gw
        .bound_addr(&NsName::new("mesh", "waypoint"), 15008)
        .unwrap();
    Mesh {
        ca_pem: std::fs::read_to_string(ca).unwrap(),
        dir,
        gw,
        addr,
        _echo: echo,
    }
}

/// One HTTP/1.1 GET through a tunnel; (status, body).
async fn get_through(
    client: &HboneClient,
    dest: &str,
    path: &str,
) -> Result<(u16, String), String> {
    let tunnel = client
        .open(dest.parse().unwrap())
        .await
        .map_err(|e| e.to_string())?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tunnel))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", "reviews.apps.svc.cluster.local:9080")
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mesh_client_reaches_a_bound_service_with_its_identity() {
    let m = mesh().await;
    let curl = issued(m.dir.path(), "apps", "curl");
    let config = client_config(&m.ca_pem, Some(&curl), WAYPOINT_ID).unwrap();
    let client = HboneClient::connect(m.addr, "waypoint.mesh", config)
        .await
        .unwrap();
    let (status, body) = get_through(&client, &format!("{VIP}:9080"), "/ratings")
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echo["pod"], "reviews-v1");
    // The backend learns the caller's identity from the waypoint; the scheme stays http.
    let header = |name: &str| echo["headers"][name][0].as_str().unwrap_or("").to_string();
    assert!(
        header("X-Forwarded-Client-Cert").ends_with(";URI=spiffe://cluster.local/ns/apps/sa/curl"),
        "{echo}"
    );
    assert_eq!(header("X-Forwarded-Proto"), "http");

    // A destination this waypoint does not serve is refused on its stream only.
    for dest in ["10.96.0.11:9080", "10.96.0.10:1234", "192.0.2.1:80"] {
        match client.open(dest.parse().unwrap()).await {
            Err(TunnelError::Refused(503)) => {}
            Err(e) => panic!("{dest}: {e}"),
            Ok(_) => panic!("{dest}: tunnel opened"),
        }
    }
    let (status, _) = get_through(&client, &format!("{VIP}:9080"), "/again")
        .await
        .unwrap();
    assert_eq!(status, 200, "the connection survives a refused stream");
    drop(m.gw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_without_a_trusted_identity_cannot_open_a_tunnel() {
    let m = mesh().await;
    let other = TestCa::new("another mesh").unwrap();
    let stranger = other
        .client("spiffe://cluster.local/ns/apps/sa/curl")
        .unwrap();
    for identity in [None, Some(&stranger)] {
        let config = client_config(&m.ca_pem, identity, WAYPOINT_ID).unwrap();
        let outcome = async {
            let c = HboneClient::connect(m.addr, "waypoint.mesh", config).await?;
            c.open(format!("{VIP}:9080").parse()?)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))
        }
        .await;
        assert!(
            outcome.is_err(),
            "a tunnel opened for {:?}",
            identity.map(|_| "stranger")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_tunnels_share_one_connection() {
    let m = mesh().await;
    let curl = issued(m.dir.path(), "apps", "curl");
    let config = client_config(&m.ca_pem, Some(&curl), WAYPOINT_ID).unwrap();
    let client = HboneClient::connect(m.addr, "waypoint.mesh", config)
        .await
        .unwrap();
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                get_through(&client, &format!("{VIP}:9080"), &format!("/n/{i}")).await
            })
        })
        .collect();
    let mut ok = 0;
    let mut errors = std::collections::BTreeMap::new();
    for t in tasks {
        match t.await {
            Ok(Ok((200, _))) => ok += 1,
            Ok(Ok((status, _))) => *errors.entry(format!("status {status}")).or_insert(0) += 1,
            Ok(Err(e)) => *errors.entry(e).or_insert(0) += 1,
            Err(e) => *errors.entry(e.to_string()).or_insert(0) += 1,
        }
    }
    assert_eq!(ok, 1000, "{errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_attached_route_splits_mesh_traffic_90_10() {
    let v1 = echo("apps", "reviews-v1", "reviews-v1-pod").await;
    let v2 = echo("apps", "reviews-v2", "reviews-v2-pod").await;
    let route = r#"
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews-split, namespace: apps}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, port: 9080}]
  rules:
  - backendRefs:
    - {name: reviews-v1, port: 8080, weight: 90}
    - {name: reviews-v2, port: 8080, weight: 10}
"#
    .to_string()
        + &service_yaml("apps", "reviews-v1", &[v1.addr])
        + &service_yaml("apps", "reviews-v2", &[v2.addr]);
    let m = mesh_with(&route).await;
    let (accepted, _) = route_condition(&m.gw, "apps", "reviews-split", "Accepted").await;
    assert_eq!(accepted, "True");

    let curl = issued(m.dir.path(), "apps", "curl");
    let config = client_config(&m.ca_pem, Some(&curl), WAYPOINT_ID).unwrap();
    let client = HboneClient::connect(m.addr, "waypoint.mesh", config)
        .await
        .unwrap();
    // One tunnel, keep-alive requests over it, as a mesh client's connection would carry.
    let tunnel = client
        .open(format!("{VIP}:9080").parse().unwrap())
        .await
        .unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tunnel))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut v2_count = 0;
    const N: usize = 1000;
    for i in 0..N {
        let req = http::Request::get(format!("/r/{i}"))
            .header("host", "reviews.apps.svc.cluster.local:9080")
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        send.ready().await.unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let echo: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if echo["pod"] == "reviews-v2-pod" {
            v2_count += 1;
        } else {
            assert_eq!(echo["pod"], "reviews-v1-pod");
        }
    }
    // 10% of 1,000: outside 5%..15% is a broken split (p < 1e-9).
    assert!((50..=150).contains(&v2_count), "v2 got {v2_count} of {N}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_identity_is_served_to_new_handshakes() {
    let dir = tempfile::tempdir().unwrap();
    let (old_ca, new_ca) = (dir.path().join("old"), dir.path().join("new"));
    let old_bundle = dev_ca::init(&old_ca, "cluster.local", false).unwrap();
    let new_bundle = dev_ca::init(&new_ca, "cluster.local", false).unwrap();
    // The files the waypoint reads: its identity and bundle, from the old CA for now.
    let live = dir.path().join("live");
    std::fs::create_dir_all(&live).unwrap();
    let install = |ca_dir: &Path, bundle: &Path| {
        let (c, k) = dev_ca::issue(ca_dir, "cluster.local", "mesh", "waypoint").unwrap();
        for (from, to) in [
            (c, "id.crt"),
            (k, "id.key"),
            (bundle.to_path_buf(), "bundle.crt"),
        ] {
            let tmp = live.join(format!("{to}.tmp"));
            std::fs::copy(from, &tmp).unwrap();
            std::fs::rename(&tmp, live.join(to)).unwrap();
        }
    };
    install(&old_ca, &old_bundle);
    let config = dir.path().join("mesh.yaml");
    std::fs::write(
        &config,
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: waypoint, namespace: mesh}\nspec:\n  gatewayClassName: istio-waypoint\n  listeners: [{name: mesh, port: 15008, protocol: HBONE, allowedRoutes: {namespaces: {from: All}}}]\n",
    )
    .unwrap();
    let gw = Gateway::start(GatewayOptions {
        source: ConfigSource::Path(config),
        bind: BindPlan::Ephemeral("127.0.0.1".parse().unwrap()),
        admin: None,
        gateways: vec![],
        watch: true,
        dns_server: None,
        identity: Some(IdentityFiles {
            cert: live.join("id.crt"),
            key: live.join("id.key"),
            trust_bundle: live.join("bundle.crt"),
            trust_domain: "cluster.local".into(),
        }),
    })
    .await
    .unwrap();
    let addr = gw
        .bound_addr(&NsName::new("mesh", "waypoint"), 15008)
        .unwrap();
    let connects = |ca_dir: std::path::PathBuf| async move {
        let ca_pem = std::fs::read_to_string(ca_dir.join(dev_ca::CA_CERT)).unwrap();
        let curl = issued(&ca_dir, "apps", "curl");
        let config = client_config(&ca_pem, Some(&curl), WAYPOINT_ID).unwrap();
        // A refused destination still proves the handshake and HTTP/2 worked.
        match HboneClient::connect(addr, "waypoint.mesh", config).await {
            Ok(c) => matches!(
                c.open("192.0.2.1:80".parse().unwrap()).await,
                Err(TunnelError::Refused(503))
            ),
            Err(_) => false,
        }
    };
    assert!(connects(old_ca.clone()).await);
    assert!(!connects(new_ca.clone()).await);

    install(&new_ca, &new_bundle);
    let mut rotated = false;
    for _ in 0..200 {
        if connects(new_ca.clone()).await {
            rotated = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(rotated, "new handshakes never used the rotated identity");
    assert!(
        !connects(old_ca).await,
        "the old trust bundle is still accepted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingress_gateway_reaches_a_waypointed_service_only_through_its_waypoint() {
    captured_logs();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dev_ca::init(dir.path(), "cluster.local", false).unwrap();
    let identity = |ns: &str, sa: &str| {
        let (cert, key) = dev_ca::issue(dir.path(), "cluster.local", ns, sa).unwrap();
        IdentityFiles {
            cert,
            key,
            trust_bundle: bundle.clone(),
            trust_domain: "cluster.local".into(),
        }
    };
    let backend = echo("apps", "reviews", "reviews-v1").await;
    // With or without `istio.io/ingress-use-waypoint` ([AM-4]), the ingress goes through the
    // waypoint: L7 policy there always applies.
    let reviews_labelled = |ingress_label: &str| {
        format!(
            "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: reviews\n  namespace: apps\n  labels: {{istio.io/use-waypoint: waypoint, istio.io/use-waypoint-namespace: mesh{ingress_label}}}\nspec:\n  clusterIP: {VIP}\n  ports: [{{name: http, port: 9080}}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: reviews-1, namespace: apps, labels: {{kubernetes.io/service-name: reviews}}}}\naddressType: IPv4\nports: [{{name: http, port: {}}}]\nendpoints: [{{addresses: [\"{}\"]}}]\n",
            backend.addr.port(),
            backend.addr.ip()
        )
    };
    let reviews = reviews_labelled(", istio.io/ingress-use-waypoint: \"true\"");
    let start = |yaml: String, id: IdentityFiles| async move {
        Gateway::start(GatewayOptions {
            source: ConfigSource::Inline {
                name: "t.yaml".into(),
                text: yaml,
            },
            bind: BindPlan::Ephemeral("127.0.0.1".parse().unwrap()),
            admin: None,
            gateways: vec![],
            watch: false,
            dns_server: None,
            identity: Some(id),
        })
        .await
        .unwrap()
    };
    let waypoint = start(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: waypoint, namespace: mesh}\nspec:\n  gatewayClassName: istio-waypoint\n  listeners: [{name: mesh, port: 15008, protocol: HBONE, allowedRoutes: {namespaces: {from: All}}}]\n".to_string() + &reviews,
        identity("mesh", "waypoint"),
    )
    .await;
    let wp = waypoint
        .bound_addr(&NsName::new("mesh", "waypoint"), 15008)
        .unwrap();

    // The ingress: HTTPS for clients; the waypoint's own Service holds its HBONE endpoint.
    let web_ca = TestCa::new("web").unwrap();
    let web_secret = waygate_conformance::pki::tls_secret_yaml(
        "infra",
        "web",
        &web_ca.server(&["shop.example.com"]).unwrap(),
    );
    let ingress_yaml_for = |wp: SocketAddr, reviews: &str| {
        format!(
            r#"apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: infra}}
spec:
  gatewayClassName: istio
  listeners:
  - {{name: https, port: 443, protocol: HTTPS, hostname: shop.example.com, tls: {{certificateRefs: [{{name: web}}]}}, allowedRoutes: {{namespaces: {{from: All}}}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: shop, namespace: apps}}
spec:
  parentRefs: [{{name: gw, namespace: infra}}]
  rules: [{{backendRefs: [{{name: reviews, port: 9080}}]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: waypoint, namespace: mesh}}
spec: {{ports: [{{name: mesh, port: 15008}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: waypoint-1, namespace: mesh, labels: {{kubernetes.io/service-name: waypoint}}}}
addressType: IPv4
ports: [{{name: mesh, port: {}}}]
endpoints: [{{addresses: ["{}"]}}]
"#,
            wp.port(),
            wp.ip()
        ) + reviews
            + &web_secret
    };
    let ingress = start(ingress_yaml_for(wp, &reviews), identity("infra", "ingress")).await;
    let https = ingress
        .bound_addr(&NsName::new("infra", "gw"), 443)
        .unwrap();
    let cfg = waygate_conformance::pki::client_config(&web_ca.pem, None, &[]).unwrap();
    let r = waygate_conformance::pki::https_get(
        https,
        Some("shop.example.com"),
        "shop.example.com",
        "/via-waypoint",
        cfg.clone(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let echo: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(echo["pod"], "reviews-v1");
    // The waypoint saw the ingress's identity: it put it in XFCC and in its access log.
    let ingress_id = "spiffe://cluster.local/ns/infra/sa/ingress";
    let xfcc = echo["headers"]["X-Forwarded-Client-Cert"][0]
        .as_str()
        .unwrap_or("");
    assert!(xfcc.ends_with(&format!(";URI={ingress_id}")), "{echo}");
    // The client spoke HTTPS to the ingress; the waypoint keeps the mesh sender's word for it.
    assert_eq!(echo["headers"]["X-Forwarded-Proto"][0], "https", "{echo}");
    assert!(
        log_line_with(&["/via-waypoint", "peer_identity", ingress_id])
            .await
            .is_some(),
        "no waypoint access-log line with the ingress identity"
    );

    // Fail closed: when the waypoint cannot be reached, the ingress answers 503 and never goes
    // to the endpoints directly.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let unreachable_yaml = ingress_yaml_for(dead, &reviews);
    let ingress2 = start(unreachable_yaml, identity("infra", "ingress")).await;
    let https2 = ingress2
        .bound_addr(&NsName::new("infra", "gw"), 443)
        .unwrap();
    let r = waygate_conformance::pki::https_get(
        https2,
        Some("shop.example.com"),
        "shop.example.com",
        "/no-waypoint",
        cfg.clone(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(!backend.served().iter().any(|p| p == "/no-waypoint"));

    // Without the label too: still only through the (unreachable) waypoint.
    let ingress3 = start(
        ingress_yaml_for(dead, &reviews_labelled("")),
        identity("infra", "ingress"),
    )
    .await;
    let https3 = ingress3
        .bound_addr(&NsName::new("infra", "gw"), 443)
        .unwrap();
    let r = waygate_conformance::pki::https_get(
        https3,
        Some("shop.example.com"),
        "shop.example.com",
        "/direct",
        cfg,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(!backend.served().iter().any(|p| p == "/direct"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_service_port_is_spliced_as_opaque_bytes() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let db = waygate_conformance::tcp_echo::TcpEchoServer::start(
        "127.0.0.1:0".parse().unwrap(),
        waygate_conformance::echo::EchoIdentity::new("apps", "db", "db-0"),
        None,
    )
    .await
    .unwrap();
    let extra = format!(
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: db\n  namespace: apps\n  labels: {{istio.io/use-waypoint: waypoint, istio.io/use-waypoint-namespace: mesh}}\nspec:\n  clusterIP: 10.96.0.20\n  ports: [{{name: tcp-postgres, port: 5432}}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: db-1, namespace: apps, labels: {{kubernetes.io/service-name: db}}}}\naddressType: IPv4\nports: [{{name: tcp-postgres, port: {}}}]\nendpoints: [{{addresses: [\"{}\"]}}]\n",
        db.addr.port(),
        db.addr.ip()
    );
    let m = mesh_with(&extra).await;
    let curl = issued(m.dir.path(), "apps", "curl");
    let config = client_config(&m.ca_pem, Some(&curl), WAYPOINT_ID).unwrap();
    let client = HboneClient::connect(m.addr, "waypoint.mesh", config)
        .await
        .unwrap();
    let tunnel = client
        .open("10.96.0.20:5432".parse().unwrap())
        .await
        .unwrap();
    let mut lines = BufReader::new(tunnel);
    let mut line = String::new();
    lines.read_line(&mut line).await.unwrap();
    assert_eq!(line.trim_end(), waygate_conformance::tcp_echo::GREETING);
    lines.get_mut().write_all(b"PING\n").await.unwrap();
    line.clear();
    lines.read_line(&mut line).await.unwrap();
    assert_eq!(line.trim_end(), "PONG");
}

/// Accepts any server certificate: this test is about what the server refuses.
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hbone_is_tls_1_3_only() {
    use rustls::pki_types::pem::PemObject;
    let m = mesh().await;
    let curl = issued(m.dir.path(), "apps", "curl");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = rustls::pki_types::CertificateDer::pem_slice_iter(curl.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(curl.key_pem.as_bytes()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
        .with_client_auth_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(m.addr).await.unwrap();
    let opened = async {
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect("waypoint.mesh".try_into()?, tcp)
            .await?;
        let (send, conn) = h2::client::handshake(tls).await?;
        tokio::spawn(conn);
        let mut send = send.ready().await?;
        let req = http::Request::builder()
            .method("CONNECT")
            .uri(format!("{VIP}:9080"))
            .body(())?;
        let (resp, _) = send.send_request(req, false)?;
        anyhow::Ok(resp.await?.status())
    }
    .await;
    assert!(
        opened.is_err(),
        "a TLS 1.2 client opened a tunnel: {opened:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_waypoint_takes_pod_addresses_and_keeps_them() {
    let a = echo("apps", "reviews", "reviews-a").await;
    let b = echo("apps", "reviews", "reviews-b").await;
    let dir = tempfile::tempdir().unwrap();
    let bundle = dev_ca::init(dir.path(), "cluster.local", false).unwrap();
    let (cert, key) = dev_ca::issue(dir.path(), "cluster.local", "mesh", "waypoint").unwrap();
    let slice = |name: &str, ep: SocketAddr| {
        format!(
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}, namespace: apps, labels: {{kubernetes.io/service-name: reviews}}}}\naddressType: IPv4\nports: [{{name: http, port: {}}}]\nendpoints: [{{addresses: [\"{}\"]}}]\n",
            ep.port(),
            ep.ip()
        )
    };
    let yaml = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: waypoint, namespace: mesh, labels: {{istio.io/waypoint-for: workload}}}}\nspec:\n  gatewayClassName: istio-waypoint\n  listeners: [{{name: mesh, port: 15008, protocol: HBONE, allowedRoutes: {{namespaces: {{from: All}}}}}}]\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: reviews\n  namespace: apps\n  labels: {{istio.io/use-waypoint: waypoint, istio.io/use-waypoint-namespace: mesh}}\nspec:\n  clusterIP: {VIP}\n  ports: [{{name: http, port: 9080}}]\n"
    ) + &slice("a", a.addr)
        + &slice("b", b.addr);
    let gw = common::mesh::start_with_identity(yaml, cert, key, bundle.clone()).await;
    let addr = gw
        .bound_addr(&NsName::new("mesh", "waypoint"), 15008)
        .unwrap();
    let ca_pem = std::fs::read_to_string(&bundle).unwrap();
    let curl = issued(dir.path(), "apps", "curl");
    let config = client_config(&ca_pem, Some(&curl), WAYPOINT_ID).unwrap();
    let client = HboneClient::connect(addr, "waypoint.mesh", config)
        .await
        .unwrap();
    // Pod b's own address always reaches pod b.
    for i in 0..6 {
        let (status, body) = get_through(&client, &b.addr.to_string(), &format!("/b/{i}"))
            .await
            .unwrap();
        assert_eq!(status, 200);
        assert!(body.contains("reviews-b"), "{body}");
    }
    // Service addressing is not what this waypoint accepts.
    assert!(matches!(
        client.open(format!("{VIP}:9080").parse().unwrap()).await,
        Err(TunnelError::Refused(503))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolution_none_entry_sends_to_the_address_the_client_named() {
    // The upstream listens on 127.0.0.1:<port>; the client addresses 127.0.0.1:80, inside the
    // entry's CIDR, and the entry's targetPort maps 80 to the upstream's port.
    let upstream = echo("ext", "internal", "internal-1").await;
    let port = upstream.addr.port();
    let db = waygate_conformance::tcp_echo::TcpEchoServer::start(
        "127.0.0.1:0".parse().unwrap(),
        waygate_conformance::echo::EchoIdentity::new("ext", "db", "db-0"),
        None,
    )
    .await
    .unwrap();
    let db_port = db.addr.port();
    let m = mesh_with(&format!(
        r#"
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: passthrough
  namespace: apps
  labels: {{istio.io/use-waypoint: waypoint, istio.io/use-waypoint-namespace: mesh}}
spec:
  hosts: ["*.internal.example"]
  addresses: [127.0.0.0/24]
  ports:
  - {{number: 80, name: http, protocol: HTTP, targetPort: {port}}}
  - {{number: 5432, name: tcp, protocol: TCP, targetPort: {db_port}}}
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: nowhere
  namespace: apps
  labels: {{istio.io/use-waypoint: waypoint, istio.io/use-waypoint-namespace: mesh}}
spec:
  hosts: [nowhere.example]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: NONE
"#
    ))
    .await;
    let curl = issued(m.dir.path(), "apps", "curl");
    let config = client_config(&m.ca_pem, Some(&curl), WAYPOINT_ID).unwrap();
    let client = HboneClient::connect(m.addr, "waypoint.mesh", config)
        .await
        .unwrap();
    let (status, body) = get_through(&client, "127.0.0.1:80", "/none").await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("internal-1"), "{body}");
    assert!(upstream.served().iter().any(|p| p == "/none"));

    // An allocated address is not where the upstream lives: 503, nothing sent.
    let status_json = admin_get(&m.gw, "/status").await.json();
    let vip = status_json
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "ServiceEntry" && o["name"] == "nowhere")
        .and_then(|o| o["addresses"][0]["value"].as_str())
        .unwrap()
        .to_string();
    let (status, _) = get_through(&client, &format!("{vip}:80"), "/nowhere")
        .await
        .unwrap();
    assert_eq!(status, 503);
    assert!(!upstream.served().iter().any(|p| p == "/nowhere"));

    // Opaque TCP goes where the client sent it too.
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let tunnel = client
        .open("127.0.0.1:5432".parse().unwrap())
        .await
        .unwrap();
    let mut lines = BufReader::new(tunnel);
    let mut line = String::new();
    lines.read_line(&mut line).await.unwrap();
    assert_eq!(line.trim_end(), waygate_conformance::tcp_echo::GREETING);
    lines.get_mut().write_all(b"PING\n").await.unwrap();
    line.clear();
    lines.read_line(&mut line).await.unwrap();
    assert_eq!(line.trim_end(), "PONG");
}
