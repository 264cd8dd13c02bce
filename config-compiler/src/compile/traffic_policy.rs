//! Compiling one DestinationRule block at a time ([DR-3], [DR-4], [DR-5]): `loadBalancer`,
//! `connectionPool` and `outlierDetection` into the data plane's [`crate::traffic_policy`]
//! types, with every bad value named by its field path and every field that is read but not
//! applied noted.

use crate::resources::destination_rule::{
    ConnectionPoolSettings, ConsistentHash, LoadBalancerSettings,
    OutlierDetection as OutlierSettings,
};
use crate::traffic_policy::{ConnectionPool, HashKey, LoadBalancer, OutlierDetection, UNLIMITED};
use std::time::Duration;

/// What checking a rule found: problems (bad values) and fields read but not applied.
#[derive(Debug, Default)]
pub(super) struct Findings {
    /// `<field>: <what is wrong>`.
    pub problems: Vec<String>,
    /// `<field>: <why it is not applied>`.
    pub ignored: Vec<String>,
}

/// Run `check` and hand back its value only when it added no problem.
fn clean<T>(f: &mut Findings, check: impl FnOnce(&mut Findings) -> T) -> Option<T> {
    let before = f.problems.len();
    let v = check(f);
    (f.problems.len() == before).then_some(v)
}

/// [DR-5] `loadBalancer`.
pub(super) fn load_balancer(
    lb: &LoadBalancerSettings,
    at: &str,
    f: &mut Findings,
) -> Option<LoadBalancer> {
    clean(f, |f| {
        if lb.locality_lb_setting.is_some() {
            f.ignored.push(format!(
                "{at}.localityLbSetting: locality is not known here"
            ));
        }
        if lb.warmup_duration_secs.is_some() {
            f.ignored.push(format!(
                "{at}.warmupDurationSecs: slow start is not supported"
            ));
        }
        match (lb.simple.as_deref(), &lb.consistent_hash) {
            (Some(_), Some(_)) => {
                f.problems
                    .push(format!("{at}: set only one of simple and consistentHash"));
                LoadBalancer::default()
            }
            (None, Some(h)) => consistent_hash(h, &format!("{at}.consistentHash"), f)
                .map(LoadBalancer::ConsistentHash)
                .unwrap_or_default(),
            (Some(s), None) => match s {
                "ROUND_ROBIN" | "UNSPECIFIED" => LoadBalancer::RoundRobin,
                "RANDOM" => LoadBalancer::Random,
                "LEAST_REQUEST" | "LEAST_CONN" => LoadBalancer::LeastRequest,
                "PASSTHROUGH" => {
                    f.ignored.push(format!(
                        "{at}.simple: PASSTHROUGH (the original destination) is not supported; ROUND_ROBIN is used"
                    ));
                    LoadBalancer::RoundRobin
                }
                other => {
                    f.problems.push(format!(
                        "{at}.simple: {other:?} is not one of ROUND_ROBIN, LEAST_REQUEST, LEAST_CONN, RANDOM, PASSTHROUGH"
                    ));
                    LoadBalancer::default()
                }
            },
            (None, None) => LoadBalancer::RoundRobin,
        }
    })
}

