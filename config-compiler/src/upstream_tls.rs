//! TLS origination settings of a cluster, compiled into ready rustls client configs: the trust
//! anchors, the names the backend's certificate must carry, the SNI and an optional client
//! certificate. Built once per Snapshot so every connection reuses them (and their session
//! cache).

use crate::tls_material::{ServerCert, TrustAnchors};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use serde::Serialize;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};

/// A name the backend certificate must carry (one of a list suffices).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub enum SanMatch {
    /// A DNS name (checked as TLS clients check host names, wildcards included).
    Dns(String),
    /// A URI SAN, exactly (e.g. a SPIFFE ID).
    Uri(String),
}

/// Where trust comes from.
#[derive(Debug, Clone, Serialize)]
pub enum Trust {
    /// CA certificates from ConfigMaps, Secrets or files.
    Anchors(TrustAnchors),
    /// The operating system's trust store.
    System,
    /// No verification at all (`insecureSkipVerify`).
    SkipVerify,
}

/// A cluster's upstream TLS settings, as configured.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamTlsSettings {
    /// The object it comes from, for logs (`BackendTLSPolicy ns/name`).
    pub source: String,
    /// SNI; `None` sends the request's Host.
    pub sni: Option<String>,
    /// Trust.
    pub trust: Trust,
    /// Names the certificate must carry; empty means "the SNI".
    pub subject_alt_names: Vec<SanMatch>,
    /// Client certificate to present.
    pub client_cert: Option<ServerCert>,
}

/// A cluster's upstream TLS, ready to connect with.
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamTls {
    /// The settings it was built from.
    #[serde(flatten)]
    pub settings: UpstreamTlsSettings,
    /// Separates pooled connections of different settings (Pingora's pool key ignores them).
    pub fingerprint: u64,
    /// Offering `http/1.1`.
    #[serde(skip)]
    pub http1: Arc<ClientConfig>,
    /// Offering `h2` (gRPC and HTTP/2 backends).
    #[serde(skip)]
    pub h2: Arc<ClientConfig>,
    /// A slot for the data plane's own form of these settings, filled on first use and
    /// dropped with the Snapshot.
    #[serde(skip)]
    pub data_plane: OnceLock<Arc<dyn std::any::Any + Send + Sync>>,
}

impl fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("settings", &self.settings)
            .finish()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The OS trust store, read once per process.
fn system_roots() -> Result<Arc<rustls::RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<rustls::RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut store = rustls::RootCertStore::empty();
            let certs = rustls_native_certs::load_native_certs()
                .map_err(|e| format!("reading the system trust store: {e}"))?;
            for c in certs {
                let _ = store.add(c);
            }
            Ok(Arc::new(store))
        })
        .clone()
}

impl UpstreamTls {
    /// Build the client configs; errors name what could not be used.
    pub fn build(spec: UpstreamTlsSettings) -> Result<Self, String> {
        let verifier: Arc<dyn ServerCertVerifier> = match &spec.trust {
            Trust::SkipVerify => Arc::new(NoVerify(provider())),
            Trust::Anchors(a) => Arc::new(BackendVerifier::new(
                a.roots.clone(),
                spec.subject_alt_names.clone(),
            )?),
            Trust::System => Arc::new(BackendVerifier::new(
                system_roots()?,
                spec.subject_alt_names.clone(),
            )?),
        };
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut http1 = match &spec.client_cert {
            None => builder.with_no_client_auth(),
            Some(c) => builder.with_client_cert_resolver(Arc::new(FixedClientCert(c.key.clone()))),
        };
        http1.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut h2 = http1.clone();
        h2.alpn_protocols = vec![b"h2".to_vec()];

        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        spec.source.hash(&mut hasher);
        spec.sni.hash(&mut hasher);
        spec.subject_alt_names.hash(&mut hasher);
        match &spec.trust {
            Trust::Anchors(a) => {
                for r in a.roots.roots.iter() {
                    r.subject.as_ref().hash(&mut hasher);
                    r.subject_public_key_info.as_ref().hash(&mut hasher);
                }
            }
            Trust::System => 1u8.hash(&mut hasher),
            Trust::SkipVerify => 2u8.hash(&mut hasher),
        }
        if let Some(c) = &spec.client_cert {
            for cert in &c.key.cert {
                cert.as_ref().hash(&mut hasher);
            }
        }
        Ok(Self {
            settings: spec,
            data_plane: OnceLock::new(),
            // Zero stays "no TLS".
            fingerprint: hasher.finish() | 1,
            http1: Arc::new(http1),
            h2: Arc::new(h2),
        })
    }
}

/// Always presents the one configured client certificate when the server asks.
#[derive(Debug)]
struct FixedClientCert(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for FixedClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

/// Chain verification against the anchors, then the name check: the SNI, or one of the
/// configured subject alternative names.
#[derive(Debug)]
struct BackendVerifier {
    inner: Arc<WebPkiServerVerifier>,
    sans: Vec<SanMatch>,
}

impl BackendVerifier {
    fn new(roots: Arc<rustls::RootCertStore>, sans: Vec<SanMatch>) -> Result<Self, String> {
        let inner = WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|e| format!("server certificate verifier: {e}"))?;
        Ok(Self { inner, sans })
    }
}

fn is_name_error(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. }
        )
    )
}

impl ServerCertVerifier for BackendVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain =
            self.inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
        if self.sans.is_empty() {
            return chain;
        }
        // With subjectAltNames the SNI is only sent, not checked: the chain must hold and one
        // listed name must be on the certificate.
        match chain {
            Ok(_) => {}
            Err(e) if is_name_error(&e) => {}
            Err(e) => return Err(e),
        }
        let (uris, _) = crate::tls_material::subject_alt_names(end_entity.as_ref());
        for san in &self.sans {
            let ok = match san {
                SanMatch::Uri(u) => uris.iter().any(|have| have == u),
                SanMatch::Dns(d) => ServerName::try_from(d.as_str()).is_ok_and(|name| {
                    self.inner
                        .verify_server_cert(end_entity, intermediates, &name, ocsp, now)
                        .is_ok()
                }),
            };
            if ok {
                return Ok(ServerCertVerified::assertion());
            }
        }
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidForName,
        ))
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

/// `insecureSkipVerify`: signatures are still checked (the handshake needs them), the
/// certificate is not.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
