//! Requests against the gateway and the upstream suite's judgement of the answers.

use crate::case::{Distribution, RequestCase};
use crate::checks::first_listener_port;
use crate::client::{self, Reply};
use crate::world::World;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::Semaphore;
use waygate::gateway::Gateway;
use waygate_config::NsName;

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

/// The echoed header values joined with `,`, looked up without regard to case.
fn seen_header(e: &waygate_conformance::echo::EchoResponse, name: &str) -> Option<String> {
    e.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.join(","))
}

/// Send one request and judge the answer.
pub async fn request(
    gateway: &Gateway,
    world: &World,
    default_gw: &str,
    r: &RequestCase,
) -> Result<(), String> {
    match r.scheme.as_deref() {
        None | Some("http") => {}
        Some(other) => return Err(format!("the runner cannot send {other} requests yet")),
    }
    let gw = r.gateway.as_deref().unwrap_or(default_gw);
    let (addr, default_host) = target(gateway, world, gw, r.port)?;
    let host = r.host.clone().unwrap_or(default_host);
    let method = r.method.as_deref().unwrap_or("GET");
    let headers: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let reply = client::send(addr, method, &host, &r.path, &headers).await?;
    let want = r.status.unwrap_or(200);
    if reply.status != want {
        return Err(format!("want status {want}, {}", got(&reply)));
    }
    if reply.status == 200 {
        return judge_backend(r, &reply);
    }
    if is_redirect(reply.status)
        && let Some(want) = &r.redirect
    {
        return judge_redirect(r, &reply, want);
    }
    Ok(())
}

fn judge_backend(r: &RequestCase, reply: &Reply) -> Result<(), String> {
    let e = reply
        .echo
        .as_ref()
        .ok_or_else(|| format!("want an echo answer, {}", got(reply)))?;
    // The request the backend must see: as given, or else the request as sent.
    let (host, path, method, headers, absent) = match &r.at_backend {
        Some(b) => (
            b.host.clone(),
            b.path.clone().unwrap_or_else(|| r.path.clone()),
            b.method.clone().unwrap_or_else(|| "GET".into()),
            b.headers.clone(),
            b.absent_headers.clone(),
        ),
        None => (
            r.host.clone(),
            r.path.clone(),
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
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
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

/// The backend a pod belongs to: its name without the last two `-` parts.
fn backend_of(pod: &str) -> String {
    let parts: Vec<&str> = pod.split('-').collect();
    if parts.len() < 3 {
        return pod.to_string();
    }
    parts[..parts.len() - 2].join("-")
}

/// Measure a traffic split; up to `attempts` batches, passing on the first that fits.
pub async fn distribution(
    gateway: &Gateway,
    world: &World,
    default_gw: &str,
    d: &Distribution,
) -> Result<(), String> {
    let gw = d.gateway.as_deref().unwrap_or(default_gw);
    let (addr, default_host) = target(gateway, world, gw, d.port)?;
    let host = d.host.clone().unwrap_or(default_host);
    let mut last = String::new();
    for attempt in 1..=d.attempts.max(1) {
        match batch(addr, &host, d).await {
            Ok(()) => return Ok(()),
            Err(e) => last = format!("batch {attempt}/{}: {e}", d.attempts),
        }
    }
    Err(last)
}

async fn batch(addr: SocketAddr, host: &str, d: &Distribution) -> Result<(), String> {
    let limit = Arc::new(Semaphore::new(d.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..d.total {
        let limit = limit.clone();
        let host = host.to_string();
        let path = d.path.clone();
        let namespace = d.namespace.clone();
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await.map_err(|e| e.to_string())?;
            // A distinct header per request, as upstream adds entropy so no layer can cache.
            let headers = vec![("X-Jitter".to_string(), i.to_string())];
            let reply = client::send(addr, "GET", &host, &path, &headers).await?;
            let e = reply
                .echo
                .filter(|_| reply.status == 200)
                .ok_or_else(|| format!("want 200 from an echo pod, got {}", reply.status))?;
            if e.namespace != namespace {
                return Err(format!(
                    "answered from namespace {:?}, want {namespace:?}",
                    e.namespace
                ));
            }
            Ok::<String, String>(backend_of(&e.pod))
        });
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let backend = joined.map_err(|e| format!("request task: {e}"))??;
        if !d.weights.contains_key(&backend) {
            return Err(format!("answered by unexpected backend {backend:?}"));
        }
        *seen.entry(backend).or_default() += 1;
    }
    let mut errs = Vec::new();
    let active = d.weights.values().filter(|w| **w > 0.0).count();
    if seen.len() != active {
        errs.push(format!(
            "{} backends answered ({seen:?}), want {active}",
            seen.len()
        ));
    }
    for (backend, want) in &d.weights {
        let count = seen.get(backend).copied().unwrap_or(0);
        if count == 0 && *want > 0.0 {
            errs.push(format!("{backend} got no traffic"));
            continue;
        }
        let share = count as f64 / d.total as f64;
        if (share - want).abs() > d.tolerance {
            errs.push(format!(
                "{backend} got {share:.3} of the traffic, want {want} ± {}",
                d.tolerance
            ));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::backend_of;

    #[test]
    fn backend_is_pod_name_without_hash_parts() {
        assert_eq!(
            backend_of("infra-backend-v1-conformance-0"),
            "infra-backend-v1"
        );
        assert_eq!(backend_of("web-backend-conformance-1"), "web-backend");
        assert_eq!(backend_of("odd"), "odd");
    }
}
