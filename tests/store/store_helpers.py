"""Builders shared by the store tests: reservations, limits and a fixed UTC clock."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from modelyard.store import KEY, TENANT, UNLIMITED, WINDOWS, Limit, Reservation, Store, WindowUsage


def ts(iso: str) -> float:
    """Epoch seconds of an ISO time, read as UTC."""
    return datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp()


T0 = ts("2026-11-29T12:00:00")


def reservation(
    estimate: int, *, tenant: str = "acme", key_id: str = "k1", job_id: str = "job-1",
    request_id: str | None = None, model: str = "model-a", now: float = T0, ttl: float = 600.0,
) -> Reservation:
    decision_id = uuid.uuid4().hex
    return Reservation(
        request_id=request_id or f"req-{decision_id}", decision_id=decision_id, tenant=tenant,
        key_id=key_id, job_id=job_id, model=model, role=2, task_class="edit",
        estimate_micros=estimate, created_at=now, expires_at=now + ttl,
        payload=f"decision {decision_id}".encode(),
    )


def limits(
    tenant: str = "acme", key_id: str = "k1", *, tenant_hard: dict[int, int] | None = None,
    key_hard: dict[int, int] | None = None,
) -> list[Limit]:
    """All six counters, enforcing only the windows given (window -> hard micros)."""
    out = []
    for scope, subject, hard in ((TENANT, tenant, tenant_hard or {}), (KEY, key_id, key_hard or {})):
        out += [Limit(scope, subject, w, hard.get(w, UNLIMITED)) for w in WINDOWS]
    return out


async def usage_of(store: Store, scope: str, subject: str, window: int, now: float) -> WindowUsage:
    for u in await store.usage([(scope, subject)], now):
        if u.window == window:
            return u
    raise AssertionError(f"no usage for window {window}")


async def settle(store: Store, decision_id: str, actual: int, *, tenant: str = "acme",
                 now: float = T0, model_used: str = "", status: int = 1):
    return await store.settle(
        decision_id, tenant, actual_micros=actual, status=status, model_used=model_used,
        input_tokens=100, cached_input_tokens=10, output_tokens=20, latency_ms=250.0, now=now,
    )


def ledger_total(entries: Sequence) -> int:
    return sum(e.amount_micros for e in entries)
