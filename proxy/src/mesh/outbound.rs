//! HBONE outbound ([HB-W1], [HB-W5]): a gateway sends traffic for a Service bound to a waypoint
//! through that waypoint, as an HTTP/2 `CONNECT` stream to `VIP:port` over mutual TLS with the
//! gateway's own identity. HTTP/2 connections are pooled per (peer address, identity and trust
//! bundle), never shared across either; each upstream connection Pingora asks for is one new
//! stream.

use super::MeshIdentity;
use super::tunnel::H2Duplex;
use async_trait::async_trait;
use bytes::Bytes;
use h2::client::SendRequest;
use pingora::connectors::L4Connect;
use pingora::protocols::l4::socket::SocketAddr as PingoraAddr;
use pingora::protocols::l4::stream::Stream;
use pingora::protocols::l4::virt::{VirtualSockOpt, VirtualSocket, VirtualSocketStream};
use pingora::{Error, ErrorType};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Pooled HBONE connections, by (peer address, our identity's fingerprint: certificate and
/// trust bundle, the identity the peer must present).
#[derive(Default)]
pub struct HbonePool {
    conns: Mutex<HashMap<PoolKey, SendRequest<Bytes>>>,
}

type PoolKey = (SocketAddr, u64, Option<String>);

impl std::fmt::Debug for HbonePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HbonePool")
    }
}

fn failed(kind: ErrorType, msg: String) -> Box<Error> {
    Error::explain(kind, msg)
}

impl HbonePool {
    /// A ready sender to `addr` under `identity`: a pooled connection, or a new one.
    async fn sender(
        &self,
        addr: SocketAddr,
        identity: &MeshIdentity,
        peer_id: Option<&str>,
    ) -> pingora::Result<SendRequest<Bytes>> {
        let key = (addr, identity.fingerprint, peer_id.map(str::to_string));
        let pooled = self.conns.lock().ok().and_then(|m| m.get(&key).cloned());
        if let Some(s) = pooled
            && let Ok(ready) = s.ready().await
        {
            return Ok(ready);
        }
        let fresh = connect(addr, identity, peer_id).await?;
        if let Ok(mut m) = self.conns.lock() {
            m.insert(key, fresh.clone());
        }
        fresh
            .ready()
            .await
            .map_err(|e| failed(ErrorType::ConnectError, format!("HBONE to {addr}: {e}")))
    }
}

/// Open an HBONE connection: TCP, TLS 1.3 with our certificate and the trust bundle, `h2`.
async fn connect(
    addr: SocketAddr,
    identity: &MeshIdentity,
    peer_id: Option<&str>,
) -> pingora::Result<SendRequest<Bytes>> {
    let config = client_config(identity, peer_id)
        .map_err(|e| failed(ErrorType::TLSHandshakeFailure, format!("HBONE client: {e}")))?;
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| {
        let kind = match e.kind() {
            std::io::ErrorKind::ConnectionRefused => ErrorType::ConnectRefused,
            _ => ErrorType::ConnectError,
        };
        failed(kind, format!("HBONE connect {addr}: {e}"))
    })?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::IpAddress(addr.ip().into());
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| {
            failed(
                ErrorType::TLSHandshakeFailure,
                format!("HBONE TLS to {addr}: {e}"),
            )
        })?;
    let (send, conn) = h2::client::Builder::new()
        .initial_window_size(1 << 20)
        .initial_connection_window_size(16 << 20)
        .handshake::<_, Bytes>(tls)
        .await
        .map_err(|e| {
            failed(
                ErrorType::ConnectError,
                format!("HBONE HTTP/2 to {addr}: {e}"),
            )
        })?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