fn consistent_hash(h: &ConsistentHash, at: &str, f: &mut Findings) -> Option<HashKey> {
    let mut keys = Vec::new();
    if let Some(name) = &h.http_header_name {
        if name.is_empty() || http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            f.problems.push(format!(
                "{at}.httpHeaderName: {name:?} is not a header name"
            ));
        }
        keys.push(HashKey::Header(name.to_ascii_lowercase()));
    }
    if let Some(c) = &h.http_cookie {
        if c.name.is_empty() {
            f.problems.push(format!("{at}.httpCookie.name: required"));
        }
        let ttl = c
            .ttl
            .as_ref()
            .and_then(|ttl| duration(ttl, &format!("{at}.httpCookie.ttl"), false, f));
        if c.name.contains([';', '=', ' ', ',']) {
            f.problems.push(format!(
                "{at}.httpCookie.name: {:?} is not a cookie name",
                c.name
            ));
        }
        keys.push(HashKey::Cookie {
            name: c.name.clone(),
            ttl,
            path: c.path.clone(),
        });
    }
    if h.use_source_ip == Some(true) {
        keys.push(HashKey::SourceIp);
    }
    if let Some(q) = &h.http_query_parameter_name {
        if q.is_empty() {
            f.problems
                .push(format!("{at}.httpQueryParameterName: must not be empty"));
        }
        keys.push(HashKey::QueryParameter(q.clone()));
    }
    if h.ring_hash.is_some() || h.maglev.is_some() || h.minimum_ring_size.is_some() {
        f.ignored.push(format!(
            "{at}: ringHash/maglev/minimumRingSize tune Envoy's tables; rendezvous hashing needs none"
        ));
    }
    match keys.len() {
        0 => {
            f.problems.push(format!(
                "{at}: needs a key: httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName"
            ));
            None
        }
        1 => keys.pop(),
        _ => {
            f.problems.push(format!(
                "{at}: set only one of httpHeaderName, httpCookie, useSourceIp and httpQueryParameterName"
            ));
            None
        }
    }
}

/// A count field: a non-negative integer that fits in 32 bits.
fn count(v: Option<i64>, at: &str, f: &mut Findings) -> Option<u32> {
    let v = v?;
    match u32::try_from(v) {
        Ok(n) => Some(n),
        Err(_) => {
            f.problems
                .push(format!("{at}: {v} must be between 0 and {}", u32::MAX));
            None
        }
    }
}

/// A percentage field: 0 to 100.
fn percent(v: Option<i64>, at: &str, f: &mut Findings) -> Option<u32> {
    let v = v?;
    match u32::try_from(v).ok().filter(|p| *p <= 100) {
        Some(p) => Some(p),
        None => {
            f.problems
                .push(format!("{at}: {v} must be a percentage between 0 and 100"));
            None
        }
    }
}

/// A duration field; `positive`: zero is a problem too.
fn duration(s: &str, at: &str, positive: bool, f: &mut Findings) -> Option<Duration> {
    match parse_duration(s) {
        Ok(d) if positive && d < Duration::from_millis(1) => {
            f.problems.push(format!("{at}: {s:?} must be at least 1ms"));
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            f.problems.push(format!("{at}: {e}"));
            None
        }
    }
}

/// A duration as Istio accepts it: Go's `time.ParseDuration` form (`30s`, `1.5s`, `100ms`,
/// `1m30s`, `1h`); negative durations are refused.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(format!("{s:?} is negative"));
    }
    let mut rest = t.strip_prefix('+').unwrap_or(t);
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(format!("{s:?} is not a duration"));
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("{s:?} has no unit (write e.g. 30s, 100ms)"))?;
        let (num, after) = rest.split_at(num_end);
        let n: f64 = num
            .parse()
            .map_err(|_| format!("{s:?} is not a duration"))?;
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(format!("{s:?} has an unknown unit {unit:?}")),
        };
        total += n * scale;
        rest = next;
    }
    Duration::try_from_secs_f64(total).map_err(|_| format!("{s:?} is out of range"))
}

