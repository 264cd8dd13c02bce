//! `waygate waypoint generate`: the waypoint Gateway (and, if asked, the Namespace label that
//! enrolls a namespace) as YAML for GitOps, as `istioctl waypoint apply` would create them.

/// What the waypoint accepts (`istio.io/waypoint-for`).
pub const WAYPOINT_FOR: [&str; 4] = ["service", "workload", "all", "none"];

/// The YAML for a waypoint `namespace/name` accepting `accepts` traffic; with `enroll`, also the
/// Namespace labelled to use it.
pub fn generate(
    namespace: &str,
    name: &str,
    accepts: &str,
    enroll: bool,
) -> Result<String, String> {
    if !WAYPOINT_FOR.contains(&accepts) {
        return Err(format!(
            "--for {accepts:?}: one of {}",
            WAYPOINT_FOR.join(", ")
        ));
    }
    for (what, v) in [("namespace", namespace), ("name", name)] {
        let ok = !v.is_empty()
            && v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !v.starts_with('-')
            && !v.ends_with('-');
        if !ok {
            return Err(format!(
                "{what} {v:?} is not a Kubernetes name (RFC 1123 label)"
            ));
        }
    }
    let mut out = format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: {name}
  namespace: {namespace}
  labels:
    istio.io/waypoint-for: {accepts}
spec:
  gatewayClassName: istio-waypoint
  listeners:
  - name: mesh
    port: 15008
    protocol: HBONE
"
    );
    if enroll {
        out.push_str(&format!(
            "---
apiVersion: v1
kind: Namespace
metadata:
  name: {namespace}
  labels:
    istio.io/use-waypoint: {name}
"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use waygate_config::{CompileOptions, compile, load_str};

    #[test]
    fn the_generated_waypoint_compiles_accepted_and_enrolls_its_namespace() {
        let yaml = generate("shop", "waypoint", "service", true).unwrap();
        let r = load_str("gen.yaml", &yaml).unwrap();
        assert_eq!(
            r.namespaces[0].object.metadata.labels["istio.io/use-waypoint"],
            "waypoint"
        );
        let (snapshot, report) = compile(&r, &CompileOptions::default());
        let gw = report.find("Gateway", "shop", "waypoint").unwrap();
        assert!(gw.conditions.get("Accepted").unwrap().is_true());
        assert!(
            gw.listeners[0]
                .conditions
                .get("Programmed")
                .unwrap()
                .is_true()
        );
        assert_eq!(snapshot.bind_keys().len(), 1);
        assert!(generate("shop", "waypoint", "everything", false).is_err());
        assert!(generate("Shop", "waypoint", "service", false).is_err());
    }
}
