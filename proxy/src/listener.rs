//! The listener manager: binds one socket per Gateway port (or per shared address), serves each
//! connection with Pingora's HTTP proxy app, and reconciles sockets with every new Snapshot
//! without touching the ones that did not change.

use crate::proxy_app::GatewayProxy;
use crate::state::SharedState;
use arc_swap::{ArcSwap, ArcSwapOption};
use pingora::apps::ServerApp;
use pingora::listeners::tls::Acceptor;
use pingora::protocols::l4::socket::SocketAddr as PingoraAddr;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{GetSocketDigest, SocketDigest};
use pingora::proxy::{HttpProxy, http_proxy};
use pingora::server::configuration::ServerConf;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use waygate_config::{NsName, Snapshot};

/// Where each Gateway port is bound.
#[derive(Clone)]
pub enum BindPlan {
    /// Every listener on this IP and its own configured port.
    Address(IpAddr),
    /// Each (gateway, port) gets its own ephemeral port on this IP (for tests).
    Ephemeral(IpAddr),
}

/// Identity of a socket: a fixed address, or an ephemeral port for one Gateway port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum SocketId {
    Fixed(SocketAddr),
    Ephemeral(IpAddr, NsName, u16),
}

struct Running {
    addr: SocketAddr,
    keys: Arc<ArcSwap<Vec<(NsName, u16)>>>,
    /// The TLS acceptor when the port terminates TLS; swapped on every Snapshot so new
    /// handshakes see new certificates while open connections keep theirs.
    tls: Arc<ArcSwapOption<Acceptor>>,
    accept: JoinHandle<()>,
    shutdown: watch::Sender<bool>,
}

/// A failure to bind a Gateway port.
#[derive(Debug, Clone)]
pub struct BindFailure {
    /// The Gateway.
    pub gateway: NsName,
    /// The configured port.
    pub port: u16,
    /// The OS error.
    pub error: String,
}

/// Owns the sockets. Reconcile is called after each published Snapshot.
pub struct ListenerManager {
    plan: BindPlan,
    state: Arc<SharedState>,
    conf: Arc<ServerConf>,
    mirror: Arc<crate::mirror::Mirrorer>,
    running: Mutex<HashMap<SocketId, Running>>,
    /// The mesh identity (HBONE ports present and trust it; gateways reach waypoints with it)
    /// and the HBONE connection pool.
    mesh: Arc<crate::mesh::MeshContext>,
    /// Resolves ServiceEntry hosts with `resolution: DNS`.
    dns: Arc<crate::dns::Dns>,
}

impl ListenerManager {
    /// A manager with no sockets yet.
    pub fn new(plan: BindPlan, state: Arc<SharedState>) -> Self {
        Self {
            plan,
            state,
            conf: Arc::new(ServerConf::default()),
            mirror: Arc::new(crate::mirror::Mirrorer::for_gateway()),
            running: Mutex::new(HashMap::new()),
            mesh: Arc::new(crate::mesh::MeshContext::default()),
            dns: Arc::new(crate::dns::Dns::default()),
        }
    }

    /// Resolve ServiceEntry DNS names with `server` rather than the system's resolvers.
    pub fn with_dns_server(mut self, server: Option<std::net::SocketAddr>) -> Self {
        self.dns = Arc::new(crate::dns::Dns::new(server));
        self
    }

    /// Set the mesh identity; the next reconcile gives HBONE ports acceptors with it.
    pub fn set_identity(&self, identity: Option<Arc<crate::mesh::MeshIdentity>>) {
        self.mesh.identity.store(identity);
    }

    fn desired(&self, snapshot: &Snapshot) -> BTreeMap<SocketId, Vec<(NsName, u16)>> {
        let mut out: BTreeMap<SocketId, Vec<(NsName, u16)>> = BTreeMap::new();
        for (gw, port) in snapshot.bind_keys() {
            let id = match self.plan {
                BindPlan::Address(ip) => SocketId::Fixed(SocketAddr::new(ip, port)),
                BindPlan::Ephemeral(ip) => SocketId::Ephemeral(ip, gw.clone(), port),
            };
            out.entry(id).or_default().push((gw, port));
        }
        for (id, keys) in &out {
            if keys.len() > 1 {
                // One socket, several Gateways: each request goes to the first Gateway (in
                // namespace/name order) whose listener takes its host. Istio would give each
                // Gateway its own address; --gateway serves one of them per process.
                let names: Vec<String> = keys.iter().map(|(g, _)| g.to_string()).collect();
                tracing::warn!(socket = ?id, "Gateways share one socket: {}", names.join(", "));
            }
        }
        out
    }

