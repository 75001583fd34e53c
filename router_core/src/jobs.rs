//! Per-job routing memory on this replica, shared by both fronts: the model each role is using,
//! its failures so far in the job and how they ran (their efforts). Bounded: the least recently
//! used jobs are forgotten. The Python service's `jobs.JobTracker` is this one.

use std::collections::HashMap;
use std::num::NonZeroUsize;

use lru::LruCache;
use parking_lot::Mutex;

const SUCCESS: i64 = 1;
const FAILURE: i64 = 2;
const ERROR: i64 = 3;
const TIMEOUT: i64 = 4;

#[derive(Debug, Default, Clone)]
struct RoleState {
    model: Option<String>,
    failures: u32,
    efforts: Vec<f64>,
}

pub struct JobTracker {
    jobs: Mutex<LruCache<(String, String), HashMap<i64, RoleState>>>,
}

/// (model to stay on, failures of the role so far, their mean effort or `None`).
pub type JobContext = (Option<String>, u32, Option<f64>);

impl JobTracker {
    pub fn new(capacity: usize) -> Self {
        Self {
            jobs: Mutex::new(LruCache::new(
                NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }

    pub fn context(&self, tenant: &str, job_id: &str, role: i64) -> JobContext {
        let jobs = self.jobs.lock();
        let Some(rs) = jobs
            .peek(&(tenant.to_owned(), job_id.to_owned()))
            .and_then(|roles| roles.get(&role))
        else {
            return (None, 0, None);
        };
        let effort = (!rs.efforts.is_empty())
            .then(|| rs.efforts.iter().sum::<f64>() / rs.efforts.len() as f64);
        (rs.model.clone(), rs.failures, effort)
    }

    /// Whether this replica has seen an outcome of the job since it started (or forgot it).
    pub fn knows(&self, tenant: &str, job_id: &str) -> bool {
        self.jobs
            .lock()
            .contains(&(tenant.to_owned(), job_id.to_owned()))
    }

    pub fn observe(
        &self,
        tenant: &str,
        job_id: &str,
        role: i64,
        model: &str,
        status: i64,
        effort: Option<f64>,
    ) {
        let mut jobs = self.jobs.lock();
        let roles = jobs.get_or_insert_mut((tenant.to_owned(), job_id.to_owned()), HashMap::new);
        let rs = roles.entry(role).or_default();
        if status == SUCCESS {
            rs.model = Some(model.to_owned());
        } else if matches!(status, FAILURE | ERROR | TIMEOUT) {
            rs.failures += 1;
            if let Some(e) = effort {
                rs.efforts.push(e);
            }
            if rs.model.as_deref() == Some(model) {
                rs.model = None;
            }
        }
    }

    pub fn forget(&self, tenant: &str, job_id: &str) {
        self.jobs
            .lock()
            .pop(&(tenant.to_owned(), job_id.to_owned()));
    }

    pub fn len(&self) -> usize {
        self.jobs.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_per_role_and_forgets_the_oldest() {
        let t = JobTracker::new(2);
        t.observe("a", "j1", 2, "m", FAILURE, Some(1.0));
        t.observe("a", "j1", 2, "m", FAILURE, Some(-0.5));
        t.observe("a", "j1", 1, "p", SUCCESS, None);
        assert_eq!(t.context("a", "j1", 2), (None, 2, Some(0.25)));
        assert_eq!(t.context("a", "j1", 1), (Some("p".into()), 0, None));
        assert_eq!(t.context("b", "j1", 2), (None, 0, None));
        t.observe("a", "j2", 2, "m", SUCCESS, None);
        t.observe("a", "j3", 2, "m", SUCCESS, None);
        assert!(!t.knows("a", "j1") && t.knows("a", "j2") && t.knows("a", "j3"));
        t.forget("a", "j2");
        assert!(!t.knows("a", "j2") && t.len() == 1);
    }
}
