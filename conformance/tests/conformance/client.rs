//! The clients the upstream suite uses: plain HTTP/1.1 with one connection per request (as the
//! upstream suite disables keep-alive) and Go-style title-case header names, HTTP/2 prior
//! knowledge (h2c), a WebSocket echo check, and a gRPC `GrpcEcho` client; echo answers are parsed
//! when they are JSON.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use waygate_conformance::echo::EchoResponse;
use waygate_conformance::grpc_echo::pb;
use waygate_conformance::pki;

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

/// HTTP version spoken to the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.1 (over TLS: no ALPN offered, as Go's client with a custom TLS config).
    Http1,
    /// HTTP/2 prior knowledge over cleartext.
    H2c,
    /// HTTP/2 over TLS; the server must select `h2` by ALPN.
    H2,
}

/// TLS towards the gateway: the server name to send (`None`: no SNI) and the client config
/// (trust anchors, optional client certificate).
#[derive(Clone)]
pub struct TlsClient {
    /// SNI.
    pub sni: Option<String>,
    /// The name the certificate must be valid for.
    pub verify_as: String,
    /// rustls client settings.
    pub config: std::sync::Arc<rustls::ClientConfig>,
}

/// Send one request to `addr` with the given Host header (`:authority` over HTTP/2).
pub async fn send(
    addr: SocketAddr,
    version: Version,
    tls: Option<&TlsClient>,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(String, String)],
) -> Result<Reply, String> {
    let exchange = exchange(addr, version, tls, method, host, path, headers);
    match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {}s", REQUEST_TIMEOUT.as_secs())),
    }
}

async fn exchange(
    addr: SocketAddr,
    version: Version,
    tls: Option<&TlsClient>,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(String, String)],
) -> Result<Reply, String> {
    let mut req = match version {
        Version::Http1 => http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, host),
        // The authority of an absolute URI becomes `:authority`, as Go sends Request.Host.
        Version::H2c | Version::H2 => {
            let scheme = if tls.is_some() { "https" } else { "http" };
            http::Request::builder()
                .method(method)
                .version(http::Version::HTTP_2)
                .uri(format!("{scheme}://{host}{path}"))
        }
    };
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("bad request: {e}"))?;
    let Some(tls) = tls else {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        return over(tcp, version, req).await;
    };
    let mut config = (*tls.config).clone();
    config.alpn_protocols = match version {
        Version::H2 => vec![b"h2".to_vec()],
        _ => Vec::new(),
    };
    let stream = pki::connect(addr, tls.sni.as_deref(), &tls.verify_as, Arc::new(config))
        .await
        .map_err(|e| format!("TLS connect {addr} (SNI {:?}): {e}", tls.sni))?;
    if version == Version::H2 && stream.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Err("the gateway did not select h2 by ALPN".into());
    }
    over(stream, version, req).await
}

/// One HTTP/1.1 request over an established byte stream (an HBONE tunnel, a pod's socket), with
/// the Host header `host`.
pub async fn send_on<IO>(
    io: IO,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(String, String)],
) -> Result<Reply, String>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, host);
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("bad request: {e}"))?;
    match tokio::time::timeout(REQUEST_TIMEOUT, over(io, Version::Http1, req)).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {}s", REQUEST_TIMEOUT.as_secs())),
    }
}

/// One request over an established connection.
async fn over<IO>(
    io: IO,
    version: Version,
    req: http::Request<Empty<Bytes>>,
) -> Result<Reply, String>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    match version {
        Version::Http1 => {
            let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
                .title_case_headers(true)
                .handshake::<_, Empty<Bytes>>(TokioIo::new(io))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            let conn = tokio::spawn(conn);
            let resp = sender.send_request(req).await;
            let resp = collect(resp).await;
            conn.abort();
            resp
        }
        Version::H2c | Version::H2 => {
            let (mut sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                .handshake::<_, Empty<Bytes>>(TokioIo::new(io))
                .await
                .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
            let conn = tokio::spawn(conn);
            let resp = sender.send_request(req).await;
            let resp = collect(resp).await;
            conn.abort();
            resp
        }
    }
}

