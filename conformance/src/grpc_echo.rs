//! The gRPC echo backend: answers `GrpcEcho/{Echo,EchoTwo}` with the method it was called as, the
//! metadata it saw and its identity, over h2c, as the conformance suite's echo does; `EchoThree`
//! is left unimplemented on purpose (`UNIMPLEMENTED`), as upstream.

use crate::echo::EchoIdentity;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status};

/// Generated protobuf and tonic types.
pub mod pb {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("gateway_api_conformance.echo_basic.grpcecho");
}

/// The fully qualified service name.
pub const SERVICE: &str = "gateway_api_conformance.echo_basic.grpcecho.GrpcEcho";

struct Echo {
    identity: EchoIdentity,
    calls: Arc<AtomicU64>,
}

impl Echo {
    fn answer(
        &self,
        method: &str,
        req: Request<pb::EchoRequest>,
    ) -> Result<Response<pb::EchoResponse>, Status> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut headers: Vec<pb::Header> = req
            .metadata()
            .clone()
            .into_headers()
            .iter()
            .map(|(k, v)| pb::Header {
                key: k.as_str().to_string(),
                value: String::from_utf8_lossy(v.as_bytes()).into_owned(),
            })
            .collect();
        headers.sort_by(|a, b| a.key.cmp(&b.key));
        let authority = headers
            .iter()
            .find(|h| h.key == "host" || h.key == ":authority")
            .map(|h| h.value.clone())
            .unwrap_or_default();
        Ok(Response::new(pb::EchoResponse {
            assertions: Some(pb::Assertions {
                fully_qualified_method: format!("/{SERVICE}/{method}"),
                headers,
                authority,
                context: Some(pb::Context {
                    namespace: self.identity.namespace.clone(),
                    ingress: String::new(),
                    service_name: self.identity.service.clone(),
                    pod: self.identity.pod.clone(),
                }),
            }),
        }))
    }
}

#[tonic::async_trait]
impl pb::grpc_echo_server::GrpcEcho for Echo {
    async fn echo(
        &self,
        req: Request<pb::EchoRequest>,
    ) -> Result<Response<pb::EchoResponse>, Status> {
        self.answer("Echo", req)
    }
    async fn echo_two(
        &self,
        req: Request<pb::EchoRequest>,
    ) -> Result<Response<pb::EchoResponse>, Status> {
        self.answer("EchoTwo", req)
    }
    async fn echo_three(
        &self,
        _req: Request<pb::EchoRequest>,
    ) -> Result<Response<pb::EchoResponse>, Status> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        Err(Status::unimplemented("EchoThree is not implemented"))
    }
}

/// A running gRPC echo backend; dropping it stops the server.
pub struct GrpcEchoServer {
    /// The bound address.
    pub addr: SocketAddr,
    calls: Arc<AtomicU64>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl GrpcEchoServer {
    /// Bind (port 0 allowed) and serve on the current tokio runtime.
    pub async fn start(bind: SocketAddr, identity: EchoIdentity) -> std::io::Result<Self> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let calls = Arc::new(AtomicU64::new(0));
        let svc = pb::grpc_echo_server::GrpcEchoServer::new(Echo {
            identity,
            calls: calls.clone(),
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let incoming = tokio_stream_from(listener);
        let task = tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = served {
                tracing::debug!("grpc echo stopped: {e}");
            }
        });
        Ok(Self {
            addr,
            calls,
            stop: Some(stop),
            task,
        })
    }

    /// Calls answered so far.
    pub fn call_count(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

impl Drop for GrpcEchoServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

/// Accepted connections as the stream tonic's `serve_with_incoming` takes.
fn tokio_stream_from(
    listener: TcpListener,
) -> impl tonic::codegen::tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    tonic::codegen::tokio_stream::wrappers::TcpListenerStream::new(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_with_method_metadata_and_identity() {
        let server = GrpcEchoServer::start(
            "127.0.0.1:0".parse().unwrap(),
            EchoIdentity::new("ns", "grpc-svc", "grpc-svc-pod-1"),
        )
        .await
        .unwrap();
        let mut client =
            pb::grpc_echo_client::GrpcEchoClient::connect(format!("http://{}", server.addr))
                .await
                .unwrap();
        let mut req = Request::new(pb::EchoRequest {});
        req.metadata_mut().insert("x-test", "1".parse().unwrap());
        let resp = client.echo_two(req).await.unwrap().into_inner();
        let a = resp.assertions.unwrap();
        assert_eq!(a.fully_qualified_method, format!("/{SERVICE}/EchoTwo"));
        assert!(
            a.headers
                .iter()
                .any(|h| h.key == "x-test" && h.value == "1")
        );
        let ctx = a.context.unwrap();
        assert_eq!(
            (ctx.namespace.as_str(), ctx.pod.as_str()),
            ("ns", "grpc-svc-pod-1")
        );
        assert_eq!(server.call_count(), 1);
        let three = client
            .echo_three(Request::new(pb::EchoRequest {}))
            .await
            .unwrap_err();
        assert_eq!(three.code(), tonic::Code::Unimplemented);
    }
}
