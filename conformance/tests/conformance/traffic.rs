//! Requests against the gateway and the upstream suite's judgement of the answers.

use crate::case::{BackendTlsExpect, GrpcCall, RequestCase, ResponseExpect, Statuses};
use crate::checks::first_listener_port;
use crate::client::{self, Reply, TlsClient, Version};
use crate::fixtures;
use crate::world::World;
use std::net::SocketAddr;
use std::time::Duration;
use waygate::gateway::Gateway;
use waygate_config::NsName;
use waygate_conformance::echo::EchoResponse;
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
pub fn describe(r: &RequestCase, default_gw: &str) -> String {
    let mut s = format!(
        "{} {}{}",
        r.method.as_deref().unwrap_or("GET"),
        r.host.as_deref().unwrap_or("<gateway address>"),
        r.path
    );
    if !r.headers.is_empty() {
        s.push_str(&format!(" headers {:?}", r.headers));
    }
    let gw = r.gateway.as_deref().unwrap_or(default_gw);
    if gw != DEFAULT_GATEWAY || r.port.is_some() {
        s.push_str(&format!(" via {gw}:{}", r.port.unwrap_or(80)));
    }
    s
}

fn got(reply: &Reply) -> String {
    match &reply.echo {
        Some(e) => format!(
            "got {} from pod {:?} in {:?} (path {:?}, host {:?})",
            reply.status, e.pod, e.namespace, e.path, e.host
        ),
        None => format!("got {} (not an echo answer)", reply.status),
    }
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 300..=305 | 307 | 308)
}

fn is_timeout(status: u16) -> bool {
    matches!(status, 408 | 504)
}

/// The echoed header values joined with `,`, looked up without regard to case.
fn seen_header(e: &EchoResponse, name: &str) -> Option<String> {
    e.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.join(","))
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

