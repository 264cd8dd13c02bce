//! Test PKI and TLS clients: CAs, server and client certificates made with rcgen, the
//! Kubernetes objects that carry them, and real rustls clients speaking HTTP/1.1 or HTTP/2
//! (by ALPN) through hyper.

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A certificate and its key, PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate (leaf only).
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

/// A certificate authority for tests.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate, PEM.
    pub pem: String,
}

/// What a certificate is for.
enum Usage {
    Server,
    Client,
}

impl TestCa {
    /// A new self-signed CA with this common name.
    pub fn new(common_name: &str) -> anyhow::Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    fn issue(
        &self,
        dns: &[&str],
        uri: Option<&str>,
        usage: Usage,
        expired: bool,
    ) -> anyhow::Result<Issued> {
        let mut params =
            CertificateParams::new(dns.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        if let Some(first) = dns.first().copied().or(uri) {
            params.distinguished_name.push(DnType::CommonName, first);
        }
        if let Some(u) = uri {
            params.subject_alt_names.push(SanType::URI(u.try_into()?));
        }
        params.extended_key_usages = vec![match usage {
            Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A server certificate for these DNS names (wildcards allowed).
    pub fn server(&self, names: &[&str]) -> anyhow::Result<Issued> {
        self.issue(names, None, Usage::Server, false)
    }

    /// A server certificate for DNS names plus a URI SAN (a workload identity).
    pub fn server_with_uri(&self, names: &[&str], uri: &str) -> anyhow::Result<Issued> {
        self.issue(names, Some(uri), Usage::Server, false)
    }

    /// A server certificate that expired in 2021.
    pub fn expired_server(&self, names: &[&str]) -> anyhow::Result<Issued> {
        self.issue(names, None, Usage::Server, true)
    }

    /// A client certificate whose identity is this URI SAN (e.g. a SPIFFE ID).
    pub fn client(&self, uri: &str) -> anyhow::Result<Issued> {
        self.issue(&[], Some(uri), Usage::Client, false)
    }
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A `kubernetes.io/tls` Secret holding a certificate and key.
pub fn tls_secret_yaml(ns: &str, name: &str, issued: &Issued) -> String {
    format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {ns}}}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
        b64(&issued.cert_pem),
        b64(&issued.key_pem)
    )
}

/// A ConfigMap with a CA bundle under `ca.crt`.
pub fn ca_config_map_yaml(ns: &str, name: &str, ca_pem: &str) -> String {
    let indented: String = ca_pem.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}}}\ndata:\n  ca.crt: |\n{indented}"
    )
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client that trusts `ca_pem`, offers `alpn`, and presents `identity` if given.
pub fn client_config(
    ca_pem: &str,
    identity: Option<&Issued>,
    alpn: &[&[u8]],
) -> anyhow::Result<Arc<ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c?)?;
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(id) => {
            let chain = CertificateDer::pem_slice_iter(id.cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()?;
            let key = PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes())?;
            builder.with_client_auth_cert(chain, key)?
        }
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Connect and handshake. `sni: None` sends no server name (the certificate is still
/// verified against `verify_as`).
pub async fn connect(
    addr: SocketAddr,
    sni: Option<&str>,
    verify_as: &str,
    config: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let config = if sni.is_none() {
        let mut c = (*config).clone();
        c.enable_sni = false;
        Arc::new(c)
    } else {
        config
    };
    let name = ServerName::try_from(sni.unwrap_or(verify_as).to_string())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(config).connect(name, tcp).await
}

/// The answer to an HTTPS request.
#[derive(Debug, Clone)]
pub struct HttpsReply {
    /// Status code.
    pub status: u16,
    /// `HTTP/1.1` or `HTTP/2`, as negotiated by ALPN.
    pub version: http::Version,
    /// Response headers.
    pub headers: http::HeaderMap,
    /// Body.
    pub body: String,
}

/// One GET over an established TLS stream, HTTP/2 if ALPN chose `h2`, else HTTP/1.1.
pub async fn get_over(
    stream: TlsStream<TcpStream>,
    host: &str,
    path: &str,
) -> anyhow::Result<HttpsReply> {
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(stream);
    let uri = format!("https://{host}{path}");
    let resp = if h2 {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(conn);
        let req = http::Request::get(uri).body(Empty::<Bytes>::new())?;
        send.send_request(req).await?
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(conn);
        let req = http::Request::get(path)
            .header(http::header::HOST, host)
            .body(Empty::<Bytes>::new())?;
        send.send_request(req).await?
    };
    let status = resp.status().as_u16();
    let version = resp.version();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(HttpsReply {
        status,
        version,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Connect with `sni`, then GET `path` with `host`.
pub async fn https_get(
    addr: SocketAddr,
    sni: Option<&str>,
    host: &str,
    path: &str,
    config: Arc<ClientConfig>,
) -> anyhow::Result<HttpsReply> {
    let stream = connect(addr, sni, host, config).await?;
    get_over(stream, host, path).await
}

/// The certificate a server presented on a TLS stream: its DNS SANs.
pub fn presented_names(stream: &TlsStream<TcpStream>) -> Vec<String> {
    let Some(leaf) = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
    else {
        return Vec::new();
    };
    dns_names(leaf.as_ref())
}

/// DNS SANs of a DER certificate.
fn dns_names(der: &[u8]) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::{FromDer, X509Certificate};
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_string()),
            _ => None,
        })
        .collect()
}
