//! Python bindings (`modelyard._core`): convert arguments to Rust types while holding the GIL,
//! release the GIL for the work, convert results back. `CoreError` becomes the Python
//! `CoreError(ValueError)` here and nowhere else.

use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

mod convert;
#[cfg(feature = "front")]
mod front;
mod jobs;
mod types;

use convert::{err, PyCoreError, PyRequest};
use types::{PyArmStats, PyCandidate, PyDecision, PyEvent};

use crate::{Core, Learn, Report, Role, Status};

/// Thread-safe router core. All state lives behind locks inside, so one instance serves many
/// Python threads; every method releases the GIL while it works.
#[pyclass(frozen, module = "modelyard._core", name = "Core")]
pub(crate) struct PyCore {
    /// Shared with the Rust front, which routes on the same core.
    pub(crate) inner: std::sync::Arc<Core>,
}

#[pymethods]
impl PyCore {
    #[new]
    fn new(py: Python<'_>, catalog_json: &str) -> PyResult<Self> {
        let json = catalog_json.to_owned();
        let inner = py.allow_threads(|| Core::new(&json)).map_err(err)?;
        Ok(Self {
            inner: std::sync::Arc::new(inner),
        })
    }

    fn set_catalog(&self, py: Python<'_>, catalog_json: &str) -> PyResult<()> {
        let json = catalog_json.to_owned();
        py.allow_threads(|| self.inner.set_catalog(&json))
            .map_err(err)
    }

    /// Decides one step (a half-open model's pick consumes its breaker probe).
    fn route(&self, py: Python<'_>, request: &PyRequest) -> PyResult<PyDecision> {
        let req = &request.0;
        let d = py.allow_threads(|| self.inner.route(req)).map_err(err)?;
        Ok(PyDecision(d))
    }

    /// Every model's candidate row for `request` (explained; consumes no probe).
    fn estimate(&self, py: Python<'_>, request: &PyRequest) -> PyResult<Vec<PyCandidate>> {
        let req = &request.0;
        let c = py.allow_threads(|| self.inner.estimate(req)).map_err(err)?;
        Ok(c.into_iter().map(PyCandidate::from).collect())
    }

