//! Hierarchical shrinkage: catalog prior → model → (model, role) → arm, for P(success) and for
//! the learned log-ratios (tokens actual/estimated, cost billed/list-price).
//!
//! Each level's prior is the parent's posterior with its strength (pseudo-count) capped. A level's
//! stored sums hold its children's outcomes too (every outcome is added at every level), so pooling
//! is leave-one-out: a parent lends only what it saw beyond the child it lends to (model minus
//! (model, role), (model, role) minus the arm). Without that, one outcome was counted once per
//! level and two early failures of a model weighed like six on its arms. The cap keeps a model that
//! is excellent on average from drowning an arm's few but specific outcomes: after about the cap's
//! worth of own observations an arm's data weighs as much as everything it borrowed.
//!
//! Ratios: the root is ln r = `RatioRoot`'s shift (0, list price and step estimate right,
//! unless every model's steps run far below their estimates) worth `RATIO_PRIOR_WEIGHT`
//! observations (a tenth of one: an untried model's cost comes from the root, one observed step
//! mostly replaces it); each level averages its parent's mean of ln r and mean of r, weighted by
//! the capped parent strength, with its own (leave-one-out like the success counts). The
//! prediction is the pooled mean of r: the mean ratio as observed, not exp(μ + σ²/2) as a
//! log-normal would have it (`pool`). A continuous ratio is far more informative per observation
//! than a Bernoulli outcome, hence the smaller `RATIO_POOL_CAP`.

use crate::arm::{Hot, RatioHot};

/// Strength (in observations) a pooled parent can lend to its child. 16 rather than 8: classes of a
/// few dozen jobs each explored every model on their own at 8; on the SWE-bench Verified replay
/// (the development table) 16 cut cost per solved task by ~10 % at K = 3 with the same share
/// solved, and 32 began to lose solved tasks at K = 1 (bench/README "What limits quality").
pub const POOL_CAP: f64 = 16.0;

/// z of a central 90 % interval.
pub const Z90: f64 = 1.645;

/// A Beta posterior.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Beta {
    pub alpha: f64,
    pub beta: f64,
}

impl Beta {
    pub fn mean(self) -> f64 {
        self.alpha / (self.alpha + self.beta)
    }

    pub fn strength(self) -> f64 {
        self.alpha + self.beta
    }

    /// Normal approximation of a central interval; good enough for a leaderboard.
    pub fn interval(self, z: f64) -> (f64, f64) {
        let (a, b) = (self.alpha, self.beta);
        let m = self.mean();
        let sd = (a * b / ((a + b) * (a + b) * (a + b + 1.0))).sqrt();
        ((m - z * sd).max(0.0), (m + z * sd).min(1.0))
    }

    /// The posterior after adding the decayed successes and failures of one level.
    #[inline]
    fn update(self, h: &Hot, scale: f64) -> Self {
        Self {
            alpha: self.alpha + h.successes * scale,
            beta: self.beta + h.failures * scale,
        }
    }

    /// The posterior after adding what `parent` saw beyond `child` (leave-one-out pooling).
    #[inline]
    fn update_minus(self, parent: &Hot, child: &Hot, scale: f64) -> Self {
        Self {
            alpha: self.alpha + (parent.successes - child.successes).max(0.0) * scale,
            beta: self.beta + (parent.failures - child.failures).max(0.0) * scale,
        }
    }

    /// This posterior turned into a child's prior (capped strength, same mean).
    #[inline]
    fn as_parent(self) -> Self {
        let s = self.strength().min(POOL_CAP);
        let m = self.mean();
        Self {
            alpha: m * s,
            beta: (1.0 - m) * s,
        }
    }
}

