//! Discounted sufficient statistics. Every field is a plain weighted sum, so statistics from
//! many replicas (rebased to the same epoch) add up exactly.

use serde::{Deserialize, Serialize};

/// Sufficient statistics of a ratio r = actual / expected: Σw, Σw·ln r and Σw·r. The mean of
/// ln r gives the typical (median) ratio, which a step's effort is measured against; Σw·r / Σw
/// the mean ratio, which expected costs use. The mean is kept as such rather than derived from
/// log-normal moments as exp(μ + σ²/2) (snapshot versions ≤ 5 kept Σw·ln² r for that): agentic
/// step costs have a heavier right tail than a log-normal, and the log-normal mean put a model
/// that now and then runs very long 10-20 % below what it bills on average, enough to prefer it
/// (bench/README "Eleventh session").
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RatioSums {
    pub w: f64,
    pub wl: f64,
    pub wr: f64,
}

/// Ratios are clamped to [1/RATIO_CLAMP, RATIO_CLAMP] so one absurd report cannot dominate.
pub const RATIO_CLAMP: f64 = 1_000.0;

/// Variance cap of ln r in the log-normal mean that snapshot versions ≤ 5 implied (their
/// builds predicted exp(μ + min(σ², 4) / 2)); used only to convert them.
const LEGACY_VAR_CAP: f64 = 4.0;

impl RatioSums {
    /// Adds one observed ratio `actual / expected`; a non-positive side means "not reported".
    pub fn add_ratio(&mut self, w: f64, actual: f64, expected: f64) {
        if !(actual > 0.0 && expected > 0.0 && actual.is_finite() && expected.is_finite()) {
            return;
        }
        let r = (actual / expected).clamp(1.0 / RATIO_CLAMP, RATIO_CLAMP);
        self.w += w;
        self.wl += w * r.ln();
        self.wr += w * r;
    }

    /// (mean of ln r, mean of r); scale-invariant, so decayed sums give the same means.
    pub fn means(&self) -> (f64, f64) {
        if self.w <= 1e-12 {
            return (0.0, 0.0);
        }
        (self.wl / self.w, self.wr / self.w)
    }

    /// The sums a snapshot of version ≤ 5 held as (Σw, Σw·ln r, Σw·ln² r): Σw·r is what those
    /// builds predicted, w·exp(μ + min(σ², 4) / 2), exact when every ratio was the same. Also
    /// for differences (a delta): their moments are those of the arm's changes.
    pub fn from_log_moments(w: f64, wl: f64, wl2: f64) -> Self {
        if w.abs() <= 1e-12 {
            return Self::default();
        }
        let m = wl / w;
        let var = (wl2 / w - m * m).clamp(0.0, LEGACY_VAR_CAP);
        Self {
            w,
            wl,
            wr: w * (m + var / 2.0).exp(),
        }
    }

    fn scale(&mut self, f: f64) {
        self.w *= f;
        self.wl *= f;
        self.wr *= f;
    }

    fn merge(&mut self, o: &Self) {
        self.w += o.w;
        self.wl += o.wl;
        self.wr += o.wr;
    }
}

/// z of the normal distribution's 90th percentile.
const Z_P90: f64 = 1.281_551_565_545;

/// Latency: weighted mean, plus log-normal sufficient statistics (Σw·ln ms, Σw·ln² ms) for the
/// leaderboard's p90. Four plain sums (32 bytes), so merging stays exact addition; the 32-bucket
/// histogram of snapshot versions ≤ 4 cost 256 bytes per arm for a figure no decision reads
/// (`snapshot.rs` converts it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySums {
    pub w: f64,
    pub wx: f64,
    pub wl: f64,
    pub wl2: f64,
}

/// Latencies below this are recorded as this (ln of 0 is undefined; no model answers in 1 µs).
const LATENCY_FLOOR_MS: f64 = 1e-3;

impl LatencySums {
    pub fn add(&mut self, w: f64, ms: f64) {
        let l = ms.max(LATENCY_FLOOR_MS).ln();
        self.w += w;
        self.wx += w * ms;
        self.wl += w * l;
        self.wl2 += w * l * l;
    }

