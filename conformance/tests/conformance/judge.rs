//! How the upstream suite judges an answer: status, the request as the backend saw it (path,
//! host, method, headers, namespace, pod), response headers, the backend's TLS, redirects.

use crate::case::{BackendTlsExpect, RedirectExpect, RequestCase, ResponseExpect};
use crate::client::Reply;
use crate::world::World;
use waygate_conformance::echo::EchoResponse;

pub fn got(reply: &Reply) -> String {
    match &reply.echo {
        Some(e) => format!(
            "got {} from pod {:?} in {:?} (path {:?}, host {:?})",
            reply.status, e.pod, e.namespace, e.path, e.host
        ),
        None => format!("got {} (not an echo answer)", reply.status),
    }
}

pub fn is_redirect(status: u16) -> bool {
    matches!(status, 300..=305 | 307 | 308)
}

pub fn is_timeout(status: u16) -> bool {
    matches!(status, 408 | 504)
}

/// The echoed header values joined with `,`, looked up without regard to case.
pub fn seen_header(e: &EchoResponse, name: &str) -> Option<String> {
    e.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.join(","))
}

/// Whether a header name is `Host`: in a request's `headers` it sets the Host header instead
/// (as Go's client takes `-H Host:…`), which the echo reports as the host, not as a header.
pub fn is_host(name: &str) -> bool {
    name.eq_ignore_ascii_case("host")
}

/// What was sent, as the backend's view is judged against it.
pub struct Sent<'a> {
    /// The Host header.
    pub host: &'a str,
    /// Path and query.
    pub path: &'a str,
    /// Method.
    pub method: &'a str,
    /// From a mesh pod: upstream's mesh client compares the namespace only when given.
    pub in_mesh: bool,
}

