//! Key material from Secrets and ConfigMaps: PEM parsing into what rustls serves and trusts.
//! Parsed once at compile time so a bad certificate is a status condition, not a failed
//! handshake.

use rustls::RootCertStore;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;
use std::fmt;
use std::sync::Arc;

/// Every certificate in a PEM bundle; an error if there is none or one is malformed.
pub fn parse_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("malformed PEM certificate: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM certificate found".into());
    }
    Ok(certs)
}

/// The private key in a PEM document (PKCS#8, PKCS#1 or SEC1).
pub fn parse_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| format!("no usable PEM private key: {e}"))
}

/// A certificate chain and its private key, checked to belong together.
pub fn certified_key(chain_pem: &[u8], key_pem: &[u8]) -> Result<Arc<CertifiedKey>, String> {
    let chain = parse_certs(chain_pem)?;
    let key = parse_key(key_pem)?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| format!("unsupported private key: {e}"))?;
    let ck = CertifiedKey::new(chain, signing);
    ck.keys_match()
        .map_err(|e| format!("certificate and key do not match: {e}"))?;
    Ok(Arc::new(ck))
}

/// A trust store from a PEM bundle of CA certificates.
pub fn root_store(pem: &[u8]) -> Result<Arc<RootCertStore>, String> {
    let mut store = RootCertStore::empty();
    for cert in parse_certs(pem)? {
        store
            .add(cert)
            .map_err(|e| format!("not a usable CA certificate: {e}"))?;
    }
    Ok(Arc::new(store))
}

/// The subject alternative names of a DER certificate: its URIs and its DNS names, in order.
/// Both are empty when the certificate cannot be read.
pub fn subject_alt_names(der: &[u8]) -> (Vec<String>, Vec<String>) {
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (mut uris, mut dns) = (Vec::new(), Vec::new());
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return (uris, dns);
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return (uris, dns);
    };
    for name in &san.value.general_names {
        match name {
            GeneralName::URI(u) => uris.push(u.to_string()),
            GeneralName::DNSName(d) => dns.push(d.to_string()),
            _ => {}
        }
    }
    (uris, dns)
}

/// A certificate and key the proxy presents, with the object it came from.
#[derive(Clone, Serialize)]
pub struct ServerCert {
    /// `namespace/name` of the Secret.
    pub source: String,
    /// The parsed chain and signing key.
    #[serde(skip)]
    pub key: Arc<CertifiedKey>,
    /// The private key, DER, for TLS stacks that take it raw (Pingora's upstream client).
    #[serde(skip)]
    pub key_der: Arc<Vec<u8>>,
}

impl ServerCert {
    /// Parse a PEM chain and key, checked to belong together.
    pub fn from_pem(source: String, chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, String> {
        let key = certified_key(chain_pem, key_pem)?;
        let key_der = parse_key(key_pem)?.secret_der().to_vec();
        Ok(Self {
            source,
            key,
            key_der: Arc::new(key_der),
        })
    }
}

impl fmt::Debug for ServerCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCert")
            .field("source", &self.source)
            .finish()
    }
}

/// A set of trust anchors, with the objects they came from.
#[derive(Clone, Serialize)]
pub struct TrustAnchors {
    /// `Kind namespace/name` of each source.
    pub sources: Vec<String>,
    /// The roots.
    #[serde(skip)]
    pub roots: Arc<RootCertStore>,
    /// The CA certificates, DER, for TLS stacks that take them raw.
    #[serde(skip)]
    pub certs: Arc<Vec<CertificateDer<'static>>>,
}

impl TrustAnchors {
    /// Trust anchors from a PEM bundle.
    pub fn from_pem(sources: Vec<String>, pem: &[u8]) -> Result<Self, String> {
        Ok(Self {
            sources,
            roots: root_store(pem)?,
            certs: Arc::new(parse_certs(pem)?),
        })
    }
}

impl fmt::Debug for TrustAnchors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustAnchors")
            .field("sources", &self.sources)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(name: &str) -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        (c.cert.pem(), c.signing_key.serialize_pem())
    }

    #[test]
    fn a_matching_chain_and_key_load() {
        let (cert, key) = self_signed("a.example.com");
        assert!(certified_key(cert.as_bytes(), key.as_bytes()).is_ok());
    }

    #[test]
    fn a_key_from_another_certificate_is_refused() {
        let (cert, _) = self_signed("a.example.com");
        let (_, other_key) = self_signed("b.example.com");
        let e = certified_key(cert.as_bytes(), other_key.as_bytes()).unwrap_err();
        assert!(e.contains("do not match"), "{e}");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_certs(b"not pem").is_err());
        assert!(parse_key(b"Hello world").is_err());
        let (cert, _) = self_signed("ca.example.com");
        let junk_key = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(certified_key(cert.as_bytes(), junk_key).is_err());
        assert!(root_store(b"").is_err());
        assert!(root_store(cert.as_bytes()).is_ok());
    }
}
