//! Echo backend: an HTTP/1.1 + h2c server that answers every request with the Gateway API conformance echo JSON.
//!
//! The response body mirrors the upstream Gateway API `echo-basic` server: the request target, host,
//! method, protocol and headers (Go canonical names, one list entry per header line), plus the
//! identity of the backend (`namespace`, `service`, `pod`).
//!
//! Request controls understood by the server:
//! - `X-Echo-Set-Header: Name:Value, Other:Value` sets response headers (repeated names are joined with `,`).
//! - `X-Echo-Delay` header or `delay` query parameter holding a Go duration (`500ms`, `1s`) delays the answer.
//! - `X-Echo-Status` header or `status` query parameter holding a status code overrides the `200`.
//! - `/ws` with `Upgrade: websocket` (HTTP/1.1): a WebSocket that sends every text and binary
//!   message back.
//! - `/retry/...?uuid=U&succeedAfter=N[&responseCode=C][&delayRetry=D]`: the first `N` requests
//!   with id `U` fail (after waiting `D`): with status `C` and no body, or, without `C`, by
//!   dropping the connection without an answer; later ones are echoed. Counters live in the
//!   server's [`PodMemory`], so one pod's listeners share them.
//!
//! Every request is recorded (its request target, path and query as received) in the
//! [`PodMemory`] before any delay, as the upstream server logs one line per request; the
//! conformance runner reads that record to see where mirrored copies went.
//!
//! An unparsable delay or status yields a `500` with a `{"message": ...}` JSON body, like upstream does for delays.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::header::{
    CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HOST, SEC_WEBSOCKET_ACCEPT,
    SEC_WEBSOCKET_KEY, TRANSFER_ENCODING, UPGRADE,
};
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

mod body;
mod controls;
pub mod tls;

pub use body::canonical_header_key;
use body::*;
use controls::*;

/// Request header whose value lists `Name:Value` pairs to set on the response.
pub const SET_HEADER: &str = "x-echo-set-header";
/// Request header holding a Go-style duration to wait before answering.
pub const DELAY_HEADER: &str = "x-echo-delay";
/// Request header holding the status code to answer with.
pub const STATUS_HEADER: &str = "x-echo-status";

/// Query parameter equivalent of [`DELAY_HEADER`].
const DELAY_QUERY: &str = "delay";
/// Query parameter equivalent of [`STATUS_HEADER`].
const STATUS_QUERY: &str = "status";

/// Where the echo backend claims to run; reported verbatim in every response body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EchoIdentity {
    /// Kubernetes namespace of the backend.
    pub namespace: String,
    /// Service name of the backend.
    pub service: String,
    /// Pod name of the backend.
    pub pod: String,
}

impl EchoIdentity {
    /// Builds an identity from its namespace, service and pod names.
    pub fn new(
        namespace: impl Into<String>,
        service: impl Into<String>,
        pod: impl Into<String>,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            service: service.into(),
            pod: pod.into(),
        }
    }
}

/// The JSON body of an echo response, field for field the upstream conformance echo shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EchoResponse {
    /// Request target as received (path plus query for origin-form requests).
    pub path: String,
    /// `Host` header, or the authority of the request (`:authority` for HTTP/2).
    pub host: String,
    /// Request method.
    pub method: String,
    /// Protocol in Go notation: `HTTP/1.0`, `HTTP/1.1` or `HTTP/2.0`.
    pub proto: String,
    /// Request headers keyed by canonical MIME name, one entry per header line.
    pub headers: BTreeMap<String, Vec<String>>,
    /// Namespace of the backend that answered.
    #[serde(default)]
    pub namespace: String,
    /// Ingress name; always empty for this backend.
    #[serde(default)]
    pub ingress: String,
    /// Service of the backend that answered.
    #[serde(default)]
    pub service: String,
    /// Pod of the backend that answered.
    #[serde(default)]
    pub pod: String,
    /// The TLS connection the request came on, when it came over TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<EchoTls>,
}

/// TLS facts of the connection a request arrived on (the upstream echo's `tls` object).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EchoTls {
    /// `TLSv1.2` or `TLSv1.3`.
    pub version: String,
    /// The SNI the client sent.
    pub server_name: String,
    /// The ALPN protocol chosen.
    pub negotiated_protocol: String,
    /// PEM of each certificate the client presented.
    pub peer_certificates: Vec<String>,
}

