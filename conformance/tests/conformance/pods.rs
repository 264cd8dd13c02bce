//! The echo "pods" of a case: how an app's pods run (from its Deployment: replicas, gRPC, TCP or
//! HTTP echo, HTTPS with what the pod mounts), and starting them on loopback.

use crate::world::{Object, POD_HASH, config_map_data, secret_data};
use serde_yaml_ng::Value;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use waygate_conformance::echo::{EchoIdentity, EchoServer, PodMemory, Protocols, tls};
use waygate_conformance::grpc_echo::GrpcEchoServer;
use waygate_conformance::pki::Issued;
use waygate_conformance::tcp_echo::TcpEchoServer;

/// Replicas of an app without a Deployment, as most upstream base Deployments run.
const REPLICAS: usize = 2;
/// The container port of the upstream echo's h2c-only server; every other target port is its
/// plain HTTP/1.1 server (or, for a gRPC echo, its one gRPC server).
const H2C_TARGET_PORT: u64 = 3001;
/// The container port of the upstream echo's HTTPS server.
pub const TLS_TARGET_PORT: u64 = 8443;
/// The environment variable that turns the upstream echo image into the gRPC echo.
const GRPC_ECHO_ENV: &str = "GRPC_ECHO_SERVER";
/// The environment variable that turns the upstream echo image into the TCP echo.
const TCP_ECHO_ENV: &str = "TCP_ECHO_SERVER";
/// The environment variable that gives the upstream echo its HTTPS certificate.
const TLS_CERT_ENV: &str = "TLS_SERVER_CERT";
/// The environment variable that makes the upstream echo ask for (and verify) client
/// certificates.
const TLS_CLIENT_CA_ENV: &str = "TLS_CLIENT_CACERTS";
/// The Secret an HTTPS echo serves when its Deployment names none: the backend certificate the
/// upstream suite generates for its TLS backends.
const DEFAULT_TLS_SECRET: &str = "tls-checks-certificate";
/// How an app's pods run, from its Deployment (named like the app, as in the upstream base).
#[derive(Debug, Clone)]
pub struct PodSpec {
    replicas: usize,
    grpc: bool,
    /// The TCP echo (plain on 3000, TLS on 8443 with the HTTPS certificate).
    tcp: bool,
    /// Set: the pods also serve HTTPS on target port 8443.
    https: Option<HttpsSpec>,
}

/// What an HTTPS echo serves, as its pod mounts it: the Secret with its certificate and, when it
/// verifies client certificates, the ConfigMap with their CA (both in the pod's namespace).
#[derive(Debug, Clone)]
pub struct HttpsSpec {
    secret: String,
    client_ca: Option<String>,
}

/// The items of a list field of each value, flattened.
fn items<'a>(values: &[&'a Value], field: &str) -> Vec<&'a Value> {
    values
        .iter()
        .filter_map(|v| v.get(field).and_then(Value::as_sequence))
        .flatten()
        .collect()
}

/// The first volume of the pod that mounts an object of this kind (`secret` → `secretName`,
/// `configMap` → `name`).
fn volume_source(pod: Option<&Value>, source: &str, name_field: &str) -> Option<String> {
    let volumes = pod?.get("volumes")?.as_sequence()?;
    volumes
        .iter()
        .find_map(|v| v.get(source)?.get(name_field)?.as_str())
        .map(str::to_string)
}

/// How an app's pods run. They serve HTTPS when the Deployment gives the echo a certificate or
/// exposes port 8443, or when `served_on_tls_port` (some Service sends them to target port 8443,
/// which only the HTTPS server listens on upstream).
pub fn pod_spec(objects: &[Object], app: &(String, String), served_on_tls_port: bool) -> PodSpec {
    let deployment = objects
        .iter()
        .find(|o| o.kind == "Deployment" && o.namespace == app.0 && o.name == app.1);
    let replicas = match deployment {
        None => REPLICAS,
        Some(d) => d
            .value
            .get("spec")
            .and_then(|s| s.get("replicas"))
            .and_then(Value::as_u64)
            .and_then(|r| usize::try_from(r).ok())
            .unwrap_or(1),
    };
    let pod = deployment.and_then(|d| d.value.get("spec")?.get("template")?.get("spec"));
    let containers = pod.map(|p| items(&[p], "containers")).unwrap_or_default();
    let env: BTreeSet<&str> = items(&containers, "env")
        .into_iter()
        .filter_map(|e| e.get("name").and_then(Value::as_str))
        .collect();
    let exposes_tls_port = items(&containers, "ports")
        .into_iter()
        .any(|p| p.get("containerPort").and_then(Value::as_u64) == Some(TLS_TARGET_PORT));
    let grpc = env.contains(GRPC_ECHO_ENV);
    let tcp = env.contains(TCP_ECHO_ENV);
    // The upstream echo serves HTTPS when given a certificate; the gRPC echo never does here.
    let https = (!grpc && (env.contains(TLS_CERT_ENV) || exposes_tls_port || served_on_tls_port))
        .then(|| HttpsSpec {
            secret: volume_source(pod, "secret", "secretName")
                .unwrap_or_else(|| DEFAULT_TLS_SECRET.to_string()),
            client_ca: env
                .contains(TLS_CLIENT_CA_ENV)
                .then(|| volume_source(pod, "configMap", "name"))
                .flatten(),
        });
    PodSpec {
        replicas,
        grpc,
        tcp,
        https,
    }
}

