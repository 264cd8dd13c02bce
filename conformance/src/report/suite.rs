//! What the upstream suite holds: the Gateway API release, its profiles and their features, and
//! every upstream test the cases render, with the features it needs (the mesh tests are in
//! `mesh.rs`).

use super::mesh::{MESH, MESH_EXTENDED, MESH_TESTS};

/// The Gateway API release the cases are written against.
pub const GATEWAY_API_VERSION: &str = "v1.6.1";
/// The release channel of the CRDs the cases use: experimental, as some claimed features
/// (HTTPRouteRetry, HTTPRouteDestinationPortMatching) exist only there.
pub const GATEWAY_API_CHANNEL: &str = "experimental";

const GW: &str = "Gateway";
pub(super) const HR: &str = "HTTPRoute";
const RG: &str = "ReferenceGrant";
const GR: &str = "GRPCRoute";
const TR: &str = "TLSRoute";
const LS: &str = "ListenerSet";

/// The Gateway extended features of v1.6.1 (in both profiles), sorted.
pub const GATEWAY_EXTENDED: [&str; 10] = [
    "GatewayAddressEmpty",
    "GatewayBackendClientCertificate",
    "GatewayFrontendClientCertificateValidation",
    "GatewayFrontendClientCertificateValidationInsecureFallback",
    "GatewayHTTPListenerIsolation",
    "GatewayHTTPSListenerDetectMisdirectedRequests",
    "GatewayInfrastructurePropagation",
    "GatewayPort8080",
    "GatewayStaticAddresses",
    "ListenerSet",
];

/// The HTTPRoute extended features of v1.6.1, sorted.
pub const HTTPROUTE_EXTENDED: [&str; 26] = [
    "HTTPRoute303RedirectStatusCode",
    "HTTPRoute307RedirectStatusCode",
    "HTTPRoute308RedirectStatusCode",
    "HTTPRouteBackendProtocolH2C",
    "HTTPRouteBackendProtocolWebSocket",
    "HTTPRouteBackendRequestHeaderModification",
    "HTTPRouteBackendTimeout",
    "HTTPRouteCORS",
    "HTTPRouteDestinationPortMatching",
    "HTTPRouteHostRewrite",
    "HTTPRouteMethodMatching",
    "HTTPRouteNamedRouteRule",
    "HTTPRouteParentRefPort",
    "HTTPRoutePathRedirect",
    "HTTPRoutePathRewrite",
    "HTTPRoutePortRedirect",
    "HTTPRouteQueryParamMatching",
    "HTTPRouteRequestMirror",
    "HTTPRouteRequestMultipleMirrors",
    "HTTPRouteRequestPercentageMirror",
    "HTTPRouteRequestTimeout",
    "HTTPRouteResponseHeaderModification",
    "HTTPRouteRetry",
    "HTTPRouteRetryBackendTimeout",
    "HTTPRouteRetryConnectionError",
    "HTTPRouteSchemeRedirect",
];

/// BackendTLSPolicy's features, counted as extended in GATEWAY-HTTP.
pub const BACKEND_TLS: [&str; 2] = ["BackendTLSPolicy", "BackendTLSPolicySANValidation"];

/// TLSRoute's extended features (GATEWAY-TLS).
pub const TLSROUTE_EXTENDED: [&str; 2] = ["TLSRouteModeMixed", "TLSRouteModeTerminate"];

/// Features of no profile that a v1.6.1 test still names (the test runs, but counts nowhere).
pub const PROFILELESS: [&str; 1] = ["GRPCRouteNamedRouteRule"];

/// A conformance profile: the features whose tests it counts.
#[derive(Debug, Clone, Copy)]
pub struct Profile {
    /// `GATEWAY-HTTP`, `GATEWAY-GRPC`, `GATEWAY-TLS`, `MESH-HTTP`.
    pub name: &'static str,
    /// The core feature of the profile's data plane (`Gateway` or `Mesh`): only tests naming it
    /// decide which of the profile's extended features are claimed.
    pub dataplane: &'static str,
    /// Core features: a test whose features are all in here counts as core.
    pub core: &'static [&'static str],
    /// Extended feature groups.
    pub extended: &'static [&'static [&'static str]],
}

impl Profile {
    /// Whether `feature` is one of the profile's extended features.
    pub fn is_extended(&self, feature: &str) -> bool {
        self.extended.iter().any(|g| g.contains(&feature))
    }

