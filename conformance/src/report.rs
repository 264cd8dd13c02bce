//! The Gateway API ConformanceReport (the upstream report shape) and how case outcomes roll up into it.
//!
//! Field order follows the upstream writer, which emits every mapping with its keys sorted
//! alphabetically; `Statistics` keeps its capitalised keys (`Failed`, `Passed`, `Skipped`).

use serde::Serialize;
use std::collections::BTreeSet;

/// The Gateway API release the cases are written against.
pub const GATEWAY_API_VERSION: &str = "v1.4.1";
/// The release channel of the CRDs the cases use.
pub const GATEWAY_API_CHANNEL: &str = "standard";
/// The one profile the cases cover.
pub const PROFILE: &str = "GATEWAY-HTTP";
/// The profile's core features: a case whose features are all in here counts as core.
pub const CORE_FEATURES: [&str; 3] = ["Gateway", "HTTPRoute", "ReferenceGrant"];
/// The profile's extended features in v1.4.1 (Gateway, HTTPRoute and BackendTLSPolicy sets), sorted.
pub const EXTENDED_FEATURES: [&str; 27] = [
    "BackendTLSPolicy",
    "BackendTLSPolicySANValidation",
    "GatewayAddressEmpty",
    "GatewayHTTPListenerIsolation",
    "GatewayInfrastructurePropagation",
    "GatewayPort8080",
    "GatewayStaticAddresses",
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
    "HTTPRouteSchemeRedirect",
];

/// The ShortNames of the GATEWAY-HTTP core tests of v1.4.1: one case each.
pub const CORE_TESTS: [&str; 33] = [
    "GatewayClassObservedGenerationBump",
    "GatewayInvalidRouteKind",
    "GatewayInvalidTLSConfiguration",
    "GatewayModifyListeners",
    "GatewayObservedGenerationBump",
    "GatewaySecretInvalidReferenceGrant",
    "GatewaySecretMissingReferenceGrant",
    "GatewaySecretReferenceGrantAllInNamespace",
    "GatewaySecretReferenceGrantSpecific",
    "GatewayWithAttachedRoutes",
    "HTTPRouteCrossNamespace",
    "HTTPRouteExactPathMatching",
    "HTTPRouteHTTPSListener",
    "HTTPRouteHeaderMatching",
    "HTTPRouteHostnameIntersection",
    "HTTPRouteInvalidBackendRefUnknownKind",
    "HTTPRouteInvalidCrossNamespaceBackendRef",
    "HTTPRouteInvalidCrossNamespaceParentRef",
    "HTTPRouteInvalidNonExistentBackendRef",
    "HTTPRouteInvalidParentRefNotMatchingSectionName",
    "HTTPRouteInvalidReferenceGrant",
    "HTTPRouteListenerHostnameMatching",
    "HTTPRouteMatching",
    "HTTPRouteMatchingAcrossRoutes",
    "HTTPRouteObservedGenerationBump",
    "HTTPRoutePartiallyInvalidViaInvalidReferenceGrant",
    "HTTPRoutePathMatchOrder",
    "HTTPRouteRedirectHostAndStatus",
    "HTTPRouteReferenceGrant",
    "HTTPRouteRequestHeaderModifier",
    "HTTPRouteServiceTypes",
    "HTTPRouteSimpleSameNamespace",
    "HTTPRouteWeight",
];

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

/// Whether a test belongs to the core level: all its features are core features.
pub fn is_core(features: &[String]) -> bool {
    features.iter().all(|f| CORE_FEATURES.contains(&f.as_str()))
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

/// Roll case outcomes up into the report. Deterministic apart from `date`.
pub fn build(outcomes: &[CaseOutcome], version: &str, date: String) -> ConformanceReport {
    let mut core = Level::default();
    let mut extended = Level::default();
    // An extended feature is claimed only if at least one test exercises it and all of them pass.
    let mut exercised: BTreeSet<&str> = BTreeSet::new();
    let mut not_passing: BTreeSet<&str> = BTreeSet::new();
    for c in outcomes {
        if is_core(&c.features) {
            core.add(c);
            continue;
        }
        extended.add(c);
        for f in &c.features {
            if let Some(known) = EXTENDED_FEATURES.iter().find(|k| **k == f.as_str()) {
                exercised.insert(known);
                if c.outcome != Outcome::Passed {
                    not_passing.insert(known);
                }
            }
        }
    }
    let supported: Vec<String> = exercised
        .difference(&not_passing)
        .map(|f| f.to_string())
        .collect();
    let unsupported: Vec<String> = EXTENDED_FEATURES
        .iter()
        .filter(|f| !supported.iter().any(|s| s == *f))
        .map(|f| f.to_string())
        .collect();
    let summary = format!(
        "{} {}",
        core.sentence("Core"),
        extended.sentence("Extended")
    );
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
        profiles: vec![ProfileReport {
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
            name: PROFILE.into(),
            summary,
        }],
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
    fn core_and_extended_are_split_by_features_and_sorted() {
        let r = build(
            &[
                case("B", &["Gateway", "HTTPRoute"], Outcome::Skipped),
                case("A", &["Gateway"], Outcome::Passed),
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
            ],
            "0.1.0",
            "d".into(),
        );
        let p = &r.profiles[0];
        assert_eq!(p.core.result, "partial");
        assert_eq!(
            p.core.statistics,
            Statistics {
                failed: 0,
                passed: 1,
                skipped: 1
            }
        );
        assert_eq!(p.core.skipped_tests, vec!["B".to_string()]);
        assert_eq!(p.extended.result, "failure");
        assert_eq!(p.extended.failed_tests, vec!["Ext2".to_string()]);
        assert_eq!(
            p.extended.supported_features,
            vec!["HTTPRouteMethodMatching".to_string()]
        );
        assert_eq!(p.extended.unsupported_features.len(), 26);
        assert!(
            p.extended
                .unsupported_features
                .contains(&"HTTPRoutePortRedirect".to_string())
        );
        assert_eq!(r.implementation.version, "v0.1.0");
        assert_eq!(
            p.summary,
            "Core tests partially succeeded with 1 test skips. Extended tests failed with 1 test failures."
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
        assert_eq!(p.extended.unsupported_features, EXTENDED_FEATURES.to_vec());
    }

    #[test]
    fn core_test_list_is_unique() {
        let set: BTreeSet<&str> = CORE_TESTS.iter().copied().collect();
        assert_eq!(set.len(), CORE_TESTS.len());
    }

    #[test]
    fn extended_feature_list_is_sorted_and_unique() {
        let mut sorted = EXTENDED_FEATURES.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, EXTENDED_FEATURES.to_vec());
    }
}