/// Which HTTP versions a listener speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Protocols {
    /// HTTP/1.x and HTTP/2 prior knowledge (h2c), told apart by the connection preface.
    #[default]
    Auto,
    /// HTTP/1.x only (with upgrades, for WebSockets), like the upstream echo's plain port.
    Http1,
    /// HTTP/2 prior knowledge only, like the upstream echo's h2c port: HTTP/1.x is refused.
    H2c,
}

/// What one pod remembers across its listeners: the requests it served and the retry counters.
#[derive(Debug, Default)]
pub struct PodMemory {
    /// Request targets (path and query as received), in arrival order.
    served: Mutex<Vec<String>>,
    /// Failures handed out so far per retry id.
    retries: Mutex<HashMap<String, u32>>,
}

impl PodMemory {
    /// A fresh, empty memory to share between the listeners of one pod.
    pub fn new() -> Arc<PodMemory> {
        Arc::new(PodMemory::default())
    }

    /// The request targets served so far, in arrival order.
    pub fn served(&self) -> Vec<String> {
        match self.served.lock() {
            Ok(served) => served.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn record(&self, target: String) {
        match self.served.lock() {
            Ok(mut served) => served.push(target),
            Err(poisoned) => poisoned.into_inner().push(target),
        }
    }

    /// Counts one more request for `id`; true while it must still fail.
    fn must_fail(&self, id: &str, succeed_after: u32) -> bool {
        let mut retries = match self.retries.lock() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        };
        let count = retries.entry(id.to_owned()).or_insert(0);
        if *count < succeed_after {
            *count += 1;
            true
        } else {
            false
        }
    }
}

/// State shared between the accept loop, every connection and the [`EchoServer`] handle.
#[derive(Debug)]
struct Shared {
    /// Identity copied into every response.
    identity: EchoIdentity,
    /// Number of requests handled so far.
    requests: AtomicU64,
    /// Requests served and retry counters, shared with the pod's other listeners.
    memory: Arc<PodMemory>,
}

/// A running echo backend; dropping it (or calling [`EchoServer::shutdown`]) stops accepting connections.
#[derive(Debug)]
pub struct EchoServer {
    /// Address the server actually listens on (the real port when bound to port 0).
    pub addr: SocketAddr,
    /// Identity and request counter.
    shared: Arc<Shared>,
    /// Flipped to `true` to stop the accept loop and gracefully close open connections.
    stop: watch::Sender<bool>,
    /// The accept loop task, awaited by [`EchoServer::shutdown`].
    accept_task: Option<JoinHandle<()>>,
}

impl EchoServer {
    /// Binds `bind` and serves echo responses on the current tokio runtime until dropped or shut down.
    pub async fn start(bind: SocketAddr, identity: EchoIdentity) -> io::Result<EchoServer> {
        Self::start_with(bind, identity, Protocols::Auto, PodMemory::new()).await
    }

    /// Like [`EchoServer::start`], speaking only `protocols` and recording into `memory` (which
    /// other listeners of the same pod may share).
    pub async fn start_with(
        bind: SocketAddr,
        identity: EchoIdentity,
        protocols: Protocols,
        memory: Arc<PodMemory>,
    ) -> io::Result<EchoServer> {
        Self::start_inner(bind, identity, protocols, memory, None).await
    }

    /// An HTTPS echo: TLS with `config` (see [`tls::server_config`]), then HTTP/1.1 or HTTP/2
    /// by ALPN; answers report the connection's TLS facts.
    pub async fn start_tls(
        bind: SocketAddr,
        identity: EchoIdentity,
        config: Arc<rustls::ServerConfig>,
        memory: Arc<PodMemory>,
    ) -> io::Result<EchoServer> {
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        Self::start_inner(bind, identity, Protocols::Auto, memory, Some(acceptor)).await
    }

