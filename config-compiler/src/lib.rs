//! waygate-config: the Gateway API and Istio resources users write, loaded from files, validated,
//! and compiled into the immutable [`Snapshot`] the proxy serves, with status for every object.

pub mod compile;
pub mod error;
pub mod explain;
pub mod hostname;
pub mod load;
pub mod request_match;
pub mod resources;
pub mod route_table;
pub mod snapshot;
pub mod status;
pub mod tls_material;
pub mod traffic_policy;
pub mod upstream_tls;

pub use compile::{CompileOptions, compile};
pub use error::{LoadError, LoadErrors};
pub use load::{load_path, load_str};
pub use request_match::RequestView;
pub use resources::{NsName, Resources};
pub use snapshot::Snapshot;
pub use status::StatusReport;
