//! One test per routing rule, table-driven where the cases are data.

mod common;

use _core::{Core, Learn, Report, Request, Role, Status};
use common::{catalog_json, core, feed, report, req, EXECUTOR};

#[test]
#[allow(clippy::too_many_lines)]
fn constraints_exclude_and_name_themselves() {
    type Edit = fn(&mut Request);
    // (name, request edit, model expected to be excluded, constraint)
    let cases: &[(&str, Edit, &str, &str)] = &[
        (
            "capabilities",
            |r| r.capabilities = vec!["vision".into()],
            "mid",
            "capabilities",
        ),
        (
            "min_context",
            |r| r.min_context = 100_000,
            "cheap",
            "context_window",
        ),
        (
            "est tokens over window",
            |r| r.est_input_tokens = 31_500,
            "cheap",
            "context_window",
        ),
        (
            "allowed",
            |r| r.allowed = vec!["mid".into()],
            "strong",
            "allowed",
        ),
        (
            "denied",
            |r| r.denied = vec!["cheap".into()],
            "cheap",
            "denied",
        ),
        (
            "provenance",
            |r| r.provenance = vec!["audited".into()],
            "cheap",
            "provenance",
        ),
        (
            "max_cost",
            |r| r.max_cost_usd = Some(0.01),
            "strong",
            "max_cost",
        ),
        (
            "budget",
            |r| r.budget_cap_usd = Some(0.01),
            "strong",
            "budget",
        ),
        (
            "max_latency",
            |r| {
                r.est_output_tokens = 5_000;
                r.max_latency_ms = Some(50_000.0);
            },
            "strong",
            "max_latency",
        ),
        (
            "min_success",
            |r| r.min_success = Some(0.8),
            "mid",
            "min_success",
        ),
        (
            "failed_earlier",
            |r| {
                r.attempt = 2;
                r.failed_models = vec!["cheap".into()];
            },
            "cheap",
            "failed_earlier",
        ),
        (
            "failed_models ignored on attempt 1",
            |r| r.failed_models = vec!["cheap".into()],
            "",
            "",
        ),
        (
            "escalation min_tier",
            |r| r.job_failures = 1,
            "cheap",
            "min_tier",
        ),
    ];
    let c = core();
    for (name, edit, model, constraint) in cases {
        let mut r = req(0.0);
        r.explain = true;
        edit(&mut r);
        let d = c.route(&r).unwrap();
        for cand in &d.candidates {
            if cand.model == *model {
                assert!(cand.excluded, "{name}: {cand:?}");
                assert_eq!(cand.constraint, *constraint, "{name}");
                assert!(!cand.detail.is_empty());
            } else if model.is_empty() {
                assert!(!cand.excluded, "{name}: {cand:?}");
            }
        }
        if !model.is_empty() {
            assert_ne!(d.model(), Some(*model), "{name}");
            assert!(!d.fallbacks().iter().any(|f| f == model), "{name}");
        }
    }
}

#[test]
fn nothing_eligible_lists_every_model_and_the_reason() {
    let c = core();
    let mut r = req(0.0);
    r.provenance = vec!["audited".into()];
    r.max_cost_usd = Some(0.0001);
    let d = c.route(&r).unwrap();
    assert_eq!(d.model(), None);
    assert_eq!(d.candidates.len(), 3);
    assert_eq!(
        d.reason(),
        "no model satisfies the constraints: provenance excluded 1 (cheap), max_cost excluded 2 (mid, strong)"
    );
}

#[test]
fn greedy_pick_is_lowest_cost_per_success_and_fallbacks_follow_the_index() {
    let c = core();
    let mut r = req(0.0);
    r.explain = true;
    let d = c.route(&r).unwrap();
    assert_eq!(d.model(), Some("cheap"));
    assert_eq!(d.fallbacks(), vec!["mid", "strong"]);
    let scores: Vec<f64> = d.candidates.iter().map(|c| c.score).collect();
    assert!(scores.windows(2).all(|w| w[0] <= w[1]), "{scores:?}");
    assert!(!d.exploration);
    // With a high time value the fast, reliable model wins.
    r.time_value_usd_per_s = 1.0;
    r.est_output_tokens = 100;
    assert!((d.cost_per_success_usd - d.expected_cost_usd / d.success_probability).abs() < 1e-12);
}