    /// Every extended feature, sorted.
    pub fn extended_features(&self) -> Vec<&'static str> {
        let mut all: Vec<&'static str> = self
            .extended
            .iter()
            .flat_map(|g| g.iter().copied())
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Whether a test with these features belongs to the profile.
    pub fn counts<S: AsRef<str>>(&self, features: &[S]) -> bool {
        features
            .iter()
            .all(|f| self.core.contains(&f.as_ref()) || self.is_extended(f.as_ref()))
    }

    /// Whether a test with these features counts as core in the profile.
    pub fn is_core<S: AsRef<str>>(&self, features: &[S]) -> bool {
        features.iter().all(|f| self.core.contains(&f.as_ref()))
    }
}

/// The profiles the report covers, in report order.
pub const PROFILES: [Profile; 4] = [
    Profile {
        name: "GATEWAY-HTTP",
        dataplane: GW,
        core: &[GW, RG, HR],
        extended: &[&GATEWAY_EXTENDED, &HTTPROUTE_EXTENDED, &BACKEND_TLS],
    },
    Profile {
        name: "GATEWAY-GRPC",
        dataplane: GW,
        core: &[GW, RG, GR],
        extended: &[&GATEWAY_EXTENDED],
    },
    Profile {
        name: "GATEWAY-TLS",
        dataplane: GW,
        core: &[GW, RG, TR],
        extended: &[&GATEWAY_EXTENDED, &TLSROUTE_EXTENDED],
    },
    Profile {
        name: "MESH-HTTP",
        dataplane: MESH,
        core: &[MESH, HR],
        extended: &[&MESH_EXTENDED],
    },
];

/// One upstream conformance test: what the case naming it must declare.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamTest {
    /// ShortName.
    pub name: &'static str,
    /// Its features.
    pub features: &'static [&'static str],
    /// Marked provisional upstream.
    pub provisional: bool,
    /// `None`: part of [`GATEWAY_API_VERSION`]; `Some(release)`: a newer test (e.g. from the
    /// upstream main branch) that only backs feature claims and counts in no statistics.
    pub newer: Option<&'static str>,
    /// Upstream skips this test for implementations that support this feature (it checks how
    /// the unsupported case is refused): skipped here, it does not hold back any claim.
    pub skipped_if_supported: Option<&'static str>,
}

pub(super) const fn t(name: &'static str, features: &'static [&'static str]) -> UpstreamTest {
    UpstreamTest {
        name,
        features,
        provisional: false,
        newer: None,
        skipped_if_supported: None,
    }
}

/// A test upstream runs only for implementations without `feature`.
const fn unless(
    name: &'static str,
    features: &'static [&'static str],
    feature: &'static str,
) -> UpstreamTest {
    UpstreamTest {
        name,
        features,
        provisional: false,
        newer: None,
        skipped_if_supported: Some(feature),
    }
}

pub(super) const fn provisional(
    name: &'static str,
    features: &'static [&'static str],
) -> UpstreamTest {
    UpstreamTest {
        name,
        features,
        provisional: true,
        newer: None,
        skipped_if_supported: None,
    }
}

