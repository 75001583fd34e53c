//! Estimates of one candidate for one step, and the score: expected cost per success.
//!
//! ```text
//! score = (E[cost] + time_value_usd_per_s · E[latency_s]) / P(success)      (lower is better)
//! ```
//!
//! The same index orders the fallbacks: for independent attempts tried until one succeeds, the
//! expected total cost Σ_i c_i·Π_{j<i}(1−p_j) is minimised by sorting by c_i / p_i ascending (an
//! exchange argument: swapping adjacent i, j helps iff c_j/p_j < c_i/p_i).

use crate::arm::Arm;
use crate::catalog::ModelSpec;
use crate::prior::{success_posterior, Beta};
use crate::request::Request;

/// Pseudo-observations the request's own token estimate is worth against observed tokens.
pub const TOKEN_PRIOR_WEIGHT: f64 = 2.0;
/// Pseudo-observations the catalog's latency estimate is worth against observed latencies.
pub const LATENCY_PRIOR_WEIGHT: f64 = 2.0;
/// Floor on P(success) so a hopeless model gets a huge but finite score.
pub const MIN_SUCCESS_PROBABILITY: f64 = 1e-6;

/// The learned arms behind one candidate: pooled model level, (model, role) level, the arm.
#[derive(Clone, Copy, Default)]
pub struct Levels<'a> {
    pub model: Option<&'a Arm>,
    pub role: Option<&'a Arm>,
    pub arm: Option<&'a Arm>,
}

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

/// Dollar cost of a step from token counts and per-million prices.
pub fn step_cost(spec: &ModelSpec, tokens_in: f64, cached_share: f64, tokens_out: f64) -> f64 {
    let cached = tokens_in * cached_share;
    ((tokens_in - cached) * spec.price_in
        + cached * spec.price_cached_in
        + tokens_out * spec.price_out)
        / 1e6
}

/// Catalog latency for a number of output tokens.
pub fn prior_latency_ms(spec: &ModelSpec, tokens_out: f64) -> f64 {
    spec.latency_first_token_ms + tokens_out / spec.output_tokens_per_s * 1000.0
}

pub fn estimate(spec: &ModelSpec, lv: Levels<'_>, scale: f64, req: &Request) -> Estimate {
    let posterior = success_posterior(spec, lv.model, lv.role, lv.arm, scale);
    let est_in = req.est_input_tokens as f64;
    let est_out = req.est_output_tokens as f64;
    let (tokens_in, tokens_out, latency_ms, evidence) = match lv.arm {
        None => (est_in, est_out, prior_latency_ms(spec, est_out), 0.0),
        Some(a) => {
            let s = &a.sums;
            let t_in = if est_in > 0.0 {
                s.tokens_in.shrunk_mean(est_in, TOKEN_PRIOR_WEIGHT, scale)
            } else {
                0.0
            };
            let t_out = s.tokens_out.shrunk_mean(est_out, TOKEN_PRIOR_WEIGHT, scale);
            let prior = prior_latency_ms(spec, t_out);
            let w = s.latency.w * scale;
            let lat = s.latency.mean().map_or(prior, |m| {
                (LATENCY_PRIOR_WEIGHT * prior + w * m) / (LATENCY_PRIOR_WEIGHT + w)
            });
            (t_in, t_out, lat, (s.successes + s.failures) * scale)
        }
    };
    Estimate {
        cost_usd: step_cost(spec, tokens_in, req.cached_share(), tokens_out),
        latency_ms,
        posterior,
        p_mean: posterior.mean(),
        evidence,
        tokens_in,
        tokens_out,
    }
}

/// Expected cost per success given a success probability `p` (the mean or a Thompson draw).
pub fn score(est: &Estimate, p: f64, time_value_usd_per_s: f64) -> f64 {
    (est.cost_usd + time_value_usd_per_s * est.latency_ms / 1000.0) / p.max(MIN_SUCCESS_PROBABILITY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::role::Role;

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
            let e = estimate(&sp, Levels::default(), 1.0, &r);
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
        let e = estimate(&sp, Levels::default(), 1.0, &r);
        assert!((e.latency_ms - 10_500.0).abs() < 1e-9);
        let s = score(&e, 0.5, 1.0);
        assert!((s - (0.015 + 10.5) / 0.5).abs() < 1e-9, "{s}");
    }

    #[test]
    fn observed_tokens_replace_the_estimate() {
        let sp = spec();
        let mut arm = Arm::default();
        for _ in 0..100 {
            arm.sums.tokens_out.add(1.0, 100.0);
        }
        let r = Request::new(Role::from_number(2).unwrap(), "t", 0.0);
        let lv = Levels {
            arm: Some(&arm),
            ..Levels::default()
        };
        let e = estimate(&sp, lv, 1.0, &r);
        assert!(e.tokens_out < 120.0, "{}", e.tokens_out);
    }
}
