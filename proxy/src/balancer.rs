//! [DR-5] Picking an endpoint of a cluster: round robin, random, least request (the less busy
//! of two random endpoints, Envoy's default choice count) or consistent hash, over the endpoints
//! outlier detection has not ejected ([DR-4]).
//!
//! Consistent hashing is rendezvous (highest random weight) hashing rather than Envoy's ring or
//! Maglev table: each request key picks the endpoint with the highest `mix(key, endpoint)`, so
//! a key sticks to its endpoint, and when endpoints come, go or are ejected only the keys of
//! those endpoints move — the property users rely on — without a table to rebuild on reload.
//! A request without the key (header, cookie or parameter absent) is balanced at random.

use crate::upstream_state::{ClusterState, EndpointState};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use waygate_config::snapshot::Cluster;
use waygate_config::traffic_policy::{HashKey, LoadBalancer};

/// What the balancer needs to know about a cluster's endpoints.
pub(crate) trait Pool {
    /// How many endpoints.
    fn len(&self) -> usize;
    /// Whether endpoint `i` may be picked.
    fn usable(&self, i: usize) -> bool;
    /// Requests in flight at endpoint `i`.
    fn load(&self, i: usize) -> u32;
    /// A stable identity of endpoint `i` for hashing.
    fn ident(&self, i: usize) -> u64;
}

/// Pick an endpoint index; `None` when none is usable.
pub(crate) fn choose(
    lb: &LoadBalancer,
    pool: &impl Pool,
    hash: Option<u64>,
    cursor: &AtomicUsize,
    random: &mut impl FnMut(usize) -> usize,
) -> Option<usize> {
    let n = pool.len();
    let usable = (0..n).filter(|&i| pool.usable(i)).count();
    if usable == 0 {
        return None;
    }
    // The r-th usable endpoint: uniform over the usable ones.
    let nth = |r: usize| (0..n).filter(|&i| pool.usable(i)).nth(r);
    match lb {
        LoadBalancer::RoundRobin => {
            let start = cursor.fetch_add(1, Ordering::Relaxed);
            (0..n).map(|k| (start + k) % n).find(|&i| pool.usable(i))
        }
        LoadBalancer::Random => nth(random(usable)),
        LoadBalancer::LeastRequest => {
            let a = nth(random(usable))?;
            if usable == 1 {
                return Some(a);
            }
            let b = nth(random(usable))?;
            Some(if pool.load(b) < pool.load(a) { b } else { a })
        }
        LoadBalancer::ConsistentHash(_) => match hash {
            Some(h) => (0..n)
                .filter(|&i| pool.usable(i))
                .max_by_key(|&i| (mix(h ^ pool.ident(i)), i)),
            None => nth(random(usable)),
        },
    }
}

/// SplitMix64's finaliser: a cheap, well-spread 64-bit mix.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// FNV-1a over bytes, then mixed: stable across processes and restarts.
fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

fn addr_ident(addr: SocketAddr) -> u64 {
    let mut bytes = match addr.ip() {
        IpAddr::V4(ip) => ip.octets().to_vec(),
        IpAddr::V6(ip) => ip.octets().to_vec(),
    };
    bytes.extend_from_slice(&addr.port().to_be_bytes());
    hash_bytes(&bytes)
}

/// The hash of a generated cookie value (the same function the request's cookie is hashed
/// with, so the next request carrying it lands on the same endpoint).
pub(crate) fn cookie_hash(value: &str) -> u64 {
    hash_bytes(value.as_bytes())
}

/// The hash of a request's consistent-hash key; `None` when the request does not carry it.
pub(crate) fn request_hash(
    key: &HashKey,
    headers: &http::HeaderMap,
    uri: &http::Uri,
    client: Option<IpAddr>,
) -> Option<u64> {
    match key {
        HashKey::Header(name) => headers.get(name.as_str()).map(|v| hash_bytes(v.as_bytes())),
        HashKey::Cookie { name, .. } => headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| hash_bytes(v.as_bytes())),
        HashKey::SourceIp => client.map(|ip| match ip {
            IpAddr::V4(v) => hash_bytes(&v.octets()),
            IpAddr::V6(v) => hash_bytes(&v.octets()),
        }),
        HashKey::QueryParameter(name) => uri
            .query()?
            .split('&')
            .filter_map(|p| p.split_once('=').or(Some((p, ""))))
            .find(|(k, _)| k == name)
            .map(|(_, v)| hash_bytes(v.as_bytes())),
    }
}

