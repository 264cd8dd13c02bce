//! Origination: TLS to a backend with the cluster's compiled client config, done by us (as
//! Pingora's custom L4 connector) so the trust anchors, subject-alt-name rules and client
//! certificate are exactly the Snapshot's. Pingora then speaks HTTP/1.1 or HTTP/2 over the
//! finished TLS stream. Pooled connections are told apart by the peer's `group_key` (the
//! settings' fingerprint) and SNI, never shared across trust settings.

use async_trait::async_trait;
use pingora::connectors::L4Connect;
use pingora::protocols::l4::socket::SocketAddr as PingoraAddr;
use pingora::protocols::l4::stream::Stream;
use pingora::protocols::l4::virt::{VirtualSockOpt, VirtualSocket, VirtualSocketStream};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use waygate_config::upstream_tls::{Trust, UpstreamTls};

/// Connects TCP, then TLS with one cluster's settings and one SNI.
#[derive(Debug)]
pub struct TlsOrigination {
    config: Arc<ClientConfig>,
    sni: String,
    source: String,
}

impl TlsOrigination {
    /// A connector for `sni` with `config`; `source` names the policy in errors.
    pub fn new(config: Arc<ClientConfig>, sni: String, source: String) -> Self {
        Self {
            config,
            sni,
            source,
        }
    }
}

#[async_trait]
impl L4Connect for TlsOrigination {
    async fn connect(&self, addr: &PingoraAddr) -> pingora::Result<Stream> {
        let Some(inet) = addr.as_inet() else {
            return Error::e_explain(ErrorType::ConnectError, "TLS origination needs an IP peer");
        };
        let tcp = TcpStream::connect(inet).await.map_err(|e| {
            let kind = match e.kind() {
                std::io::ErrorKind::ConnectionRefused => ErrorType::ConnectRefused,
                _ => ErrorType::ConnectError,
            };
            Error::explain(kind, format!("connect {inet}: {e}"))
        })?;
        let _ = tcp.set_nodelay(true);
        // An IP literal is a valid ServerName too (rustls then sends no SNI).
        let name = ServerName::try_from(self.sni.clone()).map_err(|e| {
            Error::explain(
                ErrorType::TLSHandshakeFailure,
                format!(
                    "{}: SNI {:?} is not a valid server name: {e}",
                    self.source, self.sni
                ),
            )
        })?;
        let tls = TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| {
                Error::explain(
                    ErrorType::TLSHandshakeFailure,
                    format!(
                        "TLS to {inet} (SNI {}, {}) failed: {e}",
                        self.sni, self.source
                    ),
                )
            })?;
        Ok(VirtualSocketStream::new(Box::new(TlsSocket(tls))).into())
    }
}

/// A client TLS stream as a Pingora virtual socket.
#[derive(Debug)]
struct TlsSocket(TlsStream<TcpStream>);

impl VirtualSocket for TlsSocket {
    fn set_socket_option(&self, _opt: VirtualSockOpt) -> std::io::Result<()> {
        // NODELAY is set at connect; keep-alive probes are not configured for TLS peers.
        Ok(())
    }
}

impl AsyncRead for TlsSocket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsSocket {
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

/// Pingora's own form of a cluster's TLS settings (its per-peer CA list and client
/// certificate), built once per Snapshot on first use.
struct NativeTls {
    ca: Option<Arc<pingora::protocols::tls::CaType>>,
    client: Option<Arc<pingora::utils::tls::CertKey>>,
}

/// Whether x509-parser (which Pingora's certificate wrapper unwraps) reads this DER.
fn parses(der: &[u8]) -> bool {
    use x509_parser::prelude::{FromDer, X509Certificate};
    X509Certificate::from_der(der).is_ok()
}

fn native(tls: &UpstreamTls) -> Option<Arc<NativeTls>> {
    let slot = tls.data_plane.get_or_init(|| {
        let ca = match &tls.settings.trust {
            Trust::Anchors(a) => {
                let list: Vec<_> = a
                    .certs
                    .iter()
                    .filter(|c| parses(c.as_ref()))
                    .map(|c| {
                        pingora::utils::tls::WrappedX509::new(
                            c.as_ref().to_vec(),
                            pingora::utils::tls::parse_x509,
                        )
                    })
                    .collect();
                Some(Arc::from(list.into_boxed_slice()))
            }
            Trust::System | Trust::SkipVerify => None,
        };
        let client = tls.settings.client_cert.as_ref().and_then(|c| {
            let chain: Vec<Vec<u8>> = c.key.cert.iter().map(|d| d.as_ref().to_vec()).collect();
            (!chain.is_empty() && chain.iter().all(|d| parses(d))).then(|| {
                Arc::new(pingora::utils::tls::CertKey::new(
                    chain,
                    c.key_der.as_ref().clone(),
                ))
            })
        });
        Arc::new(NativeTls { ca, client })
    });
    slot.clone().downcast::<NativeTls>().ok()
}

/// A peer for `addr` with the cluster's upstream TLS and this SNI: Pingora's own TLS (pooled
/// connections, keyed by the settings' fingerprint) unless the certificate must be matched
/// against a subject-alt-name list, which only our connector does (those connections are not
/// pooled: Pingora reuses only connections it can check by file descriptor).
pub fn tls_peer(
    addr: std::net::SocketAddr,
    tls: &UpstreamTls,
    sni: String,
    h2: bool,
) -> pingora::Result<HttpPeer> {
    let skip = matches!(tls.settings.trust, Trust::SkipVerify);
    if sni.is_empty() && !skip {
        // Pingora would skip verification without an SNI; refuse instead.
        return Error::e_explain(
            ErrorType::TLSHandshakeFailure,
            format!("{}: no SNI to send and verify", tls.settings.source),
        );
    }
    if !tls.settings.subject_alt_names.is_empty() {
        let mut peer = HttpPeer::new(addr, false, sni.clone());
        if h2 {
            peer.options.set_http_version(2, 2);
        }
        peer.group_key = tls.fingerprint;
        let config = if h2 {
            tls.h2.clone()
        } else {
            tls.http1.clone()
        };
        peer.options.custom_l4 = Some(Arc::new(TlsOrigination::new(
            config,
            sni,
            tls.settings.source.clone(),
        )));
        return Ok(peer);
    }
    let mut peer = HttpPeer::new(addr, true, sni);
    if h2 {
        peer.options.set_http_version(2, 2);
    }
    // The pool key covers SNI, client certificate and verify flags but not the CA list.
    peer.group_key = tls.fingerprint;
    peer.options.verify_cert = !skip;
    peer.options.verify_hostname = !skip;
    if let Some(n) = native(tls) {
        peer.options.ca = n.ca.clone();
        peer.client_cert_key = n.client.clone();
    }
    Ok(peer)
}