    async fn start_inner(
        bind: SocketAddr,
        identity: EchoIdentity,
        protocols: Protocols,
        memory: Arc<PodMemory>,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> io::Result<EchoServer> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            identity,
            requests: AtomicU64::new(0),
            memory,
        });
        let (stop, stop_rx) = watch::channel(false);
        let accept_task = tokio::spawn(accept_loop(
            listener,
            Arc::clone(&shared),
            protocols,
            tls,
            stop_rx,
        ));
        Ok(EchoServer {
            addr,
            shared,
            stop,
            accept_task: Some(accept_task),
        })
    }

    /// Number of requests handled since the server started.
    pub fn request_count(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Identity reported in every response.
    pub fn identity(&self) -> &EchoIdentity {
        &self.shared.identity
    }

    /// The request targets this server's pod has served so far (all its listeners).
    pub fn served(&self) -> Vec<String> {
        self.shared.memory.served()
    }

    /// Stops accepting, asks open connections to close gracefully, and waits until the listener is closed.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.accept_task.take()
            && let Err(err) = task.await
        {
            tracing::debug!(%err, "echo accept loop ended abnormally");
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// Accepts connections until `stop` turns `true`, serving each on its own task.
async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    protocols: Protocols,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    // hyper-util ignores http1_only/http2_only when serving with upgrades, so HTTP/1-only (which
    // needs upgrades for WebSockets) uses hyper's HTTP/1 server directly.
    let builder = Arc::new(match protocols {
        Protocols::Auto => Servers::Auto(builder),
        Protocols::Http1 => {
            let mut h1 = hyper::server::conn::http1::Builder::new();
            h1.timer(TokioTimer::new());
            Servers::Http1(h1)
        }
        Protocols::H2c => Servers::H2c(builder.http2_only()),
    });
    loop {
        let accepted = tokio::select! {
            biased;
            () = stopped(&mut stop) => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                if let Err(err) = stream.set_nodelay(true) {
                    tracing::debug!(%err, %peer, "echo: cannot set TCP_NODELAY");
                }
                let (builder, shared, stop) =
                    (Arc::clone(&builder), Arc::clone(&shared), stop.clone());
                match tls.clone() {
                    None => {
                        tokio::spawn(serve_connection(builder, stream, None, shared, stop));
                    }
                    Some(acceptor) => {
                        tokio::spawn(async move {
                            match acceptor.accept(stream).await {
                                Ok(tls_stream) => {
                                    let facts = tls::facts(tls_stream.get_ref().1);
                                    serve_connection(
                                        builder,
                                        tls_stream,
                                        Some(Arc::new(facts)),
                                        shared,
                                        stop,
                                    )
                                    .await;
                                }
                                Err(err) => tracing::debug!(%err, "echo: TLS handshake failed"),
                            }
                        });
                    }
                }
            }
            Err(err) => {
                // Typically EMFILE or a connection reset before accept; back off briefly instead of spinning.
                tracing::debug!(%err, "echo: accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Resolves once shutdown is requested (or the [`EchoServer`] handle is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender was dropped, which only happens after shutdown was signalled.
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// The connection servers of one listener, by [`Protocols`].
enum Servers {
    /// HTTP/1.x or h2c, with upgrades.
    Auto(auto::Builder<TokioExecutor>),
    /// HTTP/1.x only, with upgrades.
    Http1(hyper::server::conn::http1::Builder),
    /// h2c only.
    H2c(auto::Builder<TokioExecutor>),
}

/// Drives one connection to its end, or shuts it down gracefully once `stop` turns `true`.
macro_rules! serve_until_stopped {
    ($conn:expr, $stop:expr) => {{
        let mut conn = std::pin::pin!($conn);
        let result = tokio::select! {
            result = conn.as_mut() => result,
            () = stopped($stop) => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(err) = result {
            tracing::debug!(%err, "echo: connection ended with an error");
        }
    }};
}

/// Serves one connection as the listener's protocols allow, closing it gracefully on shutdown.
async fn serve_connection<IO>(
    servers: Arc<Servers>,
    stream: IO,
    tls: Option<Arc<EchoTls>>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let shared = Arc::clone(&shared);
        let tls = tls.clone();
        async move { handle(req, tls.as_deref(), &shared).await }
    });
    let io = TokioIo::new(stream);
    match servers.as_ref() {
        Servers::Auto(b) => {
            serve_until_stopped!(b.serve_connection_with_upgrades(io, service), &mut stop)
        }
        Servers::Http1(b) => {
            serve_until_stopped!(b.serve_connection(io, service).with_upgrades(), &mut stop)
        }
        Servers::H2c(b) => serve_until_stopped!(b.serve_connection(io, service), &mut stop),
    }
}

/// Why a request got no answer at all: the connection (or HTTP/2 stream) is dropped.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("retry endpoint drops the connection")
    }
}

impl std::error::Error for Dropped {}

/// Answers one request: a WebSocket, a retry failure, or echo JSON honouring the delay, status
/// and set-header controls.
async fn handle(
    mut req: Request<Incoming>,
    tls: Option<&EchoTls>,
    shared: &Shared,
) -> Result<Response<Full<Bytes>>, Dropped> {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    shared.memory.record(request_target_of(&req));
    if req.uri().path() == "/ws" && wants_websocket(req.headers()) {
        return Ok(websocket(&mut req));
    }
    let (parts, body) = req.into_parts();
    drain(body).await;

    if parts.uri.path().starts_with("/retry/") {
        match retry(&parts, &shared.memory).await {
            RetryVerdict::Echo => {}
            RetryVerdict::Answer(response) => return Ok(response),
            RetryVerdict::Drop => return Err(Dropped),
        }
    }

    let controls = match Controls::from_request(&parts) {
        Ok(controls) => controls,
        Err(message) => return Ok(error_response(StatusCode::INTERNAL_SERVER_ERROR, &message)),
    };
    if !controls.delay.is_zero() {
        tokio::time::sleep(controls.delay).await;
    }

    let mut echo = echo_body(&parts, &shared.identity);
    echo.tls = tls.cloned();
    let Some(json) = to_indented_json(&echo) else {
        return Ok(error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot serialize echo response",
        ));
    };

    let mut response = Response::new(Full::new(Bytes::from(json)));
    *response.status_mut() = controls.status;
    let headers = response.headers_mut();
    for (name, value) in echo_set_headers(&parts.headers) {
        headers.insert(name, value);
    }
    set_json_headers(headers);
    Ok(response)
}

/// The request target as received, for the served-requests record.
fn request_target_of(req: &Request<Incoming>) -> String {
    match req.uri().path_and_query() {
        Some(pq) => pq.as_str().to_owned(),
        None => req.uri().to_string(),
    }
}

/// Whether the request asks for a WebSocket upgrade.
fn wants_websocket(headers: &HeaderMap) -> bool {
    let has_token = |name: &HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        })
    };
    has_token(&UPGRADE, "websocket")
        && has_token(&CONNECTION, "upgrade")
        && headers.contains_key(SEC_WEBSOCKET_KEY)
}