    #[pyo3(signature = (*, model, role, task_class, status, now, input_tokens=0,
        cached_input_tokens=0, output_tokens=0, latency_ms=0.0, weight=1.0, est_input_tokens=0,
        est_output_tokens=0, est_cached_input_tokens=0, cost_usd=None, attempt=1,
        failed_effort=None, learn="all"))]
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
        est_input_tokens: u64,
        est_output_tokens: u64,
        est_cached_input_tokens: u64,
        cost_usd: Option<f64>,
        attempt: u32,
        failed_effort: Option<f64>,
        learn: &str,
    ) -> PyResult<Option<f64>> {
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
            est_input_tokens,
            est_output_tokens,
            est_cached_input_tokens,
            cost_usd,
            attempt: attempt.max(1),
            failed_effort,
            learn: Learn::parse(learn).map_err(err)?,
        };
        py.allow_threads(|| self.inner.report(&r)).map_err(err)
    }

    /// The step's effort as `report` would return it now, learning nothing (see `Core::effort`).
    #[pyo3(signature = (*, model, role, task_class, status, now, input_tokens=0,
        cached_input_tokens=0, output_tokens=0, est_input_tokens=0, est_output_tokens=0,
        est_cached_input_tokens=0, cost_usd=None))]
    fn effort(
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
        est_input_tokens: u64,
        est_output_tokens: u64,
        est_cached_input_tokens: u64,
        cost_usd: Option<f64>,
    ) -> PyResult<Option<f64>> {
        let r = Report {
            input_tokens,
            cached_input_tokens,
            output_tokens,
            est_input_tokens,
            est_output_tokens,
            est_cached_input_tokens,
            cost_usd,
            ..Report::new(
                &model,
                Role::from_number(role).map_err(err)?,
                &task_class,
                Status::from_number(status).map_err(err)?,
                now,
            )
        };
        Ok(py.allow_threads(|| self.inner.effort(&r)))
    }

    #[pyo3(signature = (*, steps, success, now))]
    fn complete_job(
        &self,
        py: Python<'_>,
        steps: Vec<StepArg>,
        success: bool,
        now: f64,
    ) -> PyResult<()> {
        let steps = steps
            .into_iter()
            .map(|s| {
                let (m, r, c, a) = match s {
                    StepArg::WithAttempt(t) => t,
                    StepArg::Plain((m, r, c)) => (m, r, c, 1),
                };
                Ok((m, Role::from_number(r).map_err(err)?, c, a.max(1)))
            })
            .collect::<PyResult<Vec<_>>>()?;
        py.allow_threads(|| self.inner.complete_job_attempts(&steps, success, now))
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

    /// Encoded straight into the bytes object, without the GIL (nothing else can see the object
    /// before it is returned): a snapshot of a million arms is 170 MB, and a copy from a Rust
    /// buffer would hold it twice. The length is taken first; if the state gained arms before
    /// the encoding took its lock, it is taken again.
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        for _ in 0..3 {
            let len = py.allow_threads(|| self.inner.snapshot_len());
            let mut written = false;
            let bytes = PyBytes::new_with(py, len, |buf| {
                written = py
                    .allow_threads(|| self.inner.snapshot_into(buf))
                    .map_err(err)?;
                Ok(())
            })?;
            if written {
                return Ok(bytes);
            }
        }
        let bytes = py.allow_threads(|| self.inner.snapshot()).map_err(err)?;
        Ok(PyBytes::new(py, &bytes))
    }

    fn restore(&self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        py.allow_threads(|| self.inner.restore(data)).map_err(err)
    }

    /// Writes the snapshot to a new file at `path` as it is encoded: the bytes `snapshot()`
    /// returns, without the snapshot ever existing whole in memory. A file already there is
    /// replaced.
    fn snapshot_to_path(&self, py: Python<'_>, path: std::path::PathBuf) -> PyResult<()> {
        py.allow_threads(|| self.inner.snapshot_to(create(&path)?))
            .map_err(err)
    }

    /// `restore` from a file `snapshot_to_path` wrote, read through a buffer.
    fn restore_path(&self, py: Python<'_>, path: std::path::PathBuf) -> PyResult<()> {
        py.allow_threads(|| self.inner.restore_file(&path))
            .map_err(err)
    }

    /// `restore_shared` from a snapshot file, read through a buffer.
    fn restore_shared_path(&self, py: Python<'_>, path: std::path::PathBuf) -> PyResult<()> {
        py.allow_threads(|| self.inner.restore_shared_file(&path))
            .map_err(err)
    }

    fn merge(&self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        py.allow_threads(|| self.inner.merge(data)).map_err(err)
    }

    fn track_changes(&self) {
        self.inner.track_changes();
    }

    fn pending_changes(&self, py: Python<'_>) -> usize {
        py.allow_threads(|| self.inner.pending_changes())
    }

    fn take_delta<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let delta = py.allow_threads(|| self.inner.take_delta()).map_err(err)?;
        Ok(delta.map(|d| PyBytes::new(py, &d)))
    }

    /// `take_delta` in parts of about `max_arms` arms each, taken now and encoded one by one as the
    /// iterator is read (outside the core's lock); empty when nothing changed.
    fn take_deltas(&self, py: Python<'_>, max_arms: usize) -> PyDeltaParts {
        let parts = py.allow_threads(|| self.inner.take_delta_parts(max_arms));
        PyDeltaParts {
            parts: parking_lot::Mutex::new(parts),
        }
    }

    /// `take_deltas` and `snapshot_to_path` in one step (nothing learned lands between them),
    /// the snapshot written under the core's read lock with the GIL released.
    fn take_deltas_and_snapshot_to_path(
        &self,
        py: Python<'_>,
        path: std::path::PathBuf,
        max_arms: usize,
    ) -> PyResult<PyDeltaParts> {
        let parts = py
            .allow_threads(|| {
                let f = create(&path)?;
                self.inner.take_deltas_and_snapshot_to(max_arms, f)
            })
            .map_err(err)?;
        Ok(PyDeltaParts {
            parts: parking_lot::Mutex::new(parts),
        })
    }

    fn merge_delta(&self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        py.allow_threads(|| self.inner.merge_delta(data))
            .map_err(err)
    }

    fn return_delta(&self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        py.allow_threads(|| self.inner.return_delta(data))
            .map_err(err)
    }

    /// Takes any contiguous byte buffer (the service assembles a large shared state in a
    /// bytearray, chunk by chunk, rather than joining chunks into a second copy).
    fn restore_shared(&self, py: Python<'_>, data: PyBuffer<u8>) -> PyResult<()> {
        if !data.is_c_contiguous() {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "data: must be a contiguous byte buffer (bytes, bytearray)",
            ));
        }
        // SAFETY: `data` holds the buffer exported until it drops, after this call, so the
        // memory stays allocated and the object cannot be resized; it is `len_bytes` long and
        // contiguous. The service does not write to the buffer while restoring from it.
        let bytes =
            unsafe { std::slice::from_raw_parts(data.buf_ptr().cast::<u8>(), data.len_bytes()) };
        py.allow_threads(|| self.inner.restore_shared(bytes))
            .map_err(err)
    }

    fn arm_count(&self) -> usize {
        self.inner.arm_count()
    }
}

/// A new file for a snapshot, or an error naming the path.
fn create(path: &std::path::Path) -> crate::error::Result<std::fs::File> {
    std::fs::File::create(path).map_err(|e| {
        crate::error::CoreError::field("path", format!("cannot create {}: {e}", path.display()))
    })
}

/// `Core.take_deltas`: the parts of one taken change, each encoded when `next` asks for it.
#[pyclass(frozen, module = "modelyard._core", name = "DeltaParts")]
pub struct PyDeltaParts {
    parts: parking_lot::Mutex<crate::snapshot::DeltaParts>,
}

#[pymethods]
impl PyDeltaParts {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let part = py.allow_threads(|| self.parts.lock().next());
        match part {
            None => Ok(None),
            Some(p) => Ok(Some(PyBytes::new(py, &p.map_err(err)?))),
        }
    }

    /// Parts not read yet.
    fn __len__(&self) -> usize {
        self.parts.lock().len()
    }
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyCore>()?;
    m.add_class::<PyRequest>()?;
    m.add_class::<PyDecision>()?;
    m.add_class::<PyCandidate>()?;
    m.add_class::<PyArmStats>()?;
    m.add_class::<PyEvent>()?;
    m.add_class::<PyDeltaParts>()?;
    m.add_class::<jobs::PyJobTracker>()?;
    #[cfg(feature = "front")]
    m.add_class::<front::PyFront>()?;
    #[cfg(feature = "front")]
    m.add_function(wrap_pyfunction!(front::sqlite_soft_heap_limit, m)?)?;
    #[cfg(feature = "front")]
    m.add_function(wrap_pyfunction!(front::scrub_bearer, m)?)?;
    m.add("CoreError", m.py().get_type::<PyCoreError>())?;
    Ok(())
}

/// A job step for `complete_job`: (model, role, task_class) or (model, role, task_class, attempt).
#[derive(FromPyObject)]
enum StepArg {
    WithAttempt((String, i64, String, u32)),
    Plain((String, i64, String)),
}