/// Pseudo-observations of the root "ratio is 1" prior. A tenth of one observation, not 2: what an
/// agentic step bills against its list-price prediction varies by up to ~10x between models (how
/// many turns and tokens a model spends), so one observed step says more about a model's next
/// step than its list price does. At 2, a model billed 10x list still looked 2-3x list after its
/// first tries, and retries kept paying for that lesson; 0.1 cut cost per solved task by ~6 % at
/// K = 1 and ~4 % at K = 3 on the SWE-bench Verified replay (130 orders; 0.02-0.25 gave the same
/// within the noise; bench/README "Tenth session").
pub const RATIO_PRIOR_WEIGHT: f64 = 0.1;
/// Strength (in observations) a pooled parent can lend to its child's ratio estimate.
pub const RATIO_POOL_CAP: f64 = 4.0;

/// The catalog's operator prior for a model.
pub fn catalog_prior(prior_success: f64, prior_strength: f64) -> Beta {
    Beta {
        alpha: prior_success * prior_strength,
        beta: (1.0 - prior_success) * prior_strength,
    }
}

/// Posterior of an arm given its pooled parents `[model, (model, role), arm]` (each level's sums
/// include its children's, see the module doc); `scale` decays stored sums to now.
#[inline]
pub fn success_posterior(prior: Beta, lv: [&Hot; 3], scale: f64) -> Beta {
    let model = prior.update_minus(lv[0], lv[1], scale);
    let role = model.as_parent().update_minus(lv[1], lv[2], scale);
    role.as_parent().update(lv[2], scale)
}

/// Pseudo-count of the hardness prior ρ = 1 ("a retry is as easy as a first try").
pub const HARDNESS_PRIOR: f64 = 2.0;

/// ρ, how much harder a retry is: observed / predicted successes of retries (the hardness arm,
/// see arm.rs), shrunk toward 1 and capped at 1.
#[inline]
pub fn hardness(h: &Hot, scale: f64) -> f64 {
    hardness_toward(h, scale, 1.0)
}

/// ρ shrunk toward `parent` instead of 1: an effort bucket's hardness starts from the role's.
#[inline]
pub fn hardness_toward(h: &Hot, scale: f64, parent: f64) -> f64 {
    let (seen, predicted) = (h.successes * scale, h.failures * scale);
    ((seen + HARDNESS_PRIOR * parent) / (predicted + HARDNESS_PRIOR)).min(1.0)
}

/// The retry-arm role bit for a job whose failed attempts ran at `effort` (mean ln of billed
/// cost over the model's typical cost for the step): above typical reads as a hard task.
#[inline]
pub fn effort_bit(effort: f64) -> u8 {
    if effort > 0.0 {
        crate::arm::EFFORT_HIGH
    } else {
        crate::arm::EFFORT_LOW
    }
}

/// Posterior of a retry (attempt > 1) of an arm whose first-try posterior is `normal`: the prior
/// has mean ρ × the first-try mean and the first try's strength (capped at `POOL_CAP`), so a
/// model never retried starts from what retries of every model taught; then the retry levels
/// `[(model, role | RETRY), (model, role | RETRY, class)]` update it like the normal hierarchy.
#[inline]
pub fn retry_posterior(normal: Beta, rho: f64, lv: [&Hot; 2], scale: f64) -> Beta {
    let m = (normal.mean() * rho).clamp(1e-6, 1.0 - 1e-6);
    let s = normal.strength().min(POOL_CAP);
    let base = Beta {
        alpha: m * s,
        beta: (1.0 - m) * s,
    };
    base.update_minus(lv[0], lv[1], scale)
        .as_parent()
        .update(lv[1], scale)
}

/// E[r], the mean ratio `which` of an arm given its pooled parents `[model, (model, role), arm]`
/// (see `pool`); the root's exp(shift) without evidence.
#[inline]
pub fn pooled_ratio(root: &RatioRoot, lv: [&Hot; 3], which: usize, scale: f64) -> f64 {
    pool(root, lv, which, scale).1
}