    /// Bring sockets in line with the Snapshot: bind new ones, regroup changed ones, close removed
    /// ones (their open connections finish the request in flight). Returns bind failures.
    pub async fn reconcile(&self, snapshot: &Snapshot) -> Vec<BindFailure> {
        let desired = self.desired(snapshot);
        let mut failures = Vec::new();
        let mut to_bind = Vec::new();
        {
            let Ok(mut running) = self.running.lock() else {
                return failures;
            };
            running.retain(|id, r| {
                if desired.contains_key(id) {
                    return true;
                }
                r.accept.abort();
                let _ = r.shutdown.send(true);
                tracing::info!(addr = %r.addr, "listener closed");
                false
            });
            for (id, keys) in &desired {
                match running.get(id) {
                    Some(r) => {
                        if **r.keys.load() != *keys {
                            r.keys.store(Arc::new(keys.clone()));
                        }
                        r.tls.store(self.acceptor_for(snapshot, keys));
                    }
                    None => to_bind.push((id.clone(), keys.clone())),
                }
            }
        }
        for (id, keys) in to_bind {
            let addr = match &id {
                SocketId::Fixed(a) => *a,
                SocketId::Ephemeral(ip, _, _) => SocketAddr::new(*ip, 0),
            };
            let tls = self.acceptor_for(snapshot, &keys);
            match self.bind(addr, keys.clone(), tls).await {
                Ok(r) => {
                    tracing::info!(addr = %r.addr, "listener started");
                    if let Ok(mut running) = self.running.lock() {
                        running.insert(id, r);
                    }
                }
                Err(e) => {
                    for (gateway, port) in keys {
                        failures.push(BindFailure {
                            gateway,
                            port,
                            error: format!("bind {addr}: {e}"),
                        });
                    }
                }
            }
        }
        failures
    }

    async fn bind(
        &self,
        addr: SocketAddr,
        keys: Vec<(NsName, u16)>,
        tls: Option<Arc<Acceptor>>,
    ) -> std::io::Result<Running> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let keys = Arc::new(ArcSwap::from_pointee(keys));
        let inner = GatewayProxy {
            keys: keys.clone(),
            state: self.state.clone(),
            mirror: self.mirror.clone(),
            mesh: self.mesh.clone(),
            dns: self.dns.clone(),
        };
        let mut proxy = http_proxy(&self.conf, inner);
        let mut opts = pingora::apps::HttpServerOptions::default();
        opts.h2c = true;
        proxy.server_options = Some(opts);
        let app = Arc::new(proxy);
        let (shutdown, watch_rx) = watch::channel(false);
        let tls = Arc::new(ArcSwapOption::new(tls));
        let serving = Serving {
            app: app.clone(),
            tls: tls.clone(),
            keys: keys.clone(),
            state: self.state.clone(),
            dns: self.dns.clone(),
        };
        let accept = tokio::spawn(accept_loop(listener, serving, watch_rx));
        Ok(Running {
            addr,
            keys,
            tls,
            accept,
            shutdown,
        })
    }

    /// The address actually bound for a Gateway port.
    pub fn bound_addr(&self, gateway: &NsName, port: u16) -> Option<SocketAddr> {
        let running = self.running.lock().ok()?;
        running
            .values()
            .find(|r| {
                r.keys
                    .load()
                    .iter()
                    .any(|(g, p)| g == gateway && *p == port)
            })
            .map(|r| r.addr)
    }

    /// Close every socket.
    pub fn shutdown(&self) {
        if let Ok(mut running) = self.running.lock() {
            for (_, r) in running.drain() {
                r.accept.abort();
                let _ = r.shutdown.send(true);
            }
        }
    }
}

