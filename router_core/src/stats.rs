//! Discounted sufficient statistics. Every field is a plain weighted sum, so statistics from
//! many replicas (rebased to the same epoch) add up exactly.

use serde::{Deserialize, Serialize};

/// Log-normal sufficient statistics: Σw, Σw·ln x, Σw·ln² x.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LogNormalSums {
    pub w: f64,
    pub wl: f64,
    pub wl2: f64,
}

impl LogNormalSums {
    pub fn add(&mut self, w: f64, x: f64) {
        // ln(0) is -inf; a zero-token step is treated as one token so the sums stay finite.
        let l = x.max(1.0).ln();
        self.w += w;
        self.wl += w * l;
        self.wl2 += w * l * l;
    }

    /// E[x] after shrinking toward `prior` with `k` pseudo-observations (`scale` decays the sums).
    /// The mean of ln x is shrunk; the variance only counts once there is evidence.
    pub fn shrunk_mean(&self, prior: f64, k: f64, scale: f64) -> f64 {
        let w = self.w * scale;
        if w <= 1e-12 {
            return prior;
        }
        let m_obs = self.wl / self.w;
        let var_obs = (self.wl2 / self.w - m_obs * m_obs).max(0.0);
        let mu = (k * prior.max(1.0).ln() + w * m_obs) / (k + w);
        let var = var_obs * w / (w + k);
        (mu + var / 2.0).exp()
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Sums {
    pub successes: f64,
    pub failures: f64,
    pub tokens_in: LogNormalSums,
    pub tokens_out: LogNormalSums,
    /// Plain Σw·tokens (input, cached input, output) for the leaderboard's mean cost.
    pub input_plain: f64,
    pub cached_plain: f64,
    pub output_plain: f64,
    pub latency: LatencySums,
}

impl Sums {
    pub fn scale(&mut self, f: f64) {
        self.successes *= f;
        self.failures *= f;
        self.tokens_in.scale(f);
        self.tokens_out.scale(f);
        self.input_plain *= f;
        self.cached_plain *= f;
        self.output_plain *= f;
        self.latency.scale(f);
    }

    pub fn merge(&mut self, o: &Self) {
        self.successes += o.successes;
        self.failures += o.failures;
        self.tokens_in.merge(&o.tokens_in);
        self.tokens_out.merge(&o.tokens_out);
        self.input_plain += o.input_plain;
        self.cached_plain += o.cached_plain;
        self.output_plain += o.output_plain;
        self.latency.merge(&o.latency);
    }

    pub fn is_finite(&self) -> bool {
        let fields = [
            self.successes,
            self.failures,
            self.tokens_in.w,
            self.tokens_in.wl,
            self.tokens_in.wl2,
            self.tokens_out.w,
            self.tokens_out.wl,
            self.tokens_out.wl2,
            self.input_plain,
            self.cached_plain,
            self.output_plain,
            self.latency.w,
            self.latency.wx,
        ];
        fields
            .iter()
            .chain(self.latency.hist.iter())
            .all(|v| v.is_finite() && *v >= -1e-9)
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
    fn lognormal_shrinks_from_prior_to_data() {
        let mut s = LogNormalSums::default();
        assert!((s.shrunk_mean(1000.0, 2.0, 1.0) - 1000.0).abs() < 1e-9);
        for _ in 0..200 {
            s.add(1.0, 100.0);
        }
        let m = s.shrunk_mean(1000.0, 2.0, 1.0);
        assert!((m - 100.0).abs() < 5.0, "{m}");
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
