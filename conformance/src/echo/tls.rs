//! The echo's HTTPS port: TLS with a given certificate (ALPN h2 and http/1.1), optionally asking
//! for a client certificate, and the TLS facts it reports back (as the upstream echo does): the
//! server name the client sent and the certificates it presented.

use super::EchoTls;
use crate::pki::Issued;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::sync::Arc;

/// A server config for `cert`; with `client_ca`, client certificates are asked for and, when
/// given, must chain to it (verify-if-given, as the upstream echo's `TLS_CLIENT_CACERTS`).
pub fn server_config(cert: &Issued, client_ca: Option<&str>) -> anyhow::Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain =
        CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes())?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                roots.add(c?)?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// What the handshake established, in the echo's words.
pub(super) fn facts(conn: &rustls::ServerConnection) -> EchoTls {
    let pem = |c: &CertificateDer<'_>| {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(c.as_ref());
        let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
        out
    };
    EchoTls {
        version: match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".into(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".into(),
            _ => String::new(),
        },
        server_name: conn.server_name().unwrap_or_default().to_string(),
        negotiated_protocol: conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default(),
        peer_certificates: conn
            .peer_certificates()
            .map(|cs| cs.iter().map(pem).collect())
            .unwrap_or_default(),
    }
}
