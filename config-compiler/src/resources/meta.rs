//! Object metadata, namespaced names and source locations shared by every kind.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// The namespace used when an object names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Kubernetes `metadata`, the fields we read.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Object name.
    #[serde(default)]
    pub name: String,
    /// Namespace; `None` means `default` for namespaced kinds.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339 creation time; used for route precedence.
    #[serde(default)]
    pub creation_timestamp: Option<String>,
    /// Generation, echoed as `observedGeneration` in conditions.
    #[serde(default)]
    pub generation: Option<i64>,
}

impl ObjectMeta {
    /// The namespace, defaulted.
    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)
    }
    /// `namespace/name`.
    pub fn ns_name(&self) -> NsName {
        NsName::new(self.namespace(), &self.name)
    }
}

/// A namespaced object name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NsName {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl NsName {
    /// Build from parts.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
    /// Parse `ns/name`.
    pub fn parse(s: &str) -> Option<Self> {
        let (ns, name) = s.split_once('/')?;
        (!ns.is_empty() && !name.is_empty() && !name.contains('/')).then(|| Self::new(ns, name))
    }
}

impl fmt::Display for NsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Where an object was read from: the file and the document's index in it (0-based).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Source {
    /// The file.
    pub file: PathBuf,
    /// Index of the YAML document within the file (0-based).
    pub document: usize,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (document {})", self.file.display(), self.document)
    }
}

/// A standard `LabelSelector`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Labels that must be equal.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements.
    #[serde(default)]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One set-based selector requirement.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    /// Label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// Values for `In` / `NotIn`.
    #[serde(default)]
    pub values: Vec<String>,
}

impl LabelSelector {
    /// Whether `labels` satisfy the selector; an unknown operator is an error.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> Result<bool, String> {
        for (k, v) in &self.match_labels {
            if labels.get(k) != Some(v) {
                return Ok(false);
            }
        }
        for req in &self.match_expressions {
            let value = labels.get(&req.key);
            let ok = match req.operator.as_str() {
                "In" => value.is_some_and(|v| req.values.contains(v)),
                "NotIn" => !value.is_some_and(|v| req.values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                other => return Err(format!("unknown selector operator {other:?}")),
            };
            if !ok {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_operators() {
        let labels: BTreeMap<String, String> = [("env".to_string(), "prod".to_string())]
            .into_iter()
            .collect();
        let sel = |ml: &[(&str, &str)], op: &str, vals: &[&str]| LabelSelector {
            match_labels: ml
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            match_expressions: vec![LabelSelectorRequirement {
                key: "env".into(),
                operator: op.into(),
                values: vals.iter().map(|s| s.to_string()).collect(),
            }],
        };
        assert_eq!(sel(&[], "In", &["prod"]).matches(&labels), Ok(true));
        assert_eq!(sel(&[], "NotIn", &["prod"]).matches(&labels), Ok(false));
        assert_eq!(sel(&[], "Exists", &[]).matches(&labels), Ok(true));
        assert_eq!(sel(&[], "DoesNotExist", &[]).matches(&labels), Ok(false));
        assert_eq!(
            sel(&[("env", "dev")], "Exists", &[]).matches(&labels),
            Ok(false)
        );
        assert!(sel(&[], "Near", &[]).matches(&labels).is_err());
    }
}
