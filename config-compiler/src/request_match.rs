//! The one request matcher: path, method, header and query conditions of a route match ([HR-6], [HR-7]).
//!
//! The request path and `waygate explain` both call [`RequestMatch::check`], so what explain
//! reports is what the proxy does.

use http::{HeaderMap, HeaderName, Method};
use regex::Regex;
use serde::{Serialize, Serializer};
use std::borrow::Cow;

/// What the matcher reads from a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// Method.
    pub method: &'a Method,
    /// Host, normalised (no port, lowercase).
    pub host: &'a str,
    /// Path without the query.
    pub path: &'a str,
    /// Query string without `?`.
    pub query: Option<&'a str>,
    /// Request headers.
    pub headers: &'a HeaderMap,
}

/// A path condition.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", content = "value")]
pub enum PathMatch {
    /// The whole path equals this.
    Exact(String),
    /// Segment-wise prefix; stored as written, compared without a trailing `/`.
    PathPrefix(String),
    /// Full-path regular expression.
    RegularExpression(#[serde(serialize_with = "ser_regex")] Regex),
}

impl PathMatch {
    /// The prefix as used for indexing and comparison: no trailing `/`; `/` becomes empty.
    pub fn prefix_key(value: &str) -> &str {
        value.trim_end_matches('/')
    }

    fn check(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(v) => v == path,
            PathMatch::PathPrefix(v) => {
                let key = Self::prefix_key(v);
                path.starts_with(key) && matches!(path.as_bytes().get(key.len()), None | Some(b'/'))
            }
            PathMatch::RegularExpression(re) => re.is_match(path),
        }
    }
}

/// A value condition: exact or full-string regular expression.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", content = "value")]
pub enum StringMatch {
    /// Equal, case-sensitive.
    Exact(String),
    /// Anchored regular expression.
    RegularExpression(#[serde(serialize_with = "ser_regex")] Regex),
}

impl StringMatch {
    fn check(&self, v: &str) -> bool {
        match self {
            StringMatch::Exact(e) => e == v,
            StringMatch::RegularExpression(re) => re.is_match(v),
        }
    }
}

/// A header condition (name case-insensitive).
#[derive(Debug, Clone, Serialize)]
pub struct HeaderMatch {
    /// Header name.
    #[serde(serialize_with = "ser_header_name")]
    pub name: HeaderName,
    /// Value condition.
    pub value: StringMatch,
}

/// A query-parameter condition (name exact).
#[derive(Debug, Clone, Serialize)]
pub struct QueryMatch {
    /// Parameter name.
    pub name: String,
    /// Value condition.
    pub value: StringMatch,
}

/// One HTTPRoute match: every set field must hold.
#[derive(Debug, Clone, Serialize)]
pub struct RequestMatch {
    /// Path condition.
    pub path: PathMatch,
    /// Method condition.
    #[serde(serialize_with = "ser_method")]
    pub method: Option<Method>,
    /// Header conditions.
    pub headers: Vec<HeaderMatch>,
    /// Query conditions.
    pub query: Vec<QueryMatch>,
}

/// The first condition of a match that a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The path did not match.
    Path,
    /// The method differed.
    Method(String),
    /// A header was absent or had another value.
    Header(String),
    /// A query parameter was absent or had another value.
    Query(String),
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mismatch::Path => write!(f, "path did not match"),
            Mismatch::Method(m) => write!(f, "method is not {m}"),
            Mismatch::Header(h) => write!(f, "header {h} did not match"),
            Mismatch::Query(q) => write!(f, "query parameter {q} did not match"),
        }
    }
}

impl RequestMatch {
    /// Check the request against this match; the error names the first failed condition.
    pub fn check(&self, req: &RequestView<'_>) -> Result<(), Mismatch> {
        if !self.path.check(req.path) {
            return Err(Mismatch::Path);
        }
        if let Some(m) = &self.method
            && m != req.method
        {
            return Err(Mismatch::Method(m.to_string()));
        }
        for h in &self.headers {
            let ok = header_value(req.headers, &h.name).is_some_and(|v| h.value.check(&v));
            if !ok {
                return Err(Mismatch::Header(h.name.to_string()));
            }
        }
        for q in &self.query {
            let ok = query_value(req.query, &q.name).is_some_and(|v| q.value.check(&v));
            if !ok {
                return Err(Mismatch::Query(q.name.clone()));
            }
        }
        Ok(())
    }

    /// The PathPrefix value, for `ReplacePrefixMatch`.
    pub fn matched_prefix(&self) -> Option<&str> {
        match &self.path {
            PathMatch::PathPrefix(p) => Some(p),
            _ => None,
        }
    }
}

/// All values of a header joined with `,` ([HR-7]); borrowed when there is only one.
fn header_value<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<Cow<'a, str>> {
    let mut all = headers.get_all(name).iter();
    let first = all.next()?.to_str().ok()?;
    let mut joined: Option<String> = None;
    for v in all {
        let s = joined.get_or_insert_with(|| first.to_string());
        s.push(',');
        s.push_str(v.to_str().ok()?);
    }
    Some(joined.map_or(Cow::Borrowed(first), Cow::Owned))
}

