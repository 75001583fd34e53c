//! A routing request (the step's profile) and its validation.

use crate::error::{non_negative, CoreError, Result};
use crate::role::Role;

/// Everything `route` and `estimate` are told about a step. Plain owned data so the bindings can
/// build it while holding the GIL and then release the GIL for the decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub role: Role,
    pub task_class: String,
    pub est_input_tokens: u64,
    pub est_output_tokens: u64,
    pub est_cached_input_tokens: u64,
    pub capabilities: Vec<String>,
    pub min_context: u64,
    pub allowed: Vec<String>,
    pub denied: Vec<String>,
    pub provenance: Vec<String>,
    pub max_cost_usd: Option<f64>,
    pub max_latency_ms: Option<f64>,
    pub min_success: Option<f64>,
    pub budget_cap_usd: Option<f64>,
    pub attempt: u32,
    pub failed_models: Vec<String>,
    pub job_failures: u32,
    /// Mean effort (ln of billed over typical cost, see `Router::report`) of this job's failed
    /// attempts of the role, when known: retries learn apart for high- and low-effort failures.
    pub failed_effort: Option<f64>,
    pub sticky_model: Option<String>,
    pub context_tokens: u64,
    pub time_value_usd_per_s: f64,
    pub explore: bool,
    pub seed: u64,
    pub now: f64,
    pub explain: bool,
}

impl Request {
    /// A request with neutral defaults, for tests and benches.
    pub fn new(role: Role, task_class: &str, now: f64) -> Self {
        Self {
            role,
            task_class: task_class.to_owned(),
            est_input_tokens: 10_000,
            est_output_tokens: 1_000,
            est_cached_input_tokens: 0,
            capabilities: Vec::new(),
            min_context: 0,
            allowed: Vec::new(),
            denied: Vec::new(),
            provenance: Vec::new(),
            max_cost_usd: None,
            max_latency_ms: None,
            min_success: None,
            budget_cap_usd: None,
            attempt: 1,
            failed_models: Vec::new(),
            job_failures: 0,
            failed_effort: None,
            sticky_model: None,
            context_tokens: 0,
            time_value_usd_per_s: 0.0,
            explore: false,
            seed: 0,
            now,
            explain: false,
        }
    }

    pub fn validate(&self) -> Result<()> {
        crate::error::finite("now", self.now)?;
        if let Some(e) = self.failed_effort {
            crate::error::finite("failed_effort", e)?;
        }
        non_negative("time_value_usd_per_s", self.time_value_usd_per_s)?;
        let limits = [
            ("max_cost_usd", self.max_cost_usd),
            ("max_latency_ms", self.max_latency_ms),
            ("budget_cap_usd", self.budget_cap_usd),
        ];
        for (name, v) in limits {
            if let Some(v) = v {
                non_negative(name, v)?;
            }
        }
        if let Some(m) = self.min_success {
            if !(0.0..=1.0).contains(&m) {
                return Err(CoreError::field(
                    "min_success",
                    format!("must be in [0, 1], got {m}"),
                ));
            }
        }
        if self.est_cached_input_tokens > self.est_input_tokens {
            let msg = format!(
                "must be ≤ est_input_tokens ({}), got {}",
                self.est_input_tokens, self.est_cached_input_tokens
            );
            return Err(CoreError::field("est_cached_input_tokens", msg));
        }
        Ok(())
    }

    /// The share of input expected to hit the provider's prompt cache.
    pub fn cached_share(&self) -> f64 {
        if self.est_input_tokens == 0 {
            0.0
        } else {
            self.est_cached_input_tokens as f64 / self.est_input_tokens as f64
        }
    }
}
