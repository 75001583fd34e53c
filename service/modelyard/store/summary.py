"""Backend-independent derivations from stored decisions: job summary, cost, released amount."""

from __future__ import annotations

from collections.abc import Sequence

from modelyard.store.base import DecisionRecord, JobRecord


def decision_cost(d: DecisionRecord) -> int:
    """What a decision costs the budget now: its charge once closed, else its open estimate."""
    return d.charged_micros if d.settled or d.expired else d.estimate_micros


def released_micros(estimate_micros: int, charged_micros: int) -> int:
    """The part of a reservation given back to the budget when it closes at `charged_micros`."""
    return max(0, estimate_micros - charged_micros)


def summarize_job(
    tenant: str, job_id: str, status: int, now: float, decisions: Sequence[DecisionRecord],
) -> JobRecord:
    """The JobRecord of `decisions` (in creation order), completed with `status` at `now`."""
    steps: dict[str, int] = {}
    costs: dict[str, int] = {}
    latency = 0.0
    for d in decisions:
        model = d.model_used if d.settled and d.model_used else d.model
        steps[model] = steps.get(model, 0) + 1
        costs[model] = costs.get(model, 0) + decision_cost(d)
        latency += d.latency_ms if d.settled else 0.0
    return JobRecord(
        tenant=tenant, job_id=job_id, status=status, completed_at=now,
        total_cost_micros=sum(costs.values()), steps=len(decisions), total_latency_ms=latency,
        models=tuple(steps), per_model=tuple((m, steps[m], costs[m]) for m in steps),
    )
