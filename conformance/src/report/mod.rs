//! The Gateway API ConformanceReport (the upstream report shape) and how case outcomes roll up into
//! it: the v1.6.1 profiles GATEWAY-HTTP, GATEWAY-GRPC, GATEWAY-TLS and MESH-HTTP, the upstream
//! tests the cases render, and which extended features the results let us claim.
//!
//! Field order follows the upstream writer, which emits every mapping with its keys sorted
//! alphabetically; `Statistics` keeps its capitalised keys (`Failed`, `Passed`, `Skipped`).

use serde::Serialize;
use std::collections::BTreeSet;

mod mesh;
mod suite;

pub use mesh::{MESH, MESH_EXTENDED, MESH_TESTS};

pub use suite::*;

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

/// The extended features `profile` claims: among the tests of its data plane (those naming
/// `profile.dataplane`), named by at least one case, and every case naming them passed (a test
/// upstream skips for implementations that support what it is about does not count). So a mesh
/// test that fails holds back a mesh claim, never a Gateway one, and the other way round.
pub fn claimed_features(outcomes: &[CaseOutcome], profile: &Profile) -> BTreeSet<String> {
    let mut exercised: BTreeSet<&str> = BTreeSet::new();
    let mut not_passing: BTreeSet<&str> = BTreeSet::new();
    for c in outcomes
        .iter()
        .filter(|c| c.features.iter().any(|f| f == profile.dataplane))
    {
        let inapplicable = c.outcome == Outcome::Skipped
            && upstream_test(&c.upstream).is_some_and(|t| t.skipped_if_supported.is_some());
        for f in &c.features {
            if profile.is_extended(f) {
                exercised.insert(f);
                if c.outcome != Outcome::Passed && !inapplicable {
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

fn profile_report(profile: &Profile, outcomes: &[CaseOutcome]) -> ProfileReport {
    let claimed = claimed_features(outcomes, profile);
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
    let profiles = PROFILES
        .iter()
        .map(|p| profile_report(p, outcomes))
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
mod tests;
