//! Tests of the echo backend with real clients on loopback (HTTP/1.1, h2c, WebSocket).

use super::*;
use http::Method;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

async fn send(client: &TestClient, req: Request<Full<Bytes>>) -> (http::response::Parts, Bytes) {
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

    let (parts, body) = send(&client, get(format!("http://{}/s?status=503", server.addr))).await;
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
