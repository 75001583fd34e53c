//! Learning of tokens and cost: zero means "not reported", token ratios scale the request's own
//! estimate, billed cost is learned as a ratio to list price, ratios pool like success.

mod common;

use _core::{Core, Report, Request, Role, Status};
use common::{core, req, EXECUTOR};

fn role(n: i64) -> Role {
    Role::from_number(n).unwrap()
}

fn sized(now: f64, est_in: u64, est_out: u64) -> Request {
    let mut r = req(now);
    r.est_input_tokens = est_in;
    r.est_output_tokens = est_out;
    r
}

/// Expected cost of `model` for a request.
fn cost(c: &Core, r: &Request, model: &str) -> f64 {
    let cands = c.estimate(r).unwrap();
    cands.iter().find(|x| x.model == model).unwrap().cost_usd
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}

#[test]
fn zero_usage_reports_leave_cost_and_latency_unchanged() {
    let c = core();
    let r = sized(10.0, 100_000, 100_000);
    let before = c.estimate(&r).unwrap();
    for _ in 0..4 {
        let mut rep = Report::new("mid", role(EXECUTOR), "edit", Status::Success, 10.0);
        rep.est_input_tokens = 100_000;
        rep.est_output_tokens = 100_000;
        rep.cost_usd = Some(0.0);
        c.report(&rep).unwrap();
    }
    let after = c.estimate(&r).unwrap();
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b.cost_usd, a.cost_usd, "{}", a.model);
        assert_eq!(b.latency_ms, a.latency_ms, "{}", a.model);
    }
    assert!(after[1].success_probability > before[1].success_probability);
}

#[test]
fn reports_of_twice_the_estimate_double_the_cost_for_steps_of_any_size() {
    let c = core();
    let base: Vec<f64> = [(500, 50), (20_000, 2_000), (150_000, 20_000)]
        .iter()
        .map(|&(i, o)| cost(&c, &sized(10.0, i, o), "mid"))
        .collect();
    for k in 0..40u64 {
        // Steps of varied size, each using twice its estimate.
        let (ei, eo) = (1_000 + k * 997, 100 + k * 31);
        let mut rep = Report::new("mid", role(EXECUTOR), "edit", Status::Success, 10.0);
        rep.est_input_tokens = ei;
        rep.est_output_tokens = eo;
        rep.input_tokens = 2 * ei;
        rep.output_tokens = 2 * eo;
        c.report(&rep).unwrap();
    }
    for (&(i, o), b) in [(500, 50), (20_000, 2_000), (150_000, 20_000)]
        .iter()
        .zip(base)
    {
        let got = cost(&c, &sized(10.0, i, o), "mid");
        assert!(rel(got, 2.0 * b) < 0.05, "{i}/{o}: {got} vs 2×{b}");
    }
}

#[test]
fn cost_only_replay_converges_to_the_true_mean_cost_per_call() {
    let c = core();
    // Billed cost is 3× list price (say, hidden reasoning tokens), ±20%, no token counts.
    let list = |i: u64, o: u64| (i as f64 * 1.0 + o as f64 * 4.0) / 1e6; // "mid" prices
    let noise = [0.8, 1.2, 1.0, 0.9, 1.1];
    for (n, class) in ["a", "b", "c", "d"].iter().enumerate() {
        for (k, f) in noise.iter().enumerate() {
            let (ei, eo) = (5_000 + 3_000 * (k + n) as u64, 500 + 200 * k as u64);
            let mut rep = Report::new("mid", role(EXECUTOR), class, Status::Success, 10.0);
            rep.est_input_tokens = ei;
            rep.est_output_tokens = eo;
            rep.cost_usd = Some(3.0 * f * list(ei, eo));
            c.report(&rep).unwrap();
        }
    }
    for class in ["a", "d", "never-seen"] {
        let mut r = sized(10.0, 12_000, 900);
        r.task_class = class.into();
        let got = cost(&c, &r, "mid");
        let want = 3.0 * list(12_000, 900);
        assert!(rel(got, want) < 0.1, "{class}: {got} vs {want}");
    }
}

