"""Per-job routing memory on this replica: the model each role is using, failures so far, and how
those failures ran (their efforts: ln of billed over the model's typical cost, from the core).

Bounded (least recently used jobs are forgotten). It feeds stickiness and escalation; budgets and
job summaries come from the store, which is the source of truth.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from modelyard.domain import ERROR, FAILURE, SUCCESS, TIMEOUT


@dataclass(slots=True)
class _RoleState:
    model: str | None = None
    failures: int = 0
    efforts: list[float] = field(default_factory=list)


@dataclass(slots=True)
class _JobState:
    roles: dict[int, _RoleState] = field(default_factory=dict)


class JobTracker:
    def __init__(self, capacity: int = 100_000) -> None:
        self._jobs: OrderedDict[tuple[str, str], _JobState] = OrderedDict()
        self._capacity = capacity

    def _get(self, tenant: str, job_id: str) -> _JobState:
        key = (tenant, job_id)
        state = self._jobs.get(key)
        if state is None:
            state = self._jobs[key] = _JobState()
            if len(self._jobs) > self._capacity:
                self._jobs.popitem(last=False)
        else:
            self._jobs.move_to_end(key)
        return state

    def context(self, tenant: str, job_id: str, role: int) -> tuple[str | None, int, float | None]:
        """(model to stay on, failures of this role so far in the job, their mean effort or None
        when none of them reported a measurable cost)."""
        state = self._jobs.get((tenant, job_id))
        if state is None:
            return None, 0, None
        rs = state.roles.get(role)
        if rs is None:
            return None, 0, None
        effort = sum(rs.efforts) / len(rs.efforts) if rs.efforts else None
        return rs.model, rs.failures, effort

    def knows(self, tenant: str, job_id: str) -> bool:
        """Whether this replica has seen an outcome of the job since it started (or forgot it)."""
        return (tenant, job_id) in self._jobs

    def observe(self, tenant: str, job_id: str, role: int, model: str, status: int,
                effort: float | None = None) -> None:
        rs = self._get(tenant, job_id).roles.setdefault(role, _RoleState())
        if status == SUCCESS:
            rs.model = model
        elif status in (FAILURE, ERROR, TIMEOUT):
            rs.failures += 1
            if effort is not None:
                rs.efforts.append(effort)
            if rs.model == model:
                rs.model = None

    def forget(self, tenant: str, job_id: str) -> None:
        self._jobs.pop((tenant, job_id), None)
