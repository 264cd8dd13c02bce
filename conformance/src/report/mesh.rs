//! The mesh half of the upstream v1.6.1 suite: the MESH-HTTP profile's features and every HTTP
//! test of the mesh suite (`conformance/tests/mesh`), each with the features it declares.
//!
//! As upstream files tests into profiles, a mesh test counts in MESH-HTTP only when all its
//! features are `Mesh`, `HTTPRoute` or a mesh extended feature: 7 core and 7 extended tests do.
//! The other seven also name an HTTPRoute feature of GATEWAY-HTTP (`HTTPRouteResponseHeader…`,
//! `HTTPRouteParentRefPort`, `HTTPRoute30xRedirectStatusCode`), so they run and count in no
//! profile, but still decide the claims of `MeshClusterIPMatching` and `MeshConsumerRoute`, which
//! no counted test exercises. `MeshGRPCRouteWeight` (MESH-GRPC) is not rendered.

use super::suite::{HR, UpstreamTest, provisional, t};

/// The mesh core feature.
pub const MESH: &str = "Mesh";

/// The mesh extended features of v1.6.1 (MESH-HTTP's extended features), sorted.
pub const MESH_EXTENDED: [&str; 9] = [
    "MeshClusterIPMatching",
    "MeshConsumerRoute",
    "MeshHTTPRouteBackendRequestHeaderModification",
    "MeshHTTPRouteNamedRouteRule",
    "MeshHTTPRouteQueryParamMatching",
    "MeshHTTPRouteRedirectPath",
    "MeshHTTPRouteRedirectPort",
    "MeshHTTPRouteRewritePath",
    "MeshHTTPRouteSchemeRedirect",
];

const RESPONSE_HEADERS: &str = "HTTPRouteResponseHeaderModification";

/// Every HTTP test of the v1.6.1 mesh suite: each needs exactly one case.
pub const MESH_TESTS: &[UpstreamTest] = &[
    // MESH-HTTP core.
    t("MeshBasic", &[MESH]),
    t("MeshTrafficSplit", &[MESH, HR]),
    t("MeshHTTPRouteMatching", &[MESH, HR]),
    t("MeshHTTPRouteRedirectHostAndStatus", &[MESH, HR]),
    t("MeshHTTPRouteRequestHeaderModifier", &[MESH, HR]),
    t("MeshHTTPRouteSimpleSameNamespace", &[MESH, HR]),
    t("MeshHTTPRouteWeight", &[MESH, HR]),
    // MESH-HTTP extended.
    t(
        "MeshHTTPRouteBackendRequestHeaderModifier",
        &[MESH, HR, "MeshHTTPRouteBackendRequestHeaderModification"],
    ),
    provisional(
        "MeshHTTPRouteNamedRule",
        &[MESH, HR, "MeshHTTPRouteNamedRouteRule"],
    ),
    t(
        "MeshHTTPRouteQueryParamMatching",
        &[MESH, HR, "MeshHTTPRouteQueryParamMatching"],
    ),
    t(
        "MeshHTTPRouteRedirectPath",
        &[MESH, HR, "MeshHTTPRouteRedirectPath"],
    ),
    t(
        "MeshHTTPRouteRedirectPort",
        &[MESH, HR, "MeshHTTPRouteRedirectPort"],
    ),
    t(
        "MeshHTTPRouteSchemeRedirect",
        &[MESH, HR, "MeshHTTPRouteSchemeRedirect"],
    ),
    t(
        "MeshHTTPRouteRewritePath",
        &[MESH, HR, "MeshHTTPRouteRewritePath"],
    ),
    // Mesh tests of no profile (a GATEWAY-HTTP feature among theirs).
    t("MeshFrontend", &[MESH, HR, RESPONSE_HEADERS]),
    t(
        "MeshFrontendHostname",
        &[MESH, "MeshClusterIPMatching", HR, RESPONSE_HEADERS],
    ),
    t(
        "MeshPorts",
        &[MESH, HR, "HTTPRouteParentRefPort", RESPONSE_HEADERS],
    ),
    t(
        "MeshConsumerRoute",
        &[MESH, "MeshConsumerRoute", HR, RESPONSE_HEADERS],
    ),
    provisional(
        "MeshHTTPRoute303Redirect",
        &[MESH, HR, "HTTPRoute303RedirectStatusCode"],
    ),
    provisional(
        "MeshHTTPRoute307Redirect",
        &[MESH, HR, "HTTPRoute307RedirectStatusCode"],
    ),
    provisional(
        "MeshHTTPRoute308Redirect",
        &[MESH, HR, "HTTPRoute308RedirectStatusCode"],
    ),
];
