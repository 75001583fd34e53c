//! Plain result types handed to the caller: decisions, candidates, leaderboard rows, events.

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
    pub sampled_success: f64,
    pub latency_ms: f64,
    pub score: f64,
    pub evidence: f64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decision {
    /// `None` when no model satisfies the constraints.
    pub model: Option<String>,
    pub fallbacks: Vec<String>,
    pub expected_cost_usd: f64,
    pub success_probability: f64,
    pub latency_ms: f64,
    pub cost_per_success_usd: f64,
    pub score: f64,
    pub exploration: bool,
    pub sticky: bool,
    pub reason: String,
    pub candidates: Vec<Candidate>,
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
