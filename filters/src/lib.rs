//! Request and response filters: small values compiled once from config and applied per request.
//!
//! Filters know nothing about Pingora or YAML. They act on headers through [`HeaderEdit`], which
//! the proxy implements for its own header types, and on plain strings for paths and locations.

pub mod header_modifier;
pub mod path_rewrite;
pub mod redirect;

pub use header_modifier::{HeaderEdit, HeaderModifier};
pub use path_rewrite::PathRewrite;
pub use redirect::{Redirect, RedirectInput};

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
}
