//! The Gateway API ConformanceReport (the upstream report shape) and how case outcomes roll up into
//! it: the v1.6.1 profiles GATEWAY-HTTP and GATEWAY-GRPC, the upstream tests the cases render, and
//! which extended features the results let us claim.
//!
//! Field order follows the upstream writer, which emits every mapping with its keys sorted
//! alphabetically; `Statistics` keeps its capitalised keys (`Failed`, `Passed`, `Skipped`).

use serde::Serialize;
use std::collections::BTreeSet;

/// The Gateway API release the cases are written against.
pub const GATEWAY_API_VERSION: &str = "v1.6.1";
/// The release channel of the CRDs the cases use: experimental, as some claimed features
/// (HTTPRouteRetry, HTTPRouteDestinationPortMatching) exist only there.
pub const GATEWAY_API_CHANNEL: &str = "experimental";

const GW: &str = "Gateway";
const HR: &str = "HTTPRoute";
const RG: &str = "ReferenceGrant";
const GR: &str = "GRPCRoute";

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

/// Features of no profile that a v1.6.1 test still names (the test runs, but counts nowhere).
pub const PROFILELESS: [&str; 1] = ["GRPCRouteNamedRouteRule"];

/// A conformance profile: the features whose tests it counts.
#[derive(Debug, Clone, Copy)]
pub struct Profile {
    /// `GATEWAY-HTTP`, `GATEWAY-GRPC`.
    pub name: &'static str,
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
pub const PROFILES: [Profile; 2] = [
    Profile {
        name: "GATEWAY-HTTP",
        core: &[GW, RG, HR],
        extended: &[&GATEWAY_EXTENDED, &HTTPROUTE_EXTENDED, &BACKEND_TLS],
    },
    Profile {
        name: "GATEWAY-GRPC",
        core: &[GW, RG, GR],
        extended: &[&GATEWAY_EXTENDED],
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
}

const fn t(name: &'static str, features: &'static [&'static str]) -> UpstreamTest {
    UpstreamTest {
        name,
        features,
        provisional: false,
        newer: None,
    }
}

const fn provisional(name: &'static str, features: &'static [&'static str]) -> UpstreamTest {
    UpstreamTest {
        name,
        features,
        provisional: true,
        newer: None,
    }
}

const fn newer(name: &'static str, features: &'static [&'static str]) -> UpstreamTest {
    UpstreamTest {
        name,
        features,
        provisional: false,
        newer: Some("main (after v1.6.1)"),
    }
}

/// Every v1.6.1 test of GATEWAY-HTTP and GATEWAY-GRPC (plus GRPCRouteNamedRule, a gRPC test of no
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

/// The upstream test of this ShortName.
pub fn upstream_test(name: &str) -> Option<&'static UpstreamTest> {
    UPSTREAM_TESTS.iter().find(|t| t.name == name)
}

/// Whether a feature name is known to the report (core, extended or profile-less).
pub fn is_known_feature(feature: &str) -> bool {
    [GW, HR, RG, GR].contains(&feature)
        || PROFILELESS.contains(&feature)
        || PROFILES.iter().any(|p| p.is_extended(feature))
}

/// Who we are, as the report names it.
pub const ORGANIZATION: &str = "waygate";
/// Project name.
pub const PROJECT: &str = "waygate";
/// Project address: none is public yet, so the report says so instead of inventing one.
pub const URL: &str = "unpublished";
/// Who to ask about the report: the issue tracker of this repository.
pub const CONTACT: &str = "waygate issue tracker";

/// How one case (one upstream test) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every expectation ran and held.
    Passed,
    /// The case, or part of it, was not run; nothing that ran failed.
    Skipped,
    /// At least one expectation did not hold.
    Failed,
}

/// A case's outcome with what the report needs to file it.
#[derive(Debug, Clone)]
pub struct CaseOutcome {
    /// The upstream test's ShortName.
    pub upstream: String,
    /// The features the upstream test declares.
    pub features: Vec<String>,
    /// The result.
    pub outcome: Outcome,
}

/// `apiVersion: gateway.networking.k8s.io/v1`, `kind: ConformanceReport`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConformanceReport {
    /// Always `gateway.networking.k8s.io/v1`.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// RFC 3339 time the report was made.
    pub date: String,
    /// `standard` or `experimental`.
    #[serde(rename = "gatewayAPIChannel")]
    pub gateway_api_channel: String,
    /// The Gateway API version tested against.
    #[serde(rename = "gatewayAPIVersion")]
    pub gateway_api_version: String,
    /// The implementation under test.
    pub implementation: Implementation,
    /// Always `ConformanceReport`.
    pub kind: String,
    /// Conformance mode; `default`.
    pub mode: String,
    /// One entry per profile.
    pub profiles: Vec<ProfileReport>,
    /// Provisional tests that passed, sorted.
    #[serde(
        rename = "succeededProvisionalTests",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub succeeded_provisional_tests: Vec<String>,
}

/// The implementation block.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Implementation {
    /// Where to reach the maintainers.
    pub contact: Vec<String>,
    /// Organisation.
    pub organization: String,
    /// Project.
    pub project: String,
    /// Project URL.
    pub url: String,
    /// Version under test.
    pub version: String,
}

/// One profile's results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfileReport {
    /// Core tests.
    pub core: Status,
    /// Extended tests and features.
    pub extended: ExtendedStatus,
    /// Profile name.
    pub name: String,
    /// One sentence on core and extended results.
    pub summary: String,
}

