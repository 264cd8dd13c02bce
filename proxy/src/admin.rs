//! The admin server (Istio's 15000): `/ready`, `/healthz/ready`, `/status`, `/config_dump`, `/explain`.

use crate::state::SharedState;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use waygate_config::NsName;
use waygate_config::explain::{ExplainRequest, explain};

/// Bind and serve the admin API; returns the bound address and the server task.
pub async fn serve(
    addr: SocketAddr,
    state: Arc<SharedState>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(handle(&state, req)) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    Ok((bound, task))
}

fn handle(state: &SharedState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/ready" | "/healthz/ready" => {
            if state.is_ready() {
                text(StatusCode::OK, "LIVE\n".into())
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready: no config served yet\n".into())
            }
        }
        "/status" => json(&state.status().report.objects),
        "/config_dump" => json(&*state.snapshot()),
        "/explain" => explain_endpoint(state, req.uri().query().unwrap_or("")),
        _ => text(
            StatusCode::NOT_FOUND,
            "endpoints: /ready /healthz/ready /status /config_dump /explain?gateway=NS/NAME&listener=L&request=GET+http://host/path[&header=name:value]\n".into(),
        ),
    }
}

fn explain_endpoint(state: &SharedState, query: &str) -> Response<Full<Bytes>> {
    let mut gateway = None;
    let mut listener = None;
    let mut request = None;
    let mut headers = http::HeaderMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = waygate_config::request_match::percent_decode(v).into_owned();
        match k {
            "gateway" => gateway = NsName::parse(&v),
            "listener" => listener = Some(v),
            "request" => request = Some(v),
            "header" => {
                let Some((name, value)) = v.split_once(':') else {
                    return text(
                        StatusCode::BAD_REQUEST,
                        format!("header {v:?} is not name:value\n"),
                    );
                };
                match (
                    http::HeaderName::from_bytes(name.trim().as_bytes()),
                    http::HeaderValue::from_str(value.trim()),
                ) {
                    (Ok(n), Ok(val)) => {
                        headers.append(n, val);
                    }
                    _ => return text(StatusCode::BAD_REQUEST, format!("invalid header {v:?}\n")),
                }
            }
            _ => {}
        }
    }
    let (Some(gateway), Some(listener), Some(request)) = (gateway, listener, request) else {
        return text(
            StatusCode::BAD_REQUEST,
            "need gateway=NS/NAME, listener=NAME and request=METHOD+URL\n".into(),
        );
    };
    match ExplainRequest::parse(gateway, listener, &request, headers) {
        Ok(req) => text(StatusCode::OK, explain(&state.snapshot(), &req).to_string()),
        Err(e) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
    }
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> Response<Full<Bytes>> {
    match serde_json::to_vec_pretty(value) {
        Ok(body) => Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}
