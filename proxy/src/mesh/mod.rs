//! The ambient mesh side of the proxy: the workload identity it presents and trusts, the
//! development CA that mints identities for demos and tests, and HBONE.

pub mod dev_ca;
pub mod hbone;
pub mod identity;
pub mod tunnel;
pub mod waypoint;

pub use identity::{IdentityFiles, MeshIdentity};
