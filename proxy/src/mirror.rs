//! Request mirroring ([HF-4]): fire-and-forget copies sent by a small pooled HTTP/1.1 client on
//! the tokio runtime, bounded so that a slow mirror can neither delay the primary request nor
//! pile up memory.
//!
//! What a copy carries: the method, the path after URLRewrite, the request headers after the
//! rule's and backend's header modifiers (hop-by-hop headers removed, `x-forwarded-for`
//! appended, Host with `-shadow` appended as Envoy does), and the body when the whole body fits
//! in [`MIRROR_BODY_LIMIT`]. A bodyless request is copied at once, headers only; a request with
//! a body is copied when its last byte has gone through the proxy; a body over the limit is not
//! mirrored at all (counted as dropped) rather than sent truncated.

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, EXPECT, HOST, TE, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;
use waygate_filters::mirror::shadow_host;

/// The largest request body that is mirrored (the same bound as Pingora's retry buffer).
pub const MIRROR_BODY_LIMIT: usize = 64 * 1024;

/// Copies in flight at once, process-wide; more are dropped and counted.
pub const MAX_IN_FLIGHT: usize = 256;

/// How long one copy may take, response body included, before it is abandoned.
const MIRROR_TIMEOUT: Duration = Duration::from_secs(30);

/// Idle pooled connections kept per mirror endpoint.
const MAX_IDLE_PER_HOST: usize = 16;

/// Hop-by-hop and framing headers a copy does not inherit from the original.
const SKIPPED: [HeaderName; 7] = [
    CONNECTION,
    TE,
    TRANSFER_ENCODING,
    UPGRADE,
    CONTENT_LENGTH,
    EXPECT,
    HOST,
];

/// The request line and headers of a copy; the body comes separately.
#[derive(Debug, Clone)]
pub struct MirrorCopy {
    method: Method,
    path_and_query: String,
    headers: HeaderMap,
}

impl MirrorCopy {
    /// A copy of a request with these (already filtered) headers, going to `path_and_query`,
    /// for the upstream Host `host`.
    pub fn new(method: Method, path_and_query: String, headers: &HeaderMap, host: &str) -> Self {
        let mut out = HeaderMap::with_capacity(headers.len() + 1);
        for (name, value) in headers {
            let hop_by_hop = SKIPPED.contains(name)
                || name.as_str() == "keep-alive"
                || name.as_str() == "proxy-connection";
            if !hop_by_hop {
                out.append(name.clone(), value.clone());
            }
        }
        if let Ok(v) = HeaderValue::try_from(shadow_host(host)) {
            out.insert(HOST, v);
        }
        Self {
            method,
            path_and_query,
            headers: out,
        }
    }

    /// Set one header on the copy.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// The headers the copy will carry.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }
}

/// What happened to copies so far.
#[derive(Debug, Default)]
pub struct MirrorStats {
    /// Copies the mirror answered (whatever the status).
    pub completed: AtomicU64,
    /// Copies that failed (connect error, reset, timeout).
    pub failed: AtomicU64,
    /// Copies never sent: too many in flight, body too large, or no runtime.
    pub dropped: AtomicU64,
}

/// The mirror sender: a pooled client and a bound on copies in flight.
pub struct Mirrorer {
    client: Client<HttpConnector, Full<Bytes>>,
    permits: Arc<Semaphore>,
    stats: Arc<MirrorStats>,
}

impl Mirrorer {
    /// A sender allowing `max_in_flight` copies at once.
    pub fn new(max_in_flight: usize) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .build(connector);
        Self {
            client,
            permits: Arc::new(Semaphore::new(max_in_flight)),
            stats: Arc::new(MirrorStats::default()),
        }
    }

    /// The sender a gateway uses: one pool and one in-flight bound shared by all its sockets.
    pub fn for_gateway() -> Self {
        Self::new(MAX_IN_FLIGHT)
    }

    /// Counters.
    pub fn stats(&self) -> &MirrorStats {
        &self.stats
    }

    /// Count a copy that was never sent.
    pub fn drop_copy(&self) {
        self.stats.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Send a copy to `target` in the background; returns whether it was started. Never waits:
    /// when [`MAX_IN_FLIGHT`] copies are outstanding the copy is dropped and counted.
    pub fn send(&self, target: SocketAddr, copy: &MirrorCopy, body: Bytes) -> bool {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            self.drop_copy();
            return false;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.drop_copy();
            return false;
        };
        let Ok(uri) = format!("http://{target}{}", copy.path_and_query).parse::<Uri>() else {
            self.drop_copy();
            return false;
        };
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = copy.method.clone();
        *req.uri_mut() = uri;
        *req.headers_mut() = copy.headers.clone();
        let client = self.client.clone();
        let stats = self.stats.clone();
        runtime.spawn(async move {
            let _permit = permit;
            let exchange = async {
                let resp = client.request(req).await.map_err(|_| ())?;
                // Read the answer off the wire (keeping none of it) so the connection can be
                // pooled again.
                let mut body = resp.into_body();
                while let Some(frame) = body.frame().await {
                    frame.map_err(|_| ())?;
                }
                Ok::<(), ()>(())
            };
            let counter = match tokio::time::timeout(MIRROR_TIMEOUT, exchange).await {
                Ok(Ok(())) => &stats.completed,
                _ => &stats.failed,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn copy() -> MirrorCopy {
        let mut h = HeaderMap::new();
        h.insert("x-keep", HeaderValue::from_static("1"));
        h.insert("connection", HeaderValue::from_static("keep-alive"));
        h.insert("content-length", HeaderValue::from_static("5"));
        h.insert("host", HeaderValue::from_static("orig"));
        MirrorCopy::new(Method::POST, "/m?q=1".into(), &h, "a.io:8080")
    }

    #[test]
    fn copy_drops_hop_by_hop_headers_and_shadows_host_hf_4() {
        let c = copy();
        assert_eq!(c.headers()["x-keep"], "1");
        assert_eq!(c.headers()["host"], "a.io-shadow:8080");
        assert!(c.headers().get("connection").is_none());
        assert!(c.headers().get("content-length").is_none());
    }

    #[tokio::test]
    async fn sends_the_copy_with_its_body_hf_4() {
        // [HF-4] the mirror receives method, path and body.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let m = Mirrorer::new(4);
        assert!(m.send(addr, &copy(), Bytes::from_static(b"hello")));
        let (mut s, _) = l.accept().await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&got).contains("hello") {
            let n = s.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "connection closed early: {}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&got).to_lowercase();
        assert!(text.starts_with("post /m?q=1 http/1.1\r\n"), "{text}");
        assert!(text.contains("host: a.io-shadow:8080\r\n"), "{text}");
        assert!(text.contains("content-length: 5\r\n"), "{text}");
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
        while m.stats().completed.load(Ordering::Relaxed) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn drops_copies_beyond_the_in_flight_bound_hf_4() {
        // [HF-4] a mirror that never answers cannot pile up copies: beyond the bound they are
        // dropped and counted, and sending never waits.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let m = Mirrorer::new(2);
        assert!(m.send(addr, &copy(), Bytes::new()));
        assert!(m.send(addr, &copy(), Bytes::new()));
        assert!(!m.send(addr, &copy(), Bytes::new()));
        assert!(!m.send(addr, &copy(), Bytes::new()));
        assert_eq!(m.stats().dropped.load(Ordering::Relaxed), 2);
        drop(l);
    }
}