#[test]
fn learning_moves_the_pick() {
    let c = core();
    feed(&c, "cheap", "edit", Status::Failure, 40, 10.0);
    feed(&c, "mid", "edit", Status::Success, 40, 10.0);
    let d = c.route(&req(10.0)).unwrap();
    assert_eq!(d.model(), Some("mid"));
    // Another class borrows the (model, role) evidence but less strongly.
    let mut other = req(10.0);
    other.task_class = "plan".into();
    other.explain = true;
    let cands = c.estimate(&other).unwrap();
    let cheap = cands.iter().find(|c| c.model == "cheap").unwrap();
    assert!(cheap.success_probability < 0.2, "{cheap:?}");
    assert_eq!(c.arm_count(), 2);
}

#[test]
fn evidence_decays_with_the_half_life() {
    let c = core();
    feed(&c, "cheap", "edit", Status::Success, 10, 0.0);
    let at = |now: f64| c.estimate(&req(now)).unwrap()[0].evidence;
    assert!((at(0.0) - 10.0).abs() < 1e-9);
    assert!((at(3600.0) - 5.0).abs() < 1e-9);
    feed(&c, "cheap", "edit", Status::Success, 1, 7300.0); // crosses two rebases
    assert!((at(7300.0) - (10.0 * 0.5f64.powf(7300.0 / 3600.0) + 1.0)).abs() < 1e-9);
}

#[test]
fn thompson_sampling_is_seeded_and_explores() {
    let c = core();
    let mut r = req(0.0);
    r.explore = true;
    let picks: Vec<_> = (0..200)
        .map(|seed| {
            r.seed = seed;
            let a = c.route(&r).unwrap();
            assert_eq!(a, c.route(&r).unwrap(), "same seed, same decision");
            a
        })
        .collect();
    assert!(picks.iter().any(|d| d.exploration));
    assert!(picks
        .iter()
        .all(|d| d.exploration == (d.model() != Some("cheap"))));
}

#[test]
fn stickiness_keeps_the_model_unless_the_saving_beats_the_cache_loss() {
    let c = core();
    // (context tokens, expected pick, sticky flag)
    let cases = [(0, "cheap", false), (5_000_000, "mid", true)];
    for (ctx, want, sticky) in cases {
        let mut r = req(0.0);
        r.sticky_model = Some("mid".into());
        r.context_tokens = ctx;
        let d = c.route(&r).unwrap();
        assert_eq!(
            (d.model(), d.sticky),
            (Some(want), sticky),
            "ctx {ctx}: {}",
            d.reason()
        );
    }
}

#[test]
fn breaker_opens_half_opens_and_closes() {
    let c = core();
    feed(&c, "cheap", "edit", Status::Error, 2, 0.0);
    let route = |now| c.route(&req(now)).unwrap().model().map(str::to_owned);
    assert_eq!(route(1.0).as_deref(), Some("mid"));
    assert_eq!(route(11.0).as_deref(), Some("cheap"), "half-open probe");
    assert_ne!(route(12.0).as_deref(), Some("cheap"), "only one probe");
    feed(&c, "cheap", "edit", Status::Success, 1, 12.0);
    assert_eq!(route(13.0).as_deref(), Some("cheap"));
    let events = c.drain_events();
    let kinds: Vec<_> = events
        .iter()
        .filter(|e| e.model == "cheap")
        .map(|e| e.kind)
        .collect();
    assert!(
        events.iter().any(|e| e.provider == "p1"),
        "cheap is p1's only model"
    );
    assert_eq!(
        kinds,
        vec!["breaker_open", "breaker_half_open", "breaker_closed"]
    );
    // Provider breaker: p2 errors across its two models.
    feed(&c, "mid", "edit", Status::Timeout, 1, 20.0);
    feed(&c, "strong", "edit", Status::Timeout, 1, 20.0);
    let mut r = req(21.0);
    r.denied = vec!["cheap".into()];
    let d = c.route(&r).unwrap();
    assert_eq!(d.model(), None, "{}", d.reason());
    assert!(
        d.reason().contains("circuit_open excluded 2"),
        "{}",
        d.reason()
    );
}

