//! Issue 7, scenario 2: egress through a waypoint ([SE-4]), end to end over loopback from the
//! files in `examples/egress/` (read here, not copied: only the ServiceEntry's `targetPort` is
//! put in place of 443, since the HTTPS stand-in for httpbin.example listens on an ephemeral
//! port).
//!
//! A mesh client with the identity `default/sa/sleep` sends `http://httpbin.example/…` through
//! an HBONE tunnel to the egress waypoint `egress/waypoint`. The waypoint resolves
//! httpbin.example with a real DNS server on loopback (hickory), originates TLS per the
//! DestinationRule (trusting the example's CA) to an HTTPS echo that serves the example's
//! `local-httpbin/` certificate, adds `my-added-header` per the VirtualService, and lets out
//! only `GET /anything` per the AuthorizationPolicy on the waypoint.

mod common;

use common::*;
use hickory_server::ServerFuture;
use hickory_server::authority::{Catalog, ZoneType};
use hickory_server::proto::rr::rdata::{A, SOA};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryAuthority;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use waygate::BindPlan;
use waygate::gateway::{ConfigSource, Gateway, GatewayOptions};
use waygate::mesh::{IdentityFiles, dev_ca};
use waygate_config::NsName;
use waygate_conformance::echo::{EchoIdentity, EchoServer, PodMemory, tls::server_config};
use waygate_conformance::hbone::{HboneClient, client_config};
use waygate_conformance::pki::Issued;

const HOST: &str = "httpbin.example";
const WAYPOINT_ID: &str = "spiffe://cluster.local/ns/egress/sa/waypoint";

/// An authoritative DNS server for `example.` on a loopback UDP port, answering
/// `httpbin.example` with `ip`.
async fn dns_server(ip: Ipv4Addr) -> (SocketAddr, ServerFuture<Catalog>) {
    let origin = Name::from_str("example.").unwrap();
    let mut zone = InMemoryAuthority::empty(origin.clone(), ZoneType::Primary, false);
    let soa = SOA::new(
        Name::from_str("ns.example.").unwrap(),
        Name::from_str("admin.example.").unwrap(),
        1,
        60,
        60,
        60,
        60,
    );
    zone.upsert_mut(Record::from_rdata(origin.clone(), 60, RData::SOA(soa)), 1);
    zone.upsert_mut(
        Record::from_rdata(
            Name::from_str("httpbin.example.").unwrap(),
            60,
            RData::A(A::from(ip)),
        ),
        1,
    );
    let mut catalog = Catalog::new();
    catalog.upsert(LowerName::new(&origin), vec![Arc::new(zone)]);
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let mut server = ServerFuture::new(catalog);
    server.register_socket(socket);
    (addr, server)
}

/// The running scenario.
struct Egress {
    gw: Arc<Gateway>,
    httpbin: EchoServer,
    sleep: HboneClient,
    /// The address the waypoint gives httpbin.example (the ServiceEntry has none).
    vip: IpAddr,
    _dns: ServerFuture<Catalog>,
    _mesh_dir: tempfile::TempDir,
}

