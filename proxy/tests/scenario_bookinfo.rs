//! Issue 7, scenario 1: Bookinfo behind a shared ingress gateway, end to end over loopback,
//! from the files in `examples/bookinfo/` (read here, not copied: only the endpoint ports of
//! the echo backends and of the waypoint are put in place of the fixed local ones).
//!
//! Two waygate instances run, as two `waygate run --gateway …` processes would: the shared
//! Gateway `common-infrastructure/shared-gateway` with the identity
//! `common-infrastructure/sa/shared-gateway-istio`, and the waypoint `bookinfo/waypoint` with
//! `bookinfo/sa/waypoint`. Port 80 redirects to HTTPS; port 443 terminates TLS with the
//! example's Secret (clients trust the example's `ca.crt`) and routes the productpage paths to
//! productpage through the waypoint over HBONE; routes attach only from namespaces labelled
//! `self-serve-ingress: "true"`; the waypoint lets only the gateway's identity call
//! productpage.

mod common;

use common::*;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use waygate::BindPlan;
use waygate::gateway::{ConfigSource, Gateway, GatewayOptions};
use waygate::mesh::{IdentityFiles, dev_ca};
use waygate_config::NsName;
use waygate_conformance::echo::EchoServer;
use waygate_conformance::hbone::HboneClient;
use waygate_conformance::pki::{HttpsReply, Issued, client_config, https_get};

const HOST: &str = "bookinfo.example.com";
const GATEWAY_ID: &str = "spiffe://cluster.local/ns/common-infrastructure/sa/shared-gateway-istio";
const WAYPOINT_ID: &str = "spiffe://cluster.local/ns/bookinfo/sa/waypoint";
/// The clusterIPs in `examples/bookinfo/services.yaml`.
const PRODUCTPAGE_VIP: &str = "10.96.10.10:9080";
const DETAILS_VIP: &str = "10.96.10.11:9080";

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/bookinfo")
}

