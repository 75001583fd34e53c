//! The Python result classes: `Decision` (a lazy view of a Rust decision), `Candidate`,
//! `ArmStats`, `Event`.

use pyo3::prelude::*;

use crate::{ArmStats, Candidate, Decision, Event};

/// A routing decision. Names and the reason sentence are produced when read, so a caller that
/// only needs `model` pays for nothing else.
#[pyclass(frozen, module = "modelyard._core", name = "Decision")]
pub struct PyDecision(pub Decision);

#[pymethods]
impl PyDecision {
    #[getter]
    fn model(&self) -> Option<&str> {
        self.0.model()
    }
    #[getter]
    fn fallbacks(&self) -> Vec<&str> {
        self.0.fallbacks()
    }
    #[getter]
    fn expected_cost_usd(&self) -> f64 {
        self.0.expected_cost_usd
    }
    #[getter]
    fn success_probability(&self) -> f64 {
        self.0.success_probability
    }
    #[getter]
    fn latency_ms(&self) -> f64 {
        self.0.latency_ms
    }
    #[getter]
    fn cost_per_success_usd(&self) -> f64 {
        self.0.cost_per_success_usd
    }
    #[getter]
    fn score(&self) -> f64 {
        self.0.score
    }
    #[getter]
    fn exploration(&self) -> bool {
        self.0.exploration
    }
    #[getter]
    fn sticky(&self) -> bool {
        self.0.sticky
    }
    #[getter]
    fn reason(&self) -> String {
        self.0.reason()
    }
    #[getter]
    fn candidates(&self) -> Vec<PyCandidate> {
        self.0
            .candidates
            .iter()
            .cloned()
            .map(PyCandidate::from)
            .collect()
    }

    fn __repr__(&self) -> String {
        format!(
            "Decision(model={:?}, fallbacks={:?}, score={}, exploration={}, sticky={}, reason={:?})",
            self.0.model(),
            self.0.fallbacks(),
            self.0.score,
            self.0.exploration,
            self.0.sticky,
            self.0.reason()
        )
    }
}

#[pyclass(frozen, get_all, module = "modelyard._core", name = "Candidate")]
#[derive(Clone)]
pub struct PyCandidate {
    model: String,
    excluded: bool,
    constraint: String,
    detail: String,
    cost_usd: f64,
    success_probability: f64,
    success_low: f64,
    success_high: f64,
    sampled_success: f64,
    latency_ms: f64,
    score: f64,
    evidence: f64,
}

#[pyclass(frozen, get_all, module = "modelyard._core", name = "ArmStats")]
pub struct PyArmStats {
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
pub struct PyEvent {
    kind: String,
    model: String,
    provider: String,
    role: u8,
    task_class: String,
    detail: String,
    at: f64,
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
            success_low: c.success_low,
            success_high: c.success_high,
            sampled_success: c.sampled_success,
            latency_ms: c.latency_ms,
            score: c.score,
            evidence: c.evidence,
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
