//! VirtualService `match[]` entries ([VS-3]) as the shared [`RequestMatch`]: `uri`, `scheme`,
//! `method`, `authority`, `headers`, `withoutHeaders` and `queryParams` become runtime
//! conditions; `port`, `gateways` and `sourceNamespace` choose where an entry applies (in
//! `virtual_services::entries_for`).

use crate::request_match::{
    HeaderMatch, MethodMatch, PathMatch, QueryMatch, RequestMatch, StringMatch, anchored_regex,
};
use crate::resources::virtual_service::{HttpMatch, StringMatch as VsMatch};

/// The problem text for a pattern the regex crate refused, at field `at` (e.g. `.uri.regex`).
pub(super) fn regex_problem(pattern: &str, at: &str, e: &regex::Error) -> String {
    // The parser's message draws a caret under the pattern over several lines; its last line
    // says what is wrong.
    let text = e.to_string();
    let why = text
        .lines()
        .last()
        .unwrap_or("")
        .trim_start_matches("error: ");
    format!("{at}: {pattern:?} is not a valid regular expression: {why}")
}

fn regex(pattern: &str, what: &str) -> Result<regex::Regex, String> {
    anchored_regex(pattern).map_err(|e| regex_problem(pattern, &format!(".{what}.regex"), &e))
}

/// A VirtualService string match as a value condition ([VS-3]); `None` fields: present.
fn value_match(m: &VsMatch, what: &str, ignore_case: bool) -> Result<StringMatch, String> {
    let ci = if ignore_case { "(?i)" } else { "" };
    match (&m.exact, &m.prefix, &m.regex) {
        (Some(e), None, None) if !ignore_case => Ok(StringMatch::Exact(e.clone())),
        (Some(e), None, None) => Ok(StringMatch::RegularExpression(regex(
            &format!("{ci}{}", regex::escape(e)),
            what,
        )?)),
        // A plain prefix is compared directly: written-order routes are tried one by one.
        (None, Some(p), None) if !ignore_case => Ok(StringMatch::Prefix(p.clone())),
        (None, Some(p), None) => Ok(StringMatch::RegularExpression(regex(
            &format!("{ci}{}.*", regex::escape(p)),
            what,
        )?)),
        (None, None, Some(r)) => Ok(StringMatch::RegularExpression(regex(
            &format!("{ci}{r}"),
            what,
        )?)),
        (None, None, None) => Ok(StringMatch::RegularExpression(regex(".*", what)?)),
        _ => Err(format!(".{what}: set only one of exact, prefix and regex")),
    }
}

/// [VS-3] A method condition: `exact` stays a method comparison (the common, fast case);
/// `prefix` and `regex` match the method name as a string.
fn method_match(m: &VsMatch) -> Result<MethodMatch, String> {
    match value_match(m, "method", false)? {
        StringMatch::Exact(e) => http::Method::from_bytes(e.as_bytes())
            .map(MethodMatch::Exact)
            .map_err(|_| format!(".method.exact: {e:?} is not a method")),
        StringMatch::RegularExpression(r) => Ok(MethodMatch::RegularExpression(r)),
        StringMatch::Prefix(p) => Ok(MethodMatch::RegularExpression(regex(
            &format!("{}.*", regex::escape(&p)),
            "method",
        )?)),
    }
}

fn header(name: &str, at: &str) -> Result<http::HeaderName, String> {
    http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!(".{at}: not a header name"))
}