#[test]
fn job_credit_reaches_each_distinct_arm_once() {
    let c = core();
    let role = _core::Role::from_number(2).unwrap();
    let step = ("cheap".to_string(), role, "edit".to_string());
    c.complete_job(&[step.clone(), step.clone()], false, 0.0)
        .unwrap();
    let arms = c.arms();
    assert_eq!(arms.len(), 1);
    assert!((arms[0].failures - 0.5).abs() < 1e-12, "{arms:?}");
}

#[test]
fn drift_emits_one_event_and_adapts() {
    let c = core();
    feed(&c, "cheap", "edit", Status::Success, 200, 0.0);
    feed(&c, "cheap", "edit", Status::Failure, 30, 0.0);
    let drift: Vec<_> = c
        .drain_events()
        .into_iter()
        .filter(|e| e.kind == "drift")
        .collect();
    assert_eq!(drift.len(), 1, "{drift:?}");
    // Found at the (model, role) level, which sees every class: task_class "" (pooled).
    assert_eq!(
        (
            drift[0].model.as_str(),
            drift[0].role,
            drift[0].task_class.as_str()
        ),
        ("cheap", 2, "")
    );
    let p = c.estimate(&req(0.0)).unwrap()[0].success_probability;
    assert!(p < 0.5, "recent failures dominate after drift: {p}");
}

