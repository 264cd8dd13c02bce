//! How outcomes roll up into the report, and what the upstream test list holds.

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
fn a_test_upstream_skips_for_supporters_does_not_hold_back_a_claim() {
    let t = |o| {
        claimed_features(
            &[
                case(
                    "TLSRouteTerminateSimpleSameNamespace",
                    &["Gateway", "TLSRoute", "TLSRouteModeTerminate"],
                    Outcome::Passed,
                ),
                case(
                    "TLSRouteListenerMixedTerminationNotSupported",
                    &["Gateway", "TLSRoute", "TLSRouteModeTerminate"],
                    o,
                ),
            ],
            &PROFILES[2],
        )
    };
    assert!(t(Outcome::Skipped).contains("TLSRouteModeTerminate"));
    assert!(!t(Outcome::Failed).contains("TLSRouteModeTerminate"));
}

#[test]
fn upstream_tests_are_unique_and_use_known_features() {
    let names: BTreeSet<&str> = upstream_tests().map(|t| t.name).collect();
    assert_eq!(names.len(), upstream_tests().count());
    for t in upstream_tests() {
        for f in t.features {
            assert!(is_known_feature(f), "{}: {f}", t.name);
        }
    }
}

#[test]
fn upstream_counts_match_v1_6_1() {
    let current: Vec<&UpstreamTest> = upstream_tests().filter(|t| t.newer.is_none()).collect();
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
    // GATEWAY-TLS: the Gateway-only core tests and 9 TLSRoute core tests; the Gateway
    // extended tests, 4 TLSRoute extended ones and ListenerSetAllowedRoutesSupportedKinds.
    let gateway_only_core = current
        .iter()
        .filter(|t| {
            t.features
                .iter()
                .all(|f| ["Gateway", "ReferenceGrant"].contains(f))
        })
        .count();
    assert_eq!(count(&PROFILES[2], true), gateway_only_core + 9);
    let gateway_only_ext = current
        .iter()
        .filter(|t| PROFILES[1].counts(t.features) && !t.features.contains(&"GRPCRoute"))
        .filter(|t| !PROFILES[1].is_core(t.features))
        .count();
    assert_eq!(count(&PROFILES[2], false), gateway_only_ext + 5);
    // MESH-HTTP: 7 core and 7 extended mesh tests; no Gateway test counts there.
    assert_eq!(count(&PROFILES[3], true), 7);
    assert_eq!(count(&PROFILES[3], false), 7);
    let mesh: Vec<&UpstreamTest> = upstream_tests()
        .filter(|t| t.features.contains(&MESH))
        .collect();
    assert_eq!(mesh.len(), 21, "every HTTP test of the mesh suite");
    for p in &PROFILES[..3] {
        assert!(mesh.iter().all(|t| !p.counts(t.features)), "{}", p.name);
    }
}

#[test]
fn a_failing_mesh_test_holds_back_only_mesh_claims() {
    let outcomes = [
        case(
            "HTTPRouteResponseHeaderModifier",
            &[
                "Gateway",
                "HTTPRoute",
                "HTTPRouteResponseHeaderModification",
            ],
            Outcome::Passed,
        ),
        case(
            "MeshConsumerRoute",
            &[
                "Mesh",
                "MeshConsumerRoute",
                "HTTPRoute",
                "HTTPRouteResponseHeaderModification",
            ],
            Outcome::Failed,
        ),
        case(
            "MeshFrontendHostname",
            &[
                "Mesh",
                "MeshClusterIPMatching",
                "HTTPRoute",
                "HTTPRouteResponseHeaderModification",
            ],
            Outcome::Passed,
        ),
    ];
    let r = build(&outcomes, "v1", "d".into());
    assert!(
        r.profiles[0]
            .extended
            .supported_features
            .contains(&"HTTPRouteResponseHeaderModification".to_string())
    );
    let mesh = &r.profiles[3];
    assert_eq!(mesh.name, "MESH-HTTP");
    assert_eq!(
        mesh.extended.supported_features,
        vec!["MeshClusterIPMatching".to_string()]
    );
    assert_eq!(mesh.extended.unsupported_features.len(), 8);
    // Neither mesh test counts in any profile; the Gateway test counts in GATEWAY-HTTP.
    assert_eq!(r.profiles[0].extended.statistics.passed, 1);
    for p in &r.profiles[1..] {
        assert_eq!(p.core.statistics, Statistics::default(), "{}", p.name);
        assert_eq!(p.extended.statistics, Statistics::default(), "{}", p.name);
    }
}

#[test]
fn feature_lists_are_sorted_and_unique() {
    for list in [
        &MESH_EXTENDED[..],
        &GATEWAY_EXTENDED[..],
        &HTTPROUTE_EXTENDED[..],
        &BACKEND_TLS[..],
        &TLSROUTE_EXTENDED[..],
    ] {
        let mut sorted = list.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, list.to_vec());
    }
}