async fn collect(
    resp: Result<http::Response<hyper::body::Incoming>, hyper::Error>,
) -> Result<Reply, String> {
    let resp = resp.map_err(|e| format!("request: {e}"))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    let json = headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/json");
    // As upstream: a JSON answer is read as an echo (missing fields stay empty).
    let echo = json.then(|| serde_json::from_slice::<EchoResponse>(&body).unwrap_or_default());
    Ok(Reply {
        status,
        headers,
        echo,
    })
}

/// Open a WebSocket to `path` (Host `host`, an Origin as upstream sends), send a text and a binary
/// message, and require each to come back unchanged.
pub async fn websocket_echo(
    addr: SocketAddr,
    host: &str,
    path: &str,
    origin: &str,
) -> Result<(), String> {
    let run = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let mut req = format!("ws://{host}{path}")
            .into_client_request()
            .map_err(|e| format!("bad WebSocket request: {e}"))?;
        let origin = http::HeaderValue::from_str(origin).map_err(|e| e.to_string())?;
        req.headers_mut().insert(http::header::ORIGIN, origin);
        let (mut ws, _) = tokio_tungstenite::client_async(req, tcp)
            .await
            .map_err(|e| format!("WebSocket handshake: {e}"))?;
        let text = Message::text("Websocket Support!");
        let binary = Message::binary(vec![1u8, 2, 3, 4, 5, 6, 7]);
        for msg in [text, binary] {
            ws.send(msg.clone())
                .await
                .map_err(|e| format!("WebSocket send: {e}"))?;
            let back = loop {
                match ws.next().await {
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(m)) => break m,
                    Some(Err(e)) => return Err(format!("WebSocket receive: {e}")),
                    None => return Err("WebSocket closed before the echo came back".into()),
                }
            };
            if back != msg {
                return Err(format!("WebSocket sent {msg:?}, got back {back:?}"));
            }
        }
        let _ = ws.close(None).await;
        Ok(())
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, run).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "WebSocket echo not done within {}s",
            REQUEST_TIMEOUT.as_secs()
        )),
    }
}

/// What a gRPC call came back with.
#[derive(Debug)]
pub struct GrpcReply {
    /// The gRPC status code (0 = OK).
    pub code: i32,
    /// The status message, for failure reports.
    pub message: String,
    /// On OK: what the echo saw.
    pub assertions: Option<pb::Assertions>,
}

/// Call `GrpcEcho/<method>` on a fresh h2c connection to `addr` with `:authority` `authority`.
pub async fn grpc_call(
    addr: SocketAddr,
    authority: &str,
    method: &str,
    metadata: &[(String, String)],
) -> Result<GrpcReply, String> {
    let run = async {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| format!("endpoint: {e}"))?
            .origin(
                format!("http://{authority}")
                    .parse()
                    .map_err(|e| format!("authority {authority:?}: {e}"))?,
            );
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let mut client = pb::grpc_echo_client::GrpcEchoClient::new(channel);
        let mut req = tonic::Request::new(pb::EchoRequest {});
        for (k, v) in metadata {
            let key = tonic::metadata::MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
                .map_err(|e| format!("metadata key {k:?}: {e}"))?;
            let value = v
                .parse()
                .map_err(|e| format!("metadata value {v:?}: {e}"))?;
            req.metadata_mut().insert(key, value);
        }
        let result = match method {
            "Echo" => client.echo(req).await,
            "EchoTwo" => client.echo_two(req).await,
            "EchoThree" => client.echo_three(req).await,
            other => return Err(format!("unknown GrpcEcho method {other:?}")),
        };
        Ok(match result {
            Ok(resp) => GrpcReply {
                code: 0,
                message: String::new(),
                assertions: resp.into_inner().assertions,
            },
            Err(status) => GrpcReply {
                code: i32::from(status.code()),
                message: status.message().to_string(),
                assertions: None,
            },
        })
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, run).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "no gRPC answer within {}s",
            REQUEST_TIMEOUT.as_secs()
        )),
    }
}
