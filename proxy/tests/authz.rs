//! AuthorizationPolicy end to end (issue 7, scenario 5): through the waypoint a policy on a
//! Service lets `sa/appa` GET and refuses its POST and every other identity, a TCP port is
//! refused at the CONNECT, and at an ingress listener that validates client certificates the
//! same policy works on the certificate's identity.

mod common;

use common::*;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use waygate::mesh::dev_ca;
use waygate_config::NsName;
use waygate_conformance::hbone::{HboneClient, TunnelError, client_config};
use waygate_conformance::pki::{Issued, TestCa, ca_config_map_yaml, tls_secret_yaml};

const WAYPOINT_ID: &str = "spiffe://cluster.local/ns/mesh/sa/waypoint";

fn issued(dir: &Path, ns: &str, sa: &str) -> Issued {
    let (cert, key) = dev_ca::issue(dir, "cluster.local", ns, sa).unwrap();
    Issued {
        cert_pem: std::fs::read_to_string(cert).unwrap(),
        key_pem: std::fs::read_to_string(key).unwrap(),
    }
}

/// `method path` over any stream speaking HTTP/1.1; (status, body).
async fn request<S>(io: S, method: &str, host: &str, path: &str) -> (u16, String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", host)
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A Service `apps/name` bound to `mesh/waypoint` with one endpoint.
fn bound(name: &str, vip: &str, port_name: &str, ep: SocketAddr) -> String {
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: apps\n  labels: {{istio.io/use-waypoint: waypoint, istio.io/use-waypoint-namespace: mesh}}\nspec:\n  clusterIP: {vip}\n  ports: [{{name: {port_name}, port: 9080}}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}-1, namespace: apps, labels: {{kubernetes.io/service-name: {name}}}}}\naddressType: IPv4\nports: [{{name: {port_name}, port: {}}}]\nendpoints: [{{addresses: [\"{}\"]}}]\n",
        ep.port(),
        ep.ip()
    )
}

/// `method /r` through a new tunnel to `dest`.
async fn call(c: &HboneClient, dest: &str, method: &str) -> (u16, String) {
    let tunnel = c.open(dest.parse().unwrap()).await.unwrap();
    request(tunnel, method, "reviews.apps.svc.cluster.local", "/r").await
}

/// Only `apps/appa` may GET.
const APPA_GETS: &str = "rules:\n  - from: [{source: {principals: [cluster.local/ns/apps/sa/appa]}}]\n    to: [{operation: {methods: [GET]}}]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_waypoint_a_service_policy_decides_by_the_callers_identity() {
    let reviews = echo("apps", "reviews", "reviews-1").await;
    let ratings = echo("apps", "ratings", "ratings-1").await;
    let db = waygate_conformance::tcp_echo::TcpEchoServer::start(
        "127.0.0.1:0".parse().unwrap(),
        waygate_conformance::echo::EchoIdentity::new("apps", "db", "db-1"),
        None,
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dev_ca::init(dir.path(), "cluster.local", false).unwrap();
    let (cert, key) = dev_ca::issue(dir.path(), "cluster.local", "mesh", "waypoint").unwrap();
    let yaml = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: waypoint, namespace: mesh}\nspec:\n  gatewayClassName: istio-waypoint\n  listeners: [{name: mesh, port: 15008, protocol: HBONE, allowedRoutes: {namespaces: {from: All}}}]\n".to_string()
        + &bound("reviews", "10.96.0.70", "http", reviews.addr)
        + &bound("ratings", "10.96.0.71", "http", ratings.addr)
        + &bound("db", "10.96.0.72", "tcp-db", db.addr)
        + &format!("---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: reviews-viewers, namespace: apps}}\nspec:\n  targetRefs: [{{kind: Service, group: \"\", name: reviews}}]\n  {APPA_GETS}")
        + "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: db-clients, namespace: apps}\nspec:\n  targetRefs: [{kind: Service, group: \"\", name: db}]\n  rules: [{from: [{source: {principals: [cluster.local/ns/apps/sa/appa]}}]}]\n"
        // A selector policy is not a waypoint's to enforce ([AP-1]).
        + "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: ignored-here, namespace: mesh}\nspec: {}\n";
    let gw = common::mesh::start_with_identity(yaml, cert, key, bundle.clone()).await;
    let addr = gw
        .bound_addr(&NsName::new("mesh", "waypoint"), 15008)
        .unwrap();
    let ca_pem = std::fs::read_to_string(&bundle).unwrap();
    let client_as = |sa: &str| {
        let id = issued(dir.path(), "apps", sa);
        let ca_pem = ca_pem.clone();
        async move {
            HboneClient::connect(
                addr,
                "waypoint.mesh",
                client_config(&ca_pem, Some(&id), WAYPOINT_ID).unwrap(),
            )
            .await
            .unwrap()
        }
    };
    let appa = client_as("appa").await;
    let appb = client_as("appb").await;

    let (status, body) = call(&appa, "10.96.0.70:9080", "GET").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("reviews-1"), "{body}");
    let (status, body) = call(&appa, "10.96.0.70:9080", "POST").await;
    assert_eq!((status, body.as_str()), (403, "RBAC: access denied"));
    let (status, body) = call(&appb, "10.96.0.70:9080", "GET").await;
    assert_eq!((status, body.as_str()), (403, "RBAC: access denied"));
    assert_eq!(
        reviews.request_count(),
        1,
        "denied requests never reach the backend"
    );
    // The policy targets reviews only.
    let (status, _) = call(&appb, "10.96.0.71:9080", "POST").await;
    assert_eq!(status, 200);

    // TCP: L4 rules only; another identity's CONNECT is refused as ztunnel does.
    match appb.open("10.96.0.72:9080".parse().unwrap()).await {
        Err(TunnelError::Refused(401)) => {}
        Err(e) => panic!("appb to db: {e}"),
        Ok(_) => panic!("appb to db: tunnel opened"),
    }
    // appa's bytes reach the database, which greets first.
    let mut tunnel = appa.open("10.96.0.72:9080".parse().unwrap()).await.unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(&mut tunnel);
    let mut line = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        lines.read_line(&mut line),
    )
    .await
    .expect("db answers")
    .unwrap();
    assert_eq!(line.trim_end(), waygate_conformance::tcp_echo::GREETING);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_an_ingress_the_same_policy_reads_the_client_certificate() {
    let backend = echo("apps", "shop", "shop-1").await;
    let server_ca = TestCa::new("server").unwrap();
    let client_ca = TestCa::new("clients").unwrap();
    let yaml = format!(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: infra}}