/// Send one request (as many times as it says) and judge every answer.
pub async fn request(
    gateway: &Gateway,
    world: &World,
    default_gw: &str,
    r: &RequestCase,
) -> Result<(), String> {
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
    if r.fails {
        return match one_request(world, addr, version, tls.as_ref(), &host, r).await {
            Err(e) if e.starts_with(TRANSPORT) => Ok(()),
            Err(e) => Err(format!("want a failed connection, {e}")),
            Ok(()) => Err("want a failed connection, got an HTTP answer".into()),
        };
    }
    let times = r.repeat.unwrap_or(1).max(1);
    for i in 0..times {
        let mut outcome = one_request(world, addr, version, tls.as_ref(), &host, r).await;
        // Upstream sends a request until it meets expectations (within 30 s); here the config
        // is applied before the first request, so this only absorbs a timing-sensitive case
        // (delays against timeouts) losing a race on a loaded 2-core machine.
        for _ in 1..TRIES {
            if outcome.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            outcome = one_request(world, addr, version, tls.as_ref(), &host, r).await;
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
    addr: SocketAddr,
    version: Version,
    tls: Option<&TlsClient>,
    host: &str,
    r: &RequestCase,
) -> Result<(), String> {
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
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // Upstream always sends this header, empty unless the test wants response headers.
    let set: Vec<String> = r
        .backend_sets_headers
        .iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect();
    headers.push(("X-Echo-Set-Header".into(), set.join(",")));
    let reply = client::send(addr, version, tls, method, host, &path, &headers)
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
        judge_backend(r, &reply, &path, backend_path.as_deref(), method)?;
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

fn judge_backend(
    r: &RequestCase,
    reply: &Reply,
    sent_path: &str,
    backend_path: Option<&str>,
    sent_method: &str,
) -> Result<(), String> {
    // As upstream: an answer that is not an echo counts as an empty echo of the sent method.
    let fallback;
    let e = match &reply.echo {
        Some(e) => e,
        None => {
            fallback = EchoResponse {
                method: sent_method.to_string(),
                ..EchoResponse::default()
            };
            &fallback
        }
    };
    // The request the backend must see: as given, or else the request as sent.
    let (host, path, method, headers, absent) = match &r.at_backend {
        Some(b) => (
            b.host.clone(),
            backend_path.unwrap_or(sent_path).to_string(),
            b.method.clone().unwrap_or_else(|| "GET".into()),
            b.headers.clone(),
            b.absent_headers.clone(),
        ),
        None => (
            r.host.clone(),
            sent_path.to_string(),
            r.method.clone().unwrap_or_else(|| "GET".into()),
            r.headers.clone(),
            Vec::new(),
        ),
    };
    let mut errs = Vec::new();
    if let Some(h) = host.filter(|h| !h.is_empty())
        && e.host != h
    {
        errs.push(format!("backend saw host {:?}, want {h:?}", e.host));
    }
    if e.path != path {
        errs.push(format!("backend saw path {:?}, want {path:?}", e.path));
    }
    if e.method != method {
        errs.push(format!(
            "backend saw method {:?}, want {method:?}",
            e.method
        ));
    }
    let namespace = r.namespace.as_deref().unwrap_or("");
    if e.namespace != namespace {
        errs.push(format!(
            "answered from namespace {:?}, want {namespace:?}",
            e.namespace
        ));
    }
    for (name, value) in &headers {
        match seen_header(e, name) {
            Some(v) if v == *value => {}
            Some(v) => errs.push(format!("backend saw {name}: {v:?}, want {value:?}")),
            None => errs.push(format!("backend did not see {name} (want {value:?})")),
        }
    }
    for name in &absent {
        if let Some(v) = seen_header(e, name) {
            errs.push(format!("backend saw {name}: {v:?}, want it absent"));
        }
    }
    let backend = r.backend.as_deref().unwrap_or("");
    if !e.pod.starts_with(backend) {
        errs.push(format!("answered by pod {:?}, want {backend}-*", e.pod));
    }
    if let Some(name) = &r.pod_from_header {
        let lines: Vec<&String> = e
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v)
            .collect();
        match lines.as_slice() {
            [one] if e.pod.starts_with(one.as_str()) => {}
            [one] => errs.push(format!(
                "backend saw {name}: {one:?}, but pod {:?} answered",
                e.pod
            )),
            many => errs.push(format!(
                "backend saw {} lines of {name} ({many:?}), want one",
                many.len()
            )),
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {}", got(reply), errs.join("; ")))
    }
}

/// MakeRequestAndExpectFailure: an HTTP answer that is neither a success (200) nor a timeout
/// (408/504, which upstream takes for "not yet").
fn judge_error_status(r: &RequestCase, reply: &Reply) -> Result<(), String> {
    if r.status.is_some() {
        return Err("errorStatus and status exclude each other".into());
    }
    if reply.status == 200 || is_timeout(reply.status) {
        return Err(format!(
            "want an error status (not 200, 408 or 504), {}",
            got(reply)
        ));
    }
    Ok(())
}

/// The leaf certificate of a PEM text, DER.
fn first_cert_der(pem: &[u8]) -> Option<Vec<u8>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let cert = CertificateDer::pem_slice_iter(pem).next()?.ok()?;
    Some(cert.as_ref().to_vec())
}

/// The gateway's TLS connection as the backend saw it, compared as upstream compares `SNI` and
/// `ClientCert` (the certificate itself rather than its PEM spelling).
fn judge_backend_tls(world: &World, reply: &Reply, want: &BackendTlsExpect) -> Result<(), String> {
    let tls = reply
        .echo
        .as_ref()
        .and_then(|e| e.tls.as_ref())
        .ok_or_else(|| format!("{}: the backend saw no TLS", got(reply)))?;
    let mut errs = Vec::new();
    if let Some(sni) = &want.server_name
        && tls.server_name != *sni
    {
        errs.push(format!(
            "backend saw SNI {:?}, want {sni:?}",
            tls.server_name
        ));
    }
    if let Some(secret) = &want.peer_certificate {
        let expected = first_cert_der(&world.secret_data(secret, "tls.crt")?)
            .ok_or_else(|| format!("Secret {secret}: tls.crt holds no certificate"))?;
        let presented = tls
            .peer_certificates
            .iter()
            .any(|p| first_cert_der(p.as_bytes()).as_ref() == Some(&expected));
        if !presented {
            errs.push(format!(
                "backend was not presented the certificate of Secret {secret} ({} presented)",
                tls.peer_certificates.len()
            ));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {}", got(reply), errs.join("; ")))
    }
}

/// A response header's lines joined with `,`, looked up without regard to case.
fn response_header(reply: &Reply, name: &str) -> Option<String> {
    let values: Vec<String> = reply
        .headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

fn judge_response_headers(reply: &Reply, want: &ResponseExpect) -> Result<(), String> {
    let squash = |v: &str| {
        if want.ignore_whitespace {
            v.replace(' ', "")
        } else {
            v.to_string()
        }
    };
    let mut errs = Vec::new();
    for (name, options) in &want.one_of {
        match response_header(reply, name) {
            None => errs.push(format!("response lacks {name} (want one of {options:?})")),
            Some(v) if options.iter().any(|o| squash(o) == squash(&v)) => {}
            Some(v) => errs.push(format!("response {name}: {v:?}, want one of {options:?}")),
        }
    }
    for (name, value) in &want.headers {
        match response_header(reply, name) {
            None => errs.push(format!("response lacks {name} (want {value:?})")),
            Some(v) if squash(value) == squash(&v) => {}
            Some(v) => errs.push(format!("response {name}: {v:?}, want {value:?}")),
        }
    }
    for name in &want.absent_headers {
        if let Some(v) = response_header(reply, name) {
            errs.push(format!("response {name}: {v:?}, want it absent"));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {}", got(reply), errs.join("; ")))
    }
}

fn judge_redirect(
    r: &RequestCase,
    reply: &Reply,
    want: &crate::case::RedirectExpect,
) -> Result<(), String> {
    let location = reply
        .headers
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| format!("status {} without a Location", reply.status))?;
    let uri: http::Uri = location
        .parse()
        .map_err(|e| format!("Location {location:?} does not parse: {e}"))?;
    let request_path = r.path.split('?').next().unwrap_or("");
    let scheme = uri.scheme_str().unwrap_or("http").to_ascii_lowercase();
    let host = uri.host().unwrap_or("").to_string();
    let port = uri
        .port()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let path = uri.path().to_string();
    let mut errs = Vec::new();
    if let Some(h) = &want.host
        && *h != host
    {
        errs.push(format!("redirect host {host:?}, want {h:?}"));
    }
    match &want.port {
        Some(p) if *p != port => errs.push(format!("redirect port {port:?}, want {p:?}")),
        Some(_) => {}
        None => {
            let default = match scheme.as_str() {
                "http" => Some("80"),
                "https" => Some("443"),
                _ => None,
            };
            if let Some(d) = default
                && !port.is_empty()
                && port != d
            {
                errs.push(format!(
                    "redirect port {port:?}, want none or {d} for {scheme}"
                ));
            }
        }
    }
    let want_scheme = want.scheme.as_deref().unwrap_or("http");
    if scheme != want_scheme {
        errs.push(format!("redirect scheme {scheme:?}, want {want_scheme:?}"));
    }
    let want_path = want.path.as_deref().unwrap_or(request_path);
    if path != want_path {
        errs.push(format!("redirect path {path:?}, want {want_path:?}"));
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!("Location {location:?}: {}", errs.join("; ")))
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
