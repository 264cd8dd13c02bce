//! Issue 7, scenario 4: a 90/10 split of reviews between v1 and v2 at a waypoint, end to end
//! over loopback from the files in `examples/traffic-split/httproute/` (an HTTPRoute, [HB-1]
//! weights) and `examples/traffic-split/virtual-service/` (a VirtualService, [VS-4]) — read
//! here, not copied: only the echo servers' ports are put in place of the example's.
//!
//! v1 and v2 are their own Services (reviews-v1, reviews-v2), as Gateway API users write them.
//! The reviews Service itself has the pods of both versions, so without the route the calls
//! would be spread about evenly: a 90/10 measurement shows the route was applied.

mod common;

use common::*;
use std::sync::Arc;
use waygate::gateway::Gateway;
use waygate_config::NsName;
use waygate_conformance::echo::EchoServer;

const WAYPOINT_ID: &str = "spiffe://cluster.local/ns/apps/sa/waypoint";
/// reviews' clusterIP and port in `services.yaml`.
const REVIEWS_VIP: &str = "10.96.40.10:9080";
const HOST: &str = "reviews.apps.svc.cluster.local:9080";
const N: usize = 1000;
const WORKERS: usize = 10;

/// The waypoint serving `examples/traffic-split/<variant>`, and the two versions' pods.
struct Split {
    waypoint: Arc<Gateway>,
    v1: EchoServer,
    v2: EchoServer,
    _ca: MeshCa,
}

impl Split {
    async fn start(variant: &str) -> Split {
        let v1 = echo("apps", "reviews-v1", "reviews-v1").await;
        let v2 = echo("apps", "reviews-v2", "reviews-v2").await;
        let name = format!("traffic-split/{variant}");
        // Each version's pod is an endpoint of reviews and of its own Service.
        let yaml = replace_n(
            &example_yaml(&name),
            "  port: 19091\n",
            &format!("  port: {}\n", v1.addr.port()),
            2,
        );
        let yaml = replace_n(
            &yaml,
            "  port: 19092\n",
            &format!("  port: {}\n", v2.addr.port()),
            2,
        );
        let ca = MeshCa::new();
        let waypoint = run_example(
            &name,
            yaml,
            &NsName::new("apps", "waypoint"),
            Some(ca.identity("apps", "waypoint")),
        )
        .await;
        Split {
            waypoint,
            v1,
            v2,
            _ca: ca,
        }
    }

    /// N calls to reviews from `apps/sa/productpage` over WORKERS keep-alive tunnels; how many
    /// each version answered.
    async fn measure(&self) -> (usize, usize) {
        let addr = self
            .waypoint
            .bound_addr(&NsName::new("apps", "waypoint"), 15008)
            .unwrap();
        let client = self
            ._ca
            .client(addr, "apps", "productpage", WAYPOINT_ID)
            .await;
        let mut tasks = Vec::new();
        for w in 0..WORKERS {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                let mut conn = TunnelHttp::open(&client, REVIEWS_VIP).await;
                let (mut v1, mut v2) = (0, 0);
                for i in (w..N).step_by(WORKERS) {
                    let r = conn.request("GET", HOST, &format!("/reviews/{i}")).await;
                    assert_eq!(r.status, 200, "{}", r.body);
                    match r.pod().as_str() {
                        "reviews-v1" => v1 += 1,
                        "reviews-v2" => v2 += 1,
                        other => panic!("answered by {other:?}: {}", r.body),
                    }
                }
                (v1, v2)
            }));
        }
        let (mut v1, mut v2) = (0, 0);
        for t in tasks {
            let (a, b) = t.await.unwrap();
            v1 += a;
            v2 += b;
        }
        assert_eq!(v1 + v2, N);
        assert_eq!(
            (self.v1.request_count(), self.v2.request_count()),
            (v1 as u64, v2 as u64),
            "each pod counted what it answered"
        );
        (v1, v2)
    }

    /// The condition `cond` of `kind` apps/reviews: (status, reason), object-level or, for a
    /// route, its first parent's.
    fn condition(&self, kind: &str, cond: &str) -> (String, String) {
        let report = self.waypoint.state().status().report.clone();
        let o = report
            .objects
            .iter()
            .find(|o| o.kind == kind && o.namespace == "apps" && o.name == "reviews")
            .unwrap_or_else(|| panic!("no status for {kind} apps/reviews"));
        let conditions = o.parents.first().map_or(&o.conditions, |p| &p.conditions);
        let c = conditions
            .get(cond)
            .unwrap_or_else(|| panic!("{kind}: no {cond}: {o:?}"));
        (c.status.clone(), c.reason.clone())
    }
}

/// 10% of 1,000: σ ≈ 9.5; ±60 is over 6σ, and an even spread (≈500) is far outside.
fn assert_90_10(v1: usize, v2: usize) {
    assert!((40..=160).contains(&v2), "v2 took {v2} of {N} (v1 {v1})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_httproute_on_the_reviews_service_splits_90_10_between_v1_and_v2() {
    let s = Split::start("httproute").await;
    assert_eq!(
        s.condition("HTTPRoute", "Accepted"),
        ("True".into(), "Accepted".into())
    );
    assert_eq!(
        s.condition("HTTPRoute", "ResolvedRefs"),
        ("True".into(), "ResolvedRefs".into())
    );
    let (v1, v2) = s.measure().await;
    assert_90_10(v1, v2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_virtual_service_for_reviews_splits_90_10_between_v1_and_v2() {
    let s = Split::start("virtual-service").await;
    assert_eq!(
        s.condition("VirtualService", "Accepted"),
        ("True".into(), "Accepted".into())
    );
    let (v1, v2) = s.measure().await;
    assert_90_10(v1, v2);
}