/// The TLS settings of an HTTPS echo in namespace `ns`, from what its pod mounts.
fn https_config(
    objects: &[Object],
    ns: &str,
    spec: &HttpsSpec,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let secret = format!("{ns}/{}", spec.secret);
    let text =
        |key| secret_data(objects, &secret, key).map(|b| String::from_utf8_lossy(&b).into_owned());
    let cert = Issued {
        cert_pem: text("tls.crt")?,
        key_pem: text("tls.key")?,
    };
    let client_ca = match &spec.client_ca {
        Some(cm) => Some(config_map_data(objects, &format!("{ns}/{cm}"), "ca.crt")?),
        None => None,
    };
    tls::server_config(&cert, client_ca.as_deref())
        .map_err(|e| format!("HTTPS echo with Secret {secret}: {e}"))
}

/// The HTTPS echo's TLS settings without ALPN: the TCP echo speaks its own line protocol.
fn tls_only(c: &Arc<rustls::ServerConfig>) -> Arc<rustls::ServerConfig> {
    let mut c = (**c).clone();
    c.alpn_protocols.clear();
    Arc::new(c)
}

/// One echo pod: the upstream echo's HTTP/1.1, h2c and (when given a certificate) HTTPS servers
/// sharing what they remember, or a gRPC echo.
pub enum Pod {
    /// The HTTP echo.
    Http {
        /// HTTP/1.1 (and WebSocket) server, target port 3000.
        http: EchoServer,
        /// h2c-only server, target port 3001.
        h2c: EchoServer,
        /// HTTPS server (HTTP/1.1 or HTTP/2 by ALPN), target port 8443.
        https: Option<EchoServer>,
    },
    /// The gRPC echo (h2c).
    Grpc(GrpcEchoServer),
    /// The TCP echo: plain on target port 3000, TLS on 8443.
    Tcp {
        /// Plain.
        plain: TcpEchoServer,
        /// TLS (with the pod's certificate).
        tls: Option<TcpEchoServer>,
    },
}

impl Pod {
    /// The pod's address for a Service port with this target port.
    pub fn addr_for(&self, target_port: Option<u64>) -> SocketAddr {
        match self {
            Pod::Http { h2c, .. } if target_port == Some(H2C_TARGET_PORT) => h2c.addr,
            Pod::Http {
                https: Some(https), ..
            } if target_port == Some(TLS_TARGET_PORT) => https.addr,
            Pod::Http { http, .. } => http.addr,
            Pod::Grpc(g) => g.addr,
            Pod::Tcp { tls: Some(t), .. } if target_port == Some(TLS_TARGET_PORT) => t.addr,
            Pod::Tcp { plain, .. } => plain.addr,
        }
    }

    /// The request targets this pod has served.
    pub fn served(&self) -> Vec<String> {
        match self {
            Pod::Http { http, .. } => http.served(),
            Pod::Grpc(_) | Pod::Tcp { .. } => Vec::new(),
        }
    }
}

/// Start the pods of an app (`namespace`, Deployment or `app` name) as `spec` says: an HTTPS
/// echo with what its pod mounts from `objects`.
pub async fn start(
    app: &(String, String),
    spec: &PodSpec,
    objects: &[Object],
) -> Result<Vec<Pod>, String> {
    let (ns, name) = app;
    let https_config = match &spec.https {
        Some(h) => Some(https_config(objects, ns, h)?),
        None => None,
    };
    let mut pods = Vec::with_capacity(spec.replicas);
    for i in 0..spec.replicas {
        let identity = EchoIdentity::new(ns, name, format!("{name}-{POD_HASH}-{i}"));
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let failed = |e: std::io::Error| format!("echo pod for {ns}/{name}: {e}");
        let pod = if spec.grpc {
            Pod::Grpc(GrpcEchoServer::start(any, identity).await.map_err(failed)?)
        } else if spec.tcp {
            let plain = TcpEchoServer::start(any, identity.clone(), None)
                .await
                .map_err(failed)?;
            let tls = match &https_config {
                Some(c) => Some(
                    TcpEchoServer::start(any, identity, Some(tls_only(c)))
                        .await
                        .map_err(failed)?,
                ),
                None => None,
            };
            Pod::Tcp { plain, tls }
        } else {
            let memory = PodMemory::new();
            let http =
                EchoServer::start_with(any, identity.clone(), Protocols::Http1, memory.clone())
                    .await
                    .map_err(failed)?;
            let h2c = EchoServer::start_with(any, identity.clone(), Protocols::H2c, memory.clone())
                .await
                .map_err(failed)?;
            let https = match &https_config {
                Some(c) => Some(
                    EchoServer::start_tls(any, identity, c.clone(), memory)
                        .await
                        .map_err(failed)?,
                ),
                None => None,
            };
            Pod::Http { http, h2c, https }
        };
        pods.push(pod);
    }
    Ok(pods)
}