/// A cluster's endpoints as they stand now.
struct Live<'a> {
    cluster: &'a Cluster,
    state: &'a ClusterState,
    now_ms: u64,
    /// Honour ejections (outlier detection on and not panicking).
    ejections: bool,
    /// Leave this one out (the endpoint a retry moves away from).
    avoid: Option<SocketAddr>,
}

impl Pool for Live<'_> {
    fn len(&self) -> usize {
        self.cluster.endpoints.len()
    }
    fn usable(&self, i: usize) -> bool {
        let ejected = self.ejections
            && self
                .state
                .endpoint(i)
                .is_some_and(|e| e.outlier.is_ejected(self.now_ms));
        !ejected && self.avoid != self.cluster.endpoints.get(i).copied()
    }
    fn load(&self, i: usize) -> u32 {
        self.state.endpoint(i).map_or(0, |e| e.in_flight())
    }
    fn ident(&self, i: usize) -> u64 {
        self.cluster.endpoints.get(i).map_or(0, |a| addr_ident(*a))
    }
}

/// Pick an endpoint of `cluster` by its policy, with its state when known. A retry passes the
/// endpoint it moves away from as `avoid`; that endpoint is still picked when it is the only
/// usable one. `None`: no usable endpoint (503 `UH`).
pub(crate) fn pick(
    cluster: &Cluster,
    state: Option<&ClusterState>,
    now_ms: u64,
    hash: Option<u64>,
    avoid: Option<SocketAddr>,
) -> Option<(SocketAddr, Option<Arc<EndpointState>>)> {
    let Some(state) = state else {
        return cluster.next_endpoint().map(|a| (a, None));
    };
    let policy = cluster.policy.as_deref();
    let lb = policy
        .map(|p| &p.load_balancer)
        .unwrap_or(&LoadBalancer::RoundRobin);
    let ejections = policy
        .and_then(|p| p.outlier_detection.as_ref())
        .is_some_and(|o| {
            let total = cluster.endpoints.len();
            let ejected = state
                .endpoints()
                .iter()
                .filter(|e| e.outlier.is_ejected(now_ms))
                .count();
            // Below minHealthPercent ejections are ignored (Envoy's panic threshold).
            !crate::outlier::panicking(ejected, total, o.min_health_percent)
        });
    let mut random = |n: usize| rand::random_range(0..n);
    let mut live = Live {
        cluster,
        state,
        now_ms,
        ejections,
        avoid,
    };
    let cursor = &state.counters().cursor;
    let i = choose(lb, &live, hash, cursor, &mut random).or_else(|| {
        live.avoid = None;
        choose(lb, &live, hash, cursor, &mut random)
    })?;
    let addr = *cluster.endpoints.get(i)?;
    Some((addr, state.endpoint(i).cloned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table-driven pool: loads, ejections and identities by index.
    struct Fixed {
        loads: Vec<u32>,
        down: Vec<bool>,
    }

    impl Pool for Fixed {
        fn len(&self) -> usize {
            self.loads.len()
        }
        fn usable(&self, i: usize) -> bool {
            !self.down[i]
        }
        fn load(&self, i: usize) -> u32 {
            self.loads[i]
        }
        fn ident(&self, i: usize) -> u64 {
            addr_ident(SocketAddr::from(([10, 0, 0, i as u8], 80)))
        }
    }

    fn pool(n: usize) -> Fixed {
        Fixed {
            loads: vec![0; n],
            down: vec![false; n],
        }
    }

    /// A deterministic "random" source (an LCG), so distributions are reproducible.
    fn rng() -> impl FnMut(usize) -> usize {
        let mut s: u64 = 42;
        move |n| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as usize) % n
        }
    }

    fn counts(lb: &LoadBalancer, p: &Fixed, hash: impl Fn(usize) -> Option<u64>) -> Vec<usize> {
        let cursor = AtomicUsize::new(0);
        let mut r = rng();
        let mut out = vec![0; p.len()];
        for k in 0..4000 {
            if let Some(i) = choose(lb, p, hash(k), &cursor, &mut r) {
                out[i] += 1;
            }
        }
        out
    }

    #[test]
    fn round_robin_takes_turns_and_skips_ejected_endpoints() {
        let mut p = pool(4);
        assert_eq!(
            counts(&LoadBalancer::RoundRobin, &p, |_| None),
            vec![1000; 4]
        );
        p.down[1] = true;
        let c = counts(&LoadBalancer::RoundRobin, &p, |_| None);
        assert_eq!(c[1], 0);
        assert_eq!(c.iter().sum::<usize>(), 4000);
        p.down = vec![true; 4];
        assert_eq!(counts(&LoadBalancer::RoundRobin, &p, |_| None), vec![0; 4]);
    }

    #[test]
    fn random_spreads_evenly_over_usable_endpoints() {
        let mut p = pool(4);
        p.down[2] = true;
        let c = counts(&LoadBalancer::Random, &p, |_| None);
        assert_eq!(c[2], 0);
        // 4000 over 3: 1333 each; σ ≈ 30, ±200 is over 6σ.
        for i in [0, 1, 3] {
            assert!((1133..=1533).contains(&c[i]), "{c:?}");
        }
    }

    #[test]
    fn least_request_prefers_the_idle_endpoint_of_two() {
        let mut p = pool(2);
        p.loads = vec![5, 0];
        let c = counts(&LoadBalancer::LeastRequest, &p, |_| None);
        // The busy one wins only when both draws are it: about a quarter of the time.
        assert!(c[1] > 2 * c[0], "{c:?}");
        assert!(
            c[0] > 0,
            "two random draws can both land on the busy one: {c:?}"
        );
        // Equal loads: spread over all.
        let p = pool(3);
        let c = counts(&LoadBalancer::LeastRequest, &p, |_| None);
        assert!(c.iter().all(|&n| n > 1000), "{c:?}");
    }

    #[test]
    fn consistent_hash_sticks_and_moves_only_the_keys_of_an_ejected_endpoint() {
        let lb = LoadBalancer::ConsistentHash(HashKey::Header("x-user".into()));
        let cursor = AtomicUsize::new(0);
        let mut r = rng();
        let mut p = pool(5);
        let keys: Vec<u64> = (0..500)
            .map(|k| hash_bytes(format!("user-{k}").as_bytes()))
            .collect();
        let before: Vec<usize> = keys
            .iter()
            .map(|&h| choose(&lb, &p, Some(h), &cursor, &mut r).unwrap())
            .collect();
        // Stickiness: the same key, the same endpoint, every time.
        for (k, &h) in keys.iter().enumerate() {
            for _ in 0..3 {
                assert_eq!(choose(&lb, &p, Some(h), &cursor, &mut r), Some(before[k]));
            }
        }
        // Every endpoint gets some keys.
        for i in 0..5 {
            assert!(before.iter().filter(|&&b| b == i).count() > 50);
        }
        // Ejecting endpoint 3 moves only its keys.
        p.down[3] = true;
        for (k, &h) in keys.iter().enumerate() {
            let now = choose(&lb, &p, Some(h), &cursor, &mut r).unwrap();
            if before[k] == 3 {
                assert_ne!(now, 3);
            } else {
                assert_eq!(now, before[k], "key {k} moved though its endpoint stayed");
            }
        }
        // No key: balanced at random, never to the ejected endpoint.
        let c = counts(&lb, &p, |_| None);
        assert_eq!(c[3], 0);
        assert!(c.iter().filter(|&&n| n > 0).count() == 4, "{c:?}");
    }

    #[test]
    fn hash_keys_come_from_header_cookie_query_or_source_ip() {
        let mut h = http::HeaderMap::new();
        h.insert("x-user", "alice".parse().unwrap());
        h.append(http::header::COOKIE, "a=1; session=abc".parse().unwrap());
        let uri: http::Uri = "/p?x=1&user=bob".parse().unwrap();
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        let of = |k: HashKey| request_hash(&k, &h, &uri, Some(ip));
        assert_eq!(
            of(HashKey::Header("x-user".into())),
            Some(hash_bytes(b"alice"))
        );
        assert_eq!(of(HashKey::Header("x-none".into())), None);
        assert_eq!(
            of(HashKey::Cookie {
                name: "session".into(),
                ttl: None,
                path: None
            }),
            Some(hash_bytes(b"abc"))
        );
        assert_eq!(
            of(HashKey::Cookie {
                name: "b".into(),
                ttl: None,
                path: None
            }),
            None
        );
        assert_eq!(
            of(HashKey::QueryParameter("user".into())),
            Some(hash_bytes(b"bob"))
        );
        assert_eq!(of(HashKey::QueryParameter("none".into())), None);
        assert_eq!(of(HashKey::SourceIp), Some(hash_bytes(&[10, 1, 2, 3])));
    }
}
