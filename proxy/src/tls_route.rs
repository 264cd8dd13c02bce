//! Ports with `TLS` listeners: the ClientHello is read (not answered) to learn the SNI, which
//! picks the listener. An HTTPS listener gets the bytes back and serves HTTP as usual; a TLS
//! listener routes by SNI to a TLSRoute backend and either passes the bytes through untouched
//! (`Passthrough`) or terminates TLS with its certificate and forwards the plaintext
//! (`Terminate`). A connection nothing serves is closed without a TLS alert, as a TCP proxy would.

use pingora::protocols::l4::stream::Stream as L4Stream;
use rustls::server::Acceptor as HelloReader;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use waygate_config::route_table::BackendTarget;
use waygate_config::snapshot::{ListenerIr, TlsMode};
use waygate_config::{RequestView, Snapshot};

/// The most a ClientHello may take before the connection is dropped.
const HELLO_LIMIT: usize = 16 * 1024;
/// How long a client may take to send it.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting to a backend may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The SNI of the ClientHello at the start of `stream` (lowercased; `None` when absent), and
/// every byte read to find it.
pub async fn read_client_hello(
    stream: &mut L4Stream,
) -> std::io::Result<(Option<String>, Vec<u8>)> {
    let read = async {
        let mut hello = HelloReader::default();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            seen.extend_from_slice(&buf[..n]);
            let mut chunk = &buf[..n];
            while !chunk.is_empty() {
                hello.read_tls(&mut chunk)?;
            }
            match hello.accept() {
                Ok(Some(accepted)) => {
                    let sni = accepted
                        .client_hello()
                        .server_name()
                        .map(|s| s.to_ascii_lowercase());
                    return Ok((sni, seen));
                }
                Ok(None) if seen.len() < HELLO_LIMIT => continue,
                Ok(None) => return Err(std::io::Error::other("ClientHello too large")),
                Err((e, _)) => {
                    return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e));
                }
            }
        }
    };
    tokio::time::timeout(HELLO_TIMEOUT, read)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// The backend endpoint a TLS listener sends this SNI to: the TLSRoute hostname that matches,
/// a weighted pick among its backends, the next ready endpoint.
pub fn backend_for(snapshot: &Snapshot, listener: &ListenerIr, sni: &str) -> Option<SocketAddr> {
    let vh = listener.routes.virtual_host(sni)?;
    let headers = http::HeaderMap::new();
    let view = RequestView {
        method: &http::Method::GET,
        host: sni,
        path: "/",
        query: None,
        headers: &headers,
        scheme: "http",
        source_namespace: None,
    };
    let action = &vh.find(&view)?.action;
    if action.total_weight == 0 {
        return None;
    }
    let i = action.pick(rand::random_range(0..action.total_weight))?;
    match &action.backends.get(i)?.target {
        BackendTarget::Cluster { index, .. } => snapshot.clusters.get(*index)?.next_endpoint(),
        BackendTarget::Invalid { .. } => None,
    }
}

/// Serve one connection on a TLS listener: pass through or terminate, then splice to the
/// backend. `hello` is what was read to learn the SNI.
pub async fn serve(
    mut client: L4Stream,
    hello: Vec<u8>,
    sni: Option<String>,
    snapshot: Arc<Snapshot>,
    listener: &ListenerIr,
) {
    let sni_str = sni.clone().unwrap_or_default();
    let Some(backend) = backend_for(&snapshot, listener, &sni_str) else {
        tracing::debug!(sni = %sni_str, listener = %listener.name, "no TLSRoute backend; closing");
        return;
    };
    let upstream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(backend)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::warn!(%backend, sni = %sni_str, "TLSRoute backend connect failed: {e}");
            return;
        }
        Err(_) => {
            tracing::warn!(%backend, sni = %sni_str, "TLSRoute backend connect timed out");
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    let mut upstream = upstream;
    match listener.tls.as_ref().map(|t| t.mode) {
        Some(TlsMode::Passthrough) => {
            if upstream.write_all(&hello).await.is_err() {
                return;
            }
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
        Some(TlsMode::Terminate) => {
            let Some(config) = terminate_config(listener) else {
                return;
            };
            client.rewind(&hello);
            match tokio_rustls::TlsAcceptor::from(config).accept(client).await {
                Ok(mut tls) => {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                }
                Err(e) => tracing::debug!(sni = %sni_str, "TLS handshake failed: {e}"),
            }
        }
        None => {}
    }
}

/// A server config presenting the listener's certificate (no ALPN: the bytes inside are not
/// HTTP to us).
fn terminate_config(listener: &ListenerIr) -> Option<Arc<rustls::ServerConfig>> {
    let cert = listener.tls.as_ref()?.certificates.first()?.key.clone();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .ok()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(OneCert(cert)));
    Some(Arc::new(config))
}

/// Always the listener's certificate (SNI already chose the listener).
#[derive(Debug)]
struct OneCert(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for OneCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}
