//! Test world helpers: echo backends, config text for them, a gateway on ephemeral ports, and a
//! real HTTP/1.1 keep-alive client.

#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::sync::Arc;
use waygate::BindPlan;
use waygate::gateway::{ConfigSource, Gateway, GatewayOptions};
use waygate_config::NsName;
use waygate_conformance::echo::{EchoIdentity, EchoServer};

/// Start an echo backend for `ns/svc` whose pod name is `pod`.
pub async fn echo(ns: &str, svc: &str, pod: &str) -> EchoServer {
    EchoServer::start(
        "127.0.0.1:0".parse().unwrap(),
        EchoIdentity::new(ns, svc, pod),
    )
    .await
    .unwrap()
}

/// A Gateway `infra/gw` with one HTTP listener on port 80 accepting routes from all namespaces.
pub fn gateway_yaml() -> String {
    r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: istio
  listeners:
  - {name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
"#
    .to_string()
}

/// A Service `ns/name` port 8080 plus an EndpointSlice pointing at `endpoints`.
pub fn service_yaml(ns: &str, name: &str, endpoints: &[SocketAddr]) -> String {
    let mut out = format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  ports:\n  - {{name: http, port: 8080, targetPort: 3000}}\n"
    );
    for (i, ep) in endpoints.iter().enumerate() {
        out.push_str(&format!(
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-{i}\n  namespace: {ns}\n  labels: {{kubernetes.io/service-name: {name}}}\naddressType: IPv4\nports:\n- {{name: http, port: {}}}\nendpoints:\n- addresses: [\"{}\"]\n  conditions: {{ready: true}}\n",
            ep.port(),
            ep.ip()
        ));
    }
    out
}

/// Start a gateway on ephemeral ports from inline YAML.
pub async fn start_inline(yaml: String) -> Arc<Gateway> {
    Gateway::start(GatewayOptions {
        source: ConfigSource::Inline {
            name: "test.yaml".into(),
            text: yaml,
        },
        bind: BindPlan::Ephemeral("127.0.0.1".parse().unwrap()),
        admin: Some("127.0.0.1:0".parse().unwrap()),
        gateways: vec![],
        watch: false,
    })
    .await
    .unwrap()
}

/// The address of `infra/gw` port 80.
pub fn gw_addr(gw: &Gateway) -> SocketAddr {
    gw.bound_addr(&NsName::new("infra", "gw"), 80).unwrap()
}

/// A pooled keep-alive HTTP/1.1 client.
pub fn client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A response, read whole.
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    /// The echoed JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
    /// The echoed pod name.
    pub fn pod(&self) -> String {
        self.json()["pod"].as_str().unwrap_or("").to_string()
    }
    /// An echoed request header, values joined with ','.
    pub fn seen_header(&self, name: &str) -> Option<String> {
        let j = self.json();
        let headers = j["headers"].as_object()?;
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| {
                v.as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default()
            })
    }
}

/// Send a request; `None` on a transport error.
pub async fn send(
    client: &Client<HttpConnector, Empty<Bytes>>,
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<Reply> {
    let mut b = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("host", host);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = client.request(b.body(Empty::new()).ok()?).await.ok()?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    Some(Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// GET with a Host.
pub async fn get(addr: SocketAddr, host: &str, path: &str) -> Reply {
    send(&client(), addr, "GET", host, path, &[])
        .await
        .expect("request failed")
}

/// GET an admin path.
pub async fn admin_get(gw: &Gateway, path: &str) -> Reply {
    let addr = gw.admin_addr().unwrap();
    send(&client(), addr, "GET", "localhost", path, &[])
        .await
        .expect("admin request failed")
}
