//! Requests against the gateway or from a mesh pod, sent as the upstream suite sends them (the
//! answers are judged in `judge.rs`), and gRPC calls.

use crate::case::{GrpcCall, RequestCase, Statuses};
use crate::checks::first_listener_port;
use crate::client::{self, Reply, TlsClient, Version};
use crate::fixtures;
use crate::judge::{
    Sent, got, is_host, is_redirect, is_timeout, judge_backend, judge_backend_tls,
    judge_error_status, judge_redirect, judge_response_headers,
};
use crate::mesh::{self, MeshEnv};
use crate::world::World;
use std::net::SocketAddr;
use std::time::Duration;
use waygate::gateway::Gateway;
use waygate_config::NsName;
use waygate_conformance::grpc_echo::SERVICE;
use waygate_conformance::pki;

/// The Gateway requests go to when neither the request nor the case names one.
pub const DEFAULT_GATEWAY: &str = "gateway-conformance-infra/same-namespace";

/// Where to send, and the Host a client would send when the test gives none: the gateway's
/// address, without the port when it is 80.
pub fn target(
    gateway: &Gateway,
    world: &World,
    gw: &str,
    port: Option<u16>,
) -> Result<(SocketAddr, String), String> {
    let (ns, name) = gw
        .split_once('/')
        .ok_or_else(|| format!("{gw:?} is not namespace/name"))?;
    let port = match port {
        Some(p) => p,
        None => first_listener_port(world, gw).unwrap_or(80),
    };
    let addr = gateway
        .bound_addr(&NsName::new(ns, name), port)
        .ok_or_else(|| format!("Gateway {gw} port {port} is not bound"))?;
    let host = if port == 80 {
        addr.ip().to_string()
    } else {
        format!("{}:{port}", addr.ip())
    };
    Ok((addr, host))
}

/// A one-line description of a request for failure messages.
pub fn describe(r: &RequestCase, default_gw: &str, in_mesh: bool) -> String {
    let default_host = if in_mesh {
        mesh::DEFAULT_HOST
    } else {
        "<gateway address>"
    };
    let mut s = format!(
        "{} {}{}",
        r.method.as_deref().unwrap_or("GET"),
        r.host.as_deref().unwrap_or(default_host),
        r.path
    );
    if !r.headers.is_empty() {
        s.push_str(&format!(" headers {:?}", r.headers));
    }
    if in_mesh {
        let from = r.from.as_deref().unwrap_or(mesh::DEFAULT_NAMESPACE);
        s.push_str(&format!(" from a pod in {from}"));
        return s;
    }
    let gw = r.gateway.as_deref().unwrap_or(default_gw);
    if gw != DEFAULT_GATEWAY || r.port.is_some() {
        s.push_str(&format!(" via {gw}:{}", r.port.unwrap_or(80)));
    }
    s
}

/// A fresh random id in UUID form.
pub fn fresh_id() -> String {
    let n: u128 = rand::random();
    let h = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The query parameter upstream adds so a backend's record of a request can be found.
pub const REQUEST_ID: &str = "gateway-api-conformance-request-id";

/// `path` with query parameter `name` set to `value`, parameters sorted by name as Go's
/// `url.Values.Encode` writes them.
pub fn with_query_param(path: &str, name: &str, value: &str) -> String {
    let (base, query) = path.split_once('?').unwrap_or((path, ""));
    let mut params: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        })
        .filter(|(k, _)| k != name)
        .collect();
    params.push((name.to_string(), value.to_string()));
    params.sort_by(|a, b| a.0.cmp(&b.0));
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{base}?{}", query.join("&"))
}

/// How a request reaches what answers it.
pub enum Hop<'a> {
    /// To a gateway's listener.
    Gateway {
        /// The listener's bound address.
        addr: SocketAddr,
        /// HTTP version.
        version: Version,
        /// TLS towards the listener.
        tls: Option<&'a TlsClient>,
    },
    /// From a pod of the mesh (see `mesh.rs`).
    Mesh(mesh::Target),
}

impl Hop<'_> {
    async fn send(
        &self,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(String, String)],
    ) -> Result<Reply, String> {
        match self {
            Hop::Gateway { addr, version, tls } => {
                client::send(*addr, *version, *tls, method, host, path, headers).await
            }
            Hop::Mesh(t) => t
                .send(method, host, path, headers)
                .await
                .map_err(|e| format!("{e} ({})", t.describe())),
        }
    }
}