/// [DR-3] `connectionPool`.
pub(super) fn connection_pool(
    p: &ConnectionPoolSettings,
    at: &str,
    f: &mut Findings,
) -> Option<ConnectionPool> {
    clean(f, |f| {
        let mut out = ConnectionPool::default();
        // Istio treats 0 as "not set" for these limits.
        let limit = |n: Option<u32>| n.filter(|n| *n > 0).unwrap_or(UNLIMITED);
        let mut max_h2 = UNLIMITED;
        if let Some(tcp) = &p.tcp {
            let at = format!("{at}.tcp");
            out.max_connections = limit(count(
                tcp.max_connections,
                &format!("{at}.maxConnections"),
                f,
            ));
            out.connect_timeout = tcp
                .connect_timeout
                .as_deref()
                .and_then(|d| duration(d, &format!("{at}.connectTimeout"), true, f));
            out.idle_timeout = tcp
                .idle_timeout
                .as_deref()
                .and_then(|d| duration(d, &format!("{at}.idleTimeout"), false, f));
            if let Some(d) = &tcp.max_connection_duration {
                duration(d, &format!("{at}.maxConnectionDuration"), true, f);
                f.ignored.push(format!(
                    "{at}.maxConnectionDuration: connections are not aged out"
                ));
            }
            if tcp.tcp_keepalive.is_some() {
                f.ignored.push(format!(
                    "{at}.tcpKeepalive: the OS keepalive settings apply"
                ));
            }
        }
        if let Some(http) = &p.http {
            let at = format!("{at}.http");
            out.max_pending_requests = limit(count(
                http.http1_max_pending_requests,
                &format!("{at}.http1MaxPendingRequests"),
                f,
            ));
            max_h2 = limit(count(
                http.http2_max_requests,
                &format!("{at}.http2MaxRequests"),
                f,
            ));
            let per_conn = count(
                http.max_requests_per_connection,
                &format!("{at}.maxRequestsPerConnection"),
                f,
            )
            .unwrap_or(0);
            if per_conn > 1 {
                f.ignored.push(format!(
                    "{at}.maxRequestsPerConnection: only 1 (no keep-alive) is enforced; {per_conn} is treated as unlimited"
                ));
            }
            out.max_requests_per_connection = per_conn;
            if let Some(d) = http
                .idle_timeout
                .as_deref()
                .and_then(|d| duration(d, &format!("{at}.idleTimeout"), false, f))
            {
                out.idle_timeout = Some(d);
            }
            count(http.max_retries, &format!("{at}.maxRetries"), f);
            count(
                http.max_concurrent_streams,
                &format!("{at}.maxConcurrentStreams"),
                f,
            );
            if let Some(p) = &http.h2_upgrade_policy
                && !matches!(p.as_str(), "DEFAULT" | "DO_NOT_UPGRADE" | "UPGRADE")
            {
                f.problems.push(format!(
                    "{at}.h2UpgradePolicy: {p:?} is not one of DEFAULT, DO_NOT_UPGRADE, UPGRADE"
                ));
            }
            if http.max_retries.is_some()
                || http.h2_upgrade_policy.is_some()
                || http.use_client_protocol.is_some()
                || http.max_concurrent_streams.is_some()
            {
                f.ignored.push(format!(
                    "{at}: maxRetries, h2UpgradePolicy, useClientProtocol and maxConcurrentStreams are not applied"
                ));
            }
        }
        out.idle_timeout = out.idle_timeout.filter(|d| !d.is_zero());
        out.max_requests = max_h2.min(out.max_connections.saturating_add(out.max_pending_requests));
        out
    })
}