#[test]
fn catalog_errors_name_the_field() {
    let bad = |json: &str| Core::new(json).err().unwrap().to_string();
    let cases = [
        (
            r#"{"models":[{"id":"a","price_in":1,"price_out":-1}]}"#,
            "models[0].price_out: must be ≥ 0, got -1",
        ),
        (
            r#"{"models":[{"id":"a","price_in":1,"price_out":1,"x":1}]}"#,
            "models[0].x: unknown field",
        ),
        (
            r#"{"models":[{"id":"a","price_in":1,"price_out":1,"prior_success":1.5}]}"#,
            "models[0].prior_success",
        ),
        (
            r#"{"models":[],"routing":{"half_life_s":0}}"#,
            "routing.half_life_s",
        ),
        (
            r#"{"models":[],"routing":{"escalation":{"9":{"after_failures":1,"min_tier":2}}}}"#,
            "routing.escalation.9",
        ),
    ];
    for (json, want) in cases {
        let e = bad(json);
        assert!(e.starts_with(want), "{e}");
    }
    assert!(Core::new(&catalog_json(r#","drift":{"enabled":false}"#)).is_ok());
}

#[test]
fn set_catalog_keeps_learning() {
    let c = core();
    feed(&c, "mid", "edit", Status::Success, 5, 0.0);
    c.set_catalog(r#"{"models":[{"id":"mid","price_in":1,"price_out":1}]}"#)
        .unwrap();
    assert_eq!(c.arm_count(), 1);
    assert!((c.estimate(&req(0.0)).unwrap()[0].evidence - 5.0).abs() < 1e-9);
}

/// `model`'s candidate row for `r`.
fn candidate(c: &Core, r: &Request, model: &str) -> _core::Candidate {
    c.estimate(r)
        .unwrap()
        .into_iter()
        .find(|x| x.model == model)
        .unwrap()
}

fn p_of(c: &Core, class: &str, attempt: u32, model: &str) -> f64 {
    let mut r = req(0.0);
    r.task_class = class.into();
    r.attempt = attempt;
    candidate(c, &r, model).success_probability
}

#[test]
fn pooled_drift_forgets_old_evidence_at_every_level() {
    let c = core();
    // Evidence spread over many classes: no class arm alone sees enough to test.
    for i in 0..240 {
        let class = format!("c{}", i % 12);
        c.report(&report("cheap", &class, Status::Success, 0.0))
            .unwrap();
    }
    let before = p_of(&c, "c0", 1, "cheap");
    for i in 0..12 {
        let class = format!("c{}", i % 12);
        c.report(&report("cheap", &class, Status::Failure, 0.0))
            .unwrap();
    }
    let kinds: Vec<_> = c
        .drain_events()
        .into_iter()
        .filter(|e| e.kind == "drift")
        .collect();
    assert_eq!(kinds.len(), 1, "{kinds:?}");
    assert_eq!(kinds[0].task_class, "");
    // Every class arm, the (model, role) and the model level forgot: even a class that saw
    // one failure since the change and a class never seen fall well below the old rate.
    for class in ["c0", "c11", "never-seen"] {
        let p = p_of(&c, class, 1, "cheap");
        assert!(p < before - 0.3, "{class}: {p} vs {before}");
    }
}

#[test]
fn retry_arms_learn_apart_and_pool_into_first_tries() {
    let c = core();
    let fresh = p_of(&c, "edit", 2, "mid");
    assert!(
        (fresh - p_of(&c, "edit", 1, "mid")).abs() < 1e-12,
        "no hardness learned yet"
    );
    // First tries of cheap succeed; its retries fail.
    feed(&c, "cheap", "edit", Status::Success, 20, 0.0);
    for _ in 0..20 {
        let r = Report {
            attempt: 2,
            ..report("cheap", "edit", Status::Failure, 0.0)
        };
        c.report(&r).unwrap();
    }
    let (first, retry) = (p_of(&c, "edit", 1, "cheap"), p_of(&c, "edit", 2, "cheap"));
    assert!(first > 0.8, "retries do not teach first tries: {first}");
    assert!(retry < 0.3, "retry arm learned: {retry}");
    // A model never retried starts its retries from ρ × its first-try estimate.
    let mid_first = p_of(&c, "edit", 1, "mid");
    let mid_retry = p_of(&c, "edit", 2, "mid");
    assert!(mid_retry < 0.5 * mid_first, "{mid_retry} vs {mid_first}");
    // A class never retried borrows the (model, role) retry level.
    assert!(p_of(&c, "other", 2, "cheap") < 0.5);
    // Routing a retry is deterministic under a seed.
    let mut r = req(0.0);
    r.attempt = 2;
    r.explore = true;
    r.seed = 42;
    let (a, b) = (c.route(&r).unwrap(), c.route(&r).unwrap());
    assert_eq!(a.pick, b.pick);
    assert_eq!(a.score.to_bits(), b.score.to_bits());
}

#[test]
fn retries_exploit_and_first_tries_explore() {
    // Same state and seeds: the first try samples (some picks are explorations), a retry takes
    // the best mean score every time, whatever the seed.
    let c = core();
    let mut r = req(0.0);
    r.explore = true;
    let mut retry = r.clone();
    retry.attempt = 2;
    retry.failed_models = vec!["strong".to_owned()];
    let (mut explored, mut retry_picks) = (0, std::collections::BTreeSet::new());
    for seed in 0..200 {
        r.seed = seed;
        retry.seed = seed;
        explored += usize::from(c.route(&r).unwrap().exploration);
        let d = c.route(&retry).unwrap();
        assert!(!d.exploration, "seed {seed}: a retry explored");
        retry_picks.insert(d.model().map(str::to_owned));
    }
    assert!(explored > 0, "first tries never explored");
    assert_eq!(retry_picks.len(), 1, "{retry_picks:?}");
}

#[test]
fn a_succeeded_job_credits_only_its_last_attempt() {
    let c = core();
    let step = |m: &str, a| {
        (
            m.to_owned(),
            Role::from_number(EXECUTOR).unwrap(),
            "edit".to_owned(),
            a,
        )
    };
    let before = (p_of(&c, "edit", 1, "cheap"), p_of(&c, "edit", 2, "mid"));
    for _ in 0..10 {
        c.complete_job_attempts(&[step("cheap", 1), step("mid", 2)], true, 0.0)
            .unwrap();
    }
    assert!(
        (p_of(&c, "edit", 1, "cheap") - before.0).abs() < 1e-12,
        "cheap failed: no credit"
    );
    assert!(
        p_of(&c, "edit", 2, "mid") > before.1,
        "mid's retry arm credited"
    );
    for _ in 0..10 {
        c.complete_job_attempts(&[step("cheap", 1), step("mid", 2)], false, 0.0)
            .unwrap();
    }
    assert!(
        p_of(&c, "edit", 1, "cheap") < before.0,
        "a failed job debits every attempt"
    );
}

#[test]
fn last_attempt_is_per_role_so_other_roles_of_a_succeeded_job_are_credited() {
    const PLANNER: i64 = 1;
    let c = core();
    let step = |m: &str, role: i64, a| {
        (
            m.to_owned(),
            Role::from_number(role).unwrap(),
            "edit".to_owned(),
            a,
        )
    };
    let planner_before = p_of_role(&c, "edit", 1, "mid", PLANNER);
    for _ in 0..10 {
        // The executor needed a retry; the planner's only try was its first.
        c.complete_job_attempts(
            &[
                step("mid", PLANNER, 1),
                step("cheap", EXECUTOR, 1),
                step("mid", EXECUTOR, 2),
            ],
            true,
            0.0,
        )
        .unwrap();
    }
    assert!(
        p_of_role(&c, "edit", 1, "mid", PLANNER) > planner_before,
        "the planner's step finished its part of a succeeded job"
    );
}

fn p_of_role(c: &Core, class: &str, attempt: u32, model: &str, role: i64) -> f64 {
    let mut r = req(0.0);
    r.role = Role::from_number(role).unwrap();
    r.task_class = class.into();
    r.attempt = attempt;
    c.estimate(&r)
        .unwrap()
        .into_iter()
        .find(|x| x.model == model)
        .unwrap()
        .success_probability
}

/// A report of `model` in class "edit" whose billed cost is `times` its list price at the
/// estimates (estimates = reported tokens, so only the cost ratio moves).
fn billed(model: &str, status: Status, times: f64) -> Report {
    let r = report(model, "edit", status, 0.0);
    // list price of 10k input + 1k output tokens (common.rs prices per million)
    let list = match model {
        "cheap" => (10_000.0 * 0.1 + 1_000.0 * 0.4) / 1e6,
        "mid" => (10_000.0 * 1.0 + 1_000.0 * 4.0) / 1e6,
        _ => (10_000.0 * 3.0 + 1_000.0 * 15.0) / 1e6,
    };
    Report {
        est_input_tokens: 10_000,
        est_output_tokens: 1_000,
        cost_usd: Some(list * times),
        ..r
    }
}

#[test]
fn a_step_reports_its_effort_against_the_models_typical_cost() {
    let c = core();
    // Nothing learned yet: typical = list price at the estimates.
    let e = c
        .report(&billed("cheap", Status::Failure, 3.0))
        .unwrap()
        .unwrap();
    assert!((e - 3f64.ln()).abs() < 1e-9, "{e}");
    // The model usually bills twice its list price: twice is typical, six times is 3× typical.
    for _ in 0..40 {
        c.report(&billed("cheap", Status::Success, 2.0)).unwrap();
    }
    let typical = c
        .report(&billed("cheap", Status::Success, 2.0))
        .unwrap()
        .unwrap();
    let long = c
        .report(&billed("cheap", Status::Failure, 6.0))
        .unwrap()
        .unwrap();
    assert!(typical.abs() < 0.1, "{typical}");
    assert!((long - 3f64.ln()).abs() < 0.1, "{long}");
    let short = c
        .report(&billed("cheap", Status::Failure, 0.5))
        .unwrap()
        .unwrap();
    assert!((short - 0.25f64.ln()).abs() < 0.1, "{short}");
    // Errors and timeouts say nothing about the task; nothing measured, nothing to say.
    for status in [Status::Error, Status::Timeout, Status::Cancelled] {
        assert_eq!(c.report(&billed("cheap", status, 6.0)).unwrap(), None);
    }
    let bare = Report::new(
        "cheap",
        Role::from_number(EXECUTOR).unwrap(),
        "edit",
        Status::Failure,
        0.0,
    );
    assert_eq!(c.report(&bare).unwrap(), None);
    // Tokens without a billed cost: priced at list.
    let tokens_only = Report {
        est_input_tokens: 10_000,
        est_output_tokens: 1_000,
        ..report("mid", "edit", Status::Failure, 0.0)
    };
    let e = c.report(&tokens_only).unwrap().unwrap();
    assert!(e.abs() < 1e-9, "{e}");
}

#[test]
fn effort_reads_what_report_would_return_and_learns_nothing() {
    let c = core();
    for _ in 0..40 {
        c.report(&billed("cheap", Status::Success, 2.0)).unwrap();
    }
    let arms = c.arm_count();
    let snapshot = c.snapshot().unwrap();
    let long = billed("cheap", Status::Failure, 6.0);
    let read = c.effort(&long).unwrap();
    assert!((read - 3f64.ln()).abs() < 0.1, "{read}");
    // Read twice: nothing moved, the arms and their sums are as they were.
    assert_eq!(c.effort(&long), Some(read));
    assert_eq!(c.arm_count(), arms);
    assert_eq!(c.snapshot().unwrap(), snapshot);
    // The same report, learned, returns the same effort.
    assert_eq!(c.report(&long).unwrap(), Some(read));
    // A class never seen: the pooled levels speak for it; an unknown model has no typical cost.
    let unseen = Report {
        task_class: "never-routed".to_owned(),
        ..billed("cheap", Status::Failure, 6.0)
    };
    assert!((c.effort(&unseen).unwrap() - 3f64.ln()).abs() < 0.2);
    let unknown = Report {
        model: "no-such-model".to_owned(),
        ..billed("cheap", Status::Failure, 6.0)
    };
    assert_eq!(c.effort(&unknown), None);
    assert_eq!(c.effort(&billed("cheap", Status::Timeout, 6.0)), None);
}

fn retry_estimate(c: &Core, model: &str, effort: Option<f64>) -> _core::Candidate {
    let mut r = req(0.0);
    r.attempt = 2;
    r.failed_effort = effort;
    candidate(c, &r, model)
}

#[test]
fn retries_after_long_and_short_failures_learn_apart() {
    let c = core();
    // cheap's retries fail after long failures and succeed after short ones. 40 each: cheap costs
    // a tenth of mid, so a retry leaves it only once its P is well under a tenth of mid's.
    for (effort, status) in [(1.0, Status::Failure), (-1.0, Status::Success)] {
        for _ in 0..40 {
            let r = Report {
                attempt: 2,
                failed_effort: Some(effort),
                ..billed("cheap", status, 1.0)
            };
            c.report(&r).unwrap();
        }
    }
    let hard = retry_estimate(&c, "cheap", Some(0.7)).success_probability;
    let easy = retry_estimate(&c, "cheap", Some(-0.3)).success_probability;
    let unknown = retry_estimate(&c, "cheap", None).success_probability;
    assert!(hard < 0.25 && easy > 0.75, "hard {hard}, easy {easy}");
    assert!(hard < unknown && unknown < easy, "{unknown} pools both");
    // So a retry after a long failure goes elsewhere, after a short one stays cheap.
    let mut r = req(0.0);
    r.attempt = 2;
    r.failed_models = vec!["strong".to_owned()];
    for (effort, want) in [(0.7, "mid"), (-0.3, "cheap")] {
        r.failed_effort = Some(effort);
        assert_eq!(c.route(&r).unwrap().model(), Some(want), "effort {effort}");
    }
}

#[test]
fn retry_cost_follows_what_retries_billed() {
    let c = core();
    let first = |m| candidate(&c, &req(0.0), m).cost_usd;
    // cheap's first tries bill list price; its retries after long failures bill 4× that.
    for _ in 0..40 {
        c.report(&billed("cheap", Status::Success, 1.0)).unwrap();
    }
    let (cheap0, mid0) = (first("cheap"), first("mid"));
    for _ in 0..20 {
        let r = Report {
            attempt: 2,
            failed_effort: Some(1.0),
            ..billed("cheap", Status::Failure, 4.0)
        };
        c.report(&r).unwrap();
    }
    // The retries also teach cheap's first-try cost ratio (a model's billing multiple is learned
    // from every attempt), so its first try now looks dearer too; its retries more so.
    let cheap1 = first("cheap");
    let hard = retry_estimate(&c, "cheap", Some(1.0)).cost_usd;
    assert!(cheap1 > cheap0, "{cheap1} vs {cheap0}");
    assert!(
        hard > 1.5 * cheap1 && hard > 3.0 * cheap0,
        "{hard} vs first try {cheap1} (was {cheap0})"
    );
    // A model never retried there borrows what every model's retries billed.
    let mid_hard = retry_estimate(&c, "mid", Some(1.0)).cost_usd;
    assert!(mid_hard > 1.5 * mid0, "{mid_hard} vs {mid0}");
    // No retry evidence after short failures: the first-try estimate.
    let mid_easy = retry_estimate(&c, "mid", Some(-1.0)).cost_usd;
    assert!((mid_easy - first("mid")).abs() < 1e-12, "{mid_easy}");
}

#[test]
fn a_completed_call_teaches_measurements_and_its_verdict_the_outcome() {
    let c = core();
    let first = |c: &Core| {
        let x = candidate(c, &req(0.0), "cheap");
        (x.success_probability, x.cost_usd)
    };
    let (p0, cost0) = first(&c);
    // Dispatch: the call completed (status SUCCESS) but nobody knows yet whether the step did.
    for _ in 0..20 {
        let r = Report {
            learn: Learn::Measurements,
            ..billed("cheap", Status::Success, 2.0)
        };
        c.report(&r).unwrap();
    }
    let (p1, cost1) = first(&c);
    assert!((p1 - p0).abs() < 1e-12, "no outcome learned: {p0} -> {p1}");
    assert!(
        cost1 > 1.8 * cost0,
        "measurements learned: {cost0} -> {cost1}"
    );
    // The harness's verdicts: the steps failed. The outcome is learned, the cost is not again,
    // and the measurements passed along still give each step's effort.
    for _ in 0..20 {
        let r = Report {
            learn: Learn::Outcome,
            ..billed("cheap", Status::Failure, 2.0)
        };
        let effort = c.report(&r).unwrap().unwrap();
        assert!(effort.abs() < 0.2, "{effort}");
    }
    let (p2, cost2) = first(&c);
    assert!(p2 < 0.3 && p2 < p0, "{p0} -> {p2}");
    assert!((cost2 - cost1).abs() < 1e-12, "{cost1} -> {cost2}");
    // A verdict never moves a breaker: the call was counted when it was made.
    for _ in 0..3 {
        let r = Report {
            learn: Learn::Outcome,
            ..report("mid", "edit", Status::Error, 0.0)
        };
        c.report(&r).unwrap();
    }
    assert!(
        c.drain_events().iter().all(|e| e.kind != "breaker_open"),
        "a verdict opened a breaker"
    );
    let e = Learn::parse("verdict").unwrap_err().to_string();
    assert!(e.starts_with("learn") && e.contains("outcome"), "{e}");
}
