//! Test world helpers: echo backends, config text for them, a gateway on ephemeral ports, and a
//! real HTTP/1.1 keep-alive client.

#![allow(dead_code)]

pub mod mesh;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::sync::Arc;
use waygate::BindPlan;
use waygate::gateway::{ConfigSource, Gateway, GatewayOptions};
use waygate_config::NsName;
use waygate_conformance::echo::{EchoIdentity, EchoServer};

/// Start an echo backend for `ns/svc` whose pod name is `pod`.
pub async fn echo(ns: &str, svc: &str, pod: &str) -> EchoServer {
    EchoServer::start(
        "127.0.0.1:0".parse().unwrap(),
        EchoIdentity::new(ns, svc, pod),
    )
    .await
    .unwrap()
}

/// A Gateway `infra/gw` with one HTTP listener on port 80 accepting routes from all namespaces.
pub fn gateway_yaml() -> String {
    r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: istio
  listeners:
  - {name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
"#
    .to_string()
}

/// A Service `ns/name` port 8080 plus an EndpointSlice pointing at `endpoints`.
pub fn service_yaml(ns: &str, name: &str, endpoints: &[SocketAddr]) -> String {
    let mut out = format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  ports:\n  - {{name: http, port: 8080, targetPort: 3000}}\n"
    );
    for (i, ep) in endpoints.iter().enumerate() {
        out.push_str(&format!(
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-{i}\n  namespace: {ns}\n  labels: {{kubernetes.io/service-name: {name}}}\naddressType: IPv4\nports:\n- {{name: http, port: {}}}\nendpoints:\n- addresses: [\"{}\"]\n  conditions: {{ready: true}}\n",
            ep.port(),
            ep.ip()
        ));
    }
    out
}

/// Start a gateway on ephemeral ports from inline YAML.
pub async fn start_inline(yaml: String) -> Arc<Gateway> {
    Gateway::start(GatewayOptions {
        source: ConfigSource::Inline {
            name: "test.yaml".into(),
            text: yaml,
        },
        bind: BindPlan::Ephemeral("127.0.0.1".parse().unwrap()),
        admin: Some("127.0.0.1:0".parse().unwrap()),
        gateways: vec![],
        watch: false,
        dns_server: None,
        identity: None,
    })
    .await
    .unwrap()
}

/// The address of `infra/gw` port 80.
pub fn gw_addr(gw: &Gateway) -> SocketAddr {
    gw.bound_addr(&NsName::new("infra", "gw"), 80).unwrap()
}

/// A pooled keep-alive HTTP/1.1 client.
pub fn client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A response, read whole.
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    /// The echoed JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
    /// The echoed pod name.
    pub fn pod(&self) -> String {
        self.json()["pod"].as_str().unwrap_or("").to_string()
    }
    /// An echoed request header, values joined with ','.
    pub fn seen_header(&self, name: &str) -> Option<String> {
        let j = self.json();
        let headers = j["headers"].as_object()?;
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| {
                v.as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default()
            })
    }
}

