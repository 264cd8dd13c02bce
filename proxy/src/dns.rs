//! [SE-2] DNS for ServiceEntry endpoints: names are resolved when a request needs an endpoint,
//! through one caching resolver that keeps each answer for its TTL, so a changed record is seen
//! once the old one expires and a steady stream of requests costs no queries in between.

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use waygate_config::snapshot::DnsResolve;

/// The resolver: the system's (`/etc/resolv.conf`), or one server given by `--dns-server`.
/// Built on first use, so configs without DNS endpoints never read the system config.
#[derive(Default)]
pub struct Dns {
    server: Option<SocketAddr>,
    resolver: OnceLock<Result<TokioResolver, String>>,
    cursor: AtomicUsize,
}

impl Dns {
    /// A resolver asking `server` (else the system's resolvers).
    pub fn new(server: Option<SocketAddr>) -> Self {
        Self {
            server,
            ..Self::default()
        }
    }

    fn resolver(&self) -> Result<&TokioResolver, String> {
        self.resolver
            .get_or_init(|| {
                let builder = match self.server {
                    Some(s) => TokioResolver::builder_with_config(
                        ResolverConfig::from_parts(
                            None,
                            vec![],
                            NameServerConfigGroup::from_ips_clear(&[s.ip()], s.port(), true),
                        ),
                        TokioConnectionProvider::default(),
                    ),
                    None => TokioResolver::builder_tokio()
                        .map_err(|e| format!("system DNS configuration: {e}"))?,
                };
                let mut options = ResolverOpts::default();
                // Names are absolute (a ServiceEntry host is an FQDN): no search-list walk.
                options.ndots = 0;
                Ok(builder.with_options(options).build())
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Every address the names resolve to now, with their ports; the error names each failure.
    pub async fn endpoints(&self, target: &DnsResolve) -> Result<Vec<SocketAddr>, String> {
        let resolver = self.resolver()?;
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for (name, port) in &target.names {
            let absolute = if name.ends_with('.') {
                name.clone()
            } else {
                format!("{name}.")
            };
            match resolver.lookup_ip(absolute).await {
                Ok(ips) => {
                    let ips: Vec<IpAddr> = ips.iter().collect();
                    let take = if target.first_only { 1 } else { ips.len() };
                    out.extend(
                        ips.into_iter()
                            .take(take)
                            .map(|ip| SocketAddr::new(ip, *port)),
                    );
                }
                Err(e) => errors.push(format!("{name}: {e}")),
            }
        }
        if out.is_empty() {
            return Err(if errors.is_empty() {
                "no names to resolve".to_string()
            } else {
                errors.join("; ")
            });
        }
        Ok(out)
    }

    /// The next endpoint, round-robin over what the names resolve to.
    pub async fn next_endpoint(&self, target: &DnsResolve) -> Result<SocketAddr, String> {
        let endpoints = self.endpoints(target).await?;
        let i = self.cursor.fetch_add(1, Ordering::Relaxed);
        endpoints
            .get(i % endpoints.len())
            .copied()
            .ok_or_else(|| "no addresses".to_string())
    }
}
