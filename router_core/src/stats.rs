//! Discounted sufficient statistics. Every field is a plain weighted sum, so statistics from
//! many replicas (rebased to the same epoch) add up exactly.

use serde::{Deserialize, Serialize};

/// Log-normal sufficient statistics of a ratio r: Σw, Σw·ln r, Σw·ln² r.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LogNormalSums {
    pub w: f64,
    pub wl: f64,
    pub wl2: f64,
}

/// Ratios are clamped to [1/RATIO_CLAMP, RATIO_CLAMP] so one absurd report cannot dominate.
pub const RATIO_CLAMP: f64 = 1_000.0;

impl LogNormalSums {
    /// Adds one observed ratio `actual / expected`; a non-positive side means "not reported".
    pub fn add_ratio(&mut self, w: f64, actual: f64, expected: f64) {
        if !(actual > 0.0 && expected > 0.0 && actual.is_finite() && expected.is_finite()) {
            return;
        }
        let l = (actual / expected)
            .clamp(1.0 / RATIO_CLAMP, RATIO_CLAMP)
            .ln();
        self.w += w;
        self.wl += w * l;
        self.wl2 += w * l * l;
    }

    /// (mean, variance) of ln r; scale-invariant, so decayed sums give the same moments.
    pub fn moments(&self) -> (f64, f64) {
        if self.w <= 1e-12 {
            return (0.0, 0.0);
        }
        let m = self.wl / self.w;
        (m, (self.wl2 / self.w - m * m).max(0.0))
    }

    fn scale(&mut self, f: f64) {
        self.w *= f;
        self.wl *= f;
        self.wl2 *= f;
    }

    fn merge(&mut self, o: &Self) {
        self.w += o.w;
        self.wl += o.wl;
        self.wl2 += o.wl2;
    }

    fn fields(&self) -> [f64; 3] {
        [self.w, self.wl, self.wl2]
    }
}

/// Fixed log-spaced latency buckets: bucket i holds [10 ms·1.5^i, 10 ms·1.5^(i+1)); the first and
/// last buckets also catch everything below and above. Fixed edges make merging exact addition.
pub const LATENCY_BUCKETS: usize = 32;
const BUCKET_BASE_MS: f64 = 10.0;
const BUCKET_RATIO: f64 = 1.5;

/// Latency: weighted mean plus a histogram sketch for quantiles.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySums {
    pub w: f64,
    pub wx: f64,
    pub hist: [f64; LATENCY_BUCKETS],
}

impl LatencySums {
    pub fn add(&mut self, w: f64, ms: f64) {
        self.w += w;
        self.wx += w * ms;
        self.hist[bucket(ms)] += w;
    }

    pub fn mean(&self) -> Option<f64> {
        (self.w > 1e-12).then(|| self.wx / self.w)
    }

    /// Quantile q in [0, 1], interpolated geometrically inside the bucket.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total: f64 = self.hist.iter().sum();
        if total <= 1e-12 {
            return None;
        }
        let target = q.clamp(0.0, 1.0) * total;
        let mut acc = 0.0;
        for (i, &h) in self.hist.iter().enumerate() {
            if h > 0.0 && acc + h >= target {
                let frac = ((target - acc) / h).clamp(0.0, 1.0);
                let lo = BUCKET_BASE_MS * BUCKET_RATIO.powi(i as i32);
                return Some(lo * BUCKET_RATIO.powf(frac));
            }
            acc += h;
        }
        Some(BUCKET_BASE_MS * BUCKET_RATIO.powi(LATENCY_BUCKETS as i32))
    }

    fn scale(&mut self, f: f64) {
        self.w *= f;
        self.wx *= f;
        self.hist.iter_mut().for_each(|h| *h *= f);
    }

    fn merge(&mut self, o: &Self) {
        self.w += o.w;
        self.wx += o.wx;
        self.hist
            .iter_mut()
            .zip(o.hist.iter())
            .for_each(|(a, b)| *a += b);
    }
}

fn bucket(ms: f64) -> usize {
    if ms <= BUCKET_BASE_MS {
        return 0;
    }
    let i = (ms / BUCKET_BASE_MS).ln() / BUCKET_RATIO.ln();
    (i as usize).min(LATENCY_BUCKETS - 1)
}

/// All learned sums of one arm, weighted by exp(λ·(t − t0)).
///
/// Token and cost knowledge is kept as log-ratios (see score.rs): `ratio_in` / `ratio_out` are
/// actual / estimated tokens of the step, `cost_ratio` is billed cost / list-price cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Sums {
    pub successes: f64,
    pub failures: f64,
    pub ratio_in: LogNormalSums,
    pub ratio_out: LogNormalSums,
    pub cost_ratio: LogNormalSums,
    /// Σw of reports that carried token counts, and the plain Σw·tokens (input, cached input,
    /// output) for the leaderboard's mean cost.
    pub tokens_w: f64,
    pub input_plain: f64,
    pub cached_plain: f64,
    pub output_plain: f64,
    /// Σw of reports that carried a billed cost, and Σw·cost_usd.
    pub cost_w: f64,
    pub cost_plain: f64,
    pub latency: LatencySums,
}

