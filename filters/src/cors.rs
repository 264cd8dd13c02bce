//! `CORS` ([HF-5]): which origins may read responses, the preflight answer, and the headers
//! added to actual responses.

use http::{HeaderName, HeaderValue};
use serde::{Serialize, Serializer};

/// The default `Access-Control-Max-Age` in seconds.
pub const DEFAULT_MAX_AGE: u32 = 5;

/// Why a CORS filter could not be compiled.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CorsError {
    /// An origin that is not `*` or `scheme://host[:port]`.
    #[error("invalid CORS origin {0:?}")]
    Origin(String),
    /// An invalid method name.
    #[error("invalid CORS method {0:?}")]
    Method(String),
    /// An invalid header name.
    #[error("invalid CORS header name {0:?}")]
    Header(String),
    /// `*` listed together with other values.
    #[error("{0} cannot contain '*' alongside other values")]
    WildcardWithOthers(&'static str),
    /// A negative max age.
    #[error("CORS maxAge {0} is negative")]
    MaxAge(i64),
    /// An origin regex that does not compile.
    #[error("invalid CORS origin regex {0:?}: {1}")]
    Regex(String, String),
}

/// An Istio `allowOrigins` entry: compared with the whole `Origin` header as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginMatch {
    /// The origin is exactly this (`*` allows any).
    Exact(String),
    /// The origin starts with this.
    Prefix(String),
    /// The whole origin matches this RE2-style expression.
    Regex(String),
}

/// A compiled whole-string origin regex (compared by its pattern).
#[derive(Debug, Clone)]
struct OriginRegex(regex::Regex);

impl PartialEq for OriginRegex {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for OriginRegex {}

/// One `allowOrigins` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OriginPattern {
    /// `*`: any origin.
    Any,
    /// `scheme://host:port`, the host possibly starting with `*` (any labels to its left).
    Host {
        scheme: String,
        /// Exact host, or the part after a leading `*` (e.g. `.bar.com`); empty with `wildcard`
        /// means any host.
        host: String,
        wildcard: bool,
        port: u16,
    },
    /// Istio's `exact`: the header as sent.
    Exact(String),
    /// Istio's `prefix`.
    Prefix(String),
    /// Istio's `regex`, anchored at both ends.
    Regex(OriginRegex),
}

/// An origin split into (scheme, lowercase host, port with the scheme's default).
fn split_origin(origin: &str) -> Option<(String, String, u16)> {
    let (scheme, rest) = origin.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
        return None;
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (h, p.parse::<u16>().ok().filter(|&p| p > 0)?),
        _ => (rest, default_port),
    };
    if host.is_empty() {
        return None;
    }
    Some((scheme, host.to_ascii_lowercase(), port))
}

impl OriginPattern {
    fn parse(text: &str) -> Result<Self, CorsError> {
        if text == "*" {
            return Ok(Self::Any);
        }
        let bad = || CorsError::Origin(text.to_string());
        let (scheme, host, port) = split_origin(text).ok_or_else(bad)?;
        let (host, wildcard) = match host.strip_prefix('*') {
            Some(rest) => (rest.to_string(), true),
            None => (host, false),
        };
        if host.contains('*') {
            return Err(bad());
        }
        Ok(Self::Host {
            scheme,
            host,
            wildcard,
            port,
        })
    }

    fn from_istio(m: &OriginMatch) -> Result<Self, CorsError> {
        Ok(match m {
            // Envoy treats a matcher that accepts `*` as "any origin".
            OriginMatch::Exact(e) if e == "*" => Self::Any,
            OriginMatch::Exact(e) => Self::Exact(e.clone()),
            OriginMatch::Prefix(p) => Self::Prefix(p.clone()),
            OriginMatch::Regex(r) => Self::Regex(OriginRegex(
                regex::Regex::new(&format!("^(?:{r})$"))
                    .map_err(|e| CorsError::Regex(r.clone(), e.to_string()))?,
            )),
        })
    }

    fn matches_raw(&self, origin: &str) -> Option<bool> {
        match self {
            Self::Exact(e) => Some(e == origin),
            Self::Prefix(p) => Some(origin.starts_with(p.as_str())),
            Self::Regex(r) => Some(r.0.is_match(origin)),
            _ => None,
        }
    }

