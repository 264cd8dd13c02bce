//! Mesh cases (`mesh: true`): requests leave a calling pod of the mesh and are carried as ztunnel
//! carries them. A name resolves like cluster DNS from the caller's namespace to a Service's
//! cluster IP; traffic to a Service bound to a waypoint (`istio.io/use-waypoint` on the Service or
//! its Namespace) goes over HBONE to that waypoint — mutual TLS 1.3 under the caller's SPIFFE
//! identity, ALPN h2, one HTTP/2 `CONNECT <cluster IP>:<port>` tunnel per request — and carries
//! plain HTTP/1.1. A pod's own address (`{pod <deployment>}` in a host) is reached directly: no
//! waypoint here takes workload-addressed traffic, so ztunnel would not send it to one.

use crate::client::{self, Reply};
use crate::world::World;
use rustls::ClientConfig;
use serde_yaml_ng::Value;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use waygate::gateway::Gateway;
use waygate::mesh::{IdentityFiles, dev_ca};
use waygate_config::NsName;
use waygate_conformance::hbone::{HboneClient, client_config};
use waygate_conformance::pki::Issued;

/// The mesh's trust domain.
pub const TRUST_DOMAIN: &str = "cluster.local";
/// Where the calling pod runs unless a request says otherwise (upstream's `MeshNamespace`).
pub const DEFAULT_NAMESPACE: &str = "gateway-conformance-mesh";
/// The host a mesh request goes to unless it names one, as upstream's mesh client defaults.
pub const DEFAULT_HOST: &str = "echo";
/// The calling pod's service account: upstream's echo pods run as `default`.
const CLIENT_SA: &str = "default";
/// The GatewayClass of waypoints.
const WAYPOINT_CLASS: &str = "istio-waypoint";
/// The port waypoints take HBONE on.
const HBONE_PORT: u16 = 15008;
/// The labels that bind a Service (or every Service of a Namespace) to a waypoint.
const USE_WAYPOINT: &str = "istio.io/use-waypoint";
const USE_WAYPOINT_NAMESPACE: &str = "istio.io/use-waypoint-namespace";
/// A bound for connecting and opening a tunnel, so a hung waypoint fails the request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The mesh of one case: its CA, the waypoint's identity and the callers' TLS settings.
pub struct MeshEnv {
    ca_dir: PathBuf,
    ca_pem: String,
    /// The identity the waypoint presents: `spiffe://…/ns/<its namespace>/sa/<its name>`, as
    /// Istio runs a waypoint under a service account named like its Gateway.
    waypoint_id: String,
    /// The waypoint's certificate files.
    pub identity: IdentityFiles,
    /// Client TLS settings by the caller's namespace.
    clients: Mutex<BTreeMap<String, Arc<ClientConfig>>>,
}

impl MeshEnv {
    /// A fresh CA in `dir` and an identity for the first waypoint among `world`'s objects.
    pub fn new(dir: &Path, world: &World) -> Result<MeshEnv, String> {
        let waypoint = world
            .objects
            .iter()
            .find(|o| {
                o.kind == "Gateway"
                    && o.value
                        .get("spec")
                        .and_then(|s| s.get("gatewayClassName"))
                        .and_then(Value::as_str)
                        == Some(WAYPOINT_CLASS)
            })
            .ok_or_else(|| format!("a mesh case needs a Gateway of class {WAYPOINT_CLASS}"))?;
        let ca_dir = dir.join("mesh-ca");
        let bundle = dev_ca::init(&ca_dir, TRUST_DOMAIN, false).map_err(|e| format!("CA: {e}"))?;
        let (cert, key) = dev_ca::issue(&ca_dir, TRUST_DOMAIN, &waypoint.namespace, &waypoint.name)
            .map_err(|e| format!("waypoint identity: {e}"))?;
        let ca_pem = std::fs::read_to_string(&bundle).map_err(|e| format!("CA: {e}"))?;
        Ok(MeshEnv {
            waypoint_id: format!(
                "spiffe://{TRUST_DOMAIN}/ns/{}/sa/{}",
                waypoint.namespace, waypoint.name
            ),
            identity: IdentityFiles {
                cert,
                key,
                trust_bundle: bundle,
                trust_domain: TRUST_DOMAIN.into(),
            },
            ca_dir,
            ca_pem,
            clients: Mutex::new(BTreeMap::new()),
        })
    }

