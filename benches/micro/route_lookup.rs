//! Route lookup cost with 10, 1,000 and 100,000 rules on one host: listener, virtual host, then
//! the path index (an exact hit, and a prefix hit that falls back past a failed header match).

mod world;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, Method};
use std::hint::black_box;
use waygate_config::{CompileOptions, NsName, RequestView, compile};

fn lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_lookup");
    for n in [10usize, 1_000, 100_000] {
        let (snapshot, _) = compile(&world::world(n), &CompileOptions::default());
        let port = snapshot
            .port(&NsName::new("infra", "gw"), 80)
            .expect("port 80");
        let headers = HeaderMap::new();
        let method = Method::GET;
        // Rule n/2 matched by prefix; rule 3k needs a header we do not send, so the walk falls back.
        let hit = format!("/p{}/api/items/42", n / 2 - (n / 2) % 3 + 1);
        let fallback = format!("/p{}/api/items/42", n / 2 - (n / 2) % 3);
        for (label, path) in [
            ("prefix_hit", hit.as_str()),
            ("header_miss_fallback", fallback.as_str()),
        ] {
            group.bench_function(format!("{label}/{n}"), |b| {
                b.iter(|| {
                    let req = RequestView {
                        method: &method,
                        host: "shop.example.com",
                        path: black_box(path),
                        query: None,
                        headers: &headers,
                        scheme: "http",
                        source_namespace: None,
                    };
                    black_box(port.route(&req).ok().map(|m| m.entry.id.rule))
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
