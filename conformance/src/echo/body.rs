//! The echo JSON: what the backend saw, in the shape of the upstream echo server's answer.

use super::*;

/// Builds the echo body for a request.
pub(super) fn echo_body(parts: &Parts, identity: &EchoIdentity) -> EchoResponse {
    EchoResponse {
        path: request_target(parts),
        host: request_host(parts),
        method: parts.method.as_str().to_owned(),
        proto: go_proto(parts.version).to_owned(),
        headers: canonical_headers(parts),
        namespace: identity.namespace.clone(),
        ingress: String::new(),
        service: identity.service.clone(),
        pod: identity.pod.clone(),
        tls: None,
    }
}

/// The request target as Go's `RequestURI` reports it.
pub(super) fn request_target(parts: &Parts) -> String {
    if parts.version >= Version::HTTP_2 {
        // The URI is rebuilt from pseudo-headers; only `:path` is the request target.
        match (parts.uri.path_and_query(), parts.uri.authority()) {
            (Some(path), _) => path.as_str().to_owned(),
            (None, Some(authority)) => authority.as_str().to_owned(),
            (None, None) => String::new(),
        }
    } else {
        parts.uri.to_string()
    }
}

/// The host as Go's `Request.Host` reports it: URI authority first, then the `Host` header.
pub(super) fn request_host(parts: &Parts) -> String {
    match parts.uri.authority() {
        Some(authority) => authority.as_str().to_owned(),
        None => parts
            .headers
            .get(HOST)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .unwrap_or_default(),
    }
}

/// Protocol name in Go's `Request.Proto` notation.
pub(super) fn go_proto(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// Request headers as Go exposes them: canonical names, `Host` and `Transfer-Encoding` removed,
/// HTTP/2 cookie crumbs joined with `; `.
pub(super) fn canonical_headers(parts: &Parts) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in parts.headers.keys() {
        if name == HOST || name == TRANSFER_ENCODING {
            continue;
        }
        let mut values: Vec<String> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .collect();
        if name == COOKIE && parts.version == Version::HTTP_2 && values.len() > 1 {
            values = vec![values.join("; ")];
        }
        out.entry(canonical_header_key(name.as_str()))
            .or_default()
            .extend(values);
    }
    out
}

/// Canonical MIME form of a header name, like Go's `textproto.CanonicalMIMEHeaderKey`.
///
/// Names containing bytes that are not HTTP token characters are returned unchanged, as Go does.
pub fn canonical_header_key(name: &str) -> String {
    if !name.bytes().all(is_token_byte) {
        return name.to_owned();
    }
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for ch in name.chars() {
        out.push(if upper {
            ch.to_ascii_uppercase()
        } else {
            ch.to_ascii_lowercase()
        });
        upper = ch == '-';
    }
    out
}

/// Whether `byte` may appear in an HTTP token (RFC 9110 `tchar`).
pub(super) fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// Serializes with a one-space indent, matching Go's `json.MarshalIndent(v, "", " ")`.
pub(super) fn to_indented_json<T: Serialize>(value: &T) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(512);
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    value.serialize(&mut serializer).ok()?;
    Some(out)
}
