//! Issue 7, scenario 5: one AuthorizationPolicy decided on the caller's identity, end to end
//! over loopback from the files in `examples/authz-identities/` (read here, not copied: only
//! the echo servers' ports are put in place of the example's). The example's client
//! certificates (`certs/`) and CA are used as they are.
//!
//! Two waygate instances run, as two `waygate run --gateway …` processes would: the waypoint
//! `apps/waypoint` (identity `apps/sa/waypoint`), where mesh clients call reviews over HBONE,
//! and the ingress `apps/ingress`, where HTTPS clients call shop.example.com with a client
//! certificate. The policy `apps/appa-may-get` targets both: only `apps/sa/appa` may call, and
//! only with GET ([AP-3], [AP-7], [HB-W3]).

mod common;

use common::*;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use waygate::gateway::Gateway;
use waygate_config::NsName;
use waygate_conformance::echo::EchoServer;
use waygate_conformance::hbone::HboneClient;
use waygate_conformance::pki::{Issued, client_config, connect};

const WAYPOINT_ID: &str = "spiffe://cluster.local/ns/apps/sa/waypoint";
/// reviews' clusterIP and port in `services.yaml`.
const REVIEWS_VIP: &str = "10.96.50.10:9080";
const REVIEWS_HOST: &str = "reviews.apps.svc.cluster.local:9080";
const SHOP_HOST: &str = "shop.example.com";
const APPA_ID: &str = "spiffe://cluster.local/ns/apps/sa/appa";

struct Authz {
    _waypoint: Arc<Gateway>,
    waypoint_addr: SocketAddr,
    ingress: Arc<Gateway>,
    reviews: EchoServer,
    shop: EchoServer,
    ca: MeshCa,
}

impl Authz {
    async fn start() -> Authz {
        let reviews = echo("apps", "reviews", "reviews-1").await;
        let shop = echo("apps", "shop", "shop-1").await;
        let yaml = replace_once(
            &example_yaml("authz-identities"),
            "  port: 19100\n",
            &format!("  port: {}\n", reviews.addr.port()),
        );
        let yaml = replace_once(
            &yaml,
            "  port: 19101\n",
            &format!("  port: {}\n", shop.addr.port()),
        );
        let ca = MeshCa::new();
        let waypoint_gw = NsName::new("apps", "waypoint");
        let waypoint = run_example(
            "authz-identities",
            yaml.clone(),
            &waypoint_gw,
            Some(ca.identity("apps", "waypoint")),
        )
        .await;
        let waypoint_addr = waypoint.bound_addr(&waypoint_gw, 15008).unwrap();
        let ingress = run_example(
            "authz-identities",
            yaml,
            &NsName::new("apps", "ingress"),
            None,
        )
        .await;
        Authz {
            _waypoint: waypoint,
            waypoint_addr,
            ingress,
            reviews,
            shop,
            ca,
        }
    }

    async fn mesh_client(&self, sa: &str) -> HboneClient {
        self.ca
            .client(self.waypoint_addr, "apps", sa, WAYPOINT_ID)
            .await
    }

    /// `method https://shop.example.com/buy` presenting `cert` (a file pair in the example's
    /// `certs/`), trusting the example's CA; Err when the connection fails.
    async fn https(&self, cert: Option<&str>, method: &str) -> Result<(u16, String), String> {
        let addr = self
            .ingress
            .bound_addr(&NsName::new("apps", "ingress"), 443)
            .unwrap();
        let dir = example_dir("authz-identities");
        let id = cert.map(|name| Issued {
            cert_pem: std::fs::read_to_string(dir.join(format!("certs/{name}.crt"))).unwrap(),
            key_pem: std::fs::read_to_string(dir.join(format!("certs/{name}.key"))).unwrap(),
        });
        let ca = std::fs::read_to_string(dir.join("ca.crt")).unwrap();
        let cfg = client_config(&ca, id.as_ref(), &[b"http/1.1"]).unwrap();
        let tls = connect(addr, Some(SHOP_HOST), SHOP_HOST, cfg)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("http: {e}"))?;
        tokio::spawn(conn);
        let req = http::Request::builder()
            .method(method)
            .uri("/buy")
            .header("host", SHOP_HOST)
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = send
            .send_request(req)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_waypoint_appa_may_get_but_not_post_and_others_are_denied() {
    let a = Authz::start().await;
    let appa = a.mesh_client("appa").await;
    let other = a.mesh_client("other").await;

    let r = mesh_request(&appa, REVIEWS_VIP, "GET", REVIEWS_HOST, "/reviews/1").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.pod(), "reviews-1", "{}", r.body);
    // The waypoint took the caller's identity from its HBONE certificate.
    let xfcc = r.seen_header("x-forwarded-client-cert").unwrap_or_default();
    assert!(xfcc.ends_with(&format!(";URI={APPA_ID}")), "{}", r.body);

    let r = mesh_request(&appa, REVIEWS_VIP, "POST", REVIEWS_HOST, "/reviews/1").await;
    assert_eq!((r.status, r.body.as_str()), (403, "RBAC: access denied"));
    let r = mesh_request(&other, REVIEWS_VIP, "GET", REVIEWS_HOST, "/reviews/1").await;
    assert_eq!((r.status, r.body.as_str()), (403, "RBAC: access denied"));
    assert_eq!(
        a.reviews.request_count(),
        1,
        "denied requests never reach reviews"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_ingress_the_same_policy_reads_the_client_certificate() {
    let a = Authz::start().await;
    let (status, body) = a.https(Some("appa"), "GET").await.unwrap();
    assert_eq!(status, 200, "{body}");
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echo["pod"], "shop-1", "{echo}");
    let xfcc = echo["headers"]["X-Forwarded-Client-Cert"][0]
        .as_str()
        .unwrap_or("");
    assert!(xfcc.ends_with(&format!(";URI={APPA_ID}")), "{echo}");

    assert_eq!(
        a.https(Some("appa"), "POST").await.unwrap(),
        (403, "RBAC: access denied".to_string())
    );
    assert_eq!(
        a.https(Some("other"), "GET").await.unwrap(),
        (403, "RBAC: access denied".to_string())
    );
    // Without a certificate the ingress does not let the connection through at all.
    let no_cert = a.https(None, "GET").await;
    assert!(no_cert.is_err(), "{no_cert:?}");
    assert_eq!(
        a.shop.request_count(),
        1,
        "denied requests never reach shop"
    );
}
