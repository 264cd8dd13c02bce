//! `URLRewrite` ([HF-3]): the Host and path a forwarded request carries upstream.

use crate::PathRewrite;
use serde::Serialize;

/// A compiled `URLRewrite` filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UrlRewrite {
    /// Replaces the whole upstream `Host` (any port included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Replaces the path (the query string is kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathRewrite>,
}

impl UrlRewrite {
    /// The upstream path-and-query for a request with `path` and `query`, or `None` when this
    /// filter leaves the path alone. `matched_prefix` is the rule's PathPrefix that matched.
    pub fn path_and_query(
        &self,
        path: &str,
        query: Option<&str>,
        matched_prefix: Option<&str>,
    ) -> Option<String> {
        let rewritten = self.path.as_ref()?.apply(path, matched_prefix);
        Some(match query {
            Some(q) => {
                let mut out = rewritten;
                out.push('?');
                out.push_str(q);
                out
            }
            None => rewritten,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_path_and_keeps_query_hf_3() {
        // [HF-3] ReplacePrefixMatch swaps the matched prefix; ReplaceFullPath replaces the path;
        // the query string is not part of the path and is kept.
        let prefix = UrlRewrite {
            hostname: None,
            path: Some(PathRewrite::ReplacePrefixMatch("/xyz".into())),
        };
        assert_eq!(
            prefix.path_and_query("/foo/bar", Some("a=1&b=2"), Some("/foo")),
            Some("/xyz/bar?a=1&b=2".into())
        );
        let strip = UrlRewrite {
            hostname: None,
            path: Some(PathRewrite::ReplacePrefixMatch("/".into())),
        };
        assert_eq!(
            strip.path_and_query("/strip/three", None, Some("/strip")),
            Some("/three".into())
        );
        let full = UrlRewrite {
            hostname: None,
            path: Some(PathRewrite::ReplaceFullPath("/one".into())),
        };
        assert_eq!(
            full.path_and_query("/full/x", Some("q"), Some("/full")),
            Some("/one?q".into())
        );
        let host_only = UrlRewrite {
            hostname: Some("one.example.org".into()),
            path: None,
        };
        assert_eq!(host_only.path_and_query("/a", None, None), None);
    }
}
