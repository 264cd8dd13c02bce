//! The world a case runs in: the base and case manifests as the API server would hold them, echo
//! "pods" behind every Service, and the config file the gateway reads.

use base64::Engine;
use serde_yaml_ng::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
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
const TLS_TARGET_PORT: u64 = 8443;
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
/// The middle part of every pod name (where Kubernetes puts the ReplicaSet hash).
const POD_HASH: &str = "conformance";
/// The annotation that keeps a Gateway out of readiness checks.
pub const SKIP_READINESS: &str = "gateway-api/skip-this-for-readiness";

/// Split multi-document YAML into objects (empty documents dropped).
pub fn parse_docs(label: &str, text: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let v = <Value as serde::Deserialize>::deserialize(doc)
            .map_err(|e| format!("{label}: document {i}: {e}"))?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}

/// What the runner needs to know about one object.
#[derive(Debug, Clone)]
pub struct Object {
    /// Kind.
    pub kind: String,
    /// Namespace; empty for cluster-scoped kinds.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `metadata.generation` (the runner sets 1 where a manifest leaves it out).
    pub generation: i64,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// The whole object.
    pub value: Value,
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    cur.as_str()
}

fn is_cluster_scoped(kind: &str) -> bool {
    matches!(kind, "Namespace" | "GatewayClass")
}

impl Object {
    /// Read an object, giving it generation 1 if the manifest has none (the API server would).
    fn new(mut value: Value) -> Result<Object, String> {
        let kind = str_at(&value, &["kind"]).unwrap_or("").to_string();
        let name = str_at(&value, &["metadata", "name"])
            .unwrap_or("")
            .to_string();
        if kind.is_empty() || name.is_empty() {
            return Err(format!("object without kind or metadata.name: {value:?}"));
        }
        let namespace = if is_cluster_scoped(&kind) {
            String::new()
        } else {
            str_at(&value, &["metadata", "namespace"])
                .unwrap_or("default")
                .to_string()
        };
        let meta = value
            .get_mut("metadata")
            .and_then(Value::as_mapping_mut)
            .ok_or_else(|| format!("{kind} {name}: metadata is not a mapping"))?;
        let generation = match meta.get("generation").and_then(Value::as_i64) {
            Some(g) => g,
            None => {
                meta.insert("generation".into(), 1.into());
                1
            }
        };
        let annotations = meta
            .get("annotations")
            .and_then(Value::as_mapping)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Object {
            kind,
            namespace,
            name,
            generation,
            annotations,
            value,
        })
    }

    /// `namespace/name`.
    pub fn id(&self) -> String {
        if self.namespace.is_empty() {
            self.name.clone()
        } else {
            format!("{}/{}", self.namespace, self.name)
        }
    }
}

/// A Service's ports as the generated EndpointSlices must name them: (name, target port).
struct ServicePorts {
    namespace: String,
    name: String,
    ports: Vec<(Option<String>, Option<u64>)>,
    app: Option<(String, String)>,
}

