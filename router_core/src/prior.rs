//! Hierarchical shrinkage of P(success): catalog prior → model → (model, role) → arm.
//!
//! Each level's prior is Beta(m·s, (1−m)·s) where m is the parent's posterior mean and s is the
//! parent's posterior strength (pseudo-count α+β) capped at `POOL_CAP`. The cap matters twice:
//! a parent's sums include the child's own outcomes (they are counted at every level), and a
//! model that is excellent on average must not drown an arm's few but specific outcomes: after
//! about `POOL_CAP` own observations an arm's data weighs as much as everything it borrowed.

use crate::arm::Arm;
use crate::catalog::ModelSpec;

/// Strength (in observations) a pooled parent can lend to its child.
pub const POOL_CAP: f64 = 8.0;

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

    /// The posterior after adding decayed successes and failures of `arm` to this prior.
    fn update(self, arm: Option<&Arm>, scale: f64) -> Self {
        match arm {
            Some(a) => Self {
                alpha: self.alpha + a.sums.successes.max(0.0) * scale,
                beta: self.beta + a.sums.failures.max(0.0) * scale,
            },
            None => self,
        }
    }

    /// This posterior turned into a child's prior (capped strength, same mean).
    fn as_parent(self) -> Self {
        let s = self.strength().min(POOL_CAP);
        let m = self.mean();
        Self {
            alpha: m * s,
            beta: (1.0 - m) * s,
        }
    }
}

/// The catalog's operator prior for a model.
pub fn catalog_prior(spec: &ModelSpec) -> Beta {
    Beta {
        alpha: spec.prior_success * spec.prior_strength,
        beta: (1.0 - spec.prior_success) * spec.prior_strength,
    }
}

/// Posterior of an arm given its pooled parents; `scale` decays stored sums to now.
pub fn success_posterior(
    spec: &ModelSpec,
    model_level: Option<&Arm>,
    role_level: Option<&Arm>,
    arm: Option<&Arm>,
    scale: f64,
) -> Beta {
    let model = catalog_prior(spec).update(model_level, scale);
    let role = model.as_parent().update(role_level, scale);
    role.as_parent().update(arm, scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    fn spec() -> ModelSpec {
        let json = r#"{"models":[{"id":"m","price_in":1,"price_out":2,
            "prior_success":0.7,"prior_strength":4}]}"#;
        Catalog::parse(json, |_| 0).unwrap().models[0].clone()
    }

    fn arm(s: f64, f: f64) -> Arm {
        let mut a = Arm::default();
        a.sums.successes = s;
        a.sums.failures = f;
        a
    }

    #[test]
    fn table_of_pooling_cases() {
        let sp = spec();
        // (name, model level, role level, arm, expected mean range)
        let cases = [
            ("catalog prior only", None, None, None, (0.699, 0.701)),
            (
                "model evidence flows down",
                Some(arm(100.0, 0.0)),
                None,
                None,
                (0.95, 1.0),
            ),
            (
                "arm evidence dominates",
                Some(arm(100.0, 0.0)),
                None,
                Some(arm(0.0, 100.0)),
                (0.0, 0.1),
            ),
            (
                "few arm outcomes are shrunk",
                None,
                None,
                Some(arm(0.0, 2.0)),
                (0.4, 0.65),
            ),
            (
                "role level in between",
                None,
                Some(arm(0.0, 50.0)),
                None,
                (0.0, 0.2),
            ),
        ];
        for (name, m, r, a, (lo, hi)) in cases {
            let p = success_posterior(&sp, m.as_ref(), r.as_ref(), a.as_ref(), 1.0).mean();
            assert!(p >= lo && p <= hi, "{name}: {p}");
        }
    }

    #[test]
    fn decay_scale_weakens_evidence() {
        let sp = spec();
        let a = arm(0.0, 20.0);
        let fresh = success_posterior(&sp, None, None, Some(&a), 1.0).mean();
        let stale = success_posterior(&sp, None, None, Some(&a), 0.01).mean();
        assert!(
            fresh < stale && (stale - 0.7).abs() < 0.05,
            "{fresh} {stale}"
        );
    }
}
