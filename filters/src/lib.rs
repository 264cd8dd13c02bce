//! Request and response filters: small values compiled once from config and applied per request.
//!
//! Filters know nothing about Pingora or YAML. They act on headers through [`HeaderEdit`], which
//! the proxy implements for its own header types, and on plain strings for paths and locations.
//! Rule-wide policies (timeouts, retries) live here too, as plain values the proxy reads.

pub mod authz;
pub mod cors;
pub mod direct_response;
pub mod fault;
pub mod header_modifier;
pub mod mirror;
pub mod path_rewrite;
pub mod redirect;
pub mod retry;
pub mod timeout;
pub mod url_rewrite;

pub use cors::{Cors, CorsSettings};
pub use direct_response::DirectResponse;
pub use fault::Fault;
pub use header_modifier::{HeaderEdit, HeaderModifier};
pub use mirror::Mirror;
pub use path_rewrite::PathRewrite;
pub use redirect::{DerivePort, Redirect, RedirectInput};
pub use retry::RetryPolicy;
pub use timeout::Timeouts;
pub use url_rewrite::UrlRewrite;

use serde::Serialize;

/// One compiled filter of a route rule (or of one backend), in the order the user wrote them.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Filter {
    /// Edit the request headers before they go upstream.
    RequestHeaderModifier(HeaderModifier),
    /// Edit the response headers before they go downstream.
    ResponseHeaderModifier(HeaderModifier),
    /// Answer with a redirect instead of forwarding.
    RequestRedirect(Redirect),
    /// Rewrite the upstream Host and/or path.
    UrlRewrite(UrlRewrite),
    /// Send a copy of the request to another backend and ignore its answer.
    RequestMirror(Mirror),
    /// Answer CORS preflights and add CORS headers to responses.
    Cors(Cors),
    /// Delay or abort a share of requests ([VS-7]).
    Fault(Fault),
    /// Answer with a fixed status and body instead of forwarding ([VS-6]).
    DirectResponse(DirectResponse),
}