/// One `match[]` entry as runtime conditions; the error is the field-named problem (relative
/// to the entry, e.g. `.withoutHeaders[x-foo].regex: …`).
pub(super) fn compile_match(m: &HttpMatch) -> Result<RequestMatch, String> {
    if !m.source_labels.is_empty() {
        // Istio compares them with the labels of the proxy the route is pushed to; this proxy
        // has no Pod labels to compare with, so the entry is skipped rather than guessed at.
        return Err(".sourceLabels: not supported (this match entry is skipped)".into());
    }
    let path = match &m.uri {
        None => PathMatch::PathPrefix("/".into()),
        Some(u) => match value_match(u, "uri", m.ignore_uri_case)? {
            StringMatch::Exact(e) => PathMatch::Exact(e),
            StringMatch::RegularExpression(r) => PathMatch::RegularExpression(r),
            StringMatch::Prefix(p) => PathMatch::CharPrefix(p),
        },
    };
    let method = m.method.as_ref().map(method_match).transpose()?;
    let scheme = m
        .scheme
        .as_ref()
        .map(|s| value_match(s, "scheme", false))
        .transpose()?;
    let mut headers = Vec::new();
    for (name, v) in &m.headers {
        let at = format!("headers[{name}]");
        headers.push(HeaderMatch::new(
            header(name, &at)?,
            value_match(v, &at, false)?,
        ));
    }
    if let Some(a) = &m.authority {
        headers.push(HeaderMatch::new(
            http::header::HOST,
            value_match(a, "authority", false)?,
        ));
    }
    for (name, v) in &m.without_headers {
        let at = format!("withoutHeaders[{name}]");
        headers.push(HeaderMatch {
            invert: true,
            ..HeaderMatch::new(header(name, &at)?, value_match(v, &at, false)?)
        });
    }
    let query = m
        .query_params
        .iter()
        .map(|(name, v)| {
            Ok(QueryMatch {
                name: name.clone(),
                value: value_match(v, &format!("queryParams[{name}]"), false)?,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(RequestMatch {
        method,
        headers,
        query,
        scheme,
        ..RequestMatch::path(path)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request_match::{Mismatch, RequestView};
    use http::{HeaderMap, HeaderValue, Method};

    fn parse(yaml: &str) -> HttpMatch {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn check(
        m: &RequestMatch,
        method: &Method,
        scheme: &str,
        h: &HeaderMap,
    ) -> Result<(), Mismatch> {
        m.check(&RequestView {
            method,
            host: "x",
            path: "/",
            query: None,
            headers: h,
            scheme,
            source_namespace: None,
        })
    }

    #[test]
    fn without_headers_negate_and_empty_means_absent_vs_3() {
        let m = compile_match(&parse(
            "withoutHeaders: {x-debug: {}, x-env: {prefix: prod}}",
        ))
        .unwrap();
        let mut h = HeaderMap::new();
        assert!(check(&m, &Method::GET, "http", &h).is_ok());
        h.insert("x-env", HeaderValue::from_static("staging"));
        assert!(check(&m, &Method::GET, "http", &h).is_ok());
        h.insert("x-env", HeaderValue::from_static("production"));
        assert_eq!(
            check(&m, &Method::GET, "http", &h),
            Err(Mismatch::HeaderPresent("x-env".into()))
        );
        let mut d = HeaderMap::new();
        d.insert("x-debug", HeaderValue::from_static(""));
        assert_eq!(
            check(&m, &Method::GET, "http", &d),
            Err(Mismatch::HeaderPresent("x-debug".into()))
        );
    }

    #[test]
    fn uri_prefix_compares_characters_without_a_regex_vs_3() {
        let m = compile_match(&parse("uri: {prefix: /foo}")).unwrap();
        assert!(matches!(&m.path, PathMatch::CharPrefix(p) if p == "/foo"));
        for (path, want) in [
            ("/foo", true),
            ("/foobar", true),
            ("/foo/x", true),
            ("/fo", false),
        ] {
            assert_eq!(m.path.check(path), want, "{path}");
        }
        // With ignoreUriCase it stays a (case-insensitive) regular expression.
        let ci = compile_match(&parse("uri: {prefix: /Foo}\nignoreUriCase: true")).unwrap();
        assert!(matches!(ci.path, PathMatch::RegularExpression(_)));
        assert!(ci.path.check("/fOObar"));
        let h = compile_match(&parse("headers: {x-env: {prefix: prod}}")).unwrap();
        assert!(matches!(&h.headers[0].value, StringMatch::Prefix(p) if p == "prod"));
    }

    #[test]
    fn method_prefix_and_regex_and_scheme_vs_3() {
        let h = HeaderMap::new();
        let prefix = compile_match(&parse("method: {prefix: P}")).unwrap();
        assert!(check(&prefix, &Method::PATCH, "http", &h).is_ok());
        assert!(check(&prefix, &Method::GET, "http", &h).is_err());
        let re = compile_match(&parse("method: {regex: 'GET|HEAD'}")).unwrap();
        assert!(check(&re, &Method::HEAD, "http", &h).is_ok());
        assert!(check(&re, &Method::POST, "http", &h).is_err());
        let exact = compile_match(&parse("method: {exact: DELETE}")).unwrap();
        assert!(matches!(exact.method, Some(MethodMatch::Exact(_))));
        let https = compile_match(&parse("scheme: {exact: https}")).unwrap();
        assert!(check(&https, &Method::GET, "https", &h).is_ok());
        assert_eq!(
            check(&https, &Method::GET, "http", &h),
            Err(Mismatch::Scheme)
        );
    }

    #[test]
    fn bad_fields_are_named() {
        for (yaml, want) in [
            (
                "withoutHeaders: {x-foo: {regex: '('}}",
                ".withoutHeaders[x-foo].regex: \"(\" is not a valid regular expression",
            ),
            ("method: {regex: '['}", ".method.regex: \"[\" is not"),
            (
                "method: {exact: 'G T'}",
                ".method.exact: \"G T\" is not a method",
            ),
            ("scheme: {exact: a, prefix: b}", ".scheme: set only one"),
            ("sourceLabels: {app: web}", ".sourceLabels: not supported"),
        ] {
            let e = compile_match(&parse(yaml)).unwrap_err();
            assert!(e.starts_with(want), "{yaml}: {e}");
        }
    }
}
