//! A workload identity: a SPIFFE certificate (`spiffe://<trust-domain>/ns/<ns>/sa/<sa>`), its
//! key, and the trust bundle peers are checked against. Read from files, re-read on reload.

use std::path::PathBuf;
use std::sync::Arc;
use waygate_config::tls_material::{self, ServerCert, TrustAnchors};

/// The default trust domain, as in Istio.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// Where the identity comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityFiles {
    /// PEM certificate chain (leaf first).
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// PEM CA bundle peers must chain to.
    pub trust_bundle: PathBuf,
    /// The trust domain the certificate must be in.
    pub trust_domain: String,
}

/// A loaded identity.
#[derive(Debug, Clone)]
pub struct MeshIdentity {
    /// `spiffe://<trust-domain>/ns/<ns>/sa/<sa>`.
    pub spiffe_id: String,
    /// The trust domain.
    pub trust_domain: String,
    /// Certificate and key presented to peers.
    pub cert: ServerCert,
    /// Roots peers must chain to.
    pub trust: TrustAnchors,
    /// Changes whenever the certificate or the trust bundle does: pooled HBONE connections are
    /// keyed by it, so none outlives a rotation of either.
    pub fingerprint: u64,
}

/// Read a file, naming it in the error.
fn read(path: &PathBuf) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Whether `id` is a workload SPIFFE ID in `trust_domain`: `spiffe://<td>/ns/<ns>/sa/<sa>`.
pub fn is_workload_id(id: &str, trust_domain: &str) -> bool {
    let Some(rest) = id
        .strip_prefix("spiffe://")
        .and_then(|r| r.strip_prefix(trust_domain))
        .and_then(|r| r.strip_prefix("/ns/"))
    else {
        return false;
    };
    let parts: Vec<&str> = rest.split('/').collect();
    matches!(parts.as_slice(), [ns, "sa", sa] if !ns.is_empty() && !sa.is_empty())
}

impl IdentityFiles {
    /// Load and check the identity: the key matches the certificate, whose URI SAN is a
    /// workload ID in the trust domain, and the bundle holds at least one usable CA.
    pub fn load(&self) -> Result<Arc<MeshIdentity>, String> {
        let cert_pem = read(&self.cert)?;
        let cert = ServerCert::from_pem(
            self.cert.display().to_string(),
            &cert_pem,
            &read(&self.key)?,
        )
        .map_err(|e| format!("{}: {e}", self.cert.display()))?;
        let leaf = cert
            .key
            .cert
            .first()
            .ok_or_else(|| format!("{}: no certificate", self.cert.display()))?;
        let (uris, _) = tls_material::subject_alt_names(leaf.as_ref());
        let spiffe_id = uris
            .into_iter()
            .find(|u| is_workload_id(u, &self.trust_domain))
            .ok_or_else(|| {
                format!(
                    "{}: no URI SAN spiffe://{}/ns/<ns>/sa/<sa>",
                    self.cert.display(),
                    self.trust_domain
                )
            })?;
        let trust = TrustAnchors::from_pem(
            vec![self.trust_bundle.display().to_string()],
            &read(&self.trust_bundle)?,
        )
        .map_err(|e| format!("{}: {e}", self.trust_bundle.display()))?;
        let fingerprint = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            for c in cert.key.cert.iter().chain(trust.certs.iter()) {
                c.as_ref().hash(&mut h);
            }
            h.finish()
        };
        Ok(Arc::new(MeshIdentity {
            spiffe_id,
            trust_domain: self.trust_domain.clone(),
            cert,
            trust,
            fingerprint,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_ids_name_a_namespace_and_a_service_account_in_the_domain() {
        let td = "cluster.local";
        assert!(is_workload_id("spiffe://cluster.local/ns/a/sa/b", td));
        assert!(!is_workload_id("spiffe://other.domain/ns/a/sa/b", td));
        assert!(!is_workload_id("spiffe://cluster.local/ns/a/sa/", td));
        assert!(!is_workload_id("spiffe://cluster.local/ns/a/sa/b/c", td));
        assert!(!is_workload_id("spiffe://cluster.localx/ns/a/sa/b", td));
        assert!(!is_workload_id("https://cluster.local/ns/a/sa/b", td));
    }
}
