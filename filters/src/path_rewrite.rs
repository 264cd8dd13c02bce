//! Path rewriting shared by `URLRewrite` and `RequestRedirect`: full replacement or prefix swap.

use serde::Serialize;

/// How a filter replaces the request path ([HF-2], [HF-3]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "value")]
pub enum PathRewrite {
    /// Replace the whole path.
    ReplaceFullPath(String),
    /// Replace the part of the path matched by the rule's `PathPrefix`.
    ReplacePrefixMatch(String),
    /// [VS-5] Istio's prefix rewrite: replace these leading characters (the matched `prefix`),
    /// with no slash handling.
    ReplaceCharPrefix {
        /// The prefix the route matched.
        prefix: String,
        /// What replaces it.
        with: String,
    },
}

impl PathRewrite {
    /// The rewritten path. `matched_prefix` is the rule's PathPrefix value (used only for
    /// `ReplacePrefixMatch`; `None` means the path was not matched by a prefix, so the path is kept).
    pub fn apply(&self, path: &str, matched_prefix: Option<&str>) -> String {
        match self {
            PathRewrite::ReplaceFullPath(p) => p.clone(),
            PathRewrite::ReplaceCharPrefix { prefix, with } => {
                match path.strip_prefix(prefix.as_str()) {
                    Some(rest) => format!("{with}{rest}"),
                    // A case-insensitive match: the prefix's length still marks the cut.
                    None => format!("{with}{}", path.get(prefix.len()..).unwrap_or("")),
                }
            }
            PathRewrite::ReplacePrefixMatch(replacement) => {
                let Some(prefix) = matched_prefix else {
                    return path.to_string();
                };
                let prefix = prefix.trim_end_matches('/');
                // Segment-wise matching guarantees the rest is empty or starts at a '/'.
                let rest = path.get(prefix.len()..).unwrap_or("");
                let mut out = String::with_capacity(replacement.len() + rest.len());
                out.push_str(replacement.trim_end_matches('/'));
                out.push_str(rest);
                if out.is_empty() {
                    out.push('/');
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_replacement_table_hf_3() {
        // [HF-3] (request path, matched prefix, replacement) -> result
        let rows = [
            ("/foo/bar", "/foo", "/xyz", "/xyz/bar"),
            ("/foo/bar", "/foo", "/xyz/", "/xyz/bar"),
            ("/foo", "/foo", "/xyz", "/xyz"),
            ("/foo/", "/foo", "/xyz", "/xyz/"),
            ("/foo/bar", "/foo", "", "/bar"),
            ("/foo", "/foo", "", "/"),
            ("/foo", "/foo", "/", "/"),
            ("/foo/bar", "/foo/", "/xyz", "/xyz/bar"),
            ("/foo/bar", "/", "/xyz", "/xyz/foo/bar"),
        ];
        for (path, prefix, repl, want) in rows {
            let got = PathRewrite::ReplacePrefixMatch(repl.into()).apply(path, Some(prefix));
            assert_eq!(got, want, "{path} {prefix} {repl}");
        }
    }

    #[test]
    fn full_path_replaces_everything() {
        let r = PathRewrite::ReplaceFullPath("/one".into());
        assert_eq!(r.apply("/a/b/c", Some("/a")), "/one");
    }
}
