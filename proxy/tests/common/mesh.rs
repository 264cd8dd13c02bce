//! A waypoint with a development mesh identity, and a mesh client tunnelling to it over HBONE.

use std::sync::Arc;
use waygate::BindPlan;
use waygate::gateway::{ConfigSource, Gateway, GatewayOptions};
use waygate::mesh::{IdentityFiles, dev_ca};
use waygate_config::NsName;
use waygate_conformance::hbone::{HboneClient, client_config};
use waygate_conformance::pki::Issued;

/// A waypoint `<ns>/waypoint` (identity `<ns>/waypoint`) serving some config, and an HBONE
/// client with identity `<ns>/curl` connected to it.
pub struct MeshWaypoint {
    /// Holds the development CA and the issued certificates.
    pub dir: tempfile::TempDir,
    /// The waypoint.
    pub gw: Arc<Gateway>,
    /// The mesh client.
    pub client: HboneClient,
}

/// Start a gateway on ephemeral loopback ports from inline `yaml`, serving with the mesh
/// identity `cert`/`key` under trust bundle `bundle` (trust domain `cluster.local`).
pub async fn start_with_identity(
    yaml: String,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    bundle: std::path::PathBuf,
) -> Arc<Gateway> {
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
            trust_bundle: bundle,
            trust_domain: "cluster.local".into(),
        }),
    })
    .await
    .unwrap()
}

/// Start a waypoint in `ns` serving `yaml` (its own Gateway object is prepended) under a
/// fresh development CA, and connect a mesh client `ns/curl` to it.
pub async fn mesh_waypoint(ns: &str, yaml: &str) -> MeshWaypoint {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dev_ca::init(dir.path(), "cluster.local", false).unwrap();
    let (cert, key) = dev_ca::issue(dir.path(), "cluster.local", ns, "waypoint").unwrap();
    let text = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: waypoint, namespace: {ns}}}\nspec:\n  gatewayClassName: istio-waypoint\n  listeners: [{{name: mesh, port: 15008, protocol: HBONE}}]\n"
    ) + yaml;
    let gw = start_with_identity(text, cert, key, bundle.clone()).await;
    let addr = gw.bound_addr(&NsName::new(ns, "waypoint"), 15008).unwrap();
    let (c, k) = dev_ca::issue(dir.path(), "cluster.local", ns, "curl").unwrap();
    let curl = Issued {
        cert_pem: std::fs::read_to_string(c).unwrap(),
        key_pem: std::fs::read_to_string(k).unwrap(),
    };
    let ca_pem = std::fs::read_to_string(&bundle).unwrap();
    let server_id = format!("spiffe://cluster.local/ns/{ns}/sa/waypoint");
    let config = client_config(&ca_pem, Some(&curl), &server_id).unwrap();
    let client = HboneClient::connect(addr, &format!("waypoint.{ns}"), config)
        .await
        .unwrap();
    MeshWaypoint { dir, gw, client }
}