/// [DR-4] `outlierDetection`.
pub(super) fn outlier_detection(
    o: &OutlierSettings,
    at: &str,
    f: &mut Findings,
) -> Option<OutlierDetection> {
    clean(f, |f| {
        let d = OutlierDetection::default();
        let gateway = count(
            o.consecutive_gateway_errors,
            &format!("{at}.consecutiveGatewayErrors"),
            f,
        )
        .or_else(|| count(o.consecutive_errors, &format!("{at}.consecutiveErrors"), f));
        if o.split_external_local_origin_errors.is_some()
            || o.consecutive_local_origin_failures.is_some()
        {
            f.ignored.push(format!(
                "{at}: connection errors always count as gateway errors (splitExternalLocalOriginErrors is not applied)"
            ));
        }
        OutlierDetection {
            consecutive_5xx: count(
                o.consecutive_5xx_errors,
                &format!("{at}.consecutive5xxErrors"),
                f,
            )
            // The deprecated `consecutiveErrors` alone means gateway errors only: Istio turns
            // the 5xx detector off then.
            .unwrap_or(
                if o.consecutive_errors.is_some() && o.consecutive_gateway_errors.is_none() {
                    0
                } else {
                    d.consecutive_5xx
                },
            ),
            consecutive_gateway_errors: gateway.unwrap_or(d.consecutive_gateway_errors),
            interval: o
                .interval
                .as_deref()
                .and_then(|s| duration(s, &format!("{at}.interval"), true, f))
                .unwrap_or(d.interval),
            base_ejection_time: o
                .base_ejection_time
                .as_deref()
                .and_then(|s| duration(s, &format!("{at}.baseEjectionTime"), true, f))
                .unwrap_or(d.base_ejection_time),
            max_ejection_percent: percent(
                o.max_ejection_percent,
                &format!("{at}.maxEjectionPercent"),
                f,
            )
            .unwrap_or(d.max_ejection_percent),
            min_health_percent: percent(o.min_health_percent, &format!("{at}.minHealthPercent"), f)
                .unwrap_or(d.min_health_percent),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lb(yaml: &str) -> (Option<LoadBalancer>, Findings) {
        let mut f = Findings::default();
        let spec: LoadBalancerSettings = serde_yaml_ng::from_str(yaml).unwrap();
        (load_balancer(&spec, "lb", &mut f), f)
    }

    #[test]
    fn load_balancer_names_and_aliases_dr_5() {
        assert_eq!(lb("simple: ROUND_ROBIN").0, Some(LoadBalancer::RoundRobin));
        assert_eq!(lb("simple: RANDOM").0, Some(LoadBalancer::Random));
        assert_eq!(lb("simple: LEAST_CONN").0, Some(LoadBalancer::LeastRequest));
        assert_eq!(
            lb("simple: LEAST_REQUEST").0,
            Some(LoadBalancer::LeastRequest)
        );
        assert_eq!(
            lb("consistentHash: {httpHeaderName: X-User}").0,
            Some(LoadBalancer::ConsistentHash(HashKey::Header(
                "x-user".into()
            )))
        );
        assert_eq!(
            lb("consistentHash: {useSourceIp: true}").0,
            Some(LoadBalancer::ConsistentHash(HashKey::SourceIp))
        );
        assert_eq!(
            lb("consistentHash: {httpCookie: {name: session, ttl: 0s}}").0,
            Some(LoadBalancer::ConsistentHash(HashKey::Cookie {
                name: "session".into(),
                ttl: Some(Duration::ZERO),
                path: None,
            }))
        );
        assert_eq!(
            lb("consistentHash: {httpCookie: {name: s, path: /app, ttl: 1h}}").0,
            Some(LoadBalancer::ConsistentHash(HashKey::Cookie {
                name: "s".into(),
                ttl: Some(Duration::from_secs(3600)),
                path: Some("/app".into()),
            }))
        );
        let (v, f) = lb("simple: PASSTHROUGH");
        assert_eq!(v, Some(LoadBalancer::RoundRobin));
        assert!(f.ignored[0].starts_with("lb.simple: PASSTHROUGH"));
    }

    #[test]
    fn bad_load_balancer_values_name_their_field() {
        let (v, f) = lb("simple: FASTEST");
        assert_eq!(v, None);
        assert!(f.problems[0].starts_with("lb.simple: \"FASTEST\" is not one of"));
        let (v, f) = lb("consistentHash: {}");
        assert_eq!(v, None);
        assert!(f.problems[0].starts_with("lb.consistentHash: needs a key"));
        let (_, f) = lb("consistentHash: {httpHeaderName: a, useSourceIp: true}");
        assert!(f.problems[0].contains("set only one of"));
        let (_, f) = lb("{simple: RANDOM, consistentHash: {useSourceIp: true}}");
        assert!(f.problems[0].starts_with("lb: set only one of simple and consistentHash"));
        let (_, f) = lb("consistentHash: {httpCookie: {name: \"\"}}");
        assert_eq!(
            f.problems,
            vec!["lb.consistentHash.httpCookie.name: required"]
        );
    }

    fn pool(yaml: &str) -> (Option<ConnectionPool>, Findings) {
        let mut f = Findings::default();
        let spec: ConnectionPoolSettings = serde_yaml_ng::from_str(yaml).unwrap();
        (connection_pool(&spec, "cp", &mut f), f)
    }

    #[test]
    fn connection_pool_limits_dr_3() {
        let (p, _) = pool("http: {http2MaxRequests: 1}");
        assert_eq!(p.map(|p| p.max_requests), Some(1));
        // One request per connection plus the pending queue (HTTP/1.1).
        let (p, _) = pool("{tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 1}}");
        assert_eq!(p.map(|p| p.max_requests), Some(2));
        // maxConnections alone only queues (the pending limit is unlimited), as in Envoy.
        let (p, _) = pool("tcp: {maxConnections: 1}");
        assert_eq!(p.map(|p| p.max_requests), Some(UNLIMITED));
        // 0 means "not set".
        let (p, _) = pool("http: {http2MaxRequests: 0}");
        assert_eq!(p.map(|p| p.max_requests), Some(UNLIMITED));
        let (p, _) = pool(
            "{tcp: {connectTimeout: 250ms, idleTimeout: 1h}, http: {maxRequestsPerConnection: 1, idleTimeout: 30s}}",
        );
        let p = p.unwrap();
        assert_eq!(p.connect_timeout, Some(Duration::from_millis(250)));
        assert_eq!(p.idle_timeout, Some(Duration::from_secs(30)));
        assert_eq!(p.max_requests_per_connection, 1);
    }

    #[test]
    fn bad_connection_pool_values_name_their_field() {
        let (p, f) = pool("tcp: {maxConnections: -1}");
        assert_eq!(p, None);
        assert!(f.problems[0].starts_with("cp.tcp.maxConnections: -1 must be between 0 and"));
        let (_, f) = pool("tcp: {connectTimeout: -1s}");
        assert_eq!(
            f.problems,
            vec!["cp.tcp.connectTimeout: \"-1s\" is negative"]
        );
        let (_, f) = pool("http: {idleTimeout: 5}");
        assert!(f.problems[0].starts_with("cp.http.idleTimeout: \"5\" has no unit"));
        let (_, f) = pool("http: {h2UpgradePolicy: SOMETIMES}");
        assert!(f.problems[0].starts_with("cp.http.h2UpgradePolicy"));
        let (_, f) = pool("http: {maxRequestsPerConnection: 10}");
        assert!(f.problems.is_empty());
        assert!(f.ignored[0].contains("only 1 (no keep-alive) is enforced"));
    }

    fn outlier(yaml: &str) -> (Option<OutlierDetection>, Findings) {
        let mut f = Findings::default();
        let spec: OutlierSettings = serde_yaml_ng::from_str(yaml).unwrap();
        (outlier_detection(&spec, "od", &mut f), f)
    }

    #[test]
    fn outlier_detection_defaults_and_values_dr_4() {
        assert_eq!(outlier("{}").0, Some(OutlierDetection::default()));
        let d = OutlierDetection::default();
        assert_eq!(
            (d.consecutive_5xx, d.max_ejection_percent, d.interval),
            (5, 10, Duration::from_secs(10))
        );
        let (o, _) = outlier(
            "{consecutive5xxErrors: 0, consecutiveGatewayErrors: 2, interval: 1m30s, baseEjectionTime: 15s, maxEjectionPercent: 100, minHealthPercent: 50}",
        );
        assert_eq!(
            o,
            Some(OutlierDetection {
                consecutive_5xx: 0,
                consecutive_gateway_errors: 2,
                interval: Duration::from_secs(90),
                base_ejection_time: Duration::from_secs(15),
                max_ejection_percent: 100,
                min_health_percent: 50,
            })
        );
        // The deprecated spelling of consecutiveGatewayErrors, which turns the 5xx detector off.
        let (o, _) = outlier("consecutiveErrors: 3");
        assert_eq!(
            o.map(|o| (o.consecutive_gateway_errors, o.consecutive_5xx)),
            Some((3, 0))
        );
    }

    #[test]
    fn bad_outlier_values_name_their_field() {
        let (o, f) = outlier("{interval: -10s, maxEjectionPercent: 120, baseEjectionTime: 0s}");
        assert_eq!(o, None);
        assert_eq!(
            f.problems,
            vec![
                "od.interval: \"-10s\" is negative",
                "od.baseEjectionTime: \"0s\" must be at least 1ms",
                "od.maxEjectionPercent: 120 must be a percentage between 0 and 100",
            ]
        );
        let (_, f) = outlier("consecutive5xxErrors: -5");
        assert!(f.problems[0].starts_with("od.consecutive5xxErrors: -5"));
    }

    #[test]
    fn durations_in_go_form() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("1h1m1s"), Ok(Duration::from_secs(3661)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("s").is_err());
    }
}
