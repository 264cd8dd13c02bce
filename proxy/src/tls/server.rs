//! Termination: the rustls acceptor for one port, built from the Snapshot. Certificates are
//! chosen by SNI with the listener rules ([GW-3]); client certificates are checked against the
//! port's trust anchors; the SNI and the verified identity ride on Pingora's SSL digest.

use super::identity::{DownstreamTls, certificate_identity};
use async_trait::async_trait;
use pingora::listeners::TlsAccept;
use pingora::listeners::tls::{Acceptor, TlsSettings};
use pingora::protocols::tls::TlsRef;
use rustls::DistinguishedName;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::any::Any;
use std::sync::Arc;
use waygate_config::hostname;
use waygate_config::snapshot::{ClientValidation, PortIr, TlsMode};

/// Picks the certificate of the listener the SNI selects, most specific hostname first.
#[derive(Debug)]
struct SniResolver {
    /// (listener hostname, certificate), in listener precedence order.
    certs: Vec<(Option<String>, Arc<CertifiedKey>)>,
}

impl SniResolver {
    fn pick(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let hit = match sni {
            Some(name) => {
                let name = name.to_ascii_lowercase();
                self.certs.iter().find(|(h, _)| match h {
                    None => true,
                    Some(h) => hostname::matches(h, &name),
                })
            }
            // No SNI (a client dialling an IP): only a listener without a hostname takes it.
            None => self.certs.iter().find(|(h, _)| h.is_none()),
        };
        hit.map(|(_, c)| c.clone())
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let picked = self.pick(hello.server_name());
        if picked.is_none() {
            tracing::debug!(sni = ?hello.server_name(), "no listener certificate for this SNI");
        }
        picked
    }
}

/// Accepts any client certificate (or none) but remembers the real verifier, so the
/// handshake callback can decide whether the certificate proves an identity
/// (`AllowInsecureFallback`).
#[derive(Debug)]
struct FallbackVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for FallbackVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Records SNI and identity after each handshake.
struct HandshakeFacts {
    /// Set when certificates were accepted without verification (fallback mode): they must
    /// be verified here before they name anyone.
    recheck: Option<Arc<dyn ClientCertVerifier>>,
    /// The connections are HBONE.
    hbone: bool,
}

#[async_trait]
impl TlsAccept for HandshakeFacts {
    async fn handshake_complete_callback(
        &self,
        tls: &TlsRef,
    ) -> Option<Arc<dyn Any + Send + Sync>> {
        let sni = tls.server_name().map(|s| s.to_ascii_lowercase());
        let peer_identity = tls.peer_cert_chain_der().and_then(|chain| {
            let (leaf, intermediates) = chain.split_first()?;
            if let Some(v) = &self.recheck {
                v.verify_client_cert(leaf, intermediates, UnixTime::now())
                    .map_err(|e| tracing::debug!("client certificate not trusted: {e}"))
                    .ok()?;
            }
            certificate_identity(leaf)
        });
        Some(Arc::new(DownstreamTls {
            sni,
            peer_identity,
            hbone: self.hbone,
        }))
    }
}

fn webpki_verifier(v: &ClientValidation) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    WebPkiClientVerifier::builder_with_provider(v.anchors.roots.clone(), provider)
        .build()
        .map_err(|e| format!("client certificate verifier: {e}"))
}

/// The acceptor for a port with terminating listeners, or `None` when the port has none
/// (plain HTTP). Errors name what could not be built; the port is then not served over TLS.
pub fn port_acceptor(port: &PortIr) -> Result<Option<Acceptor>, String> {
    let certs: Vec<_> = port
        .listeners
        .iter()
        .filter_map(|l| {
            let tls = l.tls.as_ref()?;
            (tls.mode == TlsMode::Terminate).then_some(())?;
            let cert = tls.certificates.first()?;
            Some((l.hostname.clone(), cert.key.clone()))
        })
        .collect();
    if certs.is_empty() {
        return Ok(None);
    }
    let (verifier, recheck) = match &port.client_validation {
        None => (None, None),
        Some(v) => {
            let inner = webpki_verifier(v)?;
            if v.insecure_fallback {
                let wrapped: Arc<dyn ClientCertVerifier> = Arc::new(FallbackVerifier {
                    inner: inner.clone(),
                });
                (Some(wrapped), Some(inner))
            } else {
                (Some(inner), None)
            }
        }
    };
    let mut settings = TlsSettings::with_callbacks(Box::new(HandshakeFacts {
        recheck,
        hbone: false,
    }))
    .map_err(|e| format!("TLS settings: {e}"))?;
    settings.set_cert_resolver(Arc::new(SniResolver { certs }));
    if let Some(v) = verifier {
        settings.set_client_cert_verifier(v);
    }
    settings.enable_h2();
    Ok(Some(settings.build()))
}

/// Always the one certificate (HBONE presents the mesh identity whatever the SNI).
#[derive(Debug)]
struct OneCert(Arc<CertifiedKey>);

impl ResolvesServerCert for OneCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// The acceptor of an HBONE port ([HB-W1]): the mesh identity's certificate, a client
/// certificate required and chained to the trust bundle, ALPN `h2` only.
pub fn hbone_acceptor(identity: &crate::mesh::MeshIdentity) -> Result<Acceptor, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        WebPkiClientVerifier::builder_with_provider(identity.trust.roots.clone(), provider)
            .build()
            .map_err(|e| format!("HBONE client verifier: {e}"))?;
    let mut settings = TlsSettings::with_callbacks(Box::new(HandshakeFacts {
        recheck: None,
        hbone: true,
    }))
    .map_err(|e| format!("TLS settings: {e}"))?;
    settings.set_cert_resolver(Arc::new(OneCert(identity.cert.key.clone())));
    settings.set_client_cert_verifier(verifier);
    settings.set_alpn(pingora::protocols::ALPN::H2);
    Ok(settings.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Arc<CertifiedKey> {
        let c = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        waygate_config::tls_material::certified_key(
            c.cert.pem().as_bytes(),
            c.signing_key.serialize_pem().as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn sni_picks_the_most_specific_listener_and_no_sni_only_the_catch_all() {
        let (exact, wild) = (key("a.example.com"), key("*.example.com"));
        let r = SniResolver {
            certs: vec![
                (Some("a.example.com".into()), exact.clone()),
                (Some("*.example.com".into()), wild.clone()),
            ],
        };
        assert!(Arc::ptr_eq(&r.pick(Some("A.example.com")).unwrap(), &exact));
        assert!(Arc::ptr_eq(&r.pick(Some("b.example.com")).unwrap(), &wild));
        assert!(r.pick(Some("example.org")).is_none());
        assert!(r.pick(None).is_none());
        let catch_all = key("default");
        let r = SniResolver {
            certs: vec![(None, catch_all.clone())],
        };
        assert!(Arc::ptr_eq(&r.pick(None).unwrap(), &catch_all));
    }
}