    pub fn mean(&self) -> Option<f64> {
        (self.w > 1e-12).then(|| self.wx / self.w)
    }

    /// 90th percentile of the log-normal fitted to the observations: exp(μ + z₀.₉·σ).
    pub fn p90(&self) -> Option<f64> {
        if self.w <= 1e-12 {
            return None;
        }
        let mu = self.wl / self.w;
        let sigma = (self.wl2 / self.w - mu * mu).max(0.0).sqrt();
        Some((mu + Z_P90 * sigma).exp())
    }

    fn scale(&mut self, f: f64) {
        self.w *= f;
        self.wx *= f;
        self.wl *= f;
        self.wl2 *= f;
    }

    fn merge(&mut self, o: &Self) {
        self.w += o.w;
        self.wx += o.wx;
        self.wl += o.wl;
        self.wl2 += o.wl2;
    }
}

/// Latency as snapshot versions 1-4 stored it: mean plus a 32-bucket histogram, bucket i holding
/// [10 ms·1.5^i, 10 ms·1.5^(i+1)) (the first and last also everything below and above).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyHistV4 {
    pub w: f64,
    pub wx: f64,
    pub hist: [f64; 32],
}

impl From<LatencyHistV4> for LatencySums {
    /// Each bucket's weight counts at the bucket's geometric midpoint.
    fn from(v: LatencyHistV4) -> Self {
        let (mut wl, mut wl2) = (0.0, 0.0);
        for (i, &h) in v.hist.iter().enumerate() {
            let l = 10f64.ln() + (i as f64 + 0.5) * 1.5f64.ln();
            wl += h * l;
            wl2 += h * l * l;
        }
        Self {
            w: v.w,
            wx: v.wx,
            wl,
            wl2,
        }
    }
}

/// All learned sums of one arm, weighted by exp(λ·(t − t0)).
///
/// Token and cost knowledge is kept as log-ratios (see score.rs): `ratio_in` / `ratio_out` are
/// actual / estimated tokens of the step, `cost_ratio` is billed cost / list-price cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Sums {
    pub successes: f64,
    pub failures: f64,
    pub ratio_in: RatioSums,
    pub ratio_out: RatioSums,
    pub cost_ratio: RatioSums,
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

    /// `self − before`, field by field: what one change did to an arm (may be negative: a drift
    /// forgets evidence).
    #[must_use]
    pub fn minus(&self, before: &Self) -> Self {
        let mut d = *before;
        d.scale(-1.0);
        d.merge(self);
        d
    }

    /// Clears what a merged difference left below zero (another replica forgot evidence this
    /// one had not all seen yet): a weight that is not positive takes its moments with it.
    pub fn clamp_non_negative(&mut self) {
        for v in [
            &mut self.successes,
            &mut self.failures,
            &mut self.tokens_w,
            &mut self.input_plain,
            &mut self.cached_plain,
            &mut self.output_plain,
            &mut self.cost_w,
            &mut self.cost_plain,
        ] {
            *v = v.max(0.0);
        }
        for r in [
            &mut self.ratio_in,
            &mut self.ratio_out,
            &mut self.cost_ratio,
        ] {
            if r.w <= 0.0 || r.wr < 0.0 {
                *r = RatioSums::default();
            }
        }
        let l = &mut self.latency;
        if l.w <= 0.0 || l.wx < 0.0 || l.wl2 < 0.0 {
            *l = LatencySums::default();
        }
    }

    /// Every field, in a fixed order (see `SIGNED`).
    fn fields(&self) -> [f64; 21] {
        let (i, o, c, l) = (self.ratio_in, self.ratio_out, self.cost_ratio, self.latency);
        [
            self.successes,
            self.failures,
            i.w,
            i.wl,
            i.wr,
            o.w,
            o.wl,
            o.wr,
            c.w,
            c.wl,
            c.wr,
            self.tokens_w,
            self.input_plain,
            self.cached_plain,
            self.output_plain,
            self.cost_w,
            self.cost_plain,
            l.w,
            l.wx,
            l.wl,
            l.wl2,
        ]
    }

    /// Every field finite (a difference: any sign).
    pub fn is_all_finite(&self) -> bool {
        self.fields().iter().all(|v| v.is_finite())
    }

    /// Every field finite; weights and plain sums ≥ 0 (Σw·ln r may be negative).
    pub fn is_finite(&self) -> bool {
        self.fields()
            .iter()
            .enumerate()
            .all(|(k, v)| v.is_finite() && (SIGNED.contains(&k) || *v >= -1e-9))
    }
}