/// Pooled mean of ln r for ratio `which`; the root's shift without evidence. Its exp is the
/// typical (median) ratio, which `effort` compares an observed step against.
#[inline]
pub fn pooled_log_ratio(root: &RatioRoot, lv: [&Hot; 3], which: usize, scale: f64) -> f64 {
    pool(root, lv, which, scale).0
}

/// (mean of ln r, mean of r) of ratio `which`, pooled down `[model, (model, role), arm]`: each
/// level averages its parent's with its own, weighted by the capped parent strength,
/// leave-one-out. The mean of ln r starts from the root's shift (applied only when the model
/// level, which holds all of the model's own evidence, has none) worth `RATIO_PRIOR_WEIGHT`. The
/// mean of r starts, with the same weight, from exp(the pooled mean of ln r): a step counts as
/// typical, without a tail, until steps show one. Starting it from the root's r instead would
/// pull it toward the list price additively, by ~40 % after five steps at a twentieth of their
/// estimates; so it stays relative, as in log space. The mean of r is linear in where it starts
/// (a·start + b), so one pass computes both.
#[inline]
fn pool(root: &RatioRoot, lv: [&Hot; 3], which: usize, scale: f64) -> (f64, f64) {
    let levels = [
        &lv[0].ratios[which],
        &lv[1].ratios[which],
        &lv[2].ratios[which],
    ];
    let shift = if levels[0].w <= 0.0 {
        root.shift[which]
    } else {
        0.0
    };
    if levels.iter().all(|l| l.w <= 0.0) {
        return (shift, shift.exp());
    }
    let (mut strength, mut ln_mean) = (RATIO_PRIOR_WEIGHT, shift);
    // mean of r = a · start + b
    let (mut a, mut b) = (1.0, 0.0);
    for (i, level) in levels.iter().enumerate() {
        // Leave-one-out: a parent lends only what its child did not see.
        let level = if i < 2 {
            &minus(level, levels[i + 1])
        } else {
            *level
        };
        let w = level.w * scale;
        let n = strength + w;
        ln_mean = (strength * ln_mean + w * level.ln_mean) / n;
        a = strength * a / n;
        b = (strength * b + w * level.mean) / n;
        strength = n.min(RATIO_POOL_CAP);
    }
    (ln_mean, a * ln_mean.exp() + b)
}

/// Where the ratios' pooling starts, per ratio: ln r = `shift`, worth `RATIO_PRIOR_WEIGHT`
/// observations. `shift` is 0 (the list price and the step estimate are right) unless the median
/// over the models learned (the model level) of their mean ln r (each model counted once) is below
/// 0, and then that median: when every tried model's steps come out far below their estimates
/// (a harness whose estimates run 20x high), an untried model is assumed to as well, instead of
/// looking 20x dearer than every tried one and never being tried (measured: `bench replay
/// --est-tokens`, bench/README "Tenth session"). Never above 0: the models tried first are the ones
/// cheap by list price, and several of those bill far above it on real agent runs; lifting every
/// untried model's price by them kept cheap-billing models untried and slowed the move away from a
/// degraded one. Estimates that run low only make untried models look cheap, and trying them
/// corrects that.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RatioRoot {
    pub shift: [f64; 3],
}

impl RatioRoot {
    /// The list price and the step estimate taken as they are.
    pub const NONE: RatioRoot = RatioRoot { shift: [0.0; 3] };

    /// Whether a model whose model-level view is `model` reads the root at all (it stands in only
    /// for a ratio the model has no evidence of), so callers can skip computing it.
    #[inline]
    pub fn needed_for(model: &Hot) -> bool {
        model.ratios.iter().any(|l| l.w <= 0.0)
    }

    /// The root for a model whose model-level view is `model`: `root()` when it reads one, else
    /// `NONE` without calling it.
    #[inline]
    pub fn for_model(model: &Hot, root: impl FnOnce() -> RatioRoot) -> RatioRoot {
        if Self::needed_for(model) {
            root()
        } else {
            Self::NONE
        }
    }

