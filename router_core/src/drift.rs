//! Drift detection: a CUSUM test per arm of "the success rate moved by `margin` from the older
//! evidence's rate", beside a fast, count-windowed success estimate. When the CUSUM crosses
//! `z` (a log-likelihood ratio) and the window has moved too, the older evidence is shrunk
//! (the window's outcomes are kept whole) so the recent outcomes dominate, and one event is
//! emitted until the estimates agree again.
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
    /// CUSUM log-likelihood ratios for "the rate fell by `margin`" and "rose by `margin`".
    pub cusum_down: f64,
    pub cusum_up: f64,
    /// (successes, failures) since each CUSUM last left 0: the outcomes after the change point
    /// it estimates, which become the arm's recent evidence when it fires.
    pub run_down: (f64, f64),
    pub run_up: (f64, f64),
}

/// What the test found; `shrink` is the factor to apply to the arm's sums.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DriftFinding {
    pub old_rate: f64,
    pub old_n: f64,
    pub new_rate: f64,
    pub new_n: f64,
    pub shrink: f64,
    /// The window's (successes, failures), in report-weight units, kept whole by the shrink.
    pub recent: (f64, f64),
}

impl DriftFinding {
    pub fn describe(&self) -> String {
        format!(
            "success rate moved from {:.2} (evidence {:.1}) to {:.2} over the last ~{:.0} outcomes; \
             older evidence scaled by {:.3}",
            self.old_rate, self.old_n, self.new_rate, self.new_n, self.shrink
        )
    }
}

impl DriftState {
    /// Records one outcome of weight `w` and tests the recent window against the older evidence
    /// of the main estimate `(slow_s, slow_f)` (already decayed to now, and including this
    /// outcome; the window's own outcomes are taken out of it before the test).
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
        let (fs, ff) = (self.fast_successes, self.fast_failures);
        let n_fast = fs + ff;
        // The evidence before the window (the main sums include the window's outcomes).
        let (old_s, old_f) = ((slow_s - fs).max(0.0), (slow_f - ff).max(0.0));
        let n_old = old_s + old_f;
        // Laplace-smoothed rates keep the test defined at 0 or 1.
        let p_fast = (fs + 1.0) / (n_fast + 2.0);
        let p_old = (old_s + 1.0) / (n_old + 2.0);
        let diff = (p_fast - p_old).abs();
        if self.flagged {
            if diff < policy.margin / 2.0 {
                self.flagged = false;
            }
            self.cusum_down = 0.0;
            self.cusum_up = 0.0;
            return None;
        }
        // No baseline yet: nothing to drift from.
        if n_old < policy.window {
            self.cusum_down = 0.0;
            self.cusum_up = 0.0;
            return None;
        }
        // CUSUM of each outcome's log-likelihood ratio, "rate p_old ∓ margin" against "rate
        // p_old": it accumulates evidence of a shift outcome by outcome, so a clear shift is
        // found after a handful of outcomes and noise around p_old drains back to 0.
        let llr = |p1: f64| {
            let p1 = p1.clamp(0.02, 0.98);
            let p0 = p_old.clamp(0.02, 0.98);
            w * if success {
                (p1 / p0).ln()
            } else {
                ((1.0 - p1) / (1.0 - p0)).ln()
            }
        };
        let step = |c: &mut f64, run: &mut (f64, f64), l: f64| {
            if *c <= 0.0 {
                *run = (0.0, 0.0);
            }
            *c = (*c + l).max(0.0);
            if success {
                run.0 += w;
            } else {
                run.1 += w;
            }
        };
        step(
            &mut self.cusum_down,
            &mut self.run_down,
            llr(p_old - policy.margin),
        );
        step(
            &mut self.cusum_up,
            &mut self.run_up,
            llr(p_old + policy.margin),
        );
        // Only meaningful once the old estimate holds real evidence, and the window shows the
        // move too (so a run of bad luck inside the old rate's noise does not fire).
        let enough = n_fast >= policy.window / 2.0 && n_old >= policy.window;
        let cusum = self.cusum_down.max(self.cusum_up);
        if !enough || diff < policy.margin / 2.0 || cusum < policy.z {
            return None;
        }
        let run = if self.cusum_down >= self.cusum_up {
            self.run_down
        } else {
            self.run_up
        };
        self.cusum_down = 0.0;
        self.cusum_up = 0.0;
        let n_run = (run.0 + run.1).max(1.0);
        self.flagged = true;
        Some(DriftFinding {
            old_rate: p_old,
            old_n: n_old,
            new_rate: (run.0 + 1.0) / (n_run + 2.0),
            new_n: n_run,
            // Evidence before the change point is cut to `keep_old` × the run's; the run's own
            // outcomes are kept whole.
            shrink: (policy.keep_old * n_run / (slow_s + slow_f - n_run).max(1e-9)).min(1.0),
            recent: run,
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
                // Like the router: only falls forget evidence (and are counted here).
                if let Some(found) = st.observe(ok, 1.0, s, f, policy) {
                    if found.new_rate < found.old_rate {
                        s = found.shrink * s + (1.0 - found.shrink) * found.recent.0;
                        f = found.shrink * f + (1.0 - found.shrink) * found.recent.1;
                        hits.push(i);
                    }
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
            // 0.6 → 0.2 (the replay's drift): found within 12 outcomes of the change.
            (
                "fall to a third",
                [
                    (0..300).map(|i| (i % 5 < 3, 1)).collect::<Vec<_>>(),
                    vec![(false, 4), (true, 1), (false, 7)],
                ]
                .concat(),
                p,
                1,
            ),
            ("collapse disabled", vec![(true, 300), (false, 30)], off, 0),
            ("too little evidence", vec![(true, 5), (false, 5)], p, 0),
        ];
        for (name, runs, policy, want) in cases {
            assert_eq!(run(runs, policy).len(), *want, "{name}");
        }
    }
}
