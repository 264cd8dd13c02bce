//! The Gateway API conformance cases (`conformance/cases/*.yaml`), run against the real proxy with
//! echo backends on loopback; writes `conformance/report.yaml` in the upstream report shape.
//!
//! Each case gets its own gateway, echo pods and config file, and runs after the previous one ends
//! (sequential keeps it reliable on small machines). A case's steps rewrite the config file and
//! call `reload()`, so nothing depends on file watching or timing.

#[path = "conformance/case.rs"]
mod case;
#[path = "conformance/case_checks.rs"]
mod case_checks;
#[path = "conformance/checks.rs"]
mod checks;
#[path = "conformance/client.rs"]
mod client;
#[path = "conformance/fixtures.rs"]
mod fixtures;
#[path = "conformance/judge.rs"]
mod judge;
#[path = "conformance/listener_sets.rs"]
mod listener_sets;
#[path = "conformance/mesh.rs"]
mod mesh;
#[path = "conformance/pods.rs"]
mod pods;
#[path = "conformance/shares.rs"]
mod shares;
#[path = "conformance/streams.rs"]
mod streams;
#[path = "conformance/traffic.rs"]
mod traffic;
#[path = "conformance/world.rs"]
mod world;

use case::Case;
use serde_yaml_ng::Value;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use waygate::BindPlan;
use waygate::gateway::{ConfigSource, Gateway, GatewayOptions};
use waygate_conformance::report::{self, CaseOutcome, Outcome};
use world::World;

/// What happened in one case.
struct CaseRun {
    failures: Vec<String>,
    skipped: Vec<String>,
}

impl CaseRun {
    fn outcome(&self) -> Outcome {
        if !self.failures.is_empty() {
            Outcome::Failed
        } else if !self.skipped.is_empty() {
            Outcome::Skipped
        } else {
            Outcome::Passed
        }
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn case_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    Ok(files)
}

fn load_case(path: &Path) -> Result<Case, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let case: Case =
        serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    if case.name != stem {
        return Err(format!(
            "{}: name {:?} differs from the file name",
            path.display(),
            case.name
        ));
    }
    Ok(case)
}

/// The base and case manifests must load together even when the case is skipped, so a skipped
/// case stays ready to enable.
fn validate_manifests(base_text: &str, case: &Case) -> Vec<String> {
    let mut errs = Vec::new();
    for (i, step) in case.phases().iter().enumerate() {
        let Some(m) = &step.manifests else { continue };
        let text = format!("{base_text}\n---\n{m}");
        if let Err(e) = waygate_config::load_str(&format!("{} step {i}", case.name), &text) {
            errs.push(format!("manifests do not load: {e}"));
        }
    }
    errs
}

