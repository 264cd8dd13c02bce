//! A real HBONE client for tests: mutual TLS 1.3 with a workload certificate, ALPN `h2`, and an
//! HTTP/2 `CONNECT` stream per tunnel whose authority is the destination `IP:port`. Each tunnel
//! is a byte stream (AsyncRead + AsyncWrite) any HTTP client can run over.

use crate::pki::Issued;
use bytes::{Buf, Bytes};
use h2::client::SendRequest;
use h2::{RecvStream, SendStream};
use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// One HBONE connection; open as many tunnels on it as needed.
#[derive(Clone)]
pub struct HboneClient {
    send: SendRequest<Bytes>,
}

/// Why a tunnel did not open.
#[derive(Debug)]
pub enum TunnelError {
    /// The waypoint answered the CONNECT with this status.
    Refused(u16),
    /// The connection or stream failed.
    Io(String),
}

impl std::fmt::Display for TunnelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TunnelError::Refused(s) => write!(f, "CONNECT answered {s}"),
            TunnelError::Io(e) => f.write_str(e),
        }
    }
}

/// A client TLS config for HBONE: TLS 1.3, `h2`, present `identity` (if any), and accept only
/// a server whose certificate chains to `ca_pem` and names `server_id` (its SPIFFE ID) — mesh
/// peers are checked by identity, not by DNS name.
pub fn client_config(
    ca_pem: &str,
    identity: Option<&Issued>,
    server_id: &str,
) -> anyhow::Result<Arc<ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(SpiffeVerifier {
        inner: rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()?,
        id: server_id.to_string(),
    });
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(id) => {
            let chain = CertificateDer::pem_slice_iter(id.cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()?;
            builder.with_client_auth_cert(
                chain,
                PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes())?,
            )?
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Chain to the roots; the name is the URI SAN, not a DNS name.
#[derive(Debug)]
struct SpiffeVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    id: String,
}

impl rustls::client::danger::ServerCertVerifier for SpiffeVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use x509_parser::extensions::GeneralName;
        use x509_parser::prelude::{FromDer, X509Certificate};
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
        let names_it = X509Certificate::from_der(end_entity.as_ref())
            .ok()
            .and_then(|(_, c)| {
                c.subject_alternative_name().ok().flatten().map(|s| {
                    s.value
                        .general_names
                        .iter()
                        .any(|n| matches!(n, GeneralName::URI(u) if *u == self.id))
                })
            })
            .unwrap_or(false);
        if names_it {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
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
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

impl HboneClient {
    /// Connect to a waypoint's HBONE port (`server_name` is sent as SNI; the certificate is
    /// checked by identity, see [`client_config`]).
    pub async fn connect(
        addr: SocketAddr,
        server_name: &str,
        config: Arc<ClientConfig>,
    ) -> anyhow::Result<HboneClient> {
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from(server_name.to_string())?;
        let tls = TlsConnector::from(config).connect(name, tcp).await?;
        let (send, conn) = h2::client::Builder::new()
            .initial_window_size(1 << 20)
            .initial_connection_window_size(16 << 20)
            .handshake::<_, Bytes>(tls)
            .await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(HboneClient { send })
    }

    /// Open a tunnel to `dest`.
    pub async fn open(&self, dest: SocketAddr) -> Result<Tunnel, TunnelError> {
        let mut send = self
            .send
            .clone()
            .ready()
            .await
            .map_err(|e| TunnelError::Io(e.to_string()))?;
        let req = http::Request::builder()
            .method(http::Method::CONNECT)
            .uri(dest.to_string())
            .body(())
            .map_err(|e| TunnelError::Io(e.to_string()))?;
        let (resp, stream) = send
            .send_request(req, false)
            .map_err(|e| TunnelError::Io(e.to_string()))?;
        let resp = resp.await.map_err(|e| TunnelError::Io(e.to_string()))?;
        if resp.status() != http::StatusCode::OK {
            return Err(TunnelError::Refused(resp.status().as_u16()));
        }
        Ok(Tunnel {
            recv: resp.into_body(),
            send: stream,
            pending: Bytes::new(),
        })
    }
}

/// A tunnel's bytes, both ways.
pub struct Tunnel {
    recv: RecvStream,
    send: SendStream<Bytes>,
    pending: Bytes,
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        // End the stream instead of resetting it.
        let _ = self.send.send_data(Bytes::new(), true);
    }
}

impl AsyncRead for Tunnel {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(buf.remaining());
                buf.put_slice(&self.pending[..n]);
                self.pending.advance(n);
                let _ = self.recv.flow_control().release_capacity(n);
                return Poll::Ready(Ok(()));
            }
            match ready!(self.recv.poll_data(cx)) {
                Some(Ok(d)) => self.pending = d,
                Some(Err(e)) => return Poll::Ready(Err(std::io::Error::other(e))),
                None => return Poll::Ready(Ok(())),
            }
        }
    }
}

impl AsyncWrite for Tunnel {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        self.send.reserve_capacity(buf.len());
        loop {
            match ready!(self.send.poll_capacity(cx)) {
                None => return Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into())),
                Some(Err(e)) => return Poll::Ready(Err(std::io::Error::other(e))),
                Some(Ok(0)) => continue,
                Some(Ok(n)) => {
                    let n = n.min(buf.len());
                    self.send
                        .send_data(Bytes::copy_from_slice(&buf[..n]), false)
                        .map_err(std::io::Error::other)?;
                    return Poll::Ready(Ok(n));
                }
            }
        }
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let _ = self.send.send_data(Bytes::new(), true);
        Poll::Ready(Ok(()))
    }
}