/// Results of one level (core).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Upstream names of failed tests.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed_tests: Vec<String>,
    /// `success`, `partial` or `failure`.
    pub result: String,
    /// Upstream names of skipped tests.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped_tests: Vec<String>,
    /// Counts.
    pub statistics: Statistics,
}

/// Results of the extended level, plus which extended features are claimed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtendedStatus {
    /// Upstream names of failed tests.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed_tests: Vec<String>,
    /// `success`, `partial` or `failure`.
    pub result: String,
    /// Upstream names of skipped tests.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped_tests: Vec<String>,
    /// Counts.
    pub statistics: Statistics,
    /// Extended features every test of which passed.
    pub supported_features: Vec<String>,
    /// The profile's other extended features.
    pub unsupported_features: Vec<String>,
}

/// Test counts; upstream keeps the Go field names as keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Statistics {
    /// Failed tests.
    #[serde(rename = "Failed")]
    pub failed: u32,
    /// Passed tests.
    #[serde(rename = "Passed")]
    pub passed: u32,
    /// Skipped tests.
    #[serde(rename = "Skipped")]
    pub skipped: u32,
}

impl Statistics {
    /// `failure` if anything failed, else `partial` if anything was skipped, else `success`.
    pub fn result(&self) -> &'static str {
        if self.failed > 0 {
            "failure"
        } else if self.skipped > 0 {
            "partial"
        } else {
            "success"
        }
    }
}

#[derive(Default)]
struct Level {
    stats: Statistics,
    skipped: BTreeSet<String>,
    failed: BTreeSet<String>,
}

impl Level {
    fn add(&mut self, c: &CaseOutcome) {
        match c.outcome {
            Outcome::Passed => self.stats.passed += 1,
            Outcome::Skipped => {
                self.stats.skipped += 1;
                self.skipped.insert(c.upstream.clone());
            }
            Outcome::Failed => {
                self.stats.failed += 1;
                self.failed.insert(c.upstream.clone());
            }
        }
    }

    fn sentence(&self, level: &str) -> String {
        let s = &self.stats;
        if s.failed > 0 {
            format!("{level} tests failed with {} test failures.", s.failed)
        } else if s.skipped > 0 {
            format!(
                "{level} tests partially succeeded with {} test skips.",
                s.skipped
            )
        } else {
            format!("{level} tests succeeded.")
        }
    }
}

/// The extended features claimed: named by at least one case, and every case naming them passed.
pub fn claimed_features(outcomes: &[CaseOutcome]) -> BTreeSet<String> {
    let mut exercised: BTreeSet<&str> = BTreeSet::new();
    let mut not_passing: BTreeSet<&str> = BTreeSet::new();
    for c in outcomes {
        for f in &c.features {
            if PROFILES.iter().any(|p| p.is_extended(f)) {
                exercised.insert(f);
                if c.outcome != Outcome::Passed {
                    not_passing.insert(f);
                }
            }
        }
    }
    exercised
        .difference(&not_passing)
        .map(|f| f.to_string())
        .collect()
}