async fn run_case(base: &[Value], case: &Case) -> CaseRun {
    let mut run = CaseRun {
        failures: Vec::new(),
        skipped: Vec::new(),
    };
    let mut world = match World::new(&case.name, case.mesh) {
        Ok(w) => w,
        Err(e) => {
            run.failures.push(e);
            return run;
        }
    };
    let default_gw = case
        .gateway
        .clone()
        .unwrap_or_else(|| traffic::DEFAULT_GATEWAY.to_string());
    let mut gateway: Option<Arc<Gateway>> = None;
    for (i, step) in case.phases().iter().enumerate() {
        let label = match &step.description {
            Some(d) => format!("step {i} ({d})"),
            None => format!("step {i}"),
        };
        if let Some(m) = &step.manifests {
            let applied = async {
                let docs = world::parse_docs(&case.name, m)?;
                world.apply(base, &docs, &case.endpoints).await?;
                match &gateway {
                    None => {
                        // A mesh case's waypoint runs with an identity from the case's own CA.
                        if case.mesh {
                            world.mesh = Some(mesh::MeshEnv::new(world.dir(), &world)?);
                        }
                        let gw = Gateway::start(GatewayOptions {
                            source: ConfigSource::Path(world.file.clone()),
                            bind: BindPlan::Ephemeral(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                            admin: None,
                            gateways: vec![],
                            watch: false,
                            dns_server: None,
                            identity: world.mesh.as_ref().map(|m| m.identity.clone()),
                        })
                        .await
                        .map_err(|e| format!("gateway does not start: {e:#}"))?;
                        gateway = Some(gw);
                    }
                    Some(gw) => gw
                        .reload()
                        .await
                        .map_err(|e| format!("reload refused: {e}"))?,
                }
                Ok::<(), String>(())
            }
            .await;
            if let Err(e) = applied {
                run.failures.push(format!("{label}: {e}"));
                break;
            }
        }
        let Some(gw) = &gateway else {
            run.failures.push(format!("{label}: no manifests applied"));
            break;
        };
        if let Some(reason) = &step.skip {
            run.skipped.push(format!("{label}: {reason}"));
            continue;
        }
        let status = gw.state().status();
        let ctx = checks::Ctx {
            report: &status.report,
            world: &world,
            gateway: gw,
        };
        for check in &step.checks {
            let what = checks::describe(check);
            if let Some(reason) = &check.skip {
                run.skipped.push(format!("{label}: check {what}: {reason}"));
                continue;
            }
            if let Err(e) = checks::run(&ctx, check) {
                run.failures.push(format!("{label}: check {what}: {e}"));
            }
        }
        for r in &step.requests {
            let what = traffic::describe(r, &default_gw, case.mesh);
            if let Some(reason) = &r.skip {
                run.skipped
                    .push(format!("{label}: request {what}: {reason}"));
                continue;
            }
            if let Err(e) = traffic::request(gw, &world, &default_gw, r).await {
                run.failures.push(format!("{label}: request {what}: {e}"));
            }
        }
        for c in &step.grpc {
            let what = traffic::describe_grpc(c);
            if let Some(reason) = &c.skip {
                run.skipped.push(format!("{label}: {what}: {reason}"));
                continue;
            }
            if let Err(e) = traffic::grpc(gw, &world, &default_gw, c).await {
                run.failures.push(format!("{label}: {what}: {e}"));
            }
        }
        for c in &step.streams {
            let what = streams::describe(c, &default_gw);
            if let Some(reason) = &c.skip {
                run.skipped.push(format!("{label}: {what}: {reason}"));
                continue;
            }
            if let Err(e) = streams::stream(gw, &world, &default_gw, c).await {
                run.failures.push(format!("{label}: {what}: {e}"));
            }
        }
        for m in &step.mirror_shares {
            let what = format!("mirrored share of {} to {}", m.path, m.mirror);
            if let Some(reason) = &m.skip {
                run.skipped.push(format!("{label}: {what}: {reason}"));
                continue;
            }
            if let Err(e) = shares::mirror_share(gw, &world, &default_gw, m).await {
                run.failures.push(format!("{label}: {what}: {e}"));
            }
        }
        for d in &step.distributions {
            let what = format!("distribution of {} over {:?}", d.path, d.weights);
            if let Some(reason) = &d.skip {
                run.skipped.push(format!("{label}: {what}: {reason}"));
                continue;
            }
            if let Err(e) = shares::distribution(gw, &world, &default_gw, d).await {
                run.failures.push(format!("{label}: {what}: {e}"));
            }
        }
    }
    // Close the gateway before its pods and config folder go.
    drop(gateway);
    drop(world);
    run
}

/// Write the report, keeping the previous date when nothing else changed so the file only
/// changes when results do.
/// Write `report.yaml`; `skips` (upstream test, why) become comments at its top, so the report
/// itself says what did not run and why.
fn write_report(outcomes: &[CaseOutcome], skips: &[(String, String)]) -> Result<(), String> {
    let path = root().join("report.yaml");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut r = report::build(
        outcomes,
        env!("CARGO_PKG_VERSION"),
        report::rfc3339_utc(now),
    );
    if let Ok(old_text) = std::fs::read_to_string(&path)
        && let Ok(old) = serde_yaml_ng::from_str::<Value>(&old_text)
        && let Some(old_date) = old.get("date").and_then(Value::as_str)
    {
        let mut candidate = r.clone();
        candidate.date = old_date.to_string();
        let same = serde_yaml_ng::to_value(&candidate).is_ok_and(|v| v == old);
        if same {
            r = candidate;
        }
    }
    let text = serde_yaml_ng::to_string(&r).map_err(|e| e.to_string())?;
    let mut head = String::from(
        "# Generated by `cargo test -p waygate-conformance` (conformance/tests/conformance.rs); do not edit.\n",
    );
    if !skips.is_empty() {
        head.push_str("# Skipped tests and why:\n");
        for (test, why) in skips {
            let why = why.split_whitespace().collect::<Vec<_>>().join(" ");
            head.push_str(&format!("# - {test}: {why}\n"));
        }
    }
    let text = format!("{head}{text}");
    if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_api_conformance_cases() {
    let base_path = root().join("base.yaml");
    let base_text = std::fs::read_to_string(&base_path)
        .unwrap_or_else(|e| panic!("{}: {e}", base_path.display()));
    let mut base = world::parse_docs("base.yaml", &base_text).unwrap_or_else(|e| panic!("{e}"));
    base.extend(
        world::parse_docs("generated certificates", &fixtures::get().yaml)
            .unwrap_or_else(|e| panic!("{e}")),
    );
    // Mesh cases start from the mesh base alone, as upstream's mesh tests use their own objects.
    let mesh_base_path = root().join("base-mesh.yaml");
    let mesh_base_text = std::fs::read_to_string(&mesh_base_path)
        .unwrap_or_else(|e| panic!("{}: {e}", mesh_base_path.display()));
    let mesh_base =
        world::parse_docs("base-mesh.yaml", &mesh_base_text).unwrap_or_else(|e| panic!("{e}"));
    let files = case_files(&root().join("cases")).unwrap_or_else(|e| panic!("{e}"));
    assert!(!files.is_empty(), "no cases in conformance/cases");

    // WAYGATE_CASES=substring runs only the matching cases (and writes no report): for
    // working on a few cases without waiting for all of them.
    let only = std::env::var("WAYGATE_CASES")
        .ok()
        .filter(|s| !s.is_empty());
    let files: Vec<_> = files
        .into_iter()
        .filter(|f| {
            only.as_deref()
                .is_none_or(|o| f.to_string_lossy().contains(o))
        })
        .collect();
    let mut outcomes = Vec::new();
    let mut skips = Vec::new();
    let mut failures = Vec::new();
    let mut upstream_seen = BTreeSet::new();
    for file in &files {
        let case = match load_case(file) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("[{}] {e}", file.display()));
                continue;
            }
        };
        for f in &case.features {
            if !report::is_known_feature(f) {
                failures.push(format!("[{}] unknown feature {f}", case.name));
            }
        }
        match report::upstream_test(&case.upstream) {
            None => failures.push(format!(
                "[{}] {} is not an upstream test the report knows",
                case.name, case.upstream
            )),
            Some(t) => {
                let mut want: Vec<&str> = t.features.to_vec();
                let mut have: Vec<&str> = case.features.iter().map(String::as_str).collect();
                want.sort_unstable();
                have.sort_unstable();
                if want != have {
                    failures.push(format!(
                        "[{}] features {have:?} differ from upstream {}'s {want:?}",
                        case.name, case.upstream
                    ));
                }
            }
        }
        if !upstream_seen.insert(case.upstream.clone()) {
            failures.push(format!(
                "[{}] upstream test {} is covered twice",
                case.name, case.upstream
            ));
        }
        let (case_base, case_base_text) = if case.mesh {
            (&mesh_base, &mesh_base_text)
        } else {
            (&base, &base_text)
        };
        let mut run = CaseRun {
            failures: validate_manifests(case_base_text, &case),
            skipped: Vec::new(),
        };
        let checks_nothing = case.checks.is_empty()
            && case.requests.is_empty()
            && case.distributions.is_empty()
            && case.grpc.is_empty()
            && case.mirror_shares.is_empty()
            && case.streams.is_empty()
            && case.steps.is_empty();
        if case.skip.is_none() && checks_nothing {
            run.failures
                .push("the case checks nothing, so it could not fail".into());
        }
        match &case.skip {
            Some(reason) => run.skipped.push(reason.clone()),
            None if run.failures.is_empty() => run = run_case(case_base, &case).await,
            None => {}
        }
        let outcome = run.outcome();
        println!(
            "{:<7} {} ({}){}",
            match outcome {
                Outcome::Passed => "PASS",
                Outcome::Skipped => "SKIP",
                Outcome::Failed => "FAIL",
            },
            case.name,
            case.upstream,
            match outcome {
                Outcome::Skipped => format!(": {}", run.skipped.join("; ")),
                Outcome::Failed => format!(": {}", case.description.as_deref().unwrap_or("")),
                Outcome::Passed => String::new(),
            }
        );
        failures.extend(run.failures.iter().map(|f| format!("[{}] {f}", case.name)));
        if outcome == Outcome::Skipped {
            skips.push((case.upstream.clone(), run.skipped.join("; ")));
        }
        outcomes.push(CaseOutcome {
            upstream: case.upstream.clone(),
            features: case.features.clone(),
            outcome,
        });
    }
    if only.is_none() {
        for missing in report::upstream_tests().filter(|t| !upstream_seen.contains(t.name)) {
            failures.push(format!("upstream test {} has no case", missing.name));
        }
        if let Err(e) = write_report(&outcomes, &skips) {
            failures.push(format!("report: {e}"));
        }
    }
    let count = |o: Outcome| outcomes.iter().filter(|c| c.outcome == o).count();
    println!(
        "conformance: {} passed, {} skipped, {} failed",
        count(Outcome::Passed),
        count(Outcome::Skipped),
        count(Outcome::Failed)
    );
    assert!(
        failures.is_empty(),
        "{} conformance failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
