//! The key material the upstream suite generates at setup, made here with our test PKI: the
//! Secrets and ConfigMaps the TLS tests name, and the trust and client certificates the
//! runner's TLS client uses. Generated once per run.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use waygate_conformance::pki::{Issued, TestCa, ca_config_map_yaml, tls_secret_yaml};

const INFRA: &str = "gateway-conformance-infra";
const WEB: &str = "gateway-conformance-web-backend";
const APP: &str = "gateway-conformance-app-backend";

/// Generated objects and what the client needs to use them.
pub struct Fixtures {
    /// Secrets and ConfigMaps, as YAML documents, added to the base manifests.
    pub yaml: String,
    /// CA certificates the runner's client trusts for gateway and backend certificates.
    pub trust_pem: String,
    /// Client certificates by `namespace/name` of the Secret that holds them.
    pub client_certs: BTreeMap<String, Issued>,
}

/// The fixtures of this run.
pub fn get() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| build().unwrap_or_else(|e| panic!("generating test certificates: {e}")))
}

fn build() -> anyhow::Result<Fixtures> {
    let mut yaml = String::new();
    let mut client_certs = BTreeMap::new();
    let secret = |ns: &str, name: &str, issued: &Issued, yaml: &mut String| {
        yaml.push_str(&tls_secret_yaml(ns, name, issued));
    };

    // The listener certificate of every HTTPS test, and the one behind cross-namespace refs.
    let validity = TestCa::new("tls-validity-checks")?;
    // Named hosts as well as wildcards: clients do not match `*.org`-style names everywhere.
    let listener = validity.server(&[
        "example.org",
        "second-example.org",
        "unknown-example.org",
        "https-listener.org",
        "first-example.org",
        "fourth-example.org",
        "secure.test.com",
        "*.wildcard.org",
        "*.org",
    ])?;
    secret(
        INFRA,
        "tls-validity-checks-certificate",
        &listener,
        &mut yaml,
    );
    let web = validity.server(&["*.example.com"])?;
    secret(WEB, "certificate", &web, &mut yaml);

    // Frontend validation: a default CA and a per-port CA, each with a client certificate.
    for (ca_name, client_name) in [
        (
            "tls-validity-checks-ca-certificate",
            "tls-validity-checks-client-certificate",
        ),
        (
            "tls-validity-checks-per-port-ca-certificate",
            "tls-validity-checks-per-port-client-certificate",
        ),
    ] {
        let ca = TestCa::new(ca_name)?;
        yaml.push_str(&ca_config_map_yaml(INFRA, ca_name, &ca.pem));
        let client = ca.client(&format!(
            "spiffe://cluster.local/ns/conformance/sa/{client_name}"
        ))?;
        yaml.push_str(&tls_secret_yaml(INFRA, client_name, &client));
        client_certs.insert(format!("{INFRA}/{client_name}"), client);
    }
    let unrelated = TestCa::new("web-backend-cm")?;
    yaml.push_str(&ca_config_map_yaml(WEB, "web-backend-cm", &unrelated.pem));

    // Backend TLS and TLSRoute: one CA for the backends, their client certificate, and a CA
    // that trusts none of them.
    let checks = TestCa::new("tls-checks")?;
    yaml.push_str(&ca_config_map_yaml(
        INFRA,
        "tls-checks-ca-certificate",
        &checks.pem,
    ));
    let backend = checks.server_with_uri(
        &["abc.example.com", "other.example.com"],
        "spiffe://abc.example.com/test-identity",
    )?;
    secret(INFRA, "tls-checks-certificate", &backend, &mut yaml);
    let gateway_client = checks.client("spiffe://cluster.local/ns/infra/sa/gateway")?;
    yaml.push_str(&tls_secret_yaml(
        INFRA,
        "tls-checks-client-certificate",
        &gateway_client,
    ));
    client_certs.insert(
        format!("{INFRA}/tls-checks-client-certificate"),
        gateway_client,
    );
    let passthrough = checks.server(&["abc.example.com"])?;
    secret(
        INFRA,
        "tls-passthrough-checks-certificate",
        &passthrough,
        &mut yaml,
    );
    secret(
        APP,
        "tls-passthrough-checks-certificate",
        &passthrough,
        &mut yaml,
    );
    let terminate = checks.server(&["tls.example.com"])?;
    secret(
        INFRA,
        "tls-terminate-checks-certificate",
        &terminate,
        &mut yaml,
    );
    let mismatch = TestCa::new("mismatch")?;
    yaml.push_str(&ca_config_map_yaml(
        INFRA,
        "mismatch-ca-certificate",
        &mismatch.pem,
    ));

    Ok(Fixtures {
        yaml,
        trust_pem: format!("{}{}", validity.pem, checks.pem),
        client_certs,
    })
}