impl Drop for ListenerManager {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl ListenerManager {
    /// The TLS acceptor for a socket, from the first Gateway port it serves: the mesh identity
    /// for an HBONE port, the listeners' certificates otherwise.
    fn acceptor_for(&self, snapshot: &Snapshot, keys: &[(NsName, u16)]) -> Option<Arc<Acceptor>> {
        let (gw, port) = keys.first()?;
        let port = snapshot.port(gw, *port)?;
        if !is_hbone(port) {
            return acceptor_for(gw, port);
        }
        let Some(identity) = self.mesh.identity.load_full() else {
            tracing::error!(gateway = %gw, port = port.port, "HBONE needs a mesh identity (--identity-cert, --identity-key, --trust-bundle)");
            return None;
        };
        match crate::tls::server::hbone_acceptor(&identity) {
            Ok(a) => Some(Arc::new(a)),
            Err(e) => {
                tracing::error!(gateway = %gw, port = port.port, "HBONE not served: {e}");
                None
            }
        }
    }
}

/// Whether a port serves HBONE.
fn is_hbone(port: &waygate_config::snapshot::PortIr) -> bool {
    port.listeners.iter().any(|l| l.protocol == "HBONE")
}

/// The TLS acceptor of a port's HTTPS listeners.
fn acceptor_for(gw: &NsName, port: &waygate_config::snapshot::PortIr) -> Option<Arc<Acceptor>> {
    match crate::tls::port_acceptor(port) {
        Ok(a) => a.map(Arc::new),
        Err(e) => {
            tracing::error!(gateway = %gw, port = port.port, "TLS not served: {e}");
            None
        }
    }
}

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What a socket's connections are served with.
#[derive(Clone)]
struct Serving {
    app: Arc<HttpProxy<GatewayProxy>>,
    tls: Arc<ArcSwapOption<Acceptor>>,
    keys: Arc<ArcSwap<Vec<(NsName, u16)>>>,
    state: Arc<SharedState>,
    dns: Arc<crate::dns::Dns>,
}

async fn accept_loop(listener: TcpListener, serving: Serving, shutdown: watch::Receiver<bool>) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and similar: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let mut stream: L4Stream = tcp.into();
        let digest = SocketDigest::from_raw_fd(stream.as_raw_fd());
        let _ = digest.peer_addr.set(Some(PingoraAddr::Inet(peer)));
        stream.set_socket_digest(digest);
        let serving = serving.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let snapshot = serving.state.snapshot();
            let keys = serving.keys.load_full();
            let port = keys.first().and_then(|(g, p)| snapshot.port(g, *p));
            if let Some((gw, _)) = keys.first()
                && port.is_some_and(is_hbone)
            {
                // No acceptor (no identity): nothing can be served; the error is logged.
                let Some(acceptor) = serving.tls.load_full() else {
                    return;
                };
                let hbone = crate::mesh::hbone::HboneServing {
                    gateway: gw.clone(),
                    state: serving.state.clone(),
                    app: serving.app.clone(),
                    dns: serving.dns.clone(),
                };
                crate::mesh::hbone::serve(stream, peer, acceptor, hbone, shutdown).await;
                return;
            }
            if port.is_some_and(|p| p.listeners.iter().any(|l| l.protocol == "TLS")) {
                // SNI decides between HTTPS and TLS listeners before any byte is answered.
                let (sni, hello) = match crate::tls_route::read_client_hello(&mut stream).await {
                    Ok(h) => h,
                    Err(e) => {
                        tracing::debug!(%peer, "no usable ClientHello: {e}");
                        return;
                    }
                };
                let Some(listener) = port.and_then(|p| p.listener(sni.as_deref().unwrap_or("")))
                else {
                    tracing::debug!(%peer, ?sni, "no listener for this SNI; closing");
                    return;
                };
                if listener.protocol == "TLS" {
                    crate::tls_route::serve(stream, hello, sni, snapshot.clone(), listener).await;
                    return;
                }
                stream.rewind(&hello);
            }
            serve_http(stream, peer, &serving, &shutdown).await;
        });
    }
}

/// Serve HTTP on a connection: plain, or after the port's TLS handshake.
async fn serve_http(
    stream: L4Stream,
    peer: SocketAddr,
    serving: &Serving,
    shutdown: &watch::Receiver<bool>,
) {
    let Some(acceptor) = serving.tls.load_full() else {
        serving.app.process_new(Box::new(stream), shutdown).await;
        return;
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.tls_handshake(stream)).await {
        Ok(Ok(tls)) => {
            serving.app.process_new(Box::new(tls), shutdown).await;
        }
        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}