fn profile_report(
    profile: &Profile,
    outcomes: &[CaseOutcome],
    claimed: &BTreeSet<String>,
) -> ProfileReport {
    let mut core = Level::default();
    let mut extended = Level::default();
    for c in outcomes {
        // Newer tests only back claims; tests of other profiles do not count here.
        if upstream_test(&c.upstream).is_some_and(|t| t.newer.is_some())
            || !profile.counts(&c.features)
        {
            continue;
        }
        if profile.is_core(&c.features) {
            core.add(c);
        } else {
            extended.add(c);
        }
    }
    let all = profile.extended_features();
    let supported: Vec<String> = all
        .iter()
        .filter(|f| claimed.contains(**f))
        .map(|f| f.to_string())
        .collect();
    let unsupported: Vec<String> = all
        .iter()
        .filter(|f| !claimed.contains(**f))
        .map(|f| f.to_string())
        .collect();
    let summary = format!(
        "{} {}",
        core.sentence("Core"),
        extended.sentence("Extended")
    );
    ProfileReport {
        core: Status {
            failed_tests: core.failed.into_iter().collect(),
            result: core.stats.result().into(),
            skipped_tests: core.skipped.into_iter().collect(),
            statistics: core.stats,
        },
        extended: ExtendedStatus {
            failed_tests: extended.failed.into_iter().collect(),
            result: extended.stats.result().into(),
            skipped_tests: extended.skipped.into_iter().collect(),
            statistics: extended.stats,
            supported_features: supported,
            unsupported_features: unsupported,
        },
        name: profile.name.into(),
        summary,
    }
}

