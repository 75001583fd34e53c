//! One routing decision over a consistent view of the state: constraints, estimates, Thompson
//! sampling, stickiness, fallbacks and the explanation.
//!
//! Hot path: one pass over the catalog reading three contiguous rows of hot arm views (model,
//! (model, role), (model, role, class)); no string is hashed per model, nothing is allocated per
//! model, and the reason sentence is rendered only on demand.

use rand::RngCore;
use rand_distr::Distribution;

use crate::arm::{ArmTable, Hot, ALL_CLASSES, ALL_ROLES, HARDNESS, RETRY};
use crate::breaker::{BreakerKey, Breakers};
use crate::catalog::{Catalog, ModelSpec};
use crate::constraints::{describe, estimate_exclusion, static_exclusion, Constraint, Resolved};
use crate::decision::{Candidate, Decision, Event, Reason};
use crate::explain::no_model_reason;
use crate::prior::{effort_bit, hardness, hardness_toward, retry_posterior, Beta, RatioRoot};
use crate::request::Request;
use crate::score::{estimate, retry_cost, score, Estimate};

/// Breaker access during a decision; `None` when no breaker is open (the common, lock-free case).
pub struct Gate<'a> {
    pub breakers: &'a mut Breakers,
    /// Whether a pick consumes the half-open probe (`route` yes, `estimate` no).
    pub take_probe: bool,
    pub events: &'a mut Vec<Event>,
}

