//! Gateway API conformance support for waygate: the echo backend and (later) data-driven cases and reports.

pub mod echo;
