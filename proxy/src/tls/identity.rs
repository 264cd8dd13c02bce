//! What a terminated TLS connection tells the request path: the SNI the client asked for and
//! the identity its verified certificate proves.

/// Per-connection facts from the TLS handshake, attached to Pingora's SSL digest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownstreamTls {
    /// The SNI, lowercased; `None` when the client sent none.
    pub sni: Option<String>,
    /// The identity of a client certificate that chained to the port's trust anchors: its
    /// first URI SAN (a SPIFFE ID in a mesh), else its first DNS SAN. Never taken from an
    /// unverified certificate.
    pub peer_identity: Option<String>,
    /// The connection is an HBONE tunnel's outer mTLS: the requests inside are the client's own
    /// (plain HTTP to their destination), not HTTPS to this proxy.
    pub hbone: bool,
}

/// The identity a certificate (DER) names: the first URI SAN, else the first DNS SAN.
pub fn certificate_identity(der: &[u8]) -> Option<String> {
    let (uris, dns) = waygate_config::tls_material::subject_alt_names(der);
    uris.into_iter().chain(dns).next()
}

/// An AuthorizationPolicy principal from an identity: a SPIFFE ID without its scheme
/// (`cluster.local/ns/default/sa/sleep`), anything else as is.
pub fn principal(identity: &str) -> &str {
    identity.strip_prefix("spiffe://").unwrap_or(identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spiffe_uri_san_is_the_identity() {
        let mut params = rcgen::CertificateParams::new(vec!["sleep.default".to_string()]).unwrap();
        params.subject_alt_names.push(rcgen::SanType::URI(
            "spiffe://cluster.local/ns/default/sa/sleep"
                .try_into()
                .unwrap(),
        ));
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let id = certificate_identity(cert.der()).unwrap();
        assert_eq!(id, "spiffe://cluster.local/ns/default/sa/sleep");
        assert_eq!(principal(&id), "cluster.local/ns/default/sa/sleep");
    }

    #[test]
    fn without_a_uri_the_dns_name_is_used_and_garbage_is_none() {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["client.example.com".to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            certificate_identity(cert.der()).as_deref(),
            Some("client.example.com")
        );
        assert_eq!(certificate_identity(b"\x30\x03junk"), None);
    }
}
