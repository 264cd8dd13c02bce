//! Traffic shares: weighted splits measured over many requests, and the share of requests a
//! percentage mirror copies.

use crate::case::{Distribution, MirrorShare};
use crate::client::{self, Version};
use crate::mesh;
use crate::traffic::{
    MIRROR_POLL, MIRROR_WAIT, REQUEST_ID, fresh_id, grpc_authority, served_count, target,
    with_query_param,
};
use crate::world::World;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use waygate::gateway::Gateway;

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
    let (way, host) = match &world.mesh {
        Some(env) => {
            if d.gateway.is_some() || d.port.is_some() || d.grpc {
                return Err("gateway, port and grpc do not apply to mesh distributions".into());
            }
            let from = d.from.as_deref().unwrap_or(mesh::DEFAULT_NAMESPACE);
            let host = d.host.as_deref().unwrap_or(mesh::DEFAULT_HOST);
            let (target, host) = mesh::resolve(gateway, world, env, host, from)?;
            (Way::Mesh(target), host)
        }
        None => {
            if d.from.is_some() {
                return Err("`from` applies to mesh distributions only".into());
            }
            let gw = d.gateway.as_deref().unwrap_or(default_gw);
            let (addr, default_host) = target(gateway, world, gw, d.port)?;
            let host = match (&d.host, d.grpc) {
                (Some(h), _) => h.clone(),
                (None, true) => grpc_authority(world, gw, d.port, addr),
                (None, false) => default_host,
            };
            (Way::Gateway(addr), host)
        }
    };
    let way = Arc::new(way);
    let mut last = String::new();
    for attempt in 1..=d.attempts.max(1) {
        match batch(&way, &host, d).await {
            Ok(()) => return Ok(()),
            Err(e) => last = format!("batch {attempt}/{}: {e}", d.attempts),
        }
    }
    Err(last)
}

/// Where the requests of a distribution go.
enum Way {
    /// A gateway listener's address.
    Gateway(SocketAddr),
    /// From a mesh pod, through its waypoint (a fresh HBONE tunnel per request).
    Mesh(mesh::Target),
}

/// One request of a distribution batch: the namespace and pod that answered.
async fn answered_by(
    way: &Way,
    host: &str,
    path: &str,
    grpc: bool,
    i: usize,
) -> Result<(String, String), String> {
    let addr = match way {
        Way::Gateway(addr) => *addr,
        Way::Mesh(target) => {
            let headers = vec![("X-Jitter".to_string(), i.to_string())];
            let reply = target.send("GET", host, path, &headers).await?;
            let e = reply
                .echo
                .filter(|_| reply.status == 200)
                .ok_or_else(|| format!("want 200 from an echo pod, got {}", reply.status))?;
            return Ok((e.namespace, e.pod));
        }
    };
    // A distinct header per request, as upstream adds entropy so no layer can cache.
    if grpc {
        let metadata = vec![("x-jitter".to_string(), i.to_string())];
        let reply = client::grpc_call(addr, host, "Echo", &metadata).await?;
        let ctx = reply
            .assertions
            .and_then(|a| a.context)
            .filter(|_| reply.code == 0)
            .ok_or_else(|| format!("want OK from a gRPC echo pod, got code {}", reply.code))?;
        return Ok((ctx.namespace, ctx.pod));
    }
    let headers = vec![("X-Jitter".to_string(), i.to_string())];
    let reply = client::send(addr, Version::Http1, None, "GET", host, path, &headers).await?;
    let e = reply
        .echo
        .filter(|_| reply.status == 200)
        .ok_or_else(|| format!("want 200 from an echo pod, got {}", reply.status))?;
    Ok((e.namespace, e.pod))
}

async fn batch(way: &Arc<Way>, host: &str, d: &Distribution) -> Result<(), String> {
    let limit = Arc::new(Semaphore::new(d.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..d.total {
        let limit = limit.clone();
        let host = host.to_string();
        let path = d.path.clone();
        let namespace = d.namespace.clone();
        let grpc = d.grpc;
        let way = way.clone();
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await.map_err(|e| e.to_string())?;
            let (ns, pod) = answered_by(&way, &host, &path, grpc, i).await?;
            if ns != namespace {
                return Err(format!(
                    "answered from namespace {ns:?}, want {namespace:?}"
                ));
            }
            Ok::<String, String>(backend_of(&pod))
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

/// How long the count of mirrored copies must stay put before it is read as final.
const MIRROR_SETTLE: Duration = Duration::from_millis(500);

/// Measure a percentage mirror as upstream does: per attempt, `total` requests with one fresh
/// request id; the mirror's pods must have served a count within three standard deviations of
/// `total × share`.
pub async fn mirror_share(
    gateway: &Gateway,
    world: &World,
    default_gw: &str,
    m: &MirrorShare,
) -> Result<(), String> {
    if world.mesh.is_some() {
        return Err("mirror shares are measured through a gateway, not in mesh cases".into());
    }
    let (addr, host) = target(gateway, world, default_gw, None)?;
    let n = m.total as f64;
    let expected = n * m.share;
    let tolerance = 3.0 * (n * m.share * (1.0 - m.share)).sqrt();
    let mut last = String::new();
    for attempt in 1..=m.attempts.max(1) {
        let path = with_query_param(&m.path, REQUEST_ID, &fresh_id());
        let limit = Arc::new(Semaphore::new(m.concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..m.total {
            let limit = limit.clone();
            let host = host.clone();
            let path = path.clone();
            let headers: Vec<(String, String)> = m
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await.map_err(|e| e.to_string())?;
                let reply =
                    client::send(addr, Version::Http1, None, "GET", &host, &path, &headers).await?;
                let e = reply
                    .echo
                    .filter(|_| reply.status == 200)
                    .ok_or_else(|| format!("want 200 from an echo pod, got {}", reply.status))?;
                Ok::<(String, String), String>((e.namespace, e.pod))
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let (ns, pod) = joined.map_err(|e| format!("request task: {e}"))??;
            if ns != m.namespace || !pod.starts_with(&m.backend) {
                return Err(format!(
                    "answered by {ns}/{pod}, want {}/{}-*",
                    m.namespace, m.backend
                ));
            }
        }
        // Copies are sent asynchronously: read the count once it has stopped growing.
        let deadline = tokio::time::Instant::now() + MIRROR_WAIT;
        let mut count = served_count(world, &m.namespace, &m.mirror, &path);
        let mut stable_since = tokio::time::Instant::now();
        while tokio::time::Instant::now() < deadline
            && tokio::time::Instant::now() - stable_since < MIRROR_SETTLE
        {
            tokio::time::sleep(MIRROR_POLL).await;
            let now = served_count(world, &m.namespace, &m.mirror, &path);
            if now != count {
                count = now;
                stable_since = tokio::time::Instant::now();
            }
        }
        if (count as f64 - expected).abs() <= tolerance {
            return Ok(());
        }
        last = format!(
            "attempt {attempt}/{}: {count} of {} requests mirrored to {}, want {expected:.0} ± {tolerance:.1}",
            m.attempts, m.total, m.mirror
        );
    }
    Err(last)
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
