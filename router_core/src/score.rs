//! Estimates of one candidate for one step, and the score: expected cost per success.
//!
//! ```text
//! score = (E[cost] + time_value_usd_per_s · E[latency_s]) / P(success)      (lower is better)
//! ```
//!
//! The same index orders the fallbacks: for independent attempts tried until one succeeds, the
//! expected total cost Σ_i c_i·Π_{j<i}(1−p_j) is minimised by sorting by c_i / p_i ascending (an
//! exchange argument: swapping adjacent i, j helps iff c_j/p_j < c_i/p_i).

use crate::arm::{Hot, RATIO_COST, RATIO_IN, RATIO_OUT};
use crate::catalog::ModelSpec;
use crate::prior::{pooled_log_ratio, pooled_ratio, success_posterior, Beta, RatioRoot};
use crate::request::Request;

/// Pseudo-observations the catalog's latency estimate is worth against observed latencies.
pub const LATENCY_PRIOR_WEIGHT: f64 = 2.0;
/// Floor on P(success) so a hopeless model gets a huge but finite score.
pub const MIN_SUCCESS_PROBABILITY: f64 = 1e-6;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub cost_usd: f64,
    pub latency_ms: f64,
    pub posterior: Beta,
    pub p_mean: f64,
    /// Decayed observation count of the arm itself.
    pub evidence: f64,
    pub tokens_in: f64,
    pub tokens_out: f64,
}

/// List-price dollar cost of a step from token counts (`cached_share` of the input is cached).
#[inline]
pub fn step_cost(spec: &ModelSpec, tokens_in: f64, cached_share: f64, tokens_out: f64) -> f64 {
    let cached = tokens_in * cached_share;
    (tokens_in - cached) * spec.usd_in + cached * spec.usd_cached_in + tokens_out * spec.usd_out
}

/// Catalog latency for a number of output tokens.
#[inline]
pub fn prior_latency_ms(spec: &ModelSpec, tokens_out: f64) -> f64 {
    spec.latency_first_token_ms + tokens_out * spec.ms_per_output_token
}

/// The estimate of one candidate; `lv` is `[model, (model, role), arm]` (see prior.rs).
///
/// E[tokens] = the request's estimate × pooled E[actual/estimated]; E[cost] = list price of those
/// tokens × pooled E[billed/list-price]; latency blends the catalog's latency for E[output
/// tokens] with the arm's observed mean.
#[inline]
pub fn estimate(
    spec: &ModelSpec,
    root: &RatioRoot,
    lv: [&Hot; 3],
    scale: f64,
    req: &Request,
) -> Estimate {
    let posterior = success_posterior(spec.prior, lv, scale);
    let ratio = |est: u64, which| {
        if est == 0 {
            0.0
        } else {
            est as f64 * pooled_ratio(root, lv, which, scale)
        }
    };
    let tokens_in = ratio(req.est_input_tokens, RATIO_IN);
    let tokens_out = ratio(req.est_output_tokens, RATIO_OUT);
    let list = step_cost(spec, tokens_in, req.cached_share(), tokens_out);
    let cost_usd = if list > 0.0 {
        list * pooled_ratio(root, lv, RATIO_COST, scale)
    } else {
        0.0
    };
    let arm = lv[2];
    let prior = prior_latency_ms(spec, tokens_out);
    let w = arm.latency_w * scale;
    let latency_ms = if w > 0.0 {
        (LATENCY_PRIOR_WEIGHT * prior + w * arm.latency_mean) / (LATENCY_PRIOR_WEIGHT + w)
    } else {
        prior
    };
    Estimate {
        cost_usd,
        latency_ms,
        posterior,
        p_mean: posterior.mean(),
        evidence: (arm.successes + arm.failures) * scale,
        tokens_in,
        tokens_out,
    }
}

/// The typical (median) cost of a step estimated at (`est_in`, `cached_share`, `est_out`) tokens:
/// list price of the estimates scaled by each pooled ratio's median exp(E[ln r]). Zero without
/// estimates or list price.
pub fn typical_cost(
    spec: &ModelSpec,
    root: &RatioRoot,
    lv: [&Hot; 3],
    scale: f64,
    (est_in, cached_share, est_out): (u64, f64, u64),
) -> f64 {
    let median = |which| pooled_log_ratio(root, lv, which, scale).exp();
    let tokens_in = est_in as f64 * median(RATIO_IN);
    let tokens_out = est_out as f64 * median(RATIO_OUT);
    step_cost(spec, tokens_in, cached_share, tokens_out) * median(RATIO_COST)
}

