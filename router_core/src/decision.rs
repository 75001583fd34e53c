//! Plain result types handed to the caller: decisions, candidates, leaderboard rows, events.

use std::sync::Arc;

/// One model's place in a decision (built only when explaining or when nothing is eligible).
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub model: String,
    pub excluded: bool,
    /// Constraint name, "" when eligible.
    pub constraint: &'static str,
    pub detail: String,
    pub cost_usd: f64,
    pub success_probability: f64,
    /// 90 % interval of P(success) (normal approximation of the posterior).
    pub success_low: f64,
    pub success_high: f64,
    pub sampled_success: f64,
    pub latency_ms: f64,
    pub score: f64,
    pub evidence: f64,
}

/// Why the pick was made, kept as numbers and catalog positions; the sentence is rendered only
/// when asked for (`Decision::reason`), since most callers never read it.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// A finished sentence (used when nothing is eligible).
    Text(String),
    /// The sticky model was kept although `best` scored lower.
    Sticky {
        pick: u32,
        best: u32,
        saving: f64,
        cache_loss: f64,
        context_tokens: u64,
    },
    /// A Thompson draw made `pick` beat the greedy pick.
    Explore {
        pick: u32,
        greedy: u32,
        sampled: f64,
        score: f64,
    },
    /// `pick` has the lowest expected cost per success.
    Lowest {
        pick: u32,
        score: f64,
        eligible: usize,
        excluded: usize,
        also_sticky: bool,
    },
}

/// A routing decision. Models are catalog positions into `ids` (shared with the catalog, so a
/// decision allocates no names); `model()`, `fallbacks()` and `reason()` give the strings.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub ids: Arc<[String]>,
    /// `None` when no model satisfies the constraints.
    pub pick: Option<u32>,
    /// Remaining eligible models by ascending score (the optimal try-until-success order).
    pub fallback_idx: Vec<u32>,
    pub expected_cost_usd: f64,
    pub success_probability: f64,
    pub latency_ms: f64,
    pub cost_per_success_usd: f64,
    pub score: f64,
    pub exploration: bool,
    pub sticky: bool,
    pub reason: Reason,
    pub candidates: Vec<Candidate>,
}

impl Decision {
    /// A decision with no pick.
    pub fn none(ids: Arc<[String]>, reason: String, candidates: Vec<Candidate>) -> Self {
        Self {
            ids,
            pick: None,
            fallback_idx: Vec::new(),
            expected_cost_usd: 0.0,
            success_probability: 0.0,
            latency_ms: 0.0,
            cost_per_success_usd: 0.0,
            score: 0.0,
            exploration: false,
            sticky: false,
            reason: Reason::Text(reason),
            candidates,
        }
    }

    pub fn model(&self) -> Option<&str> {
        self.pick.map(|i| self.ids[i as usize].as_str())
    }

    pub fn fallbacks(&self) -> Vec<&str> {
        self.fallback_idx
            .iter()
            .map(|&i| self.ids[i as usize].as_str())
            .collect()
    }

    /// The one-sentence explanation of the pick.
    pub fn reason(&self) -> String {
        crate::explain::render(&self.reason, &self.ids)
    }
}

/// A leaderboard row for one (model, role, task_class) arm, decayed to the latest time seen.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmStats {
    pub model: String,
    pub role: u8,
    pub task_class: String,
    pub n: f64,
    pub successes: f64,
    pub failures: f64,
    pub mean_success: f64,
    pub success_low: f64,
    pub success_high: f64,
    pub mean_cost_usd: f64,
    pub mean_latency_ms: f64,
    pub p90_latency_ms: f64,
}

/// Something the operator should know: drift, or a breaker changing state.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// "drift", "breaker_open", "breaker_half_open" or "breaker_closed".
    pub kind: &'static str,
    /// The model; "" for a provider breaker.
    pub model: String,
    /// The provider for a provider breaker, else "".
    pub provider: String,
    /// Role number; 0 when the event is not about one arm.
    pub role: u8,
    pub task_class: String,
    pub detail: String,
    pub at: f64,
}
