//! Replies the proxy writes itself (404, 500, 503, 504, redirects, CORS preflights), with Envoy's
//! bodies and log flags.

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

/// A locally generated response.
#[derive(Debug, Clone)]
pub struct LocalReply {
    /// Status code.
    pub status: u16,
    /// Body (may be empty).
    pub body: Bytes,
    /// Envoy-style response flag for the access log (`NR`, `UH`, …).
    pub flag: &'static str,
    /// Extra headers (e.g. `location`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl LocalReply {
    fn new(status: u16, body: &'static str, flag: &'static str) -> Self {
        Self {
            status,
            body: Bytes::from_static(body.as_bytes()),
            flag,
            headers: Vec::new(),
        }
    }

    /// 404 for a request no route matched ([HR-9], [EC-3]).
    pub fn no_route() -> Self {
        Self::new(404, "", "NR")
    }
    /// [VS-7] The status a fault abort injects.
    pub fn fault_abort(status: u16) -> Self {
        Self::new(status, "fault filter abort", "FI")
    }
    /// 403 for a request AuthorizationPolicy denies ([AP-11]).
    pub fn rbac_denied() -> Self {
        Self::new(403, "RBAC: access denied", "RBAC")
    }
    /// 500 for a rule whose backend cannot be resolved ([HB-2]).
    pub fn invalid_backend() -> Self {
        Self::new(500, "", "NR")
    }
    /// 503 when the backend has no ready endpoints ([EC-3]).
    pub fn no_healthy_upstream() -> Self {
        Self::new(503, "no healthy upstream", "UH")
    }
    /// [DR-3] 503 when the cluster's connection-pool limit is reached (Envoy's overflow).
    pub fn overflow() -> Self {
        Self::new(
            503,
            "upstream connect error or disconnect/reset before headers. reset reason: overflow",
            "UO",
        )
    }
    /// 503 when connecting to the endpoint failed ([EC-3]).
    pub fn connect_failure() -> Self {
        Self::new(
            503,
            "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
            "UF",
        )
    }
    /// 503 when the cluster must use TLS but its settings are unusable (never plaintext).
    pub fn upstream_tls_unusable() -> Self {
        Self::new(
            503,
            "upstream connect error or disconnect/reset before headers. reset reason: TLS settings unusable",
            "UF",
        )
    }
    /// 503 when the upstream connection broke before a response ([EC-3]).
    pub fn connection_termination() -> Self {
        Self::new(
            503,
            "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
            "UC",
        )
    }
    /// 504 when `timeouts.request` or `timeouts.backendRequest` expired ([HT-1], [EC-3]).
    pub fn upstream_timeout() -> Self {
        Self::new(504, "upstream request timeout", "UT")
    }
    /// 421 when the Host names another listener than the TLS server name did ([GW-3]).
    pub fn misdirected() -> Self {
        Self::new(421, "Misdirected Request", "")
    }
    /// A bare status with no body (e.g. an upstream status that could not be retried).
    pub fn status(status: u16) -> Self {
        Self::new(status, "", "")
    }
    /// A redirect; a Location that is not a valid header value answers 500 instead.
    pub fn redirect(status: u16, location: String) -> Self {
        match HeaderValue::try_from(location) {
            Ok(v) => Self {
                headers: vec![(http::header::LOCATION, v)],
                ..Self::new(status, "", "")
            },
            Err(_) => Self::new(500, "", ""),
        }
    }
    /// [VS-6] A VirtualService `directResponse`: its status and body, no response flag (as
    /// Envoy logs a direct response).
    pub fn direct(status: u16, body: Bytes) -> Self {
        Self {
            body,
            ..Self::new(status, "", "")
        }
    }
    /// 200 answering a CORS preflight, with its headers (none for an origin not allowed) ([HF-5]).
    pub fn cors_preflight(headers: Vec<(HeaderName, HeaderValue)>) -> Self {
        Self {
            headers,
            ..Self::new(200, "", "")
        }
    }

    /// Write the reply to the downstream, unless a response has already started (then nothing
    /// can be said any more and the connection is dropped by the caller).
    pub async fn send(&self, session: &mut Session) -> pingora::Result<()> {
        if session.response_written().is_some() {
            return Ok(());
        }
        if is_grpc(session)
            && let Some(code) = grpc_status(self.status)
        {
            return self.send_grpc(session, code).await;
        }
        let mut resp = ResponseHeader::build(self.status, Some(4 + self.headers.len()))?;
        resp.insert_header("content-length", self.body.len().to_string())?;
        if !self.body.is_empty() {
            resp.insert_header("content-type", "text/plain")?;
        }
        for (name, value) in &self.headers {
            resp.append_header(name.clone(), value.clone())?;
        }
        let empty = self.body.is_empty();
        session.write_response_header(Box::new(resp), empty).await?;
        if !empty {
            session
                .write_response_body(Some(self.body.clone()), true)
                .await?;
        }
        Ok(())
    }

    /// A gRPC trailers-only reply: HTTP 200 with `grpc-status` and `grpc-message` ([GR-4]).
    async fn send_grpc(&self, session: &mut Session, code: &'static str) -> pingora::Result<()> {
        let mut resp = ResponseHeader::build(200, Some(4))?;
        resp.insert_header("content-type", "application/grpc")?;
        resp.insert_header("grpc-status", code)?;
        // A body that is not a valid header value (a direct response's bytes) is not sent.
        let message = std::str::from_utf8(&self.body)
            .ok()
            .filter(|b| !b.is_empty() && http::HeaderValue::from_str(b).is_ok())
            .unwrap_or(match self.status {
                404 => "no route matched",
                _ => "backend unavailable",
            });
        resp.insert_header("grpc-message", message)?;
        session.write_response_header(Box::new(resp), true).await
    }
}

/// Whether the request is a gRPC call (its clients read `grpc-status`, not the HTTP status).
fn is_grpc(session: &Session) -> bool {
    session
        .req_header()
        .headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The gRPC status for a local HTTP error ([GR-4]): no route → UNIMPLEMENTED (12), an
/// unresolvable or unreachable backend → UNAVAILABLE (14), a timeout → DEADLINE_EXCEEDED (4).
fn grpc_status(http: u16) -> Option<&'static str> {
    match http {
        404 => Some("12"),
        500 | 502 | 503 => Some("14"),
        504 => Some("4"),
        _ => None,
    }
}