const fn newer(name: &'static str, features: &'static [&'static str]) -> UpstreamTest {
    UpstreamTest {
        name,
        features,
        provisional: false,
        newer: Some("main (after v1.6.1)"),
        skipped_if_supported: None,
    }
}

/// Every v1.6.1 test of GATEWAY-HTTP, GATEWAY-GRPC and GATEWAY-TLS (plus GRPCRouteNamedRule, a gRPC test of no
/// profile), and the newer tests whose cases back feature claims: each needs exactly one case.
pub const UPSTREAM_TESTS: &[UpstreamTest] = &[
    // Core, Gateway only (both profiles).
    t("GatewayClassObservedGenerationBump", &[GW]),
    t("GatewayInvalidParametersRef", &[GW]),
    t("GatewayInvalidRouteKind", &[GW]),
    t("GatewayInvalidTLSConfiguration", &[GW]),
    t("GatewayListenerUnsupportedProtocol", &[GW]),
    t("GatewayModifyListeners", &[GW]),
    t("GatewayObservedGenerationBump", &[GW]),
    t("GatewaySecretInvalidReferenceGrant", &[GW, RG]),
    t("GatewaySecretMissingReferenceGrant", &[GW, RG]),
    t("GatewaySecretReferenceGrantAllInNamespace", &[GW, RG]),
    t("GatewaySecretReferenceGrantSpecific", &[GW, RG]),
    // Core, HTTPRoute.
    t("GatewayWithAttachedRoutes", &[GW, HR]),
    t("HTTPRouteCrossNamespace", &[GW, HR]),
    t("HTTPRouteExactPathMatching", &[GW, HR]),
    t("HTTPRouteHTTPSListener", &[GW, HR]),
    t("HTTPRouteHeaderMatching", &[GW, HR]),
    t("HTTPRouteHostnameIntersection", &[GW, HR]),
    t("HTTPRouteInvalidBackendRefUnknownKind", &[GW, HR]),
    t("HTTPRouteInvalidCrossNamespaceBackendRef", &[GW, HR, RG]),
    t("HTTPRouteInvalidCrossNamespaceParentRef", &[GW, HR]),
    t("HTTPRouteInvalidNonExistentBackendRef", &[GW, HR]),
    t("HTTPRouteInvalidParentRefNotMatchingSectionName", &[GW, HR]),
    t("HTTPRouteInvalidReferenceGrant", &[GW, HR, RG]),
    t("HTTPRouteListenerHostnameMatching", &[GW, HR]),
    t("HTTPRouteMatching", &[GW, HR]),
    t("HTTPRouteMatchingAcrossRoutes", &[GW, HR]),
    t("HTTPRouteMultipleGateways", &[GW, HR]),
    t("HTTPRouteNoBackendRefs", &[GW, HR]),
    t("HTTPRouteObservedGenerationBump", &[GW, HR]),
    t(
        "HTTPRoutePartiallyInvalidViaInvalidReferenceGrant",
        &[GW, HR, RG],
    ),
    t("HTTPRoutePathMatchOrder", &[GW, HR]),
    t("HTTPRouteRedirectHostAndStatus", &[GW, HR]),
    t("HTTPRouteReferenceGrant", &[GW, HR, RG]),
    t("HTTPRouteRequestHeaderModifier", &[GW, HR]),
    t("HTTPRouteServiceTypes", &[GW, HR]),
    t("HTTPRouteSimpleSameNamespace", &[GW, HR]),
    t("HTTPRouteWeight", &[GW, HR]),
    // Core, GRPCRoute.
    t("GRPCExactMethodMatching", &[GW, GR]),
    t("GRPCRouteHeaderMatching", &[GW, GR]),
    t("GRPCRouteListenerHostnameMatching", &[GW, GR]),
    t("GRPCRouteWeight", &[GW, GR]),
    provisional("GRPCRouteNamedRule", &[GW, GR, "GRPCRouteNamedRouteRule"]),
    // Extended, Gateway.
    t(
        "GatewayWithAttachedRoutesWithPort8080",
        &[GW, "GatewayPort8080", HR],
    ),
    t(
        "GatewayHTTPListenerIsolation",
        &[GW, "GatewayHTTPListenerIsolation", HR],
    ),
    t("GatewayStaticAddresses", &[GW, "GatewayStaticAddresses"]),
    provisional("GatewayOptionalAddressValue", &[GW, "GatewayAddressEmpty"]),
    provisional(
        "GatewayInfrastructure",
        &[GW, "GatewayInfrastructurePropagation"],
    ),
    t(
        "HTTPRouteHTTPSListenerDetectMisdirectedRequests",
        &[GW, "GatewayHTTPSListenerDetectMisdirectedRequests", HR],
    ),
    t(
        "GatewayFrontendClientCertificateValidation",
        &[GW, HR, "GatewayFrontendClientCertificateValidation"],
    ),
    t(
        "GatewayFrontendClientCertificateValidationInsecureFallback",
        &[
            GW,
            HR,
            "GatewayFrontendClientCertificateValidation",
            "GatewayFrontendClientCertificateValidationInsecureFallback",
        ],
    ),
    t(
        "GatewayFrontendInvalidDefaultClientCertificateValidation",
        &[GW, HR, "GatewayFrontendClientCertificateValidation"],
    ),
    t(
        "GatewayInvalidFrontendClientCertificateValidation",
        &[GW, HR, RG, "GatewayFrontendClientCertificateValidation"],
    ),
    t(
        "GatewayTLSBackendClientCertificate",
        &[
            GW,
            "GatewayBackendClientCertificate",
            HR,
            "BackendTLSPolicy",
        ],
    ),
    t(
        "GatewayInvalidTLSBackendConfiguration",
        &[
            GW,
            "GatewayBackendClientCertificate",
            HR,
            "BackendTLSPolicy",
        ],
    ),
    // Extended, ListenerSet.
    t("ListenerSetAllowedNamespaceNone", &[GW, "ListenerSet"]),
    t("ListenerSetAllowedNamespaceSame", &[GW, "ListenerSet"]),
    t("ListenerSetAllowedNamespaceSelector", &[GW, "ListenerSet"]),
    t(
        "ListenerSetAllowedRoutesNamespaces",
        &[GW, "ListenerSet", HR, RG],
    ),
    t("ListenerSetDefaultNotAllowed", &[GW, "ListenerSet"]),
    t(
        "ListenerSetDualParentRefIndependence",
        &[GW, "ListenerSet", HR],
    ),
    t(
        "ListenerSetGatewayParentSectionNameNotFound",
        &[GW, "ListenerSet", HR],
    ),
    t("ListenerSetHTTPRouting", &[GW, "ListenerSet", HR]),
    t("ListenerSetHostnameConflict", &[GW, "ListenerSet"]),
    t("ListenerSetProtocolConflict", &[GW, "ListenerSet"]),
    t("ListenerSetReferenceGrant", &[GW, "ListenerSet", RG]),
    t(
        "ListenerSetRouteStatusScopedToParentRef",
        &[GW, "ListenerSet", HR],
    ),
    // Extended, BackendTLSPolicy.
    t("BackendTLSPolicy", &[GW, HR, "BackendTLSPolicy"]),
    t(
        "BackendTLSPolicyConflictResolution",
        &[GW, HR, "BackendTLSPolicy"],
    ),
    t(
        "BackendTLSPolicyInvalidCACertificateRef",
        &[GW, HR, "BackendTLSPolicy"],
    ),
    t("BackendTLSPolicyInvalidKind", &[GW, HR, "BackendTLSPolicy"]),
    t(
        "BackendTLSPolicyObservedGenerationBump",
        &[GW, HR, "BackendTLSPolicy"],
    ),
    t(
        "BackendTLSPolicySANValidation",
        &[GW, HR, "BackendTLSPolicy", "BackendTLSPolicySANValidation"],
    ),
    // Extended, HTTPRoute.
    provisional(
        "HTTPRoute303Redirect",
        &[GW, HR, "HTTPRoute303RedirectStatusCode"],
    ),
    provisional(
        "HTTPRoute307Redirect",
        &[GW, HR, "HTTPRoute307RedirectStatusCode"],
    ),
    provisional(
        "HTTPRoute308Redirect",
        &[GW, HR, "HTTPRoute308RedirectStatusCode"],
    ),
    t(
        "HTTPRouteBackendProtocolH2C",
        &[GW, HR, "HTTPRouteBackendProtocolH2C"],
    ),
    t(
        "HTTPRouteBackendProtocolWebSocket",
        &[GW, HR, "HTTPRouteBackendProtocolWebSocket"],
    ),
    t(
        "HTTPRouteBackendRequestHeaderModifier",
        &[GW, HR, "HTTPRouteBackendRequestHeaderModification"],
    ),
    t("HTTPRouteCORS", &[GW, HR, "HTTPRouteCORS"]),
    t(
        "HTTPRouteInvalidParentRefNotMatchingListenerPort",
        &[GW, HR, "HTTPRouteDestinationPortMatching"],
    ),
    t(
        "HTTPRouteInvalidParentRefSectionNameNotMatchingPort",
        &[GW, HR, "HTTPRouteParentRefPort"],
    ),
    t(
        "HTTPRouteListenerPortMatching",
        &[GW, HR, "HTTPRouteParentRefPort"],
    ),
    t(
        "HTTPRouteMethodMatching",
        &[GW, HR, "HTTPRouteMethodMatching"],
    ),
    provisional("HTTPRouteNamedRule", &[GW, HR, "HTTPRouteNamedRouteRule"]),
    t(
        "HTTPRouteQueryParamMatching",
        &[GW, HR, "HTTPRouteQueryParamMatching"],
    ),
    t("HTTPRouteRedirectPath", &[GW, HR, "HTTPRoutePathRedirect"]),
    t("HTTPRouteRedirectPort", &[GW, HR, "HTTPRoutePortRedirect"]),
    t(
        "HTTPRouteRedirectPortAndScheme",
        &[GW, HR, "HTTPRoutePortRedirect", "GatewayPort8080"],
    ),
    t(
        "HTTPRouteRedirectScheme",
        &[GW, HR, "HTTPRouteSchemeRedirect"],
    ),
    t(
        "HTTPRouteRequestHeaderModifierBackendWeights",
        &[GW, "HTTPRouteBackendRequestHeaderModification", HR],
    ),
    t(
        "HTTPRouteRequestMirror",
        &[GW, HR, "HTTPRouteRequestMirror"],
    ),
    t(
        "HTTPRouteRequestMultipleMirrors",
        &[
            GW,
            HR,
            "HTTPRouteRequestMirror",
            "HTTPRouteRequestMultipleMirrors",
        ],
    ),
    provisional(
        "HTTPRouteRequestPercentageMirror",
        &[GW, HR, "HTTPRouteRequestPercentageMirror"],
    ),
    t(
        "HTTPRouteResponseHeaderModifier",
        &[GW, HR, "HTTPRouteResponseHeaderModification"],
    ),
    t("HTTPRouteRetry", &[GW, HR, "HTTPRouteRetry"]),
    t("HTTPRouteRewriteHost", &[GW, HR, "HTTPRouteHostRewrite"]),
    t("HTTPRouteRewritePath", &[GW, HR, "HTTPRoutePathRewrite"]),
    t(
        "HTTPRouteTimeoutBackendRequest",
        &[GW, HR, "HTTPRouteBackendTimeout"],
    ),
    t(
        "HTTPRouteTimeoutRequest",
        &[GW, HR, "HTTPRouteRequestTimeout"],
    ),
    // GATEWAY-TLS: TLSRoute.
    t("TLSRouteSimpleSameNamespace", &[GW, TR]),
    t("TLSRouteHostnameIntersection", &[GW, TR]),
    t("TLSRouteInvalidBackendRefNonexistent", &[GW, TR]),
    t("TLSRouteInvalidBackendRefUnknownKind", &[GW, TR]),
    t("TLSRouteInvalidNoMatchingListenerHostname", &[GW, TR]),
    t("TLSRouteInvalidNoMatchingListener", &[GW, TR]),
    t("TLSRouteInvalidReferenceGrant", &[GW, TR, RG]),
    t("TLSRouteListenerPassthroughSupportedKinds", &[GW, TR]),
    unless(
        "TLSRouteListenerTerminateNotSupported",
        &[GW, TR],
        "TLSRouteModeTerminate",
    ),
    t(
        "TLSRouteListenerTerminateSupportedKinds",
        &[GW, TR, "TLSRouteModeTerminate"],
    ),
    unless(
        "TLSRouteListenerMixedTerminationNotSupported",
        &[GW, TR, "TLSRouteModeTerminate"],
        "TLSRouteModeMixed",
    ),
    provisional(
        "TLSRouteTerminateSimpleSameNamespace",
        &[GW, TR, "TLSRouteModeTerminate"],
    ),
    provisional(
        "TLSRouteMixedTerminationSameNamespace",
        &[GW, TR, "TLSRouteModeTerminate", "TLSRouteModeMixed"],
    ),
    // Across profiles: counted in none, run because every feature is supported.
    t("HTTPRouteDisallowedKind", &[GW, HR, TR]),
    t("ListenerSetAllowedRoutesSupportedKinds", &[GW, LS, TR]),
    // Newer than v1.6.1: the only tests of two v1.6.1 retry features.
    newer(
        "HTTPRouteRetryConnectionError",
        &[GW, HR, "HTTPRouteRetry", "HTTPRouteRetryConnectionError"],
    ),
    newer(
        "HTTPRouteRetryWithTimeouts",
        &[
            GW,
            HR,
            "HTTPRouteRetry",
            "HTTPRouteRetryBackendTimeout",
            "HTTPRouteRequestTimeout",
            "HTTPRouteBackendTimeout",
        ],
    ),
];

/// Every upstream test that needs a case: the Gateway tests, then the mesh tests.
pub fn upstream_tests() -> impl Iterator<Item = &'static UpstreamTest> {
    UPSTREAM_TESTS.iter().chain(MESH_TESTS)
}

/// The upstream test of this ShortName.
pub fn upstream_test(name: &str) -> Option<&'static UpstreamTest> {
    upstream_tests().find(|t| t.name == name)
}

/// Whether a feature name is known to the report (core, extended or profile-less).
pub fn is_known_feature(feature: &str) -> bool {
    [GW, HR, RG, GR, TR, MESH].contains(&feature)
        || PROFILELESS.contains(&feature)
        || PROFILES.iter().any(|p| p.is_extended(feature))
}