/// Accepts the WebSocket handshake and echoes every text and binary message on its own task.
fn websocket(req: &mut Request<Incoming>) -> Response<Full<Bytes>> {
    let Some(key) = req.headers().get(SEC_WEBSOCKET_KEY) else {
        return error_response(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key");
    };
    let accept = derive_accept_key(key.as_bytes());
    let upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(u) => u,
            Err(err) => {
                tracing::debug!(%err, "echo: websocket upgrade failed");
                return;
            }
        };
        let mut ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        while let Some(Ok(msg)) = ws.next().await {
            let reply = match msg {
                Message::Text(_) | Message::Binary(_) => msg,
                Message::Close(_) => break,
                _ => continue,
            };
            if ws.send(reply).await.is_err() {
                break;
            }
        }
    });
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        headers.insert(SEC_WEBSOCKET_ACCEPT, v);
    }
    response
}

/// What the retry endpoint does with one request.
enum RetryVerdict {
    /// Fail with this answer.
    Answer(Response<Full<Bytes>>),
    /// Fail by dropping the connection.
    Drop,
    /// Enough failures: echo as usual.
    Echo,
}

/// The `/retry/` endpoint: fail the first `succeedAfter` requests of each `uuid`.
async fn retry(parts: &Parts, memory: &PodMemory) -> RetryVerdict {
    let query = parts.uri.query().unwrap_or("");
    let uuid = query_param(query, "uuid").filter(|u| !u.is_empty());
    let succeed_after = query_param(query, "succeedAfter").and_then(|n| n.parse::<u32>().ok());
    let (Some(uuid), Some(succeed_after)) = (uuid, succeed_after) else {
        let mut response = Response::new(Full::new(Bytes::from_static(
            b"uuid and succeedAfter query parameters are required",
        )));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        return RetryVerdict::Answer(response);
    };
    if !memory.must_fail(&uuid, succeed_after) {
        return RetryVerdict::Echo;
    }
    if let Some(delay) = query_param(query, "delayRetry").and_then(|d| parse_go_duration(&d).ok()) {
        tokio::time::sleep(delay).await;
    }
    match query_param(query, "responseCode").and_then(|c| parse_status(&c)) {
        Some(status) => {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = status;
            RetryVerdict::Answer(response)
        }
        None => RetryVerdict::Drop,
    }
}

/// Reads and discards the request body so the connection stays reusable.
async fn drain(mut body: Incoming) {
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            break;
        }
    }
}

/// Content headers every echo answer carries.
fn set_json_headers(headers: &mut HeaderMap) {
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
}

/// A JSON `{"message": ...}` error answer.
fn error_response(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(&serde_json::json!({ "message": message })).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    set_json_headers(response.headers_mut());
    response
}

#[cfg(test)]
mod tests;
