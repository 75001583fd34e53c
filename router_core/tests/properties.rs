//! Property tests: finite positive scores, exclusions hold, snapshots round-trip, merge algebra,
//! determinism under a seed.

mod common;

use _core::{Core, Report, Role, Status};
use proptest::prelude::*;

fn outcome() -> impl Strategy<Value = (usize, u8, usize, f64, u64, f64)> {
    // (model, status, class, time, output tokens, latency)
    (
        0usize..3,
        1u8..=5,
        0usize..3,
        0.0f64..20_000.0,
        0u64..50_000,
        0.0f64..100_000.0,
    )
}

fn apply(core: &Core, events: &[(usize, u8, usize, f64, u64, f64)]) {
    let models = ["cheap", "mid", "strong"];
    for &(m, s, c, t, out, lat) in events {
        let status = Status::from_number(i64::from(s)).unwrap();
        let role = Role::from_number(2).unwrap();
        core.report(&Report {
            input_tokens: 1_000,
            cached_input_tokens: 100,
            output_tokens: out,
            latency_ms: lat,
            est_input_tokens: 800,
            est_output_tokens: 500,
            cost_usd: (out % 3 == 0).then_some(out as f64 * 1e-6),
            attempt: 1 + (out % 2) as u32,
            // some retries with a known effort, one bucket or the other
            failed_effort: (out % 4 == 1).then_some(if lat > 50_000.0 { 0.5 } else { -0.5 }),
            ..Report::new(models[m], role, &format!("class{c}"), status, t)
        })
        .unwrap();
    }
}

