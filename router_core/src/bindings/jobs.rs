//! `modelyard._core.JobTracker`: the per-job routing memory (crate::jobs), shared with the front.

use std::sync::Arc;

use pyo3::prelude::*;

use crate::jobs::{JobContext, JobTracker};

#[pyclass(frozen, module = "modelyard._core", name = "JobTracker")]
pub struct PyJobTracker {
    pub(crate) inner: Arc<JobTracker>,
}

#[pymethods]
impl PyJobTracker {
    #[new]
    #[pyo3(signature = (capacity=100_000))]
    fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(JobTracker::new(capacity)),
        }
    }

    /// (model to stay on, failures of this role so far in the job, their mean effort or None).
    fn context(&self, tenant: &str, job_id: &str, role: i64) -> JobContext {
        self.inner.context(tenant, job_id, role)
    }

    /// Whether this replica has seen an outcome of the job since it started (or forgot it).
    fn knows(&self, tenant: &str, job_id: &str) -> bool {
        self.inner.knows(tenant, job_id)
    }

    #[pyo3(signature = (tenant, job_id, role, model, status, effort=None))]
    fn observe(
        &self,
        tenant: &str,
        job_id: &str,
        role: i64,
        model: &str,
        status: i64,
        effort: Option<f64>,
    ) {
        self.inner
            .observe(tenant, job_id, role, model, status, effort);
    }

    fn forget(&self, tenant: &str, job_id: &str) {
        self.inner.forget(tenant, job_id);
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }
}