/// Send one request (as many times as it says) and judge every answer.
pub async fn request(
    gateway: &Gateway,
    world: &World,
    default_gw: &str,
    r: &RequestCase,
) -> Result<(), String> {
    if let Some(env) = &world.mesh {
        return mesh_request(gateway, world, env, r).await;
    }
    if r.from.is_some() {
        return Err("`from` applies to mesh requests only".into());
    }
    let gw = r.gateway.as_deref().unwrap_or(default_gw);
    let (addr, default_host) = match target(gateway, world, gw, r.port) {
        Ok(t) => t,
        // A port with nothing served is not listened on: connections to it fail.
        Err(e) if r.fails && e.contains("is not bound") => return Ok(()),
        Err(e) => return Err(e),
    };
    let host = r.host.clone().unwrap_or(default_host);
    let tls = match r.scheme.as_deref() {
        None | Some("http") => None,
        Some("https") => Some(tls_client(r, &host)?),
        Some(other) => return Err(format!("unknown scheme {other:?}")),
    };
    let version = match r.protocol.as_deref() {
        None | Some("http") => Version::Http1,
        Some("h2c") => Version::H2c,
        Some("h2") if tls.is_some() => Version::H2,
        Some("websocket") => {
            // Upstream dials ws://<address>:<port>, so Host carries the port even for 80.
            let port = match r.port {
                Some(p) => p,
                None => first_listener_port(world, gw).unwrap_or(80),
            };
            let host = r
                .host
                .clone()
                .unwrap_or_else(|| format!("{}:{port}", addr.ip()));
            return client::websocket_echo(addr, &host, &r.path, "ws://gateway/conformance").await;
        }
        Some(other) => return Err(format!("unknown protocol {other:?}")),
    };
    let hop = Hop::Gateway {
        addr,
        version,
        tls: tls.as_ref(),
    };
    send_and_judge(world, &hop, &host, r).await
}

/// A request from a pod of the mesh: `host` names the destination as upstream's mesh client
/// takes it (default `echo`), `from` the caller's namespace.
async fn mesh_request(
    gateway: &Gateway,
    world: &World,
    env: &MeshEnv,
    r: &RequestCase,
) -> Result<(), String> {
    let gateway_only = [
        ("gateway", r.gateway.is_some()),
        ("port", r.port.is_some()),
        ("scheme", r.scheme.is_some()),
        ("sni", r.sni.is_some()),
        ("clientCert", r.client_cert.is_some()),
        ("fails", r.fails),
        ("backendTls", r.backend_tls.is_some()),
        ("mirroredTo", !r.mirrored_to.is_empty()),
        (
            "protocol",
            r.protocol.as_deref().is_some_and(|p| p != "http"),
        ),
    ];
    if let Some((field, _)) = gateway_only.iter().find(|(_, set)| *set) {
        return Err(format!("`{field}` does not apply to mesh requests"));
    }
    let from = r.from.as_deref().unwrap_or(mesh::DEFAULT_NAMESPACE);
    let host = r.host.as_deref().unwrap_or(mesh::DEFAULT_HOST);
    let (target, url_host) = mesh::resolve(gateway, world, env, host, from)?;
    send_and_judge(world, &Hop::Mesh(target), &url_host, r).await
}

/// Send the request over `hop` as often as it says (retrying a failure a few times) and judge
/// every answer; or, with `fails`, require that no HTTP answer comes.
async fn send_and_judge(
    world: &World,
    hop: &Hop<'_>,
    host: &str,
    r: &RequestCase,
) -> Result<(), String> {
    if r.fails {
        return match one_request(world, hop, host, r).await {
            Err(e) if e.starts_with(TRANSPORT) => Ok(()),
            Err(e) => Err(format!("want a failed connection, {e}")),
            Ok(()) => Err("want a failed connection, got an HTTP answer".into()),
        };
    }
    let times = r.repeat.unwrap_or(1).max(1);
    for i in 0..times {
        let mut outcome = one_request(world, hop, host, r).await;
        // Upstream sends a request until it meets expectations (within 30 s); here the config
        // is applied before the first request, so this only absorbs a timing-sensitive case
        // (delays against timeouts) losing a race on a loaded 2-core machine.
        for _ in 1..TRIES {
            if outcome.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            outcome = one_request(world, hop, host, r).await;
        }
        outcome.map_err(|e| {
            let e = format!("{e} (failed {TRIES} times)");
            if times > 1 {
                format!("attempt {}/{times}: {e}", i + 1)
            } else {
                e
            }
        })?;
    }
    Ok(())
}

