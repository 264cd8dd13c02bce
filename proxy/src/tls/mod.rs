//! TLS on both sides of the proxy: termination (certificates by SNI, client-certificate
//! validation, the connection's identity) and, for backends, origination.

pub mod client;
pub mod identity;
pub mod server;

pub use client::TlsOrigination;
pub use identity::DownstreamTls;
pub use server::port_acceptor;
