//! Reading a file or folder of Kubernetes YAML/JSON into typed [`Resources`].

use crate::error::{LoadError, LoadErrors};
use crate::resources::{Resources, Source, Sourced};
use serde::de::DeserializeOwned;
use serde_yaml_ng::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Load every `.yaml`, `.yml` and `.json` file at `path` (a file, or a folder searched recursively).
///
/// Any syntax or schema error refuses the whole set: all errors are returned together.
pub fn load_path(path: &Path) -> Result<Resources, LoadErrors> {
    let (resources, errors) = load_path_partial(path);
    if errors.is_empty() {
        Ok(resources)
    } else {
        Err(LoadErrors(errors))
    }
}

/// Load what can be loaded and report every error beside it (for `waygate check`, which shows
/// both the files that do not parse and the status of the objects that did).
pub fn load_path_partial(path: &Path) -> (Resources, Vec<LoadError>) {
    let files = match config_files(path) {
        Ok(f) => f,
        Err(message) => {
            let e = LoadError {
                file: path.to_path_buf(),
                document: None,
                object: None,
                field: None,
                message,
            };
            return (Resources::default(), vec![e]);
        }
    };
    let mut loader = Loader::default();
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => loader.add_text(&file, &text),
            Err(e) => loader.errors.push(LoadError {
                file: file.clone(),
                document: None,
                object: None,
                field: None,
                message: format!("cannot read: {e}"),
            }),
        }
    }
    loader.finish_partial()
}

/// Load from in-memory text (used for the built-in demo and tests); `name` is shown in errors.
pub fn load_str(name: &str, text: &str) -> Result<Resources, LoadErrors> {
    let mut loader = Loader::default();
    loader.add_text(Path::new(name), text);
    loader.finish()
}

