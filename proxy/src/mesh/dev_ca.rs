//! A development CA for the mesh: `waygate dev-ca init` makes one, `waygate dev-ca issue` mints
//! workload certificates (`spiffe://<trust-domain>/ns/<ns>/sa/<sa>`) from it. For demos and
//! tests only: the CA key sits next to the certificate, unencrypted.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::path::{Path, PathBuf};

/// The CA certificate's file name in the CA folder.
pub const CA_CERT: &str = "ca.crt";
/// The CA key's file name in the CA folder.
pub const CA_KEY: &str = "ca.key";

/// Create a CA in `dir` (refusing to overwrite one unless `force`); returns the certificate path.
pub fn init(dir: &Path, trust_domain: &str, force: bool) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let (cert_path, key_path) = (dir.join(CA_CERT), dir.join(CA_KEY));
    if !force && (cert_path.exists() || key_path.exists()) {
        anyhow::bail!(
            "{} already holds a CA (use --force to replace it)",
            dir.display()
        );
    }
    let params = ca_params(&format!("waygate dev CA ({trust_domain})"))?;
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    std::fs::write(&cert_path, cert.pem())?;
    write_private(&key_path, &key.serialize_pem())?;
    Ok(cert_path)
}

/// Mint a workload certificate for `ns`/`sa` from the CA in `dir`; returns (cert, key) paths.
pub fn issue(
    dir: &Path,
    trust_domain: &str,
    ns: &str,
    sa: &str,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    for (what, v) in [("namespace", ns), ("service account", sa)] {
        if v.is_empty() || v.contains('/') {
            anyhow::bail!("{what} {v:?} must be a non-empty name without '/'");
        }
    }
    let ca_pem = std::fs::read_to_string(dir.join(CA_CERT)).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e} (run `waygate dev-ca init` first)",
            dir.join(CA_CERT).display()
        )
    })?;
    let ca_key = KeyPair::from_pem(&std::fs::read_to_string(dir.join(CA_KEY))?)?;
    let issuer = Issuer::new(ca_params(&ca_common_name(&ca_pem)?)?, ca_key);
    let id = format!("spiffe://{trust_domain}/ns/{ns}/sa/{sa}");
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{sa}.{ns}"));
    params
        .subject_alt_names
        .push(SanType::URI(id.as_str().try_into()?));
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    let (cert_path, key_path) = (
        dir.join(format!("{ns}.{sa}.crt")),
        dir.join(format!("{ns}.{sa}.key")),
    );
    std::fs::write(&cert_path, cert.pem())?;
    write_private(&key_path, &key.serialize_pem())?;
    Ok((cert_path, key_path))
}

/// The CA's parameters; issuing rebuilds them from the certificate's common name, so the
/// issuer name of every workload certificate is the CA's subject byte for byte.
fn ca_params(common_name: &str) -> anyhow::Result<CertificateParams> {
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
    Ok(params)
}

/// The common name of the CA certificate in `pem`.
fn ca_common_name(pem: &str) -> anyhow::Result<String> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let der = waygate_config::tls_material::parse_certs(pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("CA certificate: {e}"))?;
    let first = der
        .first()
        .ok_or_else(|| anyhow::anyhow!("no CA certificate"))?;
    let (_, cert) = X509Certificate::from_der(first.as_ref())
        .map_err(|e| anyhow::anyhow!("CA certificate: {e}"))?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .ok_or_else(|| anyhow::anyhow!("the CA certificate has no common name"))?;
    Ok(cn.to_string())
}

/// Write a private key readable by its owner only.
fn write_private(path: &Path, pem: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(pem.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::IdentityFiles;

    #[test]
    fn an_issued_identity_loads_and_names_its_workload() {
        let dir = tempfile::tempdir().unwrap();
        let ca = init(dir.path(), "cluster.local", false).unwrap();
        assert!(
            init(dir.path(), "cluster.local", false).is_err(),
            "overwrote a CA"
        );
        let (cert, key) = issue(dir.path(), "cluster.local", "shop", "checkout").unwrap();
        let id = IdentityFiles {
            cert,
            key,
            trust_bundle: ca,
            trust_domain: "cluster.local".into(),
        }
        .load()
        .unwrap();
        assert_eq!(id.spiffe_id, "spiffe://cluster.local/ns/shop/sa/checkout");
        // Another trust domain does not accept it.
        let other = IdentityFiles {
            trust_domain: "example.org".into(),
            ..IdentityFiles {
                cert: dir.path().join("shop.checkout.crt"),
                key: dir.path().join("shop.checkout.key"),
                trust_bundle: dir.path().join(CA_CERT),
                trust_domain: String::new(),
            }
        };
        assert!(other.load().is_err());
        assert!(issue(dir.path(), "cluster.local", "a/b", "c").is_err());
    }
}
