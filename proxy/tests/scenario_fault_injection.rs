//! Issue 7, scenario 3: fault injection at a waypoint ([VS-7]), end to end over loopback from
//! the files in `examples/fault-injection/` (read here, not copied: only httpbin's endpoint
//! port, and the 2s delay, which becomes 50ms so that a thousand requests finish quickly, are
//! put in place of the example's).
//!
//! A mesh client `apps/sa/sleep` calls httpbin's VIP through the waypoint `apps/waypoint`. Half
//! of the requests under `/headers` are delayed and a fifth of those under `/status` are
//! aborted with 503. Delays are counted by the access log's `DI` flag, never by the clock;
//! aborts by their answers and the `FI` flag.

mod common;

use common::*;
use std::sync::Arc;
use waygate::gateway::Gateway;
use waygate_config::NsName;
use waygate_conformance::echo::EchoServer;
use waygate_conformance::hbone::HboneClient;

const WAYPOINT_ID: &str = "spiffe://cluster.local/ns/apps/sa/waypoint";
/// httpbin's clusterIP and port in `examples/fault-injection/services.yaml`.
const HTTPBIN_VIP: &str = "10.96.30.10:8000";
const HOST: &str = "httpbin.apps.svc.cluster.local:8000";
/// Requests per path, and how many tunnels send them at once.
const N: usize = 1000;
const WORKERS: usize = 20;

struct Faults {
    _waypoint: Arc<Gateway>,
    httpbin: EchoServer,
    sleep: HboneClient,
    _ca: MeshCa,
}

impl Faults {
    async fn start() -> Faults {
        let httpbin = echo("apps", "httpbin", "httpbin-1").await;
        let yaml = replace_once(
            &example_yaml("fault-injection"),
            "  port: 18000\n",
            &format!("  port: {}\n", httpbin.addr.port()),
        );
        let yaml = replace_once(&yaml, "fixedDelay: 2s\n", "fixedDelay: 50ms\n");
        let ca = MeshCa::new();
        let gw = NsName::new("apps", "waypoint");
        let waypoint = run_example(
            "fault-injection",
            yaml,
            &gw,
            Some(ca.identity("apps", "waypoint")),
        )
        .await;
        let addr = waypoint.bound_addr(&gw, 15008).unwrap();
        let sleep = ca.client(addr, "apps", "sleep", WAYPOINT_ID).await;
        Faults {
            _waypoint: waypoint,
            httpbin,
            sleep,
            _ca: ca,
        }
    }

    /// GET `{prefix}/{i}` for i in 0..n, over WORKERS keep-alive tunnels; the replies.
    async fn get_many(&self, prefix: &str, n: usize) -> Vec<Reply> {
        let mut tasks = Vec::new();
        for w in 0..WORKERS {
            let client = self.sleep.clone();
            let prefix = prefix.to_string();
            tasks.push(tokio::spawn(async move {
                let mut conn = TunnelHttp::open(&client, HTTPBIN_VIP).await;
                let mut out = Vec::new();
                for i in (w..n).step_by(WORKERS) {
                    out.push(conn.request("GET", HOST, &format!("{prefix}/{i}")).await);
                }
                out
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        assert_eq!(all.len(), n);
        all
    }
}

/// Wait (bounded; a line is written just after its response) until `n` access-log lines for
/// paths under `prefix` are there; how many there are.
async fn logged(prefix: &str, n: usize) -> usize {
    let path = format!("path={prefix}/");
    for _ in 0..500 {
        if access_lines_with(&[&path]) >= n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    access_lines_with(&[&path])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_of_the_headers_requests_are_delayed_and_a_fifth_of_the_status_requests_aborted() {
    captured_logs();
    let f = Faults::start().await;

    // [VS-7] Delay: every request still reaches httpbin; about half carry the DI flag.
    for r in f.get_many("/headers", N).await {
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.pod(), "httpbin-1", "{}", r.body);
    }
    assert_eq!(f.httpbin.request_count(), N as u64);
    assert_eq!(logged("/headers", N).await, N, "one access-log line each");
    let delayed = access_lines_with(&["path=/headers/", "flag=\"DI\""]);
    // 50% of 1,000: σ ≈ 15.8; ±100 is over 6σ.
    assert!((400..=600).contains(&delayed), "delayed {delayed} of {N}");
    assert_eq!(access_lines_with(&["path=/headers/", "FI"]), 0);

    // [VS-7] Abort: about a fifth are answered 503 "fault filter abort" by the waypoint and
    // never reach httpbin; the rest are httpbin's.
    let replies = f.get_many("/status", N).await;
    let mut aborted = 0;
    for r in &replies {
        match r.status {
            503 => {
                assert_eq!(r.body, "fault filter abort");
                aborted += 1;
            }
            200 => assert_eq!(r.pod(), "httpbin-1", "{}", r.body),
            s => panic!("status {s}: {}", r.body),
        }
    }
    // 20% of 1,000: σ ≈ 12.6; ±80 is over 6σ.
    assert!((120..=280).contains(&aborted), "aborted {aborted} of {N}");
    assert_eq!(f.httpbin.request_count(), (2 * N - aborted) as u64);
    assert_eq!(logged("/status", N).await, N);
    assert_eq!(
        access_lines_with(&["path=/status/", "status=503", "flag=\"FI\""]),
        aborted,
        "each abort is logged with FI"
    );
    assert_eq!(access_lines_with(&["path=/status/", "DI"]), 0);

    // Other paths are not faulted.
    for r in f.get_many("/get", 100).await {
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(logged("/get", 100).await, 100);
    assert_eq!(access_lines_with(&["path=/get/", "flag=\"\""]), 100);
}
