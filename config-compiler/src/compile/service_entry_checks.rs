//! Istio's validation rules for ServiceEntries ([SE-1]..[SE-3]): each problem names its field.

use crate::resources::service_entry::ServiceEntry;
use std::collections::HashSet;
use std::net::IpAddr;

/// Field-named problems Istio's validation would refuse ([SE-1]..[SE-3]); an entry with
/// problems is still served as far as it can be, and `waygate check` fails on them.
pub(super) fn validate(e: &ServiceEntry) -> Vec<String> {
    let spec = &e.spec;
    let mut out = Vec::new();
    if spec.hosts.is_empty() {
        out.push("spec.hosts: at least one host is required".to_string());
    }
    for (i, h) in spec.hosts.iter().enumerate() {
        let bare = h.strip_prefix("*.").unwrap_or(h);
        if h == "*" || bare.is_empty() || bare.contains(['*', '/', ' ']) {
            out.push(format!(
                "spec.hosts[{i}]: {h:?} is not an FQDN or a `*.` wildcard"
            ));
        }
    }
    for (i, a) in spec.addresses.iter().enumerate() {
        let ip = a
            .split_once('/')
            .map_or(a.as_str(), |(ip, _)| ip)
            .parse::<IpAddr>();
        let max = if matches!(ip, Ok(IpAddr::V4(_))) {
            32
        } else {
            128
        };
        let prefix_ok = a
            .split_once('/')
            .is_none_or(|(_, p)| p.parse::<u8>().is_ok_and(|p| p <= max));
        if ip.is_err() || !prefix_ok {
            out.push(format!(
                "spec.addresses[{i}]: {a:?} is not an IP address or CIDR"
            ));
        }
    }
    let mut seen = HashSet::new();
    for (i, p) in spec.ports.iter().enumerate() {
        if p.number == 0 {
            out.push(format!("spec.ports[{i}].number: must be 1-65535"));
        }
        if !seen.insert(p.number) {
            out.push(format!(
                "spec.ports[{i}].number: port {} is listed twice",
                p.number
            ));
        }
        if let Some(proto) = &p.protocol {
            const KNOWN: [&str; 12] = [
                "HTTP",
                "HTTPS",
                "GRPC",
                "HTTP2",
                "MONGO",
                "TCP",
                "TLS",
                "UDP",
                "GRPC-WEB",
                "REDIS",
                "MYSQL",
                "HTTP_PROXY",
            ];
            if !KNOWN.iter().any(|k| k.eq_ignore_ascii_case(proto)) {
                out.push(format!(
                    "spec.ports[{i}].protocol: unknown protocol {proto:?}"
                ));
            }
        }
    }
    let resolution = spec.resolution.as_deref().unwrap_or("NONE");
    if !matches!(
        resolution,
        "NONE" | "STATIC" | "DNS" | "DNS_ROUND_ROBIN" | "DYNAMIC_DNS"
    ) {
        out.push(format!("spec.resolution: unknown value {resolution:?}"));
    }
    if let Some(l) = spec.location.as_deref()
        && !matches!(l, "MESH_EXTERNAL" | "MESH_INTERNAL")
    {
        out.push(format!("spec.location: unknown value {l:?}"));
    }
    if spec.workload_selector.is_some() && !spec.endpoints.is_empty() {
        out.push("spec.workloadSelector: cannot be combined with spec.endpoints".to_string());
    }
    if resolution == "STATIC" && spec.endpoints.is_empty() && spec.workload_selector.is_none() {
        out.push(
            "spec.endpoints: resolution STATIC needs endpoints (or a workloadSelector)".into(),
        );
    }
    if matches!(resolution, "DNS" | "DNS_ROUND_ROBIN")
        && spec.endpoints.is_empty()
        && spec.hosts.iter().any(|h| h.starts_with('*'))
    {
        out.push(format!(
            "spec.resolution: {resolution} needs endpoints or hosts without wildcards (a wildcard name cannot be resolved)"
        ));
    }
    for (i, ep) in spec.endpoints.iter().enumerate() {
        match ep.address.as_deref() {
            None | Some("") => out.push(format!("spec.endpoints[{i}].address: required")),
            Some(a) if resolution == "STATIC" && a.parse::<IpAddr>().is_err() => out.push(format!(
                "spec.endpoints[{i}].address: {a:?} must be an IP address with resolution STATIC"
            )),
            _ => {}
        }
        for name in ep.ports.keys() {
            if !spec.ports.iter().any(|p| p.name.as_deref() == Some(name)) {
                out.push(format!(
                    "spec.endpoints[{i}].ports[{name}]: no port of the entry is named {name:?}"
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load_str;

    #[test]
    fn validation_names_each_bad_field() {
        let bad = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: bad, namespace: egress}
spec:
  hosts: ["*.wild.example.com", "*"]
  addresses: [10.0.0.1/40, not-an-ip]
  ports: [{number: 80, name: http, protocol: HTTPZ}, {number: 80, name: again}]
  resolution: DNS
  workloadSelector: {labels: {app: x}}
  endpoints: [{address: 10.1.1.1, ports: {nope: 8080}}]
"#;
        let r = load_str("se.yaml", bad).unwrap();
        let problems = validate(&r.service_entries[0].object);
        for field in [
            "spec.hosts[1]",
            "spec.addresses[0]",
            "spec.addresses[1]",
            "spec.ports[0].protocol",
            "spec.ports[1].number",
            "spec.workloadSelector",
            "spec.endpoints[0].ports[nope]",
        ] {
            assert!(
                problems.iter().any(|p| p.starts_with(field)),
                "{field} not named in {problems:?}"
            );
        }
        let wild = bad
            .replace("  workloadSelector: {labels: {app: x}}\n", "")
            .replace(
                "  endpoints: [{address: 10.1.1.1, ports: {nope: 8080}}]\n",
                "",
            );
        let r = load_str("se.yaml", &wild).unwrap();
        assert!(
            validate(&r.service_entries[0].object)
                .iter()
                .any(|p| p.starts_with("spec.resolution: DNS needs endpoints"))
        );
        let fixed = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: fixed, namespace: egress}
spec:
  hosts: [fixed.example.com, "*.wild.example.com"]
  addresses: [192.0.2.7/32, 2001:db8::/64]
  ports: [{number: 443, name: tls, protocol: TLS}, {number: 80, name: http}]
  resolution: STATIC
  endpoints: [{address: 192.0.2.8, ports: {http: 8080}}]
"#;
        let r = load_str("se.yaml", fixed).unwrap();
        assert_eq!(validate(&r.service_entries[0].object), Vec::<String>::new());
    }
}