/// Every YAML file of the example, in name order, as one multi-document text.
fn example_yaml() -> String {
    let mut files: Vec<PathBuf> = std::fs::read_dir(example_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "example files: {files:?}");
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// Point the EndpointSlice `slice` (its single address and port) at `addr`.
fn with_endpoint(yaml: &str, slice: &str, addr: SocketAddr) -> String {
    let mut hits = 0;
    let docs: Vec<String> = yaml
        .split("\n---\n")
        .map(|doc| {
            if !(doc.contains("kind: EndpointSlice") && doc.contains(&format!("name: {slice}\n"))) {
                return doc.to_string();
            }
            hits += 1;
            doc.lines()
                .map(|l| {
                    if l.starts_with("  port: ") {
                        format!("  port: {}", addr.port())
                    } else if l.starts_with("- addresses: ") {
                        format!("- addresses: [\"{}\"]", addr.ip())
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    assert_eq!(hits, 1, "EndpointSlice {slice} in examples/bookinfo");
    docs.join("\n---\n")
}

/// A namespace without `self-serve-ingress: "true"` whose route names the HTTPS listener.
const SANDBOX: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: sandbox}
---
apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: sandbox}
spec:
  clusterIP: 10.96.20.10
  ports: [{name: http, port: 8000}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: sandbox, namespace: sandbox}
spec:
  parentRefs: [{name: shared-gateway, namespace: common-infrastructure, sectionName: https}]
  hostnames: [bookinfo.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /sandbox}}]
    backendRefs: [{name: httpbin, port: 8000}]
"#;

/// The running scenario.
struct Bookinfo {
    ingress: Arc<Gateway>,
    _waypoint: Arc<Gateway>,
    waypoint_addr: SocketAddr,
    productpage: EchoServer,
    details: EchoServer,
    /// The example's CA (`examples/bookinfo/ca.crt`), which HTTPS clients trust.
    web_ca: String,
    /// The mesh CA folder (dev CA) and its certificate.
    mesh_dir: tempfile::TempDir,
    mesh_ca: String,
    _backends: Vec<EchoServer>,
}

impl Bookinfo {
    /// Echo backends for the four services, the waypoint, then the ingress, from the example
    /// plus `extra` YAML for the ingress.
    async fn start(extra: &str) -> Bookinfo {
        let productpage = echo("bookinfo", "productpage", "productpage-v1").await;
        let details = echo("bookinfo", "details", "details-v1").await;
        let reviews = echo("bookinfo", "reviews", "reviews-v1").await;
        let ratings = echo("bookinfo", "ratings", "ratings-v1").await;
        let mut yaml = example_yaml();
        for (svc, backend) in [
            ("productpage", &productpage),
            ("details", &details),
            ("reviews", &reviews),
            ("ratings", &ratings),
        ] {
            yaml = with_endpoint(&yaml, &format!("{svc}-local"), backend.addr);
        }

        let mesh_dir = tempfile::tempdir().unwrap();
        let bundle = dev_ca::init(mesh_dir.path(), "cluster.local", false).unwrap();
        let identity = |ns: &str, sa: &str| {
            let (cert, key) = dev_ca::issue(mesh_dir.path(), "cluster.local", ns, sa).unwrap();
            IdentityFiles {
                cert,
                key,
                trust_bundle: bundle.clone(),
                trust_domain: "cluster.local".into(),
            }
        };
        // `waygate run --config examples/bookinfo --gateway NS/NAME --identity-cert …`
        let run = |gateway: NsName, text: String, id: IdentityFiles| async move {
            Gateway::start(GatewayOptions {
                source: ConfigSource::Inline {
                    name: "examples/bookinfo".into(),
                    text,
                },
                bind: BindPlan::Ephemeral("127.0.0.1".parse().unwrap()),
                admin: Some("127.0.0.1:0".parse().unwrap()),
                gateways: vec![gateway],
                watch: false,
                dns_server: None,
                identity: Some(id),
            })
            .await
            .unwrap()
        };
        let waypoint_gw = NsName::new("bookinfo", "waypoint");
        let waypoint = run(
            waypoint_gw.clone(),
            yaml.clone(),
            identity("bookinfo", "waypoint"),
        )
        .await;
        let waypoint_addr = waypoint.bound_addr(&waypoint_gw, 15008).unwrap();
        // The ingress finds the waypoint in the endpoints of the waypoint's Service.
        let ingress_yaml =
            with_endpoint(&yaml, "waypoint-local", waypoint_addr) + "\n---\n" + extra;
        let ingress = run(
            NsName::new("common-infrastructure", "shared-gateway"),
            ingress_yaml,
            identity("common-infrastructure", "shared-gateway-istio"),
        )
        .await;
        Bookinfo {
            ingress,
            _waypoint: waypoint,
            waypoint_addr,
            productpage,
            details,
            web_ca: std::fs::read_to_string(example_dir().join("ca.crt")).unwrap(),
            mesh_ca: std::fs::read_to_string(&bundle).unwrap(),
            mesh_dir,
            _backends: vec![reviews, ratings],
        }
    }

    fn listener(&self, port: u16) -> SocketAddr {
        self.ingress
            .bound_addr(
                &NsName::new("common-infrastructure", "shared-gateway"),
                port,
            )
            .unwrap()
    }

    /// GET `path` on the HTTPS listener: SNI and Host bookinfo.example.com, trusting the
    /// example's CA, offering `alpn`.
    async fn https(&self, path: &str, alpn: &[&[u8]]) -> HttpsReply {
        let cfg = client_config(&self.web_ca, None, alpn).unwrap();
        https_get(self.listener(443), Some(HOST), HOST, path, cfg)
            .await
            .unwrap_or_else(|e| panic!("GET https://{HOST}{path}: {e:#}"))
    }

    /// A mesh client in bookinfo with identity `sa`, connected to the waypoint.
    async fn mesh_client(&self, sa: &str) -> HboneClient {
        let (cert, key) =
            dev_ca::issue(self.mesh_dir.path(), "cluster.local", "bookinfo", sa).unwrap();
        let id = Issued {
            cert_pem: std::fs::read_to_string(cert).unwrap(),
            key_pem: std::fs::read_to_string(key).unwrap(),
        };
        let cfg = waygate_conformance::hbone::client_config(&self.mesh_ca, Some(&id), WAYPOINT_ID)
            .unwrap();
        HboneClient::connect(self.waypoint_addr, "waypoint.bookinfo", cfg)
            .await
            .unwrap()
    }
}

/// GET `path` through a new tunnel to `vip` (HTTP/1.1 inside it); (status, body).
async fn mesh_get(client: &HboneClient, vip: &str, host: &str, path: &str) -> (u16, String) {
    let tunnel = client.open(vip.parse().unwrap()).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tunnel))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", host)
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_on_port_80_is_redirected_to_https() {
    let b = Bookinfo::start("").await;
    let r = get(b.listener(80), HOST, "/productpage").await;
    assert_eq!(r.status, 301, "{}", r.body);
    assert_eq!(
        r.headers["location"],
        "https://bookinfo.example.com/productpage"
    );
    // Every path and host on port 80 is redirected, the query kept; nothing reaches a backend.
    let r = get(b.listener(80), "other.example.com", "/a/b?x=1").await;
    assert_eq!(r.status, 301, "{}", r.body);
    assert_eq!(r.headers["location"], "https://other.example.com/a/b?x=1");
    assert_eq!(b.productpage.request_count(), 0);
    assert_eq!(
        route_condition(
            &b.ingress,
            "common-infrastructure",
            "https-redirect",
            "Accepted"
        )
        .await,
        ("True".into(), "Accepted".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_productpage_paths_reach_productpage_through_the_waypoint() {
    let b = Bookinfo::start("").await;
    for path in [
        "/productpage",
        "/login",
        "/logout",
        "/static/x.css",
        "/api/v1/products/1",
    ] {
        let r = b.https(path, &[]).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        let echo = json(&r.body);
        assert_eq!(echo["pod"], "productpage-v1", "{path}: {echo}");
        assert_eq!(echo["path"], path, "{echo}");
        // The waypoint served it: it saw the gateway's mesh identity (in XFCC).
        let xfcc = echo["headers"]["X-Forwarded-Client-Cert"][0]
            .as_str()
            .unwrap_or("");
        assert!(
            xfcc.ends_with(&format!(";URI={GATEWAY_ID}")),
            "{path}: {echo}"
        );
    }
    // HTTP/2 from the client works the same way.
    let r = b.https("/productpage", &[b"h2", b"http/1.1"]).await;
    assert_eq!(r.version, http::Version::HTTP_2);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(json(&r.body)["pod"], "productpage-v1");

    // Exact means exact, and a prefix is whole path segments; nothing else is routed.
    for path in ["/productpage/x", "/other", "/staticfoo", "/", "/api/v1"] {
        let r = b.https(path, &[]).await;
        assert_eq!(r.status, 404, "{path}: {}", r.body);
    }
    assert_eq!(b.productpage.request_count(), 6);
    assert_eq!(
        route_condition(&b.ingress, "bookinfo", "bookinfo", "Accepted").await,
        ("True".into(), "Accepted".into())
    );
    assert_eq!(
        route_condition(&b.ingress, "bookinfo", "bookinfo", "ResolvedRefs").await,
        ("True".into(), "ResolvedRefs".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_from_a_namespace_without_the_label_is_not_accepted() {
    let b = Bookinfo::start(SANDBOX).await;
    assert_eq!(
        route_condition(&b.ingress, "sandbox", "sandbox", "Accepted").await,
        ("False".into(), "NotAllowedByListeners".into())
    );
    let r = b.https("/sandbox/get", &[]).await;
    assert_eq!(r.status, 404, "{}", r.body);
    // The labelled namespace's route is unaffected.
    assert_eq!(b.https("/productpage", &[]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_gateway_may_call_productpage_through_the_waypoint() {
    let b = Bookinfo::start("").await;
    // The gateway's identity is allowed (through the ingress).
    let r = b.https("/productpage", &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // A mesh client in bookinfo calling productpage's VIP through the waypoint is denied, and
    // its request never reaches productpage.
    let sleep = b.mesh_client("sleep").await;
    let (status, body) = mesh_get(
        &sleep,
        PRODUCTPAGE_VIP,
        "productpage.bookinfo.svc.cluster.local:9080",
        "/productpage",
    )
    .await;
    assert_eq!((status, body.as_str()), (403, "RBAC: access denied"));
    assert_eq!(b.productpage.request_count(), 1);

    // details has no policy: the same client gets through, with its own identity.
    let (status, body) = mesh_get(
        &sleep,
        DETAILS_VIP,
        "details.bookinfo.svc.cluster.local:9080",
        "/details/0",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let echo = json(&body);
    assert_eq!(echo["pod"], "details-v1", "{echo}");
    let xfcc = echo["headers"]["X-Forwarded-Client-Cert"][0]
        .as_str()
        .unwrap_or("");
    assert!(
        xfcc.ends_with(";URI=spiffe://cluster.local/ns/bookinfo/sa/sleep"),
        "{echo}"
    );
    assert_eq!(b.details.request_count(), 1);
}
