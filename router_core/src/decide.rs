//! One routing decision over a consistent view of the state: constraints, estimates, Thompson
//! sampling, stickiness, fallbacks and the explanation.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::Distribution;

use crate::arm::{ArmTable, ALL_CLASSES, ALL_ROLES};
use crate::breaker::{BreakerKey, Breakers};
use crate::catalog::{Catalog, ModelSpec};
use crate::constraints::{describe, estimate_exclusion, static_exclusion, Constraint, Resolved};
use crate::decision::{Candidate, Decision, Event};
use crate::explain::{no_model_reason, pick_reason};
use crate::request::Request;
use crate::score::{estimate, score, Estimate, Levels};

/// Breaker access during a decision; `None` when no breaker is open (the common, lock-free case).
pub struct Gate<'a> {
    pub breakers: &'a mut Breakers,
    /// Whether a pick consumes the half-open probe (`route` yes, `estimate` no).
    pub take_probe: bool,
    pub events: &'a mut Vec<Event>,
}

/// Per-model working row of a decision.
pub struct Scored {
    pub idx: usize,
    pub excluded: Option<Constraint>,
    pub est: Option<Estimate>,
    pub sampled: f64,
    pub score: f64,
    pub greedy_score: f64,
}

fn breaker_open(gate: &mut Option<Gate<'_>>, spec: &ModelSpec, now: f64) -> bool {
    let Some(g) = gate else { return false };
    let mut open = false;
    let keys = [
        Some(BreakerKey::Model(spec.id.clone())),
        (!spec.provider.is_empty()).then(|| BreakerKey::Provider(spec.provider.clone())),
    ];
    for key in keys.into_iter().flatten() {
        let (ok, transition) = g.breakers.admit(&key, now);
        if let Some(t) = transition {
            g.events.push(breaker_event(t.kind(), &key, now));
        }
        open |= !ok;
    }
    open
}

pub fn breaker_event(kind: &'static str, key: &BreakerKey, at: f64) -> Event {
    let (model, provider, who) = match key {
        BreakerKey::Model(m) => (m.clone(), String::new(), format!("model {m}")),
        BreakerKey::Provider(p) => (String::new(), p.clone(), format!("provider {p}")),
    };
    Event {
        kind,
        model,
        provider,
        role: 0,
        task_class: String::new(),
        detail: format!("{kind}: {who}"),
        at,
    }
}

// One linear pass (constraints → estimate → draw) then the pick; splitting it would thread a
// dozen locals through helpers for no reader's benefit.
#[allow(clippy::too_many_lines)]
/// Decides one step. Reads `table` only; breaker state changes go through `gate`.
pub fn decide(
    catalog: &Catalog,
    table: &ArmTable,
    req: &Request,
    mut gate: Option<Gate<'_>>,
) -> Decision {
    let res = Resolved::new(catalog, req);
    let scale = table.read_scale(req.now, catalog.lambda());
    let model_row = table.row(ALL_ROLES, ALL_CLASSES);
    let role_row = table.row(req.role.number(), ALL_CLASSES);
    let class_row = table
        .classes
        .get(&req.task_class)
        .and_then(|c| table.row(req.role.number(), c));
    let explore = req.explore && catalog.policy.explore;
    let mut rng = ChaCha8Rng::seed_from_u64(req.seed);
    let tv = req.time_value_usd_per_s;

    let mut rows: Vec<Scored> = Vec::with_capacity(catalog.models.len());
    for (idx, spec) in catalog.models.iter().enumerate() {
        let open = breaker_open(&mut gate, spec, req.now);
        let mut excluded = static_exclusion(spec, req, &res, open);
        let mut row = Scored {
            idx,
            excluded,
            est: None,
            sampled: 0.0,
            score: f64::INFINITY,
            greedy_score: f64::INFINITY,
        };
        if excluded.is_none() || req.explain {
            let lv = Levels {
                model: table.in_row(model_row, spec.key),
                role: table.in_row(role_row, spec.key),
                arm: table.in_row(class_row, spec.key),
            };
            let est = estimate(spec, lv, scale, req);
            excluded = excluded.or_else(|| estimate_exclusion(req, &est));
            row.sampled = est.p_mean;
            if excluded.is_none() && explore {
                // Draws happen only for eligible models, in catalog order: same seed, inputs and
                // state give the same draws and so the same decision.
                row.sampled = sample_beta(est.posterior, &mut rng);
            }
            row.score = score(&est, row.sampled, tv);
            row.greedy_score = score(&est, est.p_mean, tv);
            row.excluded = excluded;
            row.est = Some(est);
        }
        rows.push(row);
    }

    let mut eligible: Vec<usize> = rows
        .iter()
        .filter(|r| r.excluded.is_none())
        .map(|r| r.idx)
        .collect();
    if eligible.is_empty() {
        return Decision {
            reason: no_model_reason(catalog, &rows),
            candidates: candidates(catalog, req, &res, &rows),
            ..Decision::default()
        };
    }
    let best = argmin(&eligible, |i| rows[i].score);
    let greedy = argmin(&eligible, |i| rows[i].greedy_score);
    let sticky_idx = req
        .sticky_model
        .as_deref()
        .and_then(|m| catalog.by_id.get(m).copied())
        .filter(|i| rows[*i].excluded.is_none());
    let pick = sticky_choice(catalog, req, sticky_idx, best, |i| rows[i].score);
    let greedy_pick = sticky_choice(catalog, req, sticky_idx, greedy, |i| rows[i].greedy_score);

    eligible.retain(|&i| i != pick);
    eligible.sort_by(|&a, &b| rows[a].score.total_cmp(&rows[b].score).then(a.cmp(&b)));
    let spec = &catalog.models[pick];
    if let Some(g) = gate.as_mut().filter(|g| g.take_probe) {
        g.breakers.take_probe(
            &BreakerKey::Model(spec.id.clone()),
            req.now,
            &catalog.policy.breaker,
        );
        if !spec.provider.is_empty() {
            g.breakers.take_probe(
                &BreakerKey::Provider(spec.provider.clone()),
                req.now,
                &catalog.policy.breaker,
            );
        }
    }
    let r = &rows[pick];
    let est = r.est.unwrap_or(Estimate {
        cost_usd: 0.0,
        latency_ms: 0.0,
        posterior: crate::prior::catalog_prior(spec),
        p_mean: 0.0,
        evidence: 0.0,
        tokens_in: 0.0,
        tokens_out: 0.0,
    });
    Decision {
        model: Some(spec.id.clone()),
        fallbacks: eligible
            .iter()
            .map(|&i| catalog.models[i].id.clone())
            .collect(),
        expected_cost_usd: est.cost_usd,
        success_probability: est.p_mean,
        latency_ms: est.latency_ms,
        cost_per_success_usd: est.cost_usd / est.p_mean.max(crate::score::MIN_SUCCESS_PROBABILITY),
        score: r.score,
        exploration: pick != greedy_pick,
        sticky: sticky_idx == Some(pick),
        reason: pick_reason(catalog, req, &rows, pick, best, greedy_pick, sticky_idx),
        candidates: if req.explain {
            candidates(catalog, req, &res, &rows)
        } else {
            Vec::new()
        },
    }
}