/// Per-model working row of a decision.
pub struct Scored {
    pub idx: u32,
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

/// A key that sorts like the score (scores are ≥ 0 or +inf; total order for anything else).
#[inline]
fn order_key(x: f64) -> u64 {
    let b = x.to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | (1 << 63)
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
    let role = req.role.number();
    let model_row = table.row(ALL_ROLES, ALL_CLASSES);
    let role_row = table.row(role, ALL_CLASSES);
    let class_row = match table.classes.get(&req.task_class) {
        Some(c) => table.row(role, c),
        None => ArmTable::empty_row(),
    };
    // Computed at most once, and only if some model has not been measured yet.
    let root_cell = std::cell::OnceCell::new();
    // Retries read the retry levels and the role's hardness ρ (see prior.rs `retry_posterior`).
    // With the job's failed effort known, the retry levels are those of its effort bucket and ρ
    // is the bucket's, shrunk toward the role's.
    let retry = (req.attempt > 1).then(|| {
        let r = role | RETRY;
        let h = table.models.get(HARDNESS);
        let mut rho = h.map_or(1.0, |h| hardness(&table.row(r, ALL_CLASSES).hot(h), scale));
        let r = match req.failed_effort {
            Some(e) => {
                let rb = r | effort_bit(e);
                if let Some(h) = h {
                    rho = hardness_toward(&table.row(rb, ALL_CLASSES).hot(h), scale, rho);
                }
                rb
            }
            None => r,
        };
        let class_row = match table.classes.get(&req.task_class) {
            Some(c) => table.row(r, c),
            None => ArmTable::empty_row(),
        };
        (rho, table.row(r, ALL_CLASSES), class_row, h)
    });
    // Thompson sampling on first tries only; a retry takes the best mean score. A retry's estimate
    // is its model's first-try posterior × ρ plus the retry arms (prior.rs), so what first tries
    // explore reaches retries too; retries are the rare, expensive, low-P(success) steps where a
    // draw of P moves cost / P most, and sampling there bought little knowledge at a high price
    // (SWE-bench Verified replay, K = 3: $0.161 → $0.134 per solved task, same share; bench/README).
    let explore = req.explore && catalog.policy.explore && req.attempt == 1;
    let mut rng = WyRand::new(req.seed);
    let tv = req.time_value_usd_per_s;

    let n = catalog.models.len();
    let mut rows: Vec<Scored> = Vec::with_capacity(n);
    // (score key, position) of eligible models; best and greedy tracked on the way.
    let mut ranked: Vec<(u64, u32)> = Vec::with_capacity(n);
    let (mut best, mut greedy): (Option<u32>, Option<u32>) = (None, None);
    for (idx, spec) in catalog.models.iter().enumerate() {
        let open = gate.is_some() && breaker_open(&mut gate, spec, req.now);
        let mut excluded = static_exclusion(idx, spec, &res, open);
        let mut row = Scored {
            idx: idx as u32,
            excluded,
            est: None,
            sampled: 0.0,
            score: f64::INFINITY,
            greedy_score: f64::INFINITY,
        };
        if excluded.is_none() || req.explain {
            let k = spec.key;
            let lv = [model_row.hot(k), role_row.hot(k), class_row.hot(k)];
            let root =
                RatioRoot::for_model(&lv[0], || *root_cell.get_or_init(|| RatioRoot::of(table)));
            let mut est = estimate(spec, &root, lv.each_ref(), scale, req);
            if let Some((rho, retry_role, retry_class, h)) = retry {
                let rlv = [retry_role.hot(k), retry_class.hot(k)];
                est.posterior = retry_posterior(est.posterior, rho, rlv.each_ref(), scale);
                est.p_mean = est.posterior.mean();
                let pooled = h.map_or(Hot::EMPTY, |h| retry_role.hot(h));
                let rlv = [&pooled, &rlv[0], &rlv[1]];
                if let Some(c) = retry_cost(spec, &root, lv.each_ref(), rlv, scale, req) {
                    est.cost_usd = c;
                }
            }
            excluded = excluded.or_else(|| estimate_exclusion(req, &est));
            row.sampled = est.p_mean;
            row.greedy_score = score(&est, est.p_mean, tv);
            if excluded.is_none() && explore {
                // Draws happen only for eligible models, in catalog order: same seed, inputs and
                // state give the same draws and so the same decision.
                row.sampled = sample_beta(est.posterior, &mut rng);
                row.score = score(&est, row.sampled, tv);
            } else {
                row.score = row.greedy_score;
            }
            row.excluded = excluded;
            row.est = Some(est);
            if excluded.is_none() {
                let i = idx as u32;
                // Strict < keeps ties on the earlier catalog position.
                if best.map_or(true, |b| row.score < rows[b as usize].score) {
                    best = Some(i);
                }
                if greedy.map_or(true, |g| row.greedy_score < rows[g as usize].greedy_score) {
                    greedy = Some(i);
                }
                ranked.push((order_key(row.score), i));
            }
        }
        rows.push(row);
    }

    let (Some(best), Some(greedy)) = (best, greedy) else {
        return Decision::none(
            catalog.ids.clone(),
            no_model_reason(catalog, &rows),
            candidates(catalog, req, &res, &rows),
        );
    };
    let sticky_idx = req
        .sticky_model
        .as_deref()
        .and_then(|m| catalog.by_id.get(m).map(|&i| i as u32))
        .filter(|&i| rows[i as usize].excluded.is_none());
    let pick = sticky_choice(catalog, req, sticky_idx, best, |i| rows[i as usize].score);
    let greedy_pick = sticky_choice(catalog, req, sticky_idx, greedy, |i| {
        rows[i as usize].greedy_score
    });

    ranked.retain(|&(_, i)| i != pick);
    ranked.sort_unstable();
    let spec = &catalog.models[pick as usize];
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
    let r = &rows[pick as usize];
    let est = r.est.unwrap_or(Estimate {
        cost_usd: 0.0,
        latency_ms: 0.0,
        posterior: spec.prior,
        p_mean: 0.0,
        evidence: 0.0,
        tokens_in: 0.0,
        tokens_out: 0.0,
    });
    let reason = if sticky_idx == Some(pick) && pick != best {
        Reason::Sticky {
            pick,
            best,
            saving: r.score - rows[best as usize].score,
            cache_loss: cache_loss_usd(&catalog.models[best as usize], req.context_tokens),
            context_tokens: req.context_tokens,
        }
    } else if pick != greedy_pick {
        Reason::Explore {
            pick,
            greedy: greedy_pick,
            sampled: r.sampled,
            score: r.score,
        }
    } else {
        Reason::Lowest {
            pick,
            score: r.score,
            eligible: ranked.len() + 1,
            excluded: n - ranked.len() - 1,
            also_sticky: sticky_idx == Some(pick),
        }
    };
    Decision {
        ids: catalog.ids.clone(),
        pick: Some(pick),
        fallback_idx: ranked.iter().map(|&(_, i)| i).collect(),
        expected_cost_usd: est.cost_usd,
        success_probability: est.p_mean,
        latency_ms: est.latency_ms,
        cost_per_success_usd: est.cost_usd / est.p_mean.max(crate::score::MIN_SUCCESS_PROBABILITY),
        score: r.score,
        exploration: pick != greedy_pick,
        sticky: sticky_idx == Some(pick),
        reason,
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

/// wyrand: a tiny, fast, statistically solid generator; plenty for Thompson draws (not crypto).
/// The seed goes through splitmix64 so consecutive seeds give unrelated streams.
pub struct WyRand(u64);

impl WyRand {
    pub fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Self(z ^ (z >> 31))
    }

    /// Uniform in (0, 1].
    #[inline]
    fn open01(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

impl RngCore for WyRand {
    #[inline]
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) ^ t) as u64
    }

    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let b = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

/// Gamma(a, 1) by Marsaglia–Tsang (one normal and one uniform per try, ~98% accepted by the
/// squeeze without a logarithm); a < 1 is boosted through Gamma(a + 1)·U^(1/a).
fn sample_gamma(shape: f64, rng: &mut WyRand) -> f64 {
    if shape < 1.0 {
        let u = rng.open01();
        return sample_gamma(shape + 1.0, rng) * u.powf(1.0 / shape);
    }
    let dd = shape - 1.0 / 3.0;
    let cc = (1.0 / 3.0) / dd.sqrt();
    loop {
        let z: f64 = rand_distr::StandardNormal.sample(rng);
        let v = 1.0 + cc * z;
        if v <= 0.0 {
            continue;
        }
        let v = v * v * v;
        let u = rng.open01();
        let z2 = z * z;
        if u < 1.0 - 0.0331 * z2 * z2 || u.ln() < 0.5 * z2 + dd * (1.0 - v + v.ln()) {
            return dd * v;
        }
    }
}

#[inline]
fn sample_beta(b: Beta, rng: &mut WyRand) -> f64 {
    let (a, bb) = (b.alpha, b.beta);
    if !(a > 0.0 && bb > 0.0 && a.is_finite() && bb.is_finite()) {
        return b.mean();
    }
    if a >= NORMAL_APPROX_MIN && bb >= NORMAL_APPROX_MIN {
        let n = a + bb;
        let sd = (a * bb / (n * n * (n + 1.0))).sqrt();
        let z: f64 = rand_distr::StandardNormal.sample(rng);
        return (a / n + sd * z).clamp(1e-6, 1.0 - 1e-6);
    }
    let x = sample_gamma(a, rng);
    let y = sample_gamma(bb, rng);
    if x + y > 0.0 {
        (x / (x + y)).clamp(1e-6, 1.0 - 1e-6)
    } else {
        b.mean()
    }
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
    sticky: Option<u32>,
    best: u32,
    score: impl Fn(u32) -> f64,
) -> u32 {
    match sticky {
        Some(s) if s != best => {
            let saving = score(s) - score(best);
            if saving > cache_loss_usd(&catalog.models[best as usize], req.context_tokens) {
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
            let spec = &catalog.models[r.idx as usize];
            let e = &crate::arm::Hot::EMPTY;
            let est = r.est.unwrap_or_else(|| {
                estimate(spec, &crate::prior::RatioRoot::NONE, [e, e, e], 1.0, req)
            });
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
                success_low: est.posterior.interval(crate::prior::Z90).0,
                success_high: est.posterior.interval(crate::prior::Z90).1,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beta_draws_have_the_right_mean_and_spread() {
        let mut rng = WyRand::new(7);
        for (a, b) in [(0.5, 0.5), (2.0, 5.0), (5.3, 2.7), (30.0, 12.0)] {
            let n = 40_000;
            let draws: Vec<f64> = (0..n)
                .map(|_| sample_beta(Beta { alpha: a, beta: b }, &mut rng))
                .collect();
            let mean = draws.iter().sum::<f64>() / f64::from(n);
            let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / f64::from(n);
            let want_var = a * b / ((a + b) * (a + b) * (a + b + 1.0));
            assert!((mean - a / (a + b)).abs() < 0.01, "{a},{b}: mean {mean}");
            assert!(
                (var / want_var - 1.0).abs() < 0.1,
                "{a},{b}: var {var} vs {want_var}"
            );
        }
    }
}
