//! A running gateway: state, listeners, admin server and hot reload, started from a config source.

use crate::listener::{BindFailure, BindPlan, ListenerManager};
use crate::state::SharedState;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use waygate_config::status::{Condition, ObjectStatus};
use waygate_config::{CompileOptions, LoadErrors, NsName, Resources, Snapshot, StatusReport};

/// Where the config comes from.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// A file or folder, watched for changes.
    Path(PathBuf),
    /// Built-in YAML (the demo); `name` is shown in errors.
    Inline {
        /// Name for messages.
        name: String,
        /// The YAML.
        text: String,
    },
}

impl ConfigSource {
    /// Load the resources.
    pub fn load(&self) -> Result<Resources, LoadErrors> {
        match self {
            ConfigSource::Path(p) => waygate_config::load_path(p),
            ConfigSource::Inline { name, text } => waygate_config::load_str(name, text),
        }
    }

    fn label(&self) -> String {
        match self {
            ConfigSource::Path(p) => p.display().to_string(),
            ConfigSource::Inline { name, .. } => name.clone(),
        }
    }
}

/// How to run a gateway.
#[derive(Clone)]
pub struct GatewayOptions {
    /// The config.
    pub source: ConfigSource,
    /// Where listeners bind.
    pub bind: BindPlan,
    /// Admin server address; `None` for no admin server.
    pub admin: Option<SocketAddr>,
    /// Gateways to serve (empty: every Istio-class Gateway).
    pub gateways: Vec<NsName>,
    /// Watch the config path and reload on change.
    pub watch: bool,
    /// The mesh identity (HBONE listeners), re-read on every reload.
    pub identity: Option<crate::mesh::IdentityFiles>,
    /// The DNS server for ServiceEntry names (`--dns-server`); `None`: the system's.
    pub dns_server: Option<SocketAddr>,
}

/// A running gateway. Dropping it closes every listener.
pub struct Gateway {
    state: Arc<SharedState>,
    listeners: Arc<ListenerManager>,
    options: GatewayOptions,
    admin_addr: Option<SocketAddr>,
    reload_lock: tokio::sync::Mutex<()>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Load and compile in one step.
pub fn build(
    source: &ConfigSource,
    gateways: &[NsName],
) -> Result<(Snapshot, StatusReport), LoadErrors> {
    let resources = source.load()?;
    let options = CompileOptions {
        gateways: gateways.to_vec(),
    };
    Ok(waygate_config::compile(&resources, &options))
}

impl Gateway {
    /// Load the config (an error here stops startup: there is no last good config), bind every
    /// listener, start the admin server and the watcher.
    pub async fn start(options: GatewayOptions) -> anyhow::Result<Arc<Gateway>> {
        let (snapshot, report) = build(&options.source, &options.gateways).map_err(|e| {
            anyhow::anyhow!("config {} does not load:\n{e}", options.source.label())
        })?;
        for w in &report.warnings {
            tracing::warn!("{w}");
        }
        for p in report.problems() {
            tracing::warn!("{p}");
        }
        let state = SharedState::new();
        let listeners = Arc::new(
            ListenerManager::new(options.bind.clone(), state.clone())
                .with_dns_server(options.dns_server),
        );
        if let Some(files) = &options.identity {
            let identity = files
                .load()
                .map_err(|e| anyhow::anyhow!("mesh identity: {e}"))?;
            tracing::info!(id = %identity.spiffe_id, "mesh identity loaded");
            listeners.set_identity(Some(identity));
        }
        let failures = listeners.reconcile(&snapshot).await;
        let report = with_addresses(report, &options.bind);
        state.publish(snapshot, with_config_status(report, &options.source, None));
        record_bind_failures(&state, &failures);
        let mut tasks = Vec::new();
        let admin_addr = match options.admin {
            Some(addr) => {
                let (bound, task) = crate::admin::serve(addr, state.clone()).await?;
                tasks.push(task);
                Some(bound)
            }
            None => None,
        };
        let gw = Arc::new_cyclic(|_| Gateway {
            state,
            listeners,
            options: options.clone(),
            admin_addr,
            reload_lock: tokio::sync::Mutex::new(()),
            tasks,
        });
        if options.watch
            && let ConfigSource::Path(p) = &options.source
        {
            crate::reload::watch(p.clone(), Arc::downgrade(&gw))?;
            // A rotated certificate or bundle is picked up like a config change.
            for f in options
                .identity
                .iter()
                .flat_map(|i| [&i.cert, &i.key, &i.trust_bundle])
            {
                crate::reload::watch(f.clone(), Arc::downgrade(&gw))?;
            }
        }
        Ok(gw)
    }

