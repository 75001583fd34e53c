"""Drift scenario: halfway through the arrival order a provider silently degrades a model.

The degraded model is the cheapest good one: the lowest cost per solved task in hindsight (the
best-single baseline). From the middle task on, each of its successes turns into a failure with
probability 2/3 (seeded per order), so its success rate drops to a third.

Measured per order, then the median:
- `tasks_to_move`: tasks after the change until the share of tasks whose first pick is the degraded
  model, over a sliding window of the last 25 tasks, is below 20 % (0 if it already was);
- second-half cost per solved task of the router that keeps running, against a router restarted at
  the change that knows it: fresh state, generic priors, except the degraded model whose prior is
  its degraded rate (its whole-table solved share / 3) with strength 20.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from modelyard.replay.baselines import Run, best_single
from modelyard.replay.catalog import Settings
from modelyard.replay.runner import InProcess, Router, arrival_order, replay
from modelyard.replay.table import Table

WINDOW = 25
THRESHOLD = 0.2
KNOWN_PRIOR_STRENGTH = 20.0


@dataclass
class DriftResult:
    model: str
    tasks_to_move: float
    never_moved: int
    second_half_cps: float
    restarted_cps: float
    orders: int

    @property
    def ratio(self) -> float:
        return self.second_half_cps / self.restarted_cps if self.restarted_cps else float("inf")


def degrade(table: Table, model: str, order: list[int], seed: int) -> Callable[[str, int, int], bool]:
    half = len(order) // 2
    rng = random.Random(seed * 7919 + 17)
    flipped = {t for t in order[half:] if table.ok[model][t] and rng.random() < 2 / 3}

    def ok(m: str, t: int, pos: int) -> bool:
        return table.ok[m][t] and not (m == model and pos >= half and t in flipped)
    return ok


def tasks_to_move(run: Run, order: list[int], model: str) -> int | None:
    half = len(order) // 2
    firsts = [1 if run.picks[t] and run.picks[t][0] == model else 0 for t in order]
    for pos in range(half, len(order)):
        window = firsts[max(0, pos - WINDOW + 1): pos + 1]
        if sum(window) / len(window) < THRESHOLD:
            return pos - half
    return None


def _second_half_cps(run: Run, order: list[int]) -> float:
    half = order[len(order) // 2:]
    solved = sum(run.solved[t] for t in half)
    return sum(run.cost[t] for t in half) / solved if solved else float("inf")


def run_drift(table: Table, k: int, s: Settings, seeds: list[int],
              make_router: Callable[[Table, Settings], Router] = InProcess) -> DriftResult:
    model = best_single(table)
    known = (max(table.share(model) / 3, 0.01), KNOWN_PRIOR_STRENGTH)
    moves, never, cps, restarted = [], 0, [], []
    for seed in seeds:
        order = arrival_order(table.n, seed)
        ok = degrade(table, model, order, seed)
        run = replay(table, make_router(table, s), order, k, s, seed, ok_of=ok)
        moved = tasks_to_move(run, order, model)
        if moved is None:
            never += 1
            moves.append(float(len(order) - len(order) // 2))
        else:
            moves.append(float(moved))
        cps.append(_second_half_cps(run, order))
        fresh = make_router(table, s.with_overrides(**{model: known}))
        rerun = replay(table, fresh, order, k, s, seed, ok_of=ok, start=len(order) // 2)
        restarted.append(_second_half_cps(rerun, order))
    return DriftResult(model, statistics.median(moves), never, statistics.median(cps),
                       statistics.median(restarted), len(seeds))


def drift_text(d: DriftResult, k: int) -> str:
    moved = f"{d.tasks_to_move:.0f} tasks" + (f" ({d.never_moved} of {d.orders} orders never moved)"
                                               if d.never_moved else "")
    return (f"### Drift (K={k}): {d.model} degraded to a third of its success rate halfway\n\n"
            f"| measure | value |\n|---|---:|\n"
            f"| tasks until its pick share (window {WINDOW}) < {THRESHOLD:.0%} | {moved} |\n"
            f"| second-half $ per solved, router that keeps running | ${d.second_half_cps:.4f} |\n"
            f"| second-half $ per solved, router restarted knowing the change | ${d.restarted_cps:.4f} |\n"
            f"| ratio | {d.ratio:.2f}x |")
