"""modelyard's metric instruments, with label values kept to bounded sets.

Labels are config-defined ids (tenant, key, model), enums (role, status, window) or capped values
(task_class: the first TASK_CLASS_LABEL_CAP distinct values, then "other"). Job and decision ids
are never labels; they go on spans.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from modelyard.telemetry import semconv as sc

BudgetKey = tuple[str, str, str, str]  # tenant, scope, subject, window


class LabelCap:
    """Admits the first `limit` distinct values; every later new value reads as "other"."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) < self._limit:
                self._seen.add(value)
                return value
        return sc.LABEL_OVERFLOW


class JobRoles:
    """Roles seen per open job, for the role_mix label; bounded, oldest jobs forgotten first."""

    def __init__(self, limit: int = 10_000) -> None:
        self._limit = limit
        self._roles: dict[tuple[str, str], set[str]] = {}

    def add(self, tenant: str, job_id: str, role: str) -> None:
        key = (tenant, job_id)
        roles = self._roles.get(key)
        if roles is None:
            if len(self._roles) >= self._limit:
                self._roles.pop(next(iter(self._roles)))
            roles = self._roles[key] = set()
        roles.add(role)

    def pop_mix(self, tenant: str, job_id: str) -> str:
        roles = self._roles.pop((tenant, job_id), None)
        return "+".join(sorted(roles)) if roles else "unknown"


class Metrics:
    def __init__(self, meter: Meter) -> None:
        self.token_usage = meter.create_histogram(
            sc.METRIC_TOKEN_USAGE, unit="{token}", description="Tokens used per GenAI operation")
        self.operation_duration = meter.create_histogram(
            sc.METRIC_OPERATION_DURATION, unit="s", description="GenAI operation duration")
        self.spend = meter.create_counter(
            sc.METRIC_SPEND, unit=sc.UNIT_USD, description="Charged spend by tenant, key and model")
        self.decisions = meter.create_counter(
            sc.METRIC_DECISIONS, unit="{decision}", description="Routing decisions by model, role and exploration")
        self.outcomes = meter.create_counter(
            sc.METRIC_OUTCOMES, unit="{outcome}", description="Reported step outcomes by status")
        self.step_duration = meter.create_histogram(
            sc.METRIC_STEP_DURATION, unit="s", description="Harness-reported latency of a routed step")
        self.job_cost = meter.create_histogram(
            sc.METRIC_JOB_COST, unit=sc.UNIT_USD, description="Cost per finished job by role mix")
        self.job_duration = meter.create_histogram(
            sc.METRIC_JOB_DURATION, unit="s", description="Summed step latency per finished job by role mix")
        self.store_duration = meter.create_histogram(
            sc.METRIC_STORE_DURATION, unit="s", description="Budget store call latency by operation")
        self.core_duration = meter.create_histogram(
            sc.METRIC_CORE_DURATION, unit="s", description="Routing core call latency by operation")
        self.rpc_duration = meter.create_histogram(
            sc.METRIC_RPC_DURATION, unit="ms", description="Server-side RPC latency")
        self._budgets: dict[BudgetKey, float] = {}
        meter.create_observable_gauge(
            sc.METRIC_BUDGET_REMAINING, callbacks=[self._observe_budgets], unit=sc.UNIT_USD,
            description="Remaining budget per tenant/key window, as of the latest decision")
        self.task_class = LabelCap(sc.TASK_CLASS_LABEL_CAP)
        self.job_roles = JobRoles()

    def set_budget(self, tenant: str, scope: str, subject: str, window: str, remaining_usd: float) -> None:
        self._budgets[(tenant, scope, subject, window)] = remaining_usd

    def _observe_budgets(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(remaining, {sc.LABEL_TENANT: tenant, sc.LABEL_SCOPE: scope,
                                    sc.LABEL_SUBJECT: subject, sc.LABEL_WINDOW: window})
            for (tenant, scope, subject, window), remaining in list(self._budgets.items())
        ]
