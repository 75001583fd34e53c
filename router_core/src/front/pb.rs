//! The messages of `modelyard.v1.Router/Route`, written as prost structs by hand (field numbers
//! and types as in proto/modelyard/v1/router.proto, types.proto and store.proto) so the front needs no protoc
//! at build time. The Python tests call the front with the generated Python classes, so a field
//! out of step with the .proto fails them.

#![allow(clippy::derive_partial_eq_without_eq)]

#[derive(Clone, PartialEq, prost::Message)]
pub struct TaskProfile {
    #[prost(int32, tag = "1")]
    pub role: i32,
    #[prost(string, tag = "2")]
    pub task_class: String,
    #[prost(int64, tag = "3")]
    pub est_input_tokens: i64,
    #[prost(int64, tag = "4")]
    pub est_output_tokens: i64,
    #[prost(int64, tag = "5")]
    pub est_cached_input_tokens: i64,
    #[prost(string, repeated, tag = "6")]
    pub required_capabilities: Vec<String>,
    #[prost(int64, tag = "7")]
    pub min_context_window: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Constraints {
    #[prost(double, optional, tag = "1")]
    pub max_cost_usd: Option<f64>,
    #[prost(double, optional, tag = "2")]
    pub max_latency_ms: Option<f64>,
    #[prost(double, optional, tag = "3")]
    pub min_success_probability: Option<f64>,
    #[prost(string, repeated, tag = "4")]
    pub allowed_models: Vec<String>,
    #[prost(string, repeated, tag = "5")]
    pub denied_models: Vec<String>,
    #[prost(string, repeated, tag = "6")]
    pub required_provenance: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RouteRequest {
    #[prost(string, tag = "1")]
    pub request_id: String,
    #[prost(string, tag = "2")]
    pub job_id: String,
    #[prost(message, optional, tag = "3")]
    pub task: Option<TaskProfile>,
    #[prost(message, optional, tag = "4")]
    pub constraints: Option<Constraints>,
    #[prost(int32, tag = "5")]
    pub attempt: i32,
    #[prost(string, repeated, tag = "6")]
    pub failed_models: Vec<String>,
    #[prost(bool, tag = "7")]
    pub explain: bool,
    #[prost(bool, optional, tag = "8")]
    pub explore: Option<bool>,
    #[prost(int64, tag = "9")]
    pub context_tokens: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelRef {
    #[prost(string, tag = "1")]
    pub model_id: String,
    #[prost(string, tag = "2")]
    pub provider: String,
    #[prost(string, tag = "3")]
    pub endpoint: String,
    #[prost(string, tag = "4")]
    pub upstream_model: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Expectation {
    #[prost(double, tag = "1")]
    pub cost_usd: f64,
    #[prost(double, tag = "2")]
    pub success_probability: f64,
    #[prost(double, tag = "3")]
    pub latency_ms: f64,
    #[prost(double, tag = "4")]
    pub cost_per_success_usd: f64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CandidateScore {
    #[prost(string, tag = "1")]
    pub model_id: String,
    #[prost(bool, tag = "2")]
    pub excluded: bool,
    #[prost(string, tag = "3")]
    pub constraint: String,
    #[prost(string, tag = "4")]
    pub detail: String,
    #[prost(message, optional, tag = "5")]
    pub expected: Option<Expectation>,
    #[prost(double, tag = "6")]
    pub sampled_success_probability: f64,
    #[prost(double, tag = "7")]
    pub evidence: f64,
    #[prost(double, tag = "8")]
    pub score: f64,
    #[prost(double, tag = "9")]
    pub success_low: f64,
    #[prost(double, tag = "10")]
    pub success_high: f64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BudgetWindow {
    #[prost(string, tag = "1")]
    pub scope: String,
    #[prost(string, tag = "2")]
    pub subject: String,
    #[prost(int32, tag = "3")]
    pub window: i32,
    #[prost(double, tag = "4")]
    pub hard_limit_usd: f64,
    #[prost(double, tag = "5")]
    pub soft_limit_usd: f64,
    #[prost(double, tag = "6")]
    pub spent_usd: f64,
    #[prost(double, tag = "7")]
    pub reserved_usd: f64,
    #[prost(double, tag = "8")]
    pub remaining_usd: f64,
    #[prost(string, tag = "9")]
    pub resets_at: String,
    #[prost(bool, tag = "10")]
    pub has_limit: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RouteDecision {
    #[prost(string, tag = "1")]
    pub decision_id: String,
    #[prost(message, optional, tag = "2")]
    pub model: Option<ModelRef>,
    #[prost(message, repeated, tag = "3")]
    pub fallbacks: Vec<ModelRef>,
    #[prost(message, optional, tag = "4")]
    pub expected: Option<Expectation>,
    #[prost(double, tag = "5")]
    pub reserved_usd: f64,
    #[prost(double, tag = "6")]
    pub budget_remaining_usd: f64,
    #[prost(bool, tag = "7")]
    pub exploration: bool,
    #[prost(string, tag = "8")]
    pub reason: String,
    #[prost(message, repeated, tag = "9")]
    pub candidates: Vec<CandidateScore>,
    #[prost(bool, tag = "10")]
    pub sticky: bool,
    #[prost(bool, tag = "11")]
    pub replayed: bool,
    #[prost(int64, tag = "12")]
    pub reservation_expires_at: i64,
    #[prost(message, repeated, tag = "13")]
    pub budgets: Vec<BudgetWindow>,
}

/// store.proto `StoredDecision`: what the stores keep of a decision. `decision` holds the encoded
/// `RouteDecision` (bytes and an embedded message are the same on the wire), so the answer is
/// encoded once and stored as sent.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StoredDecision {
    #[prost(bytes = "vec", tag = "1")]
    pub decision: Vec<u8>,
    #[prost(int64, tag = "2")]
    pub est_input_tokens: i64,
    #[prost(int64, tag = "3")]
    pub est_output_tokens: i64,
    #[prost(int64, tag = "4")]
    pub est_cached_input_tokens: i64,
    #[prost(int32, tag = "5")]
    pub attempt: i32,
    #[prost(double, optional, tag = "6")]
    pub failed_effort: Option<f64>,
}
