"""Replays modelyard itself: tasks arrive one at a time in a seeded order, each task is one job.

Per task: role EXECUTOR, task_class = the table's task_group; route; the table says whether the pick
succeeded and what it cost; report the outcome at once; on failure route again with attempt + 1 and
the failed models (up to K attempts); CompleteJob at the end. The router learns sequentially.

The cost is passed as `cost_usd` when the core's `report` accepts it; otherwise as synthetic token
counts (the step's token estimate scaled by actual / list-price-predicted cost), so the core's
learned tokens x list price reproduce the real cost.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Protocol

from modelyard.core import RoutingCore
from modelyard.domain import FAILURE, SUCCESS, Constraints, RouteInput, TaskProfile
from modelyard.replay.baselines import Run
from modelyard.replay.catalog import Settings, core_catalog
from modelyard.replay.table import Table

EXECUTOR = 2
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z: any fixed epoch works, the core is pure


class Router(Protocol):
    def route(self, job: str, task_class: str, attempt: int, failed: list[str], seed: int, now: float) -> str: ...
    def report(self, job: str, model: str, task_class: str, ok: bool, cost: float, now: float,
               attempt: int = 1) -> None: ...
    def complete(self, job: str, steps: list[str], task_class: str, ok: bool, now: float) -> None: ...


def synthetic_tokens(cost: float, est: tuple[int, int], price: tuple[float, float]) -> tuple[int, int]:
    predicted = (price[0] * est[0] + price[1] * est[1]) / 1e6
    r = max(cost / predicted, 1e-3) if predicted > 0 else 1.0
    return max(1, round(est[0] * r)), max(1, round(est[1] * r))


class InProcess:
    """The Rust core through the service's facade, the exact call sequence the server makes."""

    def __init__(self, table: Table, s: Settings) -> None:
        self.table, self.s = table, s
        self.core = RoutingCore(core_catalog(table, s))
        # job -> efforts of its failed attempts (what the service's JobTracker keeps)
        self.efforts: dict[str, list[float]] = {}

    def _failed_effort(self, job: str) -> float | None:
        e = self.efforts.get(job)
        return sum(e) / len(e) if e else None

    def route(self, job: str, task_class: str, attempt: int, failed: list[str], seed: int, now: float) -> str:
        task = TaskProfile(role=EXECUTOR, task_class=task_class,
                           est_input_tokens=self.s.est_tokens[0], est_output_tokens=self.s.est_tokens[1])
        req = RouteInput(request_id=f"{job}/{attempt}", job_id=job, task=task, attempt=attempt,
                         failed_models=tuple(failed))
        d = self.core.route(req, constraints=Constraints(), budget_cap_usd=None, job_failures=len(failed),
                            sticky_model=None, time_value_usd_per_s=0.0, explore=self.s.explore,
                            seed=seed, now=now, failed_effort=self._failed_effort(job))
        if d.model is None:
            raise RuntimeError(f"no eligible model: {d.reason}")
        return d.model

    def report(self, job: str, model: str, task_class: str, ok: bool, cost: float, now: float,
               attempt: int = 1) -> None:
        # The table has billed cost only: the core learns billed / list-price-predicted cost from
        # cost_usd and the step estimate; the tokens are the ones that cost implies at list prices.
        tin, tout = synthetic_tokens(cost, self.s.est_tokens, self.table.prices[model])
        effort = self.core.report(
            model=model, role=EXECUTOR, task_class=task_class, status=SUCCESS if ok else FAILURE,
            input_tokens=tin, cached_input_tokens=0, output_tokens=tout, latency_ms=0.0, now=now,
            cost_usd=cost, est_input_tokens=self.s.est_tokens[0], est_output_tokens=self.s.est_tokens[1],
            attempt=attempt, failed_effort=self._failed_effort(job) if attempt > 1 else None)
        if not ok and effort is not None:
            self.efforts.setdefault(job, []).append(effort)

    def complete(self, job: str, steps: list[str], task_class: str, ok: bool, now: float) -> None:
        # steps[i] was attempt i + 1 (a retry never repeats a failed model)
        distinct = list(dict.fromkeys((m, EXECUTOR, task_class, a) for a, m in enumerate(steps, 1)))
        self.efforts.pop(job, None)
        self.core.complete_job(distinct, success=ok, now=now)


def arrival_order(n: int, seed: int) -> list[int]:
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return order


def replay(table: Table, router: Router, order: list[int], k: int, s: Settings, seed: int,
           ok_of: Callable[[str, int, int], bool] | None = None, start: int = 0) -> Run:
    """Replays `order[start:]`; `ok_of(model, task, position)` overrides the table (drift)."""
    n = table.n
    run = Run([False] * n, [0.0] * n, [0] * n, [[] for _ in range(n)], "modelyard")
    ok_fn = ok_of or (lambda m, t, _pos: table.ok[m][t])
    for pos in range(start, len(order)):
        t = order[pos]
        cls, job = table.groups[t], f"s{seed}-t{t}"
        now = T0 + pos * s.seconds_per_task
        tried: list[str] = []
        solved = False
        for attempt in range(1, min(k, len(table.models)) + 1):
            m = router.route(job, cls, attempt, tried, seed=(seed * 1_000_003 + pos) * 8 + attempt, now=now)
            ok = ok_fn(m, t, pos)
            c = table.cost[m][t]
            run.cost[t] += c
            tried.append(m)
            router.report(job, m, cls, ok, c, now, attempt)
            if ok:
                solved = True
                break
        router.complete(job, tried, cls, solved, now)
        run.solved[t], run.attempts[t], run.picks[t] = solved, len(tried), tried
    return run


def replay_inprocess(table: Table, k: int, s: Settings, seed: int) -> Run:
    return replay(table, InProcess(table, s), arrival_order(table.n, seed), k, s, seed)
