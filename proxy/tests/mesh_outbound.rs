//! HBONE outbound from the waypoint and from gateways ([HB-W5], [AM-1]): in-mesh endpoints
//! (by their Namespace's or their Pod's `istio.io/dataplane-mode`) reached through a stand-in
//! ztunnel that must present the Pod's identity, and tunnels never shared across destinations.

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
use waygate_conformance::hbone::{HboneClient, client_config};
use waygate_conformance::pki::Issued;

const WAYPOINT_ID: &str = "spiffe://cluster.local/ns/mesh/sa/waypoint";

fn issued(dir: &Path, ns: &str, sa: &str) -> Issued {
    let (cert, key) = dev_ca::issue(dir, "cluster.local", ns, sa).unwrap();
    Issued {
        cert_pem: std::fs::read_to_string(cert).unwrap(),
        key_pem: std::fs::read_to_string(key).unwrap(),
    }
}

/// A gateway from inline YAML under the identity `ns/sa` of the CA in `dir`.
async fn start_as(dir: &Path, bundle: &Path, (ns, sa): (&str, &str), yaml: String) -> Arc<Gateway> {
    let (cert, key) = dev_ca::issue(dir, "cluster.local", ns, sa).unwrap();
    Gateway::start(GatewayOptions {
        source: ConfigSource::Inline {
            name: "mesh.yaml".into(),
            text: yaml,
        },
        bind: BindPlan::Ephemeral("127.0.0.1".parse().unwrap()),
        admin: None,
        gateways: vec![],
        watch: false,
        dns_server: None,
        identity: Some(IdentityFiles {
            cert,
            key,
            trust_bundle: bundle.to_path_buf(),
            trust_domain: "cluster.local".into(),
        }),
    })
    .await
    .unwrap()
}

/// One HTTP/1.1 GET through a tunnel to `dest`; (status, body).
async fn get_through(client: &HboneClient, dest: &str, path: &str) -> (u16, String) {
    let tunnel = client.open(dest.parse().unwrap()).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tunnel))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", "svc.apps.svc.cluster.local")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A Service `apps/name` with a VIP, bound to `mesh/waypoint`, whose one endpoint is `ep`