    /// Reload now: a config that does not load is refused and the last good one keeps serving.
    pub async fn reload(&self) -> Result<(), LoadErrors> {
        let _one_at_a_time = self.reload_lock.lock().await;
        match build(&self.options.source, &self.options.gateways) {
            Ok((snapshot, report)) => {
                if let Some(files) = &self.options.identity {
                    // A bad identity file keeps the identity in use (new handshakes would fail).
                    match files.load() {
                        Ok(identity) => self.listeners.set_identity(Some(identity)),
                        Err(e) => tracing::error!(
                            "mesh identity not reloaded, keeping the last good one: {e}"
                        ),
                    }
                }
                // Bind new sockets before requests can be routed to them; close removed ones after.
                let failures = self.listeners.reconcile(&snapshot).await;
                tracing::info!(routes = snapshot.route_count(), "config reloaded");
                let report = with_addresses(report, &self.options.bind);
                self.state.publish(
                    snapshot,
                    with_config_status(report, &self.options.source, None),
                );
                record_bind_failures(&self.state, &failures);
                Ok(())
            }
            Err(e) => {
                tracing::error!("reload refused, still serving the last good config:\n{e}");
                let msg = e.to_string();
                self.state.update_report(|r| {
                    *r = with_config_status(r.clone(), &self.options.source, Some(&msg));
                });
                self.state.record_error(msg);
                Err(e)
            }
        }
    }

    /// The live state.
    pub fn state(&self) -> &Arc<SharedState> {
        &self.state
    }

    /// The address a Gateway port is bound to.
    pub fn bound_addr(&self, gateway: &NsName, port: u16) -> Option<SocketAddr> {
        self.listeners.bound_addr(gateway, port)
    }

    /// The admin server's address.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.listeners.shutdown();
    }
}

/// Put the config's own load state first in the status list, so `/status` shows a refused reload.
/// Every Gateway is reachable on the bound IP (an unspecified `--bind` such as `0.0.0.0` names
/// no single address, so none is reported then).
fn with_addresses(mut report: StatusReport, bind: &BindPlan) -> StatusReport {
    let ip = match bind {
        BindPlan::Address(ip) | BindPlan::Ephemeral(ip) => *ip,
    };
    if ip.is_unspecified() {
        return report;
    }
    for o in report.objects.iter_mut().filter(|o| o.kind == "Gateway") {
        o.addresses = vec![waygate_config::status::StatusAddress {
            kind: "IPAddress".into(),
            value: ip.to_string(),
            host: None,
        }];
    }
    report
}

fn with_config_status(
    mut report: StatusReport,
    source: &ConfigSource,
    error: Option<&str>,
) -> StatusReport {
    report.objects.retain(|o| o.kind != "Config");
    let mut s = ObjectStatus::new("Config", "", &source.label());
    s.conditions.set(match error {
        None => Condition::new("Loaded", true, "Loaded", "Config loaded and serving"),
        Some(e) => Condition::new(
            "Loaded",
            false,
            "InvalidConfig",
            format!("reload refused, serving the last good config: {e}"),
        ),
    });
    for w in &report.warnings {
        s.conditions
            .0
            .push(Condition::new("Warning", true, "Ignored", w.clone()));
    }
    report.objects.insert(0, s);
    report
}

/// A listener whose port cannot be bound is reported as `PortUnavailable` ([GW-8]).
fn record_bind_failures(state: &SharedState, failures: &[BindFailure]) {
    if failures.is_empty() {
        return;
    }
    for f in failures {
        tracing::error!(gateway = %f.gateway, port = f.port, "{}", f.error);
    }
    state.update_report(|r| {
        for f in failures {
            let Some(gw) = r.objects.iter_mut().find(|o| {
                o.kind == "Gateway"
                    && o.namespace == f.gateway.namespace
                    && o.name == f.gateway.name
            }) else {
                continue;
            };
            for l in gw.listeners.iter_mut() {
                if l.port == f.port && l.conditions.get("Programmed").is_some_and(|c| c.is_true()) {
                    l.conditions.set(Condition::new(
                        "Accepted",
                        false,
                        "PortUnavailable",
                        f.error.clone(),
                    ));
                    l.conditions.set(Condition::new(
                        "Programmed",
                        false,
                        "Invalid",
                        f.error.clone(),
                    ));
                }
            }
        }
    });
}
