//! The world a case runs in: the base and case manifests as the API server would hold them, echo
//! "pods" behind every Service, and the config file the gateway reads.

use serde_yaml_ng::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use waygate_conformance::echo::{EchoIdentity, EchoServer, PodMemory, Protocols};
use waygate_conformance::grpc_echo::GrpcEchoServer;

/// Replicas of an app without a Deployment, as most upstream base Deployments run.
const REPLICAS: usize = 2;
/// The container port of the upstream echo's h2c-only server; every other target port is its
/// plain HTTP/1.1 server (or, for a gRPC echo, its one gRPC server).
const H2C_TARGET_PORT: u64 = 3001;
/// The environment variable that turns the upstream echo image into the gRPC echo.
const GRPC_ECHO_ENV: &str = "GRPC_ECHO_SERVER";
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
#[derive(Debug, Clone, Copy)]
struct PodSpec {
    replicas: usize,
    grpc: bool,
}

fn pod_spec(objects: &[Object], app: &(String, String)) -> PodSpec {
    let Some(d) = objects
        .iter()
        .find(|o| o.kind == "Deployment" && o.namespace == app.0 && o.name == app.1)
    else {
        return PodSpec {
            replicas: REPLICAS,
            grpc: false,
        };
    };
    let spec = d.value.get("spec");
    let replicas = spec
        .and_then(|s| s.get("replicas"))
        .and_then(Value::as_u64)
        .and_then(|r| usize::try_from(r).ok())
        .unwrap_or(1);
    let grpc = spec
        .and_then(|s| s.get("template"))
        .and_then(|t| t.get("spec"))
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("env").and_then(Value::as_sequence))
        .flatten()
        .any(|e| e.get("name").and_then(Value::as_str) == Some(GRPC_ECHO_ENV));
    PodSpec { replicas, grpc }
}

/// One echo pod: the upstream echo's HTTP/1.1 and h2c servers sharing what they remember, or a
/// gRPC echo.
pub enum Pod {
    /// The HTTP echo.
    Http {
        /// HTTP/1.1 (and WebSocket) server, target port 3000.
        http: EchoServer,
        /// h2c-only server, target port 3001.
        h2c: EchoServer,
    },
    /// The gRPC echo (h2c).
    Grpc(GrpcEchoServer),
}

impl Pod {
    /// The pod's address for a Service port with this target port.
    fn addr_for(&self, target_port: Option<u64>) -> SocketAddr {
        match self {
            Pod::Http { h2c, .. } if target_port == Some(H2C_TARGET_PORT) => h2c.addr,
            Pod::Http { http, .. } => http.addr,
            Pod::Grpc(g) => g.addr,
        }
    }

    /// The request targets this pod has served.
    pub fn served(&self) -> Vec<String> {
        match self {
            Pod::Http { http, .. } => http.served(),
            Pod::Grpc(_) => Vec::new(),
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
        let objects = base
            .iter()
            .chain(case)
            .cloned()
            .map(Object::new)
            .collect::<Result<Vec<_>, _>>()?;
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
        for svc in &services {
            let Some(app) = &svc.app else { continue };
            let spec = pod_spec(&objects, app);
            let pods = self.pods_of(app, spec).await?;
            for (i, pod) in pods.iter().enumerate() {
                text.push_str("---\n");
                text.push_str(&endpoint_slice(svc, i, pod)?);
            }
        }
        std::fs::write(&self.file, text).map_err(|e| format!("{}: {e}", self.file.display()))?;
        self.objects = objects;
        Ok(())
    }

    /// The pods of an app, started on first use.
    async fn pods_of(&mut self, app: &(String, String), spec: PodSpec) -> Result<&[Pod], String> {
        if !self.pods.contains_key(app) {
            let (ns, name) = app;
            let mut pods = Vec::with_capacity(spec.replicas);
            for i in 0..spec.replicas {
                let identity = EchoIdentity::new(ns, name, format!("{name}-{POD_HASH}-{i}"));
                let any = SocketAddr::from(([127, 0, 0, 1], 0));
                let failed = |e: std::io::Error| format!("echo pod for {ns}/{name}: {e}");
                let pod = if spec.grpc {
                    Pod::Grpc(GrpcEchoServer::start(any, identity).await.map_err(failed)?)
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
                    let h2c = EchoServer::start_with(any, identity, Protocols::H2c, memory)
                        .await
                        .map_err(failed)?;
                    Pod::Http { http, h2c }
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