fn service_ports(o: &Object, endpoints: &BTreeMap<String, String>) -> ServicePorts {
    let ports = o
        .value
        .get("spec")
        .and_then(|s| s.get("ports"))
        .and_then(Value::as_sequence)
        .map(|ports| {
            ports
                .iter()
                .map(|p| {
                    (
                        p.get("name").and_then(Value::as_str).map(str::to_string),
                        p.get("targetPort").and_then(Value::as_u64),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    // Pods come from the selector's `app` label (Deployment name == app label in the base), or,
    // for a selector-less Service, from the app the case says fills its EndpointSlices.
    let app = str_at(&o.value, &["spec", "selector", "app"])
        .map(|a| (o.namespace.clone(), a.to_string()))
        .or_else(|| {
            endpoints.get(&o.id()).map(|a| match a.split_once('/') {
                Some((ns, app)) => (ns.to_string(), app.to_string()),
                None => (o.namespace.clone(), a.clone()),
            })
        });
    ServicePorts {
        namespace: o.namespace.clone(),
        name: o.name.clone(),
        ports,
        app,
    }
}

/// How an app's pods run, from its Deployment (named like the app, as in the upstream base).
#[derive(Debug, Clone)]
struct PodSpec {
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
struct HttpsSpec {
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
fn pod_spec(objects: &[Object], app: &(String, String), served_on_tls_port: bool) -> PodSpec {
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

/// A key of a Secret's `data`, decoded.
fn secret_data(objects: &[Object], id: &str, key: &str) -> Result<Vec<u8>, String> {
    let o = objects
        .iter()
        .find(|o| o.kind == "Secret" && o.id() == id)
        .ok_or_else(|| format!("no Secret {id}"))?;
    let b64 = o
        .value
        .get("data")
        .and_then(|d| d.get(key))
        .and_then(Value::as_str)
        .ok_or_else(|| format!("Secret {id} has no data {key:?}"))?;
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("Secret {id} data {key:?}: {e}"))
}

/// A key of a ConfigMap's `data`.
fn config_map_data(objects: &[Object], id: &str, key: &str) -> Result<String, String> {
    objects
        .iter()
        .find(|o| o.kind == "ConfigMap" && o.id() == id)
        .ok_or_else(|| format!("no ConfigMap {id}"))?
        .value
        .get("data")
        .and_then(|d| d.get(key))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("ConfigMap {id} has no data {key:?}"))
}

/// `{{ConfigMap namespace/name key}}`: the ConfigMap value it stands for.
fn copy_source(value: &str) -> Option<(&str, &str)> {
    value
        .strip_prefix("{{ConfigMap ")?
        .strip_suffix("}}")?
        .trim()
        .split_once(' ')
}

/// Replace each ConfigMap value written `{{ConfigMap namespace/name key}}` with that key of the
/// named ConfigMap: upstream tests copy generated CA data into ConfigMaps they create, and that
/// data only exists once this run has generated it.
fn fill_copies(objects: &mut [Object]) -> Result<(), String> {
    let mut fills = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        if o.kind != "ConfigMap" {
            continue;
        }
        let Some(data) = o.value.get("data").and_then(Value::as_mapping) else {
            continue;
        };
        for (key, value) in data {
            if let Some((id, from_key)) = value.as_str().and_then(copy_source) {
                let copied = config_map_data(objects, id, from_key)
                    .map_err(|e| format!("ConfigMap {}: {e}", o.id()))?;
                fills.push((i, key.clone(), copied));
            }
        }
    }
    for (i, key, copied) in fills {
        if let Some(data) = objects[i]
            .value
            .get_mut("data")
            .and_then(Value::as_mapping_mut)
        {
            data.insert(key, Value::String(copied));
        }
    }
    Ok(())
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
    fn addr_for(&self, target_port: Option<u64>) -> SocketAddr {
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

/// The world of one case.
pub struct World {
    dir: PathBuf,
    /// The config file the gateway reads.
    pub file: PathBuf,
    pods: BTreeMap<(String, String), Vec<Pod>>,
    /// Base and case objects of the current step.
    pub objects: Vec<Object>,
}

impl World {
    /// A fresh world with its own config folder.
    pub fn new(case: &str) -> Result<World, String> {
        let dir =
            std::env::temp_dir().join(format!("waygate-conformance-{}-{case}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(World {
            file: dir.join("config.yaml"),
            dir,
            pods: BTreeMap::new(),
            objects: Vec::new(),
        })
    }

    /// Make `base` + `case` the current objects: start pods for every Service, add the
    /// EndpointSlices Kubernetes would maintain, and write the config file.
    pub async fn apply(
        &mut self,
        base: &[Value],
        case: &[Value],
        endpoints: &BTreeMap<String, String>,
    ) -> Result<(), String> {
        let mut objects = base
            .iter()
            .chain(case)
            .cloned()
            .map(Object::new)
            .collect::<Result<Vec<_>, _>>()?;
        fill_copies(&mut objects)?;
        let mut seen = BTreeSet::new();
        for o in &objects {
            if !seen.insert((o.kind.clone(), o.id())) {
                return Err(format!("{} {} is defined twice", o.kind, o.id()));
            }
        }
        for key in endpoints.keys() {
            if !objects
                .iter()
                .any(|o| o.kind == "Service" && o.id() == *key)
            {
                return Err(format!("endpoints: no Service {key}"));
            }
        }
        let services: Vec<ServicePorts> = objects
            .iter()
            .filter(|o| o.kind == "Service")
            .map(|o| service_ports(o, endpoints))
            .collect();
        let mut text = String::new();
        // Deployments only tell the runner how to start pods; the gateway never sees them.
        for o in objects.iter().filter(|o| o.kind != "Deployment") {
            text.push_str("---\n");
            text.push_str(&serde_yaml_ng::to_string(&o.value).map_err(|e| e.to_string())?);
        }
        let served_on_tls_port: BTreeSet<&(String, String)> = services
            .iter()
            .filter(|s| s.ports.iter().any(|(_, t)| *t == Some(TLS_TARGET_PORT)))
            .filter_map(|s| s.app.as_ref())
            .collect();
        for svc in &services {
            let Some(app) = &svc.app else { continue };
            let spec = pod_spec(&objects, app, served_on_tls_port.contains(app));
            let pods = self.pods_of(app, &spec, &objects).await?;
            for (i, pod) in pods.iter().enumerate() {
                text.push_str("---\n");
                text.push_str(&endpoint_slice(svc, i, pod)?);
            }
        }
        std::fs::write(&self.file, text).map_err(|e| format!("{}: {e}", self.file.display()))?;
        self.objects = objects;
        Ok(())
    }

    /// The pods of an app, started on first use (an HTTPS echo with what its pod mounts from
    /// `objects`).
    async fn pods_of(
        &mut self,
        app: &(String, String),
        spec: &PodSpec,
        objects: &[Object],
    ) -> Result<&[Pod], String> {
        if !self.pods.contains_key(app) {
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
                    let http = EchoServer::start_with(
                        any,
                        identity.clone(),
                        Protocols::Http1,
                        memory.clone(),
                    )
                    .await
                    .map_err(failed)?;
                    let h2c = EchoServer::start_with(
                        any,
                        identity.clone(),
                        Protocols::H2c,
                        memory.clone(),
                    )
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
            self.pods.insert(app.clone(), pods);
        }
        Ok(self.pods.get(app).map(Vec::as_slice).unwrap_or_default())
    }

    /// The pods of app `name` in `namespace` (none if it never started).
    pub fn pods(&self, namespace: &str, name: &str) -> &[Pod] {
        self.pods
            .get(&(namespace.to_string(), name.to_string()))
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The object of this kind and `namespace/name` (or `name` if cluster-scoped).
    pub fn object(&self, kind: &str, id: &str) -> Option<&Object> {
        self.objects.iter().find(|o| o.kind == kind && o.id() == id)
    }

    /// A key of the `data` of Secret `namespace/name`, decoded.
    pub fn secret_data(&self, id: &str, key: &str) -> Result<Vec<u8>, String> {
        secret_data(&self.objects, id, key)
    }

    /// The Gateways in a namespace.
    pub fn gateways_in<'a>(&'a self, ns: &'a str) -> impl Iterator<Item = &'a Object> + 'a {
        self.objects
            .iter()
            .filter(move |o| o.kind == "Gateway" && o.namespace == ns)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One EndpointSlice per pod (pods share 127.0.0.1 and differ by port); each Service port points
/// at the pod server its target port names.
fn endpoint_slice(svc: &ServicePorts, index: usize, pod: &Pod) -> Result<String, String> {
    let addr = pod.addr_for(None);
    let ports: Vec<serde_json::Value> = svc
        .ports
        .iter()
        .map(|(name, target)| {
            let port = pod.addr_for(*target).port();
            let mut p = serde_json::json!({"port": port, "protocol": "TCP"});
            if let (Some(n), Some(obj)) = (name, p.as_object_mut()) {
                obj.insert("name".into(), n.clone().into());
            }
            p
        })
        .collect();
    let slice = serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": format!("{}-{POD_HASH}-{index}", svc.name),
            "namespace": svc.namespace,
            "labels": {"kubernetes.io/service-name": svc.name},
        },
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": [{"addresses": [addr.ip().to_string()], "conditions": {"ready": true}}],
    });
    serde_yaml_ng::to_string(&slice).map_err(|e| e.to_string())
}
