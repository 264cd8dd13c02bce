//! Compile cost: 10,000 HTTPRoute rules (1,000 routes) into an indexed Snapshot.

mod world;

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use waygate_config::{CompileOptions, compile};

fn compile_10k(c: &mut Criterion) {
    let resources = world::world(10_000);
    let mut group = c.benchmark_group("compile");
    group.sample_size(20);
    group.bench_function("rules/10000", |b| {
        b.iter(|| black_box(compile(black_box(&resources), &CompileOptions::default())))
    });
    group.finish();
}

criterion_group!(benches, compile_10k);
criterion_main!(benches);
