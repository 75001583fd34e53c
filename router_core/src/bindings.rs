//! Python bindings (`modelyard._core`): convert arguments to Rust types while holding the GIL,
//! release the GIL for the work, convert results back. `CoreError` becomes the Python
//! `CoreError(ValueError)` here and nowhere else.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::{ArmStats, Candidate, Core, CoreError, Decision, Event, Report, Request, Role, Status};

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
use exc::CoreError as PyCoreError;

fn err(e: CoreError) -> PyErr {
    PyCoreError::new_err(e.to_string())
}

/// Thread-safe router core. All state lives behind locks inside, so one instance serves many
/// Python threads; every method releases the GIL while it works.
#[pyclass(frozen, module = "modelyard._core", name = "Core")]
struct PyCore {
    inner: Core,
}

#[pyclass(frozen, get_all, module = "modelyard._core", name = "Candidate")]
#[derive(Clone)]
struct PyCandidate {
    model: String,
    excluded: bool,
    constraint: String,
    detail: String,
    cost_usd: f64,
    success_probability: f64,
    sampled_success: f64,
    latency_ms: f64,
    score: f64,
    evidence: f64,
}

#[pyclass(frozen, get_all, module = "modelyard._core", name = "Decision")]
struct PyDecision {
    model: Option<String>,
    fallbacks: Vec<String>,
    expected_cost_usd: f64,
    success_probability: f64,
    latency_ms: f64,
    cost_per_success_usd: f64,
    score: f64,
    exploration: bool,
    sticky: bool,
    reason: String,
    candidates: Vec<PyCandidate>,
}

#[pyclass(frozen, get_all, module = "modelyard._core", name = "ArmStats")]
struct PyArmStats {
    model: String,
    role: u8,
    task_class: String,
    n: f64,
    successes: f64,
    failures: f64,
    mean_success: f64,
    success_low: f64,
    success_high: f64,
    mean_cost_usd: f64,
    mean_latency_ms: f64,
    p90_latency_ms: f64,
}

#[pyclass(frozen, get_all, module = "modelyard._core", name = "Event")]
struct PyEvent {
    kind: String,
    model: String,
    provider: String,
    role: u8,
    task_class: String,
    detail: String,
    at: f64,
}

#[pymethods]
impl PyDecision {
    fn __repr__(&self) -> String {
        format!(
            "Decision(model={:?}, fallbacks={:?}, score={}, exploration={}, sticky={}, reason={:?})",
            self.model, self.fallbacks, self.score, self.exploration, self.sticky, self.reason
        )
    }
}

#[pymethods]
impl PyCandidate {
    fn __repr__(&self) -> String {
        format!(
            "Candidate(model={:?}, constraint={:?}, score={})",
            self.model, self.constraint, self.score
        )
    }
}

#[pymethods]
impl PyEvent {
    fn __repr__(&self) -> String {
        format!(
            "Event(kind={:?}, model={:?}, provider={:?}, detail={:?})",
            self.kind, self.model, self.provider, self.detail
        )
    }
}

impl From<Candidate> for PyCandidate {
    fn from(c: Candidate) -> Self {
        Self {
            model: c.model,
            excluded: c.excluded,
            constraint: c.constraint.to_owned(),
            detail: c.detail,
            cost_usd: c.cost_usd,
            success_probability: c.success_probability,
            sampled_success: c.sampled_success,
            latency_ms: c.latency_ms,
            score: c.score,
            evidence: c.evidence,
        }
    }
}

impl From<Decision> for PyDecision {
    fn from(d: Decision) -> Self {
        Self {
            model: d.model,
            fallbacks: d.fallbacks,
            expected_cost_usd: d.expected_cost_usd,
            success_probability: d.success_probability,
            latency_ms: d.latency_ms,
            cost_per_success_usd: d.cost_per_success_usd,
            score: d.score,
            exploration: d.exploration,
            sticky: d.sticky,
            reason: d.reason,
            candidates: d.candidates.into_iter().map(PyCandidate::from).collect(),
        }
    }
}

impl From<ArmStats> for PyArmStats {
    fn from(a: ArmStats) -> Self {
        Self {
            model: a.model,
            role: a.role,
            task_class: a.task_class,
            n: a.n,
            successes: a.successes,
            failures: a.failures,
            mean_success: a.mean_success,
            success_low: a.success_low,
            success_high: a.success_high,
            mean_cost_usd: a.mean_cost_usd,
            mean_latency_ms: a.mean_latency_ms,
            p90_latency_ms: a.p90_latency_ms,
        }
    }
}

impl From<Event> for PyEvent {
    fn from(e: Event) -> Self {
        Self {
            kind: e.kind.to_owned(),
            model: e.model,
            provider: e.provider,
            role: e.role,
            task_class: e.task_class,
            detail: e.detail,
            at: e.at,
        }
    }
}

/// Builds a Request from the keyword arguments shared by `route` and `estimate`.
#[allow(clippy::fn_params_excessive_bools)]
fn request(
    role: i64,
    task_class: String,
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
    sticky_model: Option<String>,
    context_tokens: u64,
    time_value_usd_per_s: f64,
    explore: bool,
    seed: u64,
    now: f64,
    explain: bool,
) -> PyResult<Request> {
    Ok(Request {
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
        sticky_model,
        context_tokens,
        time_value_usd_per_s,
        explore,
        seed,
        now,
        explain,
    })
}