/// E[cost] of a retry, or `None` before any retry taught an effort: the step's typical first-try
/// cost × E[e^effort], the effort (ln billed over typical first-try cost, see `Router::report`)
/// pooled over `rlv` = [retries of every model (the hardness arm), the model's retries, its
/// retries in the class]. Retries after long failures run long: a model that stops early on a
/// hard task is cheaper there than its first-try price says, one that keeps going dearer.
pub fn retry_cost(
    spec: &ModelSpec,
    root: &RatioRoot,
    lv: [&Hot; 3],
    rlv: [&Hot; 3],
    scale: f64,
    req: &Request,
) -> Option<f64> {
    if rlv.iter().all(|h| h.ratios[RATIO_COST].w <= 0.0) {
        return None;
    }
    let est = (
        req.est_input_tokens,
        req.cached_share(),
        req.est_output_tokens,
    );
    Some(
        typical_cost(spec, root, lv, scale, est)
            * pooled_ratio(&RatioRoot::NONE, rlv, RATIO_COST, scale),
    )
}

/// Expected cost per success given a success probability `p` (the mean or a Thompson draw).
#[inline]
pub fn score(est: &Estimate, p: f64, time_value_usd_per_s: f64) -> f64 {
    (est.cost_usd + time_value_usd_per_s * est.latency_ms / 1000.0) / p.max(MIN_SUCCESS_PROBABILITY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::role::Role;

    const E3: [&Hot; 3] = [&Hot::EMPTY, &Hot::EMPTY, &Hot::EMPTY];

    fn spec() -> ModelSpec {
        let json = r#"{"models":[{"id":"m","price_in":3,"price_cached_in":0.3,"price_out":15,
            "prior_success":0.5,"prior_strength":2,"latency_first_token_ms":500,"output_tokens_per_s":100}]}"#;
        Catalog::parse(json, |_| 0).unwrap().models[0].clone()
    }

    #[test]
    fn table_of_prior_costs() {
        let sp = spec();
        // (in, cached, out, expected USD)
        let cases = [
            (1_000_000, 0, 0, 3.0),
            (1_000_000, 1_000_000, 0, 0.3),
            (1_000_000, 500_000, 0, 1.65),
            (0, 0, 1_000_000, 15.0),
            (
                10_000,
                8_000,
                1_000,
                (2_000.0 * 3.0 + 8_000.0 * 0.3 + 1_000.0 * 15.0) / 1e6,
            ),
        ];
        for (i, c, o, want) in cases {
            let mut r = Request::new(Role::from_number(2).unwrap(), "t", 0.0);
            r.est_input_tokens = i;
            r.est_cached_input_tokens = c;
            r.est_output_tokens = o;
            let e = estimate(&sp, &RatioRoot::NONE, E3, 1.0, &r);
            assert!(
                (e.cost_usd - want).abs() < 1e-9,
                "{i} {c} {o}: {}",
                e.cost_usd
            );
        }
    }

    #[test]
    fn score_adds_time_value_and_divides_by_success() {
        let sp = spec();
        let mut r = Request::new(Role::from_number(2).unwrap(), "t", 0.0);
        r.est_input_tokens = 0;
        r.est_output_tokens = 1_000;
        let e = estimate(&sp, &RatioRoot::NONE, E3, 1.0, &r);
        assert!((e.latency_ms - 10_500.0).abs() < 1e-9);
        let s = score(&e, 0.5, 1.0);
        assert!((s - (0.015 + 10.5) / 0.5).abs() < 1e-9, "{s}");
    }

    #[test]
    fn learned_ratios_scale_the_request_estimate() {
        let sp = spec();
        let mut arm = Hot::EMPTY;
        arm.ratios[RATIO_OUT] = crate::arm::RatioHot {
            w: 1_000.0,
            ln_mean: 2f64.ln(),
            mean: 2.0,
        };
        for est_out in [100, 10_000] {
            let mut r = Request::new(Role::from_number(2).unwrap(), "t", 0.0);
            r.est_output_tokens = est_out;
            let base = estimate(&sp, &RatioRoot::NONE, E3, 1.0, &r);
            let e = estimate(
                &sp,
                &RatioRoot::NONE,
                [&Hot::EMPTY, &Hot::EMPTY, &arm],
                1.0,
                &r,
            );
            let want = 2.0 * est_out as f64;
            assert!(
                (e.tokens_out - want).abs() / want < 0.01,
                "{}",
                e.tokens_out
            );
            assert!(e.cost_usd > base.cost_usd);
        }
    }
}