/// Pseudo-count above which a Beta draw uses its moment-matched normal: at α, β ≥ 10 the two are
/// close for Thompson sampling and the normal draw is several times cheaper (64 draws per decision).
const NORMAL_APPROX_MIN: f64 = 10.0;

fn sample_beta(b: crate::prior::Beta, rng: &mut ChaCha8Rng) -> f64 {
    let (a, bb) = (b.alpha, b.beta);
    if a >= NORMAL_APPROX_MIN && bb >= NORMAL_APPROX_MIN {
        let n = a + bb;
        let sd = (a * bb / (n * n * (n + 1.0))).sqrt();
        let z: f64 = rand_distr::StandardNormal.sample(rng);
        return (a / n + sd * z).clamp(1e-6, 1.0 - 1e-6);
    }
    rand_distr::Beta::new(a, bb).map_or(b.mean(), |d| d.sample(rng))
}

/// Lowest score, ties to the earlier catalog position.
fn argmin(idx: &[usize], key: impl Fn(usize) -> f64) -> usize {
    let mut best = idx[0];
    for &i in &idx[1..] {
        if key(i) < key(best) {
            best = i;
        }
    }
    best
}

/// The cache-loss cost of leaving the sticky model for `alt`: the job's context re-read at the
/// alternative's uncached price instead of its cached price.
pub fn cache_loss_usd(alt: &ModelSpec, context_tokens: u64) -> f64 {
    context_tokens as f64 * (alt.price_in - alt.price_cached_in).max(0.0) / 1e6
}

/// Keeps the sticky model unless the best alternative saves more than the cache loss.
fn sticky_choice(
    catalog: &Catalog,
    req: &Request,
    sticky: Option<usize>,
    best: usize,
    score: impl Fn(usize) -> f64,
) -> usize {
    match sticky {
        Some(s) if s != best => {
            let saving = score(s) - score(best);
            if saving > cache_loss_usd(&catalog.models[best], req.context_tokens) {
                best
            } else {
                s
            }
        }
        _ => best,
    }
}

fn candidates(catalog: &Catalog, req: &Request, res: &Resolved, rows: &[Scored]) -> Vec<Candidate> {
    rows.iter()
        .map(|r| {
            let spec = &catalog.models[r.idx];
            let est = r
                .est
                .unwrap_or_else(|| estimate(spec, Levels::default(), 1.0, req));
            let detail = match r.excluded {
                Some(c) => describe(c, spec, req, res, &est),
                None => format!(
                    "{} eligible: ${:.6} per step, P(success) {:.3}, {:.0} ms, ${:.6} per success",
                    spec.id, est.cost_usd, est.p_mean, est.latency_ms, r.greedy_score
                ),
            };
            Candidate {
                model: spec.id.clone(),
                excluded: r.excluded.is_some(),
                constraint: r.excluded.map_or("", Constraint::name),
                detail,
                cost_usd: est.cost_usd,
                success_probability: est.p_mean,
                sampled_success: r.sampled,
                latency_ms: est.latency_ms,
                score: if r.score.is_finite() {
                    r.score
                } else {
                    score(&est, est.p_mean, req.time_value_usd_per_s)
                },
                evidence: est.evidence,
            }
        })
        .collect()
}
