//! Shared fixtures for the integration tests.
#![allow(dead_code, clippy::missing_panics_doc)]

use _core::{Core, Report, Request, Role, Status};

pub const EXECUTOR: i64 = 2;

/// cheap (tier 1), mid (tier 2, "audited"), strong (tier 3, "audited", vision), two providers.
pub fn catalog_json(extra_routing: &str) -> String {
    format!(
        r#"{{"models":[
      {{"id":"cheap","provider":"p1","tier":1,"price_in":0.1,"price_cached_in":0.01,"price_out":0.4,
        "context_window":32000,"capabilities":["tools"],"prior_success":0.5,"prior_strength":4}},
      {{"id":"mid","provider":"p2","tier":2,"price_in":1.0,"price_cached_in":0.1,"price_out":4.0,
        "context_window":128000,"capabilities":["tools"],"provenance":["audited"],"prior_success":0.7,"prior_strength":4}},
      {{"id":"strong","provider":"p2","tier":3,"price_in":3.0,"price_cached_in":0.3,"price_out":15.0,
        "context_window":200000,"capabilities":["tools","vision"],"provenance":["audited"],"prior_success":0.9,"prior_strength":4}}
     ],
     "routing":{{"half_life_s":3600,"job_credit_weight":0.5,
        "escalation":{{"2":{{"after_failures":1,"min_tier":2}}}},
        "breaker":{{"failures_to_open":2,"open_s":10}}{extra_routing}}}}}"#
    )
}

pub fn core() -> Core {
    Core::new(&catalog_json("")).unwrap()
}

pub fn req(now: f64) -> Request {
    Request::new(Role::from_number(EXECUTOR).unwrap(), "edit", now)
}

pub fn report(model: &str, class: &str, status: Status, now: f64) -> Report {
    Report {
        input_tokens: 10_000,
        output_tokens: 1_000,
        latency_ms: 2_000.0,
        ..Report::new(
            model,
            Role::from_number(EXECUTOR).unwrap(),
            class,
            status,
            now,
        )
    }
}

pub fn feed(core: &Core, model: &str, class: &str, status: Status, n: usize, now: f64) {
    for _ in 0..n {
        core.report(&report(model, class, status, now)).unwrap();
    }
}