    /// The TLS settings of a pod in `namespace` calling the waypoint: its workload certificate
    /// (`spiffe://cluster.local/ns/<namespace>/sa/default`), and only the waypoint's identity
    /// accepted on the other side.
    fn client(&self, namespace: &str) -> Result<Arc<ClientConfig>, String> {
        let mut clients = self.clients.lock().map_err(|e| e.to_string())?;
        if let Some(c) = clients.get(namespace) {
            return Ok(c.clone());
        }
        let (cert, key) = dev_ca::issue(&self.ca_dir, TRUST_DOMAIN, namespace, CLIENT_SA)
            .map_err(|e| format!("identity for {namespace}: {e}"))?;
        let read = |p: PathBuf| std::fs::read_to_string(&p).map_err(|e| format!("{p:?}: {e}"));
        let issued = Issued {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
        };
        let config = client_config(&self.ca_pem, Some(&issued), &self.waypoint_id)
            .map_err(|e| format!("client TLS for {namespace}: {e}"))?;
        clients.insert(namespace.to_string(), config.clone());
        Ok(config)
    }
}

/// Where a mesh request goes.
#[derive(Clone)]
pub enum Target {
    /// Over HBONE to a waypoint, tunnelled to `dest` (a Service's cluster IP and port).
    Waypoint {
        /// The waypoint's HBONE address.
        waypoint: SocketAddr,
        /// The server name sent to it.
        sni: String,
        /// The caller's TLS settings.
        config: Arc<ClientConfig>,
        /// The `CONNECT` authority.
        dest: SocketAddr,
    },
    /// Straight to a pod's socket.
    Pod(SocketAddr),
}

impl Target {
    /// A one-line description for failure messages.
    pub fn describe(&self) -> String {
        match self {
            Target::Waypoint { waypoint, dest, .. } => {
                format!("HBONE to {waypoint}, CONNECT {dest}")
            }
            Target::Pod(addr) => format!("straight to pod {addr}"),
        }
    }

    /// Send one HTTP/1.1 request; every failure before an HTTP answer is an error.
    pub async fn send(
        &self,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(String, String)],
    ) -> Result<Reply, String> {
        match self {
            Target::Waypoint {
                waypoint,
                sni,
                config,
                dest,
            } => {
                let open = async {
                    let c = HboneClient::connect(*waypoint, sni, config.clone())
                        .await
                        .map_err(|e| format!("HBONE to {waypoint}: {e:#}"))?;
                    c.open(*dest)
                        .await
                        .map_err(|e| format!("CONNECT {dest} via {waypoint}: {e}"))
                };
                let tunnel = tokio::time::timeout(CONNECT_TIMEOUT, open)
                    .await
                    .map_err(|_| format!("no tunnel to {dest} within {CONNECT_TIMEOUT:?}"))??;
                client::send_on(tunnel, method, host, path, headers).await
            }
            Target::Pod(addr) => {
                let tcp =
                    tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
                        .await
                        .map_err(|_| format!("connect {addr}: timed out"))?
                        .map_err(|e| format!("connect {addr}: {e}"))?;
                client::send_on(tcp, method, host, path, headers).await
            }
        }
    }
}

/// `host` without a trailing `:port`, and that port.
fn split_port(host: &str) -> Result<(&str, Option<u16>), String> {
    match host.rsplit_once(':') {
        None => Ok((host, None)),
        Some((h, p)) => p
            .parse()
            .map(|p| (h, Some(p)))
            .map_err(|_| format!("host {host:?}: bad port")),
    }
}