/// Send a request; `None` on a transport error.
pub async fn send(
    client: &Client<HttpConnector, Empty<Bytes>>,
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<Reply> {
    let mut b = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("host", host);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = client.request(b.body(Empty::new()).ok()?).await.ok()?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    Some(Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// GET with a Host.
pub async fn get(addr: SocketAddr, host: &str, path: &str) -> Reply {
    send(&client(), addr, "GET", host, path, &[])
        .await
        .expect("request failed")
}

/// GET an admin path.
pub async fn admin_get(gw: &Gateway, path: &str) -> Reply {
    let addr = gw.admin_addr().unwrap();
    send(&client(), addr, "GET", "localhost", path, &[])
        .await
        .expect("admin request failed")
}

/// A pooled keep-alive HTTP/1.1 client that sends bodies.
pub fn body_client() -> Client<HttpConnector, http_body_util::Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Send a request with a body; `None` on a transport error (including a truncated response).
pub async fn send_body(
    client: &Client<HttpConnector, http_body_util::Full<Bytes>>,
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &'static str,
) -> Option<Reply> {
    let mut b = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("host", host);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b
        .body(http_body_util::Full::new(Bytes::from_static(
            body.as_bytes(),
        )))
        .ok()?;
    let resp = client.request(req).await.ok()?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    Some(Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// One request a [`Recorder`] received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// How a [`Recorder`] answers its n-th request (counting from 0).
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    pub status: u16,
    pub delay: std::time::Duration,
}

impl Answer {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            delay: std::time::Duration::ZERO,
        }
    }
}

/// A backend that records every request (with its body) and answers as a script says.
pub struct Recorder {
    pub addr: SocketAddr,
    log: Arc<std::sync::Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    /// Start on 127.0.0.1; `answer(n)` decides the answer to the n-th request.
    pub async fn start(answer: impl Fn(usize) -> Answer + Send + Sync + 'static) -> Recorder {
        use hyper::service::service_fn;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log: Arc<std::sync::Mutex<Vec<Recorded>>> = Arc::default();
        let answer = Arc::new(answer);
        let task_log = log.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let log = task_log.clone();
                let answer = answer.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let log = log.clone();
                        let answer = answer.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let n = {
                                let mut log = log.lock().unwrap();
                                log.push(Recorded {
                                    method: parts.method.to_string(),
                                    path: parts.uri.to_string(),
                                    headers: parts.headers,
                                    body,
                                });
                                log.len() - 1
                            };
                            let a = answer(n);
                            tokio::time::sleep(a.delay).await;
                            let mut resp = http::Response::new(http_body_util::Full::new(
                                Bytes::from(format!("answer {n}")),
                            ));
                            *resp.status_mut() = http::StatusCode::from_u16(a.status).unwrap();
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Recorder { addr, log, task }
    }

    /// Everything received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    /// How many requests arrived.
    pub fn count(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// Wait (up to 10 s, a bound, not a measurement) until `n` requests arrived; return them.
    pub async fn wait_for(&self, n: usize) -> Vec<Recorded> {
        for _ in 0..1000 {
            if self.count() >= n {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        self.requests()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The condition `kind` (status, reason) of the first parent of route `ns/name` in `/status`.
pub async fn route_condition(gw: &Gateway, ns: &str, name: &str, kind: &str) -> (String, String) {
    let status = admin_get(gw, "/status").await.json();
    let route = status
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "HTTPRoute" && o["namespace"] == ns && o["name"] == name)
        .unwrap_or_else(|| panic!("no status for {ns}/{name}"));
    let c = route["parents"][0]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} condition: {route}"));
    (
        c["status"].as_str().unwrap().to_string(),
        c["reason"].as_str().unwrap().to_string(),
    )
}

/// An HTTPRoute `ns/name` attached to `infra/gw`, with `body` holding the rest of its spec.
pub fn route(ns: &str, name: &str, body: &str) -> String {
    format!(
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  parentRefs: [{{name: gw, namespace: infra}}]\n{body}"
    )
}

/// Everything this test binary logs at INFO and above under the `waygate` targets (the access
/// log included), captured once per process.
pub fn captured_logs() -> &'static Arc<std::sync::Mutex<Vec<u8>>> {
    static LOG: std::sync::OnceLock<Arc<std::sync::Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(std::sync::Mutex::new(Vec::new()));
        let writer = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("off,waygate=info"))
            .with_ansi(false)
            .with_writer(move || LogWriter(writer.clone()))
            .try_init();
        buf
    })
}

/// Appends log output to a shared buffer.
struct LogWriter(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(b);
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Wait (bounded) for a captured log line that contains every one of `parts`.
pub async fn log_line_with(parts: &[&str]) -> Option<String> {
    for _ in 0..100 {
        let text = String::from_utf8_lossy(&captured_logs().lock().ok()?).into_owned();
        if let Some(l) = text.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
            return Some(l.to_string());
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    None
}

/// The folder `examples/<name>` of the repository.
pub fn example_dir(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

/// Every YAML file of `examples/<name>` (not its subfolders), in name order, as one
/// multi-document text: what `waygate run --config examples/<name>` reads.
pub fn example_yaml(name: &str) -> String {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(example_dir(name))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no YAML in examples/{name}");
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// `text` with its one occurrence of `from` replaced by `to` (a test-only value put in place
/// of the example's fixed one); panics if `from` is not there exactly once.
pub fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "{from:?} once in the example"
    );
    text.replacen(from, to, 1)
}

/// `text` with all `n` occurrences of `from` replaced by `to`; panics on any other count.
pub fn replace_n(text: &str, from: &str, to: &str, n: usize) -> String {
    assert_eq!(text.matches(from).count(), n, "{from:?} in the example");
    text.replace(from, to)
}

/// A development mesh CA in a temporary folder: identities for waygate and mesh clients.
pub struct MeshCa {
    pub dir: tempfile::TempDir,
    pub bundle: std::path::PathBuf,
}

impl MeshCa {
    pub fn new() -> MeshCa {
        let dir = tempfile::tempdir().unwrap();
        let bundle = waygate::mesh::dev_ca::init(dir.path(), "cluster.local", false).unwrap();
        MeshCa { dir, bundle }
    }

    /// The files `waygate run --identity-cert … --identity-key … --trust-bundle …` takes for
    /// `spiffe://cluster.local/ns/<ns>/sa/<sa>`.
    pub fn identity(&self, ns: &str, sa: &str) -> waygate::mesh::IdentityFiles {
        let (cert, key) =
            waygate::mesh::dev_ca::issue(self.dir.path(), "cluster.local", ns, sa).unwrap();
        waygate::mesh::IdentityFiles {
            cert,
            key,
            trust_bundle: self.bundle.clone(),
            trust_domain: "cluster.local".into(),
        }
    }

    /// A mesh client `ns/sa/<sa>` connected over HBONE to the waypoint at `addr`, which must
    /// present `waypoint_id`.
    pub async fn client(
        &self,
        addr: SocketAddr,
        ns: &str,
        sa: &str,
        waypoint_id: &str,
    ) -> waygate_conformance::hbone::HboneClient {
        let files = self.identity(ns, sa);
        let id = waygate_conformance::pki::Issued {
            cert_pem: std::fs::read_to_string(files.cert).unwrap(),
            key_pem: std::fs::read_to_string(files.key).unwrap(),
        };
        let ca = std::fs::read_to_string(&self.bundle).unwrap();
        let cfg = waygate_conformance::hbone::client_config(&ca, Some(&id), waypoint_id).unwrap();
        waygate_conformance::hbone::HboneClient::connect(addr, "waypoint", cfg)
            .await
            .unwrap()
    }
}

/// Start the Gateway `gateway` of `yaml` (the text of `examples/<name>`) under the mesh
/// identity `identity`, on ephemeral ports: `waygate run --config examples/<name> --gateway …`.
pub async fn run_example(
    name: &str,
    yaml: String,
    gateway: &NsName,
    identity: Option<waygate::mesh::IdentityFiles>,
) -> Arc<Gateway> {
    Gateway::start(GatewayOptions {
        source: ConfigSource::Inline {
            name: format!("examples/{name}"),
            text: yaml,
        },
        bind: BindPlan::Ephemeral("127.0.0.1".parse().unwrap()),
        admin: Some("127.0.0.1:0".parse().unwrap()),
        gateways: vec![gateway.clone()],
        watch: false,
        dns_server: None,
        identity,
    })
    .await
    .unwrap()
}

/// An HTTP/1.1 keep-alive connection inside one HBONE tunnel.
pub struct TunnelHttp {
    send: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
}

impl TunnelHttp {
    /// Open a tunnel to `dest` (a `VIP:port`) and start HTTP/1.1 in it.
    pub async fn open(client: &waygate_conformance::hbone::HboneClient, dest: &str) -> TunnelHttp {
        let tunnel = client.open(dest.parse().unwrap()).await.unwrap();
        let (send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tunnel))
                .await
                .unwrap();
        tokio::spawn(conn);
        TunnelHttp { send }
    }

    /// One request on this connection, read whole.
    pub async fn request(&mut self, method: &str, host: &str, path: &str) -> Reply {
        self.send.ready().await.unwrap();
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", host)
            .body(Empty::new())
            .unwrap();
        let resp = self.send.send_request(req).await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }
}

/// One request through a new tunnel to `dest`.
pub async fn mesh_request(
    client: &waygate_conformance::hbone::HboneClient,
    dest: &str,
    method: &str,
    host: &str,
    path: &str,
) -> Reply {
    TunnelHttp::open(client, dest)
        .await
        .request(method, host, path)
        .await
}

/// The captured access-log lines (target `waygate::access`) that contain every one of `parts`.
pub fn access_lines_with(parts: &[&str]) -> usize {
    let text = String::from_utf8_lossy(&captured_logs().lock().unwrap()).into_owned();
    text.lines()
        .filter(|l| l.contains("waygate::access") && parts.iter().all(|p| l.contains(p)))
        .count()
}