    fn matches(&self, origin: &(String, String, u16)) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(_) | Self::Prefix(_) | Self::Regex(_) => false,
            Self::Host {
                scheme,
                host,
                wildcard,
                port,
            } => {
                let (o_scheme, o_host, o_port) = origin;
                if scheme != o_scheme || port != o_port {
                    return false;
                }
                if *wildcard {
                    o_host.len() > host.len() && o_host.ends_with(host.as_str())
                } else {
                    o_host == host
                }
            }
        }
    }
}

impl std::fmt::Display for OriginPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Host {
                scheme,
                host,
                wildcard,
                port,
            } => {
                let star = if *wildcard { "*" } else { "" };
                write!(f, "{scheme}://{star}{host}:{port}")
            }
            Self::Exact(e) => write!(f, "exact:{e}"),
            Self::Prefix(p) => write!(f, "prefix:{p}"),
            Self::Regex(r) => write!(f, "regex:{}", r.0.as_str()),
        }
    }
}

/// A list that is either explicit values or the wildcard `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Allowed {
    Any,
    List(Vec<String>),
}

impl Allowed {
    fn parse(
        what: &'static str,
        values: &[String],
        check: impl Fn(&str) -> Option<CorsError>,
    ) -> Result<Self, CorsError> {
        if values.iter().any(|v| v == "*") {
            return if values.len() == 1 {
                Ok(Self::Any)
            } else {
                Err(CorsError::WildcardWithOthers(what))
            };
        }
        if let Some(e) = values.iter().find_map(|v| check(v)) {
            return Err(e);
        }
        Ok(Self::List(values.to_vec()))
    }

    /// The header value: the list joined, `*`, or — when credentials forbid `*` — what the
    /// request asked for. `None` means omit the header.
    fn header_value(&self, credentials: bool, requested: Option<&str>) -> Option<HeaderValue> {
        match self {
            Self::List(v) if v.is_empty() => None,
            Self::List(v) => HeaderValue::from_str(&v.join(", ")).ok(),
            Self::Any if credentials => requested
                .filter(|r| !r.trim().is_empty())
                .and_then(|r| HeaderValue::from_str(r).ok()),
            Self::Any => Some(HeaderValue::from_static("*")),
        }
    }
}

/// A compiled `CORS` filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cors {
    #[serde(serialize_with = "ser_origins")]
    allow_origins: Vec<OriginPattern>,
    #[serde(serialize_with = "ser_allowed")]
    allow_methods: Allowed,
    #[serde(serialize_with = "ser_allowed")]
    allow_headers: Allowed,
    expose_headers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_age: Option<u32>,
    allow_credentials: bool,
    /// Istio's `unmatchedPreflights: FORWARD`: a preflight from an origin not allowed goes on
    /// to the backend instead of being answered here.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    forward_unmatched_preflights: bool,
}

/// The settings of a `CORS` filter as written.
#[derive(Debug, Clone, Default)]
pub struct CorsSettings<'a> {
    /// `allowOrigins`.
    pub allow_origins: &'a [String],
    /// `allowMethods`.
    pub allow_methods: &'a [String],
    /// `allowHeaders`.
    pub allow_headers: &'a [String],
    /// `exposeHeaders`.
    pub expose_headers: &'a [String],
    /// `maxAge` in seconds; default 5.
    pub max_age: Option<i64>,
    /// `allowCredentials`.
    pub allow_credentials: bool,
    /// Istio's `allowOrigins` (string matches on the whole header), beside `allow_origins`.
    pub origin_matches: &'a [OriginMatch],
    /// Istio's `unmatchedPreflights: FORWARD`.
    pub forward_unmatched_preflights: bool,
    /// Envoy (Istio): no `Access-Control-Max-Age` unless `max_age` is set, instead of the
    /// Gateway API default of 5 s.
    pub no_default_max_age: bool,
}

/// Response headers CORS adds.
pub type CorsHeaders = Vec<(HeaderName, HeaderValue)>;