impl Egress {
    async fn start() -> Egress {
        // httpbin.example's HTTPS stand-in, with the example's certificate.
        let dir = example_dir("egress").join("local-httpbin");
        let cert = Issued {
            cert_pem: std::fs::read_to_string(dir.join("tls.crt")).unwrap(),
            key_pem: std::fs::read_to_string(dir.join("tls.key")).unwrap(),
        };
        let httpbin = EchoServer::start_tls(
            "127.0.0.1:0".parse().unwrap(),
            EchoIdentity::new("external", "httpbin", "httpbin-1"),
            server_config(&cert, None).unwrap(),
            PodMemory::new(),
        )
        .await
        .unwrap();
        let (dns, dns_server) = dns_server(Ipv4Addr::LOCALHOST).await;
        let yaml = replace_once(
            &example_yaml("egress"),
            "    targetPort: 443\n",
            &format!("    targetPort: {}\n", httpbin.addr.port()),
        );

        let mesh_dir = tempfile::tempdir().unwrap();
        let bundle = dev_ca::init(mesh_dir.path(), "cluster.local", false).unwrap();
        let (cert, key) =
            dev_ca::issue(mesh_dir.path(), "cluster.local", "egress", "waypoint").unwrap();
        // `waygate run --config examples/egress --gateway egress/waypoint --dns-server … `
        let waypoint = NsName::new("egress", "waypoint");
        let gw = Gateway::start(GatewayOptions {
            source: ConfigSource::Inline {
                name: "examples/egress".into(),
                text: yaml,
            },
            bind: BindPlan::Ephemeral("127.0.0.1".parse().unwrap()),
            admin: Some("127.0.0.1:0".parse().unwrap()),
            gateways: vec![waypoint.clone()],
            watch: false,
            dns_server: Some(dns),
            identity: Some(IdentityFiles {
                cert,
                key,
                trust_bundle: bundle.clone(),
                trust_domain: "cluster.local".into(),
            }),
        })
        .await
        .unwrap();
        let addr = gw.bound_addr(&waypoint, 15008).unwrap();

        let report = gw.state().status().report.clone();
        let entry = report
            .objects
            .iter()
            .find(|o| o.kind == "ServiceEntry" && o.name == "httpbin")
            .unwrap();
        assert_eq!(entry.addresses.len(), 1, "{entry:?}");
        assert_eq!(entry.addresses[0].host.as_deref(), Some(HOST));
        let vip = entry.addresses[0].value.parse().unwrap();

        let (c, k) = dev_ca::issue(mesh_dir.path(), "cluster.local", "default", "sleep").unwrap();
        let sleep_id = Issued {
            cert_pem: std::fs::read_to_string(c).unwrap(),
            key_pem: std::fs::read_to_string(k).unwrap(),
        };
        let ca_pem = std::fs::read_to_string(&bundle).unwrap();
        let sleep = HboneClient::connect(
            addr,
            "waypoint.egress",
            client_config(&ca_pem, Some(&sleep_id), WAYPOINT_ID).unwrap(),
        )
        .await
        .unwrap();
        Egress {
            gw,
            httpbin,
            sleep,
            vip,
            _dns: dns_server,
            _mesh_dir: mesh_dir,
        }
    }

    /// `method http://httpbin.example{path}` through a new tunnel to the host's port 80;
    /// (status, body).
    async fn call(&self, method: &str, path: &str) -> (u16, String) {
        let tunnel = self
            .sleep
            .open(SocketAddr::new(self.vip, 80))
            .await
            .unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tunnel))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", HOST)
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// The condition `kind` of object `kind_name` (e.g. VirtualService/httpbin): (status, reason).
    fn condition(&self, kind: &str, name: &str, cond: &str) -> (String, String) {
        let report = self.gw.state().status().report.clone();
        let o = report
            .objects
            .iter()
            .find(|o| o.kind == kind && o.namespace == "egress" && o.name == name)
            .unwrap_or_else(|| panic!("no status for {kind} {name}"));
        let c = o
            .conditions
            .get(cond)
            .unwrap_or_else(|| panic!("{kind} {name}: no {cond}: {o:?}"));
        (c.status.clone(), c.reason.clone())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_get_anything_leaves_through_the_egress_waypoint_over_https_with_the_added_header() {
    let e = Egress::start().await;
    // [VS-1] The VirtualService names the ServiceEntry host and is applied to it.
    assert_eq!(
        e.condition("VirtualService", "httpbin", "Accepted"),
        ("True".into(), "Accepted".into())
    );

    // [AP-3] The waypoint's policy allows only GET /anything: GET /get is refused at the
    // waypoint and never reaches httpbin.
    let (status, body) = e.call("GET", "/get").await;
    assert_eq!((status, body.as_str()), (403, "RBAC: access denied"));
    assert_eq!(e.httpbin.request_count(), 0);

    // GET /anything reaches httpbin over TLS originated by the waypoint ([DR-2]: SNI is the
    // host, the certificate verified with the DestinationRule's CA), with the header the
    // VirtualService adds ([VS-4]).
    let (status, body) = e.call("GET", "/anything").await;
    assert_eq!(status, 200, "{body}");
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echo["pod"], "httpbin-1", "{echo}");
    assert_eq!(echo["path"], "/anything", "{echo}");
    assert_eq!(echo["method"], "GET", "{echo}");
    assert_eq!(echo["tls"]["serverName"], HOST, "{echo}");
    assert!(
        echo["tls"]["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("TLSv1.")),
        "{echo}"
    );
    assert_eq!(
        echo["headers"]["My-Added-Header"],
        serde_json::json!(["added-value"]),
        "{echo}"
    );
    assert_eq!(e.httpbin.request_count(), 1);

    // Another method on the allowed path, and a path that only starts like it: refused too.
    for (method, path) in [("POST", "/anything"), ("GET", "/anything/else")] {
        let (status, body) = e.call(method, path).await;
        assert_eq!(
            (status, body.as_str()),
            (403, "RBAC: access denied"),
            "{method} {path}"
        );
    }
    assert_eq!(e.httpbin.request_count(), 1);
}