/// Positions in `Sums::fields` of the sums of logarithms, which may be negative.
const SIGNED: [usize; 4] = [3, 6, 9, 19];

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
    fn latency_p90_is_the_log_normal_fit() {
        let mut l = LatencySums::default();
        for ms in [100.0, 200.0, 400.0, 800.0, 1600.0] {
            l.add(1.0, ms);
        }
        assert!((l.mean().unwrap() - 620.0).abs() < 1e-9);
        // ln ms is uniform over ln 100 + {0..4}·ln 2: μ = ln 400, σ = √2·ln 2.
        let want = (400f64.ln() + Z_P90 * 2f64.sqrt() * 2f64.ln()).exp();
        assert!(
            (l.p90().unwrap() / want - 1.0).abs() < 1e-9,
            "{:?}",
            l.p90()
        );
        assert_eq!(LatencySums::default().p90(), None);
        let mut one = LatencySums::default();
        one.add(0.5, 1234.0);
        assert!((one.p90().unwrap() / 1234.0 - 1.0).abs() < 1e-6);
    }

    #[test]
    fn version_4_histograms_become_log_moments_at_bucket_midpoints() {
        let mut hist = [0.0; 32];
        hist[4] = 3.0; // [50.6, 75.9) ms
        let l = LatencySums::from(LatencyHistV4 {
            w: 3.0,
            wx: 180.0,
            hist,
        });
        let mid = 10.0 * 1.5f64.powf(4.5);
        assert!((l.p90().unwrap() / mid - 1.0).abs() < 1e-6);
        assert_eq!(l.mean(), Some(60.0));
    }

    #[test]
    fn ratios_keep_log_and_plain_means_and_skip_unreported_sides() {
        let mut s = RatioSums::default();
        s.add_ratio(1.0, 0.0, 100.0);
        s.add_ratio(1.0, 100.0, 0.0);
        assert_eq!(s, RatioSums::default());
        s.add_ratio(1.0, 200.0, 100.0);
        s.add_ratio(1.0, 800.0, 100.0);
        // ln-mean: the median of a log-symmetric pair (4); mean: what the two billed on average (5).
        let (m, r) = s.means();
        assert!((m - 4f64.ln()).abs() < 1e-12 && (r - 5.0).abs() < 1e-12);
        s.scale(0.25);
        assert_eq!(s.means(), (m, r));
    }

    #[test]
    fn legacy_log_moments_convert_to_what_older_builds_predicted() {
        // Two ratios 2 and 8: μ = ln 4, σ² = ln² 2, so exp(μ + σ²/2) ≈ 5.08 per unit weight.
        let (l2, l8) = (2f64.ln(), 8f64.ln());
        let s = RatioSums::from_log_moments(2.0, l2 + l8, l2 * l2 + l8 * l8);
        let want = 4.0 * (2f64.ln().powi(2) / 2.0).exp();
        assert!((s.wr / 2.0 - want).abs() < 1e-12, "{s:?}");
        assert!((s.wl - (l2 + l8)).abs() < 1e-12);
        // One ratio (σ² = 0): exact; a variance past the cap counts as the cap; nothing stays nothing.
        assert!((RatioSums::from_log_moments(3.0, 3.0 * l2, 3.0 * l2 * l2).wr - 6.0).abs() < 1e-12);
        let wide = RatioSums::from_log_moments(1.0, 0.0, 100.0);
        assert!((wide.wr - 2f64.exp()).abs() < 1e-12);
        assert_eq!(
            RatioSums::from_log_moments(0.0, 0.0, 0.0),
            RatioSums::default()
        );
        // A difference (negative weight) converts by its own moments.
        let neg = RatioSums::from_log_moments(-1.0, -l2, -l2 * l2);
        assert!((neg.wr + 2.0).abs() < 1e-12, "{neg:?}");
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
