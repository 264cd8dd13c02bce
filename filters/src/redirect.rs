//! `RequestRedirect`: builds the `Location` and status of a local redirect reply ([HF-2]).

use crate::PathRewrite;
use serde::Serialize;

/// A compiled `RequestRedirect` filter.
#[derive(Debug, Clone, Serialize)]
pub struct Redirect {
    /// New scheme; `None` keeps the request's.
    pub scheme: Option<String>,
    /// New hostname; `None` keeps the request's Host without its port.
    pub hostname: Option<String>,
    /// New port; `None` derives it (see `derive_port`).
    pub port: Option<u16>,
    /// [VS-6] How an unset `port` is derived; `None` is Gateway API's rule: the scheme's
    /// default port when `scheme` is set, else the listener's port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub derive_port: Option<DerivePort>,
    /// New path; `None` keeps the request's path.
    pub path: Option<PathRewrite>,
    /// 301, 302 (default), 303, 307 or 308.
    pub status: u16,
}

/// [VS-6] Istio's `derivePort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DerivePort {
    /// 80 for `http`, 443 for `https` (so the Location carries no port).
    FromProtocolDefault,
    /// The port the request came in on.
    FromRequestPort,
}

/// What a redirect reads from the request.
#[derive(Debug, Clone, Copy)]
pub struct RedirectInput<'a> {
    /// `http` or `https`: how the request reached us.
    pub scheme: &'a str,
    /// Host header without its port.
    pub host: &'a str,
    /// The port of the listener (as configured on the Gateway) that took the request.
    pub listener_port: u16,
    /// Request path without the query.
    pub path: &'a str,
    /// The query string without `?`, if any.
    pub query: Option<&'a str>,
    /// The PathPrefix value that matched, for `ReplacePrefixMatch`.
    pub matched_prefix: Option<&'a str>,
}

impl Redirect {
    /// The `Location` header value for this request.
    pub fn location(&self, req: &RedirectInput<'_>) -> String {
        let scheme = self.scheme.as_deref().unwrap_or(req.scheme);
        let host = self.hostname.as_deref().unwrap_or(req.host);
        let protocol_default = if scheme == "https" { 443 } else { 80 };
        let port = match (self.port, self.derive_port, self.scheme.as_deref()) {
            (Some(p), _, _) => p,
            (None, Some(DerivePort::FromProtocolDefault), _) => protocol_default,
            (None, Some(DerivePort::FromRequestPort), _) => req.listener_port,
            (None, None, Some("http")) => 80,
            (None, None, Some("https")) => 443,
            (None, None, _) => req.listener_port,
        };
        let default_port = matches!((scheme, port), ("http", 80) | ("https", 443));
        let path = match &self.path {
            Some(rewrite) => rewrite.apply(req.path, req.matched_prefix),
            None => req.path.to_string(),
        };
        let mut out = String::with_capacity(scheme.len() + host.len() + path.len() + 16);
        out.push_str(scheme);
        out.push_str("://");
        out.push_str(host);
        if !default_port {
            out.push(':');
            out.push_str(&port.to_string());
        }
        out.push_str(&path);
        if let Some(q) = req.query {
            out.push('?');
            out.push_str(q);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(path: &'static str) -> RedirectInput<'static> {
        RedirectInput {
            scheme: "http",
            host: "example.com",
            listener_port: 80,
            path,
            query: None,
            matched_prefix: Some("/old"),
        }
    }

    fn redirect() -> Redirect {
        Redirect {
            scheme: None,
            hostname: None,
            port: None,
            derive_port: None,
            path: None,
            status: 302,
        }
    }

    #[test]
    fn hostname_only_keeps_scheme_path_and_listener_port() {
        // [HF-2] default scheme is the request's; port defaults to the listener's, omitted for http:80.
        let r = Redirect {
            hostname: Some("example.org".into()),
            ..redirect()
        };
        assert_eq!(r.location(&input("/a/b")), "http://example.org/a/b");
        let on_8080 = RedirectInput {
            listener_port: 8080,
            ..input("/a")
        };
        assert_eq!(r.location(&on_8080), "http://example.org:8080/a");
    }

    #[test]
    fn scheme_sets_well_known_port() {
        // [HF-2] scheme given and port unset → 443 for https, omitted from Location.
        let r = Redirect {
            scheme: Some("https".into()),
            ..redirect()
        };
        let on_8080 = RedirectInput {
            listener_port: 8080,
            ..input("/a")
        };
        assert_eq!(r.location(&on_8080), "https://example.com/a");
        let r = Redirect {
            scheme: Some("https".into()),
            port: Some(8443),
            ..redirect()
        };
        assert_eq!(r.location(&input("/a")), "https://example.com:8443/a");
    }

    #[test]
    fn derive_port_from_protocol_default_or_request_port_vs_6() {
        // [VS-6] FROM_PROTOCOL_DEFAULT: the (new) scheme's default port, left out of the
        // Location; FROM_REQUEST_PORT: the port the request came in on, even across schemes.
        let on_8080 = RedirectInput {
            listener_port: 8080,
            ..input("/a")
        };
        let default = Redirect {
            derive_port: Some(DerivePort::FromProtocolDefault),
            ..redirect()
        };
        assert_eq!(default.location(&on_8080), "http://example.com/a");
        let request = Redirect {
            scheme: Some("https".into()),
            derive_port: Some(DerivePort::FromRequestPort),
            ..redirect()
        };
        assert_eq!(request.location(&on_8080), "https://example.com:8080/a");
        let https_on_443 = RedirectInput {
            scheme: "https",
            listener_port: 443,
            ..input("/a")
        };
        assert_eq!(request.location(&https_on_443), "https://example.com/a");
        assert_eq!(default.location(&https_on_443), "https://example.com/a");
    }

    #[test]
    fn path_and_query() {
        // [HF-2] query string is kept; path modifiers apply.
        let r = Redirect {
            path: Some(PathRewrite::ReplacePrefixMatch("/new".into())),
            ..redirect()
        };
        let req = RedirectInput {
            query: Some("a=1"),
            ..input("/old/x")
        };
        assert_eq!(r.location(&req), "http://example.com/new/x?a=1");
    }
}