/// How many times a request may be sent before its failure counts.
const TRIES: usize = 3;

/// The prefix of an error that is a failed connection (no HTTP answer at all).
const TRANSPORT: &str = "transport: ";

/// The TLS client a request asks for: SNI, trust in the generated CAs, a client certificate.
fn tls_client(r: &RequestCase, host: &str) -> Result<TlsClient, String> {
    let f = fixtures::get();
    let identity = match &r.client_cert {
        None => None,
        Some(name) => Some(
            f.client_certs
                .get(name)
                .ok_or_else(|| format!("no generated client certificate {name}"))?,
        ),
    };
    let config = pki::client_config(&f.trust_pem, identity, &[]).map_err(|e| e.to_string())?;
    let host_only = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let sni = match r.sni.as_deref() {
        Some("") => None,
        Some(s) => Some(s.to_string()),
        None => Some(host_only.to_string()),
    };
    Ok(TlsClient {
        verify_as: sni.clone().unwrap_or_else(|| host_only.to_string()),
        sni,
        config,
    })
}

async fn one_request(
    world: &World,
    hop: &Hop<'_>,
    url_host: &str,
    r: &RequestCase,
) -> Result<(), String> {
    let host = r
        .headers
        .iter()
        .find(|(k, _)| is_host(k))
        .map_or(url_host, |(_, v)| v.as_str());
    // `{uuid}` in a path is a fresh id per request, as upstream's retry checks use.
    let uuid = fresh_id();
    let mut path = r.path.replace("{uuid}", &uuid);
    let mut backend_path = r
        .at_backend
        .as_ref()
        .and_then(|b| b.path.as_ref())
        .map(|p| p.replace("{uuid}", &uuid));
    if r.request_id {
        let id = fresh_id();
        path = with_query_param(&path, REQUEST_ID, &id);
        backend_path = backend_path.map(|p| {
            if p.is_empty() {
                p
            } else {
                with_query_param(&p, REQUEST_ID, &id)
            }
        });
    }
    let method = r.method.as_deref().unwrap_or("GET");
    let mut headers: Vec<(String, String)> = r
        .headers
        .iter()
        .filter(|(k, _)| !is_host(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // Upstream always sends this header, empty unless the test wants response headers.
    let set: Vec<String> = r
        .backend_sets_headers
        .iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect();
    headers.push(("X-Echo-Set-Header".into(), set.join(",")));
    let reply = hop
        .send(method, host, &path, &headers)
        .await
        .map_err(|e| format!("{TRANSPORT}{e}"))?;
    if r.error_status {
        return judge_error_status(r, &reply);
    }
    let want = r.status.as_ref().map_or_else(|| vec![200], Statuses::list);
    if is_timeout(reply.status) && want.iter().any(|s| is_timeout(*s)) {
        return Ok(());
    }
    if !want.contains(&reply.status) {
        let want = match want.as_slice() {
            [one] => one.to_string(),
            many => format!("one of {many:?}"),
        };
        return Err(format!("want status {want}, {}", got(&reply)));
    }
    if matches!(reply.status, 200 | 204) {
        let sent = Sent {
            host,
            path: &path,
            method,
            in_mesh: matches!(hop, Hop::Mesh(_)),
        };
        judge_backend(r, &reply, &sent, backend_path.as_deref())?;
        if let Some(want) = &r.backend_tls {
            judge_backend_tls(world, &reply, want)?;
        }
        if let Some(want) = &r.response {
            judge_response_headers(&reply, want)?;
        }
    } else if is_redirect(reply.status)
        && let Some(want) = &r.redirect
    {
        judge_redirect(r, &reply, want)?;
    }
    for mirror in &r.mirrored_to {
        let (ns, name) = match mirror.split_once('/') {
            Some((ns, name)) => (ns.to_string(), name.to_string()),
            None => (
                r.namespace
                    .clone()
                    .unwrap_or_else(|| "gateway-conformance-infra".into()),
                mirror.clone(),
            ),
        };
        wait_for_mirror(world, &ns, &name, &path).await?;
    }
    Ok(())
}

/// How long a mirrored copy may take to reach its backend (upstream polls the pod logs for 10 s).
pub const MIRROR_WAIT: Duration = Duration::from_secs(10);
/// How often the backends' records are read while waiting.
pub const MIRROR_POLL: Duration = Duration::from_millis(50);

/// How many requests for exactly `target` the pods of an app have served.
pub fn served_count(world: &World, ns: &str, app: &str, target: &str) -> usize {
    world
        .pods(ns, app)
        .iter()
        .map(|p| p.served().iter().filter(|s| *s == target).count())
        .sum()
}

/// Wait (bounded) until a pod of `ns/app` has served `target`, as a mirrored copy must be.
async fn wait_for_mirror(world: &World, ns: &str, app: &str, target: &str) -> Result<(), String> {
    if world.pods(ns, app).is_empty() {
        return Err(format!("mirror backend {ns}/{app} has no pods"));
    }
    let deadline = tokio::time::Instant::now() + MIRROR_WAIT;
    loop {
        if served_count(world, ns, app, target) > 0 {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "no pod of mirror backend {ns}/{app} served {target:?} within {}s",
                MIRROR_WAIT.as_secs()
            ));
        }
        tokio::time::sleep(MIRROR_POLL).await;
    }
}

