//! Egress through a waypoint ([SE-4], issue 6 "done means" 4): an HBONE client → the egress
//! waypoint → a ServiceEntry host found by DNS (a real DNS server, hickory, on loopback) →
//! TLS originated per the DestinationRule to an HTTPS upstream. Also: a route attached to the
//! ServiceEntry, the address allocated to a host without `addresses`, re-resolution once the
//! record's TTL runs out, and 503 for a name that does not resolve.

use hickory_server::ServerFuture;
use hickory_server::authority::{Catalog, ZoneType};
use hickory_server::proto::rr::rdata::{A, SOA};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryAuthority;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use waygate::BindPlan;
use waygate::gateway::{ConfigSource, Gateway, GatewayOptions};
use waygate::mesh::{IdentityFiles, dev_ca};
use waygate_config::NsName;
use waygate_conformance::echo::{EchoIdentity, EchoServer, PodMemory, tls::server_config};
use waygate_conformance::hbone::{HboneClient, client_config};
use waygate_conformance::pki::{Issued, TestCa};

const ZONE: &str = "external.test.";
const TTL: u32 = 1;

/// An authoritative DNS server for `external.test.` on a loopback UDP port.
struct TestDns {
    addr: SocketAddr,
    zone: Arc<InMemoryAuthority>,
    serial: u32,
    _server: ServerFuture<Catalog>,
}

impl TestDns {
    async fn start(records: &[(&str, Ipv4Addr)]) -> TestDns {
        let origin = Name::from_str(ZONE).unwrap();
        let mut zone = InMemoryAuthority::empty(origin.clone(), ZoneType::Primary, false);
        let soa = SOA::new(
            Name::from_str("ns.external.test.").unwrap(),
            Name::from_str("admin.external.test.").unwrap(),
            1,
            60,
            60,
            60,
            TTL,
        );
        zone.upsert_mut(Record::from_rdata(origin.clone(), TTL, RData::SOA(soa)), 1);
        for (name, ip) in records {
            let name = Name::from_str(name).unwrap();
            zone.upsert_mut(Record::from_rdata(name, TTL, RData::A(A::from(*ip))), 1);
        }
        let zone = Arc::new(zone);
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::new(&origin), vec![zone.clone()]);
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let mut server = ServerFuture::new(catalog);
        server.register_socket(socket);
        TestDns {
            addr,
            zone,
            serial: 1,
            _server: server,
        }
    }

    /// Add an address to a name (a new serial, as a zone update would).
    async fn add(&mut self, name: &str, ip: Ipv4Addr) {
        self.serial += 1;
        let record = Record::from_rdata(Name::from_str(name).unwrap(), TTL, RData::A(A::from(ip)));
        assert!(self.zone.upsert(record, self.serial).await);
    }
}

/// An HTTPS echo for `api.external.test` on `ip:port` (0: any port).
async fn https_echo(cert: &Issued, pod: &str, bind: SocketAddr) -> EchoServer {
    EchoServer::start_tls(
        bind,
        EchoIdentity::new("external", "api", pod),
        server_config(cert, None).unwrap(),
        PodMemory::new(),
    )
    .await
    .unwrap()
}

fn issued(dir: &std::path::Path, ns: &str, sa: &str) -> Issued {
    let (cert, key) = dev_ca::issue(dir, "cluster.local", ns, sa).unwrap();
    Issued {
        cert_pem: std::fs::read_to_string(cert).unwrap(),
        key_pem: std::fs::read_to_string(key).unwrap(),
    }
}

/// One HTTP/1.1 GET through a new tunnel to `dest`; (status, body).
async fn get_via(
    client: &HboneClient,
    dest: SocketAddr,
    host: &str,
    path: &str,
) -> (u16, serde_json::Value) {
    let tunnel = client.open(dest).await.unwrap();
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
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into()));
    (status, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mesh_client_reaches_an_external_https_host_through_the_egress_waypoint() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dev_ca::init(dir.path(), "cluster.local", false).unwrap();
    let (cert, key) = dev_ca::issue(dir.path(), "cluster.local", "egress", "waypoint").unwrap();
    let external_ca = TestCa::new("external CA").unwrap();
    let server_cert = external_ca.server(&["api.external.test"]).unwrap();
    let first = https_echo(&server_cert, "api-1", "127.0.0.1:0".parse().unwrap()).await;
    let port = first.addr.port();
    let mut dns = TestDns::start(&[("api.external.test.", Ipv4Addr::LOCALHOST)]).await;
    let indented_ca: String = external_ca
        .pem
        .lines()
        .map(|l| format!("    {l}\n"))
        .collect();
    let yaml = format!(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: egress-waypoint, namespace: egress}}
