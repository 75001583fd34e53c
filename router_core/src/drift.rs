//! Drift detection: a fast, count-windowed success estimate beside the arm's main (time-decayed)
//! one. When they disagree by a margin with enough evidence, the old evidence is shrunk so the
//! recent outcomes dominate, and one event is emitted until the estimates agree again.
//!
//! The fast estimate forgets per observation (an exponential window of ~`window` outcomes), so it
//! is not a time-weighted sum and cannot be merged across replicas; like the breaker it is
//! per-process state and is left out of snapshots.

use crate::catalog::DriftPolicy;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DriftState {
    pub fast_successes: f64,
    pub fast_failures: f64,
    /// Set when drift was reported; cleared once the estimates agree again, so one shift gives
    /// one event rather than one per outcome.
    pub flagged: bool,
}

/// What the test found; `shrink` is the factor to apply to the arm's sums.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DriftFinding {
    pub old_rate: f64,
    pub old_n: f64,
    pub new_rate: f64,
    pub new_n: f64,
    pub shrink: f64,
}

impl DriftFinding {
    pub fn describe(&self) -> String {
        format!(
            "success rate moved from {:.2} (evidence {:.1}) to {:.2} over the last ~{:.0} outcomes; \
             old evidence scaled by {:.3}",
            self.old_rate, self.old_n, self.new_rate, self.new_n, self.shrink
        )
    }
}

impl DriftState {
    /// Records one outcome of weight `w` and tests it against the main estimate `(slow_s,
    /// slow_f)` (already decayed to now, and including this outcome).
    pub fn observe(
        &mut self,
        success: bool,
        w: f64,
        slow_s: f64,
        slow_f: f64,
        policy: &DriftPolicy,
    ) -> Option<DriftFinding> {
        let keep = (1.0 - 1.0 / policy.window).powf(w);
        self.fast_successes = self.fast_successes * keep + if success { w } else { 0.0 };
        self.fast_failures = self.fast_failures * keep + if success { 0.0 } else { w };
        if !policy.enabled {
            return None;
        }
        let n_fast = self.fast_successes + self.fast_failures;
        let n_slow = slow_s + slow_f;
        // Laplace-smoothed rates keep the test defined at 0 or 1.
        let p_fast = (self.fast_successes + 1.0) / (n_fast + 2.0);
        let p_slow = (slow_s + 1.0) / (n_slow + 2.0);
        let diff = (p_fast - p_slow).abs();
        if self.flagged {
            if diff < policy.margin / 2.0 {
                self.flagged = false;
            }
            return None;
        }
        // Two-proportion z-test; only meaningful once both sides hold real evidence and the old
        // estimate carries clearly more than the window.
        let enough = n_fast >= policy.window / 2.0 && n_slow >= 2.0 * n_fast;
        if !enough || diff < policy.margin {
            return None;
        }
        let pooled = (p_fast * n_fast + p_slow * n_slow) / (n_fast + n_slow);
        let se = (pooled * (1.0 - pooled) * (1.0 / n_fast + 1.0 / n_slow))
            .sqrt()
            .max(1e-9);
        if diff / se < policy.z {
            return None;
        }
        self.flagged = true;
        Some(DriftFinding {
            old_rate: p_slow,
            old_n: n_slow,
            new_rate: p_fast,
            new_n: n_fast,
            shrink: (n_fast / n_slow).min(1.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(outcomes: &[(bool, usize)], policy: &DriftPolicy) -> Vec<usize> {
        let (mut s, mut f) = (0.0, 0.0);
        let mut st = DriftState::default();
        let mut hits = vec![];
        let mut i = 0;
        for &(ok, n) in outcomes {
            for _ in 0..n {
                if ok {
                    s += 1.0;
                } else {
                    f += 1.0;
                }
                if let Some(found) = st.observe(ok, 1.0, s, f, policy) {
                    s *= found.shrink;
                    f *= found.shrink;
                    hits.push(i);
                }
                i += 1;
            }
        }
        hits
    }

    #[test]
    #[allow(clippy::type_complexity)]
    fn table_of_drift_cases() {
        let p = DriftPolicy::default();
        let off = DriftPolicy {
            enabled: false,
            ..p
        };
        // (name, outcome runs, policy, expected number of events)
        let cases: &[(&str, Vec<(bool, usize)>, DriftPolicy, usize)] = &[
            ("stable", vec![(true, 300)], p, 0),
            (
                "noisy but stable",
                (0..100).map(|i| (i % 5 != 0, 3)).collect(),
                p,
                0,
            ),
            ("collapse", vec![(true, 300), (false, 30)], p, 1),
            ("collapse disabled", vec![(true, 300), (false, 30)], off, 0),
            ("too little evidence", vec![(true, 5), (false, 5)], p, 0),
        ];
        for (name, runs, policy, want) in cases {
            assert_eq!(run(runs, policy).len(), *want, "{name}");
        }
    }
}