/// The config files under `path`, sorted, so loading is deterministic.
pub fn config_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read config path: {e}"))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries.flatten() {
            let p = entry.path();
            let hidden = p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if hidden {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if is_config_file(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Whether a path has one of the config extensions.
pub fn is_config_file(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

#[derive(Default)]
struct Loader {
    resources: Resources,
    errors: Vec<LoadError>,
    skipped_kinds: BTreeSet<String>,
}

impl Loader {
    fn add_text(&mut self, file: &Path, text: &str) {
        for (index, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let value = match <Value as serde::Deserialize>::deserialize(doc) {
                Ok(v) => v,
                Err(e) => {
                    self.errors.push(LoadError {
                        file: file.to_path_buf(),
                        document: Some(index),
                        object: None,
                        field: None,
                        message: format!("not valid YAML: {e}"),
                    });
                    // The parser cannot resume after a syntax error in a stream.
                    return;
                }
            };
            let source = Source {
                file: file.to_path_buf(),
                document: index,
            };
            self.add_value(&source, value);
        }
    }

    fn add_value(&mut self, source: &Source, value: Value) {
        if value.is_null() {
            return;
        }
        let err = |object: Option<String>, field: Option<String>, message: String| LoadError {
            file: source.file.clone(),
            document: Some(source.document),
            object,
            field,
            message,
        };
        let api_version = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
        if api_version.is_empty() || kind.is_empty() {
            self.errors.push(err(
                None,
                None,
                "not a Kubernetes object: apiVersion and kind are required".into(),
            ));
            return;
        }
        let object_name = object_label(kind, &value);
        if kind == "List" {
            if let Some(items) = value.get("items").and_then(Value::as_sequence) {
                for item in items.clone() {
                    self.add_value(source, item);
                }
            }
            return;
        }
        let name_ok = value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        if !name_ok {
            self.errors.push(err(
                Some(object_name),
                Some("metadata.name".into()),
                "is required".into(),
            ));
            return;
        }
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let version = api_version.rsplit('/').next().unwrap_or("");
        let r = &mut self.resources;
        let result = match (group, version, kind) {
            ("", "v1", "Namespace") => typed(source, value, &mut r.namespaces),
            ("", "v1", "Service") => typed(source, value, &mut r.services),
            ("", "v1", "Pod") => typed(source, value, &mut r.pods),
            ("", "v1", "Secret") => typed(source, value, &mut r.secrets),
            ("", "v1", "ConfigMap") => typed(source, value, &mut r.config_maps),
            ("discovery.k8s.io", "v1", "EndpointSlice") => {
                typed(source, value, &mut r.endpoint_slices)
            }
            ("gateway.networking.k8s.io", "v1" | "v1beta1", "GatewayClass") => {
                typed(source, value, &mut r.gateway_classes)
            }
            ("gateway.networking.k8s.io", "v1" | "v1beta1", "Gateway") => {
                typed(source, value, &mut r.gateways)
            }
            ("gateway.networking.k8s.io", "v1", "ListenerSet")
            | ("gateway.networking.x-k8s.io", "v1alpha1", "XListenerSet") => {
                typed(source, value, &mut r.listener_sets)
            }
            ("gateway.networking.k8s.io", "v1" | "v1beta1", "HTTPRoute") => {
                typed(source, value, &mut r.http_routes)
            }
            ("gateway.networking.k8s.io", "v1" | "v1alpha2", "GRPCRoute") => {
                typed(source, value, &mut r.grpc_routes)
            }
            ("gateway.networking.k8s.io", "v1" | "v1alpha3" | "v1alpha2", "TLSRoute") => {
                typed(source, value, &mut r.tls_routes)
            }
            ("gateway.networking.k8s.io", "v1" | "v1beta1", "ReferenceGrant") => {
                typed(source, value, &mut r.reference_grants)
            }
            ("gateway.networking.k8s.io", "v1" | "v1alpha3", "BackendTLSPolicy") => {
                typed(source, value, &mut r.backend_tls_policies)
            }
            ("networking.istio.io", "v1" | "v1beta1" | "v1alpha3", "DestinationRule") => {
                typed(source, value, &mut r.destination_rules)
            }
            ("networking.istio.io", "v1" | "v1beta1" | "v1alpha3", "VirtualService") => {
                typed(source, value, &mut r.virtual_services)
            }
            ("security.istio.io", "v1" | "v1beta1", "AuthorizationPolicy") => {
                typed(source, value, &mut r.authorization_policies)
            }
            ("networking.istio.io", "v1" | "v1beta1" | "v1alpha3", "ServiceEntry") => {
                typed(source, value, &mut r.service_entries)
            }
            ("networking.istio.io", "v1" | "v1beta1" | "v1alpha3", "WorkloadEntry") => {
                typed(source, value, &mut r.workload_entries)
            }
            _ => {
                self.skipped_kinds.insert(format!("{api_version} {kind}"));
                Ok(())
            }
        };
        if let Err((field, message)) = result {
            self.errors.push(err(Some(object_name), field, message));
        }
    }

    fn finish(self) -> Result<Resources, LoadErrors> {
        let (resources, errors) = self.finish_partial();
        if errors.is_empty() {
            Ok(resources)
        } else {
            Err(LoadErrors(errors))
        }
    }

    fn finish_partial(mut self) -> (Resources, Vec<LoadError>) {
        self.resources.skipped = self
            .skipped_kinds
            .into_iter()
            .map(|k| format!("{k}: kind not handled yet, skipped"))
            .collect();
        self.resources.sort();
        let paths: Vec<String> = self
            .resources
            .destination_rules
            .iter()
            .flat_map(|d| d.object.tls_settings())
            .flat_map(|t| t.files())
            .map(str::to_string)
            .collect();
        for path in paths {
            let content = std::fs::read(&path).map_err(|e| format!("{path}: {e}"));
            self.resources.files.insert(path, content);
        }
        (self.resources, self.errors)
    }
}

/// `Kind namespace/name` for messages, from whatever metadata is present.
fn object_label(kind: &str, value: &Value) -> String {
    let meta = value.get("metadata");
    let get = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_str);
    match (get("namespace"), get("name")) {
        (Some(ns), Some(n)) => format!("{kind} {ns}/{n}"),
        (None, Some(n)) => format!("{kind} {n}"),
        _ => kind.to_string(),
    }
}

/// Deserialize one object, reporting the path of the first bad field.
fn typed<T: DeserializeOwned>(
    source: &Source,
    value: Value,
    out: &mut Vec<Sourced<T>>,
) -> Result<(), (Option<String>, String)> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(object) => {
            out.push(Sourced {
                source: source.clone(),
                object,
            });
            Ok(())
        }
        Err(e) => {
            let path = e.path().to_string();
            let field = (path != ".").then_some(path);
            Err((field, e.into_inner().to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_known_kinds_and_skips_others_with_one_warning_each() {
        let text = r#"
apiVersion: v1
kind: Namespace
metadata: {name: apps, labels: {team: a}}
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: HTTPRoute
metadata: {name: r, namespace: apps}
spec: {parentRefs: [{name: gw}]}
---
apiVersion: networking.istio.io/v1
kind: EnvoyFilter
metadata: {name: a}
---
apiVersion: networking.istio.io/v1
kind: EnvoyFilter
metadata: {name: b}
---
"#;
        let r = load_str("mem.yaml", text).unwrap();
        assert_eq!(r.namespaces.len(), 1);
        assert_eq!(r.http_routes.len(), 1);
        assert_eq!(r.http_routes[0].source.document, 1);
        assert_eq!(r.skipped.len(), 1, "{:?}", r.skipped);
        assert!(r.skipped[0].contains("EnvoyFilter"));
    }

    #[test]
    fn schema_error_names_file_document_object_and_field() {
        let text = r#"
apiVersion: v1
kind: Service
metadata: {name: ok}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: istio
  listeners:
  - {name: http, port: eighty, protocol: HTTP}
"#;
        let e = load_str("gw.yaml", text).unwrap_err();
        assert_eq!(e.0.len(), 1);
        let e = &e.0[0];
        assert_eq!(e.document, Some(1));
        assert_eq!(e.object.as_deref(), Some("Gateway infra/gw"));
        assert_eq!(e.field.as_deref(), Some("spec.listeners[0].port"));
        let shown = e.to_string();
        assert!(
            shown
                .starts_with("gw.yaml: document 1: Gateway infra/gw: field spec.listeners[0].port"),
            "{shown}"
        );
    }

    #[test]
    fn syntax_error_is_reported_with_document() {
        let e = load_str(
            "bad.yaml",
            "apiVersion: v1\nkind: Service\nmetadata: {name: [x\n",
        )
        .unwrap_err();
        assert_eq!(e.0[0].file, PathBuf::from("bad.yaml"));
        assert!(e.0[0].message.contains("not valid YAML"));
    }

    #[test]
    fn missing_name_is_an_error() {
        let e = load_str("x.yaml", "apiVersion: v1\nkind: Service\nmetadata: {}\n").unwrap_err();
        assert_eq!(e.0[0].field.as_deref(), Some("metadata.name"));
    }
}