#[test]
fn a_new_task_class_and_role_borrow_the_model_level_cost_ratio() {
    let c = core();
    let planner = 1;
    let mut r = sized(10.0, 10_000, 1_000);
    r.role = role(planner);
    r.task_class = "new".into();
    let base = cost(&c, &r, "strong");
    for _ in 0..30 {
        let mut rep = Report::new("strong", role(EXECUTOR), "edit", Status::Success, 10.0);
        rep.est_input_tokens = 10_000;
        rep.est_output_tokens = 1_000;
        rep.cost_usd = Some(3.0 * (10_000.0 * 3.0 + 1_000.0 * 15.0) / 1e6);
        c.report(&rep).unwrap();
    }
    let got = cost(&c, &r, "strong");
    assert!(got > 2.5 * base && got < 3.0 * base, "{got} vs 3×{base}");
    // Other models learned nothing.
    assert_eq!(cost(&c, &r, "mid"), cost(&core(), &r, "mid"));
}

/// A step of `model` that used `share` of its estimate (100k input, 10k output tokens).
fn used(c: &Core, model: &str, share: f64) {
    let mut rep = Report::new(model, role(EXECUTOR), "edit", Status::Success, 10.0);
    rep.est_input_tokens = 100_000;
    rep.est_output_tokens = 10_000;
    rep.input_tokens = (100_000.0 * share) as u64;
    rep.output_tokens = (10_000.0 * share) as u64;
    c.report(&rep).unwrap();
}

#[test]
fn an_untried_model_follows_when_every_tried_model_runs_far_below_its_estimate() {
    // A harness whose estimates run 20x high: every tried model's steps use a twentieth of them.
    let c = core();
    let r = sized(10.0, 100_000, 10_000);
    let list = cost(&c, &r, "strong");
    for _ in 0..5 {
        used(&c, "cheap", 0.05);
        used(&c, "mid", 0.05);
    }
    let got = cost(&c, &r, "strong");
    // Before, "strong" stayed at its list price for the whole estimate: 20x what the tried
    // models showed a step of this size to be.
    assert!(rel(got, list / 20.0) < 0.1, "{got} vs {list}/20");
    assert!(rel(cost(&c, &r, "mid"), cost(&core(), &r, "mid") / 20.0) < 0.1);
}

#[test]
fn tried_models_running_above_their_estimates_leave_an_untried_model_at_list_price() {
    let c = core();
    let r = sized(10.0, 100_000, 10_000);
    for _ in 0..5 {
        used(&c, "cheap", 3.0);
        used(&c, "mid", 3.0);
    }
    assert_eq!(cost(&c, &r, "strong"), cost(&core(), &r, "strong"));
    // One far below, one above: the median of the two (below 0) moves it, each model once.
    let c = core();
    for _ in 0..5 {
        used(&c, "cheap", 0.05);
        used(&c, "mid", 3.0);
    }
    let median_of_two = (0.05f64.ln() + 3f64.ln()) / 2.0;
    let got = cost(&c, &r, "strong");
    assert!(
        rel(got, cost(&core(), &r, "strong") * median_of_two.exp()) < 0.05,
        "{got}"
    );
}

#[test]
fn a_model_that_now_and_then_runs_long_is_priced_at_what_it_bills_on_average() {
    // Nine steps at their estimate, one at 20x: on average 2.9x. A log-normal through the same
    // steps says exp(μ + σ²/2) ≈ 2.0x, which is what the core used to predict.
    let c = core();
    let r = sized(10.0, 100_000, 10_000);
    let list = cost(&c, &r, "mid");
    for i in 0..10 {
        used(&c, "mid", if i == 4 { 20.0 } else { 1.0 });
    }
    let got = cost(&c, &r, "mid") / list;
    assert!((got - 2.9).abs() < 0.05, "{got}x list");
    // The typical step a failure's effort is measured against stays the median-like exp(mean ln r):
    // a step at the estimate ran about as usual (effort near 0), not 2.9x short of it.
    let mut rep = Report::new("mid", role(EXECUTOR), "edit", Status::Failure, 10.0);
    rep.est_input_tokens = 100_000;
    rep.est_output_tokens = 10_000;
    rep.cost_usd = Some(list);
    let effort = c.report(&rep).unwrap().unwrap();
    assert!(effort.abs() < 0.35, "{effort}");
}
