//! Gateway API conformance support for waygate: the echo backend, and the report the data-driven cases roll up into.

pub mod echo;
pub mod grpc_echo;
pub mod hbone;
pub mod pki;
pub mod report;
pub mod tcp_echo;
