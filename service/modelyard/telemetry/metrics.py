"""modelyard's metric instruments, with label values kept to bounded sets.

Labels are config-defined ids (tenant, key, model), enums (role, status, window) or capped values
(task_class: the first TASK_CLASS_LABEL_CAP distinct values, then "other"). Job and decision ids
are never labels; they go on spans.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

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


Attrs = Mapping[str, Any]


class Later:
    """Measurements taken on the server's event loop, handed to the SDK when the loop next turns.

    The SDK spends 10-15 µs on each measurement (attribute checks, hashing, a lock, the bucket search);
    Route takes four. Queued here instead (a tuple append), they are recorded by one callback the loop
    runs after the current RPC has handed its response to gRPC's core, so they cost the caller nothing
    at low load and the same CPU at high load. Off the loop thread (executor threads, sync code)
    measurements go straight to the SDK. `flush` records what is queued (shutdown, tests).
    """

    __slots__ = ("_loop", "_pending")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[tuple[Callable[[float, Attrs], None], float, Attrs]] = []

    def put(self, sink: Callable[[float, Attrs], None], value: float, attrs: Attrs) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            sink(value, attrs)
            return
        if self._loop is not loop:
            if self._loop is not None and not self._loop.is_closed():
                sink(value, attrs)  # a second live loop in the process: it gets no queue of its own
                return
            self.flush()  # whatever a closed loop left queued
            self._loop = loop
        self._pending.append((sink, value, attrs))
        if len(self._pending) == 1:
            loop.call_soon(self.flush)

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        for sink, value, attrs in pending:
            sink(value, attrs)


class Instrument:
    """A counter's `add` or a histogram's `record`, through `Later`."""

    __slots__ = ("_later", "_sink")

    def __init__(self, later: Later, sink: Callable[[float, Attrs], None]) -> None:
        self._later, self._sink = later, sink

    def record(self, value: float, attributes: Attrs) -> None:
        self._later.put(self._sink, value, attributes)

    add = record


class Metrics:
    def __init__(self, meter: Meter) -> None:
        self.later = later = Later()

        def histogram(name: str, unit: str, description: str) -> Instrument:
            return Instrument(later, meter.create_histogram(name, unit=unit, description=description).record)

        def counter(name: str, unit: str, description: str) -> Instrument:
            return Instrument(later, meter.create_counter(name, unit=unit, description=description).add)

        self.token_usage = histogram(sc.METRIC_TOKEN_USAGE, "{token}", "Tokens used per GenAI operation")
        self.operation_duration = histogram(sc.METRIC_OPERATION_DURATION, "s", "GenAI operation duration")
        self.spend = counter(sc.METRIC_SPEND, sc.UNIT_USD, "Charged spend by tenant, key and model")
        self.decisions = counter(sc.METRIC_DECISIONS, "{decision}", "Routing decisions by model, role and exploration")
        self.outcomes = counter(sc.METRIC_OUTCOMES, "{outcome}", "Reported step outcomes by status")
        self.step_duration = histogram(sc.METRIC_STEP_DURATION, "s", "Harness-reported latency of a routed step")
        self.job_cost = histogram(sc.METRIC_JOB_COST, sc.UNIT_USD, "Cost per finished job by role mix")
        self.job_duration = histogram(sc.METRIC_JOB_DURATION, "s", "Summed step latency per finished job by role mix")
        self.store_duration = histogram(sc.METRIC_STORE_DURATION, "s", "Budget store call latency by operation")
        self.core_duration = histogram(sc.METRIC_CORE_DURATION, "s", "Routing core call latency by operation")
        self.rpc_duration = histogram(sc.METRIC_RPC_DURATION, "ms", "Server-side RPC latency")
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
