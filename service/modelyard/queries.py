"""Business functions that read: Catalog (ListModels, Estimate), Budgets (GetBudget) and Admin."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from modelyard.app import App
from modelyard.auth import Principal
from modelyard.budget import WindowLimit, window_views
from modelyard.domain import BudgetView, CandidateView, Constraints, TaskProfile
from modelyard.errors import NotFound
from modelyard.policy import check_allowed_exist, narrow
from modelyard.routing import candidate_views


@dataclass(frozen=True, slots=True)
class ArmView:
    model: str
    role: int
    task_class: str
    evidence: float
    success_mean: float
    success_low: float
    success_high: float
    cost_usd: float
    latency_ms: float


def learned_estimates(app: App, who: Principal) -> dict[str, list[ArmView]]:
    """The core's arms grouped by model, for ListModels and the leaderboard."""
    out: dict[str, list[ArmView]] = {}
    for a in app.core_for(who.tenant).arms():
        out.setdefault(a.model, []).append(ArmView(
            model=a.model, role=a.role, task_class=a.task_class, evidence=a.n,
            success_mean=a.mean_success, success_low=a.success_low, success_high=a.success_high,
            cost_usd=a.mean_cost_usd, latency_ms=a.mean_latency_ms,
        ))
    return out


def estimate(app: App, who: Principal, task: TaskProfile, constraints: Constraints) -> list[CandidateView]:
    """Every model's expected cost, success and latency for the task, best first, excluded last."""
    tenant = app.runtime.tenant(who)
    check_allowed_exist(constraints, app.runtime.config.model)
    merged = narrow(constraints, tenant.policy_for(task.role))
    cands = app.core_for(who.tenant).estimate(
        task, merged, time_value_usd_per_s=tenant.time_value_usd_per_s, now=app.clock())
    return sorted(candidate_views(cands), key=lambda c: (c.excluded, c.score))


async def get_budget(app: App, who: Principal, tenant_id: str) -> tuple[str, tuple[BudgetView, ...]]:
    tenant_id = tenant_id or who.tenant
    if tenant_id != who.tenant:
        who.require("admin", "GetBudget for another tenant")
    tenant = app.runtime.tenants.get(tenant_id)
    if tenant is None:
        raise NotFound(f"tenant: no tenant '{tenant_id}' in the config")
    subjects = [("tenant", tenant_id)]
    key_budgets: Mapping[str, WindowLimit] = {}
    if tenant_id == who.tenant:
        subjects.append(("key", who.key_id))
        key_budgets = tenant.key_budgets.get(who.key_id, {})
    usages = await app.store.usage(subjects, app.clock())
    return tenant_id, window_views(usages, tenant.budgets, key_budgets)
