//! The ambient mesh side of the proxy: the workload identity it presents and trusts, the
//! development CA that mints identities for demos and tests, and HBONE.

pub mod dev_ca;
pub mod hbone;
pub mod identity;
pub mod outbound;
pub mod tunnel;
pub mod waypoint;

pub use identity::{IdentityFiles, MeshIdentity};

/// What every socket's proxy shares for the mesh: the identity (swapped on rotation) and the
/// pool of HBONE connections to waypoints.
#[derive(Debug, Default)]
pub struct MeshContext {
    /// Our identity, if configured.
    pub identity: arc_swap::ArcSwapOption<MeshIdentity>,
    /// Pooled HBONE connections.
    pub pool: std::sync::Arc<outbound::HbonePool>,
}