#[pymethods]
impl PyCore {
    #[new]
    fn new(py: Python<'_>, catalog_json: &str) -> PyResult<Self> {
        let json = catalog_json.to_owned();
        let inner = py.allow_threads(|| Core::new(&json)).map_err(err)?;
        Ok(Self { inner })
    }

    fn set_catalog(&self, py: Python<'_>, catalog_json: &str) -> PyResult<()> {
        let json = catalog_json.to_owned();
        py.allow_threads(|| self.inner.set_catalog(&json))
            .map_err(err)
    }

    #[pyo3(signature = (*, role, task_class, now, est_input_tokens=0, est_output_tokens=0,
        est_cached_input_tokens=0, capabilities=vec![], min_context=0, allowed=vec![], denied=vec![],
        provenance=vec![], max_cost_usd=None, max_latency_ms=None, min_success=None,
        budget_cap_usd=None, attempt=1, failed_models=vec![], job_failures=0, sticky_model=None,
        context_tokens=0, time_value_usd_per_s=0.0, explore=true, seed=0, explain=false))]
    #[allow(clippy::fn_params_excessive_bools)]
    fn route(
        &self,
        py: Python<'_>,
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
        sticky_model: Option<String>,
        context_tokens: u64,
        time_value_usd_per_s: f64,
        explore: bool,
        seed: u64,
        explain: bool,
    ) -> PyResult<PyDecision> {
        let req = request(
            role,
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
            sticky_model,
            context_tokens,
            time_value_usd_per_s,
            explore,
            seed,
            now,
            explain,
        )?;
        let d = py.allow_threads(|| self.inner.route(&req)).map_err(err)?;
        Ok(d.into())
    }

    #[pyo3(signature = (*, role, task_class, now, est_input_tokens=0, est_output_tokens=0,
        est_cached_input_tokens=0, capabilities=vec![], min_context=0, allowed=vec![], denied=vec![],
        provenance=vec![], max_cost_usd=None, max_latency_ms=None, min_success=None,
        budget_cap_usd=None, attempt=1, failed_models=vec![], job_failures=0, sticky_model=None,
        context_tokens=0, time_value_usd_per_s=0.0, explore=false, seed=0, explain=true))]
    #[allow(clippy::fn_params_excessive_bools)]
    fn estimate(
        &self,
        py: Python<'_>,
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
        sticky_model: Option<String>,
        context_tokens: u64,
        time_value_usd_per_s: f64,
        explore: bool,
        seed: u64,
        explain: bool,
    ) -> PyResult<Vec<PyCandidate>> {
        let req = request(
            role,
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
            sticky_model,
            context_tokens,
            time_value_usd_per_s,
            explore,
            seed,
            now,
            explain,
        )?;
        let c = py
            .allow_threads(|| self.inner.estimate(&req))
            .map_err(err)?;
        Ok(c.into_iter().map(PyCandidate::from).collect())
    }

    #[pyo3(signature = (*, model, role, task_class, status, now, input_tokens=0,
        cached_input_tokens=0, output_tokens=0, latency_ms=0.0, weight=1.0))]
    fn report(
        &self,
        py: Python<'_>,
        model: String,
        role: i64,
        task_class: String,
        status: i64,
        now: f64,
        input_tokens: u64,
        cached_input_tokens: u64,
        output_tokens: u64,
        latency_ms: f64,
        weight: f64,
    ) -> PyResult<()> {
        let r = Report {
            model,
            role: Role::from_number(role).map_err(err)?,
            task_class,
            status: Status::from_number(status).map_err(err)?,
            input_tokens,
            cached_input_tokens,
            output_tokens,
            latency_ms,
            now,
            weight,
        };
        py.allow_threads(|| self.inner.report(&r)).map_err(err)
    }

    #[pyo3(signature = (*, steps, success, now))]
    fn complete_job(
        &self,
        py: Python<'_>,
        steps: Vec<(String, i64, String)>,
        success: bool,
        now: f64,
    ) -> PyResult<()> {
        let steps = steps
            .into_iter()
            .map(|(m, r, c)| Ok((m, Role::from_number(r).map_err(err)?, c)))
            .collect::<PyResult<Vec<_>>>()?;
        py.allow_threads(|| self.inner.complete_job(&steps, success, now))
            .map_err(err)
    }

    fn arms(&self, py: Python<'_>) -> Vec<PyArmStats> {
        py.allow_threads(|| self.inner.arms())
            .into_iter()
            .map(PyArmStats::from)
            .collect()
    }

    fn drain_events(&self) -> Vec<PyEvent> {
        self.inner
            .drain_events()
            .into_iter()
            .map(PyEvent::from)
            .collect()
    }

    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = py.allow_threads(|| self.inner.snapshot()).map_err(err)?;
        Ok(PyBytes::new(py, &bytes))
    }

    fn restore(&self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        py.allow_threads(|| self.inner.restore(data)).map_err(err)
    }

    fn merge(&self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        py.allow_threads(|| self.inner.merge(data)).map_err(err)
    }

    fn arm_count(&self) -> usize {
        self.inner.arm_count()
    }
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyCore>()?;
    m.add_class::<PyDecision>()?;
    m.add_class::<PyCandidate>()?;
    m.add_class::<PyArmStats>()?;
    m.add_class::<PyEvent>()?;
    m.add("CoreError", m.py().get_type::<PyCoreError>())?;
    Ok(())
}