pub fn judge_backend(
    r: &RequestCase,
    reply: &Reply,
    sent: &Sent<'_>,
    backend_path: Option<&str>,
) -> Result<(), String> {
    let (sent_path, sent_method) = (sent.path, sent.method);
    // As upstream: an answer that is not an echo counts as an empty echo of the sent method.
    let fallback;
    let e = match &reply.echo {
        Some(e) => e,
        None => {
            fallback = EchoResponse {
                method: sent_method.to_string(),
                ..EchoResponse::default()
            };
            &fallback
        }
    };
    // The request the backend must see: as given, or else the request as sent.
    let (host, path, method, headers, absent) = match &r.at_backend {
        Some(b) => (
            b.host.clone(),
            backend_path.unwrap_or(sent_path).to_string(),
            b.method.clone().unwrap_or_else(|| "GET".into()),
            b.headers.clone(),
            b.absent_headers.clone(),
        ),
        None => (
            // A Host the request chose is what the backend must see.
            (r.host.is_some() || r.headers.keys().any(|k| is_host(k)))
                .then(|| sent.host.to_string()),
            sent_path.to_string(),
            r.method.clone().unwrap_or_else(|| "GET".into()),
            r.headers
                .iter()
                .filter(|(k, _)| !is_host(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            Vec::new(),
        ),
    };
    let mut errs = Vec::new();
    if let Some(h) = host.filter(|h| !h.is_empty())
        && e.host != h
    {
        errs.push(format!("backend saw host {:?}, want {h:?}", e.host));
    }
    if e.path != path {
        errs.push(format!("backend saw path {:?}, want {path:?}", e.path));
    }
    if e.method != method {
        errs.push(format!(
            "backend saw method {:?}, want {method:?}",
            e.method
        ));
    }
    let namespace = r.namespace.as_deref().unwrap_or("");
    if (!sent.in_mesh || r.namespace.is_some()) && e.namespace != namespace {
        errs.push(format!(
            "answered from namespace {:?}, want {namespace:?}",
            e.namespace
        ));
    }
    for (name, value) in &headers {
        match seen_header(e, name) {
            Some(v) if v == *value => {}
            Some(v) => errs.push(format!("backend saw {name}: {v:?}, want {value:?}")),
            None => errs.push(format!("backend did not see {name} (want {value:?})")),
        }
    }
    for name in &absent {
        if let Some(v) = seen_header(e, name) {
            errs.push(format!("backend saw {name}: {v:?}, want it absent"));
        }
    }
    let backend = r.backend.as_deref().unwrap_or("");
    if !e.pod.starts_with(backend) {
        errs.push(format!("answered by pod {:?}, want {backend}-*", e.pod));
    }
    if let Some(name) = &r.pod_from_header {
        let lines: Vec<&String> = e
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v)
            .collect();
        match lines.as_slice() {
            [one] if e.pod.starts_with(one.as_str()) => {}
            [one] => errs.push(format!(
                "backend saw {name}: {one:?}, but pod {:?} answered",
                e.pod
            )),
            many => errs.push(format!(
                "backend saw {} lines of {name} ({many:?}), want one",
                many.len()
            )),
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {}", got(reply), errs.join("; ")))
    }
}

/// MakeRequestAndExpectFailure: an HTTP answer that is neither a success (200) nor a timeout
/// (408/504, which upstream takes for "not yet").
pub fn judge_error_status(r: &RequestCase, reply: &Reply) -> Result<(), String> {
    if r.status.is_some() {
        return Err("errorStatus and status exclude each other".into());
    }
    if reply.status == 200 || is_timeout(reply.status) {
        return Err(format!(
            "want an error status (not 200, 408 or 504), {}",
            got(reply)
        ));
    }
    Ok(())
}

/// The leaf certificate of a PEM text, DER.
pub fn first_cert_der(pem: &[u8]) -> Option<Vec<u8>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let cert = CertificateDer::pem_slice_iter(pem).next()?.ok()?;
    Some(cert.as_ref().to_vec())
}

/// The gateway's TLS connection as the backend saw it, compared as upstream compares `SNI` and
/// `ClientCert` (the certificate itself rather than its PEM spelling).
pub fn judge_backend_tls(
    world: &World,
    reply: &Reply,
    want: &BackendTlsExpect,
) -> Result<(), String> {
    let tls = reply
        .echo
        .as_ref()
        .and_then(|e| e.tls.as_ref())
        .ok_or_else(|| format!("{}: the backend saw no TLS", got(reply)))?;
    let mut errs = Vec::new();
    if let Some(sni) = &want.server_name
        && tls.server_name != *sni
    {
        errs.push(format!(
            "backend saw SNI {:?}, want {sni:?}",
            tls.server_name
        ));
    }
    if let Some(secret) = &want.peer_certificate {
        let expected = first_cert_der(&world.secret_data(secret, "tls.crt")?)
            .ok_or_else(|| format!("Secret {secret}: tls.crt holds no certificate"))?;
        let presented = tls
            .peer_certificates
            .iter()
            .any(|p| first_cert_der(p.as_bytes()).as_ref() == Some(&expected));
        if !presented {
            errs.push(format!(
                "backend was not presented the certificate of Secret {secret} ({} presented)",
                tls.peer_certificates.len()
            ));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {}", got(reply), errs.join("; ")))
    }
}

/// A response header's lines joined with `,`, looked up without regard to case.
pub fn response_header(reply: &Reply, name: &str) -> Option<String> {
    let values: Vec<String> = reply
        .headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

pub fn judge_response_headers(reply: &Reply, want: &ResponseExpect) -> Result<(), String> {
    let squash = |v: &str| {
        if want.ignore_whitespace {
            v.replace(' ', "")
        } else {
            v.to_string()
        }
    };
    let mut errs = Vec::new();
    for (name, options) in &want.one_of {
        match response_header(reply, name) {
            None => errs.push(format!("response lacks {name} (want one of {options:?})")),
            Some(v) if options.iter().any(|o| squash(o) == squash(&v)) => {}
            Some(v) => errs.push(format!("response {name}: {v:?}, want one of {options:?}")),
        }
    }
    for (name, value) in &want.headers {
        match response_header(reply, name) {
            None => errs.push(format!("response lacks {name} (want {value:?})")),
            Some(v) if squash(value) == squash(&v) => {}
            Some(v) => errs.push(format!("response {name}: {v:?}, want {value:?}")),
        }
    }
    for name in &want.absent_headers {
        if let Some(v) = response_header(reply, name) {
            errs.push(format!("response {name}: {v:?}, want it absent"));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {}", got(reply), errs.join("; ")))
    }
}

pub fn judge_redirect(r: &RequestCase, reply: &Reply, want: &RedirectExpect) -> Result<(), String> {
    let location = reply
        .headers
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| format!("status {} without a Location", reply.status))?;
    let uri: http::Uri = location
        .parse()
        .map_err(|e| format!("Location {location:?} does not parse: {e}"))?;
    let request_path = r.path.split('?').next().unwrap_or("");
    let scheme = uri.scheme_str().unwrap_or("http").to_ascii_lowercase();
    let host = uri.host().unwrap_or("").to_string();
    let port = uri
        .port()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let path = uri.path().to_string();
    let mut errs = Vec::new();
    if let Some(h) = &want.host
        && *h != host
    {
        errs.push(format!("redirect host {host:?}, want {h:?}"));
    }
    match &want.port {
        Some(p) if *p != port => errs.push(format!("redirect port {port:?}, want {p:?}")),
        Some(_) => {}
        None => {
            let default = match scheme.as_str() {
                "http" => Some("80"),
                "https" => Some("443"),
                _ => None,
            };
            if let Some(d) = default
                && !port.is_empty()
                && port != d
            {
                errs.push(format!(
                    "redirect port {port:?}, want none or {d} for {scheme}"
                ));
            }
        }
    }
    let want_scheme = want.scheme.as_deref().unwrap_or("http");
    if scheme != want_scheme {
        errs.push(format!("redirect scheme {scheme:?}, want {want_scheme:?}"));
    }
    let want_path = want.path.as_deref().unwrap_or(request_path);
    if path != want_path {
        errs.push(format!("redirect path {path:?}, want {want_path:?}"));
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!("Location {location:?}: {}", errs.join("; ")))
    }
}