/// Roll case outcomes up into the report. Deterministic apart from `date`.
pub fn build(outcomes: &[CaseOutcome], version: &str, date: String) -> ConformanceReport {
    let claimed = claimed_features(outcomes);
    let profiles = PROFILES
        .iter()
        .map(|p| profile_report(p, outcomes, &claimed))
        .collect();
    let succeeded_provisional_tests: BTreeSet<String> = outcomes
        .iter()
        .filter(|c| c.outcome == Outcome::Passed)
        .filter(|c| upstream_test(&c.upstream).is_some_and(|t| t.provisional && t.newer.is_none()))
        .map(|c| c.upstream.clone())
        .collect();
    ConformanceReport {
        api_version: "gateway.networking.k8s.io/v1".into(),
        date,
        gateway_api_channel: GATEWAY_API_CHANNEL.into(),
        gateway_api_version: GATEWAY_API_VERSION.into(),
        implementation: Implementation {
            contact: vec![CONTACT.into()],
            organization: ORGANIZATION.into(),
            project: PROJECT.into(),
            url: URL.into(),
            version: if version.starts_with('v') {
                version.to_string()
            } else {
                format!("v{version}")
            },
        },
        kind: "ConformanceReport".into(),
        mode: "default".into(),
        profiles,
        succeeded_provisional_tests: succeeded_provisional_tests.into_iter().collect(),
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the Unix epoch (UTC).
pub fn rfc3339_utc(unix_seconds: u64) -> String {
    let days = unix_seconds / 86_400;
    let rem = unix_seconds % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(name: &str, features: &[&str], outcome: Outcome) -> CaseOutcome {
        CaseOutcome {
            upstream: name.into(),
            features: features.iter().map(|f| f.to_string()).collect(),
            outcome,
        }
    }

    #[test]
    fn dates_are_rfc3339_utc() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_773_943_446), "2026-03-19T18:04:06Z");
    }

    #[test]
    fn tests_are_filed_per_profile_and_level() {
        let r = build(
            &[
                case("B", &["Gateway", "HTTPRoute"], Outcome::Skipped),
                case("A", &["Gateway"], Outcome::Passed),
                case("G", &["Gateway", "GRPCRoute"], Outcome::Passed),
                case(
                    "Ext",
                    &["Gateway", "HTTPRouteMethodMatching"],
                    Outcome::Passed,
                ),
                case(
                    "Ext2",
                    &["Gateway", "HTTPRoutePortRedirect"],
                    Outcome::Failed,
                ),
                case("Gx", &["Gateway", "GatewayPort8080"], Outcome::Passed),
            ],
            "0.1.0",
            "d".into(),
        );
        let http = &r.profiles[0];
        assert_eq!(http.name, "GATEWAY-HTTP");
        assert_eq!(http.core.result, "partial");
        assert_eq!(
            http.core.statistics,
            Statistics {
                failed: 0,
                passed: 1,
                skipped: 1
            }
        );
        assert_eq!(http.core.skipped_tests, vec!["B".to_string()]);
        assert_eq!(http.extended.result, "failure");
        assert_eq!(http.extended.failed_tests, vec!["Ext2".to_string()]);
        assert_eq!(http.extended.statistics.passed, 2);
        assert_eq!(
            http.extended.supported_features,
            vec![
                "GatewayPort8080".to_string(),
                "HTTPRouteMethodMatching".to_string()
            ]
        );
        assert_eq!(http.extended.unsupported_features.len(), 36);
        assert!(
            http.extended
                .unsupported_features
                .contains(&"HTTPRoutePortRedirect".to_string())
        );
        assert_eq!(
            http.summary,
            "Core tests partially succeeded with 1 test skips. Extended tests failed with 1 test failures."
        );

        let grpc = &r.profiles[1];
        assert_eq!(grpc.name, "GATEWAY-GRPC");
        assert_eq!(grpc.core.statistics.passed, 2, "A and G");
        assert_eq!(grpc.core.result, "success");
        assert_eq!(grpc.extended.statistics.passed, 1, "Gx");
        assert_eq!(
            grpc.extended.supported_features,
            vec!["GatewayPort8080".to_string()]
        );
        assert_eq!(grpc.extended.unsupported_features.len(), 9);
        assert_eq!(r.implementation.version, "v0.1.0");
    }

    #[test]
    fn provisional_and_newer_tests() {
        let r = build(
            &[
                case(
                    "GRPCRouteNamedRule",
                    &["Gateway", "GRPCRoute", "GRPCRouteNamedRouteRule"],
                    Outcome::Passed,
                ),
                case(
                    "HTTPRouteRetryConnectionError",
                    &[
                        "Gateway",
                        "HTTPRoute",
                        "HTTPRouteRetry",
                        "HTTPRouteRetryConnectionError",
                    ],
                    Outcome::Passed,
                ),
            ],
            "v1",
            "d".into(),
        );
        assert_eq!(
            r.succeeded_provisional_tests,
            vec!["GRPCRouteNamedRule".to_string()]
        );
        for p in &r.profiles {
            assert_eq!(p.core.statistics, Statistics::default(), "{}", p.name);
            assert_eq!(p.extended.statistics, Statistics::default(), "{}", p.name);
        }
        assert!(
            r.profiles[0]
                .extended
                .supported_features
                .contains(&"HTTPRouteRetryConnectionError".to_string())
        );
    }

    #[test]
    fn nothing_extended_claims_nothing() {
        let r = build(
            &[case("A", &["Gateway"], Outcome::Passed)],
            "v1",
            "d".into(),
        );
        let p = &r.profiles[0];
        assert_eq!(p.core.result, "success");
        assert!(p.extended.supported_features.is_empty());
        assert_eq!(p.extended.unsupported_features.len(), 38);
    }

    #[test]
    fn upstream_tests_are_unique_and_use_known_features() {
        let names: BTreeSet<&str> = UPSTREAM_TESTS.iter().map(|t| t.name).collect();
        assert_eq!(names.len(), UPSTREAM_TESTS.len());
        for t in UPSTREAM_TESTS {
            for f in t.features {
                assert!(is_known_feature(f), "{}: {f}", t.name);
            }
        }
    }

    #[test]
    fn upstream_counts_match_v1_6_1() {
        let current: Vec<&UpstreamTest> = UPSTREAM_TESTS
            .iter()
            .filter(|t| t.newer.is_none())
            .collect();
        let count = |p: &Profile, core: bool| {
            current
                .iter()
                .filter(|t| p.counts(t.features) && p.is_core(t.features) == core)
                .count()
        };
        assert_eq!(count(&PROFILES[0], true), 37);
        assert_eq!(count(&PROFILES[0], false), 57);
        assert_eq!(count(&PROFILES[1], true), 15);
        assert_eq!(count(&PROFILES[1], false), 10);
    }

    #[test]
    fn feature_lists_are_sorted_and_unique() {
        for list in [
            &GATEWAY_EXTENDED[..],
            &HTTPROUTE_EXTENDED[..],
            &BACKEND_TLS[..],
        ] {
            let mut sorted = list.to_vec();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted, list.to_vec());
        }
    }
}