/// The waypoint a Service is bound to: its own label, else its Namespace's; `none` opts out.
fn waypoint_of(world: &World, ns: &str, service: &Value) -> Option<NsName> {
    let ns_labels = world
        .object("Namespace", ns)
        .map(|n| n.value.clone())
        .unwrap_or(Value::Null);
    [service, &ns_labels].into_iter().find_map(|o| {
        let labels = o.get("metadata")?.get("labels")?;
        let name = labels.get(USE_WAYPOINT)?.as_str()?;
        let wns = labels
            .get(USE_WAYPOINT_NAMESPACE)
            .and_then(Value::as_str)
            .unwrap_or(ns);
        Some(NsName::new(wns, name))
    })
}

/// Resolve `host` as a pod in namespace `from` would, and say how its request travels. Returns
/// the target and the Host header a client sends for that URL host. `host` is
/// `<service>[.<namespace>[.svc[.cluster.local]]][:<port>]` (port 80 if none), or
/// `{pod <deployment>}:<port>` for the address of the first pod of a Deployment in `from`, with
/// `<port>` the container port.
pub fn resolve(
    gateway: &Gateway,
    world: &World,
    env: &MeshEnv,
    host: &str,
    from: &str,
) -> Result<(Target, String), String> {
    let (name, port) = split_port(host)?;
    if let Some(app) = name.strip_prefix("{pod ").and_then(|s| s.strip_suffix('}')) {
        let port = port.ok_or_else(|| format!("{host:?}: a pod address needs a port"))?;
        let pod = world
            .pods(from, app)
            .first()
            .ok_or_else(|| format!("no pod of {from}/{app}"))?;
        let addr = pod.addr_for(Some(u64::from(port)));
        return Ok((Target::Pod(addr), format!("{}:{port}", addr.ip())));
    }
    let port = port.unwrap_or(80);
    let labels: Vec<&str> = name.split('.').collect();
    let (svc_name, ns) = match labels.as_slice() {
        [svc] => (*svc, from),
        [svc, ns] | [svc, ns, "svc"] | [svc, ns, "svc", "cluster", "local"] => (*svc, *ns),
        _ => return Err(format!("{host:?} does not resolve in the cluster")),
    };
    let service = world
        .object("Service", &format!("{ns}/{svc_name}"))
        .ok_or_else(|| format!("{host:?}: no Service {ns}/{svc_name}"))?;
    let spec = service.value.get("spec");
    let ip: IpAddr = spec
        .and_then(|s| s.get("clusterIP"))
        .and_then(Value::as_str)
        .and_then(|ip| ip.parse().ok())
        .ok_or_else(|| format!("Service {ns}/{svc_name} has no cluster IP"))?;
    let has_port = spec
        .and_then(|s| s.get("ports"))
        .and_then(Value::as_sequence)
        .is_some_and(|ports| {
            ports
                .iter()
                .any(|p| p.get("port").and_then(Value::as_u64) == Some(u64::from(port)))
        });
    if !has_port {
        return Err(format!("Service {ns}/{svc_name} has no port {port}"));
    }
    let waypoint = waypoint_of(world, ns, &service.value)
        .filter(|w| w.name != "none")
        .ok_or_else(|| format!("Service {ns}/{svc_name} is bound to no waypoint"))?;
    let addr = gateway
        .bound_addr(&waypoint, HBONE_PORT)
        .ok_or_else(|| format!("waypoint {waypoint} does not serve HBONE on {HBONE_PORT}"))?;
    let target = Target::Waypoint {
        waypoint: addr,
        sni: format!("{}.{}.svc.cluster.local", waypoint.name, waypoint.namespace),
        config: env.client(from)?,
        dest: SocketAddr::new(ip, port),
    };
    Ok((target, host.to_string()))
}

#[cfg(test)]
mod tests {
    use super::split_port;

    #[test]
    fn hosts_split_into_name_and_port() {
        assert_eq!(split_port("echo"), Ok(("echo", None)));
        assert_eq!(split_port("echo-v1:8080"), Ok(("echo-v1", Some(8080))));
        assert!(split_port("echo:http").is_err());
    }
}