impl Sums {
    pub fn scale(&mut self, f: f64) {
        self.successes *= f;
        self.failures *= f;
        self.ratio_in.scale(f);
        self.ratio_out.scale(f);
        self.cost_ratio.scale(f);
        self.tokens_w *= f;
        self.input_plain *= f;
        self.cached_plain *= f;
        self.output_plain *= f;
        self.cost_w *= f;
        self.cost_plain *= f;
        self.latency.scale(f);
    }

    /// Forgets old outcome evidence after a drift: every sum is scaled by `f`, except that the
    /// recent successes and failures (`recent`, in stored units, capped at what is there) are
    /// kept whole, so the arm's mean moves to the recent window at once: s' = f·s + (1 − f)·recent.
    pub fn forget_old(&mut self, f: f64, recent: (f64, f64)) {
        let (rs, rf) = (
            recent.0.clamp(0.0, self.successes),
            recent.1.clamp(0.0, self.failures),
        );
        self.scale(f);
        self.successes += (1.0 - f) * rs;
        self.failures += (1.0 - f) * rf;
    }

    pub fn merge(&mut self, o: &Self) {
        self.successes += o.successes;
        self.failures += o.failures;
        self.ratio_in.merge(&o.ratio_in);
        self.ratio_out.merge(&o.ratio_out);
        self.cost_ratio.merge(&o.cost_ratio);
        self.tokens_w += o.tokens_w;
        self.input_plain += o.input_plain;
        self.cached_plain += o.cached_plain;
        self.output_plain += o.output_plain;
        self.cost_w += o.cost_w;
        self.cost_plain += o.cost_plain;
        self.latency.merge(&o.latency);
    }

    /// Every field finite; weights and plain sums ≥ 0 (Σw·ln r may be negative).
    pub fn is_finite(&self) -> bool {
        let non_negative = [
            self.successes,
            self.failures,
            self.ratio_in.w,
            self.ratio_in.wl2,
            self.ratio_out.w,
            self.ratio_out.wl2,
            self.cost_ratio.w,
            self.cost_ratio.wl2,
            self.tokens_w,
            self.input_plain,
            self.cached_plain,
            self.output_plain,
            self.cost_w,
            self.cost_plain,
            self.latency.w,
            self.latency.wx,
        ];
        non_negative
            .iter()
            .chain(self.latency.hist.iter())
            .all(|v| v.is_finite() && *v >= -1e-9)
            && [self.ratio_in, self.ratio_out, self.cost_ratio]
                .iter()
                .all(|r| r.fields().iter().all(|v| v.is_finite()))
    }
}

/// The shared rebase schedule: epochs start at multiples of the half-life, so every replica with
/// the same catalog picks the same t0 and weights grow at most ×2 before the next rebase.
pub fn epoch_start(now: f64, half_life_s: f64) -> f64 {
    (now / half_life_s).floor() * half_life_s
}

#[cfg(test)]
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use super::*;

    #[test]
    fn latency_quantiles_follow_the_data() {
        let mut l = LatencySums::default();
        for ms in [100.0, 200.0, 400.0, 800.0, 1600.0] {
            l.add(1.0, ms);
        }
        assert!((l.mean().unwrap() - 620.0).abs() < 1e-9);
        let p50 = l.quantile(0.5).unwrap();
        assert!((200.0..800.0).contains(&p50), "{p50}");
    }

    #[test]
    fn ratios_are_log_moments_and_skip_unreported_sides() {
        let mut s = LogNormalSums::default();
        s.add_ratio(1.0, 0.0, 100.0);
        s.add_ratio(1.0, 100.0, 0.0);
        assert_eq!(s, LogNormalSums::default());
        s.add_ratio(1.0, 200.0, 100.0);
        s.add_ratio(1.0, 800.0, 100.0);
        let (m, v) = s.moments();
        assert!((m - 4f64.ln()).abs() < 1e-12 && (v - 2f64.ln().powi(2)).abs() < 1e-12);
        s.scale(0.25);
        assert!((s.moments().0 - m).abs() < 1e-12);
    }

    #[test]
    fn scaling_then_merging_is_linear() {
        let mut a = Sums::default();
        a.successes = 2.0;
        a.latency.add(1.0, 50.0);
        let mut b = a;
        b.scale(0.5);
        a.merge(&b);
        assert!((a.successes - 3.0).abs() < 1e-12);
        assert!((a.latency.w - 1.5).abs() < 1e-12);
    }
}
