//! The world a case runs in: the base and case manifests as the API server would hold them, echo
//! "pods" behind every Service, and the config file the gateway reads.

use crate::pods::{self, Pod, PodSpec, TLS_TARGET_PORT, pod_spec};
use base64::Engine;
use serde_yaml_ng::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// The middle part of every pod name (where Kubernetes puts the ReplicaSet hash).
pub const POD_HASH: &str = "conformance";
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

pub fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
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

/// A Service's ports as the generated EndpointSlices must name them: (name, target port), and the
/// apps (namespace, Deployment or `app` label) whose pods back it.
struct ServicePorts {
    namespace: String,
    name: String,
    ports: Vec<(Option<String>, Option<u64>)>,
    apps: Vec<(String, String)>,
}

/// A string-to-string mapping at `path` (labels, a selector), empty if absent.
fn labels_at(v: &Value, path: &[&str]) -> BTreeMap<String, String> {
    let mut cur = v;
    for p in path {
        match cur.get(*p) {
            Some(next) => cur = next,
            None => return BTreeMap::new(),
        }
    }
    cur.as_mapping()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The Deployments in the Service's namespace whose pod template carries every label of its
/// selector, as Kubernetes selects pods (the mesh base's `echo` selects two Deployments).
fn selected_deployments(o: &Object, objects: &[Object]) -> Vec<(String, String)> {
    let selector = labels_at(&o.value, &["spec", "selector"]);
    if selector.is_empty() {
        return Vec::new();
    }
    objects
        .iter()
        .filter(|d| d.kind == "Deployment" && d.namespace == o.namespace)
        .filter(|d| {
            let labels = labels_at(&d.value, &["spec", "template", "metadata", "labels"]);
            selector.iter().all(|(k, v)| labels.get(k) == Some(v))
        })
        .map(|d| (d.namespace.clone(), d.name.clone()))
        .collect()
}

fn service_ports(
    o: &Object,
    objects: &[Object],
    endpoints: &BTreeMap<String, String>,
) -> ServicePorts {
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
    // Pods come from the Deployments whose pod labels the selector matches; else from the
    // selector's `app` label (Deployment name == app label in the base, whose Deployments carry
    // no pod labels), or, for a selector-less Service, from the app the case says fills its
    // EndpointSlices.
    let mut apps = selected_deployments(o, objects);
    if apps.is_empty() {
        apps.extend(
            str_at(&o.value, &["spec", "selector", "app"])
                .map(|a| (o.namespace.clone(), a.to_string()))
                .or_else(|| {
                    endpoints.get(&o.id()).map(|a| match a.split_once('/') {
                        Some((ns, app)) => (ns.to_string(), app.to_string()),
                        None => (o.namespace.clone(), a.clone()),
                    })
                }),
        );
    }
    ServicePorts {
        namespace: o.namespace.clone(),
        name: o.name.clone(),
        ports,
        apps,
    }
}

/// A key of a Secret's `data`, decoded.
pub fn secret_data(objects: &[Object], id: &str, key: &str) -> Result<Vec<u8>, String> {
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
pub fn config_map_data(objects: &[Object], id: &str, key: &str) -> Result<String, String> {
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

/// The world of one case.
pub struct World {
    dir: PathBuf,
    /// The config file the gateway reads.
    pub file: PathBuf,
    pods: BTreeMap<(String, String), Vec<Pod>>,
    /// Base and case objects of the current step.
    pub objects: Vec<Object>,
    /// Give every Service without one a `clusterIP`, as the API server would (mesh cases: the
    /// waypoint knows a Service by it).
    assign_cluster_ips: bool,
    /// The cluster IPs given so far, by Service `namespace/name`, kept across steps.
    cluster_ips: BTreeMap<String, std::net::Ipv4Addr>,
    /// Mesh cases: the mesh's CA and the calling pods' identities.
    pub mesh: Option<crate::mesh::MeshEnv>,
}

impl World {
    /// A fresh world with its own config folder; `mesh`: Services get cluster IPs.
    pub fn new(case: &str, mesh: bool) -> Result<World, String> {
        let dir =
            std::env::temp_dir().join(format!("waygate-conformance-{}-{case}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(World {
            file: dir.join("config.yaml"),
            dir,
            pods: BTreeMap::new(),
            objects: Vec::new(),
            assign_cluster_ips: mesh,
            cluster_ips: BTreeMap::new(),
            mesh: None,
        })
    }

    /// The case's own folder (config file, mesh CA).
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Write a `clusterIP` into every Service that has none, from 10.96.0.0/16 in the order
    /// Services are first seen; a Service keeps its address across steps.
    fn assign_cluster_ips(&mut self, objects: &mut [Object]) -> Result<(), String> {
        for o in objects.iter_mut().filter(|o| o.kind == "Service") {
            let id = o.id();
            let spec = o
                .value
                .get_mut("spec")
                .and_then(Value::as_mapping_mut)
                .ok_or_else(|| format!("Service {id}: spec is not a mapping"))?;
            if spec.contains_key("clusterIP") {
                continue;
            }
            let next = self.cluster_ips.len();
            let ip = *self.cluster_ips.entry(id).or_insert_with(|| {
                let n = u32::try_from(next).unwrap_or(0) + 10;
                std::net::Ipv4Addr::new(10, 96, (n >> 8) as u8, (n & 0xff) as u8)
            });
            spec.insert("clusterIP".into(), ip.to_string().into());
        }
        Ok(())
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
        if self.assign_cluster_ips {
            self.assign_cluster_ips(&mut objects)?;
        }
        let services: Vec<ServicePorts> = objects
            .iter()
            .filter(|o| o.kind == "Service")
            .map(|o| service_ports(o, &objects, endpoints))
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
            .flat_map(|s| &s.apps)
            .collect();
        for svc in &services {
            let mut index = 0;
            for app in &svc.apps {
                let spec = pod_spec(&objects, app, served_on_tls_port.contains(app));
                let pods = self.pods_of(app, &spec, &objects).await?;
                for pod in pods {
                    text.push_str("---\n");
                    text.push_str(&endpoint_slice(svc, index, pod)?);
                    index += 1;
                }
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
            let pods = pods::start(app, spec, objects).await?;
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