/// (backed by Pod `pod`, when given).
fn bound_service(name: &str, vip: &str, ep: SocketAddr, pod: Option<&str>) -> String {
    let target = pod.map_or(String::new(), |p| {
        format!(", targetRef: {{kind: Pod, name: {p}}}")
    });
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: apps\n  labels: {{istio.io/use-waypoint: waypoint, istio.io/use-waypoint-namespace: mesh}}\nspec:\n  clusterIP: {vip}\n  ports: [{{name: http, port: 9080}}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}-1, namespace: apps, labels: {{kubernetes.io/service-name: {name}}}}}\naddressType: IPv4\nports: [{{name: http, port: {}}}]\nendpoints: [{{addresses: [\"{}\"]{target}}}]\n",
        ep.port(),
        ep.ip()
    )
}

/// A Pod in `apps` with a dataplane mode label (or none) and a service account.
fn pod(name: &str, mode: Option<&str>, sa: &str, ip: &str) -> String {
    let labels = mode.map_or(String::new(), |m| {
        format!("\n  labels: {{istio.io/dataplane-mode: {m}}}")
    });
    format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: apps{labels}\nspec: {{serviceAccountName: {sa}}}\nstatus: {{podIP: \"{ip}\"}}\n"
    )
}

const WAYPOINT: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: waypoint, namespace: mesh}\nspec:\n  gatewayClassName: istio-waypoint\n  listeners: [{name: mesh, port: 15008, protocol: HBONE, allowedRoutes: {namespaces: {from: All}}}]\n";

/// A stand-in for a node's ztunnel: HBONE on `<ip>:15008` presenting workload `ns/sa`; each
/// CONNECT is recorded (authority, the caller's SPIFFE ID) and spliced to the authority.
async fn fake_ztunnel(
    ip: &str,
    ca_dir: &Path,
    (ns, sa): (&str, &str),
    seen: Arc<std::sync::Mutex<Vec<(String, String)>>>,
) -> std::io::Result<()> {
    use rustls::pki_types::pem::PemObject;
    let (cert, key) = dev_ca::issue(ca_dir, "cluster.local", ns, sa).unwrap();
    let chain = rustls::pki_types::CertificateDer::pem_slice_iter(&std::fs::read(cert).unwrap())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key =
        rustls::pki_types::PrivateKeyDer::from_pem_slice(&std::fs::read(key).unwrap()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(
        &std::fs::read(ca_dir.join(dev_ca::CA_CERT)).unwrap(),
    ) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind((ip, 15008)).await?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let caller = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| waygate_config::tls_material::subject_alt_names(c.as_ref()).0)
                    .and_then(|uris| uris.into_iter().next())
                    .unwrap_or_default();
                let Ok(mut conn) = h2::server::handshake(tls).await else {
                    return;
                };
                while let Some(Ok((req, mut respond))) = conn.accept().await {
                    let authority = req
                        .uri()
                        .authority()
                        .map(|a| a.to_string())
                        .unwrap_or_default();
                    seen.lock()
                        .unwrap()
                        .push((authority.clone(), caller.clone()));
                    tokio::spawn(async move {
                        let Ok(mut upstream) =
                            tokio::net::TcpStream::connect(authority.as_str()).await
                        else {
                            let _ = respond.send_response(
                                http::Response::builder().status(503).body(()).unwrap(),
                                true,
                            );
                            return;
                        };
                        let Ok(send) = respond.send_response(
                            http::Response::builder().status(200).body(()).unwrap(),
                            false,
                        ) else {
                            return;
                        };
                        let mut tunnel =
                            waygate::mesh::tunnel::H2Duplex::new(req.into_body(), send);
                        let _ = tokio::io::copy_bidirectional(&mut tunnel, &mut upstream).await;
                    });
                }
            });
        }
    });
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_waypoint_reaches_in_mesh_endpoints_over_hbone_as_itself() {
    let node_ip = "127.0.0.2";
    let backend = waygate_conformance::echo::EchoServer::start(
        format!("{node_ip}:0").parse().unwrap(),
        waygate_conformance::echo::EchoIdentity::new("apps", "ratings", "ratings-v1"),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dev_ca::init(dir.path(), "cluster.local", false).unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    fake_ztunnel(node_ip, dir.path(), ("apps", "reviews"), seen.clone())
        .await
        .expect("127.0.0.2:15008 is free for the stand-in ztunnel");
    let (cert, key) = dev_ca::issue(dir.path(), "cluster.local", "mesh", "waypoint").unwrap();
    let yaml = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: apps, labels: {{istio.io/dataplane-mode: ambient}}}}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: waypoint, namespace: mesh}}\nspec:\n  gatewayClassName: istio-waypoint\n  listeners: [{{name: mesh, port: 15008, protocol: HBONE, allowedRoutes: {{namespaces: {{from: All}}}}}}]\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: ratings\n  namespace: apps\n  labels: {{istio.io/use-waypoint: waypoint, istio.io/use-waypoint-namespace: mesh}}\nspec:\n  clusterIP: 10.96.0.30\n  ports: [{{name: http, port: 9080}}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: ratings-1, namespace: apps, labels: {{kubernetes.io/service-name: ratings}}}}\naddressType: IPv4\nports: [{{name: http, port: {}}}]\nendpoints: [{{addresses: [\"{node_ip}\"]}}]\n",
        backend.addr.port()
    );
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
    let (status, body) = get_through(&client, "10.96.0.30:9080", "/in-mesh").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("ratings-v1"), "{body}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![(backend.addr.to_string(), WAYPOINT_ID.to_string())],
        "the ztunnel saw CONNECT <endpoint>:<target port> from the waypoint's identity"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_labels_decide_the_mesh_and_the_ztunnel_must_present_the_pods_identity() {
    let node_ip = "127.0.0.3";
    let start_echo = |name: &'static str| async move {
        waygate_conformance::echo::EchoServer::start(
            format!("{node_ip}:0").parse().unwrap(),
            waygate_conformance::echo::EchoIdentity::new("apps", name, format!("{name}-pod")),
        )
        .await
        .unwrap()
    };
    let (ratings, details, plain) = (
        start_echo("ratings").await,
        start_echo("details").await,
        start_echo("plain").await,
    );
    let dir = tempfile::tempdir().unwrap();
    let bundle = dev_ca::init(dir.path(), "cluster.local", false).unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    // The node's ztunnel speaks for workloads running as apps/reviews.
    fake_ztunnel(node_ip, dir.path(), ("apps", "reviews"), seen.clone())
        .await
        .expect("127.0.0.3:15008 is free for the stand-in ztunnel");
    // No Namespace label: each Pod says whether it is in the mesh.
    let yaml = WAYPOINT.to_string()
        + &bound_service("ratings", "10.96.0.50", ratings.addr, Some("ratings-0"))
        + &pod("ratings-0", Some("ambient"), "reviews", node_ip)
        + &bound_service("details", "10.96.0.51", details.addr, Some("details-0"))
        + &pod("details-0", Some("ambient"), "details", node_ip)
        + &bound_service("plain", "10.96.0.52", plain.addr, Some("plain-0"))
        + &pod("plain-0", None, "plain", node_ip);
    let gw = start_as(dir.path(), &bundle, ("mesh", "waypoint"), yaml).await;
    let addr = gw
        .bound_addr(&NsName::new("mesh", "waypoint"), 15008)
        .unwrap();
    let ca_pem = std::fs::read_to_string(&bundle).unwrap();
    let curl = issued(dir.path(), "apps", "curl");
    let client = HboneClient::connect(
        addr,
        "waypoint.mesh",
        client_config(&ca_pem, Some(&curl), WAYPOINT_ID).unwrap(),
    )
    .await
    .unwrap();

    // In the mesh, and the ztunnel presents the Pod's identity: through it.
    let (status, body) = get_through(&client, "10.96.0.50:9080", "/r").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("ratings-pod"), "{body}");
    // In the mesh, but the ztunnel cannot prove it runs the Pod's identity: refused.
    let (status, body) = get_through(&client, "10.96.0.51:9080", "/d").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(details.request_count(), 0);
    // Not in the mesh: straight to the endpoint.
    let (status, body) = get_through(&client, "10.96.0.52:9080", "/p").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("plain-pod"), "{body}");
    assert_eq!(
        seen.lock().unwrap().clone(),
        vec![(ratings.addr.to_string(), WAYPOINT_ID.to_string())],
        "only the ratings request went through the ztunnel"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_tunnels_through_a_waypoint_never_carry_another_services_requests() {
    let a = echo("apps", "alpha", "alpha-pod").await;
    let b = echo("apps", "beta", "beta-pod").await;
    let dir = tempfile::tempdir().unwrap();
    let bundle = dev_ca::init(dir.path(), "cluster.local", false).unwrap();
    let services = bound_service("alpha", "10.96.0.60", a.addr, None)
        + &bound_service("beta", "10.96.0.61", b.addr, None);
    let waypoint = start_as(
        dir.path(),
        &bundle,
        ("mesh", "waypoint"),
        WAYPOINT.to_string() + &services,
    )
    .await;
    let wp = waypoint
        .bound_addr(&NsName::new("mesh", "waypoint"), 15008)
        .unwrap();
    let ingress_yaml = format!(
        "{}---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r, namespace: apps}}\nspec:\n  parentRefs: [{{name: gw, namespace: infra}}]\n  rules:\n  - matches: [{{path: {{type: PathPrefix, value: /alpha}}}}]\n    backendRefs: [{{name: alpha, port: 9080}}]\n  - matches: [{{path: {{type: PathPrefix, value: /beta}}}}]\n    backendRefs: [{{name: beta, port: 9080}}]\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: waypoint, namespace: mesh}}\nspec: {{ports: [{{name: mesh, port: 15008}}]}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: waypoint-1, namespace: mesh, labels: {{kubernetes.io/service-name: waypoint}}}}\naddressType: IPv4\nports: [{{name: mesh, port: {}}}]\nendpoints: [{{addresses: [\"{}\"]}}]\n{services}",
        gateway_yaml(),
        wp.port(),
        wp.ip()
    );
    let ingress = start_as(dir.path(), &bundle, ("infra", "ingress"), ingress_yaml).await;
    let addr = gw_addr(&ingress);
    // One keep-alive client, alternating: every answer comes from the service asked for.
    // (Pingora 0.9 never hands out a pooled virtual-socket connection again — its reuse check
    // calls getpeername on fd -1 — so each request is a new CONNECT stream today; the group
    // key keeps tunnels apart should that change.)
    let c = client();
    for i in 0..20 {
        let (path, want) = if i % 2 == 0 {
            ("/alpha", "alpha-pod")
        } else {
            ("/beta", "beta-pod")
        };
        let r = send(&c, addr, "GET", "shop.example.com", path, &[])
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.pod(), want, "request {i} to {path}");
    }
    assert_eq!((a.request_count(), b.request_count()), (10, 10));
}