fn client_config(
    identity: &MeshIdentity,
    peer_id: Option<&str>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
        identity.trust.roots.clone(),
        provider.clone(),
    )
    .build()
    .map_err(|e| e.to_string())?;
    let verifier = Arc::new(MeshPeer {
        inner,
        trust_domain: identity.trust_domain.clone(),
        expected: peer_id.map(str::to_string),
    });
    let chain = identity.cert.key.cert.clone();
    let key = rustls::pki_types::PrivateKeyDer::try_from(identity.cert.key_der.as_ref().clone())
        .map_err(|e| e.to_string())?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(chain, key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// A mesh peer: chains to the trust bundle and is a workload of our trust domain (checked by
/// its SPIFFE ID, not a DNS name) — exactly the expected workload when we know which ([HB-W5]).
#[derive(Debug)]
struct MeshPeer {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    trust_domain: String,
    expected: Option<String>,
}

impl ServerCertVerifier for MeshPeer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Ok(_) => {}
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => {}
            Err(e) => return Err(e),
        }
        let (uris, _) = waygate_config::tls_material::subject_alt_names(end_entity.as_ref());
        let accepted = match &self.expected {
            Some(id) => uris.iter().any(|u| u == id),
            None => uris
                .iter()
                .any(|u| super::identity::is_workload_id(u, &self.trust_domain)),
        };
        if accepted {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName,
            ))
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `for="<ip:port>"` (IPv6 in brackets), as ztunnel sends it.
pub fn forwarded_for(client: SocketAddr) -> String {
    format!("for=\"{client}\"")
}

/// The client a `Forwarded` header names in its first `for=`, if it is an `ip:port`.
pub fn forwarded_client(value: &str) -> Option<SocketAddr> {
    value
        .split([';', ','])
        .map(str::trim)
        .find_map(|part| {
            let (k, v) = part.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("for")
                .then(|| v.trim().trim_matches('"'))
        })?
        .parse()
        .ok()
}

/// Pingora's connector for one upstream connection through a waypoint.
#[derive(Debug)]
pub struct HboneConnector {
    /// The pool.
    pub pool: Arc<HbonePool>,
    /// Our identity.
    pub identity: Arc<MeshIdentity>,
    /// The `CONNECT` authority (the Service's `VIP:port`).
    pub target: SocketAddr,
    /// The original client, sent as `Forwarded: for="…"` ([HB-W2]).
    pub client: Option<SocketAddr>,
    /// The SPIFFE ID the peer must present, when its workload is known.
    pub peer_id: Option<String>,
}

#[async_trait]
impl L4Connect for HboneConnector {
    async fn connect(&self, addr: &PingoraAddr) -> pingora::Result<Stream> {
        let Some(waypoint) = addr.as_inet().copied() else {
            return Error::e_explain(ErrorType::ConnectError, "HBONE needs an IP waypoint");
        };
        let mut send = self
            .pool
            .sender(waypoint, &self.identity, self.peer_id.as_deref())
            .await?;
        let mut req = http::Request::builder()
            .method(http::Method::CONNECT)
            .uri(self.target.to_string());
        if let Some(client) = self.client {
            req = req.header(http::header::FORWARDED, forwarded_for(client));
        }
        let req = req
            .body(())
            .map_err(|e| failed(ErrorType::InternalError, e.to_string()))?;
        let (resp, stream) = send
            .send_request(req, false)
            .map_err(|e| failed(ErrorType::ConnectError, format!("HBONE CONNECT: {e}")))?;
        let resp = resp
            .await
            .map_err(|e| failed(ErrorType::ConnectError, format!("HBONE CONNECT: {e}")))?;
        if resp.status() != http::StatusCode::OK {
            return Error::e_explain(
                ErrorType::ConnectRefused,
                format!(
                    "waypoint {waypoint} refused CONNECT {}: {}",
                    self.target,
                    resp.status()
                ),
            );
        }
        let duplex = H2Duplex::new(resp.into_body(), stream);
        Ok(VirtualSocketStream::new(Box::new(OutboundTunnel(duplex))).into())
    }
}

/// An outbound tunnel as a Pingora virtual socket.
#[derive(Debug)]
struct OutboundTunnel(H2Duplex);

impl VirtualSocket for OutboundTunnel {
    fn set_socket_option(&self, _opt: VirtualSockOpt) -> std::io::Result<()> {
        Ok(())
    }
}

impl AsyncRead for OutboundTunnel {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for OutboundTunnel {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_names_the_client_both_ways_hb_w2() {
        for addr in ["10.0.0.7:41000", "[2001:db8::7]:41000"] {
            let a: SocketAddr = addr.parse().unwrap();
            assert_eq!(forwarded_client(&forwarded_for(a)), Some(a));
        }
        assert_eq!(
            forwarded_client("for=\"10.1.2.3:5\";host=reviews.default.svc.cluster.local"),
            "10.1.2.3:5".parse().ok()
        );
        assert_eq!(forwarded_client("by=x"), None);
        assert_eq!(forwarded_client("for=unknown"), None);
    }
}
