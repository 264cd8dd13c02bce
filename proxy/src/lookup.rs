//! Which Gateway, listener, route or waypoint service a request on one socket belongs to.

use crate::proxy_app::GatewayProxy;
use std::net::SocketAddr;
use waygate_config::snapshot::{GatewayIr, ListenerIr, NoRoute, RouteMatch};
use waygate_config::{RequestView, Snapshot};

impl GatewayProxy {
    pub(crate) fn route<'s>(
        &self,
        snapshot: &'s Snapshot,
        req: &RequestView<'_>,
    ) -> Result<RouteMatch<'s>, NoRoute> {
        let keys = self.keys.load();
        let mut best = NoRoute::NoListener;
        for (gw, port) in keys.iter() {
            let Some(p) = snapshot.port(gw, *port) else {
                continue;
            };
            match p.route(req) {
                Ok(m) => return Ok(m),
                // Isolation ([GW-3]): once a listener took the host, its answer stands.
                Err(NoRoute::NoListener) => {}
                Err(e) => best = e,
            }
        }
        Err(best)
    }

    /// Whether this socket is a waypoint's HBONE port (its traffic is already at the waypoint).
    pub(crate) fn is_waypoint(&self, snapshot: &Snapshot) -> bool {
        let keys = self.keys.load();
        keys.iter()
            .filter_map(|(gw, port)| snapshot.port(gw, *port))
            .any(|p| p.listeners.iter().any(|l| l.protocol == "HBONE"))
    }

    /// The Service port a tunnel's destination names on this socket's waypoint.
    /// The waypoint and the service port a tunnel's destination names.
    pub(crate) fn mesh_target<'s>(
        &self,
        snapshot: &'s Snapshot,
        dest: SocketAddr,
    ) -> Option<(&'s GatewayIr, &'s waygate_config::snapshot::MeshService)> {
        let keys = self.keys.load();
        keys.iter()
            .filter_map(|(gw, _)| snapshot.gateway(gw))
            .find_map(|g| Some((g, g.mesh_service(dest)?)))
    }

    /// The Gateway (and its configured port) whose listener on this socket takes `host`; the
    /// first one when none does.
    pub(crate) fn gateway_for_host<'s>(
        &self,
        snapshot: &'s Snapshot,
        host: &str,
    ) -> Option<(&'s GatewayIr, u16)> {
        let keys = self.keys.load();
        let with_listener = keys.iter().find(|(gw, port)| {
            snapshot
                .port(gw, *port)
                .is_some_and(|p| p.listener(host).is_some())
        });
        let (gw, port) = with_listener.or(keys.first())?;
        Some((snapshot.gateway(gw)?, *port))
    }

    /// The listener a TLS server name selects on this socket (the one whose certificate the
    /// handshake used).
    pub(crate) fn listener_for<'s>(
        &self,
        snapshot: &'s Snapshot,
        sni: &str,
    ) -> Option<&'s ListenerIr> {
        let keys = self.keys.load();
        keys.iter()
            .filter_map(|(gw, port)| snapshot.port(gw, *port))
            .find_map(|p| p.listener(sni))
    }
}