fn core_with(events: &[(usize, u8, usize, f64, u64, f64)]) -> Core {
    let c = Core::new(&common::catalog_json(r#","drift":{"enabled":false}"#)).unwrap();
    apply(&c, events);
    c
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
}

fn same_estimates(a: &Core, b: &Core, now: f64) -> bool {
    let cases = ["class0", "class1", "class2"].into_iter().flat_map(|c| {
        [
            (c, 1, None),
            (c, 2, None),
            (c, 2, Some(0.5)),
            (c, 2, Some(-0.5)),
        ]
    });
    cases.into_iter().all(|(cls, attempt, effort)| {
        let mut r = common::req(now);
        r.task_class = cls.into();
        r.attempt = attempt;
        r.failed_effort = effort;
        let (ea, eb) = (a.estimate(&r).unwrap(), b.estimate(&r).unwrap());
        ea.iter().zip(&eb).all(|(x, y)| {
            close(x.score, y.score)
                && close(x.evidence, y.evidence)
                && close(x.success_probability, y.success_probability)
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn scores_are_finite_positive_and_exclusions_hold(
        events in prop::collection::vec(outcome(), 0..40),
        seed in any::<u64>(), tv in 0.0f64..10.0, max_cost in prop::option::of(0.0f64..0.5),
        deny in 0usize..4, attempt in 1u32..3, explore in any::<bool>(),
    ) {
        let c = core_with(&events);
        let mut r = common::req(20_000.0);
        r.seed = seed;
        r.time_value_usd_per_s = tv;
        r.max_cost_usd = max_cost;
        r.explore = explore;
        r.explain = true;
        r.attempt = attempt;
        r.failed_models = vec!["mid".into()];
        if deny < 3 { r.denied = vec![["cheap", "mid", "strong"][deny].into()]; }
        let d = c.route(&r).unwrap();
        for cand in &d.candidates {
            prop_assert!(cand.score.is_finite() && cand.score > 0.0, "{:?}", cand);
            let chosen = d.model() == Some(cand.model.as_str()) || d.fallbacks().contains(&cand.model.as_str());
            prop_assert_eq!(chosen, !cand.excluded);
            if max_cost.is_some_and(|m| cand.cost_usd > m) { prop_assert!(cand.excluded); }
        }
        if let Some(m) = d.model().map(str::to_owned) {
            prop_assert!(!r.denied.contains(&m));
            prop_assert!(attempt == 1 || m != "mid");
        }
        // A twin with the same history (breakers included) decides the same.
        prop_assert_eq!(&d, &core_with(&events).route(&r).unwrap(), "deterministic under a seed");
    }

    #[test]
    fn snapshot_round_trips(events in prop::collection::vec(outcome(), 0..40)) {
        let a = core_with(&events);
        let bytes = a.snapshot().unwrap();
        // What the Python binding encodes into: a buffer of the computed length.
        let mut into = vec![0; a.snapshot_len()];
        prop_assert!(a.snapshot_into(&mut into).unwrap());
        prop_assert_eq!(&bytes, &into);
        prop_assert!(!a.snapshot_into(&mut vec![0; bytes.len() + 1]).unwrap());
        let b = core_with(&[]);
        b.restore(&bytes).unwrap();
        prop_assert_eq!(&bytes, &b.snapshot().unwrap());
        let e = core_with(&[]);
        e.merge(&bytes).unwrap();
        prop_assert_eq!(&bytes, &e.snapshot().unwrap(), "merge into empty = restore");
    }

    #[test]
    fn merge_is_commutative_and_associative(
        x in prop::collection::vec(outcome(), 0..20),
        y in prop::collection::vec(outcome(), 0..20),
        z in prop::collection::vec(outcome(), 0..20),
    ) {
        let (sx, sy, sz) = (core_with(&x).snapshot().unwrap(), core_with(&y).snapshot().unwrap(), core_with(&z).snapshot().unwrap());
        let xy = core_with(&[]); xy.merge(&sx).unwrap(); xy.merge(&sy).unwrap();
        let yx = core_with(&[]); yx.merge(&sy).unwrap(); yx.merge(&sx).unwrap();
        prop_assert!(same_estimates(&xy, &yx, 20_000.0));
        let left = core_with(&[]); left.merge(&xy.snapshot().unwrap()).unwrap(); left.merge(&sz).unwrap();
        let yz = core_with(&[]); yz.merge(&sy).unwrap(); yz.merge(&sz).unwrap();
        let right = core_with(&[]); right.merge(&sx).unwrap(); right.merge(&yz.snapshot().unwrap()).unwrap();
        prop_assert!(same_estimates(&left, &right, 20_000.0));
    }
}

fn tracking(events: &[(usize, u8, usize, f64, u64, f64)]) -> Core {
    let c = core_with(&[]);
    c.track_changes();
    apply(&c, events);
    c
}

/// First tries only (even output tokens): what a retry learns depends on the state it meets.
fn first_tries(
    events: &[(usize, u8, usize, f64, u64, f64)],
) -> Vec<(usize, u8, usize, f64, u64, f64)> {
    events
        .iter()
        .map(|&(m, s, c, t, out, lat)| (m, s, c, t, out & !1, lat))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Shared learning's algebra: two replicas each learn their own reports and exchange their
    /// changes every round; both end with the same estimates, and (first tries) with those of
    /// one core that saw every report.
    #[test]
    fn replicas_exchanging_deltas_agree_with_each_other_and_with_one_core(
        rounds in prop::collection::vec(
            (prop::collection::vec(outcome(), 0..6), prop::collection::vec(outcome(), 0..6)), 1..6),
        only_first_tries in any::<bool>(),
    ) {
        let (a, b, all) = (tracking(&[]), tracking(&[]), core_with(&[]));
        for (xa, xb) in &rounds {
            let (xa, xb) = if only_first_tries { (first_tries(xa), first_tries(xb)) } else { (xa.clone(), xb.clone()) };
            apply(&a, &xa);
            apply(&b, &xb);
            apply(&all, &xa);
            apply(&all, &xb);
            let (da, db) = (a.take_delta().unwrap(), b.take_delta().unwrap());
            if let Some(d) = &da { b.merge_delta(d).unwrap(); }
            if let Some(d) = &db { a.merge_delta(d).unwrap(); }
        }
        prop_assert!(same_estimates(&a, &b, 20_000.0));
        if only_first_tries {
            prop_assert!(same_estimates(&a, &all, 20_000.0));
        }
        prop_assert!(a.take_delta().unwrap().is_none(), "a merged delta is not a change");
    }
}

/// A drift found on one replica forgets evidence there; its delta carries the forgetting (as
/// negative differences) to a replica that mirrors it, which ends with the same estimates.
#[test]
fn a_drift_forgetting_reaches_the_other_replica_through_the_delta() {
    let a = common::core();
    a.track_changes();
    let mirror = common::core();
    mirror.track_changes();
    for (status, n) in [(Status::Success, 200), (Status::Failure, 30)] {
        for _ in 0..n / 10 {
            common::feed(&a, "cheap", "edit", status, 10, 0.0);
            mirror
                .merge_delta(&a.take_delta().unwrap().unwrap())
                .unwrap();
        }
    }
    assert!(
        a.drain_events().iter().any(|e| e.kind == "drift"),
        "the scenario drifts"
    );
    assert!(
        mirror.drain_events().is_empty(),
        "the mirror learned nothing itself"
    );
    let p = |c: &Core| c.estimate(&common::req(0.0)).unwrap()[0].success_probability;
    assert!(p(&a) < 0.5, "{}", p(&a));
    assert!(close(p(&a), p(&mirror)), "{} vs {}", p(&a), p(&mirror));
}

/// Restoring an exported state on a replica whose changes are tracked replaces the state of the
/// replicas that follow it too; a delta that could not be sent goes out with the next one.
#[test]
fn a_restore_and_a_returned_delta_travel_in_deltas() {
    let events = [
        (0, 1, 0, 100.0, 10, 10.0),
        (1, 2, 1, 5000.0, 12, 20.0),
        (2, 1, 2, 9000.0, 30, 30.0),
    ];
    let a = tracking(&events[..2]);
    let follower = tracking(&[]);
    let d = a.take_delta().unwrap().unwrap();
    a.return_delta(&d).unwrap(); // the send failed
    apply(&a, &events[2..]);
    follower
        .merge_delta(&a.take_delta().unwrap().unwrap())
        .unwrap();
    assert!(same_estimates(&follower, &core_with(&events), 10_000.0));

    let other = core_with(&[(2, 2, 0, 7000.0, 40, 5.0)]);
    a.restore(&other.snapshot().unwrap()).unwrap();
    follower
        .merge_delta(&a.take_delta().unwrap().unwrap())
        .unwrap();
    assert!(same_estimates(&follower, &other, 10_000.0));
    // Catching up from the shared state is not a change of this replica's.
    follower
        .restore_shared(&core_with(&events).snapshot().unwrap())
        .unwrap();
    assert!(follower.take_delta().unwrap().is_none());
    assert!(same_estimates(&follower, &core_with(&events), 10_000.0));
}

#[test]
fn deltas_and_snapshots_are_not_confused() {
    let a = tracking(&[(0, 1, 0, 100.0, 10, 10.0)]);
    let delta = a.take_delta().unwrap().unwrap();
    let e = a.restore(&delta).unwrap_err().to_string();
    assert!(
        e.starts_with("snapshot") && e.contains("merge_delta"),
        "{e}"
    );
    let e = a
        .merge_delta(&a.snapshot().unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("delta: not a modelyard core delta"), "{e}");
    let untracked = core_with(&[(0, 1, 0, 100.0, 10, 10.0)]);
    assert!(
        untracked.take_delta().unwrap().is_none(),
        "nothing is recorded unless asked"
    );
}

#[test]
fn corrupt_snapshots_are_rejected_with_a_field() {
    let c = common::core();
    for bad in [
        &b"nope"[..],
        b"MYRCORE\0\x09\0\0\0",
        b"MYRCORE\0\x01\0\0\0\xff",
    ] {
        let e = c.restore(bad).unwrap_err().to_string();
        assert!(e.starts_with("snapshot"), "{e}");
    }
}

#[test]
fn merging_replicas_equals_one_core_seeing_everything() {
    let all = core_with(&[(0, 1, 0, 100.0, 10, 10.0), (1, 2, 0, 5000.0, 10, 10.0)]);
    let a = core_with(&[(0, 1, 0, 100.0, 10, 10.0)]);
    let b = core_with(&[(1, 2, 0, 5000.0, 10, 10.0)]);
    a.merge(&b.snapshot().unwrap()).unwrap();
    assert!(same_estimates(&a, &all, 6000.0));
}

/// A version 4 snapshot written by the previous release (the `common` catalog, five reports:
/// a retry with an effort, an ERROR, two classes) restores: counts, costs and mean latencies
/// exactly, each p90 from its histogram buckets' midpoints, and it re-encodes as version 6.
#[test]
fn version_4_snapshots_restore() {
    let c = common::core();
    c.restore(include_bytes!("fixtures/snapshot_v4.bin"))
        .unwrap();
    let arms = c.arms();
    let row = |m: &str, class: &str| {
        arms.iter()
            .find(|a| a.model == m && a.task_class == class)
            .unwrap_or_else(|| panic!("{m}/{class} missing: {arms:?}"))
    };
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * b.abs().max(1.0);
    // What the previous release's leaderboard said of the same state.
    let edit = row("cheap", "edit");
    assert!(
        close(edit.n, 1.998_653) && close(edit.mean_cost_usd, 0.02),
        "{edit:?}"
    );
    assert!(close(edit.mean_latency_ms, 7_560.716_3), "{edit:?}");
    let strong = row("strong", "docs");
    assert!(close(strong.mean_cost_usd, 0.0366) && close(strong.mean_latency_ms, 3_000.0));
    // One latency each: the p90 is its bucket's midpoint, 10 ms · 1.5^(i + 0.5).
    let mid = |ms: f64| 10.0 * 1.5f64.powf(((ms / 10.0).ln() / 1.5f64.ln()).floor() + 0.5);
    assert!(close(strong.p90_latency_ms, mid(3_000.0)), "{strong:?}");
    assert!(close(row("mid", "edit").p90_latency_ms, mid(900.0)));
    // Two latencies, 120 ms (the success) and 15,000 ms (the failure): the log-normal through
    // their midpoints, weighted as the two reports were.
    let (w1, w2, l1, l2) = (
        edit.successes,
        edit.failures,
        mid(120.0).ln(),
        mid(15_000.0).ln(),
    );
    let mu = (w1 * l1 + w2 * l2) / (w1 + w2);
    let var = (w1 * l1 * l1 + w2 * l2 * l2) / (w1 + w2) - mu * mu;
    let p90 = (mu + 1.281_551_565_545 * var.sqrt()).exp();
    assert!(close(edit.p90_latency_ms, p90), "{edit:?} {p90}");
    let v6 = c.snapshot().unwrap();
    assert_eq!(&v6[8..12], &6u32.to_le_bytes());
    let again = common::core();
    again.restore(&v6).unwrap();
    assert_eq!(again.snapshot().unwrap(), v6);
    assert_eq!(again.arms().len(), arms.len());
}

/// The reports behind `fixtures/snapshot_v5.bin`, which the previous release wrote from them:
/// cheap in "edit", three steps at 0.5x, 2x and 8x their token estimates; mid in "docs", then
/// a retry of strong there after mid's failure.
fn v5_fixture_reports(c: &Core) {
    let ex = Role::from_number(common::EXECUTOR).unwrap();
    let step = |model: &str, class: &str, ok: bool, now: f64, tokens: (u64, u64), cost: f64| {
        let status = if ok { Status::Success } else { Status::Failure };
        let mut r = Report::new(model, ex, class, status, now);
        (r.est_input_tokens, r.est_output_tokens) = (10_000, 1_000);
        (r.input_tokens, r.output_tokens) = tokens;
        r.cost_usd = Some(cost);
        r.latency_ms = tokens.1 as f64;
        r
    };
    for (i, share) in [0.5f64, 2.0, 8.0].into_iter().enumerate() {
        let tokens = ((10_000.0 * share) as u64, (1_000.0 * share) as u64);
        let cost = share * (10_000.0 * 0.1 + 1_000.0 * 0.4) / 1e6 * 1.5;
        c.report(&step(
            "cheap",
            "edit",
            i != 1,
            100.0 + i as f64,
            tokens,
            cost,
        ))
        .unwrap();
    }
    let mut r = step("mid", "docs", false, 110.0, (30_000, 3_000), 0.05);
    r.latency_ms = 4_000.0;
    let effort = c.report(&r).unwrap();
    let mut r = step("strong", "docs", true, 111.0, (12_000, 1_500), 0.06);
    (r.latency_ms, r.attempt, r.failed_effort) = (3_000.0, 2, effort);
    c.report(&r).unwrap();
}

/// A version 5 snapshot written by the previous release (`v5_fixture_reports`) restores to the
/// estimates of a core that learned the same reports itself, except where v5 could not say what
/// it now says: cheap's ratios saw 0.5x, 2x and 8x, whose mean (3.5x) v5 kept only as log-moments,
/// converted to the log-normal mean they imply (~3.8x: `RatioSums::from_log_moments`). The
/// success estimates are the previous release's to the digit, and it re-encodes as version 6.
#[test]
fn version_5_snapshots_restore_to_the_estimates_of_their_reports() {
    let old = common::core();
    old.restore(include_bytes!("fixtures/snapshot_v5.bin"))
        .unwrap();
    let fresh = common::core();
    v5_fixture_reports(&fresh);
    let mut q = common::req(120.0);
    (q.est_input_tokens, q.est_output_tokens, q.explain) = (10_000, 1_000, true);
    let (d_old, d_fresh) = (old.route(&q).unwrap(), fresh.route(&q).unwrap());
    let of =
        |d: &_core::Decision, m: &str| d.candidates.iter().find(|x| x.model == m).unwrap().clone();
    // What the previous release's candidates table said of P(success).
    for (model, p) in [
        ("cheap", 0.571_279_295_448),
        ("mid", 0.560_215_521_233),
        ("strong", 0.9),
    ] {
        let (o, f) = (of(&d_old, model), of(&d_fresh, model));
        assert!((o.success_probability - p).abs() < 1e-9, "{o:?}");
        assert!((f.success_probability - p).abs() < 1e-9, "{f:?}");
    }
    // One step each (no spread): the same cost.
    for model in ["mid", "strong"] {
        let (o, f) = (of(&d_old, model).cost_usd, of(&d_fresh, model).cost_usd);
        assert!((o / f - 1.0).abs() < 1e-9, "{model}: {o} vs {f}");
    }
    // Three steps: the log-normal mean of v5's moments is above the plain mean of what was seen.
    let (o, f) = (of(&d_old, "cheap").cost_usd, of(&d_fresh, "cheap").cost_usd);
    assert!(o > f * 1.02 && o < f * 1.2, "{o} vs {f}");
    let v6 = old.snapshot().unwrap();
    assert_eq!(&v6[8..12], &6u32.to_le_bytes());
    let again = common::core();
    again.restore(&v6).unwrap();
    assert_eq!(again.snapshot().unwrap(), v6);
}

/// `take_delta_parts` takes the changes when it is called and encodes the parts later: what is
/// learned in between is not in them (it goes with the next delta), and together they carry
/// everything, once.
#[test]
fn delta_parts_are_taken_when_asked_and_encoded_when_read() {
    let events = [
        (0, 1, 0, 100.0, 10, 10.0),
        (1, 2, 1, 5000.0, 12, 20.0),
        (2, 1, 2, 9000.0, 30, 30.0),
        (0, 2, 2, 9500.0, 40, 40.0),
    ];
    let a = tracking(&events[..2]);
    let parts = a.take_delta_parts(1);
    assert!(parts.len() >= 2, "{} parts", parts.len());
    apply(&a, &events[2..]); // learned after the take, before the parts are encoded
    let follower = tracking(&[]);
    for p in parts {
        follower.merge_delta(&p.unwrap()).unwrap();
    }
    assert!(same_estimates(
        &follower,
        &core_with(&events[..2]),
        10_000.0
    ));
    follower
        .merge_delta(&a.take_delta().unwrap().unwrap())
        .unwrap();
    assert!(same_estimates(&follower, &core_with(&events), 10_000.0));
    assert_eq!(a.take_delta_parts(1).len(), 0);
}

/// A base's changes and snapshot taken in one step: the snapshot holds the changes, the parts
/// carry them; if the snapshot cannot be written, the changes stay for the next delta.
#[test]
fn deltas_and_a_snapshot_taken_together() {
    struct Broken;
    impl std::io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let events = [(0, 1, 0, 100.0, 10, 10.0), (1, 2, 1, 5000.0, 12, 20.0)];
    let a = tracking(&events);
    assert!(a.take_deltas_and_snapshot_to(1, Broken).is_err());
    let mut snap = Vec::new();
    let parts = a.take_deltas_and_snapshot_to(1, &mut snap).unwrap();
    assert!(
        parts.len() >= 2,
        "the failed attempt's changes are still there"
    );
    assert_eq!(snap, a.snapshot().unwrap());
    let follower = tracking(&[]);
    for p in parts {
        follower.merge_delta(&p.unwrap()).unwrap();
    }
    assert!(same_estimates(&follower, &core_with(&events), 10_000.0));
    assert!(a.take_delta().unwrap().is_none());
}
