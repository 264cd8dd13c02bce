//! GRPCRoute end to end: a real tonic client over h2c to the gateway, HTTP/2 to a tonic backend.

mod common;

use common::*;
use waygate_conformance::echo::EchoIdentity;
use waygate_conformance::grpc_echo::{GrpcEchoServer, SERVICE, pb};

fn grpc_service_yaml(ns: &str, name: &str, ep: std::net::SocketAddr) -> String {
    // No appProtocol: a GRPCRoute backend is spoken to over HTTP/2 anyway.
    service_yaml(ns, name, &[ep])
}

#[tokio::test]
async fn grpc_routes_by_method_and_answers_unimplemented_gr_2_gr_4() {
    let one = GrpcEchoServer::start(
        "127.0.0.1:0".parse().unwrap(),
        EchoIdentity::new("apps", "one", "one-pod"),
    )
    .await
    .unwrap();
    let two = GrpcEchoServer::start(
        "127.0.0.1:0".parse().unwrap(),
        EchoIdentity::new("apps", "two", "two-pod"),
    )
    .await
    .unwrap();
    let yaml = gateway_yaml()
        + &grpc_service_yaml("apps", "one", one.addr)
        + &grpc_service_yaml("apps", "two", two.addr)
        + &format!(
            r#"---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: g, namespace: apps}}
spec:
  parentRefs: [{{name: gw, namespace: infra}}]
  hostnames: [grpc.example.com]
  rules:
  - matches: [{{method: {{service: {SERVICE}, method: EchoTwo}}}}]
    backendRefs: [{{name: two, port: 8080}}]
  - matches: [{{method: {{service: {SERVICE}, method: Echo}}, headers: [{{name: x-pick, value: one}}]}}]
    backendRefs: [{{name: one, port: 8080}}]
  - matches: [{{method: {{service: {SERVICE}, method: EchoThree}}}}]
    backendRefs: [{{name: missing, port: 8080}}]
"#
        );
    let gw = start_inline(yaml).await;
    let addr = gw_addr(&gw);
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .origin(
            format!("http://grpc.example.com:{}", addr.port())
                .parse()
                .unwrap(),
        )
        .connect()
        .await
        .unwrap();
    let mut client = pb::grpc_echo_client::GrpcEchoClient::new(channel);

    let resp = client
        .echo_two(pb::EchoRequest {})
        .await
        .unwrap()
        .into_inner();
    let a = resp.assertions.unwrap();
    assert_eq!(a.fully_qualified_method, format!("/{SERVICE}/EchoTwo"));
    assert_eq!(a.context.unwrap().pod, "two-pod");

    let mut req = tonic::Request::new(pb::EchoRequest {});
    req.metadata_mut().insert("x-pick", "one".parse().unwrap());
    let resp = client.echo(req).await.unwrap().into_inner();
    assert_eq!(resp.assertions.unwrap().context.unwrap().pod, "one-pod");

    // [GR-4] no rule matches: UNIMPLEMENTED; an unresolvable backend: UNAVAILABLE.
    let err = client.echo(pb::EchoRequest {}).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented, "{err:?}");
    let err = client.echo_three(pb::EchoRequest {}).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert_eq!((one.call_count(), two.call_count()), (1, 1));
}
