//! The one request matcher: path, method, header and query conditions of a route match ([HR-6],
//! [HR-7]), plus the VirtualService-only scheme and source-namespace conditions ([VS-3]).
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
    /// `http` or `https`: how the request reached the proxy (or its mesh sender).
    pub scheme: &'a str,
    /// The caller's namespace from its verified mesh identity (at a waypoint), if any.
    pub source_namespace: Option<&'a str>,
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
    /// [VS-3] Istio's `prefix`: compares characters, so `/foo` matches `/foobar`.
    CharPrefix(String),
}

impl PathMatch {
    /// The prefix as used for indexing and comparison: no trailing `/`; `/` becomes empty.
    pub fn prefix_key(value: &str) -> &str {
        value.trim_end_matches('/')
    }

    /// Whether a request path satisfies it.
    pub(crate) fn check(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(v) => v == path,
            PathMatch::PathPrefix(v) => {
                let key = Self::prefix_key(v);
                path.starts_with(key) && matches!(path.as_bytes().get(key.len()), None | Some(b'/'))
            }
            PathMatch::RegularExpression(re) => re.is_match(path),
            PathMatch::CharPrefix(p) => path.starts_with(p.as_str()),
        }
    }
}

/// A value condition: exact, prefix or full-string regular expression.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", content = "value")]
pub enum StringMatch {
    /// Equal, case-sensitive.
    Exact(String),
    /// Anchored regular expression.
    RegularExpression(#[serde(serialize_with = "ser_regex")] Regex),
    /// Starts with, case-sensitive (Istio's `prefix`; no regex needed).
    Prefix(String),
}

impl StringMatch {
    fn check(&self, v: &str) -> bool {
        match self {
            StringMatch::Exact(e) => e == v,
            StringMatch::RegularExpression(re) => re.is_match(v),
            StringMatch::Prefix(p) => v.starts_with(p.as_str()),
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
    /// [VS-3] `withoutHeaders`: holds only when the header is absent or fails `value`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub invert: bool,
}

impl HeaderMatch {
    /// A plain (not negated) header condition.
    pub fn new(name: HeaderName, value: StringMatch) -> Self {
        Self {
            name,
            value,
            invert: false,
        }
    }

    fn check(&self, headers: &HeaderMap) -> bool {
        let matched = header_value(headers, &self.name).is_some_and(|v| self.value.check(&v));
        matched != self.invert
    }
}

/// A method condition: exact (HTTPRoute, and the common VirtualService case) or a full-string
/// regular expression (a VirtualService `prefix` or `regex`).
#[derive(Debug, Clone)]
pub enum MethodMatch {
    /// Equal.
    Exact(Method),
    /// Anchored regular expression over the method name.
    RegularExpression(Regex),
}

impl MethodMatch {
    fn check(&self, m: &Method) -> bool {
        match self {
            MethodMatch::Exact(e) => e == m,
            MethodMatch::RegularExpression(re) => re.is_match(m.as_str()),
        }
    }
}

impl std::fmt::Display for MethodMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MethodMatch::Exact(m) => write!(f, "{m}"),
            MethodMatch::RegularExpression(re) => write!(f, "one matching {}", regex_source(re)),
        }
    }
}

impl Serialize for MethodMatch {
    // An exact method prints as before (`"GET"`), so HTTPRoute dumps are unchanged.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            MethodMatch::Exact(m) => s.serialize_str(m.as_str()),
            MethodMatch::RegularExpression(re) => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("regex", regex_source(re))?;
                map.end()
            }
        }
    }
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
    pub method: Option<MethodMatch>,
    /// Header conditions.
    pub headers: Vec<HeaderMatch>,
    /// Query conditions.
    pub query: Vec<QueryMatch>,
    /// [VS-3] Scheme condition (`http`/`https`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<StringMatch>,
    /// [VS-3] At a waypoint: the namespace the caller's verified identity must be in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_namespace: Option<String>,
}

impl RequestMatch {
    /// A match on `path` alone.
    pub fn path(path: PathMatch) -> Self {
        Self {
            path,
            method: None,
            headers: Vec::new(),
            query: Vec::new(),
            scheme: None,
            source_namespace: None,
        }
    }
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
    /// A header that must be absent or differ (`withoutHeaders`) was present and matched.
    HeaderPresent(String),
    /// A query parameter was absent or had another value.
    Query(String),
    /// The scheme did not match.
    Scheme,
    /// The caller's namespace is not this one (or the caller has no mesh identity).
    SourceNamespace(String),
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mismatch::Path => write!(f, "path did not match"),
            Mismatch::Method(m) => write!(f, "method is not {m}"),
            Mismatch::Header(h) => write!(f, "header {h} did not match"),
            Mismatch::HeaderPresent(h) => {
                write!(f, "header {h} matched a withoutHeaders condition")
            }
            Mismatch::Query(q) => write!(f, "query parameter {q} did not match"),
            Mismatch::Scheme => write!(f, "scheme did not match"),
            Mismatch::SourceNamespace(ns) => write!(f, "caller is not in namespace {ns}"),
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
            && !m.check(req.method)
        {
            return Err(Mismatch::Method(m.to_string()));
        }
        if let Some(s) = &self.scheme
            && !s.check(req.scheme)
        {
            return Err(Mismatch::Scheme);
        }
        for h in &self.headers {
            if !h.check(req.headers) {
                let name = h.name.to_string();
                return Err(if h.invert {
                    Mismatch::HeaderPresent(name)
                } else {
                    Mismatch::Header(name)
                });
            }
        }
        for q in &self.query {
            let ok = query_value(req.query, &q.name).is_some_and(|v| q.value.check(&v));
            if !ok {
                return Err(Mismatch::Query(q.name.clone()));
            }
        }
        if let Some(ns) = &self.source_namespace
            && req.source_namespace != Some(ns.as_str())
        {
            return Err(Mismatch::SourceNamespace(ns.clone()));
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

/// The pattern as written, without the anchoring [`anchored_regex`] added.
fn regex_source(re: &Regex) -> &str {
    let p = re.as_str();
    p.strip_prefix("^(?:")
        .and_then(|p| p.strip_suffix(")$"))
        .unwrap_or(p)
}

fn ser_regex<S: Serializer>(re: &Regex, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(regex_source(re))
}

fn ser_header_name<S: Serializer>(n: &HeaderName, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(n.as_str())
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
            scheme: "http",
            source_namespace: None,
        }
    }