const ALLOW_ORIGIN: HeaderName = HeaderName::from_static("access-control-allow-origin");
const ALLOW_CREDENTIALS: HeaderName = HeaderName::from_static("access-control-allow-credentials");
const ALLOW_METHODS: HeaderName = HeaderName::from_static("access-control-allow-methods");
const ALLOW_HEADERS: HeaderName = HeaderName::from_static("access-control-allow-headers");
const EXPOSE_HEADERS: HeaderName = HeaderName::from_static("access-control-expose-headers");
const MAX_AGE: HeaderName = HeaderName::from_static("access-control-max-age");

fn header_name_error(name: &str) -> Option<CorsError> {
    HeaderName::from_bytes(name.as_bytes())
        .is_err()
        .then(|| CorsError::Header(name.to_string()))
}

impl Cors {
    /// Compile and validate.
    pub fn new(s: &CorsSettings<'_>) -> Result<Self, CorsError> {
        if s.allow_origins.len() > 1 && s.allow_origins.iter().any(|o| o == "*") {
            return Err(CorsError::WildcardWithOthers("allowOrigins"));
        }
        let allow_origins = s
            .allow_origins
            .iter()
            .map(|o| OriginPattern::parse(o))
            .chain(s.origin_matches.iter().map(OriginPattern::from_istio))
            .collect::<Result<_, _>>()?;
        let allow_methods = Allowed::parse("allowMethods", s.allow_methods, |m| {
            http::Method::from_bytes(m.as_bytes())
                .is_err()
                .then(|| CorsError::Method(m.to_string()))
        })?;
        let allow_headers = Allowed::parse("allowHeaders", s.allow_headers, header_name_error)?;
        if let Some(e) = s.expose_headers.iter().find_map(|h| header_name_error(h)) {
            return Err(e);
        }
        let max_age = match s.max_age {
            None if s.no_default_max_age => None,
            None => Some(DEFAULT_MAX_AGE),
            Some(a) => Some(u32::try_from(a).map_err(|_| CorsError::MaxAge(a))?),
        };
        Ok(Self {
            allow_origins,
            allow_methods,
            allow_headers,
            expose_headers: s.expose_headers.to_vec(),
            max_age,
            allow_credentials: s.allow_credentials,
            forward_unmatched_preflights: s.forward_unmatched_preflights,
        })
    }

    /// Whether a preflight from an origin that is not allowed goes on to the backend.
    pub fn forwards_unmatched_preflights(&self) -> bool {
        self.forward_unmatched_preflights
    }

    /// Whether responses may be shared with this `Origin`.
    pub fn allows_origin(&self, origin: &str) -> bool {
        if self
            .allow_origins
            .iter()
            .any(|p| p.matches_raw(origin) == Some(true))
        {
            return true;
        }
        let Some(parsed) = split_origin(origin) else {
            return self.allow_origins.contains(&OriginPattern::Any);
        };
        self.allow_origins.iter().any(|p| p.matches(&parsed))
    }

    /// The headers answering a preflight (`OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`), or `None` when the origin is not allowed (the preflight
    /// is then answered without CORS headers, which makes the browser refuse the request).
    pub fn preflight(
        &self,
        origin: &HeaderValue,
        request_method: Option<&str>,
        request_headers: Option<&str>,
    ) -> Option<CorsHeaders> {
        let mut out = self.origin_headers(origin)?;
        let credentials = self.allow_credentials;
        if let Some(v) = self.allow_methods.header_value(credentials, request_method) {
            out.push((ALLOW_METHODS, v));
        }
        if let Some(v) = self
            .allow_headers
            .header_value(credentials, request_headers)
        {
            out.push((ALLOW_HEADERS, v));
        }
        if let Some(age) = self.max_age {
            out.push((MAX_AGE, HeaderValue::from(age)));
        }
        Some(out)
    }

    /// Headers for the response to an actual (non-preflight) request from `origin`; `None`
    /// when the origin is not allowed.
    pub fn response_headers(&self, origin: &HeaderValue) -> Option<CorsHeaders> {
        self.origin_headers(origin)
    }

