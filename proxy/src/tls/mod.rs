//! TLS on both sides of the proxy: termination (certificates by SNI, client-certificate
//! validation, the connection's identity) and, for backends, origination.

pub mod identity;
pub mod server;

pub use identity::DownstreamTls;
pub use server::port_acceptor;
