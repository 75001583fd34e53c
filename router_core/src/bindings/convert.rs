//! Python arguments → Rust values, and `CoreError` → the Python `CoreError(ValueError)`.

use pyo3::prelude::*;

use crate::{CoreError, Request, Role};

/// The Python exception must be named `CoreError`, which the Rust type already is; a module
/// keeps the two names apart.
mod exc {
    pyo3::create_exception!(
        _core,
        CoreError,
        pyo3::exceptions::PyValueError,
        "Invalid catalog, argument or snapshot; the message names the field."
    );
}
pub use exc::CoreError as PyCoreError;

pub fn err(e: CoreError) -> PyErr {
    PyCoreError::new_err(e.to_string())
}

/// One step's routing request, built once from keyword arguments (validated by `route` /
/// `estimate`, which both take it): `Core.route(Request(...))`.
#[pyclass(frozen, module = "modelyard._core", name = "Request")]
pub struct PyRequest(pub Request);

#[pymethods]
impl PyRequest {
    #[new]
    #[pyo3(signature = (*, role, task_class, now, est_input_tokens=0, est_output_tokens=0,
        est_cached_input_tokens=0, capabilities=vec![], min_context=0, allowed=vec![], denied=vec![],
        provenance=vec![], max_cost_usd=None, max_latency_ms=None, min_success=None,
        budget_cap_usd=None, attempt=1, failed_models=vec![], job_failures=0, failed_effort=None, sticky_model=None,
        context_tokens=0, time_value_usd_per_s=0.0, explore=true, seed=0, explain=false))]
    #[allow(clippy::fn_params_excessive_bools, clippy::too_many_arguments)]
    fn new(
        role: i64,
        task_class: String,
        now: f64,
        est_input_tokens: u64,
        est_output_tokens: u64,
        est_cached_input_tokens: u64,
        capabilities: Vec<String>,
        min_context: u64,
        allowed: Vec<String>,
        denied: Vec<String>,
        provenance: Vec<String>,
        max_cost_usd: Option<f64>,
        max_latency_ms: Option<f64>,
        min_success: Option<f64>,
        budget_cap_usd: Option<f64>,
        attempt: u32,
        failed_models: Vec<String>,
        job_failures: u32,
        failed_effort: Option<f64>,
        sticky_model: Option<String>,
        context_tokens: u64,
        time_value_usd_per_s: f64,
        explore: bool,
        seed: u64,
        explain: bool,
    ) -> PyResult<Self> {
        Ok(Self(Request {
            role: Role::from_number(role).map_err(err)?,
            task_class,
            est_input_tokens,
            est_output_tokens,
            est_cached_input_tokens,
            capabilities,
            min_context,
            allowed,
            denied,
            provenance,
            max_cost_usd,
            max_latency_ms,
            min_success,
            budget_cap_usd,
            attempt,
            failed_models,
            job_failures,
            failed_effort,
            sticky_model,
            context_tokens,
            time_value_usd_per_s,
            explore,
            seed,
            now,
            explain,
        }))
    }
}
