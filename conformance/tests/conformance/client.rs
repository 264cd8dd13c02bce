//! A plain HTTP/1.1 client: one connection per request (as the upstream suite disables keep-alive),
//! Go-style title-case header names, and the echo body parsed when it is JSON.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use waygate_conformance::echo::EchoResponse;

/// A generous bound for one exchange, so a hung request fails its case instead of hanging the run
/// (not a performance expectation).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What came back.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: http::HeaderMap,
    /// The echo body, when the answer is `application/json` from an echo pod.
    pub echo: Option<EchoResponse>,
}

/// Send one request to `addr` with the given Host header.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(String, String)],
) -> Result<Reply, String> {
    match tokio::time::timeout(REQUEST_TIMEOUT, exchange(addr, method, host, path, headers)).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {}s", REQUEST_TIMEOUT.as_secs())),
    }
}

async fn exchange(
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(String, String)],
) -> Result<Reply, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .title_case_headers(true)
        .handshake::<_, Empty<Bytes>>(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let conn = tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, host);
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req
        .body(Empty::new())
        .map_err(|e| format!("bad request: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    drop(sender);
    conn.abort();
    let json = headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/json");
    let echo = if json {
        serde_json::from_slice::<EchoResponse>(&body).ok()
    } else {
        None
    };
    Ok(Reply {
        status,
        headers,
        echo,
    })
}