    /// Allow-Origin (always the request's own origin, so it is valid with credentials too),
    /// Allow-Credentials and Expose-Headers.
    fn origin_headers(&self, origin: &HeaderValue) -> Option<CorsHeaders> {
        if !self.allows_origin(origin.to_str().ok()?) {
            return None;
        }
        let mut out = Vec::with_capacity(6);
        out.push((ALLOW_ORIGIN, origin.clone()));
        if self.allow_credentials {
            out.push((ALLOW_CREDENTIALS, HeaderValue::from_static("true")));
        }
        if !self.expose_headers.is_empty()
            && let Ok(v) = HeaderValue::from_str(&self.expose_headers.join(", "))
        {
            out.push((EXPOSE_HEADERS, v));
        }
        Some(out)
    }
}

fn ser_origins<S: Serializer>(o: &[OriginPattern], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(o.iter().map(ToString::to_string))
}

fn ser_allowed<S: Serializer>(a: &Allowed, s: S) -> Result<S::Ok, S::Error> {
    match a {
        Allowed::Any => s.collect_seq(["*"]),
        Allowed::List(v) => s.collect_seq(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn get<'a>(h: &'a CorsHeaders, name: &str) -> Option<&'a str> {
        h.iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.to_str().ok())
    }

    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn istio_origin_matches_compare_the_whole_header() {
        let m = [
            OriginMatch::Exact("https://a.example".into()),
            OriginMatch::Prefix("http://localhost:".into()),
            OriginMatch::Regex("https://[a-z]+\\.b\\.example".into()),
        ];
        let c = Cors::new(&CorsSettings {
            origin_matches: &m,
            ..Default::default()
        })
        .unwrap();
        for (origin, want) in [
            ("https://a.example", true),
            ("https://a.example:443", false),
            ("http://localhost:3000", true),
            ("https://www.b.example", true),
            ("https://www.b.example.evil", false),
            ("https://x.b.example:8443", false),
        ] {
            assert_eq!(c.allows_origin(origin), want, "{origin}");
        }
        let any = Cors::new(&CorsSettings {
            origin_matches: &[OriginMatch::Exact("*".into())],
            no_default_max_age: true,
            ..Default::default()
        })
        .unwrap();
        assert!(any.allows_origin("https://anything.example"));
        // Envoy sends no Access-Control-Max-Age when maxAge is unset.
        let h = any
            .preflight(&hv("https://anything.example"), Some("GET"), None)
            .unwrap();
        assert_eq!(get(&h, "access-control-max-age"), None);
        let bad = Cors::new(&CorsSettings {
            origin_matches: &[OriginMatch::Regex("(".into())],
            ..Default::default()
        });
        assert!(matches!(bad, Err(CorsError::Regex(..))));
    }

    #[test]
    fn origins_exact_wildcard_and_default_ports_hf_5() {
        // [HF-5] exact origins, `*.bar.com` (any labels to the left), `*` for all; ports default
        // by scheme.
        let origins = strings(&[
            "https://www.foo.com",
            "https://*.bar.com",
            "http://x.io:8080",
        ]);
        let c = Cors::new(&CorsSettings {
            allow_origins: &origins,
            ..Default::default()
        })
        .unwrap();
        for (origin, want) in [
            ("https://www.foo.com", true),
            ("https://www.foo.com:443", true),
            ("HTTPS://WWW.FOO.COM", true),
            ("http://www.foo.com", false),
            ("https://www.foo.com:8443", false),
            ("https://www.bar.com", true),
            ("https://xpto.www.bar.com", true),
            ("https://bar.com", false),
            ("https://foobar.com", false),
            ("http://x.io:8080", true),
            ("http://x.io", false),
            ("null", false),
            ("garbage", false),
        ] {
            assert_eq!(c.allows_origin(origin), want, "{origin}");
        }
        let any = strings(&["*"]);
        let c = Cors::new(&CorsSettings {
            allow_origins: &any,
            ..Default::default()
        })
        .unwrap();
        assert!(c.allows_origin("https://foobar.com:12345"));
    }

    #[test]
    fn preflight_headers_with_credentials_hf_5() {
        // [HF-5] echo an allowed Origin; lists joined; expose headers; max age.
        let c = Cors::new(&CorsSettings {
            allow_origins: &strings(&["https://www.foo.com"]),
            allow_methods: &strings(&["GET", "OPTIONS"]),
            allow_headers: &strings(&["x-header-1", "x-header-2"]),
            expose_headers: &strings(&["x-header-3", "x-header-4"]),
            max_age: Some(3600),
            allow_credentials: true,
            ..Default::default()
        })
        .unwrap();
        let h = c
            .preflight(&hv("https://www.foo.com"), Some("GET"), Some("x-header-1"))
            .unwrap();
        assert_eq!(
            get(&h, "access-control-allow-origin"),
            Some("https://www.foo.com")
        );
        assert_eq!(
            get(&h, "access-control-allow-methods"),
            Some("GET, OPTIONS")
        );
        assert_eq!(
            get(&h, "access-control-allow-headers"),
            Some("x-header-1, x-header-2")
        );
        assert_eq!(
            get(&h, "access-control-expose-headers"),
            Some("x-header-3, x-header-4")
        );
        assert_eq!(get(&h, "access-control-max-age"), Some("3600"));
        assert_eq!(get(&h, "access-control-allow-credentials"), Some("true"));
        assert!(
            c.preflight(&hv("https://foobar.com"), Some("GET"), None)
                .is_none()
        );
        assert!(c.response_headers(&hv("https://foobar.com")).is_none());
    }

    #[test]
    fn wildcards_never_answer_star_with_credentials_hf_5() {
        // [HF-5] with credentials, `*` methods/headers echo what the request asked for.
        let any = strings(&["*"]);
        let creds = Cors::new(&CorsSettings {
            allow_origins: &any,
            allow_methods: &any,
            allow_headers: &any,
            allow_credentials: true,
            ..Default::default()
        })
        .unwrap();
        let h = creds
            .preflight(&hv("https://other.foo.com"), Some("PUT"), Some("x-a, x-b"))
            .unwrap();
        assert_eq!(
            get(&h, "access-control-allow-origin"),
            Some("https://other.foo.com")
        );
        assert_eq!(get(&h, "access-control-allow-methods"), Some("PUT"));
        assert_eq!(get(&h, "access-control-allow-headers"), Some("x-a, x-b"));
        assert_eq!(
            get(&h, "access-control-max-age"),
            Some("5"),
            "default max age"
        );
        let h = creds
            .preflight(&hv("https://other.foo.com"), Some("PUT"), None)
            .unwrap();
        assert_eq!(get(&h, "access-control-allow-headers"), None);

        let open = Cors::new(&CorsSettings {
            allow_origins: &any,
            allow_methods: &any,
            allow_headers: &any,
            ..Default::default()
        })
        .unwrap();
        let h = open
            .preflight(&hv("https://foobar.com"), Some("PUT"), Some("x-a"))
            .unwrap();
        assert_eq!(get(&h, "access-control-allow-methods"), Some("*"));
        assert_eq!(get(&h, "access-control-allow-headers"), Some("*"));
        assert_eq!(get(&h, "access-control-allow-credentials"), None);
        assert_eq!(
            get(&h, "access-control-allow-origin"),
            Some("https://foobar.com")
        );
    }

    #[test]
    fn rejects_invalid_settings() {
        let bad = |o: &[&str], m: &[&str], h: &[&str]| {
            Cors::new(&CorsSettings {
                allow_origins: &strings(o),
                allow_methods: &strings(m),
                allow_headers: &strings(h),
                ..Default::default()
            })
            .is_err()
        };
        assert!(bad(&["www.foo.com"], &[], &[]));
        assert!(bad(&["ftp://foo.com"], &[], &[]));
        assert!(bad(&["https://foo.*.com"], &[], &[]));
        assert!(bad(&["*", "https://a.io"], &[], &[]));
        assert!(bad(&[], &["*", "GET"], &[]));
        assert!(bad(&[], &["G ET"], &[]));
        assert!(bad(&[], &[], &["bad header"]));
        assert!(!bad(
            &["https://*.a.io", "http://b.io:81"],
            &["GET"],
            &["x-y"]
        ));
    }
}