/// The first value of a query parameter, percent-decoded ([HR-7]).
pub fn query_value<'a>(query: Option<&'a str>, name: &str) -> Option<Cow<'a, str>> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == name).then(|| percent_decode(v))
    })
}

/// Decode `%XX` escapes and `+`; malformed escapes are kept as written.
pub fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// Compile a full-string regular expression.
pub fn anchored_regex(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{pattern})$"))
}

fn ser_regex<S: Serializer>(re: &Regex, s: S) -> Result<S::Ok, S::Error> {
    let p = re.as_str();
    let inner = p
        .strip_prefix("^(?:")
        .and_then(|p| p.strip_suffix(")$"))
        .unwrap_or(p);
    s.serialize_str(inner)
}

fn ser_header_name<S: Serializer>(n: &HeaderName, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(n.as_str())
}

fn ser_method<S: Serializer>(m: &Option<Method>, s: S) -> Result<S::Ok, S::Error> {
    match m {
        Some(m) => s.serialize_str(m.as_str()),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn view<'a>(
        method: &'a Method,
        path: &'a str,
        query: Option<&'a str>,
        headers: &'a HeaderMap,
    ) -> RequestView<'a> {
        RequestView {
            method,
            host: "example.com",
            path,
            query,
            headers,
        }
    }

    fn prefix(p: &str) -> RequestMatch {
        RequestMatch {
            path: PathMatch::PathPrefix(p.into()),
            method: None,
            headers: vec![],
            query: vec![],
        }
    }

    #[test]
    fn path_prefix_is_segment_wise_hr_7() {
        // [HR-7] `/abc` matches `/abc`, `/abc/`, `/abc/x` but not `/abcd`; trailing `/` in value ignored.
        let h = HeaderMap::new();
        let get = Method::GET;
        for (value, path, want) in [
            ("/abc", "/abc", true),
            ("/abc", "/abc/", true),
            ("/abc", "/abc/x", true),
            ("/abc", "/abcd", false),
            ("/abc/", "/abc", true),
            ("/abc/", "/abcd", false),
            ("/", "/anything", true),
            ("/", "/", true),
        ] {
            assert_eq!(
                prefix(value).check(&view(&get, path, None, &h)).is_ok(),
                want,
                "{value} {path}"
            );
        }
    }

    #[test]
    fn exact_and_regex_paths_hr_7() {
        let h = HeaderMap::new();
        let get = Method::GET;
        let exact = RequestMatch {
            path: PathMatch::Exact("/abc".into()),
            ..prefix("/")
        };
        assert!(exact.check(&view(&get, "/abc", None, &h)).is_ok());
        assert_eq!(
            exact.check(&view(&get, "/abc/", None, &h)),
            Err(Mismatch::Path)
        );
        let re = RequestMatch {
            path: PathMatch::RegularExpression(anchored_regex("/v[0-9]+/.*").unwrap()),
            ..prefix("/")
        };
        assert!(re.check(&view(&get, "/v2/x", None, &h)).is_ok());
        assert!(
            re.check(&view(&get, "/x/v2/x", None, &h)).is_err(),
            "regex is anchored"
        );
    }

    #[test]
    fn headers_method_query_report_first_failure() {
        let mut h = HeaderMap::new();
        h.append("version", HeaderValue::from_static("one"));
        h.append("multi", HeaderValue::from_static("a"));
        h.append("multi", HeaderValue::from_static("b"));
        let m = RequestMatch {
            path: PathMatch::PathPrefix("/".into()),
            method: Some(Method::POST),
            headers: vec![
                HeaderMatch {
                    name: HeaderName::from_static("version"),
                    value: StringMatch::Exact("one".into()),
                },
                HeaderMatch {
                    name: HeaderName::from_static("multi"),
                    value: StringMatch::Exact("a,b".into()),
                },
            ],
            query: vec![QueryMatch {
                name: "animal".into(),
                value: StringMatch::Exact("whale shark".into()),
            }],
        };
        let post = Method::POST;
        assert_eq!(
            m.check(&view(&Method::GET, "/", None, &h)),
            Err(Mismatch::Method("POST".into()))
        );
        assert_eq!(
            m.check(&view(&post, "/", Some("animal=dolphin"), &h)),
            Err(Mismatch::Query("animal".into()))
        );
        assert!(
            m.check(&view(
                &post,
                "/",
                Some("x=1&animal=whale%20shark&animal=no"),
                &h
            ))
            .is_ok()
        );
        let mut other = h.clone();
        other.insert("version", HeaderValue::from_static("two"));
        assert_eq!(
            m.check(&view(&post, "/", Some("animal=whale+shark"), &other)),
            Err(Mismatch::Header("version".into()))
        );
    }

    #[test]
    fn percent_decoding_keeps_malformed_escapes() {
        assert_eq!(percent_decode("a%2Fb"), "a/b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
