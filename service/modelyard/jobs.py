"""Per-job routing memory on this replica: the model each role is using, failures so far, and how
those failures ran (their efforts: ln of billed over the model's typical cost, from the core).

Bounded (least recently used jobs are forgotten). It feeds stickiness and escalation; budgets and
job summaries come from the store, which is the source of truth. The tracker is the Rust one
(`router_core/src/jobs.rs`), so the Rust front (`server.front: rust`) routes with the same memory
the Python side's ReportOutcome and CompleteJob update:

    context(tenant, job_id, role) -> (model to stay on | None, failures of the role, mean effort | None)
    knows(tenant, job_id) -> bool          # an outcome of the job was seen here
    observe(tenant, job_id, role, model, status, effort=None)
    forget(tenant, job_id)
"""

from __future__ import annotations

from modelyard.core import JobTracker

__all__ = ["JobTracker"]
