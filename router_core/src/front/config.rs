//! What the front needs of the running config, resolved by the Python service (`front.py`) from
//! the same `Runtime` the Python Route reads, and pushed whole at start and on every reload.

use std::collections::HashMap;

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Policy {
    pub max_cost_usd: Option<f64>,
    pub max_latency_ms: Option<f64>,
    pub min_success_probability: Option<f64>,
    #[serde(default)]
    pub allowed_models: Vec<String>,
    #[serde(default)]
    pub denied_models: Vec<String>,
    #[serde(default)]
    pub required_provenance: Vec<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct WindowLimit {
    pub soft_usd: f64,
    pub hard_usd: f64,
}

/// Limits by window name ("hour", "day", "month"); a window without one counts but never refuses.
pub type Limits = HashMap<String, WindowLimit>;

#[derive(Debug, Clone, Deserialize)]
pub struct Tenant {
    pub time_value_usd_per_s: f64,
    #[serde(default)]
    pub budgets: Limits,
    #[serde(default)]
    pub key_budgets: HashMap<String, Limits>,
    #[serde(default)]
    pub policy: Policy,
    /// Role number → the tenant policy narrowed by the role's own.
    #[serde(default)]
    pub role_policy: HashMap<String, Policy>,
}

impl Tenant {
    pub fn policy_for(&self, role: i32) -> &Policy {
        self.role_policy
            .get(&role.to_string())
            .unwrap_or(&self.policy)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Key {
    pub tenant: String,
    pub key_id: String,
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ModelInfo {
    pub provider: String,
    pub endpoint: String,
    pub upstream_model: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FrontConfig {
    /// Version label of the config, for logs.
    #[serde(default)]
    pub version: String,
    /// SHA-256 (hex) of each API key → who it is.
    pub keys: HashMap<String, Key>,
    pub tenants: HashMap<String, Tenant>,
    pub models: HashMap<String, ModelInfo>,
    pub explore: bool,
    pub seed: u64,
    pub per_tenant: bool,
    pub reservation_ttl_s: f64,
    /// (input, output, cached input) tokens of a step whose request estimates none.
    pub default_tokens: (i64, i64, i64),
    /// server.max_message_bytes: a larger Route is refused with RESOURCE_EXHAUSTED, as grpc does.
    pub max_message_bytes: usize,
    /// server.max_metadata_bytes: larger metadata is refused with RESOURCE_EXHAUSTED.
    pub max_metadata_bytes: usize,
    /// server.max_concurrent_rpcs: Routes in flight on the front beyond this are refused with
    /// RESOURCE_EXHAUSTED, as grpc.aio refuses calls past it (forwarded calls count there).
    pub max_concurrent_rpcs: usize,
}