/// The `:authority` a gRPC client dialling the gateway sends: its address with the port.
pub fn grpc_authority(world: &World, gw: &str, port: Option<u16>, addr: SocketAddr) -> String {
    let port = port
        .or_else(|| first_listener_port(world, gw))
        .unwrap_or(80);
    format!("{}:{port}", addr.ip())
}

/// A one-line description of a gRPC call for failure messages.
pub fn describe_grpc(c: &GrpcCall) -> String {
    let mut s = format!("gRPC {}", c.method);
    if let Some(a) = &c.authority {
        s.push_str(&format!(" authority {a}"));
    }
    if !c.metadata.is_empty() {
        s.push_str(&format!(" metadata {:?}", c.metadata));
    }
    s
}

/// Make one gRPC call and judge it as upstream does: the code; on OK also the method the echo
/// ran, the namespace (when expected) and the pod.
pub async fn grpc(
    gateway: &Gateway,
    world: &World,
    default_gw: &str,
    c: &GrpcCall,
) -> Result<(), String> {
    let gw = c.gateway.as_deref().unwrap_or(default_gw);
    let (addr, _) = target(gateway, world, gw, c.port)?;
    let authority = c
        .authority
        .clone()
        .unwrap_or_else(|| grpc_authority(world, gw, c.port, addr));
    let metadata: Vec<(String, String)> = c
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let reply = client::grpc_call(addr, &authority, &c.method, &metadata).await?;
    if reply.code != c.code {
        let pod = reply
            .assertions
            .as_ref()
            .and_then(|a| a.context.as_ref())
            .map(|ctx| format!(" from pod {:?}", ctx.pod))
            .unwrap_or_default();
        return Err(format!(
            "want gRPC code {}, got {} {:?}{pod}",
            c.code, reply.code, reply.message
        ));
    }
    if reply.code != 0 {
        return Ok(());
    }
    let a = reply
        .assertions
        .ok_or_else(|| "OK without echo assertions".to_string())?;
    let ctx = a.context.unwrap_or_default();
    let mut errs = Vec::new();
    let method = format!("/{SERVICE}/{}", c.method);
    if a.fully_qualified_method != method {
        errs.push(format!(
            "echo ran {:?}, want {method:?}",
            a.fully_qualified_method
        ));
    }
    if let Some(ns) = c.namespace.as_deref().filter(|ns| !ns.is_empty())
        && ctx.namespace != ns
    {
        errs.push(format!(
            "answered from namespace {:?}, want {ns:?}",
            ctx.namespace
        ));
    }
    let backend = c.backend.as_deref().unwrap_or("");
    if !ctx.pod.starts_with(backend) {
        errs.push(format!("answered by pod {:?}, want {backend}-*", ctx.pod));
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}
