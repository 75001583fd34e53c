//! `modelyard._core.Front`: the Rust gRPC front, started and fed by `modelyard.front`.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use super::jobs::PyJobTracker;
use super::PyCore;
use crate::front::config::FrontConfig;
use crate::front::spans::{self, Spec};
use crate::front::{Front, Running, StoreSpec};

fn parse(config_json: &str) -> PyResult<FrontConfig> {
    serde_json::from_str(config_json)
        .map_err(|e| PyValueError::new_err(format!("front config: {e}")))
}

/// A served Route: ((tenant, key_id, role, task_class, job_id, attempt), (decision_id, (model,
/// provider, upstream_model), fallbacks, cost_usd, success_probability, latency_ms, exploration,
/// sticky, budget_remaining_usd, reserved_usd), budgets [(scope, subject, window, remaining)],
/// (start_unix_ns, duration_ns, traceparent, core_s, store_s)).
type RoutedTuple = (
    (String, String, i32, String, String, i64),
    (
        String,
        (String, String, String),
        Vec<String>,
        f64,
        f64,
        f64,
        bool,
        bool,
        f64,
        f64,
    ),
    Vec<(&'static str, String, i64, Option<f64>)>,
    (u64, u64, Option<String>, f64, f64),
);

#[pyclass(frozen, module = "modelyard._core", name = "Front")]
pub struct PyFront {
    front: Arc<Front>,
    running: Mutex<Option<Running>>,
}

#[pymethods]
impl PyFront {
    #[new]
    fn new(
        py: Python<'_>,
        config_json: &str,
        store_json: &str,
        jobs: &PyJobTracker,
    ) -> PyResult<Self> {
        let config = parse(config_json)?;
        let spec: StoreSpec = serde_json::from_str(store_json)
            .map_err(|e| PyValueError::new_err(format!("front store: {e}")))?;
        let jobs = Arc::clone(&jobs.inner);
        let front = py
            .allow_threads(|| Front::new(config, spec, jobs))
            .map_err(PyValueError::new_err)?;
        Ok(Self {
            front: Arc::new(front),
            running: Mutex::new(None),
        })
    }

    fn set_config(&self, config_json: &str) -> PyResult<()> {
        self.front.set_config(parse(config_json)?);
        Ok(())
    }

    /// The core learning for `name` ("" = shared, else the tenant's own).
    fn set_core(&self, name: &str, core: &PyCore) {
        self.front.set_core(name, Arc::clone(&core.inner));
    }

    /// Binds `listen`, serves on `threads` threads, forwards to the Unix socket `upstream`; returns the port.
    #[pyo3(signature = (listen, upstream, threads=2))]
    fn start(&self, py: Python<'_>, listen: &str, upstream: &str, threads: usize) -> PyResult<u16> {
        let mut running = self.running.lock();
        if running.is_some() {
            return Err(PyValueError::new_err("the front is already running"));
        }
        let started = py
            .allow_threads(|| self.front.start(listen, upstream, threads))
            .map_err(PyOSError::new_err)?;
        let port = started.port;
        *running = Some(started);
        Ok(port)
    }

    /// Stops accepting, lets calls in flight finish within `grace_s`, ends the threads.
    fn stop(&self, py: Python<'_>, grace_s: f64) {
        let taken = self.running.lock().take();
        if let Some(mut r) = taken {
            py.allow_threads(|| r.stop(Duration::from_secs_f64(grace_s.max(0.0))));
        }
    }

    /// The Routes served since the last call (for stats and telemetry).
    fn drain_routed(&self) -> Vec<RoutedTuple> {
        self.front
            .drain_routed()
            .into_iter()
            .map(|r| {
                (
                    (
                        r.tenant,
                        r.key_id,
                        r.role,
                        r.task_class,
                        r.job_id,
                        r.attempt,
                    ),
                    (
                        r.decision_id,
                        r.model,
                        r.fallbacks,
                        r.cost_usd,
                        r.success_probability,
                        r.latency_ms,
                        r.exploration,
                        r.sticky,
                        r.budget_remaining_usd,
                        r.reserved_usd,
                    ),
                    r.budgets,
                    (
                        r.start_unix_ns,
                        r.duration_ns,
                        r.traceparent,
                        r.core_s,
                        r.store_s,
                    ),
                )
            })
            .collect()
    }

    /// How the served Routes' telemetry is summed and their spans encoded (`front.telemetry_spec`),
    /// or None: only the counts per model.
    #[pyo3(signature = (spec_json=None))]
    fn set_telemetry(&self, spec_json: Option<&str>) -> PyResult<()> {
        let spec = spec_json
            .map(Spec::parse)
            .transpose()
            .map_err(PyValueError::new_err)?;
        self.front.set_telemetry(spec);
        Ok(())
    }

    /// The Routes served since the last call, summed: (by_model [(model, n)], decisions
    /// [((tenant, model, role, exploration, task_class), n)], budgets [((tenant, scope, subject,
    /// window), remaining)], job_roles [(tenant, job_id, role)], core_s, store_s, rpc_ms, spans
    /// [(bytes, count)]). Everything past by_model is empty until `set_telemetry`.
    fn drain_summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyTuple>> {
        let s = py.allow_threads(|| self.front.drain_summary());
        let pieces: Vec<(Bound<'py, PyBytes>, usize)> = s
            .spans
            .iter()
            .map(|(b, n)| (PyBytes::new(py, b), *n))
            .collect();
        (
            s.by_model,
            s.decisions,
            s.budgets,
            s.job_roles,
            s.core_s,
            s.store_s,
            s.rpc_ms,
            pieces,
        )
            .into_pyobject(py)
    }

    /// {"served": n, "dropped": n, "delegated": {reason: n}}.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item(
            "served",
            self.front.served.load(std::sync::atomic::Ordering::Relaxed),
        )?;
        d.set_item(
            "dropped",
            self.front
                .routed_dropped
                .load(std::sync::atomic::Ordering::Relaxed),
        )?;
        d.set_item("delegated", self.front.delegations())?;
        Ok(d)
    }
}

/// redact.py's bearer-token scrub as the front applies it to span values (for the tests that hold
/// the two to the same result): `text` with every match of `(?i)bearer\s+\S+` replaced by `replacement`.
#[pyfunction]
pub fn scrub_bearer(text: &str, replacement: &str) -> String {
    spans::scrub_bearer(text, replacement)
}

/// `PRAGMA soft_heap_limit = limit` through the front's SQLite library, returning the previous
/// limit. The limit is a process-wide global of one SQLite library, so `front.py` sets it here and
/// reads it back through Python's sqlite3 module: the same value means one library, as the front
/// needs (two copies in one process do not see each other's locks).
#[pyfunction]
pub fn sqlite_soft_heap_limit(limit: i64) -> PyResult<i64> {
    let run = || -> rusqlite::Result<i64> {
        let conn = rusqlite::Connection::open_in_memory()?;
        let old: i64 = conn.query_row("PRAGMA soft_heap_limit", [], |r| r.get(0))?;
        conn.query_row(&format!("PRAGMA soft_heap_limit = {limit}"), [], |r| {
            r.get::<_, i64>(0)
        })?;
        Ok(old)
    };
    run().map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(format!("sqlite: {e}")))
}
