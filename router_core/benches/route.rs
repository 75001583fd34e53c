//! Criterion benches: one decision among 64 candidates with 1,000 warm task classes (every class
//! learned on all 64 models, or on 4 of them as most classes are), one outcome update, and a
//! snapshot of those 64,000 arms encoded and restored.

use _core::{Core, Report, Request, Role, Status};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

const MODELS: usize = 64;
const CLASSES: usize = 1_000;

fn catalog() -> String {
    let models: Vec<String> = (0..MODELS)
        .map(|i| {
            format!(
                r#"{{"id":"model-{i}","provider":"prov-{}","tier":{},"price_in":{},"price_cached_in":{},
                "price_out":{},"context_window":200000,"capabilities":["tools"],"provenance":["audited"],
                "prior_success":{},"prior_strength":4}}"#,
                i % 8,
                1 + i % 3,
                0.1 + i as f64 * 0.1,
                0.01 + i as f64 * 0.01,
                0.4 + i as f64 * 0.3,
                0.5 + (i % 40) as f64 / 100.0
            )
        })
        .collect();
    format!(r#"{{"models":[{}]}}"#, models.join(","))
}

fn report(i: usize, now: f64) -> Report {
    let status = if i % 3 == 0 {
        Status::Failure
    } else {
        Status::Success
    };
    Report {
        input_tokens: 10_000 + (i % 7) as u64 * 1_000,
        cached_input_tokens: 5_000,
        output_tokens: 800 + (i % 5) as u64 * 100,
        latency_ms: 3_000.0,
        est_input_tokens: 10_000,
        est_output_tokens: 800,
        est_cached_input_tokens: 5_000,
        cost_usd: Some(0.01 + (i % 11) as f64 * 0.001),
        ..Report::new(
            &format!("model-{}", i % MODELS),
            Role::from_number(2).unwrap_or_else(|_| unreachable!()),
            &format!("class-{}", (i / MODELS) % CLASSES),
            status,
            now,
        )
    }
}

fn warm() -> Core {
    let core = Core::new(&catalog()).unwrap_or_else(|e| panic!("{e}"));
    for i in 0..MODELS * CLASSES {
        core.report(&report(i, 1_000.0))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    core
}

/// Each class learned on 4 of the 64 models (a row short enough to find its arms by scanning).
fn warm_sparse() -> Core {
    let core = Core::new(&catalog()).unwrap_or_else(|e| panic!("{e}"));
    for class in 0..CLASSES {
        for k in 0..4 {
            let model = (class * 7 + k * 13) % MODELS;
            let mut r = report(model + k, 1_000.0);
            r.model = format!("model-{model}");
            r.task_class = format!("class-{class}");
            core.report(&r).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    core
}

fn benches(c: &mut Criterion) {
    let core = warm();
    let mut req = Request::new(
        Role::from_number(2).unwrap_or_else(|_| unreachable!()),
        "class-500",
        2_000.0,
    );
    req.capabilities = vec!["tools".into()];
    req.est_output_tokens = 800;
    req.est_cached_input_tokens = 5_000;
    req.time_value_usd_per_s = 0.01;
    req.explore = std::env::var("NOEXPLORE").is_err();
    let mut seed = 0u64;
    c.bench_function("route_64_models_1000_classes", |b| {
        b.iter(|| {
            seed += 1;
            req.seed = seed;
            black_box(core.route(black_box(&req)))
        });
    });
    let sparse = warm_sparse();
    c.bench_function("route_64_models_1000_sparse_classes", |b| {
        b.iter(|| {
            seed += 1;
            req.seed = seed;
            black_box(sparse.route(black_box(&req)))
        });
    });
    drop(sparse);
    // A replica saves every 30 s (SQLite); shared learning writes a base every 60 s and a new
    // replica restores one.
    let mut snap = c.benchmark_group("snapshot_64k_arms");
    snap.sample_size(20);
    snap.bench_function("encode", |b| {
        b.iter(|| black_box(core.snapshot().unwrap_or_else(|e| panic!("{e}"))));
    });
    let bytes = core.snapshot().unwrap_or_else(|e| panic!("{e}"));
    let other = Core::new(&catalog()).unwrap_or_else(|e| panic!("{e}"));
    snap.bench_function("restore", |b| {
        b.iter(|| {
            other
                .restore(black_box(&bytes))
                .unwrap_or_else(|e| panic!("{e}"));
        });
    });
    snap.finish();
    let mut i = 0usize;
    let reports: Vec<Report> = (0..4096).map(|k| report(k * 7, 2_000.0)).collect();
    c.bench_function("report_update", |b| {
        b.iter(|| {
            i = (i + 1) % reports.len();
            black_box(core.report(black_box(&reports[i])))
        });
    });
    // Shared learning (Redis): every change is also recorded for the next delta, taken (and
    // encoded) once per second; here once per 1,000 reports.
    core.track_changes();
    let mut n = 0usize;
    c.bench_function("report_update_tracked", |b| {
        b.iter(|| {
            i = (i + 1) % reports.len();
            n += 1;
            if n % 1_000 == 0 {
                black_box(core.take_delta().unwrap_or_else(|e| panic!("{e}")));
            }
            black_box(core.report(black_box(&reports[i])))
        });
    });
}

criterion_group!(route, benches);
criterion_main!(route);