spec:
  gatewayClassName: istio
  tls:
    frontend:
      default:
        validation:
          mode: AllowInsecureFallback
          caCertificateRefs: [{{group: "", kind: ConfigMap, name: client-ca}}]
  listeners:
  - name: https
    port: 443
    protocol: HTTPS
    hostname: shop.example.com
    tls: {{certificateRefs: [{{name: web}}]}}
    allowedRoutes: {{namespaces: {{from: All}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: shop, namespace: apps}}
spec:
  parentRefs: [{{name: gw, namespace: infra}}]
  rules: [{{backendRefs: [{{name: shop, port: 8080}}]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: shoppers, namespace: infra}}
spec:
  selector: {{matchLabels: {{istio.io/gateway-name: gw}}}}
  {APPA_GETS}"#
    ) + &service_yaml("apps", "shop", &[backend.addr])
        + &tls_secret_yaml(
            "infra",
            "web",
            &server_ca.server(&["shop.example.com"]).unwrap(),
        )
        + &ca_config_map_yaml("infra", "client-ca", &client_ca.pem);
    let gw = start_inline(yaml).await;
    let addr = gw.bound_addr(&NsName::new("infra", "gw"), 443).unwrap();
    let appa = client_ca
        .client("spiffe://cluster.local/ns/apps/sa/appa")
        .unwrap();
    let appb = client_ca
        .client("spiffe://cluster.local/ns/apps/sa/appb")
        .unwrap();
    let call = |id: Option<&Issued>, method: &'static str| {
        let cfg =
            waygate_conformance::pki::client_config(&server_ca.pem, id, &[b"http/1.1"]).unwrap();
        async move {
            let tls = waygate_conformance::pki::connect(
                addr,
                Some("shop.example.com"),
                "shop.example.com",
                cfg,
            )
            .await
            .unwrap();
            request(tls, method, "shop.example.com", "/buy").await
        }
    };
    assert_eq!(call(Some(&appa), "GET").await.0, 200);
    assert_eq!(
        call(Some(&appa), "POST").await,
        (403, "RBAC: access denied".to_string())
    );
    assert_eq!(call(Some(&appb), "GET").await.0, 403);
    // No certificate (the fallback lets the handshake through): no principal, denied.
    assert_eq!(call(None, "GET").await.0, 403);
    assert_eq!(backend.request_count(), 1);
    let _ = Arc::clone(&gw);
}
