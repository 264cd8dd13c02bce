//! The one header-modifier type: `set`, `add` and `remove` on request or response headers.

use http::{HeaderMap, HeaderName, HeaderValue};
use serde::{Serialize, Serializer};

/// Header access that a filter needs; implemented by the proxy for its header types.
pub trait HeaderEdit {
    /// Every value of `name`, in order.
    fn values(&self, name: &HeaderName) -> Vec<HeaderValue>;
    /// Replace every value of `name` with `value`.
    fn set(&mut self, name: &HeaderName, value: HeaderValue);
    /// Delete every value of `name`.
    fn remove(&mut self, name: &HeaderName);
}

impl HeaderEdit for HeaderMap {
    fn values(&self, name: &HeaderName) -> Vec<HeaderValue> {
        self.get_all(name).iter().cloned().collect()
    }
    fn set(&mut self, name: &HeaderName, value: HeaderValue) {
        self.insert(name.clone(), value);
    }
    fn remove(&mut self, name: &HeaderName) {
        HeaderMap::remove(self, name);
    }
}

/// A compiled `RequestHeaderModifier` / `ResponseHeaderModifier` ([HF-1]).
#[derive(Debug, Clone, Default, Serialize)]
pub struct HeaderModifier {
    /// Overwrite (or create) these headers.
    #[serde(serialize_with = "ser_pairs")]
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Append to these headers, comma-joined with any existing value.
    #[serde(serialize_with = "ser_pairs")]
    pub add: Vec<(HeaderName, HeaderValue)>,
    /// Delete these headers.
    #[serde(serialize_with = "ser_names")]
    pub remove: Vec<HeaderName>,
}

/// Why a header modifier could not be compiled.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderModifierError {
    /// The name is not a valid HTTP header name (or is a pseudo-header).
    #[error("invalid header name {0:?}")]
    Name(String),
    /// The value holds bytes HTTP does not allow.
    #[error("invalid value for header {0:?}")]
    Value(String),
}

impl HeaderModifier {
    /// Compile from name/value strings as written in config.
    pub fn new<'a>(
        set: impl IntoIterator<Item = (&'a str, &'a str)>,
        add: impl IntoIterator<Item = (&'a str, &'a str)>,
        remove: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, HeaderModifierError> {
        let pairs = |items: Vec<(&str, &str)>| -> Result<Vec<_>, HeaderModifierError> {
            items
                .into_iter()
                .map(|(n, v)| Ok((header_name(n)?, header_value(n, v)?)))
                .collect()
        };
        Ok(Self {
            set: pairs(set.into_iter().collect())?,
            add: pairs(add.into_iter().collect())?,
            remove: remove
                .into_iter()
                .map(header_name)
                .collect::<Result<_, _>>()?,
        })
    }

    /// True when the modifier does nothing.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }

    /// Apply in the order the spec implies: set, then add, then remove.
    pub fn apply<H: HeaderEdit + ?Sized>(&self, headers: &mut H) {
        for (name, value) in &self.set {
            headers.set(name, value.clone());
        }
        for (name, value) in &self.add {
            let existing = headers.values(name);
            if existing.is_empty() {
                headers.set(name, value.clone());
                continue;
            }
            let mut joined = Vec::with_capacity(64);
            for v in existing.iter().chain(std::iter::once(value)) {
                if !joined.is_empty() {
                    joined.push(b',');
                }
                joined.extend_from_slice(v.as_bytes());
            }
            // Joining valid values with ',' always yields a valid value.
            if let Ok(v) = HeaderValue::from_bytes(&joined) {
                headers.set(name, v);
            }
        }
        for name in &self.remove {
            headers.remove(name);
        }
    }
}

fn header_name(name: &str) -> Result<HeaderName, HeaderModifierError> {
    if name.starts_with(':') {
        return Err(HeaderModifierError::Name(name.to_string()));
    }
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| HeaderModifierError::Name(name.to_string()))
}

fn header_value(name: &str, value: &str) -> Result<HeaderValue, HeaderModifierError> {
    HeaderValue::from_str(value).map_err(|_| HeaderModifierError::Value(name.to_string()))
}

fn ser_pairs<S: Serializer>(pairs: &[(HeaderName, HeaderValue)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(pairs.iter().map(|(n, v)| {
        serde_json::json!({"name": n.as_str(), "value": String::from_utf8_lossy(v.as_bytes())})
    }))
}

fn ser_names<S: Serializer>(names: &[HeaderName], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(names.iter().map(|n| n.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (n, v) in pairs {
            m.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn set_add_remove_follow_hf_1() {
        // [HF-1] set overwrites or creates, add comma-joins, remove deletes; names are case-insensitive.
        let m = HeaderModifier::new(
            [("X-Header-Set", "set-overwrites-values"), ("X-New", "n")],
            [("X-Header-Add", "add-appends-values"), ("X-Fresh", "f")],
            ["X-Header-Remove"],
        )
        .unwrap();
        let mut h = map(&[
            ("x-header-set", "some-value"),
            ("x-header-add", "foo"),
            ("x-header-add", "bar,baz"),
            ("x-header-remove", "gone"),
            ("x-keep", "k"),
        ]);
        m.apply(&mut h);
        assert_eq!(h["x-header-set"], "set-overwrites-values");
        assert_eq!(h["x-new"], "n");
        assert_eq!(h["x-header-add"], "foo,bar,baz,add-appends-values");
        assert_eq!(h.get_all("x-header-add").iter().count(), 1);
        assert_eq!(h["x-fresh"], "f");
        assert!(h.get("x-header-remove").is_none());
        assert_eq!(h["x-keep"], "k");
    }

    #[test]
    fn rejects_pseudo_headers_and_bad_values() {
        // [HF-1] pseudo-headers are forbidden.
        assert_eq!(
            HeaderModifier::new([(":path", "/x")], [], []).unwrap_err(),
            HeaderModifierError::Name(":path".into())
        );
        assert!(HeaderModifier::new([("x-a", "bad\nvalue")], [], []).is_err());
        assert!(HeaderModifier::new([], [], ["bad name"]).is_err());
    }
}