    fn prefix(p: &str) -> RequestMatch {
        RequestMatch::path(PathMatch::PathPrefix(p.into()))
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
            method: Some(MethodMatch::Exact(Method::POST)),
            headers: vec![
                HeaderMatch::new(
                    HeaderName::from_static("version"),
                    StringMatch::Exact("one".into()),
                ),
                HeaderMatch::new(
                    HeaderName::from_static("multi"),
                    StringMatch::Exact("a,b".into()),
                ),
            ],
            query: vec![QueryMatch {
                name: "animal".into(),
                value: StringMatch::Exact("whale shark".into()),
            }],
            ..prefix("/")
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
    fn without_headers_hold_when_absent_or_different_vs_3() {
        // [VS-3] `withoutHeaders`: the match fails only when the header is there and matches;
        // `{}` (any value) therefore means "must be absent".
        let get = Method::GET;
        let negated = |value| RequestMatch {
            headers: vec![HeaderMatch {
                invert: true,
                ..HeaderMatch::new(HeaderName::from_static("x-canary"), value)
            }],
            ..prefix("/")
        };
        let exact = negated(StringMatch::Exact("yes".into()));
        let absent = negated(StringMatch::RegularExpression(
            anchored_regex(".*").unwrap(),
        ));
        let none = HeaderMap::new();
        let mut yes = HeaderMap::new();
        yes.insert("x-canary", HeaderValue::from_static("yes"));
        let mut no = HeaderMap::new();
        no.insert("x-canary", HeaderValue::from_static("no"));
        for (m, h, want) in [
            (&exact, &none, true),
            (&exact, &no, true),
            (&exact, &yes, false),
            (&absent, &none, true),
            (&absent, &no, false),
        ] {
            assert_eq!(m.check(&view(&get, "/", None, h)).is_ok(), want);
        }
        assert_eq!(
            exact.check(&view(&get, "/", None, &yes)),
            Err(Mismatch::HeaderPresent("x-canary".into()))
        );
        let dumped = serde_json::to_value(&exact.headers[0]).unwrap();
        assert_eq!(dumped["invert"], true);
        let plain = serde_json::to_value(HeaderMatch::new(
            HeaderName::from_static("x"),
            StringMatch::Exact("1".into()),
        ))
        .unwrap();
        assert!(
            plain.get("invert").is_none(),
            "HTTPRoute dumps are unchanged"
        );
    }

    #[test]
    fn method_regex_scheme_and_source_namespace_vs_3() {
        let h = HeaderMap::new();
        let m = RequestMatch {
            method: Some(MethodMatch::RegularExpression(
                anchored_regex("P.*").unwrap(),
            )),
            scheme: Some(StringMatch::Exact("https".into())),
            source_namespace: Some("shop".into()),
            ..prefix("/")
        };
        let https_from = |method: &'static Method, ns: Option<&'static str>| RequestView {
            scheme: "https",
            source_namespace: ns,
            ..view(method, "/", None, &h)
        };
        assert!(m.check(&https_from(&Method::PUT, Some("shop"))).is_ok());
        assert!(m.check(&https_from(&Method::POST, Some("shop"))).is_ok());
        assert_eq!(
            m.check(&https_from(&Method::GET, Some("shop"))),
            Err(Mismatch::Method("one matching P.*".into()))
        );
        assert_eq!(
            m.check(&view(&Method::PUT, "/", None, &h)),
            Err(Mismatch::Scheme)
        );
        assert_eq!(
            m.check(&https_from(&Method::PUT, Some("other"))),
            Err(Mismatch::SourceNamespace("shop".into()))
        );
        assert!(m.check(&https_from(&Method::PUT, None)).is_err());
        assert_eq!(
            serde_json::to_value(&m.method).unwrap(),
            serde_json::json!({"regex": "P.*"})
        );
        assert_eq!(
            serde_json::to_value(Some(MethodMatch::Exact(Method::GET))).unwrap(),
            "GET"
        );
    }

    #[test]
    fn percent_decoding_keeps_malformed_escapes() {
        assert_eq!(percent_decode("a%2Fb"), "a/b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
