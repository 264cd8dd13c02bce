//! Path rewriting shared by `URLRewrite` and `RequestRedirect`: full replacement, prefix swap,
//! or (VirtualService `uriRegexRewrite`) regular-expression substitution.

use regex::Regex;
use serde::{Serialize, Serializer};

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
    /// [VS-5] `uriRegexRewrite`: every match of `pattern` in the path is replaced by `with`
    /// (the regex crate's syntax: `${1}` is a capture group, `$$` a dollar sign).
    RegexReplace {
        /// Searched for anywhere in the path (not anchored).
        pattern: PathRegex,
        /// The replacement.
        with: String,
    },
}

/// A regular expression compared and dumped by its pattern.
#[derive(Debug, Clone)]
pub struct PathRegex(pub Regex);

impl PartialEq for PathRegex {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for PathRegex {}

impl Serialize for PathRegex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

impl PathRewrite {
    /// [VS-5] A regex rewrite from Envoy's (RE2) substitution syntax: `\1`..`\9` name capture
    /// groups (`\0` the whole match) and `\\` is a backslash; any other escape, or a group the
    /// pattern does not have, is an error (as Envoy refuses it).
    pub fn regex_replace(pattern: Regex, rewrite: &str) -> Result<Self, String> {
        let groups = pattern.captures_len();
        let mut with = String::with_capacity(rewrite.len() + 8);
        let mut chars = rewrite.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('\\') => with.push('\\'),
                    Some(d) if d.is_ascii_digit() => {
                        let n = usize::from(d as u8 - b'0');
                        if n >= groups {
                            return Err(format!(
                                "\\{n} names a capture group the pattern does not have ({} groups)",
                                groups - 1
                            ));
                        }
                        with.push_str(&format!("${{{n}}}"));
                    }
                    Some(other) => {
                        return Err(format!(
                            "\\{other} is not a capture group (\\0..\\9) or \\\\"
                        ));
                    }
                    None => return Err("ends with a lone \\".into()),
                },
                '$' => with.push_str("$$"),
                c => with.push(c),
            }
        }
        Ok(PathRewrite::RegexReplace {
            pattern: PathRegex(pattern),
            with,
        })
    }

    /// The rewritten path. `matched_prefix` is the rule's PathPrefix value (used only for
    /// `ReplacePrefixMatch`; `None` means the path was not matched by a prefix, so the path is kept).
    pub fn apply(&self, path: &str, matched_prefix: Option<&str>) -> String {
        match self {
            PathRewrite::ReplaceFullPath(p) => p.clone(),
            PathRewrite::RegexReplace { pattern, with } => {
                pattern.0.replace_all(path, with.as_str()).into_owned()
            }
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
    fn regex_rewrite_substitutes_capture_groups_vs_5() {
        // [VS-5] Envoy's `\1` groups; every match is replaced; `$` and `\\` are literal.
        let re = |p: &str| Regex::new(p).unwrap();
        let rows = [
            (
                "^/service/([^/]+)(/.*)$",
                "\\2/instance/\\1",
                "/service/foo/v1/api",
                "/v1/api/instance/foo",
            ),
            ("a", "b", "/banana", "/bbnbnb"),
            ("^/old", "/new", "/old/x", "/new/x"),
            ("^/(.*)$", "/$\\\\\\1", "/p", "/$\\p"),
            ("^/nomatch", "/x", "/keep", "/keep"),
        ];
        for (pattern, rewrite, path, want) in rows {
            let r = PathRewrite::regex_replace(re(pattern), rewrite).unwrap();
            assert_eq!(r.apply(path, None), want, "{pattern} {rewrite} {path}");
        }
        for (pattern, rewrite, why) in [
            ("^/(a)$", "\\2", "capture group the pattern does not have"),
            ("^/a$", "\\q", "is not a capture group"),
            ("^/a$", "x\\", "lone"),
        ] {
            let e = PathRewrite::regex_replace(re(pattern), rewrite).unwrap_err();
            assert!(e.contains(why), "{rewrite}: {e}");
        }
    }

    #[test]
    fn full_path_replaces_everything() {
        let r = PathRewrite::ReplaceFullPath("/one".into());
        assert_eq!(r.apply("/a/b/c", Some("/a")), "/one");
    }
}
