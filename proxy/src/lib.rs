//! waygate: the data plane. Pingora-based listeners driven from the compiled Snapshot, hot reload,
//! the admin server and the CLI's building blocks.

pub mod access_log;
pub mod admin;
pub mod authz;
pub mod balancer;
pub mod dns;
mod endpoint_choice;
pub mod forwarded;
pub mod gateway;
pub mod headers;
pub mod listener;
pub mod local_reply;
mod lookup;
pub mod mesh;
pub mod mirror;
pub mod outlier;
pub mod proxy_app;
pub mod reload;
mod request_ctx;
pub mod routing;
pub mod state;
pub mod tls;
pub mod tls_route;
pub mod upgrade;
pub mod upstream;
pub mod upstream_state;

pub use gateway::{Gateway, GatewayOptions};
pub use listener::BindPlan;