spec:
  gatewayClassName: istio-waypoint
  listeners:
  - {{name: mesh, port: 15008, protocol: HBONE, allowedRoutes: {{namespaces: {{from: All}}}}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: api
  namespace: egress
  labels: {{istio.io/use-waypoint: egress-waypoint}}
spec:
  hosts: [api.external.test]
  ports: [{{number: 80, name: http, protocol: HTTP, targetPort: {port}}}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: missing
  namespace: egress
  labels: {{istio.io/use-waypoint: egress-waypoint}}
spec:
  hosts: [missing.external.test]
  addresses: [192.0.2.99]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: api-tls, namespace: egress}}
spec:
  host: api.external.test
  trafficPolicy:
    tls: {{mode: SIMPLE, credentialName: external-ca}}
---
apiVersion: v1
kind: Secret
metadata: {{name: external-ca, namespace: egress}}
stringData:
  ca.crt: |
{indented_ca}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: api-egress, namespace: egress}}
spec:
  parentRefs: [{{group: networking.istio.io, kind: ServiceEntry, name: api}}]
  rules:
  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {{add: [{{name: x-egress, value: waypoint}}]}}
    backendRefs: [{{group: networking.istio.io, kind: Hostname, name: api.external.test, port: 80}}]
"#
    );
    let gw = Gateway::start(GatewayOptions {
        source: ConfigSource::Inline {
            name: "egress.yaml".into(),
            text: yaml,
        },
        bind: BindPlan::Ephemeral("127.0.0.1".parse().unwrap()),
        admin: Some("127.0.0.1:0".parse().unwrap()),
        gateways: vec![],
        watch: false,
        dns_server: Some(dns.addr),
        identity: Some(IdentityFiles {
            cert,
            key,
            trust_bundle: bundle.clone(),
            trust_domain: "cluster.local".into(),
        }),
    })
    .await
    .unwrap();
    let waypoint = gw
        .bound_addr(&NsName::new("egress", "egress-waypoint"), 15008)
        .unwrap();

    // The host has no `addresses`: the waypoint allocated one and reports it.
    let status = gw.state().status().report.clone();
    let entry = status
        .objects
        .iter()
        .find(|o| o.kind == "ServiceEntry" && o.name == "api")
        .unwrap();
    assert_eq!(entry.addresses.len(), 1, "{entry:?}");
    assert_eq!(
        entry.addresses[0].host.as_deref(),
        Some("api.external.test")
    );
    let vip: std::net::IpAddr = entry.addresses[0].value.parse().unwrap();
    assert!(vip.to_string().starts_with("240.240."), "{vip}");
    let route = status
        .objects
        .iter()
        .find(|o| o.kind == "HTTPRoute" && o.name == "api-egress")
        .unwrap();
    let accepted = route.parents[0].conditions.get("Accepted").unwrap();
    assert_eq!(accepted.status, "True", "{route:?}");

    let curl = issued(dir.path(), "apps", "curl");
    let ca_pem = std::fs::read_to_string(&bundle).unwrap();
    let config = client_config(
        &ca_pem,
        Some(&curl),
        "spiffe://cluster.local/ns/egress/sa/waypoint",
    )
    .unwrap();
    let client = HboneClient::connect(waypoint, "egress-waypoint.egress", config)
        .await
        .unwrap();
    let dest = SocketAddr::new(vip, 80);
    let (status, echo) = get_via(&client, dest, "api.external.test", "/get").await;
    assert_eq!(status, 200, "{echo}");
    assert_eq!(echo["pod"], "api-1");
    // TLS was originated to the upstream with the host's name, and the route's filter ran.
    assert_eq!(echo["tls"]["serverName"], "api.external.test", "{echo}");
    assert_eq!(echo["headers"]["X-Egress"][0], "waypoint", "{echo}");
    assert_eq!(first.request_count(), 1);

    // A second address for the name: once the first answer's TTL runs out the waypoint asks
    // again and spreads requests over both.
    let second = https_echo(
        &server_cert,
        "api-2",
        SocketAddr::new([127, 0, 0, 2].into(), port),
    )
    .await;
    dns.add("api.external.test.", Ipv4Addr::new(127, 0, 0, 2))
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while second.request_count() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new address was never used"
        );
        let (status, echo) = get_via(&client, dest, "api.external.test", "/again").await;
        assert_eq!(status, 200, "{echo}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A name that does not resolve: 503, and the connection carries on.
    let (status, _) = get_via(
        &client,
        "192.0.2.99:80".parse().unwrap(),
        "missing.external.test",
        "/",
    )
    .await;
    assert_eq!(status, 503);
    let (status, _) = get_via(&client, dest, "api.external.test", "/after").await;
    assert_eq!(status, 200);
}
