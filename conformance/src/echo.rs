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
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

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
                tokio::spawn(serve_connection(
                    Arc::clone(&builder),
                    stream,
                    Arc::clone(&shared),
                    stop.clone(),
                ));
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
async fn serve_connection(
    servers: Arc<Servers>,
    stream: TcpStream,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let service = service_fn(move |req| {
        let shared = Arc::clone(&shared);
        async move { handle(req, &shared).await }
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

    let echo = echo_body(&parts, &shared.identity);
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

/// Behaviour requested by the client through headers or query parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Controls {
    /// How long to wait before answering.
    delay: Duration,
    /// Status code to answer with.
    status: StatusCode,
}

impl Controls {
    /// Reads the delay and status controls; the header wins over the query parameter.
    fn from_request(parts: &Parts) -> Result<Self, String> {
        let query = parts.uri.query().unwrap_or("");

        let delay = match control_value(&parts.headers, DELAY_HEADER, query, DELAY_QUERY) {
            Some(raw) => parse_go_duration(raw.trim())
                .map_err(|err| format!("time: invalid duration {raw:?}: {err}"))?,
            None => Duration::ZERO,
        };

        let status = match control_value(&parts.headers, STATUS_HEADER, query, STATUS_QUERY) {
            Some(raw) => {
                parse_status(raw.trim()).ok_or_else(|| format!("invalid status code {raw:?}"))?
            }
            None => StatusCode::OK,
        };

        Ok(Self { delay, status })
    }
}

/// First value of `header`, else of query parameter `param`; empty values count as absent.
fn control_value(headers: &HeaderMap, header: &str, query: &str, param: &str) -> Option<String> {
    headers
        .get(header)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .or_else(|| query_param(query, param))
        .filter(|value| !value.trim().is_empty())
}

/// Parses a final (non-1xx) status code.
fn parse_status(raw: &str) -> Option<StatusCode> {
    let code: u16 = raw.parse().ok()?;
    StatusCode::from_u16(code)
        .ok()
        .filter(|status| !status.is_informational())
}

/// Builds the echo body for a request.
fn echo_body(parts: &Parts, identity: &EchoIdentity) -> EchoResponse {
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
    }
}

/// The request target as Go's `RequestURI` reports it.
fn request_target(parts: &Parts) -> String {
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
fn request_host(parts: &Parts) -> String {
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
fn go_proto(version: Version) -> &'static str {
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
fn canonical_headers(parts: &Parts) -> BTreeMap<String, Vec<String>> {
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
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// Response headers requested through `X-Echo-Set-Header`, repeated names joined with `,`.
///
/// Malformed names or values are skipped, as are framing headers that would corrupt the response.
fn echo_set_headers(headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    let mut wanted: Vec<(HeaderName, String)> = Vec::new();
    for list in headers.get_all(SET_HEADER) {
        let list = String::from_utf8_lossy(list.as_bytes());
        for pair in list.split(',') {
            let pair = pair.trim();
            if pair.is_empty() {
                continue;
            }
            let (name, value) = pair.split_once(':').unwrap_or((pair, ""));
            let Ok(name) = HeaderName::from_bytes(name.trim().as_bytes()) else {
                continue;
            };
            if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
                continue;
            }
            let value = value.trim();
            match wanted.iter_mut().find(|(existing, _)| *existing == name) {
                Some((_, joined)) => {
                    joined.push(',');
                    joined.push_str(value);
                }
                None => wanted.push((name, value.to_owned())),
            }
        }
    }
    wanted
        .into_iter()
        .filter_map(|(name, value)| Some((name, HeaderValue::from_str(&value).ok()?)))
        .collect()
}

/// Content headers every echo answer carries.
fn set_json_headers(headers: &mut HeaderMap) {
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
}

/// Serializes with a one-space indent, matching Go's `json.MarshalIndent(v, "", " ")`.
fn to_indented_json<T: Serialize>(value: &T) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(512);
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    value.serialize(&mut serializer).ok()?;
    Some(out)
}

/// A JSON `{"message": ...}` error answer.
fn error_response(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(&serde_json::json!({ "message": message })).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    set_json_headers(response.headers_mut());
    response
}

/// First value of query parameter `key`, percent-decoded (`+` as space) like Go's `url.ParseQuery`.
fn query_param(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .find(|(name, _)| percent_decode(name) == key)
        .map(|(_, value)| percent_decode(value))
}

/// Decodes `%XX` escapes and `+`; malformed escapes are kept literally.
fn percent_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok());
                if let Some(byte) = hex {
                    out.push(byte);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a Go `time.ParseDuration` string (`300ms`, `1.5h`, `2h45m`); negative values become zero.
fn parse_go_duration(input: &str) -> Result<Duration, String> {
    /// Largest Go duration (`math.MaxInt64` nanoseconds).
    const MAX_NANOS: u128 = i64::MAX as u128;

    let (negative, mut rest) = match (input.strip_prefix('-'), input.strip_prefix('+')) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        (None, None) => (false, input),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err("empty duration".to_owned());
    }

    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, after_int) = rest.split_at(int_len);
        let (frac_digits, after_number) = match after_int.strip_prefix('.') {
            Some(after_dot) => {
                let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
                after_dot.split_at(frac_len)
            }
            None => ("", after_int),
        };
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err("expected a number".to_owned());
        }

        let unit_len = after_number
            .find(|ch: char| ch == '.' || ch.is_ascii_digit())
            .unwrap_or(after_number.len());
        let (unit, after_unit) = after_number.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err("missing unit".to_owned()),
            other => return Err(format!("unknown unit {other:?}")),
        };

        let mut whole: u128 = 0;
        for digit in int_digits.bytes() {
            whole = whole * 10 + u128::from(digit - b'0');
            if whole > MAX_NANOS {
                return Err("overflow".to_owned());
            }
        }
        let mut part = whole * unit_nanos;

        // Fractional digits beyond nanosecond precision of the largest unit cannot matter.
        let mut scale: u128 = 1;
        let mut frac: u128 = 0;
        for digit in frac_digits.bytes().take(20) {
            frac = frac * 10 + u128::from(digit - b'0');
            scale *= 10;
        }
        part += frac * unit_nanos / scale;

        total += part;
        if total > MAX_NANOS {
            return Err("overflow".to_owned());
        }
        rest = after_unit;
    }

    if negative {
        return Ok(Duration::ZERO);
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| "overflow".to_owned())?;
    let nanos = u32::try_from(total % 1_000_000_000).map_err(|_| "overflow".to_owned())?;
    Ok(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    type TestClient = Client<HttpConnector, Full<Bytes>>;

    fn identity() -> EchoIdentity {
        EchoIdentity::new(
            "gateway-conformance-infra",
            "infra-backend-v1",
            "infra-backend-v1-abc",
        )
    }

    async fn server() -> EchoServer {
        EchoServer::start("127.0.0.1:0".parse().unwrap(), identity())
            .await
            .unwrap()
    }

    fn http1_client() -> TestClient {
        Client::builder(TokioExecutor::new()).build_http()
    }

    fn h2c_client() -> TestClient {
        Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http()
    }

    async fn send(
        client: &TestClient,
        req: Request<Full<Bytes>>,
    ) -> (http::response::Parts, Bytes) {
        let response = client.request(req).await.unwrap();
        let (parts, body) = response.into_parts();
        (parts, body.collect().await.unwrap().to_bytes())
    }

    fn get(url: String) -> Request<Full<Bytes>> {
        Request::get(url).body(Full::default()).unwrap()
    }

    #[tokio::test]
    async fn http1_echo_has_upstream_shape() {
        let server = server().await;
        let req = Request::get(format!("http://{}/foo/bar?x=1&y=two", server.addr))
            .header("x-multi", "a")
            .header("x-multi", "b")
            .header("user-agent", "echo-test")
            .body(Full::default())
            .unwrap();
        let (parts, body) = send(&http1_client(), req).await;

        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(parts.headers[CONTENT_TYPE], "application/json");
        assert_eq!(parts.headers["x-content-type-options"], "nosniff");

        let raw: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let keys: Vec<&str> = raw
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected_keys = vec![
            "path",
            "host",
            "method",
            "proto",
            "headers",
            "namespace",
            "ingress",
            "service",
            "pod",
        ];
        let mut sorted_keys = keys.clone();
        sorted_keys.sort_unstable();
        expected_keys.sort_unstable();
        assert_eq!(sorted_keys, expected_keys);
        assert!(body.starts_with(b"{\n \"path\": "), "one-space indent");

        let echo: EchoResponse = serde_json::from_slice(&body).unwrap();
        assert_eq!(echo.path, "/foo/bar?x=1&y=two");
        assert_eq!(echo.host, server.addr.to_string());
        assert_eq!(echo.method, "GET");
        assert_eq!(echo.proto, "HTTP/1.1");
        assert_eq!(echo.headers["X-Multi"], vec!["a", "b"]);
        assert_eq!(echo.headers["User-Agent"], vec!["echo-test"]);
        assert!(!echo.headers.contains_key("Host"));
        assert_eq!(echo.namespace, "gateway-conformance-infra");
        assert_eq!(echo.ingress, "");
        assert_eq!(echo.service, "infra-backend-v1");
        assert_eq!(echo.pod, "infra-backend-v1-abc");
        assert_eq!(server.request_count(), 1);
    }

    #[tokio::test]
    async fn h2c_echo_reports_http2() {
        let server = server().await;
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("http://{}/h2/path?q=1", server.addr))
            .header("x-forwarded-for", "10.0.0.1")
            .header("x-forwarded-for", "10.0.0.2")
            .body(Full::new(Bytes::from_static(b"payload")))
            .unwrap();
        let (parts, body) = send(&h2c_client(), req).await;

        assert_eq!(parts.version, Version::HTTP_2);
        assert_eq!(parts.status, StatusCode::OK);
        let echo: EchoResponse = serde_json::from_slice(&body).unwrap();
        assert_eq!(echo.proto, "HTTP/2.0");
        assert_eq!(echo.method, "POST");
        assert_eq!(echo.path, "/h2/path?q=1");
        assert_eq!(echo.host, server.addr.to_string());
        assert_eq!(
            echo.headers["X-Forwarded-For"],
            vec!["10.0.0.1", "10.0.0.2"]
        );
        assert_eq!(echo.pod, "infra-backend-v1-abc");
        assert_eq!(server.request_count(), 1);
    }

    #[tokio::test]
    async fn set_header_and_status_override() {
        let server = server().await;
        let client = http1_client();

        let req = Request::get(format!("http://{}/", server.addr))
            .header(SET_HEADER, "X-Foo: bar, X-Baz:qux,X-Foo:again")
            .header(STATUS_HEADER, "418")
            .body(Full::default())
            .unwrap();
        let (parts, body) = send(&client, req).await;
        assert_eq!(parts.status, StatusCode::IM_A_TEAPOT);
        assert_eq!(parts.headers["x-foo"], "bar,again");
        assert_eq!(parts.headers["x-baz"], "qux");
        assert_eq!(parts.headers[CONTENT_TYPE], "application/json");
        let echo: EchoResponse = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            echo.headers["X-Echo-Set-Header"],
            vec!["X-Foo: bar, X-Baz:qux,X-Foo:again"]
        );

        let (parts, body) =
            send(&client, get(format!("http://{}/s?status=503", server.addr))).await;
        assert_eq!(parts.status, StatusCode::SERVICE_UNAVAILABLE);
        let echo: EchoResponse = serde_json::from_slice(&body).unwrap();
        assert_eq!(echo.path, "/s?status=503");

        let (parts, body) = send(&client, get(format!("http://{}/?status=abc", server.addr))).await;
        assert_eq!(parts.status, StatusCode::INTERNAL_SERVER_ERROR);
        let message: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(message["message"].as_str().unwrap().contains("abc"));

        assert_eq!(server.request_count(), 3);
    }

    #[tokio::test]
    async fn delay_from_query_and_header() {
        let server = server().await;
        let client = h2c_client();

        let started = Instant::now();
        let (parts, _) = send(&client, get(format!("http://{}/?delay=150ms", server.addr))).await;
        assert_eq!(parts.status, StatusCode::OK);
        assert!(started.elapsed() >= Duration::from_millis(150));

        let started = Instant::now();
        let req = Request::get(format!("http://{}/", server.addr))
            .header(DELAY_HEADER, "0.1s")
            .body(Full::default())
            .unwrap();
        let (parts, _) = send(&client, req).await;
        assert_eq!(parts.status, StatusCode::OK);
        assert!(started.elapsed() >= Duration::from_millis(100));

        let req = Request::get(format!("http://{}/", server.addr))
            .header(DELAY_HEADER, "soon")
            .body(Full::default())
            .unwrap();
        let (parts, _) = send(&client, req).await;
        assert_eq!(parts.status, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[tokio::test]
    async fn raw_http10_request() {
        let server = server().await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"GET /raw HTTP/1.0\r\nHost: example.com\r\nx-lower-case: v\r\n\r\n")
            .await
            .unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let text = String::from_utf8(response).unwrap();
        assert!(text.starts_with("HTTP/1.0 200 OK\r\n"), "{text}");
        let (_, body) = text.split_once("\r\n\r\n").unwrap();
        let echo: EchoResponse = serde_json::from_str(body).unwrap();
        assert_eq!(echo.proto, "HTTP/1.0");
        assert_eq!(echo.host, "example.com");
        assert_eq!(echo.path, "/raw");
        assert_eq!(echo.headers["X-Lower-Case"], vec!["v"]);
    }

    #[tokio::test]
    async fn records_what_it_served_across_listeners() {
        let memory = PodMemory::new();
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let h1 = EchoServer::start_with(any, identity(), Protocols::Http1, memory.clone())
            .await
            .unwrap();
        let h2 = EchoServer::start_with(any, identity(), Protocols::H2c, memory.clone())
            .await
            .unwrap();
        send(&http1_client(), get(format!("http://{}/a?x=1", h1.addr))).await;
        send(&h2c_client(), get(format!("http://{}/b", h2.addr))).await;
        assert_eq!(
            memory.served(),
            vec!["/a?x=1".to_string(), "/b".to_string()]
        );
        assert_eq!(h1.served(), h2.served());
    }

    #[tokio::test]
    async fn h2c_listener_refuses_http1() {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let server = EchoServer::start_with(any, identity(), Protocols::H2c, PodMemory::new())
            .await
            .unwrap();
        let refused = http1_client()
            .request(get(format!("http://{}/", server.addr)))
            .await;
        assert!(refused.is_err(), "{refused:?}");
        let (parts, _) = send(&h2c_client(), get(format!("http://{}/", server.addr))).await;
        assert_eq!(parts.status, StatusCode::OK);
    }

    #[tokio::test]
    async fn retry_endpoint_fails_then_echoes() {
        let server = server().await;
        let client = http1_client();
        let url = |id: &str, code: &str| {
            format!(
                "http://{}/retry/x?responseCode={code}&succeedAfter=2&uuid={id}",
                server.addr
            )
        };
        for want in [503, 503, 200] {
            let (parts, _) = send(&client, get(url("one", "503"))).await;
            assert_eq!(parts.status.as_u16(), want);
        }
        // Counters are per id.
        let (parts, _) = send(&client, get(url("two", "500"))).await;
        assert_eq!(parts.status, StatusCode::INTERNAL_SERVER_ERROR);
        // Without a response code the connection is dropped without an answer.
        let dropped = client
            .request(get(format!(
                "http://{}/retry/x?succeedAfter=1&uuid=three",
                server.addr
            )))
            .await;
        assert!(dropped.is_err(), "{dropped:?}");
        let (parts, _) = send(&client, get(format!("http://{}/retry/x", server.addr))).await;
        assert_eq!(parts.status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn websocket_echoes_text_and_binary() {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let server = server().await;
        let req = format!("ws://{}/ws", server.addr)
            .into_client_request()
            .unwrap();
        let tcp = TcpStream::connect(server.addr).await.unwrap();
        let (mut ws, _) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
        for msg in [Message::text("hi"), Message::binary(vec![1u8, 2, 3])] {
            ws.send(msg.clone()).await.unwrap();
            assert_eq!(ws.next().await.unwrap().unwrap(), msg);
        }
    }

    #[tokio::test]
    async fn shutdown_closes_listener() {
        let server = server().await;
        let addr = server.addr;
        let (parts, _) = send(&http1_client(), get(format!("http://{addr}/"))).await;
        assert_eq!(parts.status, StatusCode::OK);
        server.shutdown().await;
        assert!(TcpStream::connect(addr).await.is_err());
    }

    #[test]
    fn canonical_keys_match_go() {
        assert_eq!(canonical_header_key("x-forwarded-for"), "X-Forwarded-For");
        assert_eq!(canonical_header_key("user-agent"), "User-Agent");
        assert_eq!(canonical_header_key("WWW-AUTHENTICATE"), "Www-Authenticate");
        assert_eq!(canonical_header_key("x_under-score"), "X_under-Score");
        assert_eq!(canonical_header_key("-leading"), "-Leading");
        assert_eq!(canonical_header_key("bad header"), "bad header");
    }

    #[test]
    fn go_durations() {
        let ms = Duration::from_millis;
        assert_eq!(parse_go_duration("500ms"), Ok(ms(500)));
        assert_eq!(parse_go_duration("1s"), Ok(ms(1000)));
        assert_eq!(parse_go_duration("1.5s"), Ok(ms(1500)));
        assert_eq!(parse_go_duration(".5s"), Ok(ms(500)));
        assert_eq!(parse_go_duration("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse_go_duration("2h"), Ok(ms(7_200_000)));
        assert_eq!(parse_go_duration("10us"), Ok(Duration::from_micros(10)));
        assert_eq!(parse_go_duration("10µs"), Ok(Duration::from_micros(10)));
        assert_eq!(parse_go_duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("-1s"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("+1s"), Ok(ms(1000)));
        for bad in ["", "1", "s", "1x", ".s", "1.s.", "-", "9999999999h"] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn query_params_decode() {
        assert_eq!(query_param("a=1&delay=1s", "delay").as_deref(), Some("1s"));
        assert_eq!(
            query_param("delay=1%30ms&delay=2s", "delay").as_deref(),
            Some("10ms")
        );
        assert_eq!(query_param("x=a+b", "x").as_deref(), Some("a b"));
        assert_eq!(query_param("x=%zz", "x").as_deref(), Some("%zz"));
        assert_eq!(query_param("flag", "flag").as_deref(), Some(""));
        assert_eq!(query_param("", "delay"), None);
    }

    #[test]
    fn set_header_parsing() {
        let mut headers = HeaderMap::new();
        headers.append(SET_HEADER, HeaderValue::from_static("A: 1, B:2"));
        headers.append(
            SET_HEADER,
            HeaderValue::from_static("a:3, bad name:4, Content-Length: 9"),
        );
        let set = echo_set_headers(&headers);
        assert_eq!(
            set,
            vec![
                (
                    HeaderName::from_static("a"),
                    HeaderValue::from_static("1,3")
                ),
                (HeaderName::from_static("b"), HeaderValue::from_static("2")),
            ]
        );
    }
}
