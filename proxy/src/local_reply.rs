//! Replies the proxy writes itself (404, 500, 503, redirects), with Envoy's bodies and log flags.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

/// A locally generated response.
#[derive(Debug, Clone)]
pub struct LocalReply {
    /// Status code.
    pub status: u16,
    /// Body (may be empty).
    pub body: &'static str,
    /// Envoy-style response flag for the access log (`NR`, `UH`, …).
    pub flag: &'static str,
    /// Extra header (e.g. `location`).
    pub header: Option<(&'static str, String)>,
}

impl LocalReply {
    /// 404 for a request no route matched ([HR-9], [EC-3]).
    pub fn no_route() -> Self {
        Self {
            status: 404,
            body: "",
            flag: "NR",
            header: None,
        }
    }
    /// 500 for a rule whose backend cannot be resolved ([HB-2]).
    pub fn invalid_backend() -> Self {
        Self {
            status: 500,
            body: "",
            flag: "NR",
            header: None,
        }
    }
    /// 503 when the backend has no ready endpoints ([EC-3]).
    pub fn no_healthy_upstream() -> Self {
        Self {
            status: 503,
            body: "no healthy upstream",
            flag: "UH",
            header: None,
        }
    }
    /// 503 when connecting to the endpoint failed ([EC-3]).
    pub fn connect_failure() -> Self {
        Self {
            status: 503,
            body: "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
            flag: "UF",
            header: None,
        }
    }
    /// A redirect.
    pub fn redirect(status: u16, location: String) -> Self {
        Self {
            status,
            body: "",
            flag: "",
            header: Some(("location", location)),
        }
    }

    /// Write the reply to the downstream.
    pub async fn send(&self, session: &mut Session) -> pingora::Result<()> {
        let mut resp = ResponseHeader::build(self.status, Some(4))?;
        resp.insert_header("content-length", self.body.len().to_string())?;
        if !self.body.is_empty() {
            resp.insert_header("content-type", "text/plain")?;
        }
        if let Some((name, value)) = &self.header {
            resp.insert_header(*name, value.as_str())?;
        }
        let empty = self.body.is_empty();
        session.write_response_header(Box::new(resp), empty).await?;
        if !empty {
            session
                .write_response_body(Some(Bytes::from_static(self.body.as_bytes())), true)
                .await?;
        }
        Ok(())
    }
}