    /// From the model level (all roles, all classes): every model learned, each counted once.
    pub fn of(table: &crate::arm::ArmTable) -> Self {
        let row = table.row(crate::arm::ALL_ROLES, crate::arm::ALL_CLASSES);
        let mut buf = Vec::new();
        let mut root = Self::NONE;
        for (which, shift) in root.shift.iter_mut().enumerate() {
            buf.clear();
            row.ratio_means(which, &mut buf);
            *shift = median(&mut buf).map_or(0.0, |m| m.min(0.0));
        }
        root
    }
}

fn median(xs: &mut [f64]) -> Option<f64> {
    let n = xs.len();
    if n == 0 {
        return None;
    }
    let (below, &mut mid, _) = xs.select_nth_unstable_by(n / 2, f64::total_cmp);
    Some(if n % 2 == 1 {
        mid
    } else {
        // The largest of the lower half is the other middle value.
        (below.iter().copied().fold(f64::NEG_INFINITY, f64::max) + mid) / 2.0
    })
}

/// The means of what `parent` saw beyond `child` (leave-one-out pooling of a ratio).
fn minus(parent: &RatioHot, child: &RatioHot) -> RatioHot {
    let w = parent.w - child.w;
    if w <= 1e-9 * parent.w.max(1.0) {
        return RatioHot::default();
    }
    RatioHot {
        w,
        ln_mean: (parent.w * parent.ln_mean - child.w * child.ln_mean) / w,
        // A mean of positive ratios; rounding of nearly equal sums must not make it negative.
        mean: ((parent.w * parent.mean - child.w * child.mean) / w).max(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arm::{RatioHot, RATIO_COST};

    const PRIOR: Beta = Beta {
        alpha: 0.7 * 4.0,
        beta: 0.3 * 4.0,
    };

    fn arm(s: f64, f: f64) -> Hot {
        Hot {
            successes: s,
            failures: f,
            ..Hot::EMPTY
        }
    }

    #[test]
    fn table_of_pooling_cases() {
        let e = Hot::EMPTY;
        // (name, model level, role level, arm, expected mean range)
        let cases = [
            ("catalog prior only", e, e, e, (0.699, 0.701)),
            (
                "model evidence flows down",
                arm(100.0, 0.0),
                e,
                e,
                (0.95, 1.0),
            ),
            (
                "arm evidence dominates",
                arm(100.0, 0.0),
                e,
                arm(0.0, 100.0),
                (0.0, 0.15),
            ),
            (
                "few arm outcomes are shrunk",
                e,
                e,
                arm(0.0, 2.0),
                (0.4, 0.65),
            ),
            ("role level in between", e, arm(0.0, 50.0), e, (0.0, 0.2)),
        ];
        for (name, m, r, a, (lo, hi)) in cases {
            let p = success_posterior(PRIOR, [&m, &r, &a], 1.0).mean();
            assert!(p >= lo && p <= hi, "{name}: {p}");
        }
    }

    #[test]
    fn pooling_is_leave_one_out() {
        // Two failures of one arm, stored (as the router stores them) at every level: they count
        // once, so the arm sits where the catalog prior plus two failures puts it.
        let two = arm(0.0, 2.0);
        let p = success_posterior(PRIOR, [&two, &two, &two], 1.0);
        let once = PRIOR.update(&two, 1.0);
        assert!(
            (p.mean() - once.mean()).abs() < 1e-12,
            "{} {}",
            p.mean(),
            once.mean()
        );
        // Another class's outcomes at the (model, role) level are lent; the arm's are not lent back.
        let role = arm(10.0, 2.0);
        let p = success_posterior(PRIOR, [&role, &role, &two], 1.0).mean();
        let lent = PRIOR
            .update(&arm(10.0, 0.0), 1.0)
            .as_parent()
            .update(&two, 1.0)
            .mean();
        assert!((p - lent).abs() < 1e-12, "{p} {lent}");
        // Ratios the same way: the arm's own observations at every level count once.
        let r = ratio(3.0, 2.0);
        let got = pooled_log_ratio(&RatioRoot::NONE, [&r, &r, &r], RATIO_COST, 1.0);
        let want = 3.0 * 2f64.ln() / (3.0 + RATIO_PRIOR_WEIGHT);
        assert!((got - want).abs() < 1e-12, "{got} {want}");
        let got = pooled_ratio(&RatioRoot::NONE, [&r, &r, &r], RATIO_COST, 1.0);
        let want = (RATIO_PRIOR_WEIGHT * want.exp() + 3.0 * 2.0) / (3.0 + RATIO_PRIOR_WEIGHT);
        assert!((got - want).abs() < 1e-12, "{got} {want}");
    }

    #[test]
    fn decay_scale_weakens_evidence() {
        let (e, a) = (Hot::EMPTY, arm(0.0, 20.0));
        let fresh = success_posterior(PRIOR, [&e, &e, &a], 1.0).mean();
        let stale = success_posterior(PRIOR, [&e, &e, &a], 0.01).mean();
        assert!(
            fresh < stale && (stale - 0.7).abs() < 0.05,
            "{fresh} {stale}"
        );
    }

    fn tailed(w: f64, ln_mean: f64, mean: f64) -> Hot {
        let mut h = Hot::EMPTY;
        h.ratios[RATIO_COST] = RatioHot { w, ln_mean, mean };
        h
    }

    fn ratio(w: f64, r: f64) -> Hot {
        let mut h = Hot::EMPTY;
        h.ratios[RATIO_COST] = RatioHot {
            w,
            ln_mean: r.ln(),
            mean: r,
        };
        h
    }

    #[test]
    fn ratios_shrink_to_one_and_borrow_from_parents() {
        let e = Hot::EMPTY;
        let cases = [
            ("no evidence", e, e, e, (1.0, 1.0)),
            (
                // Typical e^(ln 3 / 1.1) = e^0.999, mean (0.1 · e^0.999 + 3) / 1.1: shrunk a
                // little toward the list price, no more
                "one observation mostly replaces the list price",
                e,
                e,
                ratio(1.0, 3.0),
                (2.9, 3.0),
            ),
            (
                // (0.1 · e^(ln 3 / 2) + 0.1 · 3) / 0.2
                "a fraction of an observation is shrunk",
                e,
                e,
                ratio(0.1, 3.0),
                (2.3, 2.4),
            ),
            (
                // Ratios 2 and 8: typical 4, mean 5. Pooled with the root's tenth of an
                // observation, at the pooled typical ratio: (0.1 · e^(2 ln 4 / 2.1) + 2 · 5) / 2.1.
                "the mean, not the typical ratio: a tail counts",
                e,
                e,
                tailed(2.0, 4f64.ln(), 5.0),
                (4.93, 4.95),
            ),
            (
                // (0.1 · e^(ln 4 / 2) + 0.1 · 5) / 0.2
                "a fraction of an observation with a tail is shrunk",
                e,
                e,
                tailed(0.1, 4f64.ln(), 5.0),
                (3.49, 3.51),
            ),
            (
                "much arm evidence wins",
                e,
                e,
                ratio(100.0, 3.0),
                (2.9, 3.0),
            ),
            ("model level lends", ratio(50.0, 3.0), e, e, (2.8, 3.0)),
            (
                // (4 · ~3 + 50 · 0.5) / 54: the parent lends at most RATIO_POOL_CAP observations
                "arm beats parent",
                ratio(50.0, 3.0),
                e,
                ratio(50.0, 0.5),
                (0.68, 0.69),
            ),
        ];
        for (name, m, r, a, (lo, hi)) in cases {
            let got = pooled_ratio(&RatioRoot::NONE, [&m, &r, &a], RATIO_COST, 1.0);
            assert!(got >= lo - 1e-12 && got <= hi + 1e-12, "{name}: {got}");
        }
    }
}
